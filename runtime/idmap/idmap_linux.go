//go:build linux

package idmap

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// retry runs f until it stops failing with EINTR.
func retry(f func() error) error {
	for {
		if err := f(); !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// NewUserns returns an fd of a new user namespace with the given mappings, made by a child
// that is stopped (ptrace) at its exec and killed once the fd is open. The namespace then
// holds no process; it lives as long as the fd and the mounts made with it.
func NewUserns(uid, gid []specs.LinuxIDMapping) (*os.File, error) {
	conv := func(m []specs.LinuxIDMapping) []syscall.SysProcIDMap {
		out := make([]syscall.SysProcIDMap, len(m))
		for i, e := range m {
			out[i] = syscall.SysProcIDMap{ContainerID: int(e.ContainerID), HostID: int(e.HostID), Size: int(e.Size)}
		}
		return out
	}
	cmd := exec.Command("/proc/self/exe")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: conv(uid),
		GidMappings: conv(gid),
		Ptrace:      true,
		Pdeathsig:   syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("creating a user namespace: %w", err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	f, err := os.Open(fmt.Sprintf("/proc/%d/ns/user", cmd.Process.Pid))
	if err != nil {
		return nil, fmt.Errorf("opening the new user namespace: %w", err)
	}
	return f, nil
}

// fsMagic names the filesystems eci is likely to meet.
var fsMagic = map[int64]string{
	unix.EXT4_SUPER_MAGIC: "ext4", unix.XFS_SUPER_MAGIC: "xfs", unix.BTRFS_SUPER_MAGIC: "btrfs",
	unix.TMPFS_MAGIC: "tmpfs", unix.OVERLAYFS_SUPER_MAGIC: "overlay", unix.NFS_SUPER_MAGIC: "nfs",
	unix.FUSE_SUPER_MAGIC: "fuse", unix.PROC_SUPER_MAGIC: "proc", unix.SYSFS_MAGIC: "sysfs",
	unix.CIFS_SUPER_MAGIC: "cifs", unix.SMB2_SUPER_MAGIC: "smb2", unix.SQUASHFS_MAGIC: "squashfs",
	unix.V9FS_MAGIC: "9p", unix.CEPH_SUPER_MAGIC: "ceph", unix.MSDOS_SUPER_MAGIC: "vfat",
	unix.F2FS_SUPER_MAGIC: "f2fs", unix.DEVPTS_SUPER_MAGIC: "devpts", unix.CGROUP2_SUPER_MAGIC: "cgroup2",
}

// FSType names the filesystem a path lives on.
func FSType(path string) string {
	var st unix.Statfs_t
	if err := retry(func() error { return unix.Statfs(path, &st) }); err != nil {
		return "unknown"
	}
	if name, ok := fsMagic[int64(st.Type)]; ok {
		return name
	}
	return fmt.Sprintf("0x%x", st.Type)
}

// NotIDMappableError says a path's filesystem cannot be idmapped.
type NotIDMappableError struct {
	Path, FSType string
	Err          error
}

func (e *NotIDMappableError) Error() string {
	return fmt.Sprintf("%s is on a %s filesystem, which cannot be idmapped (%v): eci gives files their owners through idmapped mounts and never chowns them", e.Path, e.FSType, e.Err)
}

func (e *NotIDMappableError) Unwrap() error { return e.Err }

// cloneIDMapped returns a detached, idmapped copy of the mount at path.
func cloneIDMapped(path string, userns *os.File) (int, error) {
	var fd int
	err := retry(func() (err error) {
		fd, err = unix.OpenTree(unix.AT_FDCWD, path, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
		return err
	})
	if err != nil {
		return -1, fmt.Errorf("open_tree %s: %w", path, err)
	}
	attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(userns.Fd())}
	if err := retry(func() error { return unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, attr) }); err != nil {
		unix.Close(fd)
		return -1, &NotIDMappableError{Path: path, FSType: FSType(path), Err: err}
	}
	return fd, nil
}

// Probe checks that path can be idmapped with userns, without mounting anything.
func Probe(path string, userns *os.File) error {
	fd, err := cloneIDMapped(path, userns)
	if err != nil {
		return err
	}
	return unix.Close(fd)
}

// RootfsChange records what IDMapRootfs did, so it can be undone.
type RootfsChange struct {
	Rootfs string `json:"rootfs"`
	// Kind is "overlay" (the overlay was remounted over idmapped lower dirs) or "bind" (an
	// idmapped bind mount stacked on the rootfs).
	Kind string `json:"kind"`
	// Overlay: the original mount, and the original owners of the upper and work dirs.
	Original   *Mount `json:"original,omitempty"`
	UpperOwner [2]int `json:"upperOwner"`
	WorkOwner  [2]int `json:"workOwner"`
}

// PlanRootfs looks at the container's rootfs and says how IDMapRootfs will change it,
// without changing anything, so the caller can record the plan before it is carried out
// (a crash in between then leaves a record that Release can act on).
func PlanRootfs(rootfs string) (*RootfsChange, error) {
	mounts, err := readMountInfo()
	if err != nil {
		return nil, err
	}
	if m, ok := Topmost(mounts, rootfs); ok && m.FSType == "overlay" {
		return &RootfsChange{Rootfs: rootfs, Kind: "overlay", Original: &m}, nil
	}
	return &RootfsChange{Rootfs: rootfs, Kind: "bind"}, nil
}

// Apply makes the container's rootfs show the image's files owned by the container's ids.
// An overlay rootfs (containerd's snapshots) is remounted with idmapped lower dirs and its
// upper and work dirs owned by hostRoot; any other rootfs gets an idmapped bind mount
// stacked on top. scratch is a directory for temporary mount points.
func (c *RootfsChange) Apply(userns *os.File, hostRoot uint32, scratch string) error {
	if c.Kind == "overlay" {
		return c.idmapOverlay(userns, hostRoot, scratch)
	}
	fd, err := cloneIDMapped(c.Rootfs, userns)
	if err != nil {
		return fmt.Errorf("rootfs: %w", err)
	}
	defer unix.Close(fd)
	if err := retry(func() error {
		return unix.MoveMount(fd, "", unix.AT_FDCWD, c.Rootfs, unix.MOVE_MOUNT_F_EMPTY_PATH)
	}); err != nil {
		return fmt.Errorf("rootfs: mounting idmapped %s: %w", c.Rootfs, err)
	}
	return nil
}

func readMountInfo() ([]Mount, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseMountInfo(f)
}

func owner(path string) ([2]int, error) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return [2]int{}, fmt.Errorf("stat %s: %w", path, err)
	}
	return [2]int{int(st.Uid), int(st.Gid)}, nil
}

