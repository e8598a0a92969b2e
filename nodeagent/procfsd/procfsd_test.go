package procfsd

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestExpandCgroupsPath(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, id, want string }{
		{"", "abc", "/abc"},
		{"/kubepods/besteffort/pod1/abc", "abc", "/kubepods/besteffort/pod1/abc"},
		{"/a//b/", "x", "/a/b"},
		{"kubepods-besteffort-pod1.slice:cri-containerd:abc", "abc", "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/cri-containerd-abc.scope"},
		{"system.slice:docker:abc", "abc", "/system.slice/docker-abc.scope"},
		{":cri-containerd:abc", "abc", "/system.slice/cri-containerd-abc.scope"},
		{"kubepods.slice:cri-containerd:sub.slice", "x", "/kubepods.slice/sub.slice"},
	} {
		got, err := ExpandCgroupsPath(c.in, c.id)
		if err != nil || got != c.want {
			t.Errorf("ExpandCgroupsPath(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"a:b", "notaslice:p:n", "a--b.slice:p:n", "x/y.slice:p:n"} {
		if got, err := ExpandCgroupsPath(bad, "id"); err == nil {
			t.Errorf("ExpandCgroupsPath(%q) = %q, want an error", bad, got)
		}
	}
}

func TestControllersAndRoots(t *testing.T) {
	t.Parallel()
	v1 := []byte("12:pids:/x\n5:cpu,cpuacct:/x\n4:memory:/x\n1:name=systemd:/x\n0::/x\n")
	if got := Controllers(v1); !reflect.DeepEqual(got, []string{"pids", "cpu", "cpuacct", "memory"}) {
		t.Errorf("v1 controllers = %q", got)
	}
	if got := Controllers([]byte("0::/kubepods/x\n")); !reflect.DeepEqual(got, []string{""}) {
		t.Errorf("v2 controllers = %q", got)
	}
	mi := []byte("30 25 0:26 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory\n" +
		"31 25 0:27 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n" +
		"22 1 8:1 / / rw - ext4 /dev/vda rw\n")
	if got := cgroupRoots(mi); !reflect.DeepEqual(got, []string{"/sys/fs/cgroup/memory", "/sys/fs/cgroup/unified"}) {
		t.Errorf("cgroup roots = %q", got)
	}
}

func TestRecordResolverAndAlive(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	dir := filepath.Join(root, "run", "eci", "containers")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "c1.json"), []byte(`{"id":"c1","cgroupsPath":"/kubepods/pod1/c1"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	r := RecordResolver{HostRoot: root, RunDir: "/run/eci", Controllers: []string{"memory", "cpu"}}
	got, err := r.Cgroups("c1")
	if err != nil || !reflect.DeepEqual(got, map[string]string{"memory": "/kubepods/pod1/c1", "cpu": "/kubepods/pod1/c1"}) {
		t.Errorf("Cgroups(c1) = %v, %v", got, err)
	}
	if _, err := r.Cgroups("c2"); err == nil {
		t.Error("a container without a record resolved")
	}
	// Alive: only a live process whose command line says procfs.
	proc := filepath.Join(root, "proc")
	if err := os.MkdirAll(filepath.Join(proc, "42"), 0o755); err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(root, "procfs.pid")
	_ = os.WriteFile(pidFile, []byte("42\n"), 0o600)
	_ = os.WriteFile(filepath.Join(proc, "42", "cmdline"), []byte("/eci-node\x00run\x00"), 0o600)
	if Alive(proc, pidFile, "procfs") != 0 || Alive(proc, pidFile, "supervisor") != 0 {
		t.Error("a process that is not the holder counted as alive")
	}
	_ = os.WriteFile(filepath.Join(proc, "42", "cmdline"), []byte("/proc/self/exe\x00procfs\x00--host-root\x00/host\x00"), 0o600)
	if Alive(proc, pidFile, "supervisor") != 0 {
		t.Error("the procfs holder counted as the supervisor")
	}
	if Alive(proc, pidFile, "procfs") != 42 {
		t.Error("the holder was not found")
	}
}
