package procemu

import (
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestCPUsFor(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		quota  int64
		period uint64
		cpuset int
		want   int
	}{
		{50000, 100000, 2, 1},    // 500m
		{100000, 100000, 2, 1},   // exactly 1
		{100001, 100000, 2, 2},   // rounded up
		{150000, 100000, 4, 2},   // 1500m
		{300000, 100000, 2, 2},   // capped by the cpuset
		{1000, 100000, 8, 1},     // 10m: at least 1
		{-1, 100000, 8, 8},       // v1: no quota
		{0, 100000, 3, 3},        // v2 "max" as Gather stores it
		{50000, 0, 4, 4},         // no period: no quota
		{50000, 100000, 0, 1},    // empty cpuset: still 1
		{400000, 50000, 16, 8},   // other periods
		{math.MaxInt64, 1, 4, 4}, // no overflow
	} {
		if got := CPUsFor(c.quota, c.period, c.cpuset); got != c.want {
			t.Errorf("CPUsFor(%d, %d, %d) = %d, want %d", c.quota, c.period, c.cpuset, got, c.want)
		}
	}
}

func TestCPUList(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in     string
		cpus   []int
		format string
	}{
		{"", nil, ""},
		{"\n", nil, ""},
		{"0\n", []int{0}, "0"},
		{"0-3", []int{0, 1, 2, 3}, "0-3"},
		{"0-1,3", []int{0, 1, 3}, "0-1,3"},
		{"1,3", []int{1, 3}, "1,3"},
		{"8,0-2,4-5", []int{0, 1, 2, 4, 5, 8}, "0-2,4-5,8"},
		{"2,2,1-3", []int{1, 2, 3}, "1-3"},
	} {
		got, err := ParseCPUList(c.in)
		if err != nil || !reflect.DeepEqual(got, c.cpus) {
			t.Errorf("ParseCPUList(%q) = %v, %v; want %v", c.in, got, err, c.cpus)
		}
		if f := FormatCPUList(got); f != c.format {
			t.Errorf("FormatCPUList(%v) = %q, want %q", got, f, c.format)
		}
	}
	for _, bad := range []string{"a", "1-", "-1", "3-1", "0,,1", "1-2-3", "0-99999999"} {
		if got, err := ParseCPUList(bad); err == nil {
			t.Errorf("ParseCPUList(%q) = %v, want an error", bad, got)
		}
	}
}

func TestParseLimit(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in      string
		limit   uint64
		limited bool
		err     bool
	}{
		{"max", 0, false, false},
		{"max\n", 0, false, false},
		{"268435456\n", 268435456, true, false},
		{"0", 0, true, false},
		{"9223372036854771712", 0, false, false}, // v1's "no limit", 4 KiB pages
		{"9223372036854710272", 0, false, false}, // v1's "no limit", 64 KiB pages
		{"25276157952", 25276157952, true, false},
		{"-1", 0, false, true},
		{"lots", 0, false, true},
		{"", 0, false, true},
	} {
		limit, limited, err := ParseLimit(c.in)
		if limit != c.limit || limited != c.limited || (err != nil) != c.err {
			t.Errorf("ParseLimit(%q) = %d, %t, %v; want %d, %t, error %t", c.in, limit, limited, err, c.limit, c.limited, c.err)
		}
	}
}