// mountFlags turns mountinfo's per-mount options into mount(2) flags.
func mountFlags(opts string) uintptr {
	var flags uintptr
	for _, o := range strings.Split(opts, ",") {
		switch o {
		case "ro":
			flags |= unix.MS_RDONLY
		case "nosuid":
			flags |= unix.MS_NOSUID
		case "nodev":
			flags |= unix.MS_NODEV
		case "noexec":
			flags |= unix.MS_NOEXEC
		case "noatime":
			flags |= unix.MS_NOATIME
		case "nodiratime":
			flags |= unix.MS_NODIRATIME
		}
	}
	return flags
}

func overlayData(lower []string, o Overlay) string {
	esc := make([]string, len(lower))
	for i, l := range lower {
		esc[i] = escapeLower(l)
	}
	opts := []string{"lowerdir=" + strings.Join(esc, ":")}
	if o.Upper != "" {
		opts = append(opts, "upperdir="+o.Upper, "workdir="+o.Work)
	}
	return strings.Join(append(opts, o.Others...), ",")
}

func (c *RootfsChange) idmapOverlay(userns *os.File, hostRoot uint32, scratch string) error {
	rootfs, m, change := c.Rootfs, c.Original, c
	o, err := ParseOverlay(m.SuperOptions)
	if err != nil {
		return fmt.Errorf("rootfs overlay at %s: %w", rootfs, err)
	}
	for _, l := range o.Lower {
		if strings.HasPrefix(l, scratch) || strings.HasPrefix(l, filepath.Dir(scratch)+"/") {
			return fmt.Errorf("rootfs overlay at %s is already idmapped by eci", rootfs)
		}
	}
	if err := os.MkdirAll(scratch, 0o700); err != nil {
		return err
	}
	// Idmapped copies of the lower dirs, attached under scratch for the overlay mount.
	var lowers []string
	defer func() {
		for _, l := range lowers {
			_ = unix.Unmount(l, unix.MNT_DETACH)
			_ = os.Remove(l)
		}
		_ = os.Remove(scratch)
	}()
	for i, l := range o.Lower {
		fd, err := cloneIDMapped(l, userns)
		if err != nil {
			return fmt.Errorf("rootfs layer: %w", err)
		}
		dir := filepath.Join(scratch, fmt.Sprint(i))
		if err := os.Mkdir(dir, 0o700); err != nil {
			unix.Close(fd)
			return err
		}
		err = retry(func() error { return unix.MoveMount(fd, "", unix.AT_FDCWD, dir, unix.MOVE_MOUNT_F_EMPTY_PATH) })
		unix.Close(fd)
		if err != nil {
			_ = os.Remove(dir)
			return fmt.Errorf("rootfs layer %s: attaching idmapped copy: %w", l, err)
		}
		lowers = append(lowers, dir)
	}
	if o.Upper != "" {
		if change.UpperOwner, err = owner(o.Upper); err != nil {
			return err
		}
		if change.WorkOwner, err = owner(o.Work); err != nil {
			return err
		}
		for _, d := range []string{o.Upper, o.Work} {
			if err := os.Lchown(d, int(hostRoot), int(hostRoot)); err != nil {
				_ = change.restoreOwners(o)
				return fmt.Errorf("rootfs: giving %s to the container's root: %w", d, err)
			}
		}
	}
	if err := retry(func() error { return unix.Unmount(rootfs, 0) }); err != nil {
		_ = change.restoreOwners(o)
		return fmt.Errorf("rootfs: unmounting the original overlay at %s: %w", rootfs, err)
	}
	flags := mountFlags(m.Options)
	if err := retry(func() error { return unix.Mount("overlay", rootfs, "overlay", flags, overlayData(lowers, o)) }); err != nil {
		err = fmt.Errorf("rootfs: mounting overlay over idmapped layers at %s: %w", rootfs, err)
		return errors.Join(err, change.remountOriginal(o))
	}
	return nil
}

