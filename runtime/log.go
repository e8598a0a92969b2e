package runtime

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"
)

// errorLog writes eci's errors where runc's callers look for runc's: the --log file, as a
// JSON line with a lowercase "level":"error" (containerd's shim matches that string
// exactly) or as logrus text, and stderr. Never stdout: callers parse runc's stdout.
type errorLog struct {
	path   string
	format string
	stderr io.Writer
	now    func() time.Time
}

func (l *errorLog) line(level, msg string) []byte {
	ts := l.now().UTC().Format(time.RFC3339Nano)
	if l.format == "json" {
		b, _ := json.Marshal(struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
			Time  string `json:"time"`
		}{level, msg, ts})
		return append(b, '\n')
	}
	return fmt.Appendf(nil, "time=%q level=%s msg=%q\n", ts, level, msg)
}

// Warn records something eci went on despite.
func (l *errorLog) Warn(err error) { l.write("warning", err) }

// Error records err. Failing to write the log is not itself reported: stderr still gets it.
func (l *errorLog) Error(err error) { l.write("error", err) }

func (l *errorLog) write(level string, err error) {
	msg := "eci: " + err.Error()
	if l.path != "" {
		if f, ferr := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600); ferr == nil {
			_, _ = f.Write(l.line(level, msg))
			_ = f.Close()
		}
	}
	if l.stderr != nil {
		fmt.Fprintln(l.stderr, msg)
	}
}
