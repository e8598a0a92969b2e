//go:build linux

package idalloc

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// lockExclusive opens (creating it if needed) the lock file at path and takes
// an exclusive flock on it, waiting as long as it takes. The returned function
// drops the lock. The kernel drops it too if the process dies.
func lockExclusive(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600) // O_CLOEXEC is implied
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := flock(f, unix.LOCK_EX); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() {
		// Unlock explicitly: a child forked (but not yet exec'd) by another
		// goroutine shares the open file description and would otherwise
		// keep the lock until it execs.
		_ = flock(f, unix.LOCK_UN)
		_ = f.Close()
	}, nil
}

func flock(f *os.File, how int) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) {
		for {
			ferr = unix.Flock(int(fd), how)
			if ferr != unix.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	if ferr != nil {
		return os.NewSyscallError("flock", ferr)
	}
	return nil
}

// readProcFile reads a (small) file under /proc, retrying on EINTR.
func readProcFile(path string) ([]byte, error) {
	for {
		b, err := os.ReadFile(path)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		return b, err
	}
}
