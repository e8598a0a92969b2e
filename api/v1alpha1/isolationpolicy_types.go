package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// IsolationPolicy decides, for the eci pods it selects, which host paths
// they may not mount, which syscalls eci traps and what it does with them,
// how many user ids each pod gets, and whether /proc and /sys are
// emulated. When several policies select a pod, the one with the highest
// priority governs it; equal priorities are broken by name (the first in
// alphabetical order wins) and the policy's status says so. The chart
// installs eci-default, which selects every eci pod at priority 0.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=isopol,categories=eci
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Mode",type=string,JSONPath=".spec.mode",description="Enforce refuses what the policy forbids; Audit only records it"
// +kubebuilder:printcolumn:name="Priority",type=integer,JSONPath=".spec.priority",description="Higher wins when several policies select a pod"
// +kubebuilder:printcolumn:name="Nodes Ready",type=integer,JSONPath=".status.nodes.applied",description="Nodes that applied this generation"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=".metadata.creationTimestamp"
type IsolationPolicy struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the object's metadata. An IsolationPolicy is cluster-scoped:
	// it has a name and no namespace.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is what the cluster admin wants for the eci pods this policy
	// selects.
	// +required
	Spec IsolationPolicySpec `json:"spec"`

	// status is what eci observed: whether the spec is valid, and how many
	// nodes applied it. It is written by eci's controller and nodes; do not
	// set it.
	// +optional
	Status IsolationPolicyStatus `json:"status,omitempty"`
}

// IsolationPolicySpec is what a cluster admin wants for the eci pods a
// policy selects.
type IsolationPolicySpec struct {
	// selector chooses the eci pods (pods with runtimeClassName eci) this
	// policy governs. An empty or missing selector selects every eci pod in
	// the cluster.
	// +optional
	Selector PolicySelector `json:"selector,omitempty"`

	// priority orders policies that select the same pod: the highest priority
	// governs the pod, and equal priorities are broken by policy name in
	// alphabetical order. The chart's eci-default policy has priority 0, so
	// any policy with a higher priority overrides it for the pods it selects.
	// +kubebuilder:default=0
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000000
	// +optional
	Priority int32 `json:"priority,omitempty"`

	// mode is Enforce or Audit. Enforce refuses what the policy forbids: a pod
	// that mounts a protected path is not created, and a denied syscall fails.
	// Audit is a dry run: eci allows everything and records what Enforce would
	// have refused, as an Event on the pod and a metric.
	// +kubebuilder:default=Enforce
	// +optional
	Mode PolicyMode `json:"mode,omitempty"`

	// userNamespace sets the user namespace every governed pod runs in.
	// +kubebuilder:default={}
	// +optional
	UserNamespace UserNamespace `json:"userNamespace,omitempty"`

	// protectedMounts lists the host paths governed pods may not bind-mount,
	// and the exceptions to that list.
	// +kubebuilder:default={}
	// +optional
	ProtectedMounts ProtectedMounts `json:"protectedMounts,omitempty"`

	// trappedSyscalls lists the syscalls eci traps for governed pods and what
	// it does with each. A syscall may appear in only one entry. Syscalls not
	// listed run as the container's seccomp profile says.
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:XValidation:rule="self.all(a, self.filter(b, b.names.exists(n, n in a.names)).size() == 1)",messageExpression="'syscalls listed in more than one trappedSyscalls entry: ' + self.map(a, a.names.filter(n, self.filter(b, n in b.names).size() > 1)).filter(d, d.size() > 0)[0].join(', ') + ' (a syscall may appear in only one entry: merge the entries or remove the duplicates)'"
	// +listType=atomic
	// +optional
	TrappedSyscalls []TrappedSyscalls `json:"trappedSyscalls,omitempty"`

	// procEmulation controls eci's emulation of /proc and /sys for governed
	// pods.
	// +kubebuilder:default={}
	// +optional
	ProcEmulation ProcEmulation `json:"procEmulation,omitempty"`
}

