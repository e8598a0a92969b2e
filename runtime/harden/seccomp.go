package harden

import (
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"sort"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/eci-dev/eci/runtime/policy"
)

// TrapSyscalls puts the policy's trapped syscalls into the container's one seccomp filter,
// merged with the container's own profile (RuntimeDefault, Localhost or none):
//
//   - a denied name fails with the policy's errno;
//   - an Audit or Allow name goes to the supervisor (SCMP_ACT_NOTIFY, listenerPath
//     in.Supervisor, the container's identity as listenerMetadata);
//   - when the container holds CAP_SYS_ADMIN, mount, umount2 and pivot_root always go to
//     the supervisor, which keeps the container's initial mounts as they are, and the
//     fd-based mount API fails with ENOSYS (callers fall back to mount(2));
//   - with the /proc emulation on (in.ProcDir), sysinfo and sched_getaffinity go to the
//     supervisor, which answers with the emulation's numbers (memory, and as many CPUs as
//     the quota allows, so nproc agrees with /sys/devices/system/cpu/online);
//   - with no supervisor (in.Supervisor ""), every name that would go to it fails with
//     EPERM instead: never allowed (the emulated ones are then left to the kernel).
//
// The filter only gets stricter: a name the profile denies stays denied, and a name the
// profile allows only under argument conditions is not handed to the supervisor (a
// mount-family one is denied). Emulate for a name eci has no emulator for (anything
// outside the mount family) leaves it to the kernel, as the profile says. A container
// without a profile (privileged, or Unconfined) gets a filter that allows everything else.
func TrapSyscalls(spec *specs.Spec, in Inputs) error {
	deny := map[string]string{}
	for name, errno := range in.Denied {
		if _, ok := policy.Errnos[errno]; !ok {
			return fmt.Errorf("policy %s denies %s with unknown errno %q", in.Policy, name, errno)
		}
		deny[name] = errno
	}
	notify := map[string]string{}
	for name, action := range in.Supervise {
		if _, denied := deny[name]; denied || slices.Contains(policy.MountFamily, name) {
			continue
		}
		if action == policy.ActionAudit || action == policy.ActionAllow {
			notify[name] = action
		}
	}
	sc := spec.Linux.Seccomp
	verdict := func(name string) profileVerdict { return profileAllows(sc, name) }
	// Names the profile does not simply allow keep the profile's answer.
	for name := range notify {
		if verdict(name) != allowed {
			delete(notify, name)
		}
	}
	if hasCap(spec, "CAP_SYS_ADMIN") {
		for _, name := range policy.MountFamily {
			if _, denied := deny[name]; denied {
				continue
			}
			switch v := verdict(name); {
			case v == denied:
			case v == conditional:
				deny[name] = "EPERM"
			case slices.Contains(policy.NewMountAPI, name):
				deny[name] = "ENOSYS"
			default:
				notify[name] = policy.ActionEmulate
			}
		}
	}
	// sysinfo(2) and sched_getaffinity(2) answer with the /proc emulation's numbers when
	// both the emulation and the supervisor are there; otherwise the kernel answers (the
	// host's numbers), as for the emulated files.
	if in.ProcDir != "" && in.Supervisor != "" && (sc == nil || sc.ListenerPath == "") {
		for _, name := range policy.EmulatedSyscalls {
			_, denied := deny[name]
			_, listed := notify[name]
			if !denied && !listed && verdict(name) == allowed {
				notify[name] = policy.ActionEmulate
			}
		}
	}
	if len(notify) > 0 && (in.Supervisor == "" || (sc != nil && sc.ListenerPath != "")) {
		// No supervisor to decide (or the profile has its own agent: a filter has one):
		// refuse rather than allow.
		for name := range notify {
			deny[name] = "EPERM"
		}
		notify = nil
	}
	if len(deny) == 0 && len(notify) == 0 {
		return nil
	}

	if sc == nil {
		sc = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: nativeArchs()}
		spec.Linux.Seccomp = sc
	}
	// Take the trapped names out of the profile's rules.
	kept := sc.Syscalls[:0]
	for _, r := range sc.Syscalls {
		r.Names = slices.DeleteFunc(slices.Clone(r.Names), func(n string) bool {
			_, d := deny[n]
			_, t := notify[n]
			return d || t
		})
		if len(r.Names) > 0 {
			kept = append(kept, r)
		}
	}
	sc.Syscalls = kept
	byErrno := map[string][]string{}
	for name, errno := range deny {
		byErrno[errno] = append(byErrno[errno], name)
	}
	errnos := make([]string, 0, len(byErrno))
	for e := range byErrno {
		errnos = append(errnos, e)
	}
	sort.Strings(errnos)
	for _, e := range errnos {
		names := byErrno[e]
		sort.Strings(names)
		ret := policy.Errnos[e]
		sc.Syscalls = append(sc.Syscalls, specs.LinuxSyscall{Names: names, Action: specs.ActErrno, ErrnoRet: &ret})
	}
	if len(notify) == 0 {
		return nil
	}
	names := make([]string, 0, len(notify))
	for n := range notify {
		names = append(names, n)
	}
	sort.Strings(names)
	sc.Syscalls = append(sc.Syscalls, specs.LinuxSyscall{Names: names, Action: specs.ActNotify})
	id := in.Identity
	id.Container = in.ContainerID
	id.Traps = notify
	meta, err := json.Marshal(id)
	if err != nil {
		return err
	}
	sc.ListenerPath = in.Supervisor
	sc.ListenerMetadata = string(meta)
	return nil
}

