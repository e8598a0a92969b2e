// Package hostcheck decides whether a node can run eci, from files read through a host root
// prefix (the host's / is /host in the eci-node pod, a testdata tree in tests).
package hostcheck

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// MinKernel is the oldest kernel eci supports: idmapped tmpfs mounts (secrets, emptyDir in
// memory, /dev/shm) arrived in 6.3.
var MinKernel = [2]int{6, 3}

// Report is what the check found.
type Report struct {
	Kernel   string
	CgroupV2 bool
	CRI      string // "containerd" or "crio"
	Socket   string // the CRI socket, without the host root prefix
}

// Sockets are the CRI sockets eci looks for, in order.
var Sockets = []struct{ CRI, Path string }{
	{"containerd", "/run/containerd/containerd.sock"},
	{"crio", "/run/crio/crio.sock"},
}

// Check reads the host through root and returns every reason eci cannot run there.
// want is "auto", "containerd" or "crio".
func Check(root, want string) (Report, error) {
	var r Report
	var errs []error
	release, err := os.ReadFile(filepath.Join(root, "proc/sys/kernel/osrelease"))
	if err != nil {
		errs = append(errs, fmt.Errorf("reading the kernel version: %w", err))
	} else {
		r.Kernel = strings.TrimSpace(string(release))
		if !kernelAtLeast(r.Kernel, MinKernel) {
			errs = append(errs, fmt.Errorf("kernel %s is older than %d.%d: eci needs idmapped mounts on tmpfs", r.Kernel, MinKernel[0], MinKernel[1]))
		}
	}
	maxNS, err := os.ReadFile(filepath.Join(root, "proc/sys/user/max_user_namespaces"))
	switch {
	case err != nil:
		errs = append(errs, fmt.Errorf("the kernel has no user namespaces: %w", err))
	case strings.TrimSpace(string(maxNS)) == "0":
		errs = append(errs, errors.New("user namespaces are disabled: user.max_user_namespaces is 0"))
	}
	if _, err := os.Stat(filepath.Join(root, "sys/fs/cgroup/cgroup.controllers")); err == nil {
		r.CgroupV2 = true
	}
	for _, s := range Sockets {
		if want != "auto" && want != s.CRI {
			continue
		}
		if st, err := os.Stat(filepath.Join(root, s.Path)); err == nil && st.Mode()&os.ModeSocket != 0 {
			r.CRI, r.Socket = s.CRI, s.Path
			break
		}
	}
	if r.CRI == "" {
		errs = append(errs, fmt.Errorf("no CRI socket found (looked for %s=%v)", want, Sockets))
	}
	return r, errors.Join(errs...)
}

func kernelAtLeast(release string, min [2]int) bool {
	parts := strings.SplitN(release, ".", 3)
	if len(parts) < 2 {
		return false
	}
	major, err1 := strconv.Atoi(parts[0])
	minorStr := parts[1]
	if i := strings.IndexFunc(minorStr, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		minorStr = minorStr[:i]
	}
	minor, err2 := strconv.Atoi(minorStr)
	if err1 != nil || err2 != nil {
		return false
	}
	return major > min[0] || (major == min[0] && minor >= min[1])
}

// Major returns the major version of a version string like "v2.4.2" or "1.7.27".
func Major(version string) (int, error) {
	v := strings.TrimPrefix(version, "v")
	major, _, _ := strings.Cut(v, ".")
	n, err := strconv.Atoi(major)
	if err != nil {
		return 0, fmt.Errorf("cannot read the major version of %q", version)
	}
	return n, nil
}

// KubeletRange reads the kubelet's user-namespace id range from the host's /etc/subuid: the
// "kubelet" user's subordinate ids, which the kubelet gives hostUsers: false pods. ok is
// false when there is none, and the kubelet then claims every id above 65535.
func KubeletRange(root string) (start, size uint64, ok bool) {
	data, err := os.ReadFile(filepath.Join(root, "etc/subuid"))
	if err != nil {
		return 0, 0, false
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Split(strings.TrimSpace(line), ":")
		if len(f) != 3 || f[0] != "kubelet" {
			continue
		}
		s, err1 := strconv.ParseUint(f[1], 10, 32)
		n, err2 := strconv.ParseUint(f[2], 10, 33)
		if err1 == nil && err2 == nil && n > 0 {
			return s, n, true
		}
	}
	return 0, 0, false
}

// KubeletOverlap says why the kubelet's ids may collide with eci's pool [poolStart,
// poolStart+poolSize), or "" when they cannot.
func KubeletOverlap(root string, poolStart, poolSize uint64) string {
	start, size, ok := KubeletRange(root)
	if !ok {
		return fmt.Sprintf("the kubelet has no subordinate id range (no kubelet entry in /etc/subuid), so it may give hostUsers: false pods ids inside eci's pool [%d, %d): add e.g. kubelet:65536:%d to /etc/subuid and /etc/subgid and create a kubelet system user", poolStart, poolStart+poolSize, poolStart-65536)
	}
	if start < poolStart+poolSize && poolStart < start+size {
		return fmt.Sprintf("the kubelet's id range [%d, %d) from /etc/subuid overlaps eci's pool [%d, %d): hostUsers: false pods could share host ids with eci pods", start, start+size, poolStart, poolStart+poolSize)
	}
	return ""
}
