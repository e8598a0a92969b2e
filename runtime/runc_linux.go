//go:build linux

package runtime

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	goruntime "runtime"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// exec replaces eci-runtime with runc: same argv, environment, stdio, pid, and so the same
// exit status and signals.
func (r *runner) exec() error {
	argv := append([]string{r.runc}, r.args...)
	err := syscall.Exec(r.runc, argv, os.Environ())
	return r.fail(fmt.Errorf("exec %s: %w", r.runc, err))
}

// inheritedFDs lists, for each fd from 0 up to the highest inherited one, the fd itself if
// the caller handed it to us (not close-on-exec) or -1 to leave it closed, so a forked runc
// gets exactly the fds runc would have had (--preserve-fds, LISTEN_FDS, console).
func inheritedFDs() []uintptr {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return []uintptr{0, 1, 2}
	}
	open := map[int]bool{}
	highest := 2
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err != nil || flags&unix.FD_CLOEXEC != 0 {
			continue
		}
		open[fd] = true
		highest = max(highest, fd)
	}
	files := make([]uintptr, highest+1)
	for fd := range files {
		if open[fd] || fd <= 2 {
			files[fd] = uintptr(fd)
		} else {
			files[fd] = ^uintptr(0)
		}
	}
	return files
}

// forwardedSignals are passed on to runc (for run, on to the container).
var forwardedSignals = []os.Signal{
	syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT,
	syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH,
}

type child struct {
	pid int
	err error
}

// start runs runc as a child with args and the inherited fds. The child dies with us.
func (r *runner) start(args []string) child {
	// Pdeathsig fires when the forking thread exits, not the process: keep this goroutine on
	// its thread for the rest of eci-runtime's short life.
	goruntime.LockOSThread()
	pid, err := syscall.ForkExec(r.runc, append([]string{r.runc}, args...), &syscall.ProcAttr{
		Env:   os.Environ(),
		Files: inheritedFDs(),
		Sys:   &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL},
	})
	return child{pid: pid, err: err}
}

// wait forwards signals to the child until it exits, and returns its status as an
// ExitError (nil for 0).
func (r *runner) wait(ctx context.Context, c child) error {
	if c.err != nil {
		return r.fail(fmt.Errorf("starting %s: %w", r.runc, c.err))
	}
	sigs := make(chan os.Signal, 16)
	// A fixed list: notifying on every signal costs milliseconds per call.
	signal.Notify(sigs, forwardedSignals...)
	defer signal.Stop(sigs)
	done := make(chan syscall.WaitStatus, 1)
	go func() {
		var ws syscall.WaitStatus
		for {
			_, err := syscall.Wait4(c.pid, &ws, 0, nil)
			if err != syscall.EINTR {
				break
			}
		}
		done <- ws
	}()
	ctxDone := ctx.Done()
	for {
		select {
		case s := <-sigs:
			_ = syscall.Kill(c.pid, s.(syscall.Signal))
		case <-ctxDone:
			_ = syscall.Kill(c.pid, syscall.SIGKILL)
			ctxDone = nil
		case ws := <-done:
			switch {
			case ws.Exited() && ws.ExitStatus() == 0:
				return nil
			case ws.Exited():
				return &ExitError{Code: ws.ExitStatus()}
			case ws.Signaled():
				return &ExitError{Code: 128 + int(ws.Signal())}
			}
			return &ExitError{Code: 1}
		}
	}
}
