// Package procfsd runs eci's /proc and /sys emulation on a node: the FUSE server
// (procemu/procfs) in a small holder process, `eci-node procfs`, that eci-node starts and
// that outlives eci-node's restarts and upgrades, so running pods never see "Transport
// endpoint is not connected".
//
// The holder leaves eci-node's cgroups for the root of every hierarchy (the runtime kills
// what is left in a container's cgroups when it deletes it), mounts the server at
// <runDir>/procfs in the host's mount namespace (one thread joins it for the mount; the
// server itself only reads /dev/fuse), and records its pid in <runDir>/procfs.pid.
// eci-runtime binds <runDir>/procfs/<container id>/<file> over the container's files when
// it finds the mount live.
package procfsd

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/eci-dev/eci/procemu/procfs"
)

// MountDir is the mount point under the run dir; PIDFile the holder's pid file.
const (
	MountDir = "procfs"
	PIDFile  = "procfs.pid"
)

// RecordResolver finds a container's cgroups from the record eci-runtime keeps for it
// (<runDir>/containers/<id>.json, written before runc starts).
type RecordResolver struct {
	// HostRoot is where the host's / is; RunDir is eci-runtime's run dir on the host.
	HostRoot, RunDir string
	// Controllers are the cgroup v1 controllers of the host ("" alone for cgroup v2).
	Controllers []string
}

// Cgroups implements procfs.Resolver.
func (r RecordResolver) Cgroups(id string) (map[string]string, error) {
	rec, err := r.record(id)
	if err != nil {
		return nil, err
	}
	p, err := ExpandCgroupsPath(rec.CgroupsPath, id)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", id, err)
	}
	out := make(map[string]string, len(r.Controllers))
	for _, c := range r.Controllers {
		out[c] = p
	}
	return out, nil
}

// containerRecord is what the resolver reads of eci-runtime's record of a container.
type containerRecord struct {
	CgroupsPath string `json:"cgroupsPath"`
	Range       struct {
		Start uint32 `json:"Start"`
	} `json:"range"`
	Pod struct {
		SandboxID string `json:"sandboxID"`
	} `json:"pod"`
}

func (r RecordResolver) record(id string) (containerRecord, error) {
	var rec containerRecord
	data, err := os.ReadFile(filepath.Join(r.HostRoot, r.RunDir, "containers", id+".json"))
	if err != nil {
		return rec, fmt.Errorf("container %s: no eci record: %w", id, err)
	}
	if err := json.Unmarshal(data, &rec); err != nil {
		return rec, fmt.Errorf("container %s: record: %w", id, err)
	}
	return rec, nil
}

// Owner is the container's pod (its sandbox's id: the pod's containers share their
// /proc/sys knobs) and the host uid its root runs as (the start of its id range).
func (r RecordResolver) Owner(id string) (string, uint32, error) {
	rec, err := r.record(id)
	if err != nil {
		return "", 0, err
	}
	pod := rec.Pod.SandboxID
	if pod == "" {
		pod = id
	}
	return pod, rec.Range.Start, nil
}

// ExpandCgroupsPath turns an OCI linux.cgroupsPath into the cgroup path below each
// hierarchy's root: a plain path as is ("" means runc's default /<id>), and the systemd
// driver's "slice:prefix:name" as runc's systemd driver places it.
func ExpandCgroupsPath(p, id string) (string, error) {
	switch {
	case p == "":
		return "/" + id, nil
	case strings.HasPrefix(p, "/"):
		return path.Clean(p), nil
	}
	parts := strings.Split(p, ":")
	if len(parts) != 3 {
		return "", fmt.Errorf("cgroupsPath %q is neither a path nor slice:prefix:name", p)
	}
	slice, err := expandSlice(parts[0])
	if err != nil {
		return "", err
	}
	unit := parts[2]
	if !strings.HasSuffix(unit, ".slice") {
		unit = parts[1] + "-" + unit + ".scope"
	}
	return path.Join(slice, unit), nil
}

// expandSlice is systemd's slice nesting: a-b-c.slice lives in /a.slice/a-b.slice/a-b-c.slice.
func expandSlice(slice string) (string, error) {
	if slice == "" {
		return "/system.slice", nil
	}
	name, ok := strings.CutSuffix(slice, ".slice")
	if !ok || name == "" || strings.Contains(name, "/") {
		return "", fmt.Errorf("%q is not a systemd slice", slice)
	}
	if name == "-" {
		return "/", nil
	}
	var out, prefix string
	for _, comp := range strings.Split(name, "-") {
		if comp == "" {
			return "", fmt.Errorf("%q is not a valid systemd slice name", slice)
		}
		out += "/" + prefix + comp + ".slice"
		prefix += comp + "-"
	}
	return out, nil
}

// Controllers lists the cgroup v1 controllers of a /proc/<pid>/cgroup file, or "" for a
// pure cgroup v2 host.
func Controllers(cgroupFile []byte) []string {
	var out []string
	v2 := false
	sc := bufio.NewScanner(bytes.NewReader(cgroupFile))
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), ":", 3)
		if len(f) != 3 {
			continue
		}
		if f[0] == "0" && f[1] == "" {
			v2 = true
			continue
		}
		for _, c := range strings.Split(f[1], ",") {
			if c != "" && !strings.HasPrefix(c, "name=") {
				out = append(out, c)
			}
		}
	}
	if len(out) == 0 && v2 {
		return []string{""}
	}
	return out
}

