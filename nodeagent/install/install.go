// Package install puts eci on a node and takes it off again: host check, binaries, the CRI's
// handler registration, a CRI restart, a check that the handler is live, and the node label
// the RuntimeClass selects on. Every step that fails undoes the ones before it, so the node
// is left as it was; uninstall reverses every step.
package install

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/eci-dev/eci/internal/atomicfile"
	"github.com/eci-dev/eci/nodeagent/hostcheck"
	"github.com/eci-dev/eci/nodeagent/kube"
	"github.com/eci-dev/eci/nodeagent/procfsd"
	"github.com/eci-dev/eci/runtime/config"
	"github.com/eci-dev/eci/runtime/policy"
)

// CRI is what the installer asks the container runtime.
type CRI interface {
	Version(ctx context.Context) (name, version string, err error)
	Handlers(ctx context.Context) (map[string]bool, error)
}

// CRIConfig registers and removes the eci handler in the CRI's configuration. Changed says
// whether a file changed (and so whether the CRI must restart).
type CRIConfig interface {
	Install(criVersion string) (changed bool, what string, err error)
	Uninstall() (changed bool, what string, err error)
}

// Restarter restarts the CRI.
type Restarter interface {
	Restart(ctx context.Context) error
	String() string
}

// Node is the node's API object.
type Node interface {
	SetLabel(ctx context.Context, key, value string) error
	Get(ctx context.Context) (*corev1.Node, error)
}

// Options say where things are.
type Options struct {
	HostRoot   string // the host's / as this process sees it ("/host" in the pod)
	Artifacts  string // directory holding eci-runtime and runc to install
	InstallDir string // host path the binaries go to (/opt/eci/bin)
	RuncRoot   string // host path of the eci handler's runc state (/run/containerd/runc-eci)
	CRI        string // auto, containerd or crio
	Handler    string // the runtime handler name ("eci")
	// HandlerTimeout bounds the wait for the CRI and the kubelet to report the handler.
	HandlerTimeout time.Duration
	// PollInterval is how often the installer re-checks while waiting.
	PollInterval time.Duration
}

// Binaries are the files installed into InstallDir.
var Binaries = []string{"eci-runtime", "runc"}

// Installer runs the install and uninstall pipelines.
type Installer struct {
	Opts      Options
	CRIFor    func(socket string) CRI // socket as the agent sees it (host root included)
	Config    func(cri string) (CRIConfig, error)
	Restarter Restarter
	Node      Node
	Log       *slog.Logger
}

func (i *Installer) host(p string) string { return filepath.Join(i.Opts.HostRoot, p) }

// lock takes the node-wide install lock, so two installers never race.
func (i *Installer) lock() (func(), error) {
	dir := i.host("/run/eci")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, "install.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", f.Name(), err)
	}
	return func() { _ = unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }, nil
}

// StepError names the install step that failed.
type StepError struct {
	Step string
	Err  error
}

func (e *StepError) Error() string { return e.Step + ": " + e.Err.Error() }
func (e *StepError) Unwrap() error { return e.Err }

