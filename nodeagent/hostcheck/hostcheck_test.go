package hostcheck

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func tree(t *testing.T, files map[string]string, sockets ...string) string {
	t.Helper()
	root := t.TempDir()
	for p, body := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range sockets {
		full := filepath.Join(root, s)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("unix", full)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
	}
	return root
}

func TestCheck(t *testing.T) {
	good := map[string]string{"proc/sys/kernel/osrelease": "6.18.0-eci\n", "proc/sys/user/max_user_namespaces": "63000\n"}
	root := tree(t, good, "run/containerd/containerd.sock")
	r, err := Check(root, "auto")
	if err != nil || r.CRI != "containerd" || r.Socket != "/run/containerd/containerd.sock" || r.Kernel != "6.18.0-eci" || r.CgroupV2 {
		t.Fatalf("Check = %+v, %v", r, err)
	}
	if _, err := Check(root, "crio"); err == nil || !strings.Contains(err.Error(), "no CRI socket found") {
		t.Fatalf("crio wanted on a containerd node: %v", err)
	}

	old := tree(t, map[string]string{"proc/sys/kernel/osrelease": "5.15.0-91-generic", "proc/sys/user/max_user_namespaces": "0", "sys/fs/cgroup/cgroup.controllers": "cpu"})
	r, err = Check(old, "auto")
	if !r.CgroupV2 {
		t.Error("cgroup v2 not detected")
	}
	for _, want := range []string{"kernel 5.15.0-91-generic is older than 6.3", "user.max_user_namespaces is 0", "no CRI socket found"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}

func TestKernelAndMajor(t *testing.T) {
	for rel, want := range map[string]bool{"6.3.0": true, "6.18.0-eci": true, "7.0": true, "6.2.16": false, "5.19": false, "6.3-rc1": true, "garbage": false} {
		if got := kernelAtLeast(rel, MinKernel); got != want {
			t.Errorf("kernelAtLeast(%q) = %v", rel, got)
		}
	}
	for v, want := range map[string]int{"v2.4.2": 2, "1.7.27": 1, "2.0.0-rc.1": 2} {
		if got, err := Major(v); err != nil || got != want {
			t.Errorf("Major(%q) = %d, %v", v, got, err)
		}
	}
	if _, err := Major("dev"); err == nil {
		t.Error("Major(dev) parsed")
	}
}

func TestKubeletOverlap(t *testing.T) {
	pool := [2]uint64{1 << 31, 1 << 30}
	for body, want := range map[string]string{
		"":                                  "no kubelet entry",
		"alice:100000:65536\n":              "no kubelet entry",
		"kubelet:65536:2147418112\n":        "",
		"kubelet:65536:4294901760\n":        "overlaps eci's pool",
		"x:1:2\nkubelet:3221225472:65536\n": "",
	} {
		root := tree(t, map[string]string{"etc/subuid": body})
		got := KubeletOverlap(root, pool[0], pool[1])
		if (want == "") != (got == "") || !strings.Contains(got, want) {
			t.Errorf("subuid %q: got %q, want %q", body, got, want)
		}
	}
}
