package procemu

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cgroupMount is where cgroupfs is mounted, relative to the host root.
const cgroupMount = "sys/fs/cgroup"

// unlimitedFrom is where a cgroup v1 limit stops being a limit: the kernel reports "no
// limit" as its largest page-aligned counter (9223372036854771712 with 4 KiB pages, less
// with larger pages), and no real limit comes near 2^62 bytes.
const unlimitedFrom = 1 << 62

// ParseCgroupFile parses /proc/<pid>/cgroup into the cgroup path of each controller, the
// form Gather takes: a cgroup v1 line "4:cpu,cpuacct:/kubepods/x" gives "cpu" and "cpuacct"
// (a named hierarchy keeps its "name=" prefix), the cgroup v2 line "0::/x" gives "".
func ParseCgroupFile(data []byte) (map[string]string, error) {
	paths := map[string]string{}
	for line := range strings.Lines(string(data)) {
		line = strings.TrimRight(line, "\n")
		if line == "" {
			continue
		}
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			return nil, fmt.Errorf("cgroup file: malformed line %q", line)
		}
		for c := range strings.SplitSeq(parts[1], ",") {
			paths[c] = parts[2]
		}
	}
	return paths, nil
}

// Gather reads everything the renderers need about one container through the host root
// prefix root ("/" on the host, "/host" in a pod, a testdata tree in tests), at time now.
// cgroupPaths maps each controller to the container's cgroup path (see ParseCgroupFile):
// with cgroup v1 "memory", "cpu", "cpuacct", "cpuset" and "blkio" are read, with cgroup v2
// the unified path "". Paths are as the host's cgroup namespace shows them: the caller must
// run in it. The layout (v2 if root/sys/fs/cgroup is cgroup2, else v1 or hybrid) is detected.
//
// The tasks of the cgroup and its descendants are scanned (root/proc/<tid>/stat each): the
// earliest start among them is the container's start, their states give the run queue and
// the load figures (see View.Load).
//
// The memory cgroup and the host's /proc files are required; a controller that is not
// mounted or a file the kernel does not have leaves its part of the view at the host's value
// or zero. A file that does not parse is an error naming the file.
func Gather(root string, cgroupPaths map[string]string, now time.Time) (View, error) {
	v := View{Now: now}
	uptime, err := readHost(root, &v.Host)
	if err != nil {
		return View{}, err
	}
	v.Boot = now.Add(-uptime)
	hostMem := parseMeminfo(v.Host.MemInfo)
	hostTotal, ok := hostMem["MemTotal"]
	if !ok {
		return View{}, fmt.Errorf("%s: no MemTotal", filepath.Join(root, "proc/meminfo"))
	}

	cg, err := newCgroups(root, cgroupPaths)
	if err != nil {
		return View{}, err
	}
	steps := []func(*View) error{
		func(v *View) error { return cg.memory(v, hostTotal*1024, hostMem["SwapTotal"]*1024) },
		cg.cpu,
		cg.io,
		cg.tasks,
	}
	for _, step := range steps {
		if err := step(&v); err != nil {
			return View{}, err
		}
	}
	return v, nil
}

// readHost reads the host files renderers transform and returns the host's uptime.
func readHost(root string, h *HostFiles) (time.Duration, error) {
	for _, f := range []struct {
		name string
		dst  *[]byte
	}{
		{"cpuinfo", &h.CPUInfo},
		{"stat", &h.Stat},
		{"meminfo", &h.MemInfo},
		{"diskstats", &h.DiskStats},
		{"swaps", &h.Swaps},
	} {
		b, err := os.ReadFile(filepath.Join(root, "proc", f.name))
		if err != nil {
			return 0, err
		}
		*f.dst = b
	}
	p := filepath.Join(root, "proc/uptime")
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, err
	}
	fields := strings.Fields(string(b))
	if len(fields) == 0 {
		return 0, fmt.Errorf("parsing %s: empty", p)
	}
	up, err := parseCentis(fields[0])
	if err != nil {
		return 0, fmt.Errorf("parsing %s: %w", p, err)
	}
	return up, nil
}