// PolicySelector chooses pods by the labels of their namespace and their
// own labels. A pod is selected when both selectors match it; an empty or
// missing selector matches everything.
type PolicySelector struct {
	// namespaceSelector matches the labels of the pod's namespace. Empty or
	// missing matches every namespace. Use the label
	// kubernetes.io/metadata.name to select namespaces by name.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`

	// podSelector matches the pod's own labels. Empty or missing matches every
	// pod.
	// +optional
	PodSelector *metav1.LabelSelector `json:"podSelector,omitempty"`
}

// PolicyMode is whether a policy refuses (Enforce) or only records
// (Audit).
// +kubebuilder:validation:Enum=Enforce;Audit
type PolicyMode string

// The policy modes.
const (
	ModeEnforce PolicyMode = "Enforce"
	ModeAudit   PolicyMode = "Audit"
)

// UserNamespace is the user namespace a governed pod runs in.
type UserNamespace struct {
	// idsPerPod is how many user and group ids each pod's user namespace maps,
	// from a host range no other pod shares. It must be a multiple of 65536
	// and at least 65536, the range a full Linux distribution expects (uid 0
	// to 65535). Larger values let nested containers have their own ranges but
	// use the node's ids up sooner.
	// +kubebuilder:default=65536
	// +kubebuilder:validation:Minimum=65536
	// +kubebuilder:validation:Maximum=268435456
	// +kubebuilder:validation:XValidation:rule="self % 65536 == 0",message="idsPerPod must be a multiple of 65536 (65536, 131072, ...)"
	// +optional
	IDsPerPod int64 `json:"idsPerPod,omitempty"`
}

// ProtectedMounts are the host paths governed pods may not bind-mount.
// +kubebuilder:validation:XValidation:rule="!has(self.exceptions) || self.exceptions.all(e, !has(e.paths) || e.paths.all(p, has(self.paths) && p in self.paths))",message="every path of an exception must be one of protectedMounts.paths"
type ProtectedMounts struct {
	// paths are host paths that governed pods may not bind-mount: not the path
	// itself, not anything below it, and not any directory above it (mounting
	// /var would expose /var/lib/kubelet). Each must be absolute and clean: it
	// starts with /, has no trailing /, no //, and no . or .. segments,
	// because eci compares paths literally. The creation of a pod that mounts
	// one fails, with an Event on the pod naming the path and this policy.
	// +kubebuilder:validation:MaxItems=128
	// +listType=set
	// +optional
	Paths []AbsolutePath `json:"paths,omitempty"`

	// exceptions let chosen pods mount protected paths anyway, the way
	// Docker's Enhanced Container Isolation lets listed images mount the
	// Docker socket. Keep them narrow.
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	// +optional
	Exceptions []MountException `json:"exceptions,omitempty"`

	// immutableContainerMounts, when true, keeps the mounts eci sets up at
	// container creation as they are: a container cannot remount a read-only
	// mount read-write, nor unmount or cover /, /proc, /sys or a protected
	// mount to reveal what lies below.
	// +kubebuilder:default=true
	// +optional
	ImmutableContainerMounts *bool `json:"immutableContainerMounts,omitempty"`
}

// MountException lets chosen pods mount some protected paths. A container
// is excepted when it matches every field that is set: its pod's namespace
// is in namespaces, and its image digest is in images. At least one of
// namespaces and images must be set.
// +kubebuilder:validation:XValidation:rule="has(self.namespaces) || has(self.images)",message="an exception must list namespaces, images or both; an empty exception would except every pod"
type MountException struct {
	// namespaces are the names of the namespaces whose pods this exception
	// covers.
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:items:MaxLength=63
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +listType=set
	// +optional
	Namespaces []string `json:"namespaces,omitempty"`

	// images are the image digests (sha256:<64 hex digits>, as in
	// image@sha256:...) whose containers this exception covers. Digests, not
	// tags: a tag can be moved to another image.
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:MinItems=1
	// +listType=set
	// +optional
	Images []ImageDigest `json:"images,omitempty"`

	// paths are the protected paths this exception opens; each must be one of
	// protectedMounts.paths. Missing means all of them.
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:MinItems=1
	// +listType=set
	// +optional
	Paths []AbsolutePath `json:"paths,omitempty"`
}

