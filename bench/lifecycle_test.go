//go:build linux

// Package bench holds eci's benchmarks. They run real containers, so they need root and
// the binaries from `make build`; run them with `make bench`.
package bench

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eci-dev/eci/internal/testbundle"
)

const (
	// minLifecycles is the fewest lifecycles per runtime a median and a p90 are reported
	// from; the Makefile asks for exactly this many (-benchtime 30x).
	minLifecycles = 30
	// warmups are untimed lifecycles per runtime before the measured ones.
	warmups = 2
	// waitTimeout bounds how long one container may take to exit.
	waitTimeout = 30 * time.Second
)

// binDir is where `make build` put eci-runtime and runc: $ECI_BIN_DIR (make bench sets
// it), else ../bin relative to this package.
func binDir(b *testing.B) string {
	b.Helper()
	dir := os.Getenv("ECI_BIN_DIR")
	if dir == "" {
		dir = filepath.Join("..", "bin")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		b.Fatalf("bin dir %s: %v", dir, err)
	}
	for _, name := range []string{"eci-runtime", "runc"} {
		if st, err := os.Stat(filepath.Join(abs, name)); err != nil || !st.Mode().IsRegular() {
			b.Fatalf("%s is missing in %s (run make build, or set ECI_BIN_DIR): %v", name, abs, err)
		}
	}
	return abs
}

// subject is one runtime under test, with its own bundle and --root.
type subject struct {
	name   string
	rt     testbundle.Runtime
	bundle *testbundle.Bundle
	times  []time.Duration
}

// lifecycle runs create → start → wait(exit) → delete of one container and returns how long
// that took. Only the four steps are inside the measured interval.
//
// The container has exited, so delete is a plain `delete`, as containerd's shim issues it for
// an exited task. `delete --force` (testbundle's Delete, used here only to clean up after a
// failure) makes runc SIGKILL the container and sleep 100 ms before it even checks whether
// anything is left: a fixed cost in both runtimes that would hide eci's overhead.
func (s *subject) lifecycle(id string) (time.Duration, error) {
	t0 := time.Now()
	pid, err := s.rt.Create(id, s.bundle, nil)
	if err != nil {
		return 0, err
	}
	if err := s.rt.Start(id); err != nil {
		_ = s.rt.Delete(id)
		return 0, err
	}
	code, err := testbundle.Wait(pid, waitTimeout)
	if err != nil {
		_ = s.rt.Delete(id)
		return 0, fmt.Errorf("%s container %s: %w", s.name, id, err)
	}
	if _, err := s.rt.Run("delete", id); err != nil {
		_ = s.rt.Delete(id)
		return 0, err
	}
	d := time.Since(t0)
	if code != 0 {
		out, _ := os.ReadFile(filepath.Join(s.bundle.Dir, id+".out"))
		return 0, fmt.Errorf("%s container %s exited with status %d: %s", s.name, id, code, strings.TrimSpace(string(out)))
	}
	return d, nil
}

