//go:build linux

package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/eci-dev/eci/internal/atomicfile"
	"github.com/eci-dev/eci/runtime/config"
	"github.com/eci-dev/eci/runtime/harden"
	"github.com/eci-dev/eci/runtime/idalloc"
	"github.com/eci-dev/eci/runtime/idmap"
	"github.com/eci-dev/eci/runtime/policy"
)

// record is what eci did to a container, kept in <runDir>/containers/<id>.json until the
// container is deleted.
type record struct {
	ID       string              `json:"id"`
	RangeKey string              `json:"rangeKey"`
	Range    idalloc.Range       `json:"range"`
	Pod      harden.Pod          `json:"pod"`
	Rootfs   *idmap.RootfsChange `json:"rootfs,omitempty"`
	// Policy is the policy the container was created under; a sandbox's governs every
	// container of its pod, so a running pod keeps the policy it started with.
	Policy *policy.Pod `json:"policy,omitempty"`
	// PolicySource says where the policy came from (pod file, strict or builtin).
	PolicySource policy.Source `json:"policySource,omitempty"`
	// CgroupsPath is the spec's linux.cgroupsPath: the /proc emulation finds the
	// container's limits there.
	CgroupsPath string `json:"cgroupsPath,omitempty"`
}

func recordPath(cfg config.Config, id string) string {
	return filepath.Join(cfg.RunDir, "containers", id+".json")
}

// writeFileAtomic replaces path through a temp file and a rename. No fsync: these files
// live on tmpfs or in the CRI's per-boot bundle, which a power loss wipes anyway.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	return atomicfile.Write(path, data, perm, false)
}

func openAllocator(cfg config.Config) (*idalloc.Allocator, error) {
	return idalloc.Open(config.AllocatorDir(cfg), idalloc.Pool{Start: cfg.IDPool.Start, Size: cfg.IDPool.Size})
}

// undo is a stack of rollback steps, run newest first when create fails.
type undo []func() error

func (u *undo) push(f func() error) { *u = append(*u, f) }

func (u undo) run() error {
	var errs []error
	for i := len(u) - 1; i >= 0; i-- {
		errs = append(errs, u[i]())
	}
	return errors.Join(errs...)
}

// create hardens the bundle, runs runc create (or run), and undoes everything if runc fails.
func (r *runner) create(ctx context.Context) error {
	var rollback undo
	err := r.harden(&rollback)
	if err != nil {
		if uerr := rollback.run(); uerr != nil {
			err = fmt.Errorf("%w (and undoing the changes failed: %v)", err, uerr)
		}
		return r.fail(fmt.Errorf("container %s: %w", r.inv.ID, err))
	}
	runErr := r.wait(ctx, r.start(r.args))
	if runErr != nil && !(r.inv.Verb == "run" && r.containerExists(r.inv.ID)) {
		if uerr := rollback.run(); uerr != nil {
			r.log.Error(fmt.Errorf("container %s: runc %s failed; undoing eci's changes: %w", r.inv.ID, r.inv.Verb, uerr))
		}
		return runErr
	}
	if runErr == nil && r.inv.Verb == "create" && r.created != nil {
		r.created()
	}
	if runErr == nil && r.started != nil {
		r.started()
	}
	if r.inv.Verb == "run" && !r.containerExists(r.inv.ID) {
		// runc run without --detach deletes the container when it exits.
		r.cleanup(r.inv.ID)
	}
	return runErr
}