// parseCentis parses seconds with up to two decimals ("3397.43"), as /proc/uptime prints.
func parseCentis(s string) (time.Duration, error) {
	whole, frac, _ := strings.Cut(s, ".")
	sec, err := strconv.ParseUint(whole, 10, 32)
	if err != nil {
		return 0, err
	}
	cs := uint64(0)
	if frac != "" {
		if len(frac) > 2 {
			frac = frac[:2]
		}
		if cs, err = strconv.ParseUint(frac, 10, 8); err != nil {
			return 0, fmt.Errorf("bad fraction in %q", s)
		}
		if len(frac) == 1 {
			cs *= 10
		}
	}
	return time.Duration(sec)*time.Second + time.Duration(cs)*10*time.Millisecond, nil
}

// cgroups finds a container's cgroup directories under a host root.
type cgroups struct {
	root, mount string // mount is root/sys/fs/cgroup
	v2          bool
	paths       map[string]string
}

func newCgroups(root string, paths map[string]string) (*cgroups, error) {
	for c, p := range paths {
		if !path.IsAbs(p) || slices.Contains(strings.Split(p, "/"), "..") {
			return nil, fmt.Errorf("cgroup path %q of %q is not absolute in the host's cgroup namespace", p, c)
		}
	}
	c := &cgroups{root: root, mount: filepath.Join(root, cgroupMount), paths: paths}
	if _, err := os.Stat(filepath.Join(c.mount, "cgroup.controllers")); err == nil {
		c.v2 = true
	}
	return c, nil
}

// dirs returns the container's cgroup directory in controller ctrl's hierarchy followed by
// its ancestors up to the hierarchy's root; none if the controller is not mounted or the
// container has no path in it.
func (c *cgroups) dirs(ctrl string) ([]string, error) {
	key := ctrl
	if c.v2 {
		key = ""
	}
	p, ok := c.paths[key]
	if !ok {
		return nil, nil
	}
	top := c.mount
	if !c.v2 {
		var err error
		if top, err = c.v1Mount(ctrl); top == "" || err != nil {
			return nil, err
		}
	}
	var dirs []string
	for {
		dirs = append(dirs, filepath.Join(top, p))
		if p == "/" {
			return dirs, nil
		}
		p = path.Dir(p)
	}
}

// v1Mount finds the hierarchy of a cgroup v1 controller: root/sys/fs/cgroup/<ctrl>, or a
// directory co-mounting it ("cpu,cpuacct"). "" if none.
func (c *cgroups) v1Mount(ctrl string) (string, error) {
	if st, err := os.Stat(filepath.Join(c.mount, ctrl)); err == nil && st.IsDir() {
		return filepath.Join(c.mount, ctrl), nil
	}
	entries, err := os.ReadDir(c.mount)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", nil
		}
		return "", err
	}
	for _, e := range entries {
		if e.IsDir() && slices.Contains(strings.Split(e.Name(), ","), ctrl) {
			return filepath.Join(c.mount, e.Name()), nil
		}
	}
	return "", nil
}

// memory fills the memory and swap part of v. hostTotal and hostSwap are in bytes.
func (c *cgroups) memory(v *View, hostTotal, hostSwap uint64) error {
	dirs, err := c.dirs("memory")
	if err != nil {
		return err
	}
	if len(dirs) == 0 {
		return errors.New("the container has no memory cgroup")
	}
	leaf := dirs[0]
	names := [...]string{"memory.limit_in_bytes", "memory.usage_in_bytes", "memory.memsw.limit_in_bytes", "memory.memsw.usage_in_bytes"}
	if c.v2 {
		names = [...]string{"memory.max", "memory.current", "memory.swap.max", "memory.swap.current"}
	}
	limit, limited, err := minLimit(dirs, names[0])
	if err != nil {
		return err
	}
	v.MemLimit = hostTotal
	if limited {
		v.MemLimit = min(limit, hostTotal)
	}
	usage, err := readUint(filepath.Join(leaf, names[1]))
	if err != nil {
		return err
	}
	v.MemUsage = min(usage, v.MemLimit)
	stat, err := readKeyed(filepath.Join(leaf, "memory.stat"))
	if err != nil {
		return err
	}
	v.Mem = memStat(stat, !c.v2)

	// Swap: v2's memory.swap.max limits swap alone, v1's memsw limits memory plus swap. No
	// file at all means swap is not accounted (swapaccount=0): the container is shown none.
	swapLimit, swapLimited, err := minLimit(dirs, names[2])
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	swapUse, err := readUint(filepath.Join(leaf, names[3]))
	if err != nil {
		return err
	}
	if !c.v2 {
		if swapLimited {
			swapLimit = satSub(swapLimit, v.MemLimit)
		}
		if s, ok := stat["total_swap"]; ok {
			swapUse = s
		} else {
			swapUse = satSub(swapUse, usage)
		}
	}
	v.SwapLimit = hostSwap
	if swapLimited {
		v.SwapLimit = min(swapLimit, hostSwap)
	}
	v.SwapUsage = min(swapUse, v.SwapLimit)
	return nil
}