// reset puts the bundle back as it was built: eci-runtime rewrites config.json in place
// (user namespace, mappings, masks), and a bundle that already carries a user namespace
// mapping would take eci's "kubelet mapped it" path instead of allocating a range. It also
// drops the per-container pid, log and output files.
func (s *subject) reset(id string) error {
	for _, suffix := range []string{".pid", ".log.json", ".out"} {
		if err := os.Remove(filepath.Join(s.bundle.Dir, id+suffix)); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	return s.bundle.Write()
}

// BenchmarkLifecycle measures the lifecycle (create, start, wait for exit, delete) of a
// busybox /bin/true container under the pinned runc and under eci-runtime, interleaved
// (runc, eci, runc, eci, ...) so that both see the same machine load. Each runtime gets b.N
// timed lifecycles after two untimed warmups. ns/op is one runc plus one eci lifecycle; the
// metrics are the per-runtime medians and p90s and eci's ratio to runc.
func BenchmarkLifecycle(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Fatal("BenchmarkLifecycle creates real containers and must run as root (euid 0)")
	}
	bin := binDir(b)
	if b.N == 1 {
		// go test's probe run: with -benchtime 30x the real run (b.N == 30) follows. Don't
		// run containers whose timings would be thrown away.
		return
	}
	if b.N < minLifecycles {
		b.Fatalf("b.N = %d lifecycles per runtime is too few for a median and p90: run with -benchtime %dx or more (make bench does)", b.N, minLifecycles)
	}
	if _, err := os.Stat(testbundle.Busybox); err != nil {
		b.Fatalf("%s is missing (run make deps): %v", testbundle.Busybox, err)
	}
	if err := testbundle.BecomeSubreaper(); err != nil {
		b.Fatalf("PR_SET_CHILD_SUBREAPER: %v", err)
	}

	// Everything lives on tmpfs, as it does under containerd on a systemd host (/run is
	// tmpfs): bundles in /run/containerd, runc roots in /run, eci's run dir (allocator,
	// records) in /run/eci. This machine's /run is not tmpfs, so /dev/shm stands in.
	tmp, err := os.MkdirTemp("/dev/shm", "eci-bench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(tmp) })
	if err := testbundle.MakeTraversable(tmp); err != nil {
		b.Fatal(err)
	}
	stateDir := filepath.Join(tmp, "state")
	cfgPath := filepath.Join(tmp, "eci.json")
	cfg := fmt.Sprintf(`{"stateDir": %q, "runDir": %q}`, stateDir, filepath.Join(tmp, "run"))
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		b.Fatal(err)
	}
	runcBin := filepath.Join(bin, "runc")
	newSubject := func(name string, rt testbundle.Runtime) *subject {
		bundle, err := testbundle.New(filepath.Join(tmp, name+"-bundle"), testbundle.Spec("/bin/true"), nil)
		if err != nil {
			b.Fatalf("%s bundle: %v", name, err)
		}
		return &subject{name: name, rt: rt, bundle: bundle, times: make([]time.Duration, 0, b.N)}
	}
	runc := newSubject("runc", testbundle.Runtime{Binary: runcBin, Root: filepath.Join(tmp, "runc-root")})
	eci := newSubject("eci", testbundle.Runtime{
		Binary: filepath.Join(bin, "eci-runtime"),
		Root:   filepath.Join(tmp, "eci-root"),
		// ECI_RUNC pins the very runc measured above, whatever else is installed.
		Env: []string{"ECI_CONFIG=" + cfgPath, "ECI_RUNC=" + runcBin},
	})
	subjects := []*subject{runc, eci}
	b.Cleanup(func() {
		// Leave nothing behind if a lifecycle failed half-way (as containerd would).
		for _, s := range subjects {
			entries, _ := os.ReadDir(s.rt.Root)
			for _, e := range entries {
				_ = s.rt.Delete(e.Name())
			}
		}
	})

	// Container ids are unique across the warmups, the iterations and go test's repeated
	// runs (-count), so no run can trip over state another one left.
	run := time.Now().UnixNano()
	one := func(s *subject, phase string, i int, timed bool) {
		id := fmt.Sprintf("bench-%s-%x-%s%d", s.name, run, phase, i)
		if err := s.reset(id); err != nil {
			b.Fatalf("resetting the %s bundle: %v", s.name, err)
		}
		b.StartTimer()
		d, err := s.lifecycle(id)
		b.StopTimer()
		if err != nil {
			b.Fatalf("%s lifecycle %d: %v", s.name, i, err)
		}
		if timed {
			s.times = append(s.times, d)
		}
	}

	b.StopTimer()
	for i := range warmups {
		for _, s := range subjects {
			one(s, "w", i, false)
		}
	}
	checkHardened(b, eci.bundle)
	b.ResetTimer()
	for i := range b.N {
		for _, s := range subjects {
			one(s, "", i, true)
		}
	}
	b.StopTimer()

	checkReleased(b, filepath.Join(tmp, "run", "idalloc", "ranges.json"))

	rm, r90 := median(runc.times), percentile(runc.times, 90)
	em, e90 := median(eci.times), percentile(eci.times, 90)
	b.ReportMetric(ms(rm), "runc-median-ms")
	b.ReportMetric(ms(r90), "runc-p90-ms")
	b.ReportMetric(ms(em), "eci-median-ms")
	b.ReportMetric(ms(e90), "eci-p90-ms")
	b.ReportMetric(float64(em)/float64(rm), "eci/runc-median")
	b.ReportMetric(float64(e90)/float64(r90), "eci/runc-p90")

	var tab strings.Builder
	fmt.Fprintf(&tab, "lifecycle of busybox /bin/true, %d per runtime, interleaved, after %d warmups each (ms):\n", b.N, warmups)
	fmt.Fprintf(&tab, "%-8s %8s %8s %8s %8s %8s\n", "runtime", "min", "median", "mean", "p90", "max")
	for _, s := range subjects {
		fmt.Fprintf(&tab, "%-8s %8.1f %8.1f %8.1f %8.1f %8.1f\n", s.name,
			ms(slices.Min(s.times)), ms(median(s.times)), ms(mean(s.times)), ms(percentile(s.times, 90)), ms(slices.Max(s.times)))
	}
	fmt.Fprintf(&tab, "eci/runc: median %.3f, p90 %.3f", float64(em)/float64(rm), float64(e90)/float64(r90))
	b.Log(tab.String())
}

