package idalloc

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// DefaultLiveness reports an entry alive if runc's state file
// <RuncRoot>/<Key>/state.json exists (the container exists, in any status), or
// if the creator pid exists, is not a zombie and has the recorded start time
// (creation is still in progress). Anything it cannot determine (a permission
// error, an unparsable stat line) counts as alive: a leaked range is
// recoverable, a range handed out twice is not.
type DefaultLiveness struct {
	// ProcRoot is the proc filesystem to read <pid>/stat from; "" means "/proc".
	// It must show the pid namespace the creators ran in.
	ProcRoot string
	// HostRoot is prefixed to every Entry.RuncRoot; "" means "/".
	HostRoot string
}

// Alive implements Liveness.
func (l DefaultLiveness) Alive(e Entry) bool {
	if e.RuncRoot != "" && validateKey(e.Key) == nil {
		_, err := os.Stat(filepath.Join(l.HostRoot, e.RuncRoot, e.Key, "state.json"))
		if err == nil || !isNotExist(err) {
			return true
		}
	}
	if e.CreatorPID > 0 {
		alive, err := l.processAlive(e.CreatorPID, e.CreatorStart)
		if alive || err != nil {
			return true
		}
	}
	return false
}

// processAlive reports whether pid is a running (non-zombie) process that
// started at start, in clock ticks since boot.
func (l DefaultLiveness) processAlive(pid int, start uint64) (bool, error) {
	root := l.ProcRoot
	if root == "" {
		root = "/proc"
	}
	b, err := readProcFile(filepath.Join(root, strconv.Itoa(pid), "stat"))
	if isNotExist(err) || errors.Is(err, syscall.ESRCH) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	st, err := parseStat(b)
	if err != nil {
		return false, fmt.Errorf("pid %d: %w", pid, err)
	}
	if st.state == 'Z' || st.state == 'X' {
		return false, nil
	}
	return st.start == start, nil
}

func isNotExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// SelfCreator returns the calling process's pid and start time, for
// Entry.CreatorPID and Entry.CreatorStart. It fails if /proc does not show
// the caller's own pid namespace, since other processes could then not check
// the pid.
func SelfCreator() (pid int, start uint64, err error) {
	pid = os.Getpid()
	b, err := readProcFile("/proc/self/stat")
	if err != nil {
		return 0, 0, fmt.Errorf("idalloc: self creator: %w", err)
	}
	st, err := parseStat(b)
	if err != nil {
		return 0, 0, fmt.Errorf("idalloc: self creator: /proc/self/stat: %w", err)
	}
	if st.pid != pid {
		return 0, 0, fmt.Errorf("idalloc: self creator: /proc/self/stat shows pid %d, not %d: /proc belongs to another pid namespace", st.pid, pid)
	}
	return pid, st.start, nil
}

type procStat struct {
	pid   int
	state byte
	start uint64
}

// parseStat extracts pid (field 1), state (field 3) and starttime (field 22)
// from a /proc/<pid>/stat line. The command name (field 2) is in parentheses
// and may itself contain spaces and parentheses, so fields are counted from
// the last ')'.
func parseStat(b []byte) (procStat, error) {
	open := bytes.IndexByte(b, '(')
	closing := bytes.LastIndexByte(b, ')')
	if open < 0 || closing < open {
		return procStat{}, errors.New("malformed stat line: no command name")
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b[:open])))
	if err != nil {
		return procStat{}, fmt.Errorf("malformed stat line: pid: %w", err)
	}
	rest := bytes.Fields(b[closing+1:])
	// rest[0] is field 3 (state), so field 22 (starttime) is rest[19].
	if len(rest) < 20 || len(rest[0]) != 1 {
		return procStat{}, fmt.Errorf("malformed stat line: %d fields after the command name", len(rest))
	}
	start, err := strconv.ParseUint(string(rest[19]), 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("malformed stat line: starttime: %w", err)
	}
	return procStat{pid: pid, state: rest[0][0], start: start}, nil
}
