//go:build linux

// Command pause is the sandbox ("pause") process of the local cluster harness's
// pods: it sleeps until SIGINT or SIGTERM and reaps orphaned children, as
// PID 1 of a pod that shares its PID namespace must. Built static
// (CGO_ENABLED=0) into the image localhost/eci-test/pause:1.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "-v" || os.Args[1] == "--version") {
		fmt.Println("pause (eci local harness)")
		return
	}
	os.Exit(run())
}

// run waits for a termination signal, reaping exited children meanwhile, and
// returns the exit code.
func run() int {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range sigs {
		if sig == syscall.SIGCHLD {
			reap()
			continue
		}
		return 0
	}
	return 0
}

// reap collects every exited child without blocking.
func reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
	}
}
