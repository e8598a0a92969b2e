// Package mountns runs mount operations inside another process's mount namespace, from a
// multi-threaded Go program, on fds the caller resolved beforehand.
package mountns

import (
	"fmt"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// Do runs fn on a thread of its own that has joined the mount namespace nsFD, has rootFD as
// its root and cwdFD as its working directory. The thread is never handed back to the Go
// scheduler: it exits when fn returns. With the host's /proc as cwdFD, FDPath names this
// process's fds from inside the other namespace.
func Do(nsFD, rootFD, cwdFD int, fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: the thread leaves with this goroutine.
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			done <- fmt.Errorf("unshare(CLONE_FS): %w", err)
			return
		}
		if err := unix.Setns(nsFD, unix.CLONE_NEWNS); err != nil {
			done <- fmt.Errorf("joining the mount namespace: %w", err)
			return
		}
		if err := unix.Fchdir(rootFD); err != nil {
			done <- err
			return
		}
		if err := unix.Chroot("."); err != nil {
			done <- fmt.Errorf("chroot: %w", err)
			return
		}
		if err := unix.Fchdir(cwdFD); err != nil {
			done <- err
			return
		}
		done <- fn()
	}()
	return <-done
}

// FDPath names fd of this process relative to the host's /proc (Do's cwdFD).
func FDPath(fd int) string { return "self/fd/" + strconv.Itoa(fd) }