// harden edits the bundle's config.json in place, pushing a rollback step for each change.
func (r *runner) harden(rollback *undo) error {
	cfg, cfgPath, err := config.Load()
	if err != nil {
		return fmt.Errorf("eci-runtime settings (%s): %w", cfgPath, err)
	}
	bundle := r.inv.Bundle
	if bundle == "" {
		bundle = "."
	}
	if bundle, err = filepath.Abs(bundle); err != nil {
		return err
	}
	specPath := filepath.Join(bundle, "config.json")
	orig, err := os.ReadFile(specPath)
	if err != nil {
		return fmt.Errorf("reading bundle: %w", err)
	}
	bs, err := parseBundleSpec(orig)
	if err != nil {
		return fmt.Errorf("bundle %s: config.json is not a valid OCI spec: %w", bundle, err)
	}
	spec := &bs.Spec
	id := r.inv.ID
	pod := harden.PodFromAnnotations(id, spec.Annotations)
	alloc, err := openAllocator(cfg)
	if err != nil {
		return err
	}

	pp, source := r.podPolicy(cfg, pod)
	pol := pp.Policy
	rec := record{ID: id, Pod: pod, Policy: &pp, PolicySource: source, CgroupsPath: spec.Linux.CgroupsPath}
	idsPerPod := cfg.IDsPerPod
	if pol.IDsPerPod != 0 {
		idsPerPod = pol.IDsPerPod
	}
	in := harden.Inputs{
		ContainerID: id,
		Pod:         pod,
		Protected:   harden.ProtectedFor(pol, cfg.ExtraProtectedPaths),
		Policy:      pol.String(),
		Audit:       pol.Mode == policy.Audit,
		Exceptions:  pol.Exceptions,
		ImageDigest: pp.Images[pod.Container],
		Denied:      pol.Denied(),
		Supervise:   pol.Supervised(),
		Identity: policy.Supervised{
			PodUID: pod.UID, Namespace: pod.Namespace, Name: pod.Name,
			Policy: pol.Name, Generation: pol.Generation, Mode: pol.Mode,
		},
		ProcDir:         procEmulationDir(cfg, pol),
		ResolvePath:     resolveHostPath,
		IsHostNamespace: isHostNamespace,
	}
	kubeletMapped := hasUserNSMapping(spec)
	var userns *os.File
	switch {
	case kubeletMapped:
		// The kubelet gave the pod its own range (hostUsers: false) and the CRI idmapped
		// the rootfs; eci checks the mapping (harden.UserNamespace) and keeps it.
	case pod.Kind == harden.Container:
		e, ok, err := alloc.Lookup(pod.SandboxID)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%s: sandbox %s has no eci id range (was it created by another runtime?)", pod, pod.SandboxID)
		}
		nsPath, err := sandboxUserNS(r.runcRoot(), pod.SandboxID, e.Range)
		if err != nil {
			return fmt.Errorf("%s: %w", pod, err)
		}
		in.UserNS = harden.UserNS{Path: nsPath, UIDMappings: harden.RangeMapping(e.Range.Start, e.Range.Size), GIDMappings: harden.RangeMapping(e.Range.Start, e.Range.Size)}
		rec.RangeKey, rec.Range = pod.SandboxID, e.Range
		if userns, err = os.Open(nsPath); err != nil {
			return fmt.Errorf("%s: opening the sandbox's user namespace: %w", pod, err)
		}
		defer userns.Close()
	default:
		pid, start, err := idalloc.SelfCreator()
		if err != nil {
			return err
		}
		rg, err := alloc.Allocate(idalloc.Entry{Key: id, RuncRoot: r.runcRoot(), CreatorPID: pid, CreatorStart: start}, idsPerPod)
		if err != nil {
			return fmt.Errorf("%s: %d ids per pod (policy %s): %w", pod, idsPerPod, pol, err)
		}
		rollback.push(func() error { _, err := alloc.Release(id); return err })
		in.UserNS = harden.UserNS{UIDMappings: harden.RangeMapping(rg.Start, rg.Size), GIDMappings: harden.RangeMapping(rg.Start, rg.Size)}
		rec.RangeKey, rec.Range = id, rg
		if userns, err = idmap.NewUserns(in.UserNS.UIDMappings, in.UserNS.GIDMappings); err != nil {
			return err
		}
		defer userns.Close()
	}

	if pod.Kind == harden.Sandbox {
		r.started = func() {
			r.report(cfg, pod, pol, policy.Report{
				Kind: policy.KindStarted, Type: "Normal", Reason: "EciPolicyApplied", Source: source,
				Message: fmt.Sprintf("pod started under IsolationPolicy %s, mode %s (from the %s policy file)", pol, pol.Mode, source),
			})
		}
	}
	if err := r.checkMounts(cfg, spec, in, pp); err != nil {
		return fmt.Errorf("%s: %w", pod, err)
	}
	in.Supervisor = r.supervisor(cfg, spec, in, pod, pol)
	if in.ProcDir != "" {
		procDir := in.ProcDir
		r.created = func() {
			if err := bindKnobs(r.runcRoot(), id, procDir); err != nil {
				// The container keeps the kernel's read-only /proc/sys: no less isolated.
				r.log.Warn(fmt.Errorf("container %s: per-pod /proc/sys knobs not bound: %w", id, err))
			}
		}
	}
	if err := harden.Apply(spec, in, harden.Default()); err != nil {
		return fmt.Errorf("%s: %w", pod, err)
	}
	if userns != nil {
		if err := probeVolumes(spec, userns); err != nil {
			return fmt.Errorf("%s: %w", pod, err)
		}
		rootfs := spec.Root.Path
		if !filepath.IsAbs(rootfs) {
			rootfs = filepath.Join(bundle, rootfs)
		}
		if err := openBundleTo(bundle, rec.Range.Start, rollback); err != nil {
			return err
		}
		if err := checkTraversable(rootfs, rec.Range.Start); err != nil {
			return err
		}
		change, err := idmap.PlanRootfs(rootfs)
		if err != nil {
			return fmt.Errorf("%s: %w", pod, err)
		}
		// Record the plan before carrying it out: if eci dies while mounting, the delete
		// the CRI sends still finds the mount (RootfsChange.Release recognises it).
		rec.Rootfs = change
		if err := writeRecord(cfg, rec, rollback); err != nil {
			return err
		}
		if err := change.Apply(userns, rec.Range.Start, filepath.Join(cfg.RunDir, "mnt", id)); err != nil {
			return fmt.Errorf("%s: %w", pod, err)
		}
		rollback.push(change.Undo)
		if err := premountSysfs(spec, rootfs, rollback); err != nil {
			return fmt.Errorf("%s: %w", pod, err)
		}
	} else if err := writeRecord(cfg, rec, rollback); err != nil {
		return err
	}

	out, err := bs.marshal()
	if err != nil {
		return err
	}
	st, err := os.Stat(specPath)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(specPath, out, st.Mode().Perm()); err != nil {
		return fmt.Errorf("writing hardened config.json: %w", err)
	}
	rollback.push(func() error { return writeFileAtomic(specPath, orig, st.Mode().Perm()) })
	return nil
}

