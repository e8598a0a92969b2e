package runtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/eci-dev/eci/internal/mountns"
	"github.com/eci-dev/eci/procemu"
)

// bindKnobs binds the /proc emulation's per-pod /proc/sys knobs over the created
// container's, before it starts. runc itself refuses mounts inside /proc other than the
// LXCFS ones, so eci-runtime does it: a detached copy of each server file (open_tree),
// attached in the container's mount namespace onto the fd it resolved inside the
// container's root (move_mount). The binds are writable (the server keeps a write
// for the pod and never passes it to the host) and keep the FUSE mount's nosuid, nodev and
// noexec.
func bindKnobs(runcRoot, id, procDir string) error {
	data, err := os.ReadFile(filepath.Join(runcRoot, id, "state.json"))
	if err != nil {
		return err
	}
	var st struct {
		Pid int `json:"init_process_pid"`
	}
	if err := json.Unmarshal(data, &st); err != nil || st.Pid <= 0 {
		return fmt.Errorf("unreadable runc state: %v", err)
	}
	dir := "/proc/" + strconv.Itoa(st.Pid)
	var fds []int
	defer func() {
		for _, fd := range fds {
			_ = unix.Close(fd)
		}
	}()
	open := func(path string, flags int) (int, error) {
		fd, err := unix.Open(path, flags|unix.O_CLOEXEC, 0)
		if err == nil {
			fds = append(fds, fd)
		}
		return fd, err
	}
	root, err := open(dir+"/root", unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return err
	}
	ns, err := open(dir+"/ns/mnt", unix.O_RDONLY)
	if err != nil {
		return err
	}
	hostProc, err := open("/proc", unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return err
	}
	type bind struct{ src, dst int }
	var binds []bind
	for _, k := range procemu.Knobs() {
		dst, err := unix.Openat2(root, k, &unix.OpenHow{Flags: unix.O_PATH | unix.O_NOFOLLOW | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS})
		if errors.Is(err, unix.ENOENT) {
			continue // not a knob this kernel has
		}
		if err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
		fds = append(fds, dst)
		// A detached copy of the server's file (a mount of this namespace cannot be bound
		// into another one), attached below in the container's.
		src, err := unix.OpenTree(unix.AT_FDCWD, filepath.Join(procDir, id, procemu.KnobFileName(k)), unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
		if err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
		fds = append(fds, src)
		binds = append(binds, bind{src, dst})
	}
	return mountns.Do(ns, root, hostProc, func() error {
		for _, b := range binds {
			if err := unix.MoveMount(b.src, "", b.dst, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
				return err
			}
		}
		return nil
	})
}
