package idalloc

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// withState runs fn on the current entries while holding the directory's lock.
// If fn reports a change, the returned entries replace the state file
// atomically before the lock is dropped. fn must not keep entries.
func (a *Allocator) withState(fn func(entries []Entry) ([]Entry, bool, error)) error {
	unlock, err := lockExclusive(a.lockPath)
	if err != nil {
		return err
	}
	defer unlock()
	entries, err := readState(a.statePath)
	if err != nil {
		return err
	}
	next, changed, err := fn(entries)
	if err != nil || !changed {
		return err
	}
	if err := validateEntries(next); err != nil {
		// A bug in this package, not in the file: refuse to write it.
		return fmt.Errorf("refusing to write inconsistent state to %s: %w", a.statePath, err)
	}
	return writeState(a.dir, a.statePath, next)
}

// readState reads and decodes the state file. A missing file is an empty
// state; an unusable one is a *StateError.
func readState(path string) ([]Entry, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state file: %w", err)
	}
	entries, err := decodeState(b)
	if err != nil {
		return nil, &StateError{Path: path, Err: err}
	}
	return entries, nil
}

// writeState replaces the state file atomically: a temp file in the same
// directory is written and fsynced, renamed over the state file, and the
// directory is fsynced so that the rename is durable. Temp files left by a
// process that crashed mid-write are removed first (we hold the lock, so no
// one else is writing).
func writeState(dir, path string, entries []Entry) (err error) {
	b, err := encodeState(entries)
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	removeTemps(dir)
	f, err := os.CreateTemp(dir, tempPattern)
	if err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if _, err = f.Write(b); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("write state: fsync %s: %w", tmp, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	if err := syncDir(dir); err != nil {
		// The new state is in place; only its durability is in doubt.
		return fmt.Errorf("write state: %w", err)
	}
	return nil
}

// removeTemps removes temp files left by writers that crashed. It is best
// effort: a leftover that cannot be removed is harmless, since readers ignore it.
func removeTemps(dir string) {
	leftovers, _ := filepath.Glob(filepath.Join(dir, tempPattern))
	for _, p := range leftovers {
		_ = os.Remove(p)
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		_ = d.Close()
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return d.Close()
}

// ensureDir creates dir with mode 0700 if needed and checks that it is a
// directory nobody but its owner can write to.
func ensureDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%s has mode %v: must not be writable by group or others", dir, fi.Mode().Perm())
	}
	return nil
}
