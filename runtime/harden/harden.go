// Package harden holds eci's spec modifiers: pure edits of an OCI runtime spec that turn a
// container, privileged or not, into an isolated one. Each modifier is a
// func(*specs.Spec, Inputs) error; everything a modifier needs from the host arrives in
// Inputs, so every modifier is golden-tested without root.
package harden

import (
	"fmt"
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/eci-dev/eci/runtime/policy"
)

// Modifier is one isolation feature.
type Modifier struct {
	Name  string
	Apply func(*specs.Spec, Inputs) error
}

// Inputs is what the modifiers know about the container and the host.
type Inputs struct {
	// ContainerID is the runc container id.
	ContainerID string
	// Pod is the container's pod identity, from the CRI annotations.
	Pod Pod
	// UserNS is the user namespace eci gives the container. It is empty when the spec
	// already carries a mapping (the kubelet's hostUsers: false), which is then validated
	// and kept.
	UserNS UserNS
	// Protected is the list of host paths no container may bind-mount.
	Protected []ProtectedPath
	// Policy names the policy the protected list comes from, for error messages.
	Policy string
	// Audit is the policy's Audit mode: protected mounts are reported (MountViolations)
	// but not refused.
	Audit bool `json:"audit,omitempty"`
	// Exceptions open protected paths for the containers they match.
	Exceptions []policy.Exception `json:"exceptions,omitempty"`
	// ImageDigest is the digest the pod spec pins the container's image by ("" if none).
	ImageDigest string `json:"imageDigest,omitempty"`
	// ProcDir is the live mount of eci's /proc and /sys emulation ("" when the policy
	// turns emulation off or no server is mounted): the container gets
	// <ProcDir>/<container id>/<name> bound over each emulated file.
	ProcDir string `json:"procDir,omitempty"`
	// Denied maps the syscalls the policy denies to the errno they fail with.
	Denied map[string]string `json:"denied,omitempty"`
	// Supervise maps the syscalls the policy hands to the seccomp-notify supervisor to
	// their action (Audit, Allow or Emulate).
	Supervise map[string]string `json:"supervise,omitempty"`
	// Supervisor is the supervisor's socket, "" when it could not be reached: the
	// syscalls it would decide are then denied (EPERM), never allowed.
	Supervisor string `json:"supervisor,omitempty"`
	// Identity is who the container is and which policy governs it, for the
	// supervisor (its Traps are filled in by TrapSyscalls).
	Identity policy.Supervised `json:"identity"`
	// ResolvePath resolves symlinks in a host path; nil means the path is only cleaned.
	ResolvePath func(string) string `json:"-"`
	// IsHostNamespace reports whether a namespace path is one of the host's; nil means
	// only a missing namespace counts as the host's.
	IsHostNamespace func(t specs.LinuxNamespaceType, path string) (bool, error) `json:"-"`
}

// UserNS is the user namespace plan for a container.
type UserNS struct {
	// Path, when set, joins an existing user namespace (the pod sandbox's).
	Path        string                 `json:"path,omitempty"`
	UIDMappings []specs.LinuxIDMapping `json:"uidMappings,omitempty"`
	GIDMappings []specs.LinuxIDMapping `json:"gidMappings,omitempty"`
}

// Default is every modifier, in the order eci applies them.
func Default() []Modifier {
	return []Modifier{
		{"host-namespaces", HostNamespaces},
		{"user-namespace", UserNamespace},
		{"protected-mounts", ProtectedMounts},
		{"idmap-volumes", IDMapVolumes},
		{"devices", Devices},
		{"masks", Masks},
		{"trapped-syscalls", TrapSyscalls},
		// Last: its binds are eci's own, neither checked against the protected list nor
		// idmapped (FUSE cannot be).
		{"proc-emulation", ProcEmulation},
	}
}

// Apply runs the modifiers in order and stops at the first error.
func Apply(spec *specs.Spec, in Inputs, mods []Modifier) error {
	if spec.Linux == nil {
		return fmt.Errorf("spec has no linux section")
	}
	for _, m := range mods {
		if err := m.Apply(spec, in); err != nil {
			return err
		}
	}
	return nil
}

// HostNamespaces refuses a container that would share the host's pid, ipc or network
// namespace (hostPID, hostIPC, hostNetwork).
func HostNamespaces(spec *specs.Spec, in Inputs) error {
	hostFlag := map[specs.LinuxNamespaceType]string{
		specs.PIDNamespace:     "hostPID",
		specs.IPCNamespace:     "hostIPC",
		specs.NetworkNamespace: "hostNetwork",
	}
	for _, t := range []specs.LinuxNamespaceType{specs.PIDNamespace, specs.IPCNamespace, specs.NetworkNamespace} {
		i := slices.IndexFunc(spec.Linux.Namespaces, func(ns specs.LinuxNamespace) bool { return ns.Type == t })
		if i < 0 {
			return fmt.Errorf("eci refuses to share the host's %s namespace (%s): an isolated container needs its own", t, hostFlag[t])
		}
		path := spec.Linux.Namespaces[i].Path
		if path == "" || in.IsHostNamespace == nil {
			continue
		}
		host, err := in.IsHostNamespace(t, path)
		if err != nil {
			return fmt.Errorf("checking %s namespace %s: %w", t, path, err)
		}
		if host {
			return fmt.Errorf("eci refuses to share the host's %s namespace (%s): %s is the host's", t, hostFlag[t], path)
		}
	}
	return nil
}
