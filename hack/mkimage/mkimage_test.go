package main

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// pauseBin is hack/mkimage/pause built once for all tests; it doubles as a small static
// ELF standing in for eci's binaries.
var pauseBin string

func TestMain(m *testing.M) {
	os.Exit(func() int {
		dir, err := os.MkdirTemp("", "mkimage-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		if pauseBin, err = buildPause(context.Background(), dir); err != nil {
			fmt.Fprintln(os.Stderr, "building the pause binary for the tests:", err)
			return 1
		}
		return m.Run()
	}())
}

// file is one entry of an image's layer as read back.
type file struct {
	hdr  *tar.Header
	data []byte
}

// readBack loads the tarball at path with go-containerregistry's own reader, checks it
// carries tag, and returns the image, its config and its layer's entries in tar order.
func readBack(t *testing.T, path, tag string) (*v1.ConfigFile, []string, map[string]file) {
	t.Helper()
	ref, err := name.NewTag(tag, name.StrictValidation)
	if err != nil {
		t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(path, &ref)
	if err != nil {
		t.Fatalf("tarball.ImageFromPath(%s, %s): %v", path, tag, err)
	}
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(path) })
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 1 || !slices.Equal(m[0].RepoTags, []string{tag}) {
		t.Fatalf("manifest.json = %+v, want one image tagged %s", m, tag)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1 {
		t.Fatalf("%d layers, want 1", len(layers))
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var order []string
	files := map[string]file{}
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		p := strings.TrimSuffix(hdr.Name, "/")
		order = append(order, p)
		files[p] = file{hdr, data}
	}
	return cf, order, files
}

// checkCommon checks what every mkimage image has: linux/GOARCH, epoch timestamps, root
// owners, no user names, parents before children.
func checkCommon(t *testing.T, cf *v1.ConfigFile, order []string, files map[string]file) {
	t.Helper()
	if cf.OS != "linux" || cf.Architecture != runtime.GOARCH {
		t.Errorf("platform %s/%s, want linux/%s", cf.OS, cf.Architecture, runtime.GOARCH)
	}
	if !cf.Created.Equal(epoch) {
		t.Errorf("created %v, want %v", cf.Created, epoch)
	}
	if len(cf.History) != 1 || !cf.History[0].Created.Equal(epoch) {
		t.Errorf("history %+v, want one entry at the epoch", cf.History)
	}
	seen := map[string]bool{}
	for _, p := range order {
		f := files[p]
		if !f.hdr.ModTime.Equal(epoch) || f.hdr.Uname != "" || f.hdr.Gname != "" {
			t.Errorf("%s: mtime %v, owner names %q/%q; want the epoch and none", p, f.hdr.ModTime, f.hdr.Uname, f.hdr.Gname)
		}
		if d := filepath.Dir(p); d != "." && !seen[d] {
			t.Errorf("%s comes before its directory %s", p, d)
		}
		seen[p] = true
	}
	if !slices.IsSortedFunc(order, func(a, b string) int {
		return strings.Compare(strings.ReplaceAll(a, "/", "\x00"), strings.ReplaceAll(b, "/", "\x00"))
	}) {
		t.Errorf("entries not sorted: %v", order)
	}
}

// checkEntry checks one entry's type, mode and owner.
func checkEntry(t *testing.T, files map[string]file, p string, typ byte, mode int64, uid, gid int) {
	t.Helper()
	f, ok := files[p]
	if !ok {
		t.Errorf("%s is missing", p)
		return
	}
	if f.hdr.Typeflag != typ || f.hdr.Mode != mode || f.hdr.Uid != uid || f.hdr.Gid != gid {
		t.Errorf("%s: type %q mode %#o owner %d:%d, want %q %#o %d:%d",
			p, f.hdr.Typeflag, f.hdr.Mode, f.hdr.Uid, f.hdr.Gid, typ, mode, uid, gid)
	}
}