// writeRecord stores what eci did for the container; the first write pushes its removal.
func writeRecord(cfg config.Config, rec record, rollback *undo) error {
	path := recordPath(cfg, rec.ID)
	_, statErr := os.Stat(path)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(path, data, 0o600); err != nil {
		return fmt.Errorf("writing container record: %w", err)
	}
	if os.IsNotExist(statErr) {
		rollback.push(func() error { return os.Remove(path) })
	}
	return nil
}

func hasUserNSMapping(spec *specs.Spec) bool {
	for _, ns := range spec.Linux.Namespaces {
		if ns.Type == specs.UserNamespace {
			return len(spec.Linux.UIDMappings) > 0 || len(spec.Linux.GIDMappings) > 0
		}
	}
	return false
}

// supervisor is the seccomp-notify supervisor's socket when the container has syscalls for
// it (the policy's Audit and Allow traps, the mount family of a container with
// CAP_SYS_ADMIN, sysinfo under the /proc emulation) and it answers; "" otherwise. Without it those syscalls are denied: the
// container still starts, and a pod Event says why.
func (r *runner) supervisor(cfg config.Config, spec *specs.Spec, in harden.Inputs, pod harden.Pod, pol policy.Policy) string {
	need := harden.NeedsSupervisor(spec, in)
	if !need && in.ProcDir == "" {
		return ""
	}
	sock := policy.SupervisorSocket(cfg.RunDir)
	conn, err := net.DialTimeout("unix", sock, time.Second)
	if err == nil {
		_ = conn.Close()
		return sock
	}
	if !need {
		return "" // only sysinfo would have gone to it: the kernel answers
	}
	msg := fmt.Sprintf("eci's seccomp-notify supervisor is not reachable (%v): the syscalls it decides for this container (mounts, and the policy's Audit and Allow traps) fail with EPERM", err)
	r.log.Warn(fmt.Errorf("container %s: %s", r.inv.ID, msg))
	r.report(cfg, pod, pol, policy.Report{Kind: policy.KindFallback, Type: "Warning", Reason: "EciSupervisorUnavailable", What: "supervisor", Message: msg})
	return ""
}

