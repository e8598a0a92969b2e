//go:build linux

// Package privileged runs real containers through eci-runtime and the pinned runc, as root.
// It runs when ECI_TEST_PRIVILEGED=1 (make test sets it); then a missing root or binary is a
// failure, not a skip.
package privileged

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/eci-dev/eci/internal/testbundle"
	"github.com/eci-dev/eci/runtime/idalloc"
	"github.com/eci-dev/eci/runtime/idmap"
)

var (
	binDir     string
	attackBin  string
	skipReason string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if dir := os.Getenv(envProcfsServe); dir != "" {
		// A child of TestFUSEServesRealContainers: the FUSE server, in its own process
		// (a process that serves a FUSE mount must not also read it).
		return serveProcfs(dir, os.Getenv(envProcfsMap))
	}
	if os.Getenv("ECI_TEST_PRIVILEGED") != "1" {
		skipReason = "privileged lane not requested (set ECI_TEST_PRIVILEGED=1, as make test does)"
		return m.Run()
	}
	fail := func(format string, args ...any) int {
		fmt.Fprintf(os.Stderr, "privileged tests: "+format+"\n", args...)
		return 1
	}
	if os.Geteuid() != 0 {
		return fail("ECI_TEST_PRIVILEGED=1 but not running as root")
	}
	binDir = os.Getenv("ECI_BIN_DIR")
	if binDir == "" {
		binDir, _ = filepath.Abs("../../bin")
	}
	for _, b := range []string{"eci-runtime", "runc", "eci-node"} {
		if _, err := os.Stat(filepath.Join(binDir, b)); err != nil {
			return fail("%s missing in %s (run make build): %v", b, binDir, err)
		}
	}
	if _, err := os.Stat(testbundle.Busybox); err != nil {
		return fail("%s missing (run make deps): %v", testbundle.Busybox, err)
	}
	tmp, err := os.MkdirTemp("", "eci-attack-")
	if err != nil {
		return fail("%v", err)
	}
	defer os.RemoveAll(tmp)
	attackBin = filepath.Join(tmp, "attack")
	build := exec.Command("go", "build", "-o", attackBin, "github.com/eci-dev/eci/test/attack")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fail("building the attack probe: %v\n%s", err, out)
	}
	if err := testbundle.BecomeSubreaper(); err != nil {
		return fail("PR_SET_CHILD_SUBREAPER: %v", err)
	}
	return m.Run()
}

func requirePrivileged(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
}

// env is one test's eci: its own state and run dirs and runc roots.
type env struct {
	t     *testing.T
	dir   string
	state string
	eci   testbundle.Runtime
	runc  testbundle.Runtime
}

var idSeq atomic.Int64

func newEnv(t *testing.T) *env {
	t.Helper()
	requirePrivileged(t)
	dir := t.TempDir()
	if err := testbundle.MakeTraversable(dir); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, dir: dir, state: filepath.Join(dir, "state")}
	cfg := filepath.Join(dir, "eci.json")
	data := fmt.Sprintf(`{"stateDir": %q, "runDir": %q}`, e.state, filepath.Join(dir, "run"))
	if err := os.WriteFile(cfg, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	e.eci = testbundle.Runtime{Binary: filepath.Join(binDir, "eci-runtime"), Root: filepath.Join(dir, "eci-root"), Env: []string{"ECI_CONFIG=" + cfg}}
	e.runc = testbundle.Runtime{Binary: filepath.Join(binDir, "runc"), Root: filepath.Join(dir, "runc-root")}
	t.Cleanup(func() { e.deleteAll() })
	return e
}

// deleteAll force-deletes every container left in either root, as containerd would.
func (e *env) deleteAll() {
	for _, rt := range []testbundle.Runtime{e.eci, e.runc} {
		entries, _ := os.ReadDir(rt.Root)
		for _, c := range entries {
			if _, err := rt.Run("delete", "--force", c.Name()); err != nil {
				e.t.Logf("cleanup: %v", err)
			}
		}
	}
}

