package supervisor

import (
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/eci-dev/eci/runtime/policy"
)

// fakeMemory maps addresses to the strings a caller passed; reads are counted, so a test
// sees which decisions rest on memory.
type fakeMemory struct {
	strings map[uint64]string
	reads   int
}

func (m *fakeMemory) String(addr uint64, max int) (string, error) {
	m.reads++
	s, ok := m.strings[addr]
	if !ok {
		return "", unix.EFAULT
	}
	if len(s) >= max {
		return "", errTooLong
	}
	return s, nil
}

const (
	aSource = 0x1000
	aTarget = 0x2000
	aFSType = 0x3000
	aData   = 0x4000
	aBad    = 0xdead
)

func TestDecide(t *testing.T) {
	traps := map[string]string{"mount": "Emulate", "umount2": "Emulate", "pivot_root": "Emulate", "chown": "Audit", "setns": "Allow", "sysinfo": "Emulate", "sethostname": "Emulate", "sched_getaffinity": "Emulate"}
	mem := map[uint64]string{aSource: "tmpfs", aTarget: "/mnt", aFSType: "tmpfs", aData: "size=1m", 0x5000: strings.Repeat("a", maxPath)}
	for _, tc := range []struct {
		name  string
		mode  policy.Mode
		call  Call
		want  Decision
		reads int
	}{
		{"allow continues without reading memory", policy.Enforce, Call{Name: "setns", Native: true}, Decision{Verdict: Continue}, 0},
		{"audit continues and reports", policy.Enforce, Call{Name: "chown", Native: true}, Decision{Verdict: Continue, Audit: true, Reason: "chown audited by the policy"}, 0},
		{"emulate without an emulator is denied", policy.Enforce, Call{Name: "sethostname", Native: true}, Decision{Verdict: Deny, Errno: unix.EPERM, Reason: "eci does not emulate sethostname"}, 0},
		{"sysinfo is answered by the supervisor, unread", policy.Enforce, Call{Name: "sysinfo", Native: true, Args: [6]uint64{0x7000}}, Decision{Verdict: Perform, Emulate: "sysinfo", At: 0x7000}, 0},
		{"sysinfo from a compat process: the kernel answers", policy.Enforce, Call{Name: "sysinfo", Args: [6]uint64{0x7000}}, Decision{Verdict: Continue}, 0},
		{"sysinfo(NULL): the kernel's EFAULT", policy.Enforce, Call{Name: "sysinfo", Native: true}, Decision{Verdict: Continue}, 0},
		{"sched_getaffinity of the caller is answered", policy.Enforce, Call{Name: "sched_getaffinity", Native: true, Args: [6]uint64{0, 128, 0x8000}}, Decision{Verdict: Perform, Emulate: "sched_getaffinity", At: 0x8000, Len: 128}, 0},
		{"sched_getaffinity of another pid: the kernel answers", policy.Enforce, Call{Name: "sched_getaffinity", Native: true, Args: [6]uint64{42, 128, 0x8000}}, Decision{Verdict: Continue}, 0},
		{"a syscall the container does not trap is denied", policy.Enforce, Call{Name: "reboot", Native: true}, Decision{Verdict: Deny, Errno: unix.EPERM, Reason: "reboot is not trapped for this container"}, 0},
		{"compat mount denied", policy.Enforce, Call{Name: "mount", InitialNS: true}, Decision{Verdict: Deny, Errno: unix.EPERM, Audit: true, Reason: "mount from a compat (32-bit) process"}, 0},
		{"pivot_root in the initial namespace denied", policy.Enforce, Call{Name: "pivot_root", Native: true, InitialNS: true}, Decision{Verdict: Deny, Errno: unix.EPERM, Audit: true, Reason: "pivot_root in the container's own mount namespace would move its root"}, 0},
		{"pivot_root audited in Audit mode", policy.Audit, Call{Name: "pivot_root", Native: true, InitialNS: true}, Decision{Verdict: Continue, Audit: true, Reason: "pivot_root in the container's own mount namespace would move its root (allowed: the policy is in Audit mode)"}, 0},
		{"pivot_root in a nested namespace continues", policy.Enforce, Call{Name: "pivot_root", Native: true}, Decision{Verdict: Continue}, 0},
		{"umount2 in a nested namespace continues unread", policy.Enforce, Call{Name: "umount2", Native: true, Args: [6]uint64{aTarget}}, Decision{Verdict: Continue}, 0},
		{"umount2 in the initial namespace is performed", policy.Enforce, Call{Name: "umount2", Native: true, InitialNS: true, Args: [6]uint64{aTarget, unix.MNT_DETACH}},
			Decision{Verdict: Perform, Mount: &MountOp{Unmount: true, Target: "/mnt", UmountFlags: unix.MNT_DETACH}}, 1},
		{"new tmpfs is performed with its data", policy.Enforce, Call{Name: "mount", Native: true, InitialNS: true, Args: [6]uint64{aSource, aTarget, aFSType, unix.MS_NOSUID, aData}},
			Decision{Verdict: Perform, Mount: &MountOp{Source: "tmpfs", Target: "/mnt", FSType: "tmpfs", Data: "size=1m", Flags: unix.MS_NOSUID}}, 4},
		{"a mount in a nested namespace is still vetted", policy.Enforce, Call{Name: "mount", Native: true, Args: [6]uint64{aSource, aTarget, aFSType, 0, 0}},
			Decision{Verdict: Perform, Mount: &MountOp{Source: "tmpfs", Target: "/mnt", FSType: "tmpfs"}}, 3},
		{"bind reads no type or data", policy.Enforce, Call{Name: "mount", Native: true, InitialNS: true, Args: [6]uint64{aSource, aTarget, aFSType, unix.MS_BIND | unix.MS_REC, aData}},
			Decision{Verdict: Perform, Mount: &MountOp{Source: "tmpfs", Target: "/mnt", Flags: unix.MS_BIND | unix.MS_REC}}, 2},
		{"propagation change with a NULL source", policy.Enforce, Call{Name: "mount", Native: true, InitialNS: true, Args: [6]uint64{0, aTarget, 0, unix.MS_PRIVATE | unix.MS_REC, 0}},
			Decision{Verdict: Perform, Mount: &MountOp{Target: "/mnt", Flags: unix.MS_PRIVATE | unix.MS_REC}}, 1},
		{"unreadable target", policy.Enforce, Call{Name: "mount", Native: true, InitialNS: true, Args: [6]uint64{aSource, aBad, aFSType, 0, 0}},
			Decision{Verdict: Deny, Errno: unix.EFAULT, Reason: "argument not readable: bad address"}, 1},
		{"target too long", policy.Enforce, Call{Name: "umount2", Native: true, InitialNS: true, Args: [6]uint64{0x5000}},
			Decision{Verdict: Deny, Errno: unix.ENAMETOOLONG, Reason: "argument too long"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &fakeMemory{strings: mem}
			got := Decide(traps, tc.mode, tc.call, m)
			if got.Verdict != tc.want.Verdict || got.Errno != tc.want.Errno || got.Audit != tc.want.Audit || got.Reason != tc.want.Reason || got.Emulate != tc.want.Emulate || got.At != tc.want.At || got.Len != tc.want.Len {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			if (got.Mount == nil) != (tc.want.Mount == nil) || (got.Mount != nil && *got.Mount != *tc.want.Mount) {
				t.Errorf("mount: got %+v, want %+v", got.Mount, tc.want.Mount)
			}
			if m.reads != tc.reads {
				t.Errorf("%d memory reads, want %d", m.reads, tc.reads)
			}
		})
	}
}

func TestLimiter(t *testing.T) {
	now := time.Unix(1000, 0)
	l := &Limiter{Every: 10 * time.Second, Now: func() time.Time { return now }}
	if ok, held := l.Allow("a"); !ok || held != 0 {
		t.Fatalf("first report held back: %v %d", ok, held)
	}
	for range 5 {
		if ok, _ := l.Allow("a"); ok {
			t.Fatal("a repeat within Every went out")
		}
	}
	if ok, _ := l.Allow("b"); !ok {
		t.Fatal("another key was held back")
	}
	now = now.Add(10 * time.Second)
	if ok, held := l.Allow("a"); !ok || held != 5 {
		t.Fatalf("after Every: %v, held %d, want true, 5", ok, held)
	}
}

func TestOwnerOptions(t *testing.T) {
	uids := idMap{{0, 100000, 65536}}
	gids := idMap{{0, 200000, 65536}}
	for _, tc := range []struct {
		data     string
		defaults bool
		want     string
		err      bool
	}{
		{"", true, "uid=100000,gid=200000", false},
		{"size=1m,mode=755", true, "size=1m,mode=755,uid=100000,gid=200000", false},
		{"uid=1000,gid=5", true, "uid=101000,gid=200005", false},
		{"size=2m", false, "size=2m", false},
		{"uid=70000", true, "", true},
		{"gid=x", true, "", true},
	} {
		got, err := ownerOptions(tc.data, uids, gids, tc.defaults)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ownerOptions(%q, %v) = %q, %v; want %q (error %v)", tc.data, tc.defaults, got, err, tc.want, tc.err)
		}
	}
}