// procEmulationDir is the live FUSE mount of the /proc and /sys emulation, when the policy
// wants emulation and a server is mounted at <runDir>/procfs; "" otherwise, and the
// container sees the kernel's files.
func procEmulationDir(cfg config.Config, pol policy.Policy) string {
	if !pol.ProcEmulation {
		return ""
	}
	dir := filepath.Join(cfg.RunDir, "procfs")
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil || st.Type != unix.FUSE_SUPER_MAGIC {
		return ""
	}
	return dir
}

// resolveHostPath resolves symlinks in a host path; a path that does not resolve is
// checked as written (runc will fail to mount it anyway).
func resolveHostPath(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return p
}

// isHostNamespace reports whether path is the same namespace as the host's (pid 1's) or
// eci-runtime's own.
func isHostNamespace(t specs.LinuxNamespaceType, path string) (bool, error) {
	name := map[specs.LinuxNamespaceType]string{specs.PIDNamespace: "pid", specs.IPCNamespace: "ipc", specs.NetworkNamespace: "net"}[t]
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return false, err
	}
	for _, host := range []string{"/proc/1/ns/" + name, "/proc/self/ns/" + name} {
		var hs unix.Stat_t
		if err := unix.Stat(host, &hs); err == nil && hs.Dev == st.Dev && hs.Ino == st.Ino {
			return true, nil
		}
	}
	return false, nil
}

// sandboxUserNS finds the user namespace of a pod's running sandbox and checks that it maps
// exactly the pod's range.
func sandboxUserNS(runcRoot, sandboxID string, rg idalloc.Range) (string, error) {
	data, err := os.ReadFile(filepath.Join(runcRoot, sandboxID, "state.json"))
	if err != nil {
		return "", fmt.Errorf("sandbox %s is not running: %w", sandboxID, err)
	}
	var st struct {
		Pid   int    `json:"init_process_pid"`
		Start uint64 `json:"init_process_start"`
	}
	if err := json.Unmarshal(data, &st); err != nil || st.Pid <= 0 {
		return "", fmt.Errorf("sandbox %s: unreadable runc state: %v", sandboxID, err)
	}
	uidMap, err := os.ReadFile(fmt.Sprintf("/proc/%d/uid_map", st.Pid))
	if err != nil {
		return "", fmt.Errorf("sandbox %s (pid %d) is not running: %w", sandboxID, st.Pid, err)
	}
	want := fmt.Sprintf("0 %d %d", rg.Start, rg.Size)
	if got := strings.Join(strings.Fields(string(uidMap)), " "); got != want {
		return "", fmt.Errorf("sandbox %s (pid %d) maps %q, not the pod's range %q", sandboxID, st.Pid, got, want)
	}
	return "/proc/" + strconv.Itoa(st.Pid) + "/ns/user", nil
}

// probeVolumes checks that every bind mount eci idmaps can be idmapped, so the error names
// the path and its filesystem instead of coming from deep inside runc.
func probeVolumes(spec *specs.Spec, userns *os.File) error {
	for _, m := range spec.Mounts {
		idmapped := false
		for _, o := range m.Options {
			idmapped = idmapped || o == "idmap" || o == "ridmap"
		}
		if !idmapped {
			continue
		}
		if err := idmap.Probe(m.Source, userns); err != nil {
			return fmt.Errorf("volume at %s: %w", m.Destination, err)
		}
	}
	return nil
}

// premountSysfs sets network sysctls and mounts /sys for a container that joins a network namespace the CRI made:
// its own user namespace cannot (see idmap.MountSysfs). The spec's sysfs mount is replaced
// by a read-only sysfs of that network namespace placed in the rootfs beforehand.
func premountSysfs(spec *specs.Spec, rootfs string, rollback *undo) error {
	netns := ""
	for _, ns := range spec.Linux.Namespaces {
		if ns.Type == specs.NetworkNamespace {
			netns = ns.Path
		}
	}
	i := slices.IndexFunc(spec.Mounts, func(m specs.Mount) bool { return m.Type == "sysfs" && filepath.Clean(m.Destination) == "/sys" })
	if netns == "" {
		return nil // runc makes the network namespace in the container's user namespace
	}
	// Network sysctls (containerd sets net.ipv4.ip_unprivileged_port_start) likewise.
	net := map[string]string{}
	for k, v := range spec.Linux.Sysctl {
		if strings.HasPrefix(k, "net.") {
			net[k] = v
		}
	}
	if len(net) > 0 {
		if err := idmap.SetNetSysctls(netns, net); err != nil {
			return err
		}
		for k := range net {
			delete(spec.Linux.Sysctl, k)
		}
	}
	if i < 0 {
		return nil
	}
	target := filepath.Join(rootfs, "sys")
	if err := idmap.MountSysfs(netns, target); err != nil {
		return err
	}
	rollback.push(func() error { return idmap.Unmount(target) })
	spec.Mounts = slices.Delete(spec.Mounts, i, i+1)
	return nil
}

