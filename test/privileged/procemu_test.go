package privileged

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/eci-dev/eci/internal/testbundle"
	"github.com/eci-dev/eci/procemu"
)

// The renderers, fed from a real container's cgroups on this kernel, show the container's
// limits: a container limited to 256Mi and 500m CPU gets MemTotal 262144 kB, one CPU and its
// own uptime, where the kernel's files show the host's.
func TestRenderersReadRealCgroups(t *testing.T) {
	e := newEnv(t)
	spec := testbundle.Spec("sleep", "300")
	limit, quota, period := int64(256<<20), int64(50000), uint64(100000)
	spec.Linux.Resources.Memory = &specs.LinuxMemory{Limit: &limit}
	spec.Linux.Resources.CPU = &specs.LinuxCPU{Quota: &quota, Period: &period}
	id := e.id("limited")
	pid := e.startSleeper(e.eci, id, spec)

	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	paths, err := procemu.ParseCgroupFile(data)
	if err != nil {
		t.Fatal(err)
	}
	v, err := procemu.Gather("/", paths, time.Now())
	if err != nil {
		t.Fatalf("gathering container %s (cgroups %v): %v", id, paths, err)
	}
	render := func(name string, r func(procemu.View) ([]byte, error)) string {
		out, err := r(v)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return string(out)
	}
	meminfo := render("meminfo", procemu.RenderMeminfo)
	if !strings.Contains(meminfo, "MemTotal:         262144 kB\n") {
		t.Errorf("meminfo does not show the 256Mi limit:\n%s", firstLines(meminfo, 3))
	}
	host, _ := os.ReadFile("/proc/meminfo")
	if strings.Contains(string(host), "MemTotal:         262144 kB\n") {
		t.Fatal("the host itself has 256Mi: the test cannot tell the two apart")
	}
	if got := render("online", procemu.RenderCPUOnline); got != "0\n" {
		t.Errorf("cpu/online = %q, want \"0\\n\" (500m rounds up to one CPU)", got)
	}
	if n := strings.Count(render("cpuinfo", procemu.RenderCPUInfo), "processor\t:"); n != 1 {
		t.Errorf("cpuinfo lists %d processors, want 1", n)
	}
	var up, idle float64
	if _, err := fmt.Sscanf(render("uptime", procemu.RenderUptime), "%f %f", &up, &idle); err != nil || up > 60 {
		t.Errorf("uptime %v (%v): want the container's few seconds, not the host's", up, err)
	}
	// What the container reads from the kernel today: the host's numbers.
	id2 := e.id("reads")
	spec2 := testbundle.Spec("sh", "-c", "grep MemTotal /proc/meminfo")
	spec2.Linux.Resources.Memory = &specs.LinuxMemory{Limit: &limit}
	out, err := e.outputOf(e.eci, id2, e.bundle(id2, spec2))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, " 262144 kB") {
		t.Errorf("the kernel's /proc/meminfo already shows the limit (%q): emulation would prove nothing", out)
	}
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}
