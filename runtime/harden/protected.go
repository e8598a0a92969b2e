package harden

import (
	"fmt"
	"path"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/eci-dev/eci/runtime/policy"
)

// ProtectedPath is a host path that no container may bind-mount, nor any path below it, nor
// any directory above it (mounting /var would expose /var/lib/kubelet).
type ProtectedPath struct {
	Path   string `json:"path"`
	Reason string `json:"reason,omitempty"`
	// PodScoped are subtrees below Path that belong to the pod itself and may be mounted into
	// its own containers. "{uid}" stands for the pod uid and "{sandbox}" for the sandbox id;
	// a subtree whose placeholder the container cannot fill is not granted.
	PodScoped []string `json:"podScoped,omitempty"`
	// Allow are fixed paths below Path that any container may mount (safe devices).
	Allow []string `json:"allow,omitempty"`
	// Always means no policy exception opens the path (eci's own directories).
	Always bool `json:"always,omitempty"`
}

// BuiltinPolicy names the protected list eci uses when no policy says otherwise.
const BuiltinPolicy = "eci-builtin-default"

// SafeDevices are the host devices a container may have, privileged or not.
var SafeDevices = []specs.LinuxDevice{
	{Path: "/dev/null", Type: "c", Major: 1, Minor: 3},
	{Path: "/dev/zero", Type: "c", Major: 1, Minor: 5},
	{Path: "/dev/full", Type: "c", Major: 1, Minor: 7},
	{Path: "/dev/random", Type: "c", Major: 1, Minor: 8},
	{Path: "/dev/urandom", Type: "c", Major: 1, Minor: 9},
	{Path: "/dev/tty", Type: "c", Major: 5, Minor: 0},
}

func safeDevicePaths() []string {
	paths := make([]string, len(SafeDevices))
	for i, d := range SafeDevices {
		paths[i] = d.Path
	}
	return paths
}

// BuiltinProtected is the built-in protected list: the container runtimes' sockets and
// state, the kubelet's and eci's own state, and the host's root, kernel interfaces, boot
// files and devices.
func BuiltinProtected() []ProtectedPath {
	criSandbox := "io.containerd.grpc.v1.cri/sandboxes/{sandbox}"
	return []ProtectedPath{
		{Path: "/", Reason: "the host's root filesystem"},
		{Path: "/proc", Reason: "the host's process and kernel interface"},
		{Path: "/sys", Reason: "the host's kernel and device interface"},
		{Path: "/dev", Reason: "the host's devices", Allow: safeDevicePaths()},
		{Path: "/boot", Reason: "the host's kernel and boot loader"},
		{Path: "/run/containerd", Reason: "containerd's socket and state", PodScoped: []string{criSandbox}},
		{Path: "/var/lib/containerd", Reason: "containerd's state and images", PodScoped: []string{criSandbox}},
		{Path: "/run/crio", Reason: "CRI-O's socket and state"},
		{Path: "/var/lib/crio", Reason: "CRI-O's state"},
		{Path: "/run/containers/storage", Reason: "CRI-O's container storage", PodScoped: []string{"overlay-containers/{sandbox}/userdata"}},
		{Path: "/var/lib/containers/storage", Reason: "CRI-O's container storage", PodScoped: []string{"overlay-containers/{sandbox}/userdata"}},
		{Path: "/run/docker.sock", Reason: "the Docker socket"},
		{Path: "/run/docker", Reason: "Docker's state"},
		{Path: "/var/lib/docker", Reason: "Docker's state"},
		{Path: "/run/runc", Reason: "runc's container state"},
		{Path: "/var/lib/kubelet", Reason: "the kubelet's state and every pod's volumes", PodScoped: []string{"pods/{uid}"}},
		{Path: "/etc/kubernetes", Reason: "the node's Kubernetes credentials"},
		{Path: "/var/lib/etcd", Reason: "etcd's data"},
		{Path: "/var/log/pods", Reason: "every pod's logs"},
		{Path: "/var/log/containers", Reason: "every pod's logs"},
		{Path: "/var/lib/eci", Reason: "eci's state"},
		{Path: "/run/eci", Reason: "eci's state and sockets"},
		{Path: "/etc/eci", Reason: "eci's settings"},
		{Path: "/opt/eci", Reason: "eci's binaries"},
	}
}

