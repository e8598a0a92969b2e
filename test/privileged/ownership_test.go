//go:build linux

package privileged

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/eci-dev/eci/internal/testbundle"
)

func ownerOf(t *testing.T, path string) [2]uint32 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	return [2]uint32{st.Uid, st.Gid}
}

// Container root writes its rootfs and an idmapped volume; on disk the files belong to uid
// 0 (what the idmapped mount promises: container ids are the on-disk ids), the volume's
// source is never chowned, and inside the container they belong to root.
func TestRootfsAndVolumeOwnership(t *testing.T) {
	e := newEnv(t)
	vol := filepath.Join(e.dir, "volume")
	if err := os.Mkdir(vol, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(vol, "from-host"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := testbundle.Spec("sh", "-c", `set -e
touch /written-by-root
mkdir /vol/dir-by-root
echo hi > /vol/dir-by-root/file
echo appended >> /vol/from-host
stat -c '%u:%g %n' /written-by-root /vol/dir-by-root/file /vol/from-host /bin/busybox`)
	spec.Mounts = append(spec.Mounts, specs.Mount{Destination: "/vol", Type: "bind", Source: vol, Options: []string{"rbind", "rw"}})
	id := e.id("own")
	b := e.bundle(id, spec)
	out, err := e.outputOf(e.eci, id, b)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"0:0 /written-by-root", "0:0 /vol/dir-by-root/file", "0:0 /vol/from-host", "0:0 /bin/busybox"} {
		if !strings.Contains(out, want) {
			t.Errorf("inside the container: want %q in\n%s", want, out)
		}
	}
	for _, p := range []string{filepath.Join(b.Rootfs(), "written-by-root"), filepath.Join(vol, "dir-by-root", "file"), filepath.Join(vol, "from-host"), vol} {
		if got := ownerOf(t, p); got != [2]uint32{0, 0} {
			t.Errorf("on disk %s is owned by %v, want 0:0 (idmapped, never chowned)", p, got)
		}
	}
	if left := mountsUnder(t, e.dir); len(left) != 0 {
		t.Errorf("mounts left after delete: %v", left)
	}
}

// containerd's rootfs is an overlay of image layers: eci remounts it over idmapped lower
// dirs, so the image's files show as root's inside, new files land in the upper dir owned
// by the container's host root, and the layers themselves are untouched.
func TestOverlayRootfs(t *testing.T) {
	e := newEnv(t)
	id := e.id("ovl")
	spec := testbundle.Spec("sh", "-c", `set -e; touch /new-file; echo x >> /etc/passwd; stat -c '%u:%g %n' /new-file /etc/passwd /bin/busybox /`)
	b := e.bundle(id, spec)
	// Turn the built rootfs into a lower layer and mount an overlay at rootfs, as the
	// containerd shim does before it calls the runtime.
	lower, upper, work := filepath.Join(e.dir, id+"-lower"), filepath.Join(e.dir, id+"-upper"), filepath.Join(e.dir, id+"-work")
	if err := os.Rename(b.Rootfs(), lower); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{b.Rootfs(), upper, work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Mount("overlay", b.Rootfs(), "overlay", 0, "lowerdir="+lower+",upperdir="+upper+",workdir="+work); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(b.Rootfs(), unix.MNT_DETACH) })
	passwdBefore, _ := os.ReadFile(filepath.Join(lower, "etc", "passwd"))

	out, err := e.outputOf(e.eci, id, b)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"0:0 /new-file", "0:0 /etc/passwd", "0:0 /bin/busybox", "0:0 /\n"} {
		if !strings.Contains(out+"\n", want) {
			t.Errorf("inside the container: want %q in\n%s", want, out)
		}
	}
	rg := ownerOf(t, upper)[0] // eci gave the upper dir to the container's host root
	if got := ownerOf(t, filepath.Join(upper, "new-file")); got != [2]uint32{rg, rg} {
		t.Errorf("upper/new-file owned by %v, want the container's host root %d", got, rg)
	}
	if rg < 1<<31 {
		t.Errorf("upper dir owned by %d, not by an id from eci's pool", rg)
	}
	if got := ownerOf(t, filepath.Join(lower, "bin", "busybox")); got != [2]uint32{0, 0} {
		t.Errorf("lower layer file owner changed to %v", got)
	}
	if after, _ := os.ReadFile(filepath.Join(lower, "etc", "passwd")); string(after) != string(passwdBefore) {
		t.Error("the lower layer was modified")
	}
	// The rootfs is still an overlay (the CRI unmounts it), and no scratch mount remains.
	for _, m := range mountsUnder(t, e.dir) {
		if m != b.Rootfs() {
			t.Errorf("unexpected mount left: %s", m)
		}
	}
}

// A volume on a filesystem that cannot be idmapped (an overlay) is refused with an error
// naming the path and the filesystem type, and nothing is left changed.
func TestVolumeThatCannotBeIDMapped(t *testing.T) {
	e := newEnv(t)
	ovl := filepath.Join(e.dir, "ovl")
	lower, upper, work := filepath.Join(e.dir, "l"), filepath.Join(e.dir, "u"), filepath.Join(e.dir, "w")
	for _, d := range []string{ovl, lower, upper, work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Mount("overlay", ovl, "overlay", 0, "lowerdir="+lower+",upperdir="+upper+",workdir="+work); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(ovl, unix.MNT_DETACH) })
	spec := testbundle.Spec("true")
	spec.Mounts = append(spec.Mounts, specs.Mount{Destination: "/data", Type: "bind", Source: ovl, Options: []string{"rbind"}})
	id := e.id("noidmap")
	b := e.bundle(id, spec)
	before, _ := os.ReadFile(filepath.Join(b.Dir, "config.json"))
	_, err := e.eci.Create(id, b, nil)
	if err == nil {
		t.Fatal("create succeeded with a volume that cannot be idmapped")
	}
	for _, want := range []string{ovl, "overlay filesystem, which cannot be idmapped", "volume at /data"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	after, _ := os.ReadFile(filepath.Join(b.Dir, "config.json"))
	if string(before) != string(after) {
		t.Error("config.json was changed by a failed create")
	}
	if list := e.entries(); len(list) != 0 {
		t.Errorf("a failed create kept its range: %+v", list)
	}
	for _, m := range mountsUnder(t, e.dir) {
		if m != ovl {
			t.Errorf("mount left behind: %s", m)
		}
	}
}