func TestSyscallTable(t *testing.T) {
	for _, tc := range []struct {
		arch uint32
		nr   int32
		want string
	}{
		{auditArchX86_64, unix.SYS_MOUNT, "mount"},
		{auditArchX86_64, 166, "umount2"},
		{auditArchX86_64, 0x40000000 + 165, "mount"}, // x32
		{auditArchI386, 21, "mount"},
		{auditArchAARCH64, 40, "mount"},
		{auditArchX86_64, 0, ""}, // read: not trappable
	} {
		if got := name(tc.arch, tc.nr); got != tc.want {
			t.Errorf("name(%#x, %d) = %q, want %q", tc.arch, tc.nr, got, tc.want)
		}
	}
}

func TestAffinityMask(t *testing.T) {
	var set unix.CPUSet
	for _, c := range []int{1, 3, 4, 9} {
		set.Set(c)
	}
	for _, tc := range []struct {
		n, size int
		want    []byte
	}{
		{1, 8, []byte{0b10, 0, 0, 0, 0, 0, 0, 0}},
		{3, 8, []byte{0b11010, 0, 0, 0, 0, 0, 0, 0}},
		{8, 8, []byte{0b11010, 0b10, 0, 0, 0, 0, 0, 0}}, // more than it has: all of them
		{2, 0, nil},
	} {
		if got := affinityMask(set, tc.n, tc.size); string(got) != string(tc.want) {
			t.Errorf("affinityMask(n=%d, size=%d) = %08b, want %08b", tc.n, tc.size, got, tc.want)
		}
	}
}
