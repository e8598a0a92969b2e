package supervisor

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// A container's mounts as runc leaves them (ids as in its mountinfo).
const containerMountinfo = `100 50 0:60 / / rw,relatime - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w
101 100 0:61 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
102 100 0:62 / /dev rw,nosuid - tmpfs tmpfs rw,mode=755
103 100 0:63 / /sys ro,nosuid,nodev,noexec,relatime - sysfs sysfs ro
104 103 0:64 / /sys/firmware ro,relatime - tmpfs tmpfs ro
105 101 0:62 /null /proc/kcore rw,nosuid - tmpfs tmpfs rw,mode=755
106 101 0:70 /c1/meminfo /proc/meminfo ro,nosuid,nodev,noexec - fuse.eci-procfs eci-procfs rw
107 100 8:1 /var/lib/kubelet/pods/p/volumes/cfg /etc/config ro,relatime - ext4 /dev/sda1 rw
108 100 8:1 /var/lib/kubelet/pods/p/volumes/data /data rw,relatime - ext4 /dev/sda1 rw
109 100 0:65 / /tmp rw,nosuid,nodev - tmpfs tmpfs rw
`

func testInitial(t *testing.T) (Initial, map[int]Mount) {
	t.Helper()
	mounts, err := ParseMountinfo(strings.NewReader(containerMountinfo))
	if err != nil {
		t.Fatal(err)
	}
	return NewInitial(mounts), mounts
}

func TestNewInitial(t *testing.T) {
	in, _ := testInitial(t)
	var core []string
	for _, id := range []int{100, 101, 102, 103, 104, 105, 106, 107, 108, 109} {
		if m, ok := in.Core[id]; ok {
			core = append(core, m.MountPoint)
		}
	}
	if got := strings.Join(core, " "); got != "/ /proc /sys /sys/firmware /proc/kcore /proc/meminfo" {
		t.Errorf("core mounts: %s", got)
	}
	var ro []string
	for _, l := range in.Locks {
		if l.Flags&unix.MS_RDONLY != 0 {
			ro = append(ro, l.Point)
		}
	}
	if got := strings.Join(ro, " "); got != "/etc/config /proc/meminfo /sys /sys/firmware" {
		t.Errorf("read-only locks: %s", got)
	}
}