// AbsolutePath is an absolute, clean host path: it starts with /, does not
// end with / (except / itself), and has no //, . or .. segments.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=1024
// +kubebuilder:validation:XValidation:rule="self.startsWith('/')",messageExpression="'path ' + self + ' is not absolute: it must start with /'"
// +kubebuilder:validation:XValidation:rule="self == '/' || !self.endsWith('/')",messageExpression="'path ' + self + ' must not end with /'"
// +kubebuilder:validation:XValidation:rule="!self.contains('//')",messageExpression="'path ' + self + ' must not contain //'"
// +kubebuilder:validation:XValidation:rule="!self.contains('/./') && !self.endsWith('/.') && !self.contains('/../') && !self.endsWith('/..')",messageExpression="'path ' + self + ' must not contain . or .. segments: eci compares paths literally, write the path they resolve to'"
type AbsolutePath string

// ImageDigest is an image's content digest, sha256:<64 lowercase hex
// digits>.
// +kubebuilder:validation:MaxLength=71
// +kubebuilder:validation:XValidation:rule="self.matches('^sha256:[0-9a-f]{64}$')",messageExpression="'image ' + self + ' is not a digest: write sha256: and 64 lowercase hex digits, as in image@sha256:...'"
type ImageDigest string

// TrappedSyscalls are syscalls eci traps, and what it does with them.
// +kubebuilder:validation:XValidation:rule="self.action != 'Deny' || has(self.errno)",message="errno is required when action is Deny, for example errno: EPERM"
// +kubebuilder:validation:XValidation:rule="self.action == 'Deny' || !has(self.errno)",message="errno is only allowed when action is Deny"
type TrappedSyscalls struct {
	// names are the syscalls, as named on x86_64 and arm64 (umount2, not
	// umount). Only the syscalls that reach the host kernel's shared state may
	// be listed: the mount family, modules, kexec, reboot, swap, keys, BPF,
	// perf, ptrace, namespaces, clocks, device nodes, ownership and extended
	// attributes, and a few more. A name only one architecture has is ignored
	// on the other.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +listType=set
	// +required
	Names []SyscallName `json:"names"`

	// action is what eci does when a governed container makes one of these
	// syscalls: Deny fails it with errno; Audit records it (log, metric and an
	// Event on the pod) and lets it run; Allow lets it run; Emulate has eci
	// perform it on the container's behalf, within what the container may do
	// (for example a mount of a filesystem the container owns). A policy in
	// Audit mode records Deny as Audit.
	// +required
	Action SyscallAction `json:"action"`

	// errno is the error a denied syscall fails with, such as EPERM. Required
	// when action is Deny, and not allowed otherwise.
	// +optional
	Errno Errno `json:"errno,omitempty"`
}

