package procemu

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// shownCPUs are the host CPUs the container is shown, renumbered from 0 in this order: the
// first CPUs() of its cpuset.
func shownCPUs(v View) []int {
	return v.CPUSet[:min(v.CPUs(), len(v.CPUSet))]
}

// ticks converts a duration to USER_HZ ticks, rounding down as the kernel does.
func ticks(d time.Duration) uint64 {
	return uint64(max(d, 0) / tick)
}

// share is the i-th of n near-equal parts of x (the first x%n parts are one larger).
func share(x uint64, n, i int) uint64 {
	s := x / uint64(n)
	if uint64(i) < x%uint64(n) {
		s++
	}
	return s
}

// RenderCPUOnline renders /sys/devices/system/cpu/online: the container's CPUs, renumbered
// ("0-1").
func RenderCPUOnline(v View) ([]byte, error) {
	n := v.CPUs()
	cpus := make([]int, n)
	for i := range cpus {
		cpus[i] = i
	}
	return []byte(FormatCPUList(cpus) + "\n"), nil
}

// cpuinfoField splits a /proc/cpuinfo line "cpu cores\t: 2" into its key ("cpu cores"), the
// text before the colon ("cpu cores\t") and the value ("2").
func cpuinfoField(line string) (key, head, value string, ok bool) {
	head, value, ok = strings.Cut(line, ":")
	return strings.TrimRight(head, " \t"), head, strings.TrimSpace(value), ok
}

// RenderCPUInfo renders /proc/cpuinfo: the host's entries of the container's shown CPUs
// (the first CPUs() of its cpuset), renumbered 0..n-1, with "siblings" and "cpu cores"
// recounted among them per physical package. Text outside the processor entries (arm64's
// trailer) is kept. s390x's single-block layout is not handled: its entries are kept whole.
func RenderCPUInfo(v View) ([]byte, error) {
	if len(v.Host.CPUInfo) == 0 {
		return nil, errors.New("cpuinfo: no host /proc/cpuinfo")
	}
	shown := map[int]bool{}
	for _, c := range shownCPUs(v) {
		shown[c] = true
	}
	// Entries are separated by blank lines.
	var kept []string
	siblings := map[string]int{}
	cores := map[string]map[string]bool{}
	for entry := range strings.SplitSeq(string(v.Host.CPUInfo), "\n\n") {
		id, isCPU := -1, false
		pkg, core := "", ""
		for line := range strings.Lines(entry) {
			switch key, _, val, _ := cpuinfoField(line); key {
			case "processor":
				if n, err := strconv.Atoi(val); err == nil {
					id, isCPU = n, true
				}
			case "physical id":
				pkg = val
			case "core id":
				core = val
			}
		}
		if isCPU {
			if !shown[id] {
				continue
			}
			siblings[pkg]++
			if cores[pkg] == nil {
				cores[pkg] = map[string]bool{}
			}
			cores[pkg][core] = true
		}
		kept = append(kept, entry)
	}

	var out bytes.Buffer
	next := 0
	for i, entry := range kept {
		if i > 0 {
			out.WriteString("\n\n")
		}
		pkg := ""
		for line := range strings.Lines(entry) {
			if key, _, val, _ := cpuinfoField(line); key == "physical id" {
				pkg = val
			}
		}
		for line := range strings.Lines(entry) {
			key, head, val, _ := cpuinfoField(line)
			nl := strings.HasSuffix(line, "\n")
			switch key {
			case "processor":
				if _, err := strconv.Atoi(val); err == nil {
					line = fmt.Sprintf("%s: %d", head, next)
					next++
				}
			case "siblings":
				line = fmt.Sprintf("%s: %d", head, siblings[pkg])
			case "cpu cores":
				line = fmt.Sprintf("%s: %d", head, len(cores[pkg]))
			default:
				out.WriteString(line)
				continue
			}
			out.WriteString(line)
			if nl {
				out.WriteByte('\n')
			}
		}
	}
	return out.Bytes(), nil
}

// RenderStat renders /proc/stat: the "cpu" line is the cgroup's user and system time since
// it was created, with idle the rest of the container's uptime times its CPUs (never
// negative), and the other columns 0; the "cpuN" lines split those evenly over the shown
// CPUs. procs_running and procs_blocked are the container's; every other line (intr, ctxt,
// btime, processes, softirq) is the host's, so that btime plus a process's start time still
// gives its start as ps computes it.
func RenderStat(v View) ([]byte, error) {
	if len(v.Host.Stat) == 0 {
		return nil, errors.New("stat: no host /proc/stat")
	}
	n := v.CPUs()
	user, sys := ticks(v.CPUUser), ticks(v.CPUSystem)
	idle := satSub(ticks(v.Uptime())*uint64(n), user+sys)
	var out bytes.Buffer
	seen := false
	for line := range strings.Lines(string(v.Host.Stat)) {
		name, _, _ := strings.Cut(line, " ")
		switch {
		case name == "cpu":
			seen = true
			fmt.Fprintf(&out, "cpu  %d 0 %d %d 0 0 0 0 0 0\n", user, sys, idle)
			for i := range n {
				fmt.Fprintf(&out, "cpu%d %d 0 %d %d 0 0 0 0 0 0\n", i, share(user, n, i), share(sys, n, i), share(idle, n, i))
			}
		case strings.HasPrefix(name, "cpu"):
			// a host CPU: replaced above
		case name == "procs_running":
			fmt.Fprintf(&out, "procs_running %d\n", v.Running)
		case name == "procs_blocked":
			fmt.Fprintf(&out, "procs_blocked %d\n", v.Blocked)
		default:
			out.WriteString(line)
		}
	}
	if !seen {
		return nil, errors.New("stat: host /proc/stat has no cpu line")
	}
	return out.Bytes(), nil
}

// RenderUptime renders /proc/uptime: the container's uptime, and its idle time (uptime
// times its CPUs, minus the CPU time it used; never negative), in seconds truncated to
// hundredths as the kernel prints them.
func RenderUptime(v View) ([]byte, error) {
	up := uint64(v.Uptime() / (10 * time.Millisecond))
	used := uint64((max(v.CPUUser, 0) + max(v.CPUSystem, 0)) / (10 * time.Millisecond))
	idle := satSub(up*uint64(v.CPUs()), used)
	return fmt.Appendf(nil, "%d.%02d %d.%02d\n", up/100, up%100, idle/100, idle%100), nil
}
