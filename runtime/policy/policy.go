// Package policy is the compiled IsolationPolicy that eci-node hands to eci-runtime, the
// lookup eci-runtime does on every create, and the report spool it answers through. It
// imports no Kubernetes package: eci-runtime must start fast.
//
// Files, all under the run dir (/run/eci, per boot):
//
//	policy/pods/<pod uid>.json   the policy governing one pod (eci-node writes it when the
//	                             pod is bound to the node, and rewrites it on policy edits)
//	policy/strict.json           every policy's protections at once, Enforce, no
//	                             exceptions: what a pod gets when its own file is missing
//	events/<time>-<n>.json       reports from eci-runtime (denials, audits, fallbacks,
//	                             pod starts) that eci-node turns into Events and metrics
package policy

import (
	"fmt"
	"path"
	"slices"
	"strings"
)

// Mode is Enforce or Audit.
type Mode string

// The modes.
const (
	Enforce Mode = "Enforce"
	Audit   Mode = "Audit"
)

// Trap actions, as in the IsolationPolicy API.
const (
	ActionDeny    = "Deny"
	ActionAudit   = "Audit"
	ActionAllow   = "Allow"
	ActionEmulate = "Emulate"
)

// Names of the policies eci makes up itself.
const (
	// BuiltinName is the policy eci-runtime uses when eci-node has never written any
	// policy data on this node.
	BuiltinName = "eci-builtin-default"
	// StrictName is the union of every policy, used when a pod's own policy is missing.
	StrictName = "eci-strict"
)

// Policy is what eci enforces for one pod.
type Policy struct {
	// Name and Generation identify the IsolationPolicy (generation 0 for eci's own).
	Name       string `json:"name"`
	Generation int64  `json:"generation"`
	Mode       Mode   `json:"mode"`
	// IDsPerPod is the size of the pod's id range; 0 means the node's setting.
	IDsPerPod uint32 `json:"idsPerPod,omitempty"`
	// Protected are the host paths no container of the pod may bind-mount.
	Protected  []string    `json:"protected"`
	Exceptions []Exception `json:"exceptions,omitempty"`
	// Traps are the trapped syscalls and what happens to each.
	Traps                    []Trap `json:"traps,omitempty"`
	ImmutableContainerMounts bool   `json:"immutableContainerMounts"`
	ProcEmulation            bool   `json:"procEmulation"`
}

// Exception opens protected paths for containers that match every field set.
type Exception struct {
	Namespaces []string `json:"namespaces,omitempty"`
	// Images are image digests (sha256:...); a container matches when its image was
	// pinned by one of them in the pod spec.
	Images []string `json:"images,omitempty"`
	// Paths are the protected paths opened; empty means all of them.
	Paths []string `json:"paths,omitempty"`
}

// Trap is one trappedSyscalls entry.
type Trap struct {
	Names  []string `json:"names"`
	Action string   `json:"action"`
	Errno  string   `json:"errno,omitempty"`
}

