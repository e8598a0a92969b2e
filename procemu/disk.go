package procemu

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// RenderDiskstats renders /proc/diskstats: one line per device the cgroup did I/O on, named
// and ordered as in the host's file, with the cgroup's completed reads, writes and discards
// and their sectors (bytes/512). Merges, times and in-flight counts are not accounted per
// cgroup and are 0. Lines have the kernel's layout ("%4d %7d %s" then the counters) and as
// many counters as the host's lines (17 since 5.5, 11 before discards).
func RenderDiskstats(v View) ([]byte, error) {
	if len(v.Host.DiskStats) == 0 {
		return nil, errors.New("diskstats: no host /proc/diskstats")
	}
	io := map[[2]uint32]DiskIO{}
	for _, d := range v.Disks {
		io[[2]uint32{d.Major, d.Minor}] = d
	}
	var out bytes.Buffer
	for line := range strings.Lines(string(v.Host.DiskStats)) {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		maj, err1 := strconv.ParseUint(f[0], 10, 32)
		mnr, err2 := strconv.ParseUint(f[1], 10, 32)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("diskstats: malformed host line %q", strings.TrimSpace(line))
		}
		d, ok := io[[2]uint32{uint32(maj), uint32(mnr)}]
		if !ok {
			continue
		}
		counters := [17]uint64{
			0: d.Reads, 2: d.ReadBytes / 512,
			4: d.Writes, 6: d.WriteBytes / 512,
			11: d.Discards, 13: d.DiscardBytes / 512,
		}
		fmt.Fprintf(&out, "%4d %7d %s", maj, mnr, f[2])
		for _, c := range counters[:min(len(f)-3, len(counters))] {
			fmt.Fprintf(&out, " %d", c)
		}
		out.WriteByte('\n')
	}
	return out.Bytes(), nil
}

// swapsHeader is the first line of /proc/swaps.
const swapsHeader = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"

// RenderSwaps renders /proc/swaps: the header, then, if the container may swap, one line
// with its swap size and use, named after the host's first swap area (with its type and
// priority) or "none" if the host file lists none. The line has the kernel's layout (the
// name padded to 40 columns, tabs around the numbers).
func RenderSwaps(v View) ([]byte, error) {
	out := []byte(swapsHeader)
	size := v.SwapLimit / 1024
	if size == 0 {
		return out, nil
	}
	name, typ, prio := "none", "file", "-2"
	lines := strings.Split(string(v.Host.Swaps), "\n")
	if len(lines) > 1 {
		if f := strings.Fields(lines[1]); len(f) == 5 {
			name, typ, prio = f[0], f[1], f[4]
		}
	}
	if typ == "file" {
		typ = "file\t" // the kernel pads "file" to line up with "partition"
	}
	used := min(v.SwapUsage/1024, size)
	pad := max(40-len(name), 1)
	tab := func(n uint64) string {
		if n < 10000000 {
			return "\t"
		}
		return ""
	}
	return fmt.Appendf(out, "%s%*s%s\t%d\t%s%d\t%s%s\n", name, pad, " ", typ, size, tab(size), used, tab(used), prio), nil
}
