// Package idalloc is the node-wide, crash-safe allocator of host uid/gid
// ranges: every pod (or standalone container) gets its own exclusive block of
// host ids for its user namespace.
//
// There is no daemon. Every short-lived eci-runtime process opens the
// allocator, and each operation takes an exclusive flock on
// <dir>/ranges.lock, reads <dir>/ranges.json, changes it and, if anything
// changed, replaces it atomically (temp file, fsync, rename, fsync dir) before
// unlocking. A process killed at any moment leaves either the old or the new
// state file behind, never a torn one, and its lock is dropped by the kernel.
//
// An entry whose owner died between allocation and container creation is
// reclaimed by the garbage collection that runs, under the same lock, before
// every allocation; see [Liveness] and [DefaultLiveness].
package idalloc

import (
	"cmp"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

const (
	// BlockSize is the allocation granularity and alignment, in ids.
	BlockSize = 65536
	// MaxID is the largest usable id plus one: id 4294967295 ((uid_t)-1)
	// is invalid, so no range may contain it.
	MaxID = 1<<32 - 1

	// StateFileName and LockFileName are the files kept in the allocator's
	// directory.
	StateFileName = "ranges.json"
	LockFileName  = "ranges.lock"
	// StateVersion is the only state file version this package reads and writes.
	StateVersion = 1

	tempPattern = StateFileName + ".tmp-*"
)

var (
	// ErrInvalidPool reports a Pool that fails [Pool.Validate].
	ErrInvalidPool = errors.New("invalid pool")
	// ErrInvalidKey reports a key that is not a valid runc container id.
	ErrInvalidKey = errors.New("invalid key")
	// ErrInvalidOwner reports an owner without an absolute RuncRoot or a creator pid.
	ErrInvalidOwner = errors.New("invalid owner")
	// ErrInvalidSize reports a size that is not a positive multiple of BlockSize.
	ErrInvalidSize = errors.New("invalid size")
	// ErrSizeMismatch reports an Allocate for an existing key with a different size.
	ErrSizeMismatch = errors.New("key already holds a range of a different size")
	// ErrRootMismatch reports an Allocate for an existing key under a different runc root.
	ErrRootMismatch = errors.New("key already allocated under a different runc root")
	// ErrExhausted reports that no free aligned block of the requested size is left.
	ErrExhausted = errors.New("id pool exhausted")
	// ErrCorrupt reports a state file that cannot be parsed, has an unknown
	// version or holds inconsistent entries. The file is left untouched.
	ErrCorrupt = errors.New("corrupt state file")
)

// Range is a block of host ids [Start, Start+Size).
type Range struct {
	Start, Size uint32
}

// End returns the first id after r. It is a uint64 so that it cannot overflow.
func (r Range) End() uint64 { return uint64(r.Start) + uint64(r.Size) }

// Overlaps reports whether r and o share at least one id.
func (r Range) Overlaps(o Range) bool {
	return uint64(r.Start) < o.End() && uint64(o.Start) < r.End()
}

func (r Range) String() string { return fmt.Sprintf("[%d, %d)", r.Start, r.End()) }

// Pool is the block of host ids [Start, Start+Size) that ranges are carved from.
type Pool struct {
	Start, Size uint32
}

// Validate checks that p starts at or above 65536, is not empty, does not
// reach id 4294967295, and that Start and Size are multiples of BlockSize.
func (p Pool) Validate() error {
	switch end := uint64(p.Start) + uint64(p.Size); {
	case p.Start < BlockSize:
		return fmt.Errorf("%w %v: start must be at least %d", ErrInvalidPool, p, BlockSize)
	case p.Size == 0:
		return fmt.Errorf("%w %v: size must be positive", ErrInvalidPool, p)
	case p.Start%BlockSize != 0 || p.Size%BlockSize != 0:
		return fmt.Errorf("%w %v: start and size must be multiples of %d", ErrInvalidPool, p, BlockSize)
	case end > MaxID:
		return fmt.Errorf("%w %v: end must not exceed %d", ErrInvalidPool, p, uint64(MaxID))
	}
	return nil
}

func (p Pool) String() string { return Range(p).String() }

// Entry is one allocated range with its owner.
type Entry struct {
	// Key is the sandbox id (pod) or container id (standalone container);
	// there is at most one entry per key.
	Key   string
	Range Range
	// RuncRoot is the runc --root under which Key lives, used for liveness.
	RuncRoot string
	// CreatorPID is the pid of the process that allocated (creation in progress).
	CreatorPID int
	// CreatorStart is that pid's start time (field 22 of /proc/<pid>/stat),
	// which guards against pid reuse.
	CreatorStart uint64
	// Created is when the range was allocated (UTC).
	Created time.Time
}

// Liveness decides whether an entry's owner still exists. Entries it reports
// dead are released by [Allocator.GC] and before every [Allocator.Allocate].
// Implementations must answer "alive" when unsure: releasing a range that is
// still in use lets two pods share host ids.
type Liveness interface {
	Alive(e Entry) bool
}

// LivenessFunc adapts a function to [Liveness].
type LivenessFunc func(e Entry) bool

// Alive calls f(e).
func (f LivenessFunc) Alive(e Entry) bool { return f(e) }

// Option configures an Allocator.
type Option func(*Allocator)

// WithLiveness replaces [DefaultLiveness] as the GC's liveness check.
func WithLiveness(l Liveness) Option {
	return func(a *Allocator) { a.liveness = l }
}

// Allocator hands out ranges from a pool, persisting them in a directory that
// all processes on the node share. It holds no open files between calls; every
// method locks the directory for its duration, so an Allocator may be used from
// several goroutines and processes at once.
type Allocator struct {
	dir       string
	statePath string
	lockPath  string
	pool      Pool
	liveness  Liveness
	now       func() time.Time
}

// Open returns an allocator for pool that keeps its state in dir, creating dir
// with mode 0700 if needed. dir must not be writable by group or others. Open
// does not read the state; a corrupt state file is reported by each operation.
func Open(dir string, pool Pool, opts ...Option) (*Allocator, error) {
	if dir == "" {
		return nil, errors.New("idalloc: open: empty state directory")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("idalloc: open %s: %w", dir, err)
	}
	if err := pool.Validate(); err != nil {
		return nil, fmt.Errorf("idalloc: open %s: %w", abs, err)
	}
	if err := ensureDir(abs); err != nil {
		return nil, fmt.Errorf("idalloc: open %s: %w", abs, err)
	}
	a := &Allocator{
		dir:       abs,
		statePath: filepath.Join(abs, StateFileName),
		lockPath:  filepath.Join(abs, LockFileName),
		pool:      pool,
		liveness:  DefaultLiveness{},
		now:       time.Now,
	}
	for _, o := range opts {
		o(a)
	}
	if a.liveness == nil {
		return nil, fmt.Errorf("idalloc: open %s: nil Liveness", abs)
	}
	return a, nil
}

// Dir returns the absolute state directory.
func (a *Allocator) Dir() string { return a.dir }

// Pool returns the pool new ranges are allocated from.
func (a *Allocator) Pool() Pool { return a.pool }

// Allocate returns the range held by owner.Key, allocating one of size ids if
// there is none. owner's Key, RuncRoot, CreatorPID and CreatorStart are used;
// its Range and Created are ignored.
//
// Allocate is idempotent per key: a key that already holds a range gets the
// same range back (and the entry's creator becomes owner's creator, since the
// caller is the one now creating the container). Asking for a different size,
// or the same key under a different RuncRoot, is an error.
//
// Before allocating, Allocate releases every entry that the Liveness reports
// dead, under the same lock. New ranges are the first free BlockSize-aligned
// block of the pool, never overlapping any recorded entry.
func (a *Allocator) Allocate(owner Entry, size uint32) (Range, error) {
	key := owner.Key
	if err := validateOwner(owner); err != nil {
		return Range{}, a.opErr("allocate", key, err)
	}
	if err := validateSize(size); err != nil {
		return Range{}, a.opErr("allocate", key, err)
	}
	root := filepath.Clean(owner.RuncRoot)
	var got Range
	err := a.withState(func(entries []Entry) ([]Entry, bool, error) {
		live, dead := partitionLive(entries, a.liveness)
		changed := len(dead) > 0
		if i := indexOf(live, key); i >= 0 {
			e := &live[i]
			if e.Range.Size != size {
				return nil, false, fmt.Errorf("%w: holds %v (%d ids), asked for %d ids", ErrSizeMismatch, e.Range, e.Range.Size, size)
			}
			if e.RuncRoot != root {
				return nil, false, fmt.Errorf("%w: recorded under %s, asked under %s", ErrRootMismatch, e.RuncRoot, root)
			}
			if e.CreatorPID != owner.CreatorPID || e.CreatorStart != owner.CreatorStart {
				e.CreatorPID, e.CreatorStart = owner.CreatorPID, owner.CreatorStart
				changed = true
			}
			got = e.Range
			return live, changed, nil
		}
		start, ok := firstFit(a.pool, live, size)
		if !ok {
			return nil, false, fmt.Errorf("%w: no free aligned block of %d ids in pool %v (%d ids), %d ranges in use holding %d ids",
				ErrExhausted, size, a.pool, a.pool.Size, len(live), usedInPool(a.pool, live))
		}
		got = Range{Start: start, Size: size}
		live = append(live, Entry{
			Key:          key,
			Range:        got,
			RuncRoot:     root,
			CreatorPID:   owner.CreatorPID,
			CreatorStart: owner.CreatorStart,
			Created:      a.now().UTC(),
		})
		return live, true, nil
	})
	if err != nil {
		return Range{}, a.opErr("allocate", key, err)
	}
	return got, nil
}

// Lookup returns the entry held by key, if any. It does not run GC.
func (a *Allocator) Lookup(key string) (Entry, bool, error) {
	if err := validateKey(key); err != nil {
		return Entry{}, false, a.opErr("lookup", key, err)
	}
	var (
		got   Entry
		found bool
	)
	err := a.withState(func(entries []Entry) ([]Entry, bool, error) {
		if i := indexOf(entries, key); i >= 0 {
			got, found = entries[i], true
		}
		return nil, false, nil
	})
	if err != nil {
		return Entry{}, false, a.opErr("lookup", key, err)
	}
	return got, found, nil
}

// Release frees the range held by key and reports whether there was one.
func (a *Allocator) Release(key string) (bool, error) {
	if err := validateKey(key); err != nil {
		return false, a.opErr("release", key, err)
	}
	var found bool
	err := a.withState(func(entries []Entry) ([]Entry, bool, error) {
		i := indexOf(entries, key)
		if i < 0 {
			return nil, false, nil
		}
		found = true
		return slices.Delete(entries, i, i+1), true, nil
	})
	if err != nil {
		return false, a.opErr("release", key, err)
	}
	return found, nil
}

// GC releases every entry the Liveness reports dead and returns them.
func (a *Allocator) GC() ([]Entry, error) {
	var released []Entry
	err := a.withState(func(entries []Entry) ([]Entry, bool, error) {
		live, dead := partitionLive(entries, a.liveness)
		released = dead
		return live, len(dead) > 0, nil
	})
	if err != nil {
		return nil, a.opErr("gc", "", err)
	}
	return released, nil
}

// List returns all entries, ordered by range start.
func (a *Allocator) List() ([]Entry, error) {
	var out []Entry
	err := a.withState(func(entries []Entry) ([]Entry, bool, error) {
		out = slices.Clone(entries)
		return nil, false, nil
	})
	if err != nil {
		return nil, a.opErr("list", "", err)
	}
	sortByStart(out)
	return out, nil
}

// opErr adds the operation, key and directory to err. A *StateError already
// names the file and concerns every key, so it is returned as is.
func (a *Allocator) opErr(op, key string, err error) error {
	if _, ok := errors.AsType[*StateError](err); ok {
		return err
	}
	if key == "" {
		return fmt.Errorf("idalloc: %s in %s: %w", op, a.dir, err)
	}
	return fmt.Errorf("idalloc: %s key %q in %s: %w", op, key, a.dir, err)
}

// StateError reports a state file that cannot be used. The file is never
// rewritten while it is in this state; an operator must inspect it.
type StateError struct {
	Path string
	Err  error
}

func (e *StateError) Error() string {
	return fmt.Sprintf("idalloc: state file %s is corrupt: %v", e.Path, e.Err)
}

func (e *StateError) Unwrap() []error { return []error{ErrCorrupt, e.Err} }

// keyRE is runc's container id syntax.
var keyRE = regexp.MustCompile(`^[\w+\-.]+$`)

func validateKey(key string) error {
	if key == "" || key == "." || key == ".." || len(key) > 255 || !keyRE.MatchString(key) {
		return fmt.Errorf("%w %q: must be a runc container id (letters, digits, _+-.; at most 255 bytes)", ErrInvalidKey, key)
	}
	return nil
}

func validateOwner(owner Entry) error {
	if err := validateKey(owner.Key); err != nil {
		return err
	}
	if !filepath.IsAbs(owner.RuncRoot) {
		return fmt.Errorf("%w: runc root %q must be an absolute path", ErrInvalidOwner, owner.RuncRoot)
	}
	if owner.CreatorPID <= 0 {
		return fmt.Errorf("%w: creator pid %d must be positive (see SelfCreator)", ErrInvalidOwner, owner.CreatorPID)
	}
	return nil
}

func validateSize(size uint32) error {
	if size == 0 || size%BlockSize != 0 {
		return fmt.Errorf("%w %d: must be a positive multiple of %d", ErrInvalidSize, size, BlockSize)
	}
	return nil
}

func indexOf(entries []Entry, key string) int {
	return slices.IndexFunc(entries, func(e Entry) bool { return e.Key == key })
}

func sortByStart(entries []Entry) {
	slices.SortFunc(entries, func(x, y Entry) int {
		if c := cmp.Compare(x.Range.Start, y.Range.Start); c != 0 {
			return c
		}
		return strings.Compare(x.Key, y.Key)
	})
}
