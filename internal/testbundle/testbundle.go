//go:build linux

// Package testbundle builds real OCI bundles (a busybox-static rootfs and a runc-style
// spec) and drives a runc-compatible runtime through a container's lifecycle, for the
// privileged tests and the benchmarks.
package testbundle

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Busybox is the static busybox the rootfs is built from (Debian's busybox-static).
const Busybox = "/bin/busybox"

var applets = []string{
	"sh", "cat", "echo", "id", "ls", "mkdir", "mount", "umount", "sleep", "stat", "touch", "true",
	"false", "test", "grep", "head", "dd", "unshare", "nproc", "free", "sysctl", "ps", "wc", "rm",
}

// BuildRootfs fills dir with a busybox rootfs; extra maps rootfs paths to host files to copy
// in (for test binaries).
func BuildRootfs(dir string, extra map[string]string) error {
	for _, d := range []string{"bin", "proc", "sys", "dev", "tmp", "etc", "mnt", "vol"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.Chmod(filepath.Join(dir, "tmp"), 0o1777); err != nil {
		return err
	}
	if _, err := os.Stat(Busybox); err != nil {
		return fmt.Errorf("%s is missing (install Debian's busybox-static: make deps): %w", Busybox, err)
	}
	files := map[string]string{"/bin/busybox": Busybox}
	for k, v := range extra {
		files[k] = v
	}
	for dst, src := range files {
		if err := copyFile(src, filepath.Join(dir, dst), 0o755); err != nil {
			return err
		}
	}
	for _, a := range applets {
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", a)); err != nil && !os.IsExist(err) {
			return err
		}
	}
	return os.WriteFile(filepath.Join(dir, "etc", "passwd"), []byte("root:x:0:0:root:/:/bin/sh\n"), 0o644)
}

func copyFile(src, dst string, perm os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// Spec is runc's default spec (`runc spec`) running args, without a terminal.
func Spec(args ...string) *specs.Spec {
	caps := []string{"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"}
	return &specs.Spec{
		Version: specs.Version,
		Process: &specs.Process{
			User: specs.User{}, Args: args, Cwd: "/",
			Env:             []string{"PATH=/bin", "HOME=/"},
			Capabilities:    &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps},
			Rlimits:         []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024}},
			NoNewPrivileges: true,
		},
		Root:     &specs.Root{Path: "rootfs"},
		Hostname: "eci-test",
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		},
		Linux: &specs.Linux{
			Resources: &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}},
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.NetworkNamespace}, {Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace}, {Type: specs.MountNamespace},
			},
			MaskedPaths: []string{"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
				"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"},
			ReadonlyPaths: []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
		},
	}
}

// AllCaps are every capability a privileged container gets.
var AllCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
	"CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
	"CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
	"CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG",
	"CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
	"CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND",
	"CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
}

// Privileged turns s into what containerd makes of a `privileged: true` container: every
// capability, every host device, an allow-all device cgroup, /sys read-write, no masked or
// read-only paths, no seccomp and no AppArmor.
func Privileged(s *specs.Spec) error {
	s.Process.Capabilities = &specs.LinuxCapabilities{Bounding: AllCaps, Effective: AllCaps, Permitted: AllCaps}
	s.Process.NoNewPrivileges = false
	s.Linux.MaskedPaths, s.Linux.ReadonlyPaths, s.Linux.Seccomp = nil, nil, nil
	s.Linux.Resources.Devices = []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
	for i := range s.Mounts {
		if s.Mounts[i].Destination == "/sys" {
			s.Mounts[i].Options = []string{"nosuid", "noexec", "nodev", "rw"}
		}
	}
	devs, err := HostDevices()
	if err != nil {
		return err
	}
	s.Linux.Devices = devs
	return nil
}

// HostDevices lists the host's /dev device nodes (top level), as containerd does for
// privileged containers.
func HostDevices() ([]specs.LinuxDevice, error) {
	entries, err := os.ReadDir("/dev")
	if err != nil {
		return nil, err
	}
	var out []specs.LinuxDevice
	for _, e := range entries {
		p := filepath.Join("/dev", e.Name())
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			continue
		}
		var typ string
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFBLK:
			typ = "b"
		case unix.S_IFCHR:
			typ = "c"
		default:
			continue
		}
		mode := os.FileMode(st.Mode & 0o777)
		uid, gid := st.Uid, st.Gid
		out = append(out, specs.LinuxDevice{Path: p, Type: typ, Major: int64(unix.Major(st.Rdev)), Minor: int64(unix.Minor(st.Rdev)), FileMode: &mode, UID: &uid, GID: &gid})
	}
	return out, nil
}

