package policy

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkLookup is eci-runtime's per-create lookup of a pod whose file eci-node has
// written: open, read, decode and validate a realistic pod file.
func BenchmarkLookup(b *testing.B) {
	dir := b.TempDir()
	const uid = "0b7c5e1a-3f2d-4c6e-9a8b-1d2e3f4a5b6c"
	pol := Policy{
		Name: "team-web", Generation: 4, Mode: Enforce, IDsPerPod: 65536,
		Exceptions: []Exception{{
			Namespaces: []string{"ci"},
			Images:     []string{"sha256:9b2a4d7c1e0f3a5b6c8d7e9f0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d"},
			Paths:      []string{"/run/docker.sock"},
		}},
		Traps:                    DefaultTraps(),
		ImmutableContainerMounts: true, ProcEmulation: true,
	}
	for i := range 24 {
		pol.Protected = append(pol.Protected, fmt.Sprintf("/srv/team-web/data-%02d", i))
	}
	pol.Protected[0] = "/run/docker.sock"
	pod := Pod{
		UID: uid, Namespace: "web", Name: "web-5d8f7c9b6-x2x7q",
		Images: map[string]string{"app": "sha256:4f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"},
		Policy: pol,
	}
	if len(pol.Protected) != 24 || len(pol.Traps) != 2 || len(pol.Exceptions) != 1 {
		b.Fatalf("not the realistic pod file: %d paths, %d traps, %d exceptions", len(pol.Protected), len(pol.Traps), len(pol.Exceptions))
	}
	data, err := json.Marshal(pod)
	if err != nil {
		b.Fatal(err)
	}
	for _, p := range []string{PodFile(dir, uid), StrictFile(dir)} {
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			b.Fatal(err)
		}
	}
	if err := os.WriteFile(PodFile(dir, uid), data, 0o600); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(StrictFile(dir), []byte(`{"name":"eci-strict","generation":0,"mode":"Enforce","protected":["/"]}`), 0o600); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if r := Lookup(dir, uid, time.Second, builtin); r.Source != FromPod {
			b.Fatalf("lookup fell back to %s: %s", r.Source, r.Why)
		}
	}
}
