package runtime

import (
	"encoding/json"
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// bundleSpec is a config.json as eci edits it: only the sections the modifiers touch are
// decoded into runtime-spec types; every other top-level field is kept as it was, byte for
// byte (a field newer than eci's runtime-spec survives, and decoding less is faster: the
// first decode of the full Spec type costs about a millisecond of reflection).
type bundleSpec struct {
	raw  map[string]json.RawMessage
	Spec specs.Spec // Root, Mounts, Annotations and Linux, and Process's capabilities (read only)
}

// editedFields are the top-level fields eci decodes, edits and writes back.
var editedFields = []string{"root", "mounts", "annotations", "linux"}

func parseBundleSpec(data []byte) (*bundleSpec, error) {
	b := &bundleSpec{}
	if err := json.Unmarshal(data, &b.raw); err != nil {
		return nil, err
	}
	for _, f := range []string{"root", "process", "linux"} {
		if v, ok := b.raw[f]; !ok || string(v) == "null" {
			return nil, fmt.Errorf("it lacks its %s section", f)
		}
	}
	dec := map[string]any{"root": &b.Spec.Root, "mounts": &b.Spec.Mounts, "annotations": &b.Spec.Annotations, "linux": &b.Spec.Linux}
	for _, f := range editedFields {
		if v, ok := b.raw[f]; ok {
			if err := json.Unmarshal(v, dec[f]); err != nil {
				return nil, fmt.Errorf("field %s: %w", f, err)
			}
		}
	}
	// The process's capabilities decide what the seccomp filter traps; the process
	// section itself is never edited, so it is written back as it was.
	var proc struct {
		Capabilities *specs.LinuxCapabilities `json:"capabilities"`
	}
	if err := json.Unmarshal(b.raw["process"], &proc); err != nil {
		return nil, fmt.Errorf("field process: %w", err)
	}
	b.Spec.Process = &specs.Process{Capabilities: proc.Capabilities}
	return b, nil
}

func (b *bundleSpec) marshal() ([]byte, error) {
	enc := map[string]any{"root": b.Spec.Root, "mounts": b.Spec.Mounts, "annotations": b.Spec.Annotations, "linux": b.Spec.Linux}
	for _, f := range editedFields {
		v, err := json.Marshal(enc[f])
		if err != nil {
			return nil, err
		}
		if string(v) == "null" {
			delete(b.raw, f)
			continue
		}
		b.raw[f] = v
	}
	return json.Marshal(b.raw)
}
