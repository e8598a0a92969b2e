package idalloc

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// statLine renders a /proc/<pid>/stat line with the given command name,
// state and start time.
func statLine(pid int, comm string, state byte, start uint64) string {
	return fmt.Sprintf("%d (%s) %c 1 1 1 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 %d 1000 10 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n",
		pid, comm, state, start)
}

func TestParseStat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		line    string
		want    procStat
		wantErr bool
	}{
		{"plain", statLine(42, "eci-runtime", 'S', 123456), procStat{42, 'S', 123456}, false},
		{"spaces and parens in comm", statLine(7, "a) (b c) Z 9", 'R', 5), procStat{7, 'R', 5}, false},
		{"zombie", statLine(8, "x", 'Z', 1), procStat{8, 'Z', 1}, false},
		{"empty comm", statLine(9, "", 'S', 3), procStat{9, 'S', 3}, false},
		{"no parens", "42 eci S 1 2 3", procStat{}, true},
		{"too few fields", "42 (eci) S 1 2 3\n", procStat{}, true},
		{"bad start", "42 (eci) S 1 1 1 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 x 1000\n", procStat{}, true},
		{"bad pid", "x (eci) S 1 1 1 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 5 1000\n", procStat{}, true},
		{"empty", "", procStat{}, true},
	}
	for _, tt := range tests {
		got, err := parseStat([]byte(tt.line))
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("%s: parseStat = %+v, %v; want %+v, err=%v", tt.name, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestDefaultLivenessFakeProc(t *testing.T) {
	t.Parallel()
	proc := t.TempDir()
	write := func(pid int, content string) {
		dir := filepath.Join(proc, strconv.Itoa(pid))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(100, statLine(100, "eci runtime)", 'S', 5000))
	write(101, statLine(101, "eci-runtime", 'Z', 5000))
	write(102, "garbage")
	write(103, statLine(103, "runc", 'R', 5000))

	l := DefaultLiveness{ProcRoot: proc}
	tests := []struct {
		name  string
		pid   int
		start uint64
		want  bool
	}{
		{"running, same start", 100, 5000, true},
		{"running, other start (pid reused)", 100, 4999, false},
		{"zombie", 101, 5000, false},
		{"unparsable stat counts as alive", 102, 5000, true},
		{"no such pid", 104, 5000, false},
		{"no creator", 0, 0, false},
		{"running runc", 103, 5000, true},
	}
	for _, tt := range tests {
		e := Entry{Key: "k", RuncRoot: t.TempDir(), CreatorPID: tt.pid, CreatorStart: tt.start}
		if got := l.Alive(e); got != tt.want {
			t.Errorf("%s: Alive = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestDefaultLivenessRuncRoot(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	mk := func(rel, content string) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	mk("runc/created/state.json", `{"id":"created"}`)
	mk("runc/no-state/other.json", `{}`)
	mk("runc/file-not-dir", ``)
	mk("host/run/containerd/runc/k8s.io/pod1/state.json", `{}`)

	emptyProc := t.TempDir() // every creator pid is dead
	tests := []struct {
		name string
		l    DefaultLiveness
		e    Entry
		want bool
	}{
		{"state.json exists", DefaultLiveness{ProcRoot: emptyProc}, Entry{Key: "created", RuncRoot: root + "/runc", CreatorPID: 5}, true},
		{"container dir without state.json", DefaultLiveness{ProcRoot: emptyProc}, Entry{Key: "no-state", RuncRoot: root + "/runc", CreatorPID: 5}, false},
		{"no container dir", DefaultLiveness{ProcRoot: emptyProc}, Entry{Key: "gone", RuncRoot: root + "/runc", CreatorPID: 5}, false},
		{"key is a file", DefaultLiveness{ProcRoot: emptyProc}, Entry{Key: "file-not-dir", RuncRoot: root + "/runc", CreatorPID: 5}, false},
		{"no runc root at all", DefaultLiveness{ProcRoot: emptyProc}, Entry{Key: "created", RuncRoot: root + "/missing", CreatorPID: 5}, false},
		{"host root prefix", DefaultLiveness{ProcRoot: emptyProc, HostRoot: root + "/host"}, Entry{Key: "pod1", RuncRoot: "/run/containerd/runc/k8s.io"}, true},
		{"host root prefix, other key", DefaultLiveness{ProcRoot: emptyProc, HostRoot: root + "/host"}, Entry{Key: "pod2", RuncRoot: "/run/containerd/runc/k8s.io"}, false},
		{"invalid key is not joined", DefaultLiveness{ProcRoot: emptyProc}, Entry{Key: "../runc/created", RuncRoot: root + "/x"}, false},
	}
	for _, tt := range tests {
		if got := tt.l.Alive(tt.e); got != tt.want {
			t.Errorf("%s: Alive(%+v) = %v, want %v", tt.name, tt.e, got, tt.want)
		}
	}
}

// deadProcess starts a helper, records its pid and start time while it runs,
// and returns them once it has exited and been reaped.
func deadProcess(t *testing.T) (pid int, start uint64) {
	t.Helper()
	h := startHelper(t, "block", "", "")
	pid = h.cmd.Process.Pid
	b, err := readProcFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	st, err := parseStat(b)
	if err != nil {
		t.Fatal(err)
	}
	if !(DefaultLiveness{}).Alive(Entry{Key: "x", RuncRoot: "/nonexistent", CreatorPID: pid, CreatorStart: st.start}) {
		t.Errorf("running helper %d reported dead", pid)
	}
	h.stdin.Close()
	if err := h.cmd.Wait(); err != nil {
		t.Fatalf("helper: %v\n%s", err, h.stderr)
	}
	return pid, st.start
}

func TestDefaultLivenessRealProc(t *testing.T) {
	t.Parallel()
	pid, start, err := SelfCreator()
	if err != nil {
		t.Fatal(err)
	}
	if pid != os.Getpid() || start == 0 {
		t.Fatalf("SelfCreator = %d, %d; own pid is %d", pid, start, os.Getpid())
	}
	deadPID, deadStart := deadProcess(t)

	runcRoot := t.TempDir()
	l := DefaultLiveness{}
	tests := []struct {
		name  string
		pid   int
		start uint64
		want  bool
	}{
		{"own pid", pid, start, true},
		{"own pid, wrong start time", pid, start + 1, false},
		{"exited pid", deadPID, deadStart, false},
	}
	for _, tt := range tests {
		e := Entry{Key: "ctr", RuncRoot: runcRoot, CreatorPID: tt.pid, CreatorStart: tt.start}
		if got := l.Alive(e); got != tt.want {
			t.Errorf("%s: Alive = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestAllocateReclaimsCrashedCreator is the crash between "allocate" and
// "runc create": the next Allocate on the node reclaims the range.
func TestAllocateReclaimsCrashedCreator(t *testing.T) {
	t.Parallel()
	runcRoot := t.TempDir()
	a, err := Open(t.TempDir(), Pool{Start: B, Size: 2 * B}) // DefaultLiveness
	if err != nil {
		t.Fatal(err)
	}
	pid, start, err := SelfCreator()
	if err != nil {
		t.Fatal(err)
	}
	deadPID, deadStart := deadProcess(t)

	// runc created "created" before its creator exited; "crashed" never got
	// that far.
	if err := os.Mkdir(filepath.Join(runcRoot, "created"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(runcRoot, "created", "state.json"), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	created := Entry{Key: "created", RuncRoot: runcRoot, CreatorPID: deadPID, CreatorStart: deadStart}
	crashed := Entry{Key: "crashed", RuncRoot: runcRoot, CreatorPID: deadPID, CreatorStart: deadStart}
	for i, o := range []Entry{created, crashed} {
		if r, err := a.Allocate(o, B); err != nil || r.Start != uint32(i+1)*B {
			t.Fatalf("Allocate(%s) = %v, %v", o.Key, r, err)
		}
	}

	r, err := a.Allocate(Entry{Key: "next", RuncRoot: runcRoot, CreatorPID: pid, CreatorStart: start}, B)
	if err != nil || r != (Range{2 * B, B}) {
		t.Fatalf("Allocate(next) = %v, %v; want the crashed creator's range", r, err)
	}
	entries, err := a.List()
	if err != nil {
		t.Fatal(err)
	}
	if got := keys(entries); len(got) != 2 || got[0] != "created" || got[1] != "next" {
		t.Fatalf("entries after reclaim = %v", got)
	}

	// runc delete removes the state; the entry whose creator is still
	// running (this test) survives GC, the other goes.
	if err := os.RemoveAll(filepath.Join(runcRoot, "created")); err != nil {
		t.Fatal(err)
	}
	released, err := a.GC()
	if err != nil || len(released) != 1 || released[0].Key != "created" {
		t.Fatalf("GC = %+v, %v; want created", released, err)
	}
}