// EciDirs are eci's own directories: protected whatever a policy says, and never opened by
// an exception (a container that could write them could change its own policy).
var EciDirs = []string{"/var/lib/eci", "/run/eci", "/etc/eci", "/opt/eci"}

// ProtectedFor is the protected list of a policy: its paths, with the reasons, pod-scoped
// subtrees and safe devices of the built-in entries of the same path, then extra (the
// node's own additions) and eci's own directories.
func ProtectedFor(p policy.Policy, extra []string) []ProtectedPath {
	builtin := map[string]ProtectedPath{}
	for _, b := range BuiltinProtected() {
		builtin[b.Path] = b
	}
	var out []ProtectedPath
	seen := map[string]bool{}
	add := func(pp ProtectedPath) {
		if !seen[pp.Path] {
			seen[pp.Path] = true
			out = append(out, pp)
		}
	}
	for _, pth := range p.Protected {
		pp, ok := builtin[pth]
		if !ok {
			pp = ProtectedPath{Path: pth, Reason: "listed in IsolationPolicy " + p.Name}
		}
		add(pp)
	}
	for _, pth := range extra {
		add(ProtectedPath{Path: pth, Reason: "listed in the node's eci settings"})
	}
	for _, d := range EciDirs {
		add(builtin[d])
	}
	for i := range out {
		out[i].Always = slices.Contains(EciDirs, out[i].Path)
	}
	return out
}

// BuiltinPolicyFor is eci-runtime's built-in policy: the built-in protected list (plus the
// node's extra paths), the default traps, Enforce.
func BuiltinPolicyFor(idsPerPod uint32, extra []string) policy.Policy {
	p := policy.Policy{
		Name: BuiltinPolicy, Mode: policy.Enforce, IDsPerPod: idsPerPod,
		Traps: policy.DefaultTraps(), ImmutableContainerMounts: true, ProcEmulation: true,
	}
	for _, b := range BuiltinProtected() {
		p.Protected = append(p.Protected, b.Path)
	}
	p.Protected = append(p.Protected, extra...)
	return p
}

// DeniedError is a refused bind mount.
type DeniedError struct {
	Source, Destination, Protected, Reason, Policy string
}

func (e *DeniedError) Error() string {
	what := fmt.Sprintf("protected path %s (%s)", e.Protected, e.Reason)
	if e.Source != e.Protected {
		if isBelow(e.Protected, e.Source) {
			what = fmt.Sprintf("it contains protected path %s (%s)", e.Protected, e.Reason)
		} else {
			what = fmt.Sprintf("it is inside protected path %s (%s)", e.Protected, e.Reason)
		}
	}
	return fmt.Sprintf("bind mount of host path %s at %s is refused by policy %s: %s", e.Source, e.Destination, e.Policy, what)
}

// isBelow reports whether p is strictly below dir.
func isBelow(p, dir string) bool {
	if dir == "/" {
		return p != "/"
	}
	return strings.HasPrefix(p, dir+"/")
}

func within(p, dir string) bool { return p == dir || isBelow(p, dir) }

// IsBind reports whether a spec mount is a bind mount of a host path.
func IsBind(m specs.Mount) bool {
	if m.Type == "bind" {
		return true
	}
	return slices.Contains(m.Options, "bind") || slices.Contains(m.Options, "rbind")
}

