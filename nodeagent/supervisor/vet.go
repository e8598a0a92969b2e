package supervisor

import (
	"fmt"
	"io"
	"path"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/eci-dev/eci/runtime/idmap"
)

// Mount is one line of /proc/<pid>/mountinfo.
type Mount = idmap.Mount

// ParseMountinfo reads /proc/<pid>/mountinfo into a map by mount id.
func ParseMountinfo(r io.Reader) (map[int]Mount, error) {
	list, err := idmap.ParseMountInfo(r)
	if err != nil {
		return nil, err
	}
	out := make(map[int]Mount, len(list))
	for _, m := range list {
		out[m.ID] = m
	}
	return out, nil
}

// lockedFlags are the per-mount flags a mount the container was created with keeps, on
// it and on every copy or bind of what it shows.
var lockedFlags = []struct {
	opt  string
	flag uint64
}{
	{"ro", unix.MS_RDONLY},
	{"nosuid", unix.MS_NOSUID},
	{"nodev", unix.MS_NODEV},
	{"noexec", unix.MS_NOEXEC},
}

// lock is an initial mount's locked flags: they hold for any mount of the same filesystem
// whose root is at or below Root.
type lock struct {
	Dev, Root, Point string
	Flags            uint64
}

// Initial is what the supervisor keeps of the mounts a container was created with.
type Initial struct {
	// Core are the ids of the mounts nothing may unmount, move or cover: /, /proc, /sys
	// and every mount below /proc and /sys (runc's masks and read-only paths, eci's
	// /proc emulation binds, the cgroup mounts).
	Core map[int]Mount
	// Locks are the initial mounts' ro, nosuid, nodev and noexec flags.
	Locks []lock
}

// NewInitial records a container's initial mounts, as its init process sees them.
func NewInitial(mounts map[int]Mount) Initial {
	in := Initial{Core: map[int]Mount{}}
	for id, m := range mounts {
		if m.MountPoint == "/" || under(m.MountPoint, "/proc") || under(m.MountPoint, "/sys") {
			in.Core[id] = m
		}
		var flags uint64
		for _, l := range lockedFlags {
			if slices.Contains(strings.Split(m.Options, ","), l.opt) {
				flags |= l.flag
			}
		}
		if flags != 0 {
			in.Locks = append(in.Locks, lock{Dev: m.Dev, Root: m.Root, Point: m.MountPoint, Flags: flags})
		}
	}
	slices.SortFunc(in.Locks, func(a, b lock) int { return strings.Compare(a.Point, b.Point) })
	return in
}

// under reports whether p is dir or below it.
func under(p, dir string) bool {
	return p == dir || dir == "/" || strings.HasPrefix(p, dir+"/")
}

// Facts are what the supervisor resolved for a mount call, inside the container's root.
type Facts struct {
	// Initial: the caller is in the container's initial mount namespace.
	Initial bool
	// Target is the mount the target path is on; TargetIsRoot, whether the path is that
	// mount's root (its mountpoint).
	Target       Mount
	TargetIsRoot bool
	// Source is the mount the source path is on (bind and move only).
	Source       *Mount
	SourceIsRoot bool
}

// Vet says whether a mount or unmount may go ahead: 0, or the errno, why not, and the
// container mount it protects. It is pure: everything it looks at was resolved by the
// supervisor itself.
func Vet(in Initial, op MountOp, f Facts) (unix.Errno, string, string) {
	if op.Unmount {
		if f.Initial && f.TargetIsRoot {
			if m, core := in.Core[f.Target.ID]; core {
				return unix.EPERM, fmt.Sprintf("%s is one of the container's own mounts (/, /proc, /sys and what is below them): it cannot be unmounted", m.MountPoint), m.MountPoint
			}
		}
		return 0, "", ""
	}
	switch kindOf(op.Flags) {
	case kindRemount:
		if m, core := in.Core[f.Target.ID]; core && f.Initial && m.MountPoint != "/" {
			return unix.EPERM, fmt.Sprintf("%s is one of the container's own mounts below /proc or /sys: it cannot be remounted", m.MountPoint), m.MountPoint
		}
		for _, l := range in.Locks {
			if l.Dev == f.Target.Dev && under(f.Target.Root, l.Root) && l.Flags&unix.MS_RDONLY != 0 && op.Flags&unix.MS_RDONLY == 0 {
				return unix.EPERM, fmt.Sprintf("%s shows %s, which the container was given read-only: it stays read-only", f.Target.MountPoint, l.Point), l.Point
			}
		}
		return 0, "", ""
	case kindPropagation:
		return 0, "", ""
	case kindBind:
		if f.Source == nil {
			return unix.EINVAL, "bind mount without a source", ""
		}
		if f.Source.FSType == "proc" || f.Source.FSType == "sysfs" {
			return unix.EPERM, fmt.Sprintf("binding %s (%s) elsewhere would show it without eci's masks", f.Source.MountPoint, f.Source.FSType), f.Source.MountPoint
		}
	case kindMove:
		if f.Source == nil {
			return unix.EINVAL, "move without a source", ""
		}
		if m, core := in.Core[f.Source.ID]; core && f.Initial {
			return unix.EPERM, fmt.Sprintf("%s is one of the container's own mounts: it cannot be moved", m.MountPoint), m.MountPoint
		}
	case kindNew:
		if !slices.Contains(newFSTypes, op.FSType) {
			return unix.EPERM, fmt.Sprintf("eci mounts only %s for a container, not %q", strings.Join(newFSTypes, " and "), op.FSType), "(new filesystem)"
		}
	}
	if m, core := in.Core[f.Target.ID]; core && f.Initial && (m.MountPoint != "/" || f.TargetIsRoot) {
		return unix.EPERM, fmt.Sprintf("mounting on %s would cover %s, one of the container's own mounts", path.Clean(op.Target), m.MountPoint), m.MountPoint
	}
	return 0, "", ""
}

// newFSTypes are the filesystems the supervisor creates for a container. It mounts with
// the host's privileges, so only filesystems that hold nothing but what the container
// writes: one that reads a device, or takes the mounter's pid, network or ipc namespace
// (proc, sysfs, mqueue, cgroup), would show the host's.
var newFSTypes = []string{"tmpfs", "ramfs"}

// lockedFor are the flags a new mount of what m shows must keep: nosuid, nodev and noexec
// are added silently, as the kernel does for a mount it locked.
func lockedFor(in Initial, m Mount) uint64 {
	var flags uint64
	for _, l := range in.Locks {
		if l.Dev == m.Dev && under(m.Root, l.Root) {
			flags |= l.Flags
		}
	}
	return flags
}
