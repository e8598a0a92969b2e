package idalloc

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	alwaysAlive = LivenessFunc(func(Entry) bool { return true })
	alwaysDead  = LivenessFunc(func(Entry) bool { return false })
)

const testRuncRoot = "/run/eci-test/runc"

func owner(key string) Entry {
	return Entry{Key: key, RuncRoot: testRuncRoot, CreatorPID: 4242, CreatorStart: 99}
}

func newAllocator(t *testing.T, pool Pool, opts ...Option) *Allocator {
	t.Helper()
	a, err := Open(t.TempDir(), pool, append([]Option{WithLiveness(alwaysAlive)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// step is one operation of an allocation scenario.
type step struct {
	release bool   // Release instead of Allocate
	key     string //
	size    uint32 // Allocate only
	want    Range  // Allocate only
	found   bool   // Release only
	err     error  // expected error (errors.Is)
}

func alloc(key string, size uint32, start uint32) step {
	return step{key: key, size: size, want: Range{start, size}}
}
func allocErr(key string, size uint32, err error) step {
	return step{key: key, size: size, err: err}
}
func release(key string, found bool) step { return step{release: true, key: key, found: found} }

func TestAllocatorScenarios(t *testing.T) {
	t.Parallel()
	const P = 16 * B
	pool := Pool{Start: P, Size: 4 * B}
	top := Pool{Start: MaxID + 1 - 3*B, Size: 2 * B}
	tests := []struct {
		name  string
		pool  Pool
		steps []step
	}{
		{"first fit from the pool start", pool, []step{
			alloc("a", B, P), alloc("b", 2*B, P+B), alloc("c", B, P+3*B),
		}},
		{"idempotent per key", pool, []step{
			alloc("a", B, P), alloc("b", B, P+B), alloc("a", B, P), alloc("b", B, P+B), alloc("c", B, P+2*B),
		}},
		{"different size for an existing key", pool, []step{
			alloc("a", B, P), allocErr("a", 2*B, ErrSizeMismatch), alloc("a", B, P),
		}},
		{"release frees the block for reuse", pool, []step{
			alloc("a", B, P), alloc("b", B, P+B), alloc("c", B, P+2*B),
			release("b", true), release("b", false), alloc("d", B, P+B), alloc("e", B, P+3*B),
		}},
		{"hole too small is skipped", pool, []step{
			alloc("a", B, P), alloc("b", B, P+B), alloc("c", B, P+2*B),
			release("b", true), alloc("d", 2*B, 0).withErr(ErrExhausted), alloc("e", B, P+B),
		}},
		{"exhaustion and recovery", pool, []step{
			alloc("a", 2*B, P), alloc("b", 2*B, P+2*B), allocErr("c", B, ErrExhausted),
			release("a", true), alloc("c", B, P), alloc("d", B, P+B), allocErr("e", B, ErrExhausted),
		}},
		{"larger than the pool", pool, []step{allocErr("a", 5*B, ErrExhausted)}},
		{"release of an unknown key", pool, []step{release("nope", false)}},
		{"size validation", pool, []step{
			allocErr("a", 0, ErrInvalidSize), allocErr("a", 1, ErrInvalidSize), allocErr("a", B-1, ErrInvalidSize),
			allocErr("a", B+1, ErrInvalidSize), allocErr("a", 3*B/2, ErrInvalidSize), alloc("a", B, P),
		}},
		{"key validation", pool, []step{
			allocErr("", B, ErrInvalidKey), allocErr(".", B, ErrInvalidKey), allocErr("..", B, ErrInvalidKey),
			allocErr("a/b", B, ErrInvalidKey), allocErr("../etc", B, ErrInvalidKey), allocErr("a b", B, ErrInvalidKey),
			allocErr(strings.Repeat("x", 256), B, ErrInvalidKey), alloc(strings.Repeat("x", 255), B, P),
			alloc("sandbox_1.a+b-c", B, P+B), step{release: true, key: "../x", err: ErrInvalidKey},
		}},
		{"top of the id space", top, []step{
			alloc("a", B, top.Start), alloc("b", B, top.Start+B), allocErr("c", B, ErrExhausted),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := newAllocator(t, tt.pool)
			for i, s := range tt.steps {
				if s.release {
					found, err := a.Release(s.key)
					if !errors.Is(err, s.err) || (err == nil && found != s.found) {
						t.Fatalf("step %d: Release(%q) = %v, %v; want %v, %v", i, s.key, found, err, s.found, s.err)
					}
					continue
				}
				got, err := a.Allocate(owner(s.key), s.size)
				if !errors.Is(err, s.err) || (err == nil && got != s.want) {
					t.Fatalf("step %d: Allocate(%q, %d) = %v, %v; want %v, %v", i, s.key, s.size, got, err, s.want, s.err)
				}
				if err != nil && !strings.Contains(err.Error(), a.Dir()) {
					t.Errorf("step %d: error %q does not name the directory", i, err)
				}
			}
			checkDisjoint(t, a)
		})
	}
}

func (s step) withErr(err error) step { s.err, s.want = err, Range{}; return s }

// checkDisjoint lists a's entries and fails if any two overlap or one lies
// outside the pool or is misaligned.
func checkDisjoint(t *testing.T, a *Allocator) []Entry {
	t.Helper()
	entries, err := a.List()
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range entries {
		if uint64(e.Range.Start) < uint64(a.pool.Start) || e.Range.End() > uint64(a.pool.Start)+uint64(a.pool.Size) {
			t.Errorf("%q %v outside pool %v", e.Key, e.Range, a.pool)
		}
		if e.Range.Start%B != 0 || e.Range.Size%B != 0 || e.Range.Size == 0 {
			t.Errorf("%q %v not aligned", e.Key, e.Range)
		}
		for _, f := range entries[i+1:] {
			if e.Range.Overlaps(f.Range) {
				t.Errorf("%q %v overlaps %q %v", e.Key, e.Range, f.Key, f.Range)
			}
		}
	}
	return entries
}

func TestExhaustionMessage(t *testing.T) {
	t.Parallel()
	a := newAllocator(t, Pool{Start: 2 * B, Size: 2 * B})
	for _, k := range []string{"a", "b"} {
		if _, err := a.Allocate(owner(k), B); err != nil {
			t.Fatal(err)
		}
	}
	_, err := a.Allocate(owner("c"), B)
	if !errors.Is(err, ErrExhausted) {
		t.Fatalf("got %v, want ErrExhausted", err)
	}
	for _, want := range []string{`key "c"`, a.Dir(), "2 ranges in use", "[131072, 262144)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

func TestAllocateOwner(t *testing.T) {
	t.Parallel()
	a := newAllocator(t, Pool{Start: B, Size: 4 * B})
	now := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	a.now = func() time.Time { return now }

	for _, bad := range []Entry{
		{Key: "x", RuncRoot: "", CreatorPID: 1},
		{Key: "x", RuncRoot: "run/runc", CreatorPID: 1},
		{Key: "x", RuncRoot: "/run/runc", CreatorPID: 0},
		{Key: "x", RuncRoot: "/run/runc", CreatorPID: -1},
	} {
		if _, err := a.Allocate(bad, B); !errors.Is(err, ErrInvalidOwner) {
			t.Errorf("Allocate(%+v) = %v, want ErrInvalidOwner", bad, err)
		}
	}

	o := Entry{Key: "pod", RuncRoot: "/run/runc/../runc/k8s.io/", CreatorPID: 10, CreatorStart: 20, Created: now.Add(-time.Hour), Range: Range{7, 7}}
	r, err := a.Allocate(o, 2*B)
	if err != nil {
		t.Fatal(err)
	}
	want := Entry{Key: "pod", Range: r, RuncRoot: "/run/runc/k8s.io", CreatorPID: 10, CreatorStart: 20, Created: now}
	if got, ok, err := a.Lookup("pod"); err != nil || !ok || got != want {
		t.Fatalf("Lookup = %+v, %v, %v; want %+v", got, ok, err, want)
	}

	// The same key from another runc root is a different container.
	o2 := o
	o2.RuncRoot = "/run/containerd/runc/moby"
	if _, err := a.Allocate(o2, 2*B); !errors.Is(err, ErrRootMismatch) {
		t.Fatalf("Allocate under another root = %v, want ErrRootMismatch", err)
	}

	// A second creator of the same key takes over the entry's creator.
	o3 := o
	o3.CreatorPID, o3.CreatorStart = 11, 21
	if r3, err := a.Allocate(o3, 2*B); err != nil || r3 != r {
		t.Fatalf("Allocate again = %v, %v; want %v", r3, err, r)
	}
	want.CreatorPID, want.CreatorStart = 11, 21
	if got, _, _ := a.Lookup("pod"); got != want {
		t.Fatalf("after re-allocate Lookup = %+v, want %+v", got, want)
	}
	if _, ok, err := a.Lookup("other"); ok || err != nil {
		t.Fatalf("Lookup(other) = %v, %v", ok, err)
	}
}

// deadKeys is a Liveness that reports the keys in its set dead.
type deadKeys struct {
	mu   sync.Mutex
	keys map[string]bool
}

func (d *deadKeys) liveness() Liveness {
	return LivenessFunc(func(e Entry) bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return !d.keys[e.Key]
	})
}

func (d *deadKeys) set(keys ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.keys = map[string]bool{}
	for _, k := range keys {
		d.keys[k] = true
	}
}

func keys(entries []Entry) []string {
	var out []string
	for _, e := range entries {
		out = append(out, e.Key)
	}
	return out
}

func TestGC(t *testing.T) {
	t.Parallel()
	dead := &deadKeys{}
	a := newAllocator(t, Pool{Start: B, Size: 3 * B}, WithLiveness(dead.liveness()))
	for _, k := range []string{"a", "b", "c"} {
		if _, err := a.Allocate(owner(k), B); err != nil {
			t.Fatal(err)
		}
	}

	// Nothing dead: GC releases nothing and does not rewrite the file.
	before, err := os.Stat(a.statePath)
	if err != nil {
		t.Fatal(err)
	}
	if released, err := a.GC(); err != nil || len(released) != 0 {
		t.Fatalf("GC = %v, %v; want nothing", keys(released), err)
	}
	if after, err := os.Stat(a.statePath); err != nil || !os.SameFile(before, after) {
		t.Fatalf("GC without changes rewrote the state file (%v)", err)
	}

	dead.set("b")
	released, err := a.GC()
	if err != nil || !slices.Equal(keys(released), []string{"b"}) || released[0].Range != (Range{2 * B, B}) {
		t.Fatalf("GC = %+v, %v; want b", released, err)
	}
	if l, _ := a.List(); !slices.Equal(keys(l), []string{"a", "c"}) {
		t.Fatalf("List after GC = %v", keys(l))
	}

	// The pool is full; Allocate reclaims the dead entry a first and takes its block.
	dead.set("a")
	r, err := a.Allocate(owner("d"), B)
	if err != nil || r != (Range{B, B}) {
		t.Fatalf("Allocate(d) = %v, %v; want a's block", r, err)
	}
	if l, _ := a.List(); !slices.Equal(keys(l), []string{"d", "c"}) {
		t.Fatalf("List after Allocate = %v", keys(l))
	}

	// A dead entry for the very key being allocated is replaced by a fresh one.
	dead.set("c")
	if r, err := a.Allocate(owner("c"), 2*B); err != nil || r != (Range{2 * B, 2 * B}) {
		t.Fatalf("Allocate(c) with a dead entry for c = %v, %v", r, err)
	}
}

func TestOpen(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	pool := Pool{Start: B, Size: B}

	dir := filepath.Join(base, "a", "b")
	a, err := Open(dir, pool)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("state dir mode = %v, %v; want 0700", fi.Mode().Perm(), err)
	}
	if _, ok := a.liveness.(DefaultLiveness); !ok {
		t.Errorf("default liveness is %T", a.liveness)
	}
	if _, err := os.Stat(filepath.Join(dir, StateFileName)); !os.IsNotExist(err) {
		t.Errorf("Open created the state file: %v", err)
	}
	if l, err := a.List(); err != nil || len(l) != 0 {
		t.Errorf("List of a new allocator = %v, %v", l, err)
	}

	if _, err := Open(dir, Pool{Start: 0, Size: B}); !errors.Is(err, ErrInvalidPool) {
		t.Errorf("Open with a bad pool = %v", err)
	}
	if _, err := Open("", pool); err == nil {
		t.Error("Open(\"\") succeeded")
	}
	if _, err := Open(dir, pool, WithLiveness(nil)); err == nil {
		t.Error("Open with nil liveness succeeded")
	}
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(file, pool); err == nil || !strings.Contains(err.Error(), file) {
		t.Errorf("Open on a file = %v", err)
	}
	open := filepath.Join(base, "open")
	if err := os.Mkdir(open, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(open, pool); err == nil || !strings.Contains(err.Error(), "writable") {
		t.Errorf("Open on a world-writable dir = %v", err)
	}
}

func TestLeftoverTempFiles(t *testing.T) {
	t.Parallel()
	a := newAllocator(t, Pool{Start: B, Size: 4 * B})
	if _, err := a.Allocate(owner("a"), B); err != nil {
		t.Fatal(err)
	}
	// What a writer killed between CreateTemp and Rename leaves behind.
	leftover := filepath.Join(a.Dir(), StateFileName+".tmp-123456")
	if err := os.WriteFile(leftover, []byte(`{"version":1,"entr`), 0o600); err != nil {
		t.Fatal(err)
	}
	if e, ok, err := a.Lookup("a"); err != nil || !ok || e.Range != (Range{B, B}) {
		t.Fatalf("Lookup with a leftover temp file = %+v, %v, %v", e, ok, err)
	}
	if _, err := a.Allocate(owner("b"), B); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(leftover); !os.IsNotExist(err) {
		t.Fatalf("leftover temp file still there after a write: %v", err)
	}
	if l := checkDisjoint(t, a); !slices.Equal(keys(l), []string{"a", "b"}) {
		t.Fatalf("List = %v", keys(l))
	}
}

func TestConcurrentGoroutines(t *testing.T) {
	t.Parallel()
	a := newAllocator(t, Pool{Start: B, Size: 64 * B})
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := range 32 {
		wg.Go(func() {
			if _, err := a.Allocate(owner(fmt.Sprintf("g%d", i)), B); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if l := checkDisjoint(t, a); len(l) != 32 {
		t.Fatalf("%d entries, want 32", len(l))
	}
}
