// Package procemu renders the emulated /proc and /sys files a container sees in place of the
// host's: meminfo, cpuinfo, stat, uptime, loadavg, diskstats, swaps and
// /sys/devices/system/cpu/online, computed from the container's cgroup limits, usage and
// start time (LXCFS parity; lxc/lxcfs src/proc_fuse.c is the checklist of semantics).
//
// Everything a renderer needs about one container is gathered beforehand into a View (see
// Gather, which reads cgroup v1 and v2 through a root prefix); the renderers are pure
// functions of a View and golden-tested. The FUSE server that serves them is elsewhere.
package procemu

import "time"

// userHZ is USER_HZ, the unit of the tick counts in /proc/stat and /proc/<pid>/stat. It is
// 100 on every architecture Linux runs containers on (sysconf(_SC_CLK_TCK)).
const userHZ = 100

// tick is one USER_HZ tick.
const tick = time.Second / userHZ

// View is everything the renderers need about one container, gathered at one instant.
// Sizes are in bytes and already capped to what the host has: a limit of "max" (or the
// kernel's huge "no limit" value) is the host's total.
type View struct {
	// Now is when the view was gathered; Boot is when the host booted; Started is when the
	// container's first process started. Uptime is Now-Started.
	Now, Boot, Started time.Time

	// MemLimit is the container's memory limit (the smallest of its cgroup and the cgroup's
	// ancestors), or the host's MemTotal when it has none. MemUsage is the memory charged to
	// the cgroup (page cache included), at most MemLimit.
	MemLimit, MemUsage uint64
	// Mem breaks MemUsage down, as the cgroup's memory.stat does.
	Mem MemStat
	// SwapLimit is the swap the container may use (0: none, or swap not accounted); never more
	// than the host's SwapTotal. SwapUsage is the swap it uses, at most SwapLimit.
	SwapLimit, SwapUsage uint64

	// CPUSet lists the host CPUs the container may run on, ascending.
	CPUSet []int
	// CPUQuota and CPUPeriod are the most restrictive CFS bandwidth limit of the cgroup and
	// its ancestors, in microseconds; CPUQuota <= 0 means none.
	CPUQuota  int64
	CPUPeriod uint64
	// CPUUser and CPUSystem are the CPU time the cgroup has used since it was created.
	CPUUser, CPUSystem time.Duration

	// Running counts the cgroup's runnable tasks (state R), Blocked its tasks in
	// uninterruptible sleep (D), Threads all its tasks. LastPID is the container's most
	// recently created pid, as its own pid namespace numbers it.
	Running, Blocked, Threads, LastPID int
	// Load is the 1, 5 and 15 minute load average. Gather has a single sample, so it sets
	// all three to Running+Blocked; a caller that samples periodically smooths them with a
	// LoadAvg.
	Load [3]float64

	// Disks is the cgroup's block I/O, one entry per device it used.
	Disks []DiskIO

	// Host holds the host's own files that renderers transform.
	Host HostFiles
}

// MemStat is the breakdown of a cgroup's memory, in bytes, with cgroup v2's memory.stat
// names (Gather maps cgroup v1's total_* counters onto them; v1 lacks the kernel ones).
type MemStat struct {
	Anon, File, Shmem                      uint64
	FileMapped, FileDirty, FileWriteback   uint64
	SwapCached                             uint64
	AnonTHP, FileTHP, ShmemTHP             uint64
	ActiveAnon, InactiveAnon               uint64
	ActiveFile, InactiveFile               uint64
	Unevictable                            uint64
	SlabReclaimable, SlabUnreclaimable     uint64
	KernelStack, PageTables, SecPageTables uint64
	Percpu, Zswap, Zswapped                uint64
}

// DiskIO is a cgroup's I/O on one block device, as blkio.throttle.* (v1) or io.stat (v2)
// count it. Merges, times and in-flight requests are not accounted per cgroup.
type DiskIO struct {
	Major, Minor                        uint32
	ReadBytes, WriteBytes, DiscardBytes uint64
	Reads, Writes, Discards             uint64
}

// HostFiles are the host's files that renderers transform, read verbatim.
type HostFiles struct {
	CPUInfo, Stat, MemInfo, DiskStats, Swaps []byte
}

// CPUs is the number of CPUs the container is shown: CPUsFor its quota and cpuset.
func (v View) CPUs() int {
	return CPUsFor(v.CPUQuota, v.CPUPeriod, len(v.CPUSet))
}

// Uptime is how long the container has been running, never negative.
func (v View) Uptime() time.Duration {
	return max(v.Now.Sub(v.Started), 0)
}

// CPUsFor is the number of CPUs a CFS quota per period amounts to, rounded up to whole CPUs,
// at least 1 and at most cpuset (the CPUs the cgroup may run on). A quota <= 0 or a period of
// 0 means no quota: all of the cpuset.
func CPUsFor(quota int64, period uint64, cpuset int) int {
	n := max(cpuset, 1)
	if quota <= 0 || period == 0 {
		return n
	}
	q := (uint64(quota) + period - 1) / period
	return int(min(max(q, 1), uint64(n)))
}