// checkHardened fails the benchmark if eci-runtime did not actually harden the bundle (a
// user namespace with a mapping from the allocator), so the numbers are never those of a
// pass-through.
func checkHardened(b *testing.B, bundle *testbundle.Bundle) {
	b.Helper()
	data, err := os.ReadFile(filepath.Join(bundle.Dir, "config.json"))
	if err != nil {
		b.Fatal(err)
	}
	var spec struct {
		Linux struct {
			Namespaces  []struct{ Type string } `json:"namespaces"`
			UIDMappings []struct {
				HostID uint32 `json:"hostID"`
			} `json:"uidMappings"`
		} `json:"linux"`
	}
	if err := json.Unmarshal(data, &spec); err != nil {
		b.Fatalf("eci's config.json: %v", err)
	}
	userns := slices.ContainsFunc(spec.Linux.Namespaces, func(n struct{ Type string }) bool { return n.Type == "user" })
	if !userns || len(spec.Linux.UIDMappings) == 0 || spec.Linux.UIDMappings[0].HostID == 0 {
		b.Fatalf("eci-runtime did not give the container its own user namespace (config.json after create: %s)", data)
	}
}

// checkReleased fails the benchmark if eci's allocator still holds a range after every
// container was deleted: delete must release what create allocated.
func checkReleased(b *testing.B, path string) {
	b.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		b.Errorf("eci allocator state: %v (eci-runtime should have written it on the first create)", err)
		return
	}
	var st struct {
		Entries []json.RawMessage `json:"entries"`
	}
	if err := json.Unmarshal(data, &st); err != nil {
		b.Errorf("eci allocator state %s: %v", path, err)
		return
	}
	if len(st.Entries) != 0 {
		b.Errorf("eci allocator state %s still holds %d ranges after every container was deleted:\n%s", path, len(st.Entries), data)
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func sorted(ds []time.Duration) []time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s
}

// median is the middle value (the mean of the two middle ones for an even count).
func median(ds []time.Duration) time.Duration {
	s := sorted(ds)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// percentile is the nearest-rank p-th percentile: the smallest value at least p% of the
// values are less than or equal to.
func percentile(ds []time.Duration, p float64) time.Duration {
	s := sorted(ds)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	return s[max(rank, 1)-1]
}

func mean(ds []time.Duration) time.Duration {
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return sum / time.Duration(len(ds))
}