// buildTwice runs mkimage with args (plus -o) twice and checks both tarballs are
// byte-identical; it returns the first one's path.
func buildTwice(t *testing.T, args ...string) string {
	t.Helper()
	dir := t.TempDir()
	var outs [2][]byte
	for i := range outs {
		out := filepath.Join(dir, fmt.Sprintf("image%d.tar", i))
		var stderr bytes.Buffer
		if err := run(t.Context(), append(slices.Clone(args), "-o", out), &stderr); err != nil {
			t.Fatalf("mkimage %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		}
		data, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		outs[i] = data
	}
	if !bytes.Equal(outs[0], outs[1]) {
		t.Fatalf("two builds of mkimage %s differ", strings.Join(args, " "))
	}
	return filepath.Join(dir, "image0.tar")
}

// fakeBinDir makes a directory with the named binaries: copies of the static pause
// binary, each with its name appended so their contents differ.
func fakeBinDir(t *testing.T, names ...string) string {
	t.Helper()
	pause, err := os.ReadFile(pauseBin)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), append(slices.Clone(pause), n...), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestECIImage(t *testing.T) {
	t.Parallel()
	bin := fakeBinDir(t, "eci-node", "eci-controller", "eci-runtime", "runc")
	const tag = "ghcr.io/eci-dev/eci:1.2.3"
	out := buildTwice(t, "eci", "-bin", bin, "-tag", tag, "-revision", "abc123")

	cf, order, files := readBack(t, out, tag)
	checkCommon(t, cf, order, files)
	if !slices.Equal(cf.Config.Entrypoint, []string{"/usr/local/bin/eci-node"}) {
		t.Errorf("entrypoint %q", cf.Config.Entrypoint)
	}
	wantLabels := map[string]string{
		"org.opencontainers.image.title":    "eci",
		"org.opencontainers.image.version":  "1.2.3",
		"org.opencontainers.image.revision": "abc123",
		"org.opencontainers.image.source":   "https://github.com/eci-dev/eci",
	}
	for k, v := range wantLabels {
		if cf.Config.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, cf.Config.Labels[k], v)
		}
	}
	for p, src := range map[string]string{
		"usr/local/bin/eci-node":        "eci-node",
		"usr/local/bin/eci-controller":  "eci-controller",
		"opt/eci-artifacts/eci-runtime": "eci-runtime",
		"opt/eci-artifacts/runc":        "runc",
	} {
		checkEntry(t, files, p, tar.TypeReg, 0o755, 0, 0)
		want, err := os.ReadFile(filepath.Join(bin, src))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(files[p].data, want) {
			t.Errorf("%s differs from %s", p, src)
		}
	}
	checkEntry(t, files, "tmp", tar.TypeDir, 0o1777, 0, 0)
	checkEntry(t, files, "etc/passwd", tar.TypeReg, 0o644, 0, 0)
	checkEntry(t, files, "etc/group", tar.TypeReg, 0o644, 0, 0)
	if !strings.HasPrefix(string(files["etc/passwd"].data), "root:x:0:0:") {
		t.Errorf("etc/passwd = %q", files["etc/passwd"].data)
	}
	for _, p := range []string{"bin/sh", "bin/busybox"} {
		if _, ok := files[p]; ok {
			t.Errorf("%s should not be in the eci image", p)
		}
	}
}

