//go:build linux

package privileged

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/eci-dev/eci/internal/testbundle"
)

// startSleeper creates and starts a container that sleeps, and returns its init pid.
func (e *env) startSleeper(rt testbundle.Runtime, id string, spec *specs.Spec) int {
	e.t.Helper()
	if spec == nil {
		spec = testbundle.Spec("sleep", "300")
	}
	b := e.bundle(id, spec)
	pid, err := rt.Create(id, b, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := rt.Start(id); err != nil {
		e.t.Fatal(err)
	}
	return pid
}

func inRange(ids []uint64, start, size uint64) bool {
	for _, id := range ids {
		if id < start || id >= start+size {
			return false
		}
	}
	return true
}

// The container's processes run, as seen from the host, as ids inside the range eci
// allocated for it; under plain runc the same container runs as host root.
func TestProcessesRunAsTheirRange(t *testing.T) {
	e := newEnv(t)
	id := e.id("range")
	pid := e.startSleeper(e.eci, id, nil)

	list := e.entries()
	if len(list) != 1 || list[0].Key != id {
		t.Fatalf("allocator entries = %+v, want one for %s", list, id)
	}
	rg := list[0].Range
	if rg.Size != 65536 || rg.Start < 1<<31 {
		t.Fatalf("range %v: want 65536 ids from the default pool at 2^31", rg)
	}
	ids := idsOf(t, pid)
	if !inRange(ids, uint64(rg.Start), uint64(rg.Size)) {
		t.Fatalf("container init (pid %d) runs as host ids %v, outside its range %v", pid, ids, rg)
	}
	if got := uidMap(t, pid); len(got) != 1 || got[0] != [3]uint64{0, uint64(rg.Start), uint64(rg.Size)} {
		t.Fatalf("uid_map = %v, want 0 %d %d", got, rg.Start, rg.Size)
	}

	// The same spec under plain runc runs as host root: the check has teeth.
	runcPid := e.startSleeper(e.runc, e.id("range-runc"), nil)
	if ids := idsOf(t, runcPid); ids[0] != 0 {
		t.Fatalf("plain runc container runs as host uid %d, expected 0", ids[0])
	}

	if err := e.eci.Delete(id); err != nil {
		t.Fatal(err)
	}
	if list := e.entries(); len(list) != 0 {
		t.Fatalf("after delete the allocator still has %+v", list)
	}
}

func disjoint(t *testing.T, ranges map[string][3]uint64) {
	t.Helper()
	type kv struct {
		k string
		m [3]uint64
	}
	var all []kv
	for k, m := range ranges {
		if m[0] != 0 || m[2] < 65536 || m[1] < 65536 {
			t.Errorf("%s: mapping %v", k, m)
		}
		all = append(all, kv{k, m})
	}
	for i := range all {
		for j := i + 1; j < len(all); j++ {
			a, b := all[i].m, all[j].m
			if a[1] < b[1]+b[2] && b[1] < a[1]+a[2] {
				t.Errorf("%s %v and %s %v share host ids", all[i].k, a, all[j].k, b)
			}
		}
	}
}

// 50 containers created at the same time get pairwise disjoint ranges.
func TestParallelCreatesGetDisjointRanges(t *testing.T) {
	e := newEnv(t)
	const n = 50
	var mu sync.Mutex
	maps := map[string][3]uint64{}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		id := e.id("par")
		b := e.bundle(id, testbundle.Spec("sleep", "300"))
		wg.Add(1)
		go func() {
			defer wg.Done()
			pid, err := e.eci.Create(id, b, nil)
			if err != nil {
				errs <- err
				return
			}
			m := uidMap(t, pid)
			mu.Lock()
			maps[id] = m[0]
			mu.Unlock()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(maps) != n {
		t.Fatalf("%d of %d containers created", len(maps), n)
	}
	disjoint(t, maps)
	if list := e.entries(); len(list) != n {
		t.Fatalf("allocator has %d entries, want %d", len(list), n)
	}
	e.deleteAll()
	if list := e.entries(); len(list) != 0 {
		t.Fatalf("after deleting all, the allocator still has %d entries", len(list))
	}
}

// Containers of one pod share the sandbox's user namespace and range; the range is freed
// only when the sandbox goes.
func TestPodContainersJoinTheSandbox(t *testing.T) {
	e := newEnv(t)
	sb := e.id("sandbox")
	ann := func(kind string) map[string]string {
		return map[string]string{
			"io.kubernetes.cri.container-type":    kind,
			"io.kubernetes.cri.sandbox-id":        sb,
			"io.kubernetes.cri.sandbox-namespace": "team-a",
			"io.kubernetes.cri.sandbox-name":      "web",
			"io.kubernetes.cri.sandbox-uid":       "uid-1234",
		}
	}
	sbSpec := testbundle.Spec("sleep", "300")
	sbSpec.Annotations = ann("sandbox")
	sbPid := e.startSleeper(e.eci, sb, sbSpec)

	// A second pod, to show the two pods' ranges differ.
	otherPid := e.startSleeper(e.eci, e.id("other-pod"), nil)

	app := e.id("app")
	appSpec := testbundle.Spec("sleep", "300")
	appSpec.Annotations = ann("container")
	for i, ns := range appSpec.Linux.Namespaces {
		switch ns.Type {
		case specs.NetworkNamespace, specs.IPCNamespace, specs.UTSNamespace:
			name := map[specs.LinuxNamespaceType]string{specs.NetworkNamespace: "net", specs.IPCNamespace: "ipc", specs.UTSNamespace: "uts"}[ns.Type]
			appSpec.Linux.Namespaces[i].Path = fmt.Sprintf("/proc/%d/ns/%s", sbPid, name)
		}
	}
	appPid := e.startSleeper(e.eci, app, appSpec)

	if a, s := nsInode(t, appPid, "user"), nsInode(t, sbPid, "user"); a != s {
		t.Fatalf("app container's user namespace %d is not the sandbox's %d", a, s)
	}
	if a, s := uidMap(t, appPid), uidMap(t, sbPid); fmt.Sprint(a) != fmt.Sprint(s) {
		t.Fatalf("app uid_map %v != sandbox uid_map %v", a, s)
	}
	disjoint(t, map[string][3]uint64{"pod": uidMap(t, sbPid)[0], "other": uidMap(t, otherPid)[0]})
	if len(e.entries()) != 2 {
		t.Fatalf("want 2 ranges (two pods), got %+v", e.entries())
	}

	if err := e.eci.Delete(app); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := e.allocator().Lookup(sb); !ok {
		t.Fatal("deleting an app container released the pod's range")
	}
	if err := e.eci.Delete(sb); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := e.allocator().Lookup(sb); ok {
		t.Fatal("deleting the sandbox did not release the pod's range")
	}

	// An app container whose sandbox eci does not know is refused, not run unisolated.
	orphan := testbundle.Spec("true")
	orphan.Annotations = ann("container")
	orphan.Annotations["io.kubernetes.cri.sandbox-id"] = "no-such-sandbox"
	_, err := e.eci.Create(e.id("orphan"), e.bundle("orphan", orphan), nil)
	if err == nil || !strings.Contains(err.Error(), "sandbox no-such-sandbox has no eci id range") {
		t.Fatalf("orphan app container: err = %v", err)
	}
}

// eci-runtime killed at random moments during create leaks no range once the containers
// the CRI would clean up are deleted and the allocator's GC has run.
func TestKilledCreateLeaksNoRange(t *testing.T) {
	e := newEnv(t)
	const n = 20
	killed := 0
	var ids []string
	for i := 0; i < n; i++ {
		id := e.id("kill")
		ids = append(ids, id)
		b := e.bundle(id, testbundle.Spec("sleep", "300"))
		devnull, _ := os.Open(os.DevNull)
		cmd := exec.Command(e.eci.Binary, "--root", e.eci.Root, "create", "--bundle", b.Dir, id)
		cmd.Env = append(os.Environ(), e.eci.Env...)
		cmd.Stdout, cmd.Stderr = devnull, devnull
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill somewhere between start and a full create (~60-120 ms here).
		time.Sleep(time.Duration(rand.IntN(120_000)) * time.Microsecond)
		if cmd.Process.Signal(syscall.SIGKILL) == nil {
			killed++
		}
		_ = cmd.Wait()
		devnull.Close()
	}
	t.Logf("killed %d of %d creates; allocator holds %d entries before cleanup", killed, n, len(e.entries()))
	// What containerd does after a failed create: delete the container it asked for,
	// whether or not runc got as far as recording it.
	for _, id := range ids {
		_, _ = e.eci.Run("delete", "--force", id)
	}
	released, err := e.allocator().GC()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("GC released %d ranges", len(released))
	if list := e.entries(); len(list) != 0 {
		t.Fatalf("%d ranges leaked after GC: %+v", len(list), list)
	}
	if entries, _ := os.ReadDir(filepath.Join(e.dir, "run", "mnt")); len(entries) != 0 {
		t.Errorf("scratch mount dirs left behind: %v", entries)
	}
	if left := mountsUnder(t, e.dir); len(left) != 0 {
		t.Errorf("mounts left behind: %v", left)
	}
}
