// Command pause is the pod sandbox process of eci's test images (/pause in
// localhost/eci-test/pause, built by mkimage). It holds the pod's namespaces, blocks until
// SIGTERM or SIGINT and then exits 0. As PID 1 of the pod's pid namespace it reaps every
// zombie reparented to it.
package main

import (
	"os"
	"os/signal"

	"golang.org/x/sys/unix"
)

func main() {
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, unix.SIGTERM, unix.SIGINT, unix.SIGCHLD)
	reapAll() // children that exited before Notify sent no SIGCHLD we could see
	wait(sigs, func() { reapAll() })
	os.Exit(0)
}

// wait consumes signals until SIGTERM or SIGINT, which it returns; every SIGCHLD calls reap.
// It returns nil if sigs is closed.
func wait(sigs <-chan os.Signal, reap func()) os.Signal {
	for s := range sigs {
		if s == unix.SIGCHLD {
			reap()
			continue
		}
		return s
	}
	return nil
}

// reapAll collects every exited child without blocking and returns how many it collected.
// SIGCHLDs coalesce, so one signal may stand for many children.
func reapAll() int {
	n := 0
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil || pid <= 0 { // ECHILD: no children left; 0: none has exited yet
			return n
		}
		n++
	}
}