func TestECIImageOptionalAndRequired(t *testing.T) {
	t.Parallel()
	const tag = "ghcr.io/eci-dev/eci:dev"

	t.Run("no eci-node or eci-controller: warnings", func(t *testing.T) {
		t.Parallel()
		bin := fakeBinDir(t, "eci-runtime", "runc")
		out := filepath.Join(t.TempDir(), "eci.tar")
		var stderr bytes.Buffer
		if err := run(t.Context(), []string{"eci", "-bin", bin, "-tag", tag, "-o", out}, &stderr); err != nil {
			t.Fatalf("%v\n%s", err, stderr.String())
		}
		for _, n := range []string{"eci-node", "eci-controller"} {
			if !strings.Contains(stderr.String(), "warning: "+filepath.Join(bin, n)+" is missing") {
				t.Errorf("no warning about %s in:\n%s", n, stderr.String())
			}
		}
		cf, _, files := readBack(t, out, tag)
		if _, ok := files["usr/local/bin/eci-node"]; ok {
			t.Error("usr/local/bin/eci-node in the image though missing")
		}
		checkEntry(t, files, "opt/eci-artifacts/runc", tar.TypeReg, 0o755, 0, 0)
		checkEntry(t, files, "usr/local/bin", tar.TypeDir, 0o755, 0, 0)
		if cf.Config.Labels["org.opencontainers.image.version"] != "dev" {
			t.Errorf("version label %q, want the tag", cf.Config.Labels["org.opencontainers.image.version"])
		}
	})

	for _, missing := range []string{"eci-runtime", "runc"} {
		t.Run("missing "+missing, func(t *testing.T) {
			t.Parallel()
			names := slices.DeleteFunc([]string{"eci-node", "eci-controller", "eci-runtime", "runc"},
				func(n string) bool { return n == missing })
			bin := fakeBinDir(t, names...)
			out := filepath.Join(t.TempDir(), "eci.tar")
			err := run(t.Context(), []string{"eci", "-bin", bin, "-tag", tag, "-o", out}, io.Discard)
			if err == nil || !strings.Contains(err.Error(), filepath.Join(bin, missing)+" is missing") {
				t.Errorf("error %v, want one naming %s", err, missing)
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s was written despite the error", out)
			}
		})
	}

	t.Run("not a static ELF", func(t *testing.T) {
		t.Parallel()
		bin := fakeBinDir(t, "eci-node", "eci-runtime")
		if err := os.WriteFile(filepath.Join(bin, "runc"), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		err := run(t.Context(), []string{"eci", "-bin", bin, "-tag", tag, "-o", filepath.Join(t.TempDir(), "x.tar")}, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "not an ELF executable") {
			t.Errorf("error %v, want not an ELF executable", err)
		}
	})
}

func TestCheckStaticELF(t *testing.T) {
	t.Parallel()
	if err := checkStaticELF(pauseBin); err != nil {
		t.Errorf("pause binary: %v", err)
	}
	// A dynamically linked binary from the host, if there is one.
	for _, p := range []string{"/bin/ls", "/usr/bin/env", "/bin/sh"} {
		if err := checkStaticELF(p); err != nil && strings.Contains(err.Error(), "dynamically linked") {
			return
		}
	}
	t.Log("no dynamically linked host binary to check the refusal with")
}

// busyboxOrSkip returns the host's static busybox. Without one the test is skipped, unless
// the privileged lane runs (make test installs busybox-static first).
func busyboxOrSkip(t *testing.T) string {
	t.Helper()
	const bb = "/bin/busybox"
	if _, err := os.Stat(bb); err != nil {
		if os.Getenv("ECI_TEST_PRIVILEGED") == "1" {
			t.Fatalf("%s is missing though make test installs it (make deps): %v", bb, err)
		}
		t.Skipf("%s is missing (install Debian's busybox-static: make deps)", bb)
	}
	return bb
}

func TestBusyboxImage(t *testing.T) {
	t.Parallel()
	bb := busyboxOrSkip(t)
	const tag = "localhost/eci-test/busybox:1.35"
	out := buildTwice(t, "busybox", "-tag", tag)

	cf, order, files := readBack(t, out, tag)
	checkCommon(t, cf, order, files)
	if !slices.Equal(cf.Config.Cmd, []string{"sh"}) || len(cf.Config.Entrypoint) != 0 {
		t.Errorf("cmd %q entrypoint %q, want cmd [sh]", cf.Config.Cmd, cf.Config.Entrypoint)
	}
	checkEntry(t, files, "bin/busybox", tar.TypeReg, 0o755, 0, 0)
	want, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(files["bin/busybox"].data, want) {
		t.Error("bin/busybox differs from the host's")
	}
	list, err := exec.Command(bb, "--list").Output()
	if err != nil {
		t.Fatal(err)
	}
	applets := 0
	for _, a := range strings.Fields(string(list)) {
		if a == "busybox" {
			continue
		}
		applets++
		checkEntry(t, files, "bin/"+a, tar.TypeSymlink, 0o777, 0, 0)
		if l := files["bin/"+a].hdr.Linkname; l != "busybox" {
			t.Errorf("bin/%s -> %q, want busybox", a, l)
		}
	}
	if applets < 100 || files["bin/sh"].hdr == nil {
		t.Errorf("%d applets (sh included: %v), want a full busybox", applets, files["bin/sh"].hdr != nil)
	}
	checkEntry(t, files, "tmp", tar.TypeDir, 0o1777, 0, 0)
	passwd := string(files["etc/passwd"].data)
	if !strings.Contains(passwd, "root:x:0:0:") || !strings.Contains(passwd, "nobody:x:65534:65534:") {
		t.Errorf("etc/passwd = %q, want root and nobody", passwd)
	}
}

func TestBusyboxImageErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(dir, "bb.tar")
	err := run(t.Context(), []string{"busybox", "-busybox", filepath.Join(dir, "nope"), "-tag", "localhost/x:1", "-o", out}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "busybox-static") {
		t.Errorf("missing busybox: error %v, want a hint at busybox-static", err)
	}
}

