package idalloc

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// Tests that need other processes re-execute the test binary, running only
// TestHelperProcess, with helperEnv naming what the helper should do.
const (
	helperEnv    = "IDALLOC_TEST_HELPER"
	helperDirEnv = "IDALLOC_TEST_DIR"
	helperKeyEnv = "IDALLOC_TEST_KEY"
)

// helperPool is the pool the helper processes allocate from.
var helperPool = Pool{Start: 64 * B, Size: 128 * B}

// TestHelperProcess is not a test: it does nothing unless re-executed by
// startHelper.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		return
	}
	if err := runHelper(mode, os.Getenv(helperDirEnv), os.Getenv(helperKeyEnv)); err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(2)
	}
	os.Exit(0)
}

func runHelper(mode, dir, key string) error {
	switch mode {
	case "block":
		// Stay alive until the parent closes stdin.
		_, err := io.Copy(io.Discard, os.Stdin)
		return err
	case "allocate":
		// Wait for the parent's go (stdin closed), so that all helpers
		// contend for the lock at once.
		if _, err := io.Copy(io.Discard, os.Stdin); err != nil {
			return err
		}
		a, err := Open(dir, helperPool, WithLiveness(alwaysAlive))
		if err != nil {
			return err
		}
		pid, start, err := SelfCreator()
		if err != nil {
			return err
		}
		n, err := strconv.Atoi(strings.TrimPrefix(key, "pod-"))
		if err != nil {
			return err
		}
		r, err := a.Allocate(Entry{Key: key, RuncRoot: "/run/eci-test", CreatorPID: pid, CreatorStart: start}, podSize(n))
		if err != nil {
			return err
		}
		fmt.Printf("range %d %d\n", r.Start, r.Size)
		return nil
	case "churn":
		// Allocate and release forever, reporting each completed operation,
		// until killed.
		a, err := Open(dir, helperPool, WithLiveness(alwaysAlive))
		if err != nil {
			return err
		}
		pid, start, err := SelfCreator()
		if err != nil {
			return err
		}
		w := bufio.NewWriter(os.Stdout)
		for i := 0; ; i++ {
			k := fmt.Sprintf("k%d", rand.IntN(churnKeys))
			_, found, err := a.Lookup(k)
			if err != nil {
				return err
			}
			if found {
				_, err = a.Release(k)
			} else {
				_, err = a.Allocate(Entry{Key: k, RuncRoot: dir, CreatorPID: pid, CreatorStart: start}, uint32(1+rand.IntN(3))*B)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "op %d\n", i)
			if err := w.Flush(); err != nil {
				return err
			}
		}
	}
	return fmt.Errorf("unknown helper mode %q", mode)
}

// podSize is the size helper pod-<n> asks for: a mix of one and two blocks.
func podSize(n int) uint32 {
	if n%3 == 0 {
		return 2 * B
	}
	return B
}

// churnKeys*3 blocks fit in helperPool, so churn never exhausts it.
const churnKeys = 20

type helper struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout io.ReadCloser
	stderr *bytes.Buffer
}

func startHelper(t *testing.T, mode, dir, key string) *helper {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, helperDirEnv+"="+dir, helperKeyEnv+"="+key)
	h := &helper{cmd: cmd, stderr: new(bytes.Buffer)}
	cmd.Stderr = h.stderr
	var err error
	if h.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if h.stdout, err = cmd.StdoutPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return h
}