// memStat maps a memory.stat onto MemStat; v1's are the hierarchical total_* counters.
func memStat(m map[string]uint64, v1 bool) MemStat {
	var s MemStat
	for _, f := range []struct {
		v2, v1 string // v1 "": cgroup v1 has no such counter
		dst    *uint64
	}{
		{"anon", "rss", &s.Anon},
		{"file", "cache", &s.File},
		{"shmem", "shmem", &s.Shmem},
		{"file_mapped", "mapped_file", &s.FileMapped},
		{"file_dirty", "dirty", &s.FileDirty},
		{"file_writeback", "writeback", &s.FileWriteback},
		{"swapcached", "swapcached", &s.SwapCached},
		{"anon_thp", "rss_huge", &s.AnonTHP},
		{"file_thp", "", &s.FileTHP},
		{"shmem_thp", "", &s.ShmemTHP},
		{"active_anon", "active_anon", &s.ActiveAnon},
		{"inactive_anon", "inactive_anon", &s.InactiveAnon},
		{"active_file", "active_file", &s.ActiveFile},
		{"inactive_file", "inactive_file", &s.InactiveFile},
		{"unevictable", "unevictable", &s.Unevictable},
		{"slab_reclaimable", "", &s.SlabReclaimable},
		{"slab_unreclaimable", "", &s.SlabUnreclaimable},
		{"kernel_stack", "", &s.KernelStack},
		{"pagetables", "", &s.PageTables},
		{"sec_pagetables", "", &s.SecPageTables},
		{"percpu", "", &s.Percpu},
		{"zswap", "", &s.Zswap},
		{"zswapped", "", &s.Zswapped},
	} {
		name := f.v2
		if v1 {
			if f.v1 == "" {
				continue
			}
			name = "total_" + f.v1
		}
		*f.dst = m[name]
	}
	return s
}

