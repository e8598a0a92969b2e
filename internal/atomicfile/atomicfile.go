// Package atomicfile replaces a file through a temp file in the same directory and a
// rename, so a reader, or a process that dies half-way, sees the old content or the new,
// never a mix; the file gets a new inode, so a running binary is never rewritten in place.
package atomicfile

import (
	"os"
	"path/filepath"
)

// Write replaces path with data and mode perm. With sync, the data is fsynced before the
// rename (for files on disk that must survive a power loss); without, it is not (tmpfs, or
// files a reboot wipes anyway).
func Write(path string, data []byte, perm os.FileMode, sync bool) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if sync {
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