func (c *RootfsChange) restoreOwners(o Overlay) error {
	if o.Upper == "" {
		return nil
	}
	return errors.Join(
		os.Lchown(o.Upper, c.UpperOwner[0], c.UpperOwner[1]),
		os.Lchown(o.Work, c.WorkOwner[0], c.WorkOwner[1]))
}

func (c *RootfsChange) remountOriginal(o Overlay) error {
	err := c.restoreOwners(o)
	data := overlayData(o.Lower, o)
	return errors.Join(err, retry(func() error {
		return unix.Mount("overlay", c.Rootfs, "overlay", mountFlags(c.Original.Options), data)
	}))
}

// Undo reverts IDMapRootfs: the original overlay comes back, or the stacked bind mount goes.
// Undoing a change that is already gone (the CRI unmounted the rootfs) is not an error.
func (c *RootfsChange) Undo() error {
	switch c.Kind {
	case "bind":
		if !c.ours() {
			return nil // not our mount any more
		}
		return retry(func() error { return unix.Unmount(c.Rootfs, unix.MNT_DETACH) })
	case "overlay":
		o, err := ParseOverlay(c.Original.SuperOptions)
		if err != nil {
			return err
		}
		if err := retry(func() error { return unix.Unmount(c.Rootfs, 0) }); err != nil {
			return fmt.Errorf("undo rootfs: unmounting %s: %w", c.Rootfs, err)
		}
		return c.remountOriginal(o)
	}
	return fmt.Errorf("undo rootfs: unknown change kind %q", c.Kind)
}

// Release forgets the change when the container is deleted: a stacked bind mount is
// removed; a remounted overlay is left for the CRI, which unmounts the rootfs itself.
func (c *RootfsChange) Release() error {
	if c.Kind == "bind" {
		return c.Undo()
	}
	return nil
}

// ours reports whether the mount on top of the rootfs is eci's stacked idmapped bind, so
// only that mount is ever removed.
func (c *RootfsChange) ours() bool {
	mounts, err := readMountInfo()
	if err != nil {
		return false
	}
	m, ok := Topmost(mounts, c.Rootfs)
	return ok && slices.Contains(strings.Split(m.Options, ","), "idmapped")
}
