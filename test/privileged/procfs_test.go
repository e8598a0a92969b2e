package privileged

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/eci-dev/eci/internal/testbundle"
	"github.com/eci-dev/eci/nodeagent/procfsd"
	"github.com/eci-dev/eci/procemu/procfs"
)

const (
	envProcfsServe = "ECI_TEST_PROCFS_SERVE"
	envProcfsMap   = "ECI_TEST_PROCFS_MAP"
	fuseSuperMagic = 0x65735546
)

// mapResolver reads container id -> cgroup path from a JSON file the test writes (runc's
// cgroupfs driver puts every controller of a container at the same path).
type mapResolver struct{ file string }

func (m mapResolver) Cgroups(id string) (map[string]string, error) {
	data, err := os.ReadFile(m.file)
	if err != nil {
		return nil, err
	}
	var paths map[string]string
	if err := json.Unmarshal(data, &paths); err != nil {
		return nil, err
	}
	p, ok := paths[id]
	if !ok {
		return nil, fmt.Errorf("unknown container %s", id)
	}
	out := map[string]string{}
	for _, c := range []string{"memory", "cpu", "cpuacct", "cpuset", "blkio", "pids"} {
		out[c] = p
	}
	return out, nil
}

// Owner is the container's pod and root uid, from eci-runtime's record in the env's run
// dir (beside the map file), as eci-node's holder reads it.
func (m mapResolver) Owner(id string) (string, uint32, error) {
	return procfsd.RecordResolver{HostRoot: "/", RunDir: filepath.Join(filepath.Dir(m.file), "run")}.Owner(id)
}

// serveProcfs mounts the FUSE server at dir and serves until SIGTERM.
func serveProcfs(dir, mapFile string) int {
	srv, err := (&procfs.Server{Resolver: mapResolver{mapFile}, Root: "/"}).Mount(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "procfs server:", err)
		return 1
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	// The parent mounted it and detaches the mount itself.
	go func() { <-sig; os.Exit(0) }()
	srv.Wait()
	return 0
}

// readWithin reads a file, failing instead of hanging when the server does not answer.
func readWithin(t *testing.T, path string, d time.Duration) string {
	t.Helper()
	type res struct {
		data []byte
		err  error
	}
	ch := make(chan res, 1)
	go func() { b, err := os.ReadFile(path); ch <- res{b, err} }()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("reading %s: %v", path, r.err)
		}
		return string(r.data)
	case <-time.After(d):
		t.Fatalf("reading %s: no answer in %s", path, d)
	}
	return ""
}

// The FUSE server serves each container its own numbers, and eci-runtime, finding it
// mounted, binds them over /proc and /sys (user namespace, allow_other): a container
// limited to 256Mi and 500m CPU reads MemTotal 262144 kB, one online CPU and its own
// uptime, where the kernel's files show the host's (TestRenderersReadRealCgroups).
// procfsEnv is a FUSE server of the emulation in a child process, mounted where eci-runtime
// looks for it (<runDir>/procfs), and the map that tells it each container's cgroup.
type procfsEnv struct {
	mnt        string
	register   func(id string)
	containers map[string]string
}