// Install puts eci on the node. On failure everything done so far is undone and the error
// names the step.
func (i *Installer) Install(ctx context.Context) (retErr error) {
	unlock, err := i.lock()
	if err != nil {
		return &StepError{"lock", err}
	}
	defer unlock()
	var undo []func() error
	defer func() {
		if retErr == nil {
			return
		}
		for k := len(undo) - 1; k >= 0; k-- {
			if err := undo[k](); err != nil {
				retErr = fmt.Errorf("%w (undo also failed: %v)", retErr, err)
			}
		}
	}()
	step := func(name string, f func() error) error {
		i.Log.Info("install step", "step", name)
		if err := f(); err != nil {
			return &StepError{name, err}
		}
		return nil
	}

	var report hostcheck.Report
	if err := step("check host", func() (err error) {
		report, err = hostcheck.Check(i.Opts.HostRoot, i.Opts.CRI)
		return err
	}); err != nil {
		return err
	}
	i.Log.Info("host", "kernel", report.Kernel, "cri", report.CRI, "socket", report.Socket, "cgroupV2", report.CgroupV2)
	cri := i.CRIFor(i.host(report.Socket))
	var criName, criVersion string
	if err := step("ask the CRI its version", func() (err error) {
		criName, criVersion, err = cri.Version(ctx)
		return err
	}); err != nil {
		return err
	}
	i.Log.Info("cri", "name", criName, "version", criVersion)

	if err := step("label node installing", func() error {
		return i.Node.SetLabel(ctx, kube.LabelRuntime, "installing")
	}); err != nil {
		return err
	}
	undo = append(undo, func() error { return i.Node.SetLabel(context.WithoutCancel(ctx), kube.LabelRuntime, "") })

	if err := step("copy binaries", func() error {
		restore, err := i.copyBinaries()
		undo = append(undo, restore)
		return err
	}); err != nil {
		return err
	}

	conf, err := i.Config(report.CRI)
	if err != nil {
		return &StepError{"read CRI config", err}
	}
	var changed bool
	if err := step("register the "+i.Opts.Handler+" handler", func() error {
		var what string
		changed, what, err = conf.Install(criVersion)
		if changed {
			undo = append(undo, func() error {
				_, _, err := conf.Uninstall()
				if err == nil {
					err = i.restartCRI(context.WithoutCancel(ctx), cri)
				}
				return err
			})
		}
		i.Log.Info("cri config", "changed", changed, "what", what)
		return err
	}); err != nil {
		return err
	}
	if changed {
		if err := step("restart the CRI ("+i.Restarter.String()+")", func() error { return i.restartCRI(ctx, cri) }); err != nil {
			return err
		}
	}
	if err := step("confirm the handler is live", func() error { return i.waitHandler(ctx, cri, true) }); err != nil {
		return err
	}
	return step("label node ready", func() error { return i.Node.SetLabel(ctx, kube.LabelRuntime, "ready") })
}

// Uninstall takes eci off the node: label, handler registration (byte-identical config),
// CRI restart, binaries (kept while eci containers still exist: their shims call them).
func (i *Installer) Uninstall(ctx context.Context) error {
	unlock, err := i.lock()
	if err != nil {
		return &StepError{"lock", err}
	}
	defer unlock()
	if err := i.Node.SetLabel(ctx, kube.LabelRuntime, "uninstalling"); err != nil {
		return &StepError{"label node uninstalling", err}
	}
	report, err := hostcheck.Check(i.Opts.HostRoot, i.Opts.CRI)
	if report.CRI == "" {
		return &StepError{"check host", err}
	}
	cri := i.CRIFor(i.host(report.Socket))
	conf, err := i.Config(report.CRI)
	if err != nil {
		return &StepError{"read CRI config", err}
	}
	changed, what, err := conf.Uninstall()
	if err != nil {
		return &StepError{"unregister the handler", err}
	}
	i.Log.Info("cri config", "changed", changed, "what", what)
	if changed {
		if err := i.restartCRI(ctx, cri); err != nil {
			return &StepError{"restart the CRI", err}
		}
	}
	if err := i.waitHandler(ctx, cri, false); err != nil {
		return &StepError{"confirm the handler is gone", err}
	}
	if left := i.remainingContainers(); len(left) > 0 {
		i.Log.Warn("keeping eci binaries: eci containers still exist and their shims need them", "containers", len(left), "runcRoot", i.Opts.RuncRoot)
	} else {
		for _, b := range Binaries {
			if err := os.Remove(i.host(filepath.Join(i.Opts.InstallDir, b))); err != nil && !os.IsNotExist(err) {
				return &StepError{"remove binaries", err}
			}
		}
		_ = os.Remove(i.host(i.Opts.InstallDir))
		// The policy files and the report spool eci-node kept for eci-runtime, and the
		// /proc emulation's holder (it unmounts itself on SIGTERM).
		if cfg, err := config.LoadFile(i.host(config.DefaultPath)); err == nil {
			if pid := procfsd.Alive("/proc", i.host(filepath.Join(cfg.RunDir, procfsd.PIDFile)), "procfs"); pid != 0 {
				if err := unix.Kill(pid, unix.SIGTERM); err != nil {
					return &StepError{"stop the proc emulation", err}
				}
				i.Log.Info("proc emulation stopped", "pid", pid)
			}
			// The seccomp-notify supervisor: no eci container is left for it to serve.
			if pid := procfsd.Alive("/proc", i.host(filepath.Join(cfg.RunDir, "supervisor.pid")), "supervisor"); pid != 0 {
				if err := unix.Kill(pid, unix.SIGTERM); err != nil {
					return &StepError{"stop the supervisor", err}
				}
				i.Log.Info("supervisor stopped", "pid", pid)
			}
			for _, dir := range []string{policy.Dir(cfg.RunDir), policy.SpoolDir(cfg.RunDir)} {
				if err := os.RemoveAll(i.host(dir)); err != nil {
					return &StepError{"remove policy files", err}
				}
			}
		}
	}
	if err := i.Node.SetLabel(ctx, kube.LabelRuntime, ""); err != nil {
		return &StepError{"remove the node label", err}
	}
	return nil
}

