package harden

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/eci-dev/eci/runtime/policy"
)

var update = flag.Bool("update", false, "rewrite the golden files from the current output")

// goldenCase is testdata/<case>.in.json: the spec, the inputs, and a fake host.
type goldenCase struct {
	Inputs struct {
		ContainerID string          `json:"containerID"`
		Annotations bool            `json:"podFromAnnotations"`
		UserNS      UserNS          `json:"userNS"`
		Protected   []ProtectedPath `json:"protected"`
		// Policy, when set, gives the protected list (ProtectedFor), mode, exceptions
		// and denied syscalls.
		Policy      *policy.Policy `json:"policy"`
		ImageDigest string         `json:"imageDigest"`
		ProcDir     string         `json:"procDir"`
		// Supervisor is the supervisor's socket ("" as when it cannot be reached).
		Supervisor string `json:"supervisor"`
	} `json:"inputs"`
	// Symlinks maps a host path prefix to what it resolves to.
	Symlinks map[string]string `json:"symlinks"`
	// HostNamespaces are namespace paths that are the host's.
	HostNamespaces []string    `json:"hostNamespaces"`
	Spec           *specs.Spec `json:"spec"`
}

func (c *goldenCase) inputs() Inputs {
	in := Inputs{
		ContainerID: c.Inputs.ContainerID,
		UserNS:      c.Inputs.UserNS,
		Protected:   c.Inputs.Protected,
		Policy:      BuiltinPolicy,
		Pod:         PodFromAnnotations(c.Inputs.ContainerID, c.Spec.Annotations),
	}
	in.ProcDir = c.Inputs.ProcDir
	in.Supervisor = c.Inputs.Supervisor
	if p := c.Inputs.Policy; p != nil {
		in.Protected = ProtectedFor(*p, nil)
		in.Policy = p.String()
		in.Audit = p.Mode == policy.Audit
		in.Exceptions = p.Exceptions
		in.Denied = p.Denied()
		in.Supervise = p.Supervised()
		in.Identity = policy.Supervised{PodUID: "uid-1", Namespace: "ns", Name: "pod", Policy: p.Name, Generation: p.Generation, Mode: p.Mode}
		in.ImageDigest = c.Inputs.ImageDigest
	}
	if in.Protected == nil {
		in.Protected = BuiltinProtected()
	}
	in.ResolvePath = func(p string) string {
		for from, to := range c.Symlinks {
			if p == from || strings.HasPrefix(p, from+"/") {
				return to + strings.TrimPrefix(p, from)
			}
		}
		return p
	}
	in.IsHostNamespace = func(_ specs.LinuxNamespaceType, p string) (bool, error) {
		return slices.Contains(c.HostNamespaces, p), nil
	}
	return in
}

func TestGolden(t *testing.T) {
	t.Parallel()
	ins, err := filepath.Glob("testdata/*.in.json")
	if err != nil || len(ins) == 0 {
		t.Fatalf("no golden cases: %v", err)
	}
	for _, inPath := range ins {
		name := strings.TrimSuffix(filepath.Base(inPath), ".in.json")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			raw, err := os.ReadFile(inPath)
			if err != nil {
				t.Fatal(err)
			}
			var c goldenCase
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&c); err != nil {
				t.Fatalf("%s: %v", inPath, err)
			}
			var out any = c.Spec
			if err := Apply(c.Spec, c.inputs(), Default()); err != nil {
				out = map[string]string{"error": err.Error()}
			}
			got, err := json.MarshalIndent(out, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			goldenPath := filepath.Join("testdata", name+".golden.json")
			if *update {
				if err := os.WriteFile(goldenPath, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(goldenPath)
			if err != nil {
				t.Fatalf("%v (run go test ./runtime/harden -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from the golden file; got:\n%s", goldenPath, got)
			}
		})
	}
}