// cgroupRoots are the mount points of the host's cgroup hierarchies, from its mountinfo.
func cgroupRoots(mountinfo []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(mountinfo))
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		fstype := strings.Fields(post)
		f := strings.Fields(pre)
		if len(fstype) > 0 && len(f) >= 5 && (fstype[0] == "cgroup" || fstype[0] == "cgroup2") {
			out = append(out, f[4])
		}
	}
	return out
}

// EscapeCgroups moves this process to the root cgroup of every host hierarchy, so that
// deleting eci-node's container does not kill it.
func EscapeCgroups(hostRoot string) error {
	mi, err := os.ReadFile(filepath.Join(hostRoot, "proc", "1", "mountinfo"))
	if err != nil {
		return err
	}
	pid := []byte(strconv.Itoa(os.Getpid()))
	var errs []error
	for _, m := range cgroupRoots(mi) {
		if err := os.WriteFile(filepath.Join(hostRoot, m, "cgroup.procs"), pid, 0); err != nil {
			errs = append(errs, fmt.Errorf("cgroup %s: %w", m, err))
		}
	}
	return errors.Join(errs...)
}

// HostMountNS opens the host's mount namespace, where the CRI and eci-runtime run: that
// of pid 1, or, where pid 1 may not be inspected, that of the process serving the CRI's
// socket (its SO_PEERCRED pid; eci-node shares the host's pid namespace).
func HostMountNS(hostRoot string) (*os.File, error) {
	ns, err := os.Open("/proc/1/ns/mnt")
	if err == nil {
		return ns, nil
	}
	errs := []error{err}
	for _, sock := range []string{"/run/containerd/containerd.sock", "/var/run/crio/crio.sock", "/run/crio/crio.sock"} {
		pid, perr := peerPID(filepath.Join(hostRoot, sock))
		if perr != nil {
			errs = append(errs, perr)
			continue
		}
		ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/mnt", pid))
		if err == nil {
			return ns, nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("finding the host's mount namespace: %w", errors.Join(errs...))
}

// peerPID is the pid of the process listening on a unix socket.
func peerPID(sock string) (int, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: sock}); err != nil {
		return 0, fmt.Errorf("%s: %w", sock, err)
	}
	cred, err := unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", sock, err)
	}
	return int(cred.Pid), nil
}

// inHostMountNS runs f on a thread that has joined the host's mount namespace. The thread
// is never returned to the Go scheduler: it ends with f.
func inHostMountNS(hostRoot string, f func() error) error {
	ns, err := HostMountNS(hostRoot)
	if err != nil {
		return err
	}
	defer ns.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // no Unlock: the thread exits with this goroutine
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			errc <- fmt.Errorf("unshare CLONE_FS: %w", err)
			return
		}
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNS); err != nil {
			errc <- fmt.Errorf("joining the host's mount namespace: %w", err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// FUSEOptions are the mount options of the server's /dev/fuse fd: allow_other (the
// containers' roots are not the mounter), default_permissions (the kernel checks access,
// and asks for expired attributes at open, which the server's caching relies on), and
// max_read as go-fuse's own mounts say it (its buffers hold procfs.MaxRead).
func FUSEOptions(fd int) string {
	return fmt.Sprintf("fd=%d,rootmode=40000,user_id=0,group_id=0,allow_other,default_permissions,max_read=%d", fd, procfs.MaxRead)
}

// MountFUSE opens /dev/fuse and mounts it at target in the host's mount namespace
// (replacing a dead server's mount there), and returns the fd to serve.
func MountFUSE(hostRoot, target string) (int, error) {
	fd, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("opening /dev/fuse: %w", err)
	}
	opts := FUSEOptions(fd)
	err = inHostMountNS(hostRoot, func() error {
		_ = unix.Unmount(target, unix.MNT_DETACH) // a dead holder's mount, if any
		if err := os.MkdirAll(target, 0o755); err != nil {
			return err
		}
		if err := unix.Mount("eci-procfs", target, "fuse.eci-procfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, opts); err != nil {
			return fmt.Errorf("mounting FUSE at %s: %w", target, err)
		}
		return nil
	})
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// UnmountFUSE detaches the mount at target in the host's mount namespace.
func UnmountFUSE(hostRoot, target string) error {
	return inHostMountNS(hostRoot, func() error {
		if err := unix.Unmount(target, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			return err
		}
		return nil
	})
}

// Alive returns the pid of a running holder recorded in pidFile, or 0: the process must be
// running `eci-node <command>` (a reused pid is not taken for the holder).
func Alive(procRoot, pidFile, command string) int {
	data, err := os.ReadFile(pidFile)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return 0
	}
	cmdline, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "cmdline"))
	if err != nil || !bytes.Contains(cmdline, []byte("\x00"+command+"\x00")) {
		return 0
	}
	return pid
}
