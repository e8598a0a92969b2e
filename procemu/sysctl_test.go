package procemu

import "testing"

func TestParseKnob(t *testing.T) {
	for _, tc := range []struct {
		path, in, want string
		err            bool
	}{
		{"/proc/sys/kernel/panic", "5\n", "5\n", false},
		{"/proc/sys/kernel/panic", " -1 ", "-1\n", false},
		{"/proc/sys/vm/max_map_count", "262144", "262144\n", false},
		{"/proc/sys/vm/swappiness", "1 2", "", true},
		{"/proc/sys/vm/swappiness", "high", "", true},
		{"/proc/sys/vm/swappiness", "", "", true},
		{"/proc/sys/kernel/core_pattern", "core.%p\n", "core.%p\n", false},
		{"/proc/sys/kernel/core_pattern", "|/bin/x\nmore", "", true},
		{"/proc/sys/kernel/hostname", "x", "", true}, // namespaced: not emulated
	} {
		got, err := ParseKnob(tc.path, []byte(tc.in))
		if (err != nil) != tc.err || string(got) != tc.want {
			t.Errorf("ParseKnob(%s, %q) = %q, %v; want %q (error %v)", tc.path, tc.in, got, err, tc.want, tc.err)
		}
	}
	if got := KnobFileName("/proc/sys/vm/max_map_count"); got != "sysctl-vm.max_map_count" {
		t.Errorf("KnobFileName = %q", got)
	}
}
