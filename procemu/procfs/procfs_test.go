package procfs

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/eci-dev/eci/procemu"
)

// fakeResolver knows one container, whose cgroups are testdata's v1-limited pod.
type fakeResolver struct {
	cgroups map[string]string
	calls   atomic.Int32
}

func (f *fakeResolver) Cgroups(id string) (map[string]string, error) {
	f.calls.Add(1)
	if id != "c1" {
		return nil, errors.New("unknown container " + id)
	}
	return f.cgroups, nil
}

func newServer(t *testing.T, now *time.Time) (*Server, *fakeResolver) {
	t.Helper()
	root := filepath.Join("..", "testdata", "v1-limited")
	data, err := os.ReadFile(filepath.Join(root, "cgroup"))
	if err != nil {
		t.Fatal(err)
	}
	cg, err := procemu.ParseCgroupFile(data)
	if err != nil {
		t.Fatal(err)
	}
	r := &fakeResolver{cgroups: cg}
	return &Server{Resolver: r, Root: root, Now: func() time.Time { return *now }}, r
}

// Render serves every emulated file under its name, from a snapshot at most TTL old.
func TestRenderNamesAndSnapshots(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	s, r := newServer(t, &now)
	if len(Names) != len(procemu.Files()) || Names["cpu-online"] != "/sys/devices/system/cpu/online" || Names["meminfo"] != "/proc/meminfo" {
		t.Fatalf("Names = %v", Names)
	}
	for name := range Names {
		if _, err := s.Render("c1", name); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	mem, err := s.Render("c1", "meminfo")
	if err != nil || !bytes.Contains(mem, []byte("MemTotal:         262144 kB\n")) {
		t.Fatalf("meminfo: %v\n%s", err, mem)
	}
	if n := r.calls.Load(); n != 1 {
		t.Errorf("%d cgroup lookups for one snapshot, want 1", n)
	}
	now = now.Add(DefaultTTL)
	if _, err := s.Render("c1", "uptime"); err != nil {
		t.Fatal(err)
	}
	if n := r.calls.Load(); n != 2 {
		t.Errorf("the snapshot was not refreshed after the TTL: %d lookups", n)
	}
	if _, err := s.Render("c2", "meminfo"); err == nil {
		t.Error("an unknown container was rendered")
	}
	if _, err := s.Render("c1", "kcore"); err == nil {
		t.Error("a file that is not emulated was rendered")
	}
}

func TestValidID(t *testing.T) {
	t.Parallel()
	for id, want := range map[string]bool{"abc123": true, "": false, ".": false, "..": false, "a/b": false, "a\x00": false} {
		if validID(id) != want {
			t.Errorf("validID(%q) = %v", id, !want)
		}
	}
}

// ownerResolver adds pods and roots to fakeResolver: c1 and c2 are one pod, c3 another.
type ownerResolver struct{ *fakeResolver }

func (o ownerResolver) Owner(id string) (string, uint32, error) {
	switch id {
	case "c1", "c2":
		return "pod-a", 100000, nil
	case "c3":
		return "pod-b", 200000, nil
	}
	return "", 0, errors.New("unknown container " + id)
}

// A pod's write to a /proc/sys knob is kept for that pod and read back by it (all its
// containers); another pod and the host's file are unchanged. Only the pod's root writes.
func TestKnobsArePerPod(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	const panic = "/proc/sys/kernel/panic"
	if err := os.MkdirAll(filepath.Join(root, "proc/sys/kernel"), 0o755); err != nil {
		t.Fatal(err)
	}
	host := filepath.Join(root, panic)
	if err := os.WriteFile(host, []byte("0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := &Server{Resolver: ownerResolver{&fakeResolver{}}, Root: root}
	read := func(id string) string {
		t.Helper()
		v, err := s.Knob(id, panic)
		if err != nil {
			t.Fatal(err)
		}
		return string(v)
	}
	if got := read("c1"); got != "0\n" {
		t.Fatalf("before any write: %q, want the host's 0", got)
	}
	if err := s.SetKnob("c1", panic, 100001, []byte("5\n")); !errors.Is(err, syscall.EACCES) {
		t.Errorf("a non-root user of the pod wrote the knob: %v", err)
	}
	if err := s.SetKnob("c1", panic, 100000, []byte("lots")); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("a malformed value: %v", err)
	}
	if err := s.SetKnob("c1", panic, 100000, []byte("5\n")); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]string{"c1": "5\n", "c2": "5\n", "c3": "0\n"} {
		if got := read(id); got != want {
			t.Errorf("%s reads %q, want %q", id, got, want)
		}
	}
	if data, _ := os.ReadFile(host); string(data) != "0\n" {
		t.Errorf("the host's file changed: %q", data)
	}
	// Without Owners, knobs are read-only.
	if err := (&Server{Resolver: &fakeResolver{}, Root: root}).SetKnob("c1", panic, 0, []byte("1")); !errors.Is(err, syscall.EACCES) {
		t.Errorf("a resolver without owners allowed a write: %v", err)
	}
}
