// Package restart restarts the node's container runtime the least disruptive way the node
// allows: through systemd over D-Bus, or by signalling the process whose supervisor brings
// it back (the local harness). Running containers survive either way: their shims are
// separate processes.
package restart

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/coreos/go-systemd/v22/dbus"
)

// Restarter restarts the CRI.
type Restarter interface {
	Restart(ctx context.Context) error
	String() string
}

// Parse turns a --cri-restart value into a Restarter: "systemd:<unit>", "signal:<pidfile>"
// or "none". hostRoot prefixes the pid file path.
func Parse(spec, hostRoot string) (Restarter, error) {
	kind, arg, _ := strings.Cut(spec, ":")
	switch kind {
	case "systemd":
		if arg == "" {
			return nil, fmt.Errorf("--cri-restart %q: name the unit, e.g. systemd:containerd.service", spec)
		}
		return Systemd{Unit: arg}, nil
	case "signal":
		if !strings.HasPrefix(arg, "/") {
			return nil, fmt.Errorf("--cri-restart %q: name an absolute pid file, e.g. signal:/run/containerd.pid", spec)
		}
		return Signal{PIDFile: arg, HostRoot: hostRoot}, nil
	case "none":
		return None{}, nil
	}
	return nil, fmt.Errorf("--cri-restart %q: want systemd:<unit>, signal:<pidfile> or none", spec)
}

// Systemd restarts a unit through the host's systemd over D-Bus (no nsenter, no hostPID).
type Systemd struct{ Unit string }

func (s Systemd) String() string { return "systemd unit " + s.Unit }

// Restart restarts the unit and waits for systemd to report the job done.
func (s Systemd) Restart(ctx context.Context) error {
	conn, err := dbus.NewSystemConnectionContext(ctx)
	if err != nil {
		return fmt.Errorf("restarting %s: connecting to systemd: %w", s.Unit, err)
	}
	defer conn.Close()
	done := make(chan string, 1)
	if _, err := conn.RestartUnitContext(ctx, s.Unit, "replace", done); err != nil {
		return fmt.Errorf("restarting %s: %w", s.Unit, err)
	}
	select {
	case result := <-done:
		if result != "done" {
			return fmt.Errorf("restarting %s: systemd job %s", s.Unit, result)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("restarting %s: %w", s.Unit, ctx.Err())
	}
}

// Signal sends SIGTERM to the pid in a pid file; a supervisor on the host restarts the
// process. It needs the host's pid namespace (hostPID).
type Signal struct{ PIDFile, HostRoot string }

func (s Signal) String() string { return "SIGTERM to the pid in " + s.PIDFile }

// Restart signals the process.
func (s Signal) Restart(context.Context) error {
	data, err := os.ReadFile(s.HostRoot + s.PIDFile)
	if err != nil {
		return fmt.Errorf("restarting the CRI: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 1 {
		return fmt.Errorf("restarting the CRI: pid file %s holds %q", s.PIDFile, data)
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return fmt.Errorf("restarting the CRI: signalling pid %d from %s: %w", pid, s.PIDFile, err)
	}
	return nil
}

// None does not restart: the CRI must pick up the change by itself or be restarted by hand.
type None struct{}

func (None) String() string                { return "no restart" }
func (None) Restart(context.Context) error { return nil }
