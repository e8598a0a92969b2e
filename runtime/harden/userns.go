package harden

import (
	"fmt"
	"slices"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// MinHostID is the lowest host id a container may map: ids below it belong to the host's
// own users and services.
const MinHostID = 65536

// MinIDs is the fewest ids a container's mapping may cover.
const MinIDs = 65536

// AnnotationIDRange records the host id range eci gave the container, as "start-end".
const AnnotationIDRange = "eci.dev/id-range"

// ValidateMappings checks a user namespace mapping eci did not make (the kubelet's, for
// hostUsers: false): it must cover at least 65536 ids and map no host id below 65536.
func ValidateMappings(what string, m []specs.LinuxIDMapping) error {
	if len(m) == 0 {
		return fmt.Errorf("%s mapping is empty", what)
	}
	var total uint64
	for _, e := range m {
		if e.Size == 0 {
			return fmt.Errorf("%s mapping %d:%d:%d has size 0", what, e.ContainerID, e.HostID, e.Size)
		}
		if e.HostID < MinHostID {
			return fmt.Errorf("%s mapping %d:%d:%d maps host ids below %d", what, e.ContainerID, e.HostID, e.Size, MinHostID)
		}
		if uint64(e.HostID)+uint64(e.Size) > 1<<32-1 {
			return fmt.Errorf("%s mapping %d:%d:%d passes the largest host id", what, e.ContainerID, e.HostID, e.Size)
		}
		total += uint64(e.Size)
	}
	if total < MinIDs {
		return fmt.Errorf("%s mapping covers %d ids, fewer than %d", what, total, MinIDs)
	}
	return nil
}

// UserNamespace gives the container a user namespace. A mapping already in the spec (the
// kubelet's) is validated and kept; otherwise the container gets eci's plan: its own range,
// or the pod sandbox's namespace to join.
func UserNamespace(spec *specs.Spec, in Inputs) error {
	l := spec.Linux
	i := slices.IndexFunc(l.Namespaces, func(ns specs.LinuxNamespace) bool { return ns.Type == specs.UserNamespace })
	if i >= 0 && (len(l.UIDMappings) > 0 || len(l.GIDMappings) > 0) {
		if err := ValidateMappings("uid", l.UIDMappings); err != nil {
			return fmt.Errorf("the spec's user namespace is not safe: %w", err)
		}
		if err := ValidateMappings("gid", l.GIDMappings); err != nil {
			return fmt.Errorf("the spec's user namespace is not safe: %w", err)
		}
		return nil
	}
	if i >= 0 && l.Namespaces[i].Path != "" && in.UserNS.Path != l.Namespaces[i].Path {
		return fmt.Errorf("the spec joins user namespace %s without a mapping eci can check", l.Namespaces[i].Path)
	}
	u := in.UserNS
	if len(u.UIDMappings) == 0 || len(u.GIDMappings) == 0 {
		return fmt.Errorf("no id range for the container's user namespace")
	}
	if err := ValidateMappings("uid", u.UIDMappings); err != nil {
		return err
	}
	if err := ValidateMappings("gid", u.GIDMappings); err != nil {
		return err
	}
	ns := specs.LinuxNamespace{Type: specs.UserNamespace, Path: u.Path}
	if i >= 0 {
		l.Namespaces[i] = ns
	} else {
		l.Namespaces = append(l.Namespaces, ns)
	}
	l.UIDMappings = slices.Clone(u.UIDMappings)
	l.GIDMappings = slices.Clone(u.GIDMappings)
	if spec.Annotations == nil {
		spec.Annotations = map[string]string{}
	}
	first := u.UIDMappings[0]
	spec.Annotations[AnnotationIDRange] = strconv.FormatUint(uint64(first.HostID), 10) + "-" +
		strconv.FormatUint(uint64(first.HostID)+uint64(first.Size)-1, 10)
	return nil
}

// RangeMapping maps container ids [0, size) to host ids [start, start+size).
func RangeMapping(start, size uint32) []specs.LinuxIDMapping {
	return []specs.LinuxIDMapping{{ContainerID: 0, HostID: start, Size: size}}
}
