package supervisor

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/eci-dev/eci/runtime/policy"
)

// Call is one trapped syscall as the supervisor sees it.
type Call struct {
	Name string
	// Native: the caller runs the supervisor's own architecture, so the arguments have
	// its layout. A compat (32-bit) caller's mount-family calls are refused.
	Native bool
	Args   [6]uint64
	// InitialNS: the caller is in the mount namespace the container was created with
	// (not one it made itself with unshare).
	InitialNS bool
}

// Verdict is what happens to a call.
type Verdict int

// The verdicts.
const (
	// Continue lets the kernel run the call as the container made it.
	Continue Verdict = iota
	// Deny fails it with Errno.
	Deny
	// Perform has the supervisor vet and perform Mount on the container's behalf.
	Perform
)

func (v Verdict) String() string {
	switch v {
	case Continue:
		return "continue"
	case Deny:
		return "deny"
	case Perform:
		return "perform"
	}
	return fmt.Sprintf("verdict(%d)", int(v))
}

// Decision is the answer to a call.
type Decision struct {
	Verdict Verdict
	Errno   unix.Errno
	Mount   *MountOp
	// Emulate names a call the supervisor answers itself with the /proc emulation's
	// numbers (Perform, Mount nil): "sysinfo" writes its struct at At, and
	// "sched_getaffinity" a CPU mask of at most Len bytes.
	Emulate string
	At, Len uint64
	// Audit: report the call (an Audit trap, or what an Audit policy let through).
	Audit bool
	// Reason says why, for the log and the pod Event.
	Reason string
	// path is the container mount a refused mount was about.
	path string
}

// MountOp is a mount(2) or umount2(2) as read from the caller's memory.
type MountOp struct {
	Unmount     bool
	Source      string
	Target      string
	FSType      string
	Data        string
	Flags       uint64
	UmountFlags int
}

// Memory reads NUL-terminated strings from the calling process.
type Memory interface {
	String(addr uint64, max int) (string, error)
}

// errTooLong is a string with no NUL within its limit.
var errTooLong = errors.New("string too long")

// Limits of what is read from the caller: a path (PATH_MAX), a filesystem type and a
// mount's data (one page, as the kernel copies it).
const (
	maxPath   = 4096
	maxFSType = 256
	maxData   = 4096
)

// Decide answers a call from the container's traps and the call's registers alone; a mount
// or unmount in the container's own mount namespace is read from memory and left to Vet
// and perform.
func Decide(traps map[string]string, mode policy.Mode, call Call, mem Memory) Decision {
	action, ok := traps[call.Name]
	if !ok {
		return Decision{Verdict: Deny, Errno: unix.EPERM, Reason: call.Name + " is not trapped for this container"}
	}
	switch call.Name {
	case "mount", "umount2", "pivot_root":
		return decideMount(mode, call, mem)
	case "sysinfo":
		if action == policy.ActionEmulate {
			if !call.Native || call.Args[0] == 0 {
				return Decision{Verdict: Continue} // the kernel's answer (or its EFAULT)
			}
			return Decision{Verdict: Perform, Emulate: "sysinfo", At: call.Args[0]}
		}
	case "sched_getaffinity":
		if action == policy.ActionEmulate {
			// Only a task asking about itself (pid 0) gets the container's CPU count;
			// another pid would need translating from the caller's pid namespace.
			if !call.Native || call.Args[0] != 0 || call.Args[2] == 0 {
				return Decision{Verdict: Continue}
			}
			return Decision{Verdict: Perform, Emulate: "sched_getaffinity", At: call.Args[2], Len: call.Args[1]}
		}
	}
	switch action {
	case policy.ActionAudit:
		return Decision{Verdict: Continue, Audit: true, Reason: call.Name + " audited by the policy"}
	case policy.ActionAllow:
		return Decision{Verdict: Continue}
	}
	return Decision{Verdict: Deny, Errno: unix.EPERM, Reason: fmt.Sprintf("eci does not emulate %s", call.Name)}
}

// refuse is a denial, or in an Audit policy the kernel's own answer, reported.
func refuse(mode policy.Mode, errno unix.Errno, reason string) Decision {
	if mode == policy.Audit {
		return Decision{Verdict: Continue, Audit: true, Reason: reason + " (allowed: the policy is in Audit mode)"}
	}
	return Decision{Verdict: Deny, Errno: errno, Audit: true, Reason: reason}
}

func decideMount(mode policy.Mode, call Call, mem Memory) Decision {
	if !call.Native {
		return refuse(mode, unix.EPERM, call.Name+" from a compat (32-bit) process")
	}
	if !call.InitialNS {
		// A mount namespace the container made for itself: its mounts are copies the
		// container owns. Unmounting or pivoting there changes nothing the container was
		// given, and depends on nothing in memory. A mount is still vetted (a copy of a
		// read-only mount must stay read-only).
		if call.Name != "mount" {
			return Decision{Verdict: Continue}
		}
	}
	switch call.Name {
	case "pivot_root":
		return refuse(mode, unix.EPERM, "pivot_root in the container's own mount namespace would move its root")
	case "umount2":
		target, err := mem.String(call.Args[0], maxPath)
		if err != nil {
			return readFailed(err)
		}
		return Decision{Verdict: Perform, Mount: &MountOp{Unmount: true, Target: target, UmountFlags: int(call.Args[1])}}
	}
	op := MountOp{Flags: call.Args[3]}
	var err error
	if op.Target, err = mem.String(call.Args[1], maxPath); err != nil {
		return readFailed(err)
	}
	if call.Args[0] != 0 {
		if op.Source, err = mem.String(call.Args[0], maxPath); err != nil {
			return readFailed(err)
		}
	}
	kind := kindOf(op.Flags)
	if call.Args[2] != 0 && kind == kindNew {
		if op.FSType, err = mem.String(call.Args[2], maxFSType); err != nil {
			return readFailed(err)
		}
	}
	if call.Args[4] != 0 && (kind == kindNew || kind == kindRemount) {
		if op.Data, err = mem.String(call.Args[4], maxData); err != nil {
			return readFailed(err)
		}
	}
	return Decision{Verdict: Perform, Mount: &op}
}

func readFailed(err error) Decision {
	if errors.Is(err, errTooLong) {
		return Decision{Verdict: Deny, Errno: unix.ENAMETOOLONG, Reason: "argument too long"}
	}
	return Decision{Verdict: Deny, Errno: unix.EFAULT, Reason: "argument not readable: " + err.Error()}
}

// mountKind is what a mount(2) call does, in the kernel's order of precedence.
type mountKind int

const (
	kindNew mountKind = iota
	kindRemount
	kindBind
	kindPropagation
	kindMove
)

const propagationFlags = unix.MS_SHARED | unix.MS_PRIVATE | unix.MS_SLAVE | unix.MS_UNBINDABLE

func kindOf(flags uint64) mountKind {
	switch {
	case flags&unix.MS_REMOUNT != 0:
		return kindRemount
	case flags&unix.MS_BIND != 0:
		return kindBind
	case flags&propagationFlags != 0:
		return kindPropagation
	case flags&unix.MS_MOVE != 0:
		return kindMove
	}
	return kindNew
}