// SyscallName is the name of a syscall eci can trap (see KnownSyscalls).
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=64
// +kubebuilder:validation:Pattern=`^[a-z_][a-z0-9_]*$`
// +kubebuilder:validation:XValidation:rule="self in ['mount', 'umount2', 'mount_setattr', 'move_mount', 'open_tree', 'fsopen', 'fsconfig', 'fsmount', 'fspick', 'pivot_root', 'chroot', 'reboot', 'kexec_load', 'kexec_file_load', 'init_module', 'finit_module', 'delete_module', 'swapon', 'swapoff', 'acct', 'syslog', 'quotactl', 'quotactl_fd', 'vhangup', 'uselib', 'ustat', 'sysfs', 'sysinfo', 'open_by_handle_at', 'name_to_handle_at', 'bpf', 'perf_event_open', 'fanotify_init', 'ptrace', 'process_vm_readv', 'process_vm_writev', 'kcmp', 'pidfd_getfd', 'userfaultfd', 'personality', 'io_uring_setup', 'io_uring_enter', 'io_uring_register', 'keyctl', 'add_key', 'request_key', 'unshare', 'setns', 'sethostname', 'setdomainname', 'clock_settime', 'clock_adjtime', 'settimeofday', 'adjtimex', 'ioperm', 'iopl', 'modify_ldt', 'mknod', 'mknodat', 'chown', 'lchown', 'fchown', 'fchownat', 'setxattr', 'lsetxattr', 'fsetxattr', 'removexattr', 'lremovexattr', 'fremovexattr']",messageExpression="'unknown syscall ' + self + ': not one eci can trap on x86_64 or arm64 (names are lower case, as in man 2 syscalls; umount is umount2)'"
type SyscallName string

// SyscallAction is what eci does with a trapped syscall.
// +kubebuilder:validation:Enum=Deny;Audit;Allow;Emulate
type SyscallAction string

// The syscall actions.
const (
	ActionDeny    SyscallAction = "Deny"
	ActionAudit   SyscallAction = "Audit"
	ActionAllow   SyscallAction = "Allow"
	ActionEmulate SyscallAction = "Emulate"
)

// Errno is the name of an error number, as in errno(3).
// +kubebuilder:validation:Enum=EPERM;EACCES;ENOENT;EINVAL;EBUSY;EROFS;ENOSYS;ENOTSUP;EOPNOTSUPP;ENODEV;ENXIO;EAGAIN;ENOMEM;EFAULT
type Errno string

// ProcEmulation controls eci's emulation of /proc and /sys.
type ProcEmulation struct {
	// enabled, when true, gives governed containers eci's emulated view of the
	// /proc and /sys files that would otherwise show the host's (such as
	// /proc/meminfo and /proc/uptime), sized to the container's limits.
	// +kubebuilder:default=true
	// +optional
	Enabled *bool `json:"enabled,omitempty"`
}

// IsolationPolicyStatus is what eci observed about a policy.
type IsolationPolicyStatus struct {
	// observedGeneration is the metadata.generation of the spec the controller
	// last evaluated. Conditions and node counts describe that generation.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions are Valid (the spec passed the checks the API server cannot
	// do, such as another policy with the same priority selecting the same
	// pods) and Ready (every node applied this generation).
	// +kubebuilder:validation:MaxItems=8
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// nodes counts the nodes running eci and how many applied this generation.
	// +optional
	Nodes NodeRollup `json:"nodes,omitempty"`
}

// NodeRollup counts the nodes running eci by whether they applied a
// policy's generation.
type NodeRollup struct {
	// desired is the number of nodes running eci that should apply this
	// policy.
	// +optional
	Desired int32 `json:"desired"`
	// applied is the number of nodes that applied the observed generation.
	// +optional
	Applied int32 `json:"applied"`
	// failed is the number of nodes that could not apply the observed
	// generation.
	// +optional
	Failed int32 `json:"failed"`
	// failures names some of the nodes that failed and why (at most 16).
	// +kubebuilder:validation:MaxItems=16
	// +listType=map
	// +listMapKey=node
	// +optional
	Failures []NodeFailure `json:"failures,omitempty"`
}

// NodeFailure is a node that could not apply a policy, and why.
type NodeFailure struct {
	// node is the node's name.
	// +kubebuilder:validation:MaxLength=253
	// +required
	Node string `json:"node"`
	// message says why the node could not apply the policy.
	// +kubebuilder:validation:MaxLength=1024
	// +required
	Message string `json:"message"`
}

// IsolationPolicyList is a list of IsolationPolicy objects.
//
// +kubebuilder:object:root=true
type IsolationPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the policies.
	Items []IsolationPolicy `json:"items"`
}
