package main

import (
	"errors"
	"os"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A child started with this variable set exits at once (see TestMain).
const exitNowEnv = "ECI_PAUSE_TEST_EXIT_NOW"

func TestMain(m *testing.M) {
	if os.Getenv(exitNowEnv) == "1" {
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestWait(t *testing.T) {
	for _, tc := range []struct {
		name  string
		in    []os.Signal
		want  os.Signal
		reaps int
	}{
		{"term", []os.Signal{unix.SIGTERM}, unix.SIGTERM, 0},
		{"int", []os.Signal{unix.SIGINT}, unix.SIGINT, 0},
		{"children then term", []os.Signal{unix.SIGCHLD, unix.SIGCHLD, unix.SIGTERM, unix.SIGCHLD}, unix.SIGTERM, 2},
		{"closed", []os.Signal{unix.SIGCHLD}, nil, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sigs := make(chan os.Signal, len(tc.in))
			for _, s := range tc.in {
				sigs <- s
			}
			close(sigs)
			reaps := 0
			got := wait(sigs, func() { reaps++ })
			if got != tc.want || reaps != tc.reaps {
				t.Errorf("wait() = %v after %d reaps, want %v after %d", got, reaps, tc.want, tc.reaps)
			}
		})
	}
}

// TestReapAll leaves a real zombie child and checks reapAll collects it. Not parallel:
// reapAll waits for any child of the test process.
func TestReapAll(t *testing.T) {
	if n := reapAll(); n != 0 {
		t.Fatalf("reapAll() with no children = %d, want 0", n)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p, err := os.StartProcess(self, []string{self}, &os.ProcAttr{
		Env:   append(os.Environ(), exitNowEnv+"=1"),
		Files: []*os.File{nil, os.Stderr, os.Stderr},
	})
	if err != nil {
		t.Fatal(err)
	}
	pid := p.Pid
	// The pidfd turns readable when the child has exited (it is then a zombie).
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatalf("pidfd_open(%d): %v", pid, err)
	}
	defer unix.Close(pidfd)
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, int((30 * time.Second).Milliseconds()))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || n == 0 {
			t.Fatalf("child %d did not exit within 30s (poll: %d, %v)", pid, n, err)
		}
		break
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err != nil {
		t.Fatalf("zombie %d should still exist before reapAll: %v", pid, err)
	}
	if n := reapAll(); n != 1 {
		t.Fatalf("reapAll() = %d, want 1", n)
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("child %d still exists after reapAll: %v", pid, err)
	}
}
