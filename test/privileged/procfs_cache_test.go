package privileged

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/eci-dev/eci/procemu"
	"github.com/eci-dev/eci/procemu/procfs"
)

// countingResolver serves one container, "c1", from a copy of procemu's v1-limited
// testdata, and counts the snapshots taken of it.
type countingResolver struct {
	cgroups map[string]string
	calls   atomic.Int64
}

func (r *countingResolver) Cgroups(id string) (map[string]string, error) {
	if id != "c1" {
		return nil, fmt.Errorf("unknown container %s", id)
	}
	r.calls.Add(1)
	return r.cgroups, nil
}

// cacheFixture mounts the FUSE server over a writable copy of the v1-limited testdata.
type cacheFixture struct {
	mnt, limitFile string
	resolver       *countingResolver
	server         *procfs.Server
}

func mountCacheFixture(t *testing.T, ttl time.Duration) *cacheFixture {
	t.Helper()
	requirePrivileged(t)
	root := filepath.Join(t.TempDir(), "root")
	if err := os.CopyFS(root, os.DirFS("../../procemu/testdata/v1-limited")); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "cgroup"))
	if err != nil {
		t.Fatal(err)
	}
	cg, err := procemu.ParseCgroupFile(data)
	if err != nil {
		t.Fatal(err)
	}
	f := &cacheFixture{
		mnt:       filepath.Join(t.TempDir(), "mnt"),
		limitFile: filepath.Join(root, "sys/fs/cgroup/memory", cg["memory"], "memory.limit_in_bytes"),
		resolver:  &countingResolver{cgroups: cg},
	}
	if err := os.Mkdir(f.mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	f.server = &procfs.Server{Resolver: f.resolver, Root: root, TTL: ttl}
	srv, err := f.server.Mount(f.mnt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Unmount(); err != nil {
			_ = unix.Unmount(f.mnt, unix.MNT_DETACH)
		}
	})
	return f
}

// setLimit sets the container's memory limit in the copy (whole, as cgroupfs does).
func (f *cacheFixture) setLimit(t *testing.T, bytes int64) {
	tmp := f.limitFile + ".tmp"
	if err := os.WriteFile(tmp, fmt.Appendf(nil, "%d\n", bytes), 0o644); err != nil {
		t.Error(err)
	}
	if err := os.Rename(tmp, f.limitFile); err != nil {
		t.Error(err)
	}
}

// readSendfile reads path as busybox cat does: sendfile until it returns 0, never asking
// the file's size.
func readSendfile(path string) ([]byte, error) {
	in, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	fd, err := unix.MemfdCreate("sendfile", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	out := os.NewFile(uintptr(fd), "memfd")
	defer out.Close()
	for {
		n, err := unix.Sendfile(fd, int(in.Fd()), nil, 1<<20)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			break
		}
	}
	if _, err := out.Seek(0, 0); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	_, err = b.ReadFrom(out)
	return b.Bytes(), err
}

