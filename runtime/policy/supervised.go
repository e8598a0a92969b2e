package policy

import "path/filepath"

// SupervisorSocket is where eci-node's seccomp-notify supervisor listens for the notify
// fds runc hands over (the filter's listenerPath).
func SupervisorSocket(runDir string) string { return filepath.Join(runDir, "supervisor.sock") }

// MountFamily are the syscalls that change a mount namespace. When a container holds
// CAP_SYS_ADMIN they are always supervised (mount, umount2, pivot_root) or refused (the new
// mount API), whatever the policy says, so that the mounts it was created with stay as
// they are.
var MountFamily = []string{"mount", "umount2", "pivot_root", "move_mount", "open_tree", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr"}

// NewMountAPI are the calls of the fd-based mount API. eci answers them ENOSYS for a
// container with CAP_SYS_ADMIN: libmount and other callers then fall back to mount(2),
// which the supervisor vets and performs.
var NewMountAPI = []string{"move_mount", "open_tree", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr"}

// Supervised is what eci-runtime tells the supervisor about a container, as the seccomp
// filter's listenerMetadata: who it is and what to do with each trapped syscall.
type Supervised struct {
	Container  string `json:"container"`
	PodUID     string `json:"podUID,omitempty"`
	Namespace  string `json:"namespace,omitempty"`
	Name       string `json:"name,omitempty"`
	Policy     string `json:"policy"`
	Generation int64  `json:"generation"`
	Mode       Mode   `json:"mode"`
	// Traps maps each trapped syscall to its action: Audit, Allow or Emulate.
	Traps map[string]string `json:"traps"`
}

// EmulatedSyscalls are the syscalls the supervisor answers for the /proc emulation, with
// the container's own numbers: sysinfo (memory, uptime) and sched_getaffinity (as many
// CPUs as its quota allows, which is what nproc and most runtimes count).
var EmulatedSyscalls = []string{"sysinfo", "sched_getaffinity"}
