package procemu

import "strings"

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

// FileName is the name under which a server offers the emulated file at path (its base
// name; /sys/devices/system/cpu/online is "cpu-online").
func FileName(path string) string {
	if path == "/sys/devices/system/cpu/online" {
		return "cpu-online"
	}
	return path[strings.LastIndexByte(path, '/')+1:]
}