type profileVerdict int

const (
	allowed profileVerdict = iota
	denied
	conditional
)

// profileAllows says what a seccomp profile does with a syscall: allows it, denies it
// (errno, kill, trap, or a notify of its own), or decides by its arguments.
func profileAllows(sc *specs.LinuxSeccomp, name string) profileVerdict {
	if sc == nil {
		return allowed
	}
	allowAction := func(a specs.LinuxSeccompAction) bool { return a == specs.ActAllow || a == specs.ActLog }
	found, allow := false, true
	for _, r := range sc.Syscalls {
		if !slices.Contains(r.Names, name) {
			continue
		}
		if len(r.Args) > 0 {
			return conditional
		}
		found = true
		allow = allow && allowAction(r.Action)
	}
	if !found {
		allow = allowAction(sc.DefaultAction)
	}
	if allow {
		return allowed
	}
	return denied
}

// hasCap reports whether the container's process may hold a capability: whether it is in
// the bounding set (what any program it runs can gain).
func hasCap(spec *specs.Spec, c string) bool {
	if spec.Process == nil || spec.Process.Capabilities == nil {
		return false
	}
	caps := spec.Process.Capabilities
	for _, set := range [][]string{caps.Bounding, caps.Effective, caps.Permitted, caps.Ambient, caps.Inheritable} {
		if slices.Contains(set, c) {
			return true
		}
	}
	return false
}

// nativeArchs are the seccomp architectures of the host: its own and the compat ones a
// process may switch to.
func nativeArchs() []specs.Arch {
	switch runtime.GOARCH {
	case "amd64":
		return []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32}
	case "arm64":
		return []specs.Arch{specs.ArchAARCH64, specs.ArchARM}
	}
	return nil
}

// NeedsSupervisor reports whether TrapSyscalls would hand any syscall of this container to
// the supervisor, were it reachable, that it denies when it is not (sysinfo emulation does
// not count: without a supervisor the kernel answers it).
func NeedsSupervisor(spec *specs.Spec, in Inputs) bool {
	probe := *spec
	linux := *spec.Linux
	if linux.Seccomp != nil {
		sc := *linux.Seccomp
		sc.Syscalls = slices.Clone(sc.Syscalls)
		linux.Seccomp = &sc
	}
	probe.Linux = &linux
	in.Supervisor = "probe"
	in.ProcDir = ""
	if err := TrapSyscalls(&probe, in); err != nil || probe.Linux.Seccomp == nil {
		return false
	}
	return probe.Linux.Seccomp.ListenerPath == "probe"
}
