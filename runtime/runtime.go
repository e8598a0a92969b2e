// Package runtime is eci-runtime: a runc-compatible OCI runtime that hardens the bundle of
// every container it creates and then runs the pinned runc. Every verb but create, run and
// delete goes to runc untouched; create and run edit config.json first; delete releases the
// container's id range after runc has deleted it.
package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/eci-dev/eci/internal/version"
	"github.com/eci-dev/eci/runtime/cliargs"
)

// Env names.
const (
	// EnvRunc names the runc binary to run, overriding the search.
	EnvRunc = "ECI_RUNC"
	// DefaultRunc is where eci-node installs the pinned runc.
	DefaultRunc = "/opt/eci/bin/runc"
	// DefaultRuncRoot is runc's --root default for root.
	DefaultRuncRoot = "/run/runc"
)

// ExitError carries runc's exit status back to main.
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("runc exited with status %d", e.Code) }

// Options are the process's surroundings, replaceable in tests.
type Options struct {
	Stdout, Stderr io.Writer
	// Executable is eci-runtime's own path ("" means os.Executable()).
	Executable string
}

// FindRunc returns the runc to run: $ECI_RUNC, else the runc next to eci-runtime, else
// /opt/eci/bin/runc.
func FindRunc(self string) (string, error) {
	if p := os.Getenv(EnvRunc); p != "" {
		return p, nil
	}
	var tried []string
	if self != "" {
		sib := filepath.Join(filepath.Dir(self), "runc")
		if isOtherExecutable(sib, self) {
			return sib, nil
		}
		tried = append(tried, sib)
	}
	if isOtherExecutable(DefaultRunc, self) {
		return DefaultRunc, nil
	}
	tried = append(tried, DefaultRunc)
	return "", fmt.Errorf("no runc found: set %s, or install runc at one of %q", EnvRunc, tried)
}

// isOtherExecutable reports whether path is an executable file that is not eci-runtime
// itself (a "runc" symlink to eci-runtime would make it run itself forever).
func isOtherExecutable(path, self string) bool {
	st, err := os.Stat(path)
	if err != nil || !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0 {
		return false
	}
	if self == "" {
		return true
	}
	selfSt, err := os.Stat(self)
	return err != nil || !os.SameFile(st, selfSt)
}

// Run is eci-runtime's main: args are os.Args[1:].
func Run(ctx context.Context, args []string, opts Options) error {
	if opts.Stdout == nil {
		opts.Stdout = os.Stdout
	}
	if opts.Stderr == nil {
		opts.Stderr = os.Stderr
	}
	if opts.Executable == "" {
		opts.Executable, _ = os.Executable()
	}
	inv, err := cliargs.Parse(args)
	if err != nil {
		// Fail closed: a command line eci cannot read is never handed to runc, since it
		// might be a create that would then run unhardened.
		elog := &errorLog{stderr: opts.Stderr, now: time.Now}
		elog.Error(fmt.Errorf("bad command line: %w", err))
		return &ExitError{Code: 1}
	}
	elog := &errorLog{path: inv.Globals.Log, format: inv.Globals.LogFormat, stderr: opts.Stderr, now: time.Now}
	runc, err := FindRunc(opts.Executable)
	if err != nil {
		elog.Error(err)
		return &ExitError{Code: 1}
	}
	r := &runner{runc: runc, args: args, inv: inv, log: elog, opts: opts}
	switch {
	case inv.Verb == "" && inv.Version:
		fmt.Fprintf(opts.Stdout, "eci-runtime version %s\ncommit: %s\nrunc: %s\n", version.Version, version.Commit, runc)
		return r.wait(ctx, r.start(args))
	case inv.Help:
		return r.exec()
	case inv.Verb == "create" || inv.Verb == "run":
		return r.create(ctx)
	case inv.Verb == "delete":
		return r.delete(ctx)
	default:
		return r.exec()
	}
}

// runner runs one eci-runtime invocation.
type runner struct {
	runc string
	args []string
	inv  *cliargs.Invocation
	log  *errorLog
	opts Options
	// started is spooled once runc has created a pod's sandbox: the pod's status then says
	// which policy and generation it started under.
	started func()
	// created runs once runc has created the container, before it is started (the
	// per-pod /proc/sys knobs are bound then).
	created func()
}

// fail logs err where containerd reads runc's errors and returns exit status 1.
func (r *runner) fail(err error) error {
	r.log.Error(err)
	return &ExitError{Code: 1}
}

func (r *runner) runcRoot() string {
	if r.inv.Globals.Root == "" {
		return DefaultRuncRoot
	}
	if abs, err := filepath.Abs(r.inv.Globals.Root); err == nil {
		return abs
	}
	return r.inv.Globals.Root
}

// containerExists reports whether runc still has state for id.
func (r *runner) containerExists(id string) bool {
	_, err := os.Lstat(filepath.Join(r.runcRoot(), id))
	return !errors.Is(err, os.ErrNotExist)
}