// cpu fills the cpuset, CFS quota and CPU usage part of v.
func (c *cgroups) cpu(v *View) error {
	dirs, err := c.dirs("cpuset")
	if err != nil {
		return err
	}
	effective := "cpuset.effective_cpus"
	if c.v2 {
		effective = "cpuset.cpus.effective"
	}
	// The first non-empty list from the cgroup up; the host's online CPUs if none.
walk:
	for _, d := range dirs {
		for _, name := range []string{effective, "cpuset.cpus"} {
			p := filepath.Join(d, name)
			s, err := readString(p)
			if errors.Is(err, fs.ErrNotExist) || (err == nil && s == "") {
				continue
			} else if err != nil {
				return err
			}
			if v.CPUSet, err = ParseCPUList(s); err != nil {
				return fmt.Errorf("parsing %s: %w", p, err)
			}
			break walk
		}
	}
	if len(v.CPUSet) == 0 {
		p := filepath.Join(c.root, "sys/devices/system/cpu/online")
		s, err := readString(p)
		if err != nil {
			return err
		}
		if v.CPUSet, err = ParseCPUList(s); err != nil {
			return fmt.Errorf("parsing %s: %w", p, err)
		}
	}

	if dirs, err = c.dirs("cpu"); err != nil {
		return err
	}
	for _, d := range dirs {
		quota, period, err := c.cfsQuota(d)
		if err != nil {
			return err
		}
		if quota > 0 && period > 0 && (v.CPUQuota <= 0 || uint64(quota)*v.CPUPeriod < uint64(v.CPUQuota)*period) {
			v.CPUQuota, v.CPUPeriod = quota, period
		}
	}

	if dirs, err = c.dirs("cpuacct"); err != nil || len(dirs) == 0 {
		return err
	}
	if c.v2 {
		p := filepath.Join(dirs[0], "cpu.stat")
		st, err := readKeyed(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		} else if err != nil {
			return err
		}
		v.CPUUser = time.Duration(st["user_usec"]) * time.Microsecond
		v.CPUSystem = time.Duration(st["system_usec"]) * time.Microsecond
		return nil
	}
	user, err := readUint(filepath.Join(dirs[0], "cpuacct.usage_user"))
	if err == nil {
		sys, err := readUint(filepath.Join(dirs[0], "cpuacct.usage_sys"))
		v.CPUUser, v.CPUSystem = time.Duration(user), time.Duration(sys)
		return err
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	// Kernels before 4.7 have only cpuacct.stat, in USER_HZ ticks.
	st, err := readKeyed(filepath.Join(dirs[0], "cpuacct.stat"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	v.CPUUser = time.Duration(st["user"]) * tick
	v.CPUSystem = time.Duration(st["system"]) * tick
	return nil
}

// cfsQuota reads the CFS bandwidth limit of one cgroup directory; quota <= 0 if none.
func (c *cgroups) cfsQuota(dir string) (quota int64, period uint64, err error) {
	if c.v2 {
		p := filepath.Join(dir, "cpu.max")
		s, err := readString(p)
		if errors.Is(err, fs.ErrNotExist) {
			return 0, 0, nil
		} else if err != nil {
			return 0, 0, err
		}
		q, per, ok := strings.Cut(s, " ")
		if period, err = strconv.ParseUint(per, 10, 64); !ok || err != nil {
			return 0, 0, fmt.Errorf("parsing %s: bad %q", p, s)
		}
		if q == "max" {
			return 0, period, nil
		}
		if quota, err = strconv.ParseInt(q, 10, 64); err != nil {
			return 0, 0, fmt.Errorf("parsing %s: bad %q", p, s)
		}
		return quota, period, nil
	}
	p := filepath.Join(dir, "cpu.cfs_quota_us")
	s, err := readString(p)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, 0, nil
	} else if err != nil {
		return 0, 0, err
	}
	if quota, err = strconv.ParseInt(s, 10, 64); err != nil {
		return 0, 0, fmt.Errorf("parsing %s: %w", p, err)
	}
	if quota <= 0 {
		return 0, 0, nil
	}
	period, err = readUint(filepath.Join(dir, "cpu.cfs_period_us"))
	return quota, period, err
}

// io fills v.Disks from blkio (v1) or io.stat (v2).
func (c *cgroups) io(v *View) error {
	dirs, err := c.dirs("blkio")
	if err != nil || len(dirs) == 0 {
		return err
	}
	t := diskTable{}
	if c.v2 {
		err = t.readIOStat(filepath.Join(dirs[0], "io.stat"))
	} else {
		err = t.readBlkio(dirs[0])
	}
	if err != nil {
		return err
	}
	for _, d := range t {
		v.Disks = append(v.Disks, *d)
	}
	slices.SortFunc(v.Disks, func(a, b DiskIO) int {
		return cmp.Or(cmp.Compare(a.Major, b.Major), cmp.Compare(a.Minor, b.Minor))
	})
	return nil
}

// diskTable collects per-device I/O counters by major:minor.
type diskTable map[[2]uint32]*DiskIO

// get returns the entry of dev ("254:0"), read from file p.
func (t diskTable) get(p, dev string) (*DiskIO, error) {
	maj, mnr, ok := strings.Cut(dev, ":")
	a, err1 := strconv.ParseUint(maj, 10, 32)
	b, err2 := strconv.ParseUint(mnr, 10, 32)
	if !ok || err1 != nil || err2 != nil {
		return nil, fmt.Errorf("parsing %s: bad device %q", p, dev)
	}
	k := [2]uint32{uint32(a), uint32(b)}
	if t[k] == nil {
		t[k] = &DiskIO{Major: k[0], Minor: k[1]}
	}
	return t[k], nil
}

// readIOStat reads cgroup v2's io.stat: "254:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=5 dios=6".
func (t diskTable) readIOStat(p string) error {
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // the io controller is not enabled for the cgroup
	} else if err != nil {
		return err
	}
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		d, err := t.get(p, f[0])
		if err != nil {
			return err
		}
		for _, kv := range f[1:] {
			k, val, _ := strings.Cut(kv, "=")
			n, err := strconv.ParseUint(val, 10, 64)
			if err != nil {
				return fmt.Errorf("parsing %s: bad %q", p, kv)
			}
			if dst := map[string]*uint64{
				"rbytes": &d.ReadBytes, "wbytes": &d.WriteBytes, "dbytes": &d.DiscardBytes,
				"rios": &d.Reads, "wios": &d.Writes, "dios": &d.Discards,
			}[k]; dst != nil {
				*dst = n
			}
		}
	}
	return nil
}