func (i *Installer) remainingContainers() []os.DirEntry {
	entries, _ := os.ReadDir(i.host(i.Opts.RuncRoot))
	return entries
}

// copyBinaries installs each binary by writing a temp file and renaming it over the old one:
// a running binary is never rewritten in place. The returned func restores what was there.
func (i *Installer) copyBinaries() (restore func() error, err error) {
	dir := i.host(i.Opts.InstallDir)
	var restores []func() error
	restore = func() error {
		var errs []error
		for k := len(restores) - 1; k >= 0; k-- {
			errs = append(errs, restores[k]())
		}
		return errors.Join(errs...)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return restore, err
	}
	for _, b := range Binaries {
		src, dst := filepath.Join(i.Opts.Artifacts, b), filepath.Join(dir, b)
		data, err := os.ReadFile(src)
		if err != nil {
			return restore, fmt.Errorf("reading %s from the image: %w", src, err)
		}
		old, oldErr := os.ReadFile(dst)
		if oldErr == nil && bytes.Equal(old, data) {
			continue
		}
		if err := writeExecutable(dst, data); err != nil {
			return restore, fmt.Errorf("installing %s: %w", dst, err)
		}
		if oldErr == nil {
			restores = append(restores, func() error { return writeExecutable(dst, old) })
		} else {
			restores = append(restores, func() error { return os.Remove(dst) })
		}
	}
	return restore, nil
}

func writeExecutable(dst string, data []byte) error {
	return atomicfile.Write(dst, data, 0o755, true)
}

// restartCRI restarts the CRI and waits until it answers again.
func (i *Installer) restartCRI(ctx context.Context, cri CRI) error {
	if err := i.Restarter.Restart(ctx); err != nil {
		return err
	}
	return i.poll(ctx, "the CRI to answer after its restart", func() bool {
		_, _, err := cri.Version(ctx)
		return err == nil
	})
}

// waitHandler waits until the CRI and the kubelet (Node status.runtimeHandlers) agree that
// the handler is served (want) or gone.
func (i *Installer) waitHandler(ctx context.Context, cri CRI, want bool) error {
	h := i.Opts.Handler
	if err := i.poll(ctx, fmt.Sprintf("the CRI to report handler %q served=%v", h, want), func() bool {
		handlers, err := cri.Handlers(ctx)
		_, ok := handlers[h]
		return err == nil && ok == want
	}); err != nil {
		return err
	}
	return i.poll(ctx, fmt.Sprintf("the kubelet to report handler %q in Node status.runtimeHandlers (served=%v)", h, want), func() bool {
		node, err := i.Node.Get(ctx)
		if err != nil {
			return false
		}
		ok, _ := kube.HandlerReported(node, h)
		return ok == want
	})
}

func (i *Installer) poll(ctx context.Context, what string, cond func() bool) error {
	timeout := i.Opts.HandlerTimeout
	if timeout == 0 {
		timeout = 2 * time.Minute
	}
	interval := i.Opts.PollInterval
	if interval == 0 {
		interval = time.Second
	}
	err := wait.PollUntilContextTimeout(ctx, interval, timeout, true, func(context.Context) (bool, error) { return cond(), nil })
	if err != nil {
		return fmt.Errorf("timed out after %s waiting for %s", timeout, what)
	}
	return nil
}
