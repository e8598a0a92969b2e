package harden

import (
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func ptr[T any](v T) *T { return &v }

// safeDeviceRules is the device cgroup allowlist: the safe devices, the pty master and the
// container's own pseudo-terminals.
func safeDeviceRules() []specs.LinuxDeviceCgroup {
	rules := []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}
	for _, d := range SafeDevices {
		rules = append(rules, specs.LinuxDeviceCgroup{Allow: true, Type: d.Type, Major: ptr(d.Major), Minor: ptr(d.Minor), Access: "rwm"})
	}
	return append(rules,
		specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: ptr(int64(5)), Minor: ptr(int64(2)), Access: "rwm"}, // /dev/ptmx
		specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: ptr(int64(136)), Access: "rwm"},                     // /dev/pts/*
	)
}

// Devices keeps only the safe host devices, even for a privileged container (which the CRI
// hands every host device), and replaces the device cgroup rules with the safe allowlist.
func Devices(spec *specs.Spec, _ Inputs) error {
	l := spec.Linux
	l.Devices = slices.DeleteFunc(l.Devices, func(d specs.LinuxDevice) bool {
		return !slices.ContainsFunc(SafeDevices, func(s specs.LinuxDevice) bool {
			return s.Type == d.Type && s.Major == d.Major && s.Minor == d.Minor
		})
	})
	if l.Resources == nil {
		l.Resources = &specs.LinuxResources{}
	}
	l.Resources.Devices = safeDeviceRules()
	return nil
}

// DefaultMaskedPaths and DefaultReadonlyPaths are the CRI's defaults for unprivileged
// containers; eci enforces them for privileged ones too.
var (
	DefaultMaskedPaths = []string{
		"/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys",
		"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
		"/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
	}
	DefaultReadonlyPaths = []string{
		"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
	}
)

// Masks keeps the default masked and read-only /proc and /sys paths and mounts /sys
// read-only, privileged or not.
func Masks(spec *specs.Spec, _ Inputs) error {
	l := spec.Linux
	for _, p := range DefaultMaskedPaths {
		if !slices.Contains(l.MaskedPaths, p) {
			l.MaskedPaths = append(l.MaskedPaths, p)
		}
	}
	for _, p := range DefaultReadonlyPaths {
		if !slices.Contains(l.ReadonlyPaths, p) {
			l.ReadonlyPaths = append(l.ReadonlyPaths, p)
		}
	}
	for i := range spec.Mounts {
		m := &spec.Mounts[i]
		if m.Type != "sysfs" && m.Destination != "/sys" {
			continue
		}
		m.Options = slices.DeleteFunc(m.Options, func(o string) bool { return o == "rw" })
		if !slices.Contains(m.Options, "ro") {
			m.Options = append(m.Options, "ro")
		}
	}
	return nil
}
