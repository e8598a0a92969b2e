package procemu

import (
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeTree writes files (path relative to the root: content) under a new temporary root.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, content := range files {
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// hostFiles is a minimal host: one CPU, 1 GB, no swap, booted 100 s ago.
var hostFiles = map[string]string{
	"proc/cpuinfo":   "processor\t: 0\n\n",
	"proc/stat":      "cpu  1 0 1 1 0 0 0 0 0 0\ncpu0 1 0 1 1 0 0 0 0 0 0\n",
	"proc/meminfo":   "MemTotal:        1000000 kB\nSwapTotal:             0 kB\n",
	"proc/diskstats": " 254       0 vda 1 0 8 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
	"proc/swaps":     swapsHeader,
	"proc/uptime":    "100.00 50.00\n",
	"proc/42/stat":   "42 (sh) S 1 42 42 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5000 0 0\n",
}

// v2Files is a container in cgroup v2 at /c.
var v2Files = map[string]string{
	"sys/fs/cgroup/cgroup.controllers":    "cpuset cpu io memory\n",
	"sys/fs/cgroup/cpuset.cpus.effective": "0\n",
	"sys/fs/cgroup/c/memory.max":          "max\n",
	"sys/fs/cgroup/c/memory.current":      "4096\n",
	"sys/fs/cgroup/c/memory.stat":         "anon 4096\n",
	"sys/fs/cgroup/c/cpu.max":             "max 100000\n",
	"sys/fs/cgroup/c/cpu.stat":            "usage_usec 10\nuser_usec 5\nsystem_usec 5\n",
	"sys/fs/cgroup/c/io.stat":             "254:0 rbytes=4096 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n",
	"sys/fs/cgroup/c/cgroup.threads":      "42\n",
}

// v1Files is a container in cgroup v1 at /c.
var v1Files = map[string]string{
	"sys/fs/cgroup/memory/c/memory.limit_in_bytes":     "9223372036854771712\n",
	"sys/fs/cgroup/memory/c/memory.usage_in_bytes":     "4096\n",
	"sys/fs/cgroup/memory/c/memory.stat":               "total_rss 4096\n",
	"sys/fs/cgroup/memory/c/tasks":                     "42\n",
	"sys/fs/cgroup/cpu/c/cpu.cfs_quota_us":             "-1\n",
	"sys/fs/cgroup/cpu/c/cpu.cfs_period_us":            "100000\n",
	"sys/fs/cgroup/cpuset/c/cpuset.effective_cpus":     "0\n",
	"sys/fs/cgroup/blkio/c/blkio.throttle.io_serviced": "254:0 Read 1\nTotal 1\n",
}

var v1Paths = map[string]string{"memory": "/c", "cpu": "/c", "cpuacct": "/c", "cpuset": "/c", "blkio": "/c"}

// tree merges the host, a cgroup layout and changes (an empty content deletes the file).
func tree(t *testing.T, layout map[string]string, changes map[string]string) string {
	t.Helper()
	files := maps.Clone(hostFiles)
	maps.Copy(files, layout)
	for p, c := range changes {
		if c == "" {
			delete(files, p)
		} else {
			files[p] = c
		}
	}
	return writeTree(t, files)
}

func TestGatherMinimal(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	for name, c := range map[string]struct {
		layout map[string]string
		paths  map[string]string
	}{
		"v1": {v1Files, v1Paths},
		"v2": {v2Files, map[string]string{"": "/c"}},
	} {
		v, err := Gather(tree(t, c.layout, nil), c.paths, now)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if v.MemLimit != 1000000*1024 || v.MemUsage != 4096 || v.Mem.Anon != 4096 || v.CPUs() != 1 || v.Threads != 1 {
			t.Errorf("%s: unexpected view %+v", name, v)
		}
		if want := now.Add(-50 * time.Second); !v.Started.Equal(want) {
			t.Errorf("%s: Started = %v, want %v (50 s after a boot 100 s ago)", name, v.Started, want)
		}
		if len(v.Disks) != 1 || v.Disks[0].Reads != 1 {
			t.Errorf("%s: disks %+v", name, v.Disks)
		}
	}
}

func TestGatherErrors(t *testing.T) {
	t.Parallel()
	v2 := map[string]string{"": "/c"}
	for _, c := range []struct {
		name    string
		layout  map[string]string
		changes map[string]string
		paths   map[string]string
		want    string // in the error
	}{
		{"v2 memory.max", v2Files, map[string]string{"sys/fs/cgroup/c/memory.max": "lots\n"}, v2, "c/memory.max"},
		{"v2 memory.current missing", v2Files, map[string]string{"sys/fs/cgroup/c/memory.current": ""}, v2, "c/memory.current"},
		{"v2 memory.stat", v2Files, map[string]string{"sys/fs/cgroup/c/memory.stat": "anon x\n"}, v2, "c/memory.stat"},
		{"v2 cpu.max", v2Files, map[string]string{"sys/fs/cgroup/c/cpu.max": "half\n"}, v2, "c/cpu.max"},
		{"v2 cpu.stat", v2Files, map[string]string{"sys/fs/cgroup/c/cpu.stat": "user_usec -1\n"}, v2, "c/cpu.stat"},
		{"v2 io.stat", v2Files, map[string]string{"sys/fs/cgroup/c/io.stat": "254:0 rbytes=x\n"}, v2, "c/io.stat"},
		{"v2 io.stat device", v2Files, map[string]string{"sys/fs/cgroup/c/io.stat": "vda rbytes=1\n"}, v2, "c/io.stat"},
		{"v2 cpuset", v2Files, map[string]string{"sys/fs/cgroup/cpuset.cpus.effective": "3-1\n"}, v2, "cpuset.cpus.effective"},
		{"v2 swap.max", v2Files, map[string]string{"sys/fs/cgroup/c/memory.swap.max": "-\n", "sys/fs/cgroup/c/memory.swap.current": "0\n"}, v2, "c/memory.swap.max"},
		{"v2 threads", v2Files, map[string]string{"sys/fs/cgroup/c/cgroup.threads": "42\nx\n"}, v2, "c/cgroup.threads"},
		{"task stat", v2Files, map[string]string{"proc/42/stat": "42 (sh) S 1 2\n"}, v2, "proc/42/stat"},
		{"no cgroup dir", v2Files, nil, map[string]string{"": "/gone"}, "gone"},
		{"relative path", v2Files, nil, map[string]string{"": "/../../c"}, "not absolute"},
		{"host uptime", v2Files, map[string]string{"proc/uptime": "soon\n"}, v2, "proc/uptime"},
		{"host meminfo", v2Files, map[string]string{"proc/meminfo": "nothing\n"}, v2, "proc/meminfo"},
		{"v1 memory.limit_in_bytes", v1Files, map[string]string{"sys/fs/cgroup/memory/c/memory.limit_in_bytes": "1e9\n"}, v1Paths, "memory/c/memory.limit_in_bytes"},
		{"v1 cfs quota", v1Files, map[string]string{"sys/fs/cgroup/cpu/c/cpu.cfs_quota_us": "x\n"}, v1Paths, "cpu/c/cpu.cfs_quota_us"},
		{"v1 cfs period", v1Files, map[string]string{"sys/fs/cgroup/cpu/c/cpu.cfs_quota_us": "50000\n", "sys/fs/cgroup/cpu/c/cpu.cfs_period_us": "\n"}, v1Paths, "cpu/c/cpu.cfs_period_us"},
		{"v1 blkio", v1Files, map[string]string{"sys/fs/cgroup/blkio/c/blkio.throttle.io_serviced": "254:0 Read many\n"}, v1Paths, "blkio/c/blkio.throttle.io_serviced"},
		{"v1 cpuacct", v1Files, map[string]string{"sys/fs/cgroup/cpuacct/c/cpuacct.usage_user": "1\n", "sys/fs/cgroup/cpuacct/c/cpuacct.usage_sys": "-\n"}, v1Paths, "cpuacct/c/cpuacct.usage_sys"},
		{"v1 no memory cgroup", v1Files, nil, map[string]string{"cpu": "/c"}, "no memory cgroup"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			v, err := Gather(tree(t, c.layout, c.changes), c.paths, time.Unix(1_800_000_000, 0))
			if err == nil {
				t.Fatalf("no error; view %+v", v)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not name %q", err, c.want)
			}
		})
	}
}