// readBlkio reads cgroup v1's blkio byte and request counts ("254:0 Read 4096" lines) from the
// first file of each kind the kernel has. blkio.throttle.* count every bio since CFQ left
// (5.0); the recursive variants include child cgroups. LXCFS reads the blkio.io_* names
// that only CFQ and BFQ provide, so it shows no disks on these kernels.
func (t diskTable) readBlkio(dir string) error {
	for _, kind := range []struct {
		files                []string
		read, write, discard func(*DiskIO) *uint64
	}{
		{
			[]string{"blkio.throttle.io_service_bytes_recursive", "blkio.throttle.io_service_bytes", "blkio.io_service_bytes_recursive"},
			func(d *DiskIO) *uint64 { return &d.ReadBytes },
			func(d *DiskIO) *uint64 { return &d.WriteBytes },
			func(d *DiskIO) *uint64 { return &d.DiscardBytes },
		},
		{
			[]string{"blkio.throttle.io_serviced_recursive", "blkio.throttle.io_serviced", "blkio.io_serviced_recursive"},
			func(d *DiskIO) *uint64 { return &d.Reads },
			func(d *DiskIO) *uint64 { return &d.Writes },
			func(d *DiskIO) *uint64 { return &d.Discards },
		},
	} {
		for _, name := range kind.files {
			p := filepath.Join(dir, name)
			b, err := os.ReadFile(p)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			} else if err != nil {
				return err
			}
			for line := range strings.Lines(string(b)) {
				f := strings.Fields(line)
				if len(f) != 3 { // "Total N"
					continue
				}
				d, err := t.get(p, f[0])
				if err != nil {
					return err
				}
				n, err := strconv.ParseUint(f[2], 10, 64)
				if err != nil {
					return fmt.Errorf("parsing %s: bad %q", p, strings.TrimSpace(line))
				}
				switch f[1] {
				case "Read":
					*kind.read(d) = n
				case "Write":
					*kind.write(d) = n
				case "Discard":
					*kind.discard(d) = n
				}
			}
			break
		}
	}
	return nil
}

// tasks scans the tasks of the container's cgroup and its descendants: their states give
// the run queue and load figures, their start times the container's start.
func (c *cgroups) tasks(v *View) error {
	dirs, err := c.dirs("memory")
	if err != nil {
		return err
	}
	list := "tasks"
	if c.v2 {
		list = "cgroup.threads"
	}
	var tids []int
	err = filepath.WalkDir(dirs[0], func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p != dirs[0] {
				return nil // a child cgroup removed while walking
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(filepath.Join(p, list))
		if err != nil {
			return err
		}
		for f := range strings.FieldsSeq(string(b)) {
			tid, err := strconv.Atoi(f)
			if err != nil {
				return fmt.Errorf("parsing %s: bad task %q", filepath.Join(p, list), f)
			}
			tids = append(tids, tid)
		}
		return nil
	})
	if err != nil {
		return err
	}
	slices.Sort(tids)
	tids = slices.Compact(tids)

	first, found := uint64(0), false
	lastTid := 0
	for _, tid := range tids {
		state, start, err := taskStat(filepath.Join(c.root, "proc", strconv.Itoa(tid), "stat"))
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errTaskGone) {
			continue // exited since the list was read
		} else if err != nil {
			return err
		}
		v.Threads++
		switch state {
		case 'R':
			v.Running++
		case 'D':
			v.Blocked++
		}
		if !found || start < first {
			first, found = start, true
		}
		lastTid = tid
	}
	a := float64(v.Running + v.Blocked)
	v.Load = [3]float64{a, a, a}
	v.Started = v.Now
	if found {
		v.Started = v.Boot.Add(time.Duration(first) * tick)
	}
	if lastTid > 0 {
		v.LastPID = nsPID(filepath.Join(c.root, "proc", strconv.Itoa(lastTid), "status"), lastTid)
	}
	return nil
}

