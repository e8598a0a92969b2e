package procemu

// File is one emulated file: its path in the container and its renderer.
type File struct {
	Path   string
	Render func(View) ([]byte, error)
}

// Files lists every emulated file, for the server that mounts them.
func Files() []File {
	return []File{
		{"/proc/cpuinfo", RenderCPUInfo},
		{"/proc/diskstats", RenderDiskstats},
		{"/proc/loadavg", RenderLoadavg},
		{"/proc/meminfo", RenderMeminfo},
		{"/proc/stat", RenderStat},
		{"/proc/swaps", RenderSwaps},
		{"/proc/uptime", RenderUptime},
		{"/sys/devices/system/cpu/online", RenderCPUOnline},
	}
}
