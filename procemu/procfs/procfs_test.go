package procfs

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
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
