package supervisor

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// procMem reads the caller's memory through /proc/<pid>/mem, opened on first use.
type procMem struct {
	path string
	f    *os.File
}

func (m *procMem) String(addr uint64, max int) (string, error) {
	if addr >= 1<<63 {
		return "", unix.EFAULT
	}
	if m.f == nil {
		f, err := os.Open(m.path)
		if err != nil {
			return "", err
		}
		m.f = f
	}
	const page = 4096
	var out []byte
	for len(out) < max {
		// Read up to the next page boundary: the page after it may not be mapped.
		n := min(page-int(addr%page), max-len(out))
		chunk := make([]byte, n)
		k, err := m.f.ReadAt(chunk, int64(addr))
		if k == 0 && err != nil {
			return "", unix.EFAULT
		}
		if i := bytes.IndexByte(chunk[:k], 0); i >= 0 {
			return string(append(out, chunk[:i]...)), nil
		}
		out = append(out, chunk[:k]...)
		addr += uint64(k)
	}
	return "", errTooLong
}

func (m *procMem) Close() {
	if m.f != nil {
		_ = m.f.Close()
	}
}

// caller is a trapped process's root, working directory and mount namespace, opened from
// the host's /proc.
type caller struct {
	pid            int
	root, cwd, mnt int
}

func openCaller(hostProc string, pid int) (*caller, error) {
	c := &caller{pid: pid, root: -1, cwd: -1, mnt: -1}
	dir := filepath.Join(hostProc, strconv.Itoa(pid))
	for _, f := range []struct {
		name  string
		fd    *int
		flags int
	}{
		{"root", &c.root, unix.O_PATH | unix.O_DIRECTORY},
		{"cwd", &c.cwd, unix.O_PATH | unix.O_DIRECTORY},
		{"ns/mnt", &c.mnt, unix.O_RDONLY},
	} {
		fd, err := unix.Open(filepath.Join(dir, f.name), f.flags|unix.O_CLOEXEC, 0)
		if err != nil {
			c.close()
			return nil, fmt.Errorf("opening the caller's %s: %w", f.name, err)
		}
		*f.fd = fd
	}
	return c, nil
}

func (c *caller) close() {
	for _, fd := range []int{c.root, c.cwd, c.mnt} {
		if fd >= 0 {
			_ = unix.Close(fd)
		}
	}
}

// resolve opens path as the caller would reach it, never leaving its root: an absolute
// path from its root, a relative one from its working directory (which it then cannot
// climb out of). The fd is what the mount acts on, so the check and the use see the same
// file whatever the container changes afterwards.
func (c *caller) resolve(path string, nofollow bool) (int, error) {
	if path == "" {
		return -1, unix.ENOENT
	}
	dir := c.cwd
	if strings.HasPrefix(path, "/") {
		dir = c.root
	}
	flags := uint64(unix.O_PATH | unix.O_CLOEXEC)
	if nofollow {
		flags |= unix.O_NOFOLLOW
	}
	for {
		fd, err := unix.Openat2(dir, path, &unix.OpenHow{Flags: flags, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS})
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		return fd, err
	}
}

// resolveParent opens the directory a path's last component is in, following symlinks
// (in the last component too, unless nofollow) the way the kernel would, inside the
// caller's root. It returns that directory and the last component, which is not a
// symlink (or is, when nofollow). An unmount is done by name from that directory: an fd on
// the mount itself would keep it busy.
func (c *caller) resolveParent(p string, nofollow bool) (int, string, error) {
	for hops := 0; hops < 40; hops++ {
		if p == "" {
			return -1, "", unix.ENOENT
		}
		abs := strings.HasPrefix(p, "/")
		p = path.Clean(p)
		dir, base := path.Split(p)
		if base == "" || base == "." || base == ".." || p == "/" {
			return -1, "", unix.EINVAL
		}
		if dir == "" {
			dir = "."
		}
		if abs && !strings.HasPrefix(dir, "/") {
			dir = "/" + dir
		}
		dfd, err := c.resolve(dir, false)
		if err != nil {
			return -1, "", err
		}
		var st unix.Stat_t
		if err := unix.Fstatat(dfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			unix.Close(dfd)
			return -1, "", err
		}
		if st.Mode&unix.S_IFMT != unix.S_IFLNK || nofollow {
			return dfd, base, nil
		}
		buf := make([]byte, 4096)
		n, err := unix.Readlinkat(dfd, base, buf)
		unix.Close(dfd)
		if err != nil {
			return -1, "", err
		}
		link := string(buf[:n])
		if !strings.HasPrefix(link, "/") {
			link = path.Join(dir, link)
		}
		p = link
	}
	return -1, "", unix.ELOOP
}

// mountOf is the id of the mount fd is on, and whether fd is that mount's root.
func mountOf(fd int) (int, bool, error) {
	var st unix.Statx_t
	if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID, &st); err != nil {
		return 0, false, err
	}
	root := st.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT != 0 && st.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0
	return int(st.Mnt_id), root, nil
}

// nsInode is the inode of a namespace file: equal inodes, same namespace.
func nsInode(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

func readMountinfo(hostProc string, pid int) (map[int]Mount, error) {
	f, err := os.Open(filepath.Join(hostProc, strconv.Itoa(pid), "mountinfo"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseMountinfo(bufio.NewReader(f))
}

// idMap is a /proc/<pid>/uid_map or gid_map.
type idMap [][3]uint64

func readIDMap(path string) (idMap, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m idMap
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		var e [3]uint64
		for i := range f {
			if e[i], err = strconv.ParseUint(f[i], 10, 32); err != nil {
				return nil, fmt.Errorf("%s: %q: %w", path, line, err)
			}
		}
		m = append(m, e)
	}
	return m, nil
}

// toHost maps a container id to the host's.
func (m idMap) toHost(id uint64) (uint64, bool) {
	for _, e := range m {
		if id >= e[0] && id < e[0]+e[2] {
			return e[1] + id - e[0], true
		}
	}
	return 0, false
}

// ownerOptions rewrites a tmpfs's uid= and gid= options from the container's ids to the
// host's (the supervisor mounts as the host's root), and gives the filesystem to the
// container's root when they are absent, as if the container had mounted it itself.
func ownerOptions(data string, uids, gids idMap, addDefaults bool) (string, error) {
	var opts []string
	if data != "" {
		opts = strings.Split(data, ",")
	}
	seen := map[string]bool{}
	for i, o := range opts {
		for _, k := range []struct {
			key string
			m   idMap
		}{{"uid", uids}, {"gid", gids}} {
			v, ok := strings.CutPrefix(o, k.key+"=")
			if !ok {
				continue
			}
			seen[k.key] = true
			id, err := strconv.ParseUint(v, 10, 32)
			if err != nil {
				return "", fmt.Errorf("%s: not a number", o)
			}
			host, ok := k.m.toHost(id)
			if !ok {
				return "", fmt.Errorf("%s: not an id of the container", o)
			}
			opts[i] = k.key + "=" + strconv.FormatUint(host, 10)
		}
	}
	if addDefaults {
		for _, k := range []struct {
			key string
			m   idMap
		}{{"uid", uids}, {"gid", gids}} {
			if host, ok := k.m.toHost(0); ok && !seen[k.key] {
				opts = append(opts, k.key+"="+strconv.FormatUint(host, 10))
			}
		}
	}
	return strings.Join(opts, ","), nil
}

// errnoOf turns an error into the errno the caller gets.
func errnoOf(err error) unix.Errno {
	var e unix.Errno
	if errors.As(err, &e) {
		return e
	}
	return unix.EPERM
}