// Pod is the content of a pod file.
type Pod struct {
	UID       string `json:"uid"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Images maps container names to the image digests their pod spec pins
	// (image@sha256:...); containers whose image is a tag are absent.
	Images map[string]string `json:"images,omitempty"`
	Policy Policy            `json:"policy"`
}

// String names the policy and generation for messages.
func (p Policy) String() string {
	if p.Generation == 0 {
		return p.Name
	}
	return fmt.Sprintf("%s (generation %d)", p.Name, p.Generation)
}

// Validate checks what eci-runtime relies on; a file that fails it is not used.
func (p Policy) Validate() error {
	if p.Name == "" {
		return fmt.Errorf("policy has no name")
	}
	if p.Mode != Enforce && p.Mode != Audit {
		return fmt.Errorf("policy %s: mode %q is neither Enforce nor Audit", p.Name, p.Mode)
	}
	if p.IDsPerPod%65536 != 0 {
		return fmt.Errorf("policy %s: idsPerPod %d is not a multiple of 65536", p.Name, p.IDsPerPod)
	}
	for _, s := range p.Protected {
		if !CleanAbs(s) {
			return fmt.Errorf("policy %s: protected path %q is not absolute and clean", p.Name, s)
		}
	}
	for _, t := range p.Traps {
		switch t.Action {
		case ActionDeny:
			if _, ok := Errnos[t.Errno]; !ok {
				return fmt.Errorf("policy %s: trap %v: unknown errno %q", p.Name, t.Names, t.Errno)
			}
		case ActionAudit, ActionAllow, ActionEmulate:
		default:
			return fmt.Errorf("policy %s: trap %v: unknown action %q", p.Name, t.Names, t.Action)
		}
	}
	return nil
}

// CleanAbs reports whether p is an absolute, clean path.
func CleanAbs(p string) bool { return strings.HasPrefix(p, "/") && path.Clean(p) == p }

// Excepted reports whether a container of a pod in namespace ns, whose image digest is
// digest ("" when not pinned), may mount the protected path protected.
func (p Policy) Excepted(protected, ns, digest string) bool {
	for _, e := range p.Exceptions {
		if len(e.Namespaces) == 0 && len(e.Images) == 0 {
			continue // never a blanket exception
		}
		if len(e.Namespaces) > 0 && !slices.Contains(e.Namespaces, ns) {
			continue
		}
		if len(e.Images) > 0 && (digest == "" || !slices.Contains(e.Images, digest)) {
			continue
		}
		if len(e.Paths) == 0 || slices.Contains(e.Paths, protected) {
			return true
		}
	}
	return false
}

// Denied returns the names a policy denies, with their errno, in Enforce mode; an Audit
// policy denies nothing.
func (p Policy) Denied() map[string]string {
	out := map[string]string{}
	if p.Mode != Enforce {
		return out
	}
	for _, t := range p.Traps {
		if t.Action == ActionDeny {
			for _, n := range t.Names {
				out[n] = t.Errno
			}
		}
	}
	return out
}

// Errnos are the errno names the API allows, with their numbers on Linux.
var Errnos = map[string]uint{
	"EPERM": 1, "ENOENT": 2, "ENXIO": 6, "EAGAIN": 11, "ENOMEM": 12, "EACCES": 13,
	"EFAULT": 14, "EBUSY": 16, "ENODEV": 19, "EINVAL": 22, "EROFS": 30, "ENOSYS": 38,
	"ENOTSUP": 95, "EOPNOTSUPP": 95,
}

// DefaultTraps are the trapped syscalls of eci's built-in policy, the same as the chart's
// eci-default IsolationPolicy: the mount family is emulated, and what reaches the host
// kernel's shared state (reboot, modules, kexec, swap, accounting, file handles, BPF, perf,
// keys) is denied.
func DefaultTraps() []Trap {
	return []Trap{
		{Names: []string{"mount", "umount2", "mount_setattr", "move_mount", "open_tree", "fsopen", "fsconfig", "fsmount", "fspick"}, Action: ActionEmulate},
		{Names: []string{"reboot", "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "swapon", "swapoff", "acct", "open_by_handle_at", "bpf", "perf_event_open", "keyctl", "add_key", "request_key"}, Action: ActionDeny, Errno: "EPERM"},
	}
}

// Supervised returns the names the seccomp-notify supervisor decides, with their action
// (Audit, Allow or Emulate). An Audit policy records what it would deny: its Deny entries
// are Audit here.
func (p Policy) Supervised() map[string]string {
	out := map[string]string{}
	for _, t := range p.Traps {
		a := t.Action
		if a == ActionDeny {
			if p.Mode == Enforce {
				continue
			}
			a = ActionAudit
		}
		for _, n := range t.Names {
			out[n] = a
		}
	}
	return out
}