// Bundle is a bundle directory: config.json and rootfs/.
type Bundle struct {
	Dir  string
	Spec *specs.Spec
}

// Rootfs is the bundle's rootfs path.
func (b *Bundle) Rootfs() string { return filepath.Join(b.Dir, "rootfs") }

// New makes a bundle in dir (created, mode 0711 on it and its parents up to an existing
// directory so a user-namespaced root can reach the rootfs), building the rootfs.
func New(dir string, spec *specs.Spec, extra map[string]string) (*Bundle, error) {
	if err := os.MkdirAll(filepath.Join(dir, "rootfs"), 0o711); err != nil {
		return nil, err
	}
	if err := MakeTraversable(dir); err != nil {
		return nil, err
	}
	b := &Bundle{Dir: dir, Spec: spec}
	if err := BuildRootfs(b.Rootfs(), extra); err != nil {
		return nil, err
	}
	return b, b.Write()
}

// MakeTraversable adds o+x to dir and each parent that lacks it (t.TempDir is 0700).
func MakeTraversable(dir string) error {
	for d := dir; d != "/" && d != "."; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return err
		}
		if st.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(d, st.Mode().Perm()|0o011); err != nil {
				return err
			}
		}
	}
	return nil
}

// Write stores the spec as config.json.
func (b *Bundle) Write() error {
	data, err := json.MarshalIndent(b.Spec, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(b.Dir, "config.json"), data, 0o644)
}

// Runtime drives a runc-compatible binary with its own --root.
type Runtime struct {
	Binary string
	Root   string
	Env    []string // extra environment (ECI_CONFIG=...)
}

// Run runs one runtime command and returns its combined output.
func (r Runtime) Run(args ...string) (string, error) {
	cmd := exec.Command(r.Binary, append([]string{"--root", r.Root}, args...)...)
	cmd.Env = append(os.Environ(), r.Env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", filepath.Base(r.Binary), strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// Create runs `create` with the container's stdout and stderr going to stdio (nil: the
// bundle's <id>.out file) and returns the container's init pid. Only files are handed
// over: a pipe would be held open by the container.
func (r Runtime) Create(id string, b *Bundle, stdio *os.File) (int, error) {
	pidFile := filepath.Join(b.Dir, id+".pid")
	logFile := filepath.Join(b.Dir, id+".log.json")
	if stdio == nil {
		f, err := os.Create(filepath.Join(b.Dir, id+".out"))
		if err != nil {
			return 0, err
		}
		defer f.Close()
		stdio = f
	}
	cmd := exec.Command(r.Binary, "--root", r.Root, "--log", logFile, "--log-format", "json",
		"create", "--bundle", b.Dir, "--pid-file", pidFile, id)
	cmd.Env = append(os.Environ(), r.Env...)
	cmd.Stdout, cmd.Stderr = stdio, stdio
	if err := cmd.Run(); err != nil {
		logData, _ := os.ReadFile(logFile)
		return 0, fmt.Errorf("%s create %s: %w: %s", filepath.Base(r.Binary), id, err, strings.TrimSpace(string(logData)))
	}
	data, err := os.ReadFile(pidFile)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(data)))
}

// Start starts a created container.
func (r Runtime) Start(id string) error {
	_, err := r.Run("start", id)
	return err
}

// Delete force-deletes a container.
func (r Runtime) Delete(id string) error {
	_, err := r.Run("delete", "--force", id)
	return err
}

// BecomeSubreaper makes the calling process adopt orphaned container processes, so Wait
// can reap a container's init after runc create has exited.
func BecomeSubreaper() error {
	return unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
}

// Wait waits for a container's init (adopted through BecomeSubreaper) to exit and returns
// its exit status.
func Wait(pid int, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	for {
		var ws syscall.WaitStatus
		got, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
		switch {
		case err == syscall.EINTR:
			continue
		case err != nil:
			return -1, fmt.Errorf("wait for pid %d: %w", pid, err)
		case got == pid:
			if ws.Signaled() {
				return 128 + int(ws.Signal()), nil
			}
			return ws.ExitStatus(), nil
		}
		if time.Now().After(deadline) {
			return -1, fmt.Errorf("pid %d still running after %s", pid, timeout)
		}
		// Block on a pidfd rather than sleeping: it becomes readable when the process exits.
		fd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			continue // already exited: the next Wait4 reaps it
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		_, _ = unix.Poll(fds, int(time.Until(deadline).Milliseconds())+1)
		unix.Close(fd)
	}
}
