package policy

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eci-dev/eci/internal/atomicfile"
)

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	// Atomically, as eci-node does: a reader never sees a half-written file.
	if err := atomicfile.Write(path, data, 0o600, false); err != nil {
		t.Fatal(err)
	}
}

var builtin = Policy{Name: BuiltinName, Mode: Enforce, Protected: []string{"/"}}

func TestLookupOrder(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// Nothing on the node: builtin.
	if r := Lookup(dir, "u1", time.Second, builtin); r.Source != FromBuiltin || r.Pod.Policy.Name != BuiltinName {
		t.Fatalf("empty node: got %s %s", r.Source, r.Pod.Policy.Name)
	}
	strict := Policy{Name: StrictName, Mode: Enforce, Protected: []string{"/", "/srv"}}
	writeJSON(t, StrictFile(dir), strict)
	start := time.Now()
	r := Lookup(dir, "u1", 50*time.Millisecond, builtin)
	if r.Source != FromStrict || r.Pod.Policy.Name != StrictName || !strings.Contains(r.Why, "no policy for pod uid u1 within 50ms") {
		t.Fatalf("missing pod file: got %s %s (%s)", r.Source, r.Pod.Policy.Name, r.Why)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Fatalf("did not wait for eci-node: %s", d)
	}
	pod := Pod{UID: "u1", Namespace: "ns", Name: "p", Policy: Policy{Name: "team", Generation: 2, Mode: Audit}}
	// The pod file appears while the sandbox waits.
	if err := os.MkdirAll(filepath.Dir(PodFile(dir, "u1")), 0o700); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(30 * time.Millisecond)
		data, _ := json.Marshal(pod)
		if err := atomicfile.Write(PodFile(dir, "u1"), data, 0o600, false); err != nil {
			t.Error(err)
		}
	}()
	if r := Lookup(dir, "u1", 5*time.Second, builtin); r.Source != FromPod || r.Pod.Policy.Name != "team" || r.Pod.Policy.Generation != 2 {
		t.Fatalf("pod file: got %s %+v", r.Source, r.Pod.Policy)
	}
	// A corrupt or invalid pod file falls back to strict, never to something weaker.
	if err := os.WriteFile(PodFile(dir, "u2"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := Lookup(dir, "u2", time.Second, builtin); r.Source != FromStrict || !strings.Contains(r.Why, "u2.json") {
		t.Fatalf("corrupt pod file: got %s (%s)", r.Source, r.Why)
	}
	writeJSON(t, PodFile(dir, "u3"), Pod{Policy: Policy{Name: "x", Mode: "Sometimes"}})
	if r := Lookup(dir, "u3", time.Second, builtin); r.Source != FromStrict || !strings.Contains(r.Why, `mode "Sometimes"`) {
		t.Fatalf("invalid pod file: got %s (%s)", r.Source, r.Why)
	}
	// A uid that is not one path element is never joined into a path.
	if r := Lookup(dir, "../strict", time.Second, builtin); r.Source != FromStrict || !strings.Contains(r.Why, "no usable pod uid") {
		t.Fatalf("bad uid: got %s (%s)", r.Source, r.Why)
	}
	// A corrupt strict file falls back to builtin.
	if err := os.WriteFile(StrictFile(dir), []byte("nope"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := Lookup(dir, "u9", 0, builtin); r.Source != FromBuiltin || !strings.Contains(r.Why, "strict policy") {
		t.Fatalf("corrupt strict: got %s (%s)", r.Source, r.Why)
	}
}

func TestExcepted(t *testing.T) {
	t.Parallel()
	d1 := "sha256:" + strings.Repeat("a", 64)
	p := Policy{Exceptions: []Exception{
		{Namespaces: []string{"ops"}, Paths: []string{"/srv/a"}},
		{Namespaces: []string{"ci"}, Images: []string{d1}},
		{}, // a blanket exception is ignored
	}}
	for _, c := range []struct {
		path, ns, digest string
		want             bool
	}{
		{"/srv/a", "ops", "", true},
		{"/srv/b", "ops", "", false},
		{"/srv/b", "ci", d1, true},
		{"/srv/b", "ci", "", false},
		{"/srv/b", "dev", d1, false},
		{"/srv/a", "dev", "", false},
	} {
		if got := p.Excepted(c.path, c.ns, c.digest); got != c.want {
			t.Errorf("Excepted(%s, %s, %q) = %v, want %v", c.path, c.ns, c.digest, got, c.want)
		}
	}
}

func TestSpoolAndDrain(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for i, reason := range []string{"First", "Second"} {
		if err := Spool(dir, Report{Time: time.Unix(int64(100+i), 0), Reason: reason, PodUID: "u"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(SpoolDir(dir), "0-bad.json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	var got []string
	n, bad, err := Drain(dir, func(r Report) { got = append(got, r.Reason) })
	if err != nil || n != 2 || bad != 1 || strings.Join(got, ",") != "First,Second" {
		t.Fatalf("Drain = %d, %d, %v, %v", n, bad, err, got)
	}
	if ents, _ := os.ReadDir(SpoolDir(dir)); len(ents) != 0 {
		t.Fatalf("spool not emptied: %d left", len(ents))
	}
}