func TestParseCgroupFile(t *testing.T) {
	t.Parallel()
	got, err := ParseCgroupFile([]byte("12:cpu,cpuacct:/kubepods/a\n3:name=systemd:/x\n1:memory:/kubepods/a\n0::/\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"cpu": "/kubepods/a", "cpuacct": "/kubepods/a", "name=systemd": "/x", "memory": "/kubepods/a", "": "/"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	v2, err := ParseCgroupFile([]byte("0::/kubepods.slice/a.scope\n"))
	if err != nil || v2[""] != "/kubepods.slice/a.scope" || len(v2) != 1 {
		t.Errorf("v2: got %v, %v", v2, err)
	}
	if _, err := ParseCgroupFile([]byte("garbage\n")); err == nil {
		t.Error("a malformed line parsed")
	}
}

func TestParseCentis(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]time.Duration{
		"3397.43": 3397*time.Second + 430*time.Millisecond,
		"0.05":    50 * time.Millisecond,
		"12.5":    12*time.Second + 500*time.Millisecond,
		"7":       7 * time.Second,
		"1.239":   time.Second + 230*time.Millisecond,
	} {
		if got, err := parseCentis(in); err != nil || got != want {
			t.Errorf("parseCentis(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "x", "1.x", "-1.00"} {
		if _, err := parseCentis(bad); err == nil {
			t.Errorf("parseCentis(%q) succeeded", bad)
		}
	}
}

func TestLoadAvg(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1000, 0)
	var l LoadAvg
	if got := l.Update(2, t0); got != [3]float64{2, 2, 2} {
		t.Fatalf("first sample: %v, want it seeded", got)
	}
	if got := l.Update(9, t0); got != [3]float64{2, 2, 2} {
		t.Fatalf("a sample at the same instant changed the averages: %v", got)
	}
	got := l.Update(0, t0.Add(time.Minute))
	for i, window := range []float64{60, 300, 900} {
		want := 2 * math.Exp(-60/window)
		if math.Abs(got[i]-want) > 1e-9 {
			t.Errorf("after a minute idle: avg[%d] = %v, want %v", i, got[i], want)
		}
	}
	if !(got[0] < got[1] && got[1] < got[2]) {
		t.Errorf("the 1-minute average should fall fastest: %v", got)
	}
	// A busy minute sampled every 5 s moves toward the load as the kernel's would.
	var busy LoadAvg
	busy.Update(0, t0)
	var avg [3]float64
	for i := 1; i <= 12; i++ {
		avg = busy.Update(4, t0.Add(time.Duration(i)*5*time.Second))
	}
	if want := 4 * (1 - math.Exp(-1)); math.Abs(avg[0]-want) > 1e-9 {
		t.Errorf("after a busy minute: %v, want %v", avg[0], want)
	}
}

func TestRenderLoadavg(t *testing.T) {
	t.Parallel()
	v := View{Load: [3]float64{0.004, 1.2349, 12.5}, Running: 1, Threads: 31, LastPID: 77}
	got, _ := RenderLoadavg(v)
	if want := "0.00 1.23 12.50 1/31 77\n"; string(got) != want {
		t.Errorf("got %q, want %q", got, want)
	}
	v.Load = [3]float64{0.005, 0.996, -1}
	got, _ = RenderLoadavg(v)
	if want := "0.01 1.00 0.00 1/31 77\n"; string(got) != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestRenderUptime(t *testing.T) {
	t.Parallel()
	now := time.Unix(5000, 0)
	for _, c := range []struct {
		name string
		v    View
		want string
	}{
		{"idle", View{Now: now, Started: now.Add(-90 * time.Second), CPUSet: []int{0, 1}}, "90.00 180.00\n"},
		{"busy", View{Now: now, Started: now.Add(-10*time.Second - 257*time.Millisecond), CPUSet: []int{0}, CPUUser: 3 * time.Second, CPUSystem: time.Second}, "10.25 6.25\n"},
		{"more used than elapsed", View{Now: now, Started: now.Add(-time.Second), CPUSet: []int{0}, CPUUser: time.Hour}, "1.00 0.00\n"},
		{"started in the future", View{Now: now, Started: now.Add(time.Second), CPUSet: []int{0}}, "0.00 0.00\n"},
	} {
		if got, _ := RenderUptime(c.v); string(got) != c.want {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
}

func TestRenderSwaps(t *testing.T) {
	t.Parallel()
	long := "/var/lib/swap/a-very-long-swap-file-name-indeed"
	for _, c := range []struct {
		name string
		v    View
		want string
	}{
		{"no swap", View{SwapLimit: 0, Host: HostFiles{Swaps: []byte(swapsHeader)}}, ""},
		{"host has none", View{SwapLimit: 1 << 20}, "none" + strings.Repeat(" ", 36) + "file\t\t1024\t\t0\t\t-2\n"},
		{
			"partition",
			View{SwapLimit: 64 << 20, SwapUsage: 4 << 20, Host: HostFiles{Swaps: []byte(swapsHeader + "/dev/vdb                                partition\t8388604\t\t265148\t\t-2\n")}},
			"/dev/vdb" + strings.Repeat(" ", 32) + "partition\t65536\t\t4096\t\t-2\n",
		},
		{
			"large and long",
			View{SwapLimit: 20000000 << 10, SwapUsage: 10000000 << 10, Host: HostFiles{Swaps: []byte(swapsHeader + long + " file\t\t30000000\t0\t\t5\n")}},
			long + " file\t\t20000000\t10000000\t5\n",
		},
		{"usage capped", View{SwapLimit: 1 << 20, SwapUsage: 1 << 30}, "none" + strings.Repeat(" ", 36) + "file\t\t1024\t\t1024\t\t-2\n"},
	} {
		got, err := RenderSwaps(c.v)
		if err != nil || string(got) != swapsHeader+c.want {
			t.Errorf("%s: got %q, %v; want %q", c.name, got, err, swapsHeader+c.want)
		}
	}
}

func TestRenderStatSplitsEvenly(t *testing.T) {
	t.Parallel()
	now := time.Unix(5000, 0)
	v := View{
		Now: now, Started: now.Add(-10 * time.Second), CPUSet: []int{0, 1, 2},
		CPUUser: 101 * tick, CPUSystem: 2 * tick, Running: 2, Blocked: 1,
		Host: HostFiles{Stat: []byte("cpu  9 9 9 9 9 9 9 0 0 0\ncpu0 9 9 9 9 9 9 9 0 0 0\nintr 5 1 2\nctxt 42\nbtime 1796393540\nprocs_running 7\nprocs_blocked 3\n")},
	}
	got, err := RenderStat(v)
	if err != nil {
		t.Fatal(err)
	}
	want := "cpu  101 0 2 2897 0 0 0 0 0 0\n" +
		"cpu0 34 0 1 966 0 0 0 0 0 0\n" +
		"cpu1 34 0 1 966 0 0 0 0 0 0\n" +
		"cpu2 33 0 0 965 0 0 0 0 0 0\n" +
		"intr 5 1 2\nctxt 42\nbtime 1796393540\nprocs_running 2\nprocs_blocked 1\n"
	if string(got) != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestRenderersNeedHostFiles(t *testing.T) {
	t.Parallel()
	v := View{CPUSet: []int{0}}
	for _, r := range []func(View) ([]byte, error){RenderMeminfo, RenderCPUInfo, RenderStat, RenderDiskstats} {
		if _, err := r(v); err == nil {
			t.Error("a renderer without its host file succeeded")
		}
	}
}