// openBundleTo lets the container's root search the bundle directory when others can't
// (containerd makes it 0700): its group becomes the container's root group, with search
// permission only, as containerd does for the user-namespaced pods it knows about.
func openBundleTo(bundle string, hostRoot uint32, rollback *undo) error {
	var st unix.Stat_t
	if err := unix.Stat(bundle, &st); err != nil {
		return fmt.Errorf("bundle %s: %w", bundle, err)
	}
	if st.Mode&0o001 != 0 || st.Uid == hostRoot || (st.Gid == hostRoot && st.Mode&0o010 != 0) {
		return nil
	}
	if err := unix.Chown(bundle, -1, int(hostRoot)); err != nil {
		return fmt.Errorf("bundle %s: giving the container's root group search permission: %w", bundle, err)
	}
	rollback.push(func() error { return unix.Chown(bundle, -1, int(st.Gid)) })
	if err := unix.Chmod(bundle, (st.Mode&0o7777)|0o010); err != nil {
		return fmt.Errorf("bundle %s: giving the container's root group search permission: %w", bundle, err)
	}
	rollback.push(func() error { return unix.Chmod(bundle, st.Mode&0o7777) })
	return nil
}

// checkTraversable fails early, with a clear message, when the container's root could not
// reach its rootfs: runc needs every directory on the way to be searchable by it.
func checkTraversable(rootfs string, hostRoot uint32) error {
	for dir := filepath.Dir(rootfs); ; dir = filepath.Dir(dir) {
		var st unix.Stat_t
		if err := unix.Stat(dir, &st); err != nil {
			return fmt.Errorf("rootfs %s: %w", rootfs, err)
		}
		searchable := st.Mode&0o001 != 0 || (st.Uid == hostRoot && st.Mode&0o100 != 0) || (st.Gid == hostRoot && st.Mode&0o010 != 0)
		if !searchable {
			return fmt.Errorf("rootfs %s: directory %s (mode %o) is not searchable by the container's root (host uid %d); make it o+x", rootfs, dir, st.Mode&0o7777, hostRoot)
		}
		if dir == "/" {
			return nil
		}
	}
}

// delete runs runc delete and, once runc has no state for the container any more, undoes
// what eci did for it: the stacked rootfs mount, the record, and the id range it owned.
func (r *runner) delete(ctx context.Context) error {
	err := r.wait(ctx, r.start(r.args))
	if !r.containerExists(r.inv.ID) {
		r.cleanup(r.inv.ID)
	}
	return err
}

// cleanup releases what eci holds for a container that runc no longer knows.
func (r *runner) cleanup(id string) {
	cfg, _, err := config.Load()
	if err != nil {
		r.log.Error(fmt.Errorf("container %s: cleanup: %w", id, err))
		return
	}
	path := recordPath(cfg, id)
	if data, err := os.ReadFile(path); err == nil {
		var rec record
		if err := json.Unmarshal(data, &rec); err != nil {
			r.log.Error(fmt.Errorf("container %s: cleanup: record %s: %w", id, path, err))
		} else if rec.Rootfs != nil {
			// The sysfs eci may have placed in the rootfs (premountSysfs) goes first.
			if err := idmap.Unmount(filepath.Join(rec.Rootfs.Rootfs, "sys")); err != nil {
				r.log.Error(fmt.Errorf("container %s: cleanup: %w", id, err))
			}
			if err := rec.Rootfs.Release(); err != nil {
				r.log.Error(fmt.Errorf("container %s: cleanup: %w", id, err))
			}
		}
		_ = os.Remove(path)
	}
	alloc, err := openAllocator(cfg)
	if err == nil {
		_, err = alloc.Release(id)
	}
	if err != nil {
		r.log.Error(fmt.Errorf("container %s: releasing its id range: %w", id, err))
	}
}
