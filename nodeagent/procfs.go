package nodeagent

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/eci-dev/eci/nodeagent/procfsd"
	"github.com/eci-dev/eci/procemu/procfs"
	"github.com/eci-dev/eci/runtime/config"
)

// runProcfs is `eci-node procfs`: the holder of the /proc and /sys emulation.
func runProcfs(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("eci-node procfs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	hostRoot := fs.String("host-root", "/host", "where the host's / is mounted in this container")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil)).With("component", "procfs")
	rc, err := config.LoadFile(filepath.Join(*hostRoot, config.DefaultPath))
	if err != nil {
		return fmt.Errorf("eci-runtime's settings on the host: %w", err)
	}
	if err := procfsd.EscapeCgroups(*hostRoot); err != nil {
		// It still serves; it may just not outlive this eci-node container.
		log.Warn("could not leave eci-node's cgroups", "err", err)
	}
	cg, err := os.ReadFile("/proc/1/cgroup")
	if err != nil {
		return err
	}
	target := filepath.Join(rc.RunDir, procfsd.MountDir)
	fd, err := procfsd.MountFUSE(*hostRoot, target)
	if err != nil {
		return err
	}
	srv := &procfs.Server{
		Resolver: procfsd.RecordResolver{HostRoot: *hostRoot, RunDir: rc.RunDir, Controllers: procfsd.Controllers(cg)},
		Root:     *hostRoot,
	}
	fsrv, err := srv.Mount("/dev/fd/" + strconv.Itoa(fd))
	if err != nil {
		_ = procfsd.UnmountFUSE(*hostRoot, target)
		return err
	}
	pidFile := filepath.Join(*hostRoot, rc.RunDir, procfsd.PIDFile)
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		log.Warn("writing the pid file", "path", pidFile, "err", err)
	}
	log.Info("serving /proc and /sys emulation", "mount", target, "pid", os.Getpid())
	go func() {
		<-ctx.Done()
		log.Info("stopping: unmounting", "mount", target)
		_ = procfsd.UnmountFUSE(*hostRoot, target)
		_ = fsrv.Unmount()
	}()
	fsrv.Wait()
	_ = os.Remove(pidFile)
	return nil
}

// ensureProcfs starts the /proc emulation's holder unless one is running.
func ensureProcfs(hostRoot string, log *slog.Logger) {
	ensureHolder(hostRoot, "procfs", "proc emulation", procfsd.PIDFile, log)
}

// ensureHolder starts `eci-node <command>` as a holder process unless one is running: a
// running one keeps serving (an eci-node restart or upgrade leaves it alone). The holder
// leaves eci-node's session and cgroups, logs to <runDir>/<command>.log, and writes its
// pid to <runDir>/<pidName>.
func ensureHolder(hostRoot, command, what, pidName string, log *slog.Logger) {
	rc, err := config.LoadFile(filepath.Join(hostRoot, config.DefaultPath))
	if err != nil {
		log.Error(what+" not started: eci-runtime's settings", "err", err)
		return
	}
	pidFile := filepath.Join(hostRoot, rc.RunDir, pidName)
	if pid := procfsd.Alive("/proc", pidFile, command); pid != 0 {
		log.Info(what+" already running", "pid", pid)
		return
	}
	if err := os.MkdirAll(filepath.Join(hostRoot, rc.RunDir), 0o700); err != nil {
		log.Error(what+" not started", "err", err)
		return
	}
	logFile, err := os.OpenFile(filepath.Join(hostRoot, rc.RunDir, command+".log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		log.Error(what+" not started", "err", err)
		return
	}
	defer logFile.Close()
	cmd := exec.Command("/proc/self/exe", command, "--host-root", hostRoot)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		log.Error(what+" not started", "err", err)
		return
	}
	go func() { _ = cmd.Wait() }()
	log.Info(what+" started", "pid", cmd.Process.Pid)
}