// errTaskGone is a /proc/<pid>/stat read as the task exits (ESRCH, or empty).
var errTaskGone = errors.New("task gone")

// taskStat reads a task's state and start time (in ticks after boot) from /proc/<pid>/stat.
func taskStat(p string) (state byte, start uint64, err error) {
	b, err := os.ReadFile(p)
	if err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return 0, 0, errTaskGone
		}
		return 0, 0, err
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return 0, 0, errTaskGone
	}
	// The command name, in parentheses, may hold anything: fields follow the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("parsing %s: no command name", p)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 || len(f[0]) != 1 {
		return 0, 0, fmt.Errorf("parsing %s: too few fields", p)
	}
	if start, err = strconv.ParseUint(f[19], 10, 64); err != nil {
		return 0, 0, fmt.Errorf("parsing %s: bad start time: %w", p, err)
	}
	return f[0][0], start, nil
}

// nsPID is the innermost pid of a task ("NSpid:" in /proc/<pid>/status), or hostPID when
// the status is gone or the kernel predates NSpid.
func nsPID(status string, hostPID int) int {
	b, err := os.ReadFile(status)
	if err != nil {
		return hostPID
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "NSpid:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				if n, err := strconv.Atoi(f[len(f)-1]); err == nil {
					return n
				}
			}
		}
	}
	return hostPID
}

// readString reads a one-line file, trimmed.
func readString(p string) (string, error) {
	b, err := os.ReadFile(p)
	return string(bytes.TrimSpace(b)), err
}

// readUint reads a file holding one unsigned number.
func readUint(p string) (uint64, error) {
	s, err := readString(p)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parsing %s: %w", p, err)
	}
	return n, nil
}

// ParseLimit parses a cgroup limit: "max" (v2) or a number of at least 2^62 (v1's "no
// limit") is no limit.
func ParseLimit(s string) (limit uint64, limited bool, err error) {
	s = strings.TrimSpace(s)
	if s == "max" {
		return 0, false, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, false, err
	}
	if n >= unlimitedFrom {
		return 0, false, nil
	}
	return n, true, nil
}

// minLimit reads the limit file name in each of dirs (a cgroup and its ancestors) and returns
// the smallest limit. Ancestors without the file are skipped (the root cgroup has none); the
// cgroup's own file is required (an error wrapping fs.ErrNotExist if absent).
func minLimit(dirs []string, name string) (limit uint64, limited bool, err error) {
	for i, d := range dirs {
		p := filepath.Join(d, name)
		s, err := readString(p)
		if errors.Is(err, fs.ErrNotExist) && i > 0 {
			continue
		} else if err != nil {
			return 0, false, err
		}
		n, ok, err := ParseLimit(s)
		if err != nil {
			return 0, false, fmt.Errorf("parsing %s: %w", p, err)
		}
		if ok && (!limited || n < limit) {
			limit, limited = n, true
		}
	}
	return limit, limited, nil
}

// readKeyed reads a flat keyed file ("key value" lines: memory.stat, cpu.stat).
func readKeyed(p string) (map[string]uint64, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	m := map[string]uint64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) != 2 {
			return nil, fmt.Errorf("parsing %s: malformed line %q", p, sc.Text())
		}
		n, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("parsing %s: %w", p, err)
		}
		m[f[0]] = n
	}
	return m, nil
}

// satSub is a-b, or 0 if b > a.
func satSub(a, b uint64) uint64 {
	if b > a {
		return 0
	}
	return a - b
}