func TestVet(t *testing.T) {
	in, m := testInitial(t)
	nested := func(id int) Mount { x := m[id]; x.ID += 1000; return x } // a copy in a namespace the container made
	src := func(id int) *Mount { x := m[id]; return &x }
	for _, tc := range []struct {
		name  string
		op    MountOp
		f     Facts
		errno unix.Errno
		where string
	}{
		// Unmounts.
		{"unmount a mask", MountOp{Unmount: true, Target: "/sys/firmware"}, Facts{Initial: true, Target: m[104], TargetIsRoot: true}, unix.EPERM, "/sys/firmware"},
		{"unmount an emulated /proc file", MountOp{Unmount: true, Target: "/proc/meminfo"}, Facts{Initial: true, Target: m[106], TargetIsRoot: true}, unix.EPERM, "/proc/meminfo"},
		{"unmount /", MountOp{Unmount: true, Target: "/"}, Facts{Initial: true, Target: m[100], TargetIsRoot: true}, unix.EPERM, "/"},
		{"unmount a volume", MountOp{Unmount: true, Target: "/data"}, Facts{Initial: true, Target: m[108], TargetIsRoot: true}, 0, ""},
		{"unmount a directory of / (the kernel says EINVAL)", MountOp{Unmount: true, Target: "/etc"}, Facts{Initial: true, Target: m[100]}, 0, ""},
		{"unmount a mask's copy in a nested namespace", MountOp{Unmount: true, Target: "/sys/firmware"}, Facts{Target: nested(104), TargetIsRoot: true}, 0, ""},
		// Remounts.
		{"remount a read-only volume rw", MountOp{Target: "/etc/config", Flags: unix.MS_REMOUNT | unix.MS_BIND}, Facts{Initial: true, Target: m[107], TargetIsRoot: true}, unix.EPERM, "/etc/config"},
		{"remount a read-only volume rw (superblock)", MountOp{Target: "/etc/config", Flags: unix.MS_REMOUNT}, Facts{Initial: true, Target: m[107], TargetIsRoot: true}, unix.EPERM, "/etc/config"},
		{"remount a read-only volume ro", MountOp{Target: "/etc/config", Flags: unix.MS_REMOUNT | unix.MS_BIND | unix.MS_RDONLY | unix.MS_NOEXEC}, Facts{Initial: true, Target: m[107], TargetIsRoot: true}, 0, ""},
		{"remount rw a bind of a read-only volume's subdirectory, in a nested namespace", MountOp{Target: "/x", Flags: unix.MS_REMOUNT | unix.MS_BIND},
			Facts{Target: Mount{ID: 2000, Dev: "8:1", Root: "/var/lib/kubelet/pods/p/volumes/cfg/sub", MountPoint: "/x"}, TargetIsRoot: true}, unix.EPERM, "/etc/config"},
		{"remount rw a volume of the same disk that was given rw", MountOp{Target: "/data", Flags: unix.MS_REMOUNT | unix.MS_BIND}, Facts{Initial: true, Target: m[108], TargetIsRoot: true}, 0, ""},
		{"remount /proc", MountOp{Target: "/proc", Flags: unix.MS_REMOUNT, Data: "hidepid=2"}, Facts{Initial: true, Target: m[101], TargetIsRoot: true}, unix.EPERM, "/proc"},
		{"remount rw the read-only /sys", MountOp{Target: "/sys", Flags: unix.MS_REMOUNT}, Facts{Initial: true, Target: m[103], TargetIsRoot: true}, unix.EPERM, "/sys"},
		{"remount / (rw) with new options", MountOp{Target: "/", Flags: unix.MS_REMOUNT}, Facts{Initial: true, Target: m[100], TargetIsRoot: true}, 0, ""},
		// New mounts and covering.
		{"tmpfs on a directory of /", MountOp{Target: "/mnt", FSType: "tmpfs"}, Facts{Initial: true, Target: m[100]}, 0, ""},
		{"tmpfs over /", MountOp{Target: "/", FSType: "tmpfs"}, Facts{Initial: true, Target: m[100], TargetIsRoot: true}, unix.EPERM, "/"},
		{"tmpfs over /proc", MountOp{Target: "/proc", FSType: "tmpfs"}, Facts{Initial: true, Target: m[101], TargetIsRoot: true}, unix.EPERM, "/proc"},
		{"tmpfs over /proc/sys (a directory of /proc)", MountOp{Target: "/proc/sys", FSType: "tmpfs"}, Facts{Initial: true, Target: m[101]}, unix.EPERM, "/proc"},
		{"tmpfs over a volume", MountOp{Target: "/data", FSType: "tmpfs"}, Facts{Initial: true, Target: m[108], TargetIsRoot: true}, 0, ""},
		{"tmpfs over /proc in a nested namespace", MountOp{Target: "/proc", FSType: "tmpfs"}, Facts{Target: nested(101), TargetIsRoot: true}, 0, ""},
		{"ext4 from a disk", MountOp{Source: "/dev/sda1", Target: "/mnt", FSType: "ext4"}, Facts{Initial: true, Target: m[100]}, unix.EPERM, "(new filesystem)"},
		{"a new proc", MountOp{Source: "proc", Target: "/mnt", FSType: "proc"}, Facts{Initial: true, Target: m[100]}, unix.EPERM, "(new filesystem)"},
		// Binds and moves.
		{"bind a volume's directory", MountOp{Source: "/data/a", Target: "/mnt", Flags: unix.MS_BIND}, Facts{Initial: true, Target: m[100], Source: src(108)}, 0, ""},
		{"bind /proc elsewhere (without its masks)", MountOp{Source: "/proc", Target: "/mnt", Flags: unix.MS_BIND}, Facts{Initial: true, Target: m[100], Source: src(101), SourceIsRoot: true}, unix.EPERM, "/proc"},
		{"bind /sys elsewhere", MountOp{Source: "/sys", Target: "/mnt", Flags: unix.MS_BIND | unix.MS_REC}, Facts{Initial: true, Target: m[100], Source: src(103), SourceIsRoot: true}, unix.EPERM, "/sys"},
		{"bind a file over an emulated /proc file", MountOp{Source: "/tmp/f", Target: "/proc/meminfo", Flags: unix.MS_BIND}, Facts{Initial: true, Target: m[106], TargetIsRoot: true, Source: src(109)}, unix.EPERM, "/proc/meminfo"},
		{"move /proc", MountOp{Source: "/proc", Target: "/mnt", Flags: unix.MS_MOVE}, Facts{Initial: true, Target: m[100], Source: src(101), SourceIsRoot: true}, unix.EPERM, "/proc"},
		{"move a volume", MountOp{Source: "/data", Target: "/mnt", Flags: unix.MS_MOVE}, Facts{Initial: true, Target: m[100], Source: src(108), SourceIsRoot: true}, 0, ""},
		{"bind without a source", MountOp{Target: "/mnt", Flags: unix.MS_BIND}, Facts{Initial: true, Target: m[100]}, unix.EINVAL, ""},
		// Propagation.
		{"make / rprivate", MountOp{Target: "/", Flags: unix.MS_PRIVATE | unix.MS_REC}, Facts{Initial: true, Target: m[100], TargetIsRoot: true}, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errno, why, where := Vet(in, tc.op, tc.f)
			if errno != tc.errno || where != tc.where {
				t.Errorf("Vet = %v %q (%s), want %v (%s)", errno, where, why, tc.errno, tc.where)
			}
			if errno != 0 && why == "" {
				t.Error("a refusal without a reason")
			}
		})
	}
}