// Readers of a file whose rendering changes size every few milliseconds (the container's
// memory limit flips between 64Mi and 2Gi, a TTL of 2 ms) get, by read() and by sendfile,
// always one whole rendering: never an empty read, a cut one or one padded with zeros.
// This is what a kernel page cache that outlives opens must never get wrong.
func TestFUSECachedReadsAreWholeRenderings(t *testing.T) {
	f := mountCacheFixture(t, 2*time.Millisecond)
	small, large := int64(64<<20), int64(2<<30)
	want := map[string]bool{}
	for _, l := range []int64{small, large} {
		f.setLimit(t, l)
		data, err := (&procfs.Server{Resolver: f.resolver, Root: f.server.Root}).Render("c1", "meminfo")
		if err != nil {
			t.Fatal(err)
		}
		want[string(data)] = true
	}
	if len(want) != 2 {
		t.Fatal("the two limits render the same meminfo")
	}
	path := filepath.Join(f.mnt, "c1", "meminfo")

	stop := make(chan struct{})
	var flips sync.WaitGroup
	flips.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			f.setLimit(t, []int64{small, large}[i%2])
		}
	})
	readers := max(4, 2*runtime.NumCPU())
	var reads, bad atomic.Int64
	seen := make([]atomic.Int64, 2) // reads of the small and of the large rendering
	var wg sync.WaitGroup
	deadline := time.Now().Add(3 * time.Second)
	for r := range readers {
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline); i++ {
				var data []byte
				var err error
				how := "read()"
				if (r+i)%2 == 0 {
					data, err = os.ReadFile(path)
				} else {
					how = "sendfile"
					data, err = readSendfile(path)
				}
				reads.Add(1)
				switch {
				case err != nil:
					bad.Add(1)
					t.Errorf("%s: %v", how, err)
				case !want[string(data)]:
					if bad.Add(1) <= 3 {
						t.Errorf("%s read %d bytes that are not a whole rendering (%d NULs):\n%q", how, len(data), bytes.Count(data, []byte{0}), firstLines(string(data), 3))
					}
				case bytes.Contains(data, []byte("MemTotal:          65536 kB")):
					seen[0].Add(1)
				default:
					seen[1].Add(1)
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	flips.Wait()
	t.Logf("%d readers, %d reads (%d of the 64Mi rendering, %d of the 2Gi one), %d snapshots, %d bad",
		readers, reads.Load(), seen[0].Load(), seen[1].Load(), f.resolver.calls.Load(), bad.Load())
	if seen[0].Load() == 0 || seen[1].Load() == 0 || f.resolver.calls.Load() < 20 {
		t.Errorf("the renderings did not change under the readers (%d, %d reads; %d snapshots)", seen[0].Load(), seen[1].Load(), f.resolver.calls.Load())
	}
}

// Within the TTL, opens and reads (by path, by read() and by sendfile) are served from the
// kernel's cache: 2,000 of them send the server no request at all, and a change of the
// limit shows only after the TTL.
func TestFUSECachedReadsStayInTheKernel(t *testing.T) {
	const ttl = 400 * time.Millisecond
	f := mountCacheFixture(t, ttl)
	f.setLimit(t, 64<<20)
	path := filepath.Join(f.mnt, "c1", "meminfo")
	first, err := readSendfile(path)
	if err != nil || !bytes.Contains(first, []byte("MemTotal:          65536 kB")) {
		t.Fatalf("first read: %v\n%s", err, first)
	}
	// The kernel asks for the attributes once more after the first read (go-fuse's debug
	// log shows one GETATTR at the second open); from then on it has all it needs.
	if data, err := os.ReadFile(path); err != nil || !bytes.Equal(data, first) {
		t.Fatalf("second read: %v\n%s", err, data)
	}
	start := time.Now()
	requests, snapshots := f.server.Requests.Load(), f.resolver.calls.Load()
	f.setLimit(t, 128<<20)
	n := 0
	for ; n < 2000 && time.Since(start) < ttl/2; n++ {
		read := os.ReadFile
		if n%2 == 1 {
			read = readSendfile
		}
		data, err := read(path)
		if err != nil || !bytes.Equal(data, first) {
			t.Fatalf("read %d within the TTL: %v, changed: %v", n, err, !bytes.Equal(data, first))
		}
	}
	if r, s := f.server.Requests.Load()-requests, f.resolver.calls.Load()-snapshots; r != 0 || s != 0 || n < 100 {
		t.Errorf("%d reads within the TTL sent the server %d requests and took %d snapshots, want none", n, r, s)
	}
	time.Sleep(ttl)
	if data, err := readSendfile(path); err != nil || !bytes.Contains(data, []byte("MemTotal:         131072 kB")) {
		t.Errorf("after the TTL the new limit does not show: %v\n%s", err, firstLines(string(data), 2))
	}
}

// runc, binding and stat-ing the files before it sets the container's cgroup limits,
// renders nothing: its stat sees size 0, and the container's first read after it renders
// the limits then in force.
func TestFUSESetupCallerRendersNothing(t *testing.T) {
	f := mountCacheFixture(t, time.Hour)
	f.setLimit(t, 1<<40) // "unlimited" while runc sets up
	path := filepath.Join(f.mnt, "c1", "meminfo")
	if _, err := os.Stat(filepath.Dir(path)); err != nil { // the container's directory
		t.Fatal(err)
	}
	base := f.resolver.calls.Load()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // the renamed thread exits with the goroutine
		name, _ := unix.BytePtrFromString("runc:[2:INIT]")
		if err := unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(name)), 0, 0, 0); err != nil {
			errc <- err
			return
		}
		var st unix.Stat_t
		if err := unix.Stat(path, &st); err != nil {
			errc <- err
			return
		}
		if st.Size != 0 {
			errc <- fmt.Errorf("runc's stat saw size %d, want 0 (nothing rendered)", st.Size)
			return
		}
		errc <- nil
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if calls := f.resolver.calls.Load() - base; calls != 0 {
		t.Errorf("runc's stat took %d snapshots", calls)
	}
	f.setLimit(t, 256<<20)
	if data, err := readSendfile(path); err != nil || !bytes.Contains(data, []byte("MemTotal:         262144 kB")) {
		t.Errorf("the first read after runc's stat: %v\n%s", err, firstLines(string(data), 2))
	}
}
