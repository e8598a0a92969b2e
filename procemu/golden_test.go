package procemu

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files from the current output")

// goldenNow is when the golden views are gathered. Every rendered figure is relative to the
// testdata's host uptime, so any instant gives the same files.
var goldenNow = time.Date(2026, 12, 4, 15, 0, 0, 0, time.UTC)

// goldenCases are fake host roots testdata/<name>: the host's /proc files, cgroupfs under
// sys/fs/cgroup, the container's tasks under proc/<pid>, and "cgroup", the container's
// /proc/<pid>/cgroup. Each renderer's output is compared with testdata/<name>/<file>.golden.
var goldenCases = []struct {
	name     string
	nproc    int
	memTotal uint64 // kB
}{
	{"v1-limited", 1, 262144},     // 256Mi, 500m CPU, this machine's cgroup v1 layout
	{"v1-unlimited", 2, 24683748}, // no limits: the host's memory and CPUs
	{"v2-limited", 2, 262144},     // 256Mi, 1500m CPU, 64Mi swap
	{"v2-unlimited", 4, 16370884}, // no limits, swap "max": the host's swap file
	{"cpuset-limited", 2, 524288}, // CPUs 1,3 of 4 cap a 3-CPU quota; 256Mi swap
}

func TestGolden(t *testing.T) {
	t.Parallel()
	for _, c := range goldenCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			root := filepath.Join("testdata", c.name)
			cgroupFile, err := os.ReadFile(filepath.Join(root, "cgroup"))
			if err != nil {
				t.Fatal(err)
			}
			paths, err := ParseCgroupFile(cgroupFile)
			if err != nil {
				t.Fatal(err)
			}
			v, err := Gather(root, paths, goldenNow)
			if err != nil {
				t.Fatalf("Gather: %v", err)
			}
			if got := v.CPUs(); got != c.nproc {
				t.Errorf("CPUs() = %d, want %d", got, c.nproc)
			}
			rendered := map[string][]byte{}
			for _, f := range Files() {
				got, err := f.Render(v)
				if err != nil {
					t.Errorf("%s: %v", f.Path, err)
					continue
				}
				rendered[f.Path] = got
				compareGolden(t, filepath.Join(root, path.Base(f.Path)+".golden"), got)
			}
			checkConsistent(t, rendered, c.nproc, c.memTotal)
			si := RenderSysinfo(v)
			compareGolden(t, filepath.Join(root, "sysinfo.golden"), fmt.Appendf(nil, "%+v\n", si))
			checkSysinfo(t, si, rendered["/proc/meminfo"], rendered["/proc/uptime"])
		})
	}
}

// checkSysinfo checks that sysinfo(2) agrees with /proc/meminfo and /proc/uptime, so busybox
// free (sysinfo) and cat /proc/meminfo tell the same story.
func checkSysinfo(t *testing.T, si Sysinfo, meminfo, uptime []byte) {
	t.Helper()
	m := parseMeminfo(meminfo)
	for _, c := range []struct {
		name string
		got  uint64
	}{
		{"MemTotal", si.TotalRAM}, {"MemFree", si.FreeRAM}, {"Shmem", si.SharedRAM},
		{"Buffers", si.BufferRAM}, {"SwapTotal", si.TotalSwap}, {"SwapFree", si.FreeSwap},
	} {
		if c.got != m[c.name]*1024 {
			t.Errorf("sysinfo %s = %d bytes, meminfo says %d kB", c.name, c.got, m[c.name])
		}
	}
	up, _, _ := strings.Cut(string(uptime), ".")
	if fmt.Sprint(si.Uptime) != up {
		t.Errorf("sysinfo uptime %d, /proc/uptime %q", si.Uptime, uptime)
	}
}

// checkConsistent checks what must hold whatever the goldens say: the CPU count agrees
// across files, and no memory figure exceeds MemTotal.
func checkConsistent(t *testing.T, files map[string][]byte, nproc int, memTotal uint64) {
	t.Helper()
	if n := strings.Count(string(files["/proc/cpuinfo"]), "processor\t: "); n != nproc {
		t.Errorf("cpuinfo lists %d processors, want %d", n, nproc)
	}
	if n := strings.Count(string(files["/proc/stat"]), "\ncpu"); n != nproc {
		t.Errorf("stat has %d cpuN lines, want %d", n, nproc)
	}
	mem := parseMeminfo(files["/proc/meminfo"])
	if mem["MemTotal"] != memTotal {
		t.Errorf("MemTotal = %d kB, want %d", mem["MemTotal"], memTotal)
	}
	for name, kb := range mem {
		if kb > memTotal && !strings.HasPrefix(name, "Swap") {
			t.Errorf("meminfo %s = %d kB exceeds MemTotal", name, kb)
		}
	}
	if mem["MemFree"] > mem["MemAvailable"] {
		t.Errorf("MemFree %d > MemAvailable %d", mem["MemFree"], mem["MemAvailable"])
	}
	if mem["SwapFree"] > mem["SwapTotal"] {
		t.Errorf("SwapFree %d > SwapTotal %d", mem["SwapFree"], mem["SwapTotal"])
	}
}

func compareGolden(t *testing.T, golden string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run with -update to accept):\n--- got\n%s\n--- want\n%s", golden, got, want)
	}
}
