package criconfig

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
)

// host reads and writes the node's files under a root prefix (/host in the pod, a test
// tree in tests). Paths are host paths ("/etc/containerd/config.toml"); os.Root keeps
// every access, symlinks included, inside the prefix.
type host struct {
	root *os.Root
}

func openHost(root string) (*host, error) {
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, fmt.Errorf("open host root: %w", err)
	}
	return &host{root: r}, nil
}

func (h *host) close() { h.root.Close() }

// rel turns a host path into a path relative to the root.
func rel(p string) (string, error) {
	if !path.IsAbs(p) {
		return "", fmt.Errorf("%s: not an absolute host path", p)
	}
	r := strings.TrimPrefix(path.Clean(p), "/")
	if r == "" {
		r = "."
	}
	return r, nil
}

// hostFile is a regular file as read from the host; exists is false when it is absent.
type hostFile struct {
	path   string
	data   []byte
	mode   fs.FileMode
	exists bool
}

// readOwned reads a file eci may replace or remove. It must be a regular file: replacing a
// symlink would turn it into a file, and editing through one edits something else.
func (h *host) readOwned(p string) (hostFile, error) {
	f := hostFile{path: p}
	r, err := rel(p)
	if err != nil {
		return f, err
	}
	fi, err := h.root.Lstat(r)
	if errors.Is(err, fs.ErrNotExist) {
		return f, nil
	}
	if err != nil {
		return f, fmt.Errorf("%s: %w", p, err)
	}
	if !fi.Mode().IsRegular() {
		return f, fmt.Errorf("%s is a %s, not a regular file: eci only edits regular files", p, fileType(fi.Mode()))
	}
	if f.data, err = h.root.ReadFile(r); err != nil {
		return f, fmt.Errorf("%s: %w", p, err)
	}
	f.mode, f.exists = fi.Mode().Perm(), true
	return f, nil
}

// readFollow reads a file eci only reads (an imported config), following symlinks that
// stay inside the root. An absolute symlink is an error (os.Root cannot resolve it
// against the prefix), reported with the path.
func (h *host) readFollow(p string) ([]byte, bool, error) {
	r, err := rel(p)
	if err != nil {
		return nil, false, err
	}
	b, err := h.root.ReadFile(r)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", p, err)
	}
	return b, true, nil
}

// glob matches a host path pattern (path.Match syntax) under the root, sorted.
func (h *host) glob(pattern string) ([]string, error) {
	r, err := rel(pattern)
	if err != nil {
		return nil, err
	}
	matches, err := fs.Glob(h.root.FS(), r)
	if err != nil {
		return nil, fmt.Errorf("imports pattern %s: %w", pattern, err)
	}
	for i, m := range matches {
		matches[i] = "/" + m
	}
	return matches, nil
}

// readDir lists the regular files (and symlinks) of a host directory, sorted; a missing
// directory is empty.
func (h *host) readDir(dir string) ([]string, error) {
	r, err := rel(dir)
	if err != nil {
		return nil, err
	}
	entries, err := fs.ReadDir(h.root.FS(), r)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

func fileType(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "symlink"
	case m.IsDir():
		return "directory"
	default:
		return "special file"
	}
}

// Apply carries out the plan on the host under root: it checks that every file the
// planner read is unchanged, writes each file atomically (temp file in the same
// directory, fsync, rename, fsync of the directory; missing directories are created),
// then removes files. A file changed since planning is an error before anything is
// written: plan again.
func (p Plan) Apply(root string) error {
	if p.Noop() {
		return nil
	}
	h, err := openHost(root)
	if err != nil {
		return err
	}
	defer h.close()
	for _, e := range p.expect {
		f, err := h.readOwned(e.path)
		if err != nil {
			return err
		}
		if f.exists != e.exists || (f.exists && sum(f.data) != e.sum) {
			return fmt.Errorf("%s changed since the plan was made: plan again", e.path)
		}
	}
	for _, w := range p.Writes {
		if err := h.writeAtomic(w); err != nil {
			return fmt.Errorf("write %s: %w", w.Path, err)
		}
	}
	for _, path := range p.Removes {
		if err := h.remove(path); err != nil {
			return fmt.Errorf("remove %s: %w", path, err)
		}
	}
	return nil
}

func (h *host) writeAtomic(w Write) (err error) {
	r, err := rel(w.Path)
	if err != nil {
		return err
	}
	dir, base := path.Split(r)
	dir = path.Clean(dir)
	if err := h.root.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return err
	}
	// The temp name ends in random hex, so no imports glob like *.toml picks it up.
	tmp := path.Join(dir, "."+base+".tmp-"+hex.EncodeToString(rnd[:]))
	f, err := h.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			h.root.Remove(tmp)
		}
	}()
	if _, err = f.Write(w.Data); err != nil {
		return err
	}
	if err = f.Chmod(w.Mode); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = h.root.Rename(tmp, r); err != nil {
		return err
	}
	return h.syncDir(dir)
}

func (h *host) remove(p string) error {
	r, err := rel(p)
	if err != nil {
		return err
	}
	if err := h.root.Remove(r); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	return h.syncDir(path.Dir(r))
}

func (h *host) syncDir(dir string) error {
	d, err := h.root.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