// podScopedPaths expands a protected path's pod-scoped subtrees for this container.
func podScopedPaths(p ProtectedPath, in Inputs) []string {
	sandbox := in.Pod.SandboxID
	if in.Pod.Kind == Sandbox {
		sandbox = in.ContainerID
	}
	if in.Pod.Kind == Standalone || !safeName(in.Pod.UID) && !safeName(sandbox) {
		return nil
	}
	var out []string
	for _, tmpl := range p.PodScoped {
		if (strings.Contains(tmpl, "{uid}") && !safeName(in.Pod.UID)) ||
			(strings.Contains(tmpl, "{sandbox}") && !safeName(sandbox)) {
			continue
		}
		rel := strings.NewReplacer("{uid}", in.Pod.UID, "{sandbox}", sandbox).Replace(tmpl)
		out = append(out, path.Join(p.Path, rel))
	}
	return out
}

// safeName reports whether an annotation value can stand for one path element.
func safeName(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsAny(s, "/\x00")
}

// checkSource returns a DeniedError when a host path may not be bind-mounted.
func checkSource(src, dst string, in Inputs) *DeniedError {
	for _, p := range in.Protected {
		if !p.Always && (policy.Policy{Exceptions: in.Exceptions}).Excepted(p.Path, in.Pod.Namespace, in.ImageDigest) {
			continue
		}
		switch {
		case within(p.Path, src):
			// The source is the protected path or a directory above it.
			return &DeniedError{Source: src, Destination: dst, Protected: p.Path, Reason: p.Reason, Policy: in.Policy}
		case p.Path != "/" && isBelow(src, p.Path):
			// "/" protects only itself: everything is below it.
			if slices.Contains(p.Allow, src) {
				continue
			}
			if slices.ContainsFunc(podScopedPaths(p, in), func(d string) bool { return within(src, d) }) {
				continue
			}
			return &DeniedError{Source: src, Destination: dst, Protected: p.Path, Reason: p.Reason, Policy: in.Policy}
		}
	}
	return nil
}

// MountViolations returns every bind mount of a protected host path that no exception
// opens, in spec order. The source is checked both as written and with its symlinks
// resolved on the host. An error means a mount eci cannot judge (a relative source).
func MountViolations(spec *specs.Spec, in Inputs) ([]*DeniedError, error) {
	var out []*DeniedError
	for _, m := range spec.Mounts {
		if !IsBind(m) {
			continue
		}
		if !path.IsAbs(m.Source) {
			return nil, fmt.Errorf("bind mount at %s: source %q is not an absolute host path", m.Destination, m.Source)
		}
		srcs := []string{path.Clean(m.Source)}
		if in.ResolvePath != nil {
			if r := in.ResolvePath(srcs[0]); r != srcs[0] {
				srcs = append(srcs, r)
			}
		}
		for _, src := range srcs {
			if d := checkSource(src, m.Destination, in); d != nil {
				out = append(out, d)
				break
			}
		}
	}
	return out, nil
}

// ProtectedMounts refuses bind mounts of protected host paths (in Audit mode it lets them
// through: the caller reports MountViolations).
func ProtectedMounts(spec *specs.Spec, in Inputs) error {
	v, err := MountViolations(spec, in)
	if err != nil {
		return err
	}
	if len(v) > 0 && !in.Audit {
		return v[0]
	}
	return nil
}

// IDMapVolumes makes every bind mount of a host path an idmapped mount (runc's "idmap", or
// "ridmap" for recursive binds), so files keep their on-disk owners as seen from inside the
// container and nothing is ever chowned. Safe device nodes are left as they are.
func IDMapVolumes(spec *specs.Spec, in Inputs) error {
	for i := range spec.Mounts {
		m := &spec.Mounts[i]
		if !IsBind(*m) || len(m.UIDMappings) > 0 || len(m.GIDMappings) > 0 ||
			slices.Contains(m.Options, "idmap") || slices.Contains(m.Options, "ridmap") ||
			slices.Contains(safeDevicePaths(), path.Clean(m.Source)) {
			continue
		}
		if slices.Contains(m.Options, "rbind") {
			m.Options = append(m.Options, "ridmap")
		} else {
			m.Options = append(m.Options, "idmap")
		}
	}
	return nil
}
