package main

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// epoch is the timestamp of every file, layer and config: 1970-01-01T00:00:00Z, so two
// builds from the same inputs are byte-identical.
var epoch = time.Unix(0, 0).UTC()

// entry is one file of an image's root filesystem.
type entry struct {
	typ      byte  // tar.TypeReg, tar.TypeDir or tar.TypeSymlink
	mode     int64 // permission bits plus setuid, setgid and sticky (e.g. 0o1777)
	uid, gid int
	data     []byte // regular file content, when src is empty
	src      string // host file copied in when the layer is written
	link     string // symlink target
}

// tree is an image's root filesystem, keyed by clean relative path ("usr/local/bin/x").
// Missing parent directories are written as root-owned 0755 directories.
type tree map[string]*entry

// key turns "/usr/local/bin/" or "usr/local/bin" into "usr/local/bin".
func key(p string) (string, error) {
	k := strings.TrimPrefix(path.Clean("/"+p), "/")
	if k == "" || k == "." {
		return "", fmt.Errorf("path %q: the root directory cannot be an entry", p)
	}
	return k, nil
}

func (t tree) add(p string, e *entry) error {
	k, err := key(p)
	if err != nil {
		return err
	}
	t[k] = e
	return nil
}

// dir adds a root-owned directory.
func (t tree) dir(p string, mode int64) error {
	return t.add(p, &entry{typ: tar.TypeDir, mode: mode})
}

// file adds a root-owned regular file with the given content.
func (t tree) file(p string, mode int64, data []byte) error {
	return t.add(p, &entry{typ: tar.TypeReg, mode: mode, data: data})
}

// symlink adds a symlink to target (kept verbatim; relative targets resolve from p's dir).
func (t tree) symlink(p, target string) error {
	return t.add(p, &entry{typ: tar.TypeSymlink, mode: 0o777, link: target})
}

// copyFile adds the regular host file src, root-owned with the given mode. The content is
// read when the layer is written.
func (t tree) copyFile(p string, mode int64, src string) error {
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file (%s)", src, fi.Mode().Type())
	}
	return t.add(p, &entry{typ: tar.TypeReg, mode: mode, src: src})
}

// addDir adds everything under the host directory root at dest, keeping permission
// bits (including setuid, setgid, sticky) and symlink targets; owners become uid/gid 0.
// Devices, sockets and fifos are refused.
func (t tree) addDir(root, dest string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		mode := permBits(fi.Mode())
		target := path.Join(dest, filepath.ToSlash(rel))
		switch {
		case fi.Mode().IsDir():
			return t.dir(target, mode)
		case fi.Mode().IsRegular():
			return t.add(target, &entry{typ: tar.TypeReg, mode: mode, src: p})
		case fi.Mode()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return t.symlink(target, link)
		default:
			return fmt.Errorf("%s: unsupported file type %s (only files, directories and symlinks)", p, fi.Mode().Type())
		}
	})
}

// permBits converts a Go file mode to tar's mode bits.
func permBits(m fs.FileMode) int64 {
	bits := int64(m.Perm())
	if m&fs.ModeSetuid != 0 {
		bits |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		bits |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		bits |= 0o1000
	}
	return bits
}

// paths returns every path of the tree, parents included, sorted so a directory always
// precedes its contents.
func (t tree) paths() []string {
	all := make(map[string]bool, len(t))
	for k := range t {
		all[k] = true
		for d := path.Dir(k); d != "."; d = path.Dir(d) {
			all[d] = true
		}
	}
	out := make([]string, 0, len(all))
	for k := range all {
		out = append(out, k)
	}
	// Sort by path components, so "a/b" comes right after "a" and before "a-b".
	sort.Slice(out, func(i, j int) bool {
		return strings.ReplaceAll(out[i], "/", "\x00") < strings.ReplaceAll(out[j], "/", "\x00")
	})
	return out
}

// writeTar writes the tree as an uncompressed layer tar: sorted entries, fixed times, no
// user or group names.
func (t tree) writeTar(w io.Writer) error {
	tw := tar.NewWriter(w)
	paths := t.paths()
	for i, p := range paths {
		e, ok := t[p]
		if !ok {
			e = &entry{typ: tar.TypeDir, mode: 0o755}
		} else if e.typ != tar.TypeDir && i+1 < len(paths) && strings.HasPrefix(paths[i+1], p+"/") {
			return fmt.Errorf("%s: is a %s in the image but has entries below it", p, typeName(e.typ))
		}
		if err := writeEntry(tw, p, e); err != nil {
			return fmt.Errorf("layer entry %s: %w", p, err)
		}
	}
	return tw.Close()
}

func typeName(typ byte) string {
	switch typ {
	case tar.TypeDir:
		return "directory"
	case tar.TypeSymlink:
		return "symlink"
	default:
		return "file"
	}
}

func writeEntry(tw *tar.Writer, p string, e *entry) error {
	hdr := &tar.Header{
		Typeflag: e.typ,
		Name:     p,
		Mode:     e.mode,
		Uid:      e.uid,
		Gid:      e.gid,
		ModTime:  epoch,
		Linkname: e.link,
	}
	switch e.typ {
	case tar.TypeDir:
		hdr.Name += "/"
		return tw.WriteHeader(hdr)
	case tar.TypeSymlink:
		return tw.WriteHeader(hdr)
	case tar.TypeReg:
		if e.src == "" {
			hdr.Size = int64(len(e.data))
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			_, err := tw.Write(e.data)
			return err
		}
		f, err := os.Open(e.src)
		if err != nil {
			return err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%s: not a regular file", e.src)
		}
		hdr.Size = fi.Size()
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		n, err := io.Copy(tw, f)
		if err != nil {
			return fmt.Errorf("%s: %w", e.src, err)
		}
		if n != hdr.Size {
			return fmt.Errorf("%s: changed while being read (%d bytes, expected %d)", e.src, n, hdr.Size)
		}
		return nil
	default:
		return errors.New("unsupported entry type")
	}
}

// inline reads every host file of the tree into memory, so the sources may be removed
// before the layer is written.
func (t tree) inline() error {
	for p, e := range t {
		if e.src == "" {
			continue
		}
		data, err := os.ReadFile(e.src)
		if err != nil {
			return fmt.Errorf("image file %s: %w", p, err)
		}
		e.data, e.src = data, ""
	}
	return nil
}
