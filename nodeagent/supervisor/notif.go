// Package supervisor is eci's seccomp-notify supervisor: it receives the notify fds runc
// hands over for every eci container whose filter traps a syscall (the filter's
// listenerPath), and answers each trapped call. Decisions are small pure functions
// (Decide, Vet); a mount that passes is performed by the supervisor itself, in the
// container's mount namespace, on the path it resolved (perform_linux.go), so nothing the
// container changes in its memory after the check can alter what happens.
package supervisor

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// The AUDIT_ARCH tokens a notification names its architecture by.
const (
	auditArchX86_64  = 0xc000003e
	auditArchI386    = 0x40000003
	auditArchAARCH64 = 0xc00000b7
	auditArchARM     = 0x40000028
)

// notif is the kernel's struct seccomp_notif.
type notif struct {
	ID    uint64
	Pid   uint32
	Flags uint32
	Nr    int32
	Arch  uint32
	IP    uint64
	Args  [6]uint64
}

// notifResp is the kernel's struct seccomp_notif_resp.
type notifResp struct {
	ID    uint64
	Val   int64
	Error int32
	Flags uint32
}

// ioctlNotifIDValid is SECCOMP_IOCTL_NOTIF_ID_VALID (_IOW('!', 2, __u64)).
const ioctlNotifIDValid = 0x40082102

func ioctl(fd int, req uintptr, arg unsafe.Pointer) error {
	for {
		_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(arg))
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return e
		}
		return nil
	}
}

// recv takes the next notification from fd (ENOENT: the caller died before it was read).
func recv(fd int, n *notif) error {
	*n = notif{}
	return ioctl(fd, unix.SECCOMP_IOCTL_NOTIF_RECV, unsafe.Pointer(n))
}

// answer sends a response: errno 0 with cont continues the syscall in the kernel, errno 0
// without it returns val, any other errno fails the call with it.
func answer(fd int, id uint64, errno unix.Errno, cont bool, val int64) error {
	r := notifResp{ID: id, Val: val, Error: -int32(errno)}
	if cont {
		r = notifResp{ID: id, Flags: unix.SECCOMP_USER_NOTIF_FLAG_CONTINUE}
	}
	return ioctl(fd, unix.SECCOMP_IOCTL_NOTIF_SEND, unsafe.Pointer(&r))
}

// idValid reports whether notification id is still pending: the process that made it is
// still waiting, so /proc/<pid> is still that process.
func idValid(fd int, id uint64) bool {
	return ioctl(fd, ioctlNotifIDValid, unsafe.Pointer(&id)) == nil
}

// nativeArch is the token of the supervisor's own architecture: the only one whose
// argument layout the mount handlers read.
func nativeArch() uint32 {
	switch archName {
	case "amd64":
		return auditArchX86_64
	case "arm64":
		return auditArchAARCH64
	}
	return 0
}

// name names a syscall by architecture and number ("" when it is not one a policy may
// trap).
func name(arch uint32, nr int32) string { return syscallNames[arch][nr] }
