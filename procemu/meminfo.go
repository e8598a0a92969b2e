package procemu

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// meminfoLine splits a /proc/meminfo line "MemTotal:       24683748 kB" into its name and
// value; isKB is false for lines without the kB unit (the HugePages_ counts).
func meminfoLine(line string) (name string, value uint64, isKB bool, ok bool) {
	name, rest, found := strings.Cut(line, ":")
	if !found {
		return "", 0, false, false
	}
	f := strings.Fields(rest)
	if len(f) == 0 {
		return "", 0, false, false
	}
	value, err := strconv.ParseUint(f[0], 10, 64)
	if err != nil {
		return "", 0, false, false
	}
	return name, value, len(f) == 2 && f[1] == "kB", true
}

// parseMeminfo returns the kB lines of a /proc/meminfo by name.
func parseMeminfo(b []byte) map[string]uint64 {
	m := map[string]uint64{}
	for line := range strings.Lines(string(b)) {
		if name, v, isKB, ok := meminfoLine(line); ok && isKB {
			m[name] = v
		}
	}
	return m
}

// RenderMeminfo renders /proc/meminfo. MemTotal is the container's limit; MemFree is what
// its usage leaves of it and MemAvailable that plus its reclaimable file and slab pages, each
// no more than the host's own (an unlimited container cannot use memory the host does not
// have). The lines the cgroup accounts (Cached, Active, Inactive, AnonPages, Mapped, Shmem,
// Slab, KernelStack, ...) come from its memory.stat, Buffers is 0 (the block device cache is
// not charged to containers), SwapTotal and SwapFree are the container's swap. Every other
// line is the host's, capped at MemTotal (Mlocked and the PmdMapped lines also at the
// container's Unevictable and huge pages). Lines keep the host's order and the kernel's
// "%-15s %8d kB" layout; the HugePages_ counts are copied.
func RenderMeminfo(v View) ([]byte, error) {
	if len(v.Host.MemInfo) == 0 {
		return nil, errors.New("meminfo: no host /proc/meminfo")
	}
	total := v.MemLimit / 1024
	kb := func(b uint64) uint64 { return min(b/1024, total) }
	m := v.Mem
	host := parseMeminfo(v.Host.MemInfo)
	free := memFreeKB(v, host)
	avail := min(total, free+kb(m.ActiveFile+m.InactiveFile+m.SlabReclaimable))
	if h, ok := host["MemAvailable"]; ok {
		avail = max(min(avail, h), free)
	}
	swapTotal := v.SwapLimit / 1024
	computed := map[string]uint64{
		"MemTotal":       total,
		"MemFree":        free,
		"MemAvailable":   avail,
		"Buffers":        0,
		"Cached":         kb(satSub(m.File, m.SwapCached)),
		"SwapCached":     kb(m.SwapCached),
		"Active":         kb(m.ActiveAnon + m.ActiveFile),
		"Inactive":       kb(m.InactiveAnon + m.InactiveFile),
		"Active(anon)":   kb(m.ActiveAnon),
		"Inactive(anon)": kb(m.InactiveAnon),
		"Active(file)":   kb(m.ActiveFile),
		"Inactive(file)": kb(m.InactiveFile),
		"Unevictable":    kb(m.Unevictable),
		"SwapTotal":      swapTotal,
		"SwapFree":       swapTotal - min(v.SwapUsage/1024, swapTotal),
		"Zswap":          kb(m.Zswap),
		"Zswapped":       kb(m.Zswapped),
		"Dirty":          kb(m.FileDirty),
		"Writeback":      kb(m.FileWriteback),
		"AnonPages":      kb(m.Anon),
		"Mapped":         kb(m.FileMapped),
		"Shmem":          kb(m.Shmem),
		"KReclaimable":   kb(m.SlabReclaimable),
		"Slab":           kb(m.SlabReclaimable + m.SlabUnreclaimable),
		"SReclaimable":   kb(m.SlabReclaimable),
		"SUnreclaim":     kb(m.SlabUnreclaimable),
		"KernelStack":    kb(m.KernelStack),
		"PageTables":     kb(m.PageTables),
		"SecPageTables":  kb(m.SecPageTables),
		"Percpu":         kb(m.Percpu),
		"AnonHugePages":  kb(m.AnonTHP),
		"ShmemHugePages": kb(m.ShmemTHP),
		"FileHugePages":  kb(m.FileTHP),
	}
	// Host lines that are parts of a computed one.
	caps := map[string]uint64{
		"Mlocked":        computed["Unevictable"],
		"ShmemPmdMapped": computed["ShmemHugePages"],
		"FilePmdMapped":  computed["FileHugePages"],
	}

	var out bytes.Buffer
	for line := range strings.Lines(string(v.Host.MemInfo)) {
		name, host, isKB, ok := meminfoLine(line)
		if !ok || !isKB {
			out.WriteString(line)
			continue
		}
		val, ok := computed[name]
		if !ok {
			val = min(host, total)
			if c, ok := caps[name]; ok {
				val = min(val, c)
			}
		}
		fmt.Fprintf(&out, "%-15s %8d kB\n", name+":", val)
	}
	return out.Bytes(), nil
}

// memFreeKB is MemFree in kB: what the container's usage leaves of its limit, no more than
// the host has free.
func memFreeKB(v View, host map[string]uint64) uint64 {
	total := v.MemLimit / 1024
	free := total - min(v.MemUsage/1024, total)
	if h, ok := host["MemFree"]; ok {
		free = min(free, h)
	}
	return free
}

// Sysinfo is what sysinfo(2) answers a container, in bytes (mem_unit 1) and seconds.
type Sysinfo struct {
	Uptime                         int64
	Loads                          [3]uint64 // fixed point, 1<<16 is 1.0 (SI_LOAD_SHIFT)
	TotalRAM, FreeRAM, SharedRAM   uint64
	BufferRAM, TotalSwap, FreeSwap uint64
	Procs                          uint16
	// CPUs is how many CPUs the container has (View.CPUs): sched_getaffinity answers with
	// that many, so nproc agrees with /sys/devices/system/cpu/online.
	CPUs int
}

// RenderSysinfo is sysinfo(2) for the container, agreeing with RenderMeminfo: totalram is
// MemTotal, freeram MemFree, sharedram Shmem, bufferram Buffers (0), the swap fields
// SwapTotal and SwapFree; uptime is the container's, procs its tasks, and the loads
// v.Load.
func RenderSysinfo(v View) Sysinfo {
	host := parseMeminfo(v.Host.MemInfo)
	total := v.MemLimit / 1024
	swapTotal := v.SwapLimit / 1024
	si := Sysinfo{
		Uptime:    int64(v.Uptime() / time.Second),
		TotalRAM:  total * 1024,
		FreeRAM:   memFreeKB(v, host) * 1024,
		SharedRAM: min(v.Mem.Shmem/1024, total) * 1024,
		TotalSwap: swapTotal * 1024,
		FreeSwap:  (swapTotal - min(v.SwapUsage/1024, swapTotal)) * 1024,
		Procs:     uint16(min(v.Threads, 65535)),
		CPUs:      v.CPUs(),
	}
	for i, l := range v.Load {
		si.Loads[i] = uint64(max(l, 0) * 65536)
	}
	return si
}
