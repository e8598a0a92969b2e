//go:build linux

package privileged

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/eci-dev/eci/internal/testbundle"
	"github.com/eci-dev/eci/runtime/policy"
)

// startSupervisor runs `eci-node supervisor` for the env's run dir, as eci-node's holder
// runs it, and returns its process. It is stopped after the env's containers are deleted.
func startSupervisor(t *testing.T, e *env) *exec.Cmd {
	t.Helper()
	sock := policy.SupervisorSocket(filepath.Join(e.dir, "run"))
	logFile, err := os.Create(filepath.Join(e.dir, "supervisor.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(binDir, "eci-node"), "supervisor", "--host-root", "/", "--config", filepath.Join(e.dir, "eci.json"))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
		}
		logFile.Close()
		if t.Failed() {
			data, _ := os.ReadFile(logFile.Name())
			t.Logf("supervisor log:\n%s", data)
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		if st, err := os.Stat(sock); err == nil && st.Mode()&os.ModeSocket != 0 {
			break
		}
		select {
		case err := <-done:
			data, _ := os.ReadFile(logFile.Name())
			t.Fatalf("the supervisor exited: %v\n%s", err, data)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the supervisor did not listen in 15 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Containers go before the supervisor (cleanups run last-in first-out).
	t.Cleanup(e.deleteAll)
	return cmd
}

// mountAttackSpec is a privileged container running the mount attacks, with a read-only
// volume at /ro and a bind over /proc/meminfo (where eci's /proc emulation binds its file).
func mountAttackSpec(t *testing.T, e *env, args ...string) *specs.Spec {
	t.Helper()
	s := privilegedSpec(t, append([]string{"/bin/attack"}, args...)...)
	ro := filepath.Join(e.dir, "ro-volume")
	if err := os.MkdirAll(ro, 0o777); err != nil {
		t.Fatal(err)
	}
	meminfo := filepath.Join(e.dir, "meminfo")
	if err := os.WriteFile(meminfo, []byte("MemTotal: 1 kB\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// runc's mask over /sys/firmware, which containerd drops for a privileged container
	// (eci puts it back): under plain runc too, so the unmount has something to undo.
	s.Linux.MaskedPaths = []string{"/sys/firmware"}
	s.Mounts = append(s.Mounts,
		specs.Mount{Destination: "/ro", Type: "bind", Source: ro, Options: []string{"rbind", "ro"}},
		specs.Mount{Destination: "/proc/meminfo", Type: "bind", Source: meminfo, Options: []string{"bind", "ro"}},
	)
	return s
}

// A privileged eci container cannot undo the mounts it was created with, through mount(2),
// umount2(2) or the new mount API, nor race the supervisor's check; it can still mount a
// tmpfs of its own, in its namespace or a nested one. Under plain runc every attack works.
func TestSupervisorKeepsMountsImmutable(t *testing.T) {
	e := newEnv(t)
	startSupervisor(t, e)
	results := map[string]map[string]attackResult{}
	for name, rt := range map[string]testbundle.Runtime{"eci": e.eci, "runc": e.runc} {
		id := e.id("mounts-" + name)
		out, err := e.outputOf(rt, id, e.bundle(id, mountAttackSpec(t, e, "-race-iterations", "3000", "mounts")))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		results[name] = parseAttacks(t, out)
		t.Logf("%s:\n%s", name, out)
	}
	for _, a := range []string{"umount-mask", "umount-proc-file", "remount-rw", "new-mount-api", "rbind-unmask", "mount-race"} {
		if r := results["eci"][a]; r.Result != "blocked" {
			t.Errorf("%s under eci: %s: %s", a, r.Result, r.Detail)
		}
		if r := results["runc"][a]; r.Result != "succeeded" {
			t.Errorf("%s did not succeed under plain runc privileged (%s: %s): the test has no teeth", a, r.Result, r.Detail)
		}
	}
	// The race ran through the supervisor: the harmless mounts went through, /proc never.
	if d := results["eci"]["mount-race"].Detail; !strings.Contains(d, "/proc covered 0 times") || strings.Contains(d, "/tmp/race mounted 0 times") {
		t.Errorf("mount-race under eci: %s", d)
	}
	// The new mount API answers ENOSYS, so callers fall back to mount(2).
	if d := results["eci"]["new-mount-api"].Detail; !strings.Contains(d, "fsopen: ENOSYS") {
		t.Errorf("new-mount-api under eci: %s", d)
	}
	// reboot reaches the kernel's pid-namespace check under runc (EINVAL); eci's policy
	// denies it before (EPERM).
	if r := results["eci"]["reboot"]; r.Result != "blocked" {
		t.Errorf("reboot under eci: %s: %s", r.Result, r.Detail)
	}
	if r := results["runc"]["reboot"]; r.Result != "succeeded" {
		t.Errorf("reboot under plain runc should pass the permission check: %s", r.Detail)
	}
	for _, a := range []string{"tmpfs-mount", "nested-tmpfs"} {
		if r := results["eci"][a]; r.Result != "succeeded" {
			t.Errorf("%s must work under eci: %s", a, r.Detail)
		}
	}
	// The supervisor gave the tmpfs to the container's root, as its own mount would be.
	if d := results["eci"]["tmpfs-mount"].Detail; !strings.Contains(d, "owned by 0:0") {
		t.Errorf("tmpfs-mount under eci: %s", d)
	}
}

// With no supervisor reachable at create, the container still starts, and the syscalls the
// supervisor would decide are denied (EPERM), never allowed.
func TestNoSupervisorDeniesTrappedSyscalls(t *testing.T) {
	e := newEnv(t)
	id := e.id("nosup")
	out, err := e.outputOf(e.eci, id, e.bundle(id, mountAttackSpec(t, e, "tmpfs-mount", "umount-mask")))
	if err != nil {
		t.Fatal(err)
	}
	res := parseAttacks(t, out)
	for _, a := range []string{"tmpfs-mount", "umount-mask"} {
		if r := res[a]; r.Result != "blocked" || !strings.Contains(r.Detail, "EPERM") {
			t.Errorf("%s without a supervisor: %s: %s", a, r.Result, r.Detail)
		}
	}
}

// cpuTicks is a process's user and system CPU time, in clock ticks.
func cpuTicks(t *testing.T, pid int) int {
	t.Helper()
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	utime, _ := strconv.Atoi(f[11])
	stime, _ := strconv.Atoi(f[12])
	return utime + stime
}

// Once a supervised container exits, the supervisor spends no CPU on it: it waits for the
// notify fd's hang-up instead of retrying a receive that fails.
func TestSupervisorIdleAfterExit(t *testing.T) {
	e := newEnv(t)
	sup := startSupervisor(t, e)
	for i := range 3 {
		id := e.id("exits-" + strconv.Itoa(i))
		if _, err := e.outputOf(e.eci, id, e.bundle(id, mountAttackSpec(t, e, "tmpfs-mount"))); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(500 * time.Millisecond)
	before := cpuTicks(t, sup.Process.Pid)
	time.Sleep(10 * time.Second)
	used := cpuTicks(t, sup.Process.Pid) - before
	// 100 ticks a second: a supervisor spinning on a dead fd uses ~1000 in 10 s.
	if used > 5 {
		t.Errorf("the supervisor used %d clock ticks of CPU in 10 s with no container running", used)
	}
	t.Logf("supervisor CPU over 10 s idle: %d ticks", used)
}

// freeTotal is the "total" of busybox free's Mem: line, in KiB.
func freeTotal(out string) string {
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "Mem:" {
			return f[1]
		}
	}
	return ""
}

// sysinfo(2) answers an emulated container with its own limit, so busybox free agrees with
// its /proc/meminfo, and sched_getaffinity with its quota's CPUs, so nproc agrees with
// /sys/devices/system/cpu/online; the same container under plain runc gets the host's.
func TestSysinfoAgreesWithMeminfo(t *testing.T) {
	e := newEnv(t)
	pe := startProcfs(t, e)
	startSupervisor(t, e)
	limit, quota, period := int64(256<<20), int64(50000), uint64(100000)
	for name, rt := range map[string]testbundle.Runtime{"eci": e.eci, "runc": e.runc} {
		id := e.id("free-" + name)
		spec := testbundle.Spec("sh", "-c", "free; grep MemTotal /proc/meminfo; echo nproc=$(nproc)")
		spec.Linux.Resources.Memory = &specs.LinuxMemory{Limit: &limit}
		spec.Linux.Resources.CPU = &specs.LinuxCPU{Quota: &quota, Period: &period}
		spec.Linux.CgroupsPath = "/" + id
		pe.register(id)
		out, err := e.outputOf(rt, id, e.bundle(id, spec))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		t.Logf("%s:\n%s", name, out)
		switch total := freeTotal(out); {
		case name == "eci" && total != "262144":
			t.Errorf("free in the eci container: total %q KiB, want 262144 (its limit, as /proc/meminfo says)", total)
		case name == "runc" && (total == "262144" || total == ""):
			t.Errorf("free under plain runc: total %q: the test has no teeth", total)
		}
		// nproc counts sched_getaffinity's CPUs: the 500m quota's one under eci.
		hostCPUs := fmt.Sprintf("nproc=%d", runtime.NumCPU())
		switch {
		case name == "eci" && !strings.Contains(out, "nproc=1\n"):
			t.Errorf("nproc in the eci container with a 500m quota: want 1")
		case name == "runc" && !strings.Contains(out, hostCPUs):
			t.Errorf("nproc under plain runc: want the host's %s", hostCPUs)
		}
	}
}
