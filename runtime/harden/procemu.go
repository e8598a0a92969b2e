package harden

import (
	"path"
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/eci-dev/eci/procemu"
)

// ProcEmulation binds eci's emulated /proc and /sys files (procemu) over the container's,
// read-only, from the FUSE server's directory for this container. A file the container
// already has a mount at is left as the spec says.
func ProcEmulation(spec *specs.Spec, in Inputs) error {
	if in.ProcDir == "" {
		return nil
	}
	for _, f := range procemu.Files() {
		if slices.ContainsFunc(spec.Mounts, func(m specs.Mount) bool { return path.Clean(m.Destination) == f.Path }) {
			continue
		}
		spec.Mounts = append(spec.Mounts, specs.Mount{
			Destination: f.Path,
			Type:        "bind",
			Source:      path.Join(in.ProcDir, in.ContainerID, procemu.FileName(f.Path)),
			Options:     []string{"bind", "ro", "nosuid", "nodev", "noexec"},
		})
	}
	return nil
}
