package procemu

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// knobs are the /proc/sys files eci emulates per pod: host-wide kernel settings (the
// kernel does not namespace them) that software in a container sets for itself, such as
// Elasticsearch's vm.max_map_count. A pod's write is kept for that pod and read back by
// it; the host's value never changes, and other pods keep reading the host's. Namespaced
// knobs (net.*, kernel.hostname, the ipc ones) are not here: the kernel already gives each
// pod its own.
var knobs = []string{
	"/proc/sys/kernel/core_pattern",
	"/proc/sys/kernel/panic",
	"/proc/sys/kernel/panic_on_oops",
	"/proc/sys/kernel/pid_max",
	"/proc/sys/kernel/threads-max",
	"/proc/sys/vm/max_map_count",
	"/proc/sys/vm/overcommit_memory",
	"/proc/sys/vm/swappiness",
	"/proc/sys/fs/file-max",
}

// Knobs returns the emulated /proc/sys files.
func Knobs() []string { return slices.Clone(knobs) }

// IsKnob reports whether path is an emulated /proc/sys file.
func IsKnob(path string) bool { return slices.Contains(knobs, path) }

// KnobFileName is the name the server gives a knob: "sysctl-" and the sysctl name
// ("sysctl-vm.max_map_count").
func KnobFileName(path string) string {
	return "sysctl-" + strings.ReplaceAll(strings.TrimPrefix(path, "/proc/sys/"), "/", ".")
}

// maxCorePattern is the kernel's CORENAME_MAX_SIZE.
const maxCorePattern = 128

// ParseKnob checks a value written to a knob, as the kernel's handler would, and returns
// it as the kernel prints it back: one integer, or for core_pattern one line of text.
func ParseKnob(path string, data []byte) ([]byte, error) {
	if !IsKnob(path) {
		return nil, fmt.Errorf("%s is not an emulated knob", path)
	}
	if path == "/proc/sys/kernel/core_pattern" {
		v := bytes.TrimSuffix(data, []byte("\n"))
		if bytes.ContainsAny(v, "\n\x00") || len(v) >= maxCorePattern {
			return nil, errors.New("core_pattern: one line of fewer than 128 bytes")
		}
		return append(v, '\n'), nil
	}
	f := strings.Fields(string(data))
	if len(f) != 1 {
		return nil, fmt.Errorf("%s takes one integer", path)
	}
	n, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%s takes one integer: %w", path, err)
	}
	return fmt.Appendf(nil, "%d\n", n), nil
}
