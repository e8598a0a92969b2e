package harden

import (
	"fmt"
	"runtime"
	"slices"
	"sort"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/eci-dev/eci/runtime/policy"
)

// TrapSyscalls makes every syscall the policy denies fail with the policy's errno, in the
// container's one seccomp filter. The container's own profile is kept: a denied name is
// taken out of its rules (whatever their action and argument conditions) and denied
// unconditionally, so a policy can only make the filter stricter. A container without a
// profile (privileged, or Unconfined) gets a filter that allows everything else.
//
// Audit, Allow and Emulate entries are for the seccomp-notify supervisor; they leave the
// filter as the profile has it.
func TrapSyscalls(spec *specs.Spec, in Inputs) error {
	if len(in.Denied) == 0 {
		return nil
	}
	byErrno := map[string][]string{}
	for name, errno := range in.Denied {
		if _, ok := policy.Errnos[errno]; !ok {
			return fmt.Errorf("policy %s denies %s with unknown errno %q", in.Policy, name, errno)
		}
		byErrno[errno] = append(byErrno[errno], name)
	}
	sc := spec.Linux.Seccomp
	if sc == nil {
		sc = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: nativeArchs()}
		spec.Linux.Seccomp = sc
	}
	// Take the denied names out of the profile's rules.
	kept := sc.Syscalls[:0]
	for _, r := range sc.Syscalls {
		r.Names = slices.DeleteFunc(slices.Clone(r.Names), func(n string) bool { _, denied := in.Denied[n]; return denied })
		if len(r.Names) > 0 {
			kept = append(kept, r)
		}
	}
	sc.Syscalls = kept
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
	return nil
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
