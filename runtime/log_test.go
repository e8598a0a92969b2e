package runtime

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestErrorLog(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	now := func() time.Time { return time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC) }
	for _, tc := range []struct{ format, want string }{
		{"json", `{"level":"error","msg":"eci: boom \"x\"","time":"2026-11-28T12:00:00Z"}` + "\n"},
		{"text", `time="2026-11-28T12:00:00Z" level=error msg="eci: boom \"x\""` + "\n"},
	} {
		var stderr bytes.Buffer
		path := filepath.Join(dir, tc.format+".log")
		l := &errorLog{path: path, format: tc.format, stderr: &stderr, now: now}
		l.Error(errors.New(`boom "x"`))
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != tc.want {
			t.Errorf("%s log = %q, want %q", tc.format, got, tc.want)
		}
		if !strings.Contains(stderr.String(), `eci: boom "x"`) {
			t.Errorf("stderr = %q", stderr.String())
		}
	}
}