func TestParallelProcesses(t *testing.T) {
	t.Parallel()
	const n = 50
	dir := t.TempDir()
	helpers := make([]*helper, n)
	for i := range helpers {
		helpers[i] = startHelper(t, "allocate", dir, fmt.Sprintf("pod-%d", i))
	}
	for _, h := range helpers {
		h.stdin.Close() // go
	}
	got := make(map[string]Range, n)
	for i, h := range helpers {
		out, _ := io.ReadAll(h.stdout)
		if err := h.cmd.Wait(); err != nil {
			t.Fatalf("helper %d: %v\n%s", i, err, h.stderr)
		}
		var r Range
		if _, err := fmt.Sscanf(string(out), "range %d %d\n", &r.Start, &r.Size); err != nil {
			t.Fatalf("helper %d printed %q: %v", i, out, err)
		}
		got[fmt.Sprintf("pod-%d", i)] = r
	}

	var all []Range
	for i := range n {
		r := got[fmt.Sprintf("pod-%d", i)]
		if r.Size != podSize(i) {
			t.Errorf("pod-%d got %v, want %d ids", i, r, podSize(i))
		}
		all = append(all, r)
	}
	for i, r := range all {
		for _, s := range all[i+1:] {
			if r.Overlaps(s) {
				t.Errorf("ranges %v and %v overlap", r, s)
			}
		}
	}

	a, err := Open(dir, helperPool, WithLiveness(alwaysAlive))
	if err != nil {
		t.Fatal(err)
	}
	entries := checkDisjoint(t, a)
	if len(entries) != n {
		t.Fatalf("state file lists %d entries, want %d", len(entries), n)
	}
	for _, e := range entries {
		if got[e.Key] != e.Range {
			t.Errorf("state file has %s at %v, helper reported %v", e.Key, e.Range, got[e.Key])
		}
	}
}

func TestCrashSafety(t *testing.T) {
	t.Parallel()
	const rounds = 10
	dir := t.TempDir()
	statePath := filepath.Join(dir, StateFileName)
	var pids []int
	tornWrites := 0
	for round := range rounds {
		h := startHelper(t, "churn", dir, "")
		pids = append(pids, h.cmd.Process.Pid)
		// Let the helper complete a random number of operations, then kill
		// it wherever it happens to be.
		ops := 1 + rand.IntN(80)
		sc := bufio.NewScanner(h.stdout)
		for range ops {
			if !sc.Scan() {
				h.cmd.Wait()
				t.Fatalf("round %d: helper stopped early: %v\n%s", round, sc.Err(), h.stderr)
			}
		}
		if err := h.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		err := h.cmd.Wait()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: helper did not die of SIGKILL: %v\n%s", round, err, h.stderr)
		}

		b, err := os.ReadFile(statePath)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		entries, err := decodeState(b) // also checks keys, alignment and overlaps
		if err != nil {
			t.Fatalf("round %d: state file does not parse after SIGKILL: %v\n%s", round, err, b)
		}
		for _, e := range entries {
			n, err := strconv.Atoi(strings.TrimPrefix(e.Key, "k"))
			if err != nil || n < 0 || n >= churnKeys || e.RuncRoot != dir || !slices.Contains(pids, e.CreatorPID) || e.Created.IsZero() {
				t.Errorf("round %d: inconsistent entry %+v", round, e)
			}
			if uint64(e.Range.Start) < uint64(helperPool.Start) || e.Range.End() > uint64(helperPool.Start)+uint64(helperPool.Size) {
				t.Errorf("round %d: entry %+v outside the pool", round, e)
			}
		}
		if tmps, _ := filepath.Glob(filepath.Join(dir, tempPattern)); len(tmps) > 0 {
			tornWrites++
		}
		t.Logf("round %d: killed after %d ops, %d entries", round, ops, len(entries))
	}
	t.Logf("%d of %d kills interrupted a write", tornWrites, rounds)

	a, err := Open(dir, helperPool, WithLiveness(alwaysAlive))
	if err != nil {
		t.Fatal(err)
	}
	entries := checkDisjoint(t, a)
	// Every creator was killed and no runc state exists: the default
	// liveness check finds them all dead.
	for _, e := range entries {
		if (DefaultLiveness{}).Alive(e) {
			t.Errorf("DefaultLiveness reports %+v alive after its creator was killed", e)
		}
	}
	a, err = Open(dir, helperPool, WithLiveness(alwaysDead))
	if err != nil {
		t.Fatal(err)
	}
	released, err := a.GC()
	if err != nil {
		t.Fatal(err)
	}
	if len(released) != len(entries) {
		t.Errorf("GC released %d entries, want %d", len(released), len(entries))
	}
	if left, err := a.List(); err != nil || len(left) != 0 {
		t.Fatalf("after GC: %v, %v", left, err)
	}
	if len(entries) > 0 {
		if tmps, _ := filepath.Glob(filepath.Join(dir, tempPattern)); len(tmps) > 0 {
			t.Errorf("temp files survived a write: %v", tmps)
		}
	}
}
