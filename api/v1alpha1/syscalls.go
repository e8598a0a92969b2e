package v1alpha1

// Arch is a CPU architecture eci supports.
type Arch string

// The architectures eci supports.
const (
	AMD64 Arch = "x86_64"
	ARM64 Arch = "arm64"
)

// Syscall is a syscall that a policy may trap, and the architectures that have it.
type Syscall struct {
	Name   string
	Arches []Arch
}

var both = []Arch{AMD64, ARM64}

// KnownSyscalls are the syscall names a policy may list in trappedSyscalls: the calls that
// reach the host kernel's shared state (mounts, modules, keys, clocks, devices, ownership,
// tracing) on x86_64 and arm64. It is the source of truth for the CRD's validation rule on
// trappedSyscalls[].names; TestKnownSyscallsMatchMarker fails if the two drift. Names only
// one architecture has are accepted and ignored on the other.
//
// umount(2) is umount2 on these architectures: the name "umount" is not a syscall there.
var KnownSyscalls = []Syscall{
	// Mounts and the root.
	{"mount", both},
	{"umount2", both},
	{"mount_setattr", both},
	{"move_mount", both},
	{"open_tree", both},
	{"fsopen", both},
	{"fsconfig", both},
	{"fsmount", both},
	{"fspick", both},
	{"pivot_root", both},
	{"chroot", both},
	// The kernel, its modules, swap and accounting.
	{"reboot", both},
	{"kexec_load", both},
	{"kexec_file_load", both},
	{"init_module", both},
	{"finit_module", both},
	{"delete_module", both},
	{"swapon", both},
	{"swapoff", both},
	{"acct", both},
	{"syslog", both},
	{"quotactl", both},
	{"quotactl_fd", both},
	{"vhangup", both},
	{"uselib", []Arch{AMD64}},
	{"ustat", []Arch{AMD64}},
	{"sysfs", []Arch{AMD64}},
	{"sysinfo", both},
	// Handles, tracing, BPF and other processes' memory.
	{"open_by_handle_at", both},
	{"name_to_handle_at", both},
	{"bpf", both},
	{"perf_event_open", both},
	{"fanotify_init", both},
	{"ptrace", both},
	{"process_vm_readv", both},
	{"process_vm_writev", both},
	{"kcmp", both},
	{"pidfd_getfd", both},
	{"userfaultfd", both},
	{"personality", both},
	{"io_uring_setup", both},
	{"io_uring_enter", both},
	{"io_uring_register", both},
	// Keys.
	{"keyctl", both},
	{"add_key", both},
	{"request_key", both},
	// Namespaces, host and domain names, clocks.
	{"unshare", both},
	{"setns", both},
	{"sethostname", both},
	{"setdomainname", both},
	{"clock_settime", both},
	{"clock_adjtime", both},
	{"settimeofday", both},
	{"adjtimex", both},
	// Port I/O and the LDT.
	{"ioperm", []Arch{AMD64}},
	{"iopl", []Arch{AMD64}},
	{"modify_ldt", []Arch{AMD64}},
	// Device nodes, ownership and extended attributes.
	{"mknod", []Arch{AMD64}},
	{"mknodat", both},
	{"chown", []Arch{AMD64}},
	{"lchown", []Arch{AMD64}},
	{"fchown", both},
	{"fchownat", both},
	{"setxattr", both},
	{"lsetxattr", both},
	{"fsetxattr", both},
	{"removexattr", both},
	{"lremovexattr", both},
	{"fremovexattr", both},
}

// KnownSyscallNames returns the names of KnownSyscalls in table order.
func KnownSyscallNames() []string {
	names := make([]string, len(KnownSyscalls))
	for i, s := range KnownSyscalls {
		names[i] = s.Name
	}
	return names
}

// KnownErrnos are the errno names a Deny action may return, in the order of the CRD's enum
// on trappedSyscalls[].errno; TestKnownErrnosMatchMarker fails if the two drift. ENOTSUP
// and EOPNOTSUPP are the same number on Linux.
var KnownErrnos = []Errno{
	"EPERM", "EACCES", "ENOENT", "EINVAL", "EBUSY", "EROFS", "ENOSYS", "ENOTSUP", "EOPNOTSUPP",
	"ENODEV", "ENXIO", "EAGAIN", "ENOMEM", "EFAULT",
}