func (e *env) id(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, idSeq.Add(1))
}

// bundle builds a fresh bundle running args.
func (e *env) bundle(name string, spec *specs.Spec) *testbundle.Bundle {
	e.t.Helper()
	b, err := testbundle.New(filepath.Join(e.dir, name), spec, map[string]string{"/bin/attack": attackBin})
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

func (e *env) allocator() *idalloc.Allocator {
	e.t.Helper()
	a, err := idalloc.Open(filepath.Join(e.dir, "run", "idalloc"), idalloc.Pool{Start: 1 << 31, Size: 1 << 30})
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

func (e *env) entries() []idalloc.Entry {
	e.t.Helper()
	list, err := e.allocator().List()
	if err != nil {
		e.t.Fatal(err)
	}
	return list
}

// createWithOutput creates a container whose stdout goes to <bundle>/<id>.out, and returns
// its init pid and that file.
func (e *env) createWithOutput(rt testbundle.Runtime, id string, b *testbundle.Bundle) (int, string, error) {
	e.t.Helper()
	out := filepath.Join(b.Dir, id+".out")
	f, err := os.Create(out)
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	pid, err := rt.Create(id, b, f)
	return pid, out, err
}

// outputOf runs a container to completion and returns its output.
func (e *env) outputOf(rt testbundle.Runtime, id string, b *testbundle.Bundle) (string, error) {
	e.t.Helper()
	pid, out, err := e.createWithOutput(rt, id, b)
	if err != nil {
		return "", err
	}
	defer rt.Delete(id)
	if err := rt.Start(id); err != nil {
		return "", err
	}
	code, err := testbundle.Wait(pid, 60*time.Second)
	if err != nil {
		return "", err
	}
	data, _ := os.ReadFile(out)
	if code != 0 {
		return string(data), fmt.Errorf("container %s exited %d: %s", id, code, data)
	}
	return string(data), nil
}

// idsOf reads the real, effective, saved and fs uids and gids of a host pid.
func idsOf(t *testing.T, pid int) []uint64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ids []uint64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "Uid:") || strings.HasPrefix(line, "Gid:") {
			for _, field := range strings.Fields(line)[1:] {
				v, err := strconv.ParseUint(field, 10, 32)
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, v)
			}
		}
	}
	if len(ids) != 8 {
		t.Fatalf("pid %d: read %d ids from status", pid, len(ids))
	}
	return ids
}

// uidMap reads a process's uid_map as (container, host, size) triples.
func uidMap(t *testing.T, pid int) [][3]uint64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/uid_map", pid))
	if err != nil {
		t.Fatal(err)
	}
	var out [][3]uint64
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Fields(line)
		var m [3]uint64
		for i := range m {
			m[i], _ = strconv.ParseUint(f[i], 10, 64)
		}
		out = append(out, m)
	}
	return out
}

func nsInode(t *testing.T, pid int, ns string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/%d/ns/%s", pid, ns), &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

type attackResult struct {
	Attack, Result, Detail string
}

func parseAttacks(t *testing.T, out string) map[string]attackResult {
	t.Helper()
	res := map[string]attackResult{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if !strings.HasPrefix(line, "{") {
			continue // eci-runtime's own warnings share the container's stderr here
		}
		var r attackResult
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("attack output line %q: %v\nfull output:\n%s", line, err, out)
		}
		res[r.Attack] = r
	}
	return res
}

// hostRootDev is the major:minor of the device holding the host's /.
func hostRootDev(t *testing.T) string {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat("/", &st); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%d:%d", unix.Major(st.Dev), unix.Minor(st.Dev))
}

// mountsUnder lists the mount points at or below dir.
func mountsUnder(t *testing.T, dir string) []string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mounts, err := idmap.ParseMountInfo(f)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range mounts {
		if m.MountPoint == dir || strings.HasPrefix(m.MountPoint, dir+"/") {
			out = append(out, m.MountPoint)
		}
	}
	return out
}