func TestPauseImage(t *testing.T) {
	t.Parallel()
	const tag = "localhost/eci-test/pause:1"
	// Without -pause-bin: each build compiles the pause program, so this also checks the
	// Go build is reproducible.
	out := buildTwice(t, "pause", "-tag", tag)

	cf, order, files := readBack(t, out, tag)
	checkCommon(t, cf, order, files)
	if !slices.Equal(cf.Config.Entrypoint, []string{"/pause"}) {
		t.Errorf("entrypoint %q, want [/pause]", cf.Config.Entrypoint)
	}
	if !slices.Equal(order, []string{"pause"}) {
		t.Errorf("entries %v, want only pause", order)
	}
	checkEntry(t, files, "pause", tar.TypeReg, 0o755, 0, 0)
	p := filepath.Join(t.TempDir(), "pause")
	if err := os.WriteFile(p, files["pause"].data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := checkStaticELF(p); err != nil {
		t.Error(err)
	}
}

func TestDirImage(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	for _, f := range []struct {
		p    string
		mode os.FileMode
		data string
	}{
		{"app/run", 0o755 | os.ModeSetuid, "#!/bin/sh\n"},
		{"app/data.txt", 0o600, "data"},
		{"a-b", 0o644, "sorts after a/"},
	} {
		p := filepath.Join(src, f.p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f.data), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"a", "empty"} {
		if err := os.Mkdir(filepath.Join(src, d), 0o750); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("../app/run", filepath.Join(src, "a", "link")); err != nil {
		t.Fatal(err)
	}

	const tag = "localhost/eci-test/app:v1"
	out := buildTwice(t, "dir", "-dir", src, "-tag", tag,
		"-entrypoint", "/app/run", "-entrypoint", "--flag", "-cmd", "x",
		"-env", "A=1", "-label", "k=v", "-workdir", "/app", "-user", "65534")

	cf, order, files := readBack(t, out, tag)
	checkCommon(t, cf, order, files)
	wantOrder := []string{"a", "a/link", "a-b", "app", "app/data.txt", "app/run", "empty"}
	if !slices.Equal(order, wantOrder) {
		t.Errorf("entries %v, want %v", order, wantOrder)
	}
	checkEntry(t, files, "app/run", tar.TypeReg, 0o4755, 0, 0)
	checkEntry(t, files, "app/data.txt", tar.TypeReg, 0o600, 0, 0)
	checkEntry(t, files, "empty", tar.TypeDir, 0o750, 0, 0)
	checkEntry(t, files, "a/link", tar.TypeSymlink, 0o777, 0, 0)
	if l := files["a/link"].hdr.Linkname; l != "../app/run" {
		t.Errorf("a/link -> %q", l)
	}
	if string(files["app/data.txt"].data) != "data" {
		t.Errorf("app/data.txt = %q", files["app/data.txt"].data)
	}
	c := cf.Config
	if !slices.Equal(c.Entrypoint, []string{"/app/run", "--flag"}) || !slices.Equal(c.Cmd, []string{"x"}) ||
		!slices.Equal(c.Env, []string{"A=1"}) || c.Labels["k"] != "v" || c.WorkingDir != "/app" || c.User != "65534" {
		t.Errorf("config %+v", c)
	}
}

func TestDirImageRefusesSpecialFiles(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	if err := exec.Command("mkfifo", filepath.Join(src, "fifo")).Run(); err != nil {
		t.Fatalf("mkfifo: %v", err)
	}
	err := run(t.Context(), []string{"dir", "-dir", src, "-tag", "localhost/x:1", "-o", filepath.Join(t.TempDir(), "x.tar")}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "unsupported file type") {
		t.Errorf("error %v, want unsupported file type", err)
	}
}

func TestTreePaths(t *testing.T) {
	t.Parallel()
	tr := tree{}
	for _, p := range []string{"/a-b", "a/b/c", "/z", "a/b"} {
		if err := tr.file(p, 0o644, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := tr.dir("/", 0o755); err == nil {
		t.Error("the root directory was accepted as an entry")
	}
	want := []string{"a", "a/b", "a/b/c", "a-b", "z"}
	if got := tr.paths(); !slices.Equal(got, want) {
		t.Errorf("paths() = %v, want %v", got, want)
	}
	// a/b is a file with an entry below it.
	if err := tr.writeTar(io.Discard); err == nil || !strings.Contains(err.Error(), "has entries below it") {
		t.Errorf("writeTar: %v, want a file-with-children error", err)
	}
}

func TestRunUsage(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "x.tar")
	for _, tc := range []struct {
		args []string
		want error
	}{
		{nil, errUsage},
		{[]string{"--help"}, flag.ErrHelp},
		{[]string{"pause", "-h"}, flag.ErrHelp},
		{[]string{"frobnicate"}, errUsage},
		{[]string{"pause", "-o", out}, errUsage},
		{[]string{"busybox", "-tag", "localhost/x:1"}, errUsage},
		{[]string{"eci", "-tag", "ghcr.io/eci-dev/eci:1", "-o", out}, errUsage},
		{[]string{"dir", "-tag", "localhost/x:1", "-o", out}, errUsage},
		{[]string{"pause", "-tag", "localhost/x:1", "-o", out, "extra"}, errUsage},
	} {
		var stderr bytes.Buffer
		if err := run(t.Context(), tc.args, &stderr); !errors.Is(err, tc.want) {
			t.Errorf("mkimage %q: %v, want %v", tc.args, err, tc.want)
		}
	}
	var stderr bytes.Buffer
	_ = run(t.Context(), []string{"-h"}, &stderr)
	for _, sub := range []string{"eci -bin", "busybox -tag", "pause -tag", "dir -dir", "ctr -n k8s.io images import"} {
		if !strings.Contains(stderr.String(), sub) {
			t.Errorf("help does not mention %q", sub)
		}
	}
}

func TestTagNeedsExplicitTag(t *testing.T) {
	t.Parallel()
	err := run(t.Context(), []string{"pause", "-pause-bin", pauseBin, "-tag", "localhost/eci-test/pause",
		"-o", filepath.Join(t.TempDir(), "x.tar")}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "tag") {
		t.Errorf("error %v, want a tag error", err)
	}
}