func startProcfs(t *testing.T, e *env) *procfsEnv {
	t.Helper()
	// Where eci-runtime looks for a live server: <runDir>/procfs.
	mnt := filepath.Join(e.dir, "run", "procfs")
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	mapFile := filepath.Join(e.dir, "procfs-map.json")
	containers := map[string]string{}
	writeMap := func() {
		data, _ := json.Marshal(containers)
		if err := os.WriteFile(mapFile+".tmp", data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(mapFile+".tmp", mapFile); err != nil {
			t.Fatal(err)
		}
	}
	writeMap()

	// Mounted as eci-node's holder mounts it: /dev/fuse opened and mounted here with
	// procfsd's options, then served by the child as /dev/fd/3.
	fuseFD, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("eci-procfs", mnt, "fuse.eci-procfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, procfsd.FUSEOptions(fuseFD)); err != nil {
		t.Fatalf("mounting FUSE at %s: %v", mnt, err)
	}
	fuseFile := os.NewFile(uintptr(fuseFD), "/dev/fuse")
	defer fuseFile.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envProcfsServe+"=/dev/fd/3", envProcfsMap+"="+mapFile)
	cmd.ExtraFiles = []*os.File{fuseFile}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		_ = unix.Unmount(mnt, unix.MNT_DETACH)
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// Runs after the containers are deleted (cleanups run last-in first-out).
	t.Cleanup(func() {
		_ = unix.Unmount(mnt, unix.MNT_DETACH)
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		var st unix.Statfs_t
		if err := unix.Statfs(mnt, &st); err == nil && st.Type == fuseSuperMagic {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("the FUSE server exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the FUSE server did not mount in 15 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Containers go before the server (cleanups run last-in first-out).
	t.Cleanup(e.deleteAll)

	p := &procfsEnv{mnt: mnt, containers: containers}
	p.register = func(id string) {
		containers[id] = "/" + id
		writeMap()
	}
	return p
}

func TestFUSEServesRealContainers(t *testing.T) {
	e := newEnv(t)
	pe := startProcfs(t, e)
	mnt := pe.mnt
	limit, quota, period := int64(256<<20), int64(50000), uint64(100000)
	limited := func(spec *specs.Spec, id string) *specs.Spec {
		spec.Linux.Resources.Memory = &specs.LinuxMemory{Limit: &limit}
		spec.Linux.Resources.CPU = &specs.LinuxCPU{Quota: &quota, Period: &period}
		spec.Linux.CgroupsPath = "/" + id
		pe.register(id)
		return spec
	}

	// The host reads a container's files through the mount.
	sleeper := e.id("limited")
	e.startSleeper(e.eci, sleeper, limited(testbundle.Spec("sleep", "300"), sleeper))
	if mem := readWithin(t, filepath.Join(mnt, sleeper, "meminfo"), 10*time.Second); !strings.Contains(mem, "MemTotal:         262144 kB\n") {
		t.Errorf("%s/meminfo does not show the limit:\n%s", sleeper, firstLines(mem, 3))
	}
	if got := readWithin(t, filepath.Join(mnt, sleeper, "cpu-online"), 10*time.Second); got != "0\n" {
		t.Errorf("%s/cpu-online = %q, want \"0\\n\"", sleeper, got)
	}
	// busybox cat (sendfile) by path, again after the entry and the rendering expired: the
	// name is looked up again and must keep its inode and a size sendfile reads through.
	for i := range 2 {
		if i > 0 {
			time.Sleep(procfs.DefaultTTL + 300*time.Millisecond)
		}
		out, err := exec.Command(testbundle.Busybox, "cat", filepath.Join(mnt, sleeper, "swaps")).Output()
		if err != nil || !strings.HasPrefix(string(out), "Filename") {
			t.Fatalf("busybox cat of %s/swaps (read %d): %v %q", sleeper, i+1, err, out)
		}
	}
	if _, err := os.Stat(filepath.Join(mnt, "no-such-container")); !os.IsNotExist(err) {
		t.Errorf("an unknown container's directory: %v", err)
	}
	if err := os.WriteFile(filepath.Join(mnt, sleeper, "meminfo"), []byte("x"), 0o644); err == nil {
		t.Error("an emulated file was writable")
	}

	// An eci container reads its own numbers: eci-runtime sees the live server and binds
	// its files over the container's.
	reader := e.id("reader")
	spec := limited(testbundle.Spec("sh", "-c", "grep MemTotal /proc/meminfo; cat /sys/devices/system/cpu/online 2>&1; cut -d' ' -f1 /proc/uptime"), reader)
	out, err := e.outputOf(e.eci, reader, e.bundle(reader, spec))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || strings.Join(strings.Fields(lines[0]), " ") != "MemTotal: 262144 kB" || lines[1] != "0" {
		t.Fatalf("the container read %q, want MemTotal 262144 kB and online CPUs 0", out)
	}
	var up float64
	if _, err := fmt.Sscanf(lines[2], "%f", &up); err != nil || up > 60 {
		t.Errorf("the container's uptime %q is not its own few seconds", lines[2])
	}
}

// Containers reading their emulated meminfo at the same time each see only their own limit,
// never another's: 12 containers with 12 limits, 200 reads each, all running at once.
func TestFUSEEachContainerItsOwnNumbers(t *testing.T) {
	e := newEnv(t)
	pe := startProcfs(t, e)
	const n, reads = 12, 200
	type ctr struct {
		id, out string
		pid     int
		wantKB  int64
	}
	var cs []ctr
	script := fmt.Sprintf("i=0; while [ $i -lt %d ]; do grep MemTotal /proc/meminfo; i=$((i+1)); done | sort | uniq -c", reads)
	for i := 0; i < n; i++ {
		id := e.id("reader")
		limit := int64(64+8*i) << 20
		spec := testbundle.Spec("sh", "-c", script)
		spec.Linux.Resources.Memory = &specs.LinuxMemory{Limit: &limit}
		spec.Linux.CgroupsPath = "/" + id
		pe.register(id)
		pid, out, err := e.createWithOutput(e.eci, id, e.bundle(id, spec))
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, ctr{id: id, out: out, pid: pid, wantKB: limit >> 10})
	}
	for _, c := range cs {
		if err := e.eci.Start(c.id); err != nil {
			t.Fatal(err)
		}
	}
	wrong := 0
	for _, c := range cs {
		if code, err := testbundle.Wait(c.pid, 2*time.Minute); err != nil || code != 0 {
			t.Fatalf("%s: exit %d, %v", c.id, code, err)
		}
		data, _ := os.ReadFile(c.out)
		want := fmt.Sprintf("%d MemTotal: %d kB", reads, c.wantKB)
		got := strings.Join(strings.Fields(string(data)), " ")
		if got != want {
			wrong++
			t.Errorf("%s (limit %d kB) read: %q", c.id, c.wantKB, data)
		}
	}
	t.Logf("%d containers × %d concurrent reads: %d containers saw another value than their own", n, reads, wrong)
}

// A rendering that grows after the cached one expired is read whole, by read() and by
// sendfile (busybox cat): a container whose CPU quota goes from 0.5 to 2 CPUs while it runs
// reads online CPUs "0", then "0-1" (not a cut "0-") and two processors in cpuinfo.
func TestFUSEGrowingFileIsReadWhole(t *testing.T) {
	e := newEnv(t)
	pe := startProcfs(t, e)
	id := e.id("grows")
	limit, quota, period := int64(256<<20), int64(50000), uint64(100000)
	spec := testbundle.Spec("sh", "-c", "cat /sys/devices/system/cpu/online; sleep 2.5; cat /sys/devices/system/cpu/online; grep -c ^processor /proc/cpuinfo")
	spec.Linux.Resources.Memory = &specs.LinuxMemory{Limit: &limit}
	spec.Linux.Resources.CPU = &specs.LinuxCPU{Quota: &quota, Period: &period}
	spec.Linux.CgroupsPath = "/" + id
	pe.register(id)
	pid, out, err := e.createWithOutput(e.eci, id, e.bundle(id, spec))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.eci.Start(id); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if data, _ := os.ReadFile(out); len(data) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the container printed nothing in 10 s")
		}
	}
	raised := false
	for _, dir := range []string{"/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/cpu", "/sys/fs/cgroup"} {
		name := "cpu.cfs_quota_us"
		val := "200000"
		if dir == "/sys/fs/cgroup" {
			name, val = "cpu.max", "200000 100000"
		}
		if err := os.WriteFile(filepath.Join(dir, id, name), []byte(val), 0); err == nil {
			raised = true
			break
		}
	}
	if !raised {
		t.Fatal("could not raise the container's CPU quota")
	}
	if code, err := testbundle.Wait(pid, time.Minute); err != nil || code != 0 {
		t.Fatalf("exit %d, %v", code, err)
	}
	data, _ := os.ReadFile(out)
	if string(data) != "0\n0-1\n2\n" {
		t.Fatalf("the container read %q, want \"0\\n0-1\\n2\\n\" (after the quota went to 2 CPUs)", data)
	}
}

// A write to a host-wide /proc/sys knob (kernel.panic) inside an emulated container is
// kept for its pod and read back there; another container and the host keep their value.
func TestProcSysKnobsPerPod(t *testing.T) {
	e := newEnv(t)
	pe := startProcfs(t, e)
	const knob = "/proc/sys/kernel/panic"
	hostBefore, err := os.ReadFile(knob)
	if err != nil {
		t.Fatal(err)
	}
	want := "7"
	if strings.TrimSpace(string(hostBefore)) == want {
		want = "8"
	}
	run := func(name, script string, uid uint32) string {
		t.Helper()
		id := e.id(name)
		spec := testbundle.Spec("sh", "-c", script)
		spec.Process.User.UID = uid
		spec.Linux.CgroupsPath = "/" + id
		pe.register(id)
		out, err := e.outputOf(e.eci, id, e.bundle(id, spec))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return strings.TrimSpace(out)
	}
	// A longer value first, then the shorter one: the second write replaces the whole of
	// the first, and reads back at once and again (the kernel's page cache keeps nothing
	// of the first).
	if out := run("writer", "sysctl -w kernel.panic=100 >/dev/null && sysctl -w kernel.panic="+want+" >/dev/null && cat "+knob+" && cat "+knob, 0); out != want+"\n"+want {
		t.Errorf("the writer reads back %q, want %q twice", out, want)
	}
	if out := run("other", "cat "+knob, 0); out != strings.TrimSpace(string(hostBefore)) {
		t.Errorf("another pod reads %q, want the host's %q", out, hostBefore)
	}
	if now, _ := os.ReadFile(knob); string(now) != string(hostBefore) {
		t.Errorf("the host's kernel.panic changed from %q to %q", hostBefore, now)
	}
	// A non-root user of the container may not write it, as with the kernel's.
	if out := run("nonroot", "(echo 9 > "+knob+") 2>/dev/null || echo refused", 1000); out != "refused" {
		t.Errorf("a non-root user wrote the knob: %q", out)
	}
}
