// Package idmap gives a container's rootfs and volumes the container's id mapping through
// idmapped mounts (Linux ≥ 5.12; tmpfs ≥ 6.3), so nothing is ever chowned.
package idmap

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Mount is one line of /proc/<pid>/mountinfo.
type Mount struct {
	ID, Parent   int
	Dev          string // major:minor of the filesystem
	Root         string
	MountPoint   string
	Options      string // per-mount options ("rw,nosuid,relatime")
	FSType       string
	Source       string
	SuperOptions string // per-superblock options ("rw,lowerdir=...,upperdir=...")
}

// unescape undoes mountinfo's octal escapes (\040 for space, \054 for comma, ...).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// ParseMountInfo parses mountinfo. Fields stay escaped except the mount point and root.
func ParseMountInfo(r io.Reader) ([]Mount, error) {
	var out []Mount
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			return nil, fmt.Errorf("mountinfo: malformed line %q", line)
		}
		f := strings.Fields(pre)
		g := strings.Fields(post)
		if len(f) < 6 || len(g) < 3 {
			return nil, fmt.Errorf("mountinfo: malformed line %q", line)
		}
		id, err1 := strconv.Atoi(f[0])
		parent, err2 := strconv.Atoi(f[1])
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("mountinfo: malformed ids in %q", line)
		}
		out = append(out, Mount{
			ID: id, Parent: parent, Dev: f[2], Root: unescape(f[3]), MountPoint: unescape(f[4]), Options: f[5],
			FSType: g[0], Source: unescape(g[1]), SuperOptions: g[2],
		})
	}
	return out, sc.Err()
}

// Topmost returns the mount that is visible at target: the last one mounted there.
func Topmost(mounts []Mount, target string) (Mount, bool) {
	for i := len(mounts) - 1; i >= 0; i-- {
		if mounts[i].MountPoint == target {
			return mounts[i], true
		}
	}
	return Mount{}, false
}

// Overlay is an overlay mount's layers and remaining options.
type Overlay struct {
	Lower  []string
	Upper  string
	Work   string
	Others []string // every other superblock option except rw/ro, in order
}

// ParseOverlay splits an overlay's superblock options (as mountinfo shows them).
func ParseOverlay(superOptions string) (Overlay, error) {
	var o Overlay
	for _, opt := range strings.Split(superOptions, ",") {
		k, v, _ := strings.Cut(opt, "=")
		switch k {
		case "lowerdir":
			layers, err := splitLower(unescape(v))
			if err != nil {
				return o, err
			}
			o.Lower = append(o.Lower, layers...)
		case "lowerdir+":
			o.Lower = append(o.Lower, unescape(v))
		case "datadir+":
			return o, fmt.Errorf("overlay data-only layers are not supported")
		case "upperdir":
			o.Upper = unescape(v)
		case "workdir":
			o.Work = unescape(v)
		case "rw", "ro", "":
		default:
			o.Others = append(o.Others, unescape(opt))
		}
	}
	if len(o.Lower) == 0 {
		return o, fmt.Errorf("overlay has no lowerdir")
	}
	for _, l := range append(append([]string{}, o.Lower...), o.Upper, o.Work) {
		if l != "" && !strings.HasPrefix(l, "/") {
			return o, fmt.Errorf("overlay layer %q is not an absolute path", l)
		}
	}
	return o, nil
}

// splitLower splits overlay's lowerdir value on unescaped colons.
func splitLower(v string) ([]string, error) {
	if strings.Contains(v, "::") {
		return nil, fmt.Errorf("overlay data-only layers are not supported")
	}
	var out []string
	var cur strings.Builder
	for i := 0; i < len(v); i++ {
		switch {
		case v[i] == '\\' && i+1 < len(v):
			i++
			cur.WriteByte(v[i])
		case v[i] == ':':
			out = append(out, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(v[i])
		}
	}
	return append(out, cur.String()), nil
}

// escapeLower escapes a layer path for overlay's lowerdir option.
func escapeLower(p string) string {
	return strings.NewReplacer(`\`, `\\`, `:`, `\:`, `,`, `\,`).Replace(p)
}
