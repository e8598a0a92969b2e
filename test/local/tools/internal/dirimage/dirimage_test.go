package dirimage

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// tree writes a small root filesystem: a file, an executable, a symlink.
func tree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bin", "busybox"), []byte("#!fake"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "etc-passwd"), []byte("root:x:0:0::/:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("busybox", filepath.Join(dir, "bin", "sh")); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestTarDir(t *testing.T) {
	t.Parallel()
	data, err := TarDir(tree(t))
	if err != nil {
		t.Fatal(err)
	}
	type entry struct {
		name     string
		typ      byte
		mode     int64
		linkname string
	}
	want := []entry{
		{"bin/", tar.TypeDir, 0o755, ""},
		{"bin/busybox", tar.TypeReg, 0o755, ""},
		{"bin/sh", tar.TypeSymlink, 0o777, "busybox"},
		{"etc-passwd", tar.TypeReg, 0o644, ""},
	}
	tr := tar.NewReader(bytes.NewReader(data))
	var got []entry
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Uid != 0 || hdr.Gid != 0 || !hdr.ModTime.Equal(Epoch) {
			t.Errorf("%s: uid %d gid %d mtime %v, want 0 0 %v", hdr.Name, hdr.Uid, hdr.Gid, hdr.ModTime, Epoch)
		}
		got = append(got, entry{hdr.Name, hdr.Typeflag, hdr.Mode, hdr.Linkname})
	}
	if len(got) != len(want) {
		t.Fatalf("entries = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestWriteTarballIsReproducibleAndLoadable(t *testing.T) {
	t.Parallel()
	dir := tree(t)
	opts := Options{Dir: dir, Tag: "localhost/eci-test/busybox:1.35", Cmd: []string{"sh"}, Arch: "amd64"}
	out := t.TempDir()
	d1, err := WriteTarball(context.Background(), opts, filepath.Join(out, "a.tar"))
	if err != nil {
		t.Fatal(err)
	}
	d2, err := WriteTarball(context.Background(), opts, filepath.Join(out, "b.tar"))
	if err != nil {
		t.Fatal(err)
	}
	if d1 != d2 {
		t.Errorf("digests differ for the same directory: %s, %s", d1, d2)
	}
	img, err := tarball.ImageFromPath(filepath.Join(out, "a.tar"), nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.OS != "linux" || cfg.Architecture != "amd64" || len(cfg.Config.Cmd) != 1 || cfg.Config.Cmd[0] != "sh" {
		t.Errorf("config = %s/%s cmd %v, want linux/amd64 cmd [sh]", cfg.OS, cfg.Architecture, cfg.Config.Cmd)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers = %d (%v), want 1", len(layers), err)
	}
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(filepath.Join(out, "a.tar")) })
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 1 || len(m[0].RepoTags) != 1 || m[0].RepoTags[0] != "localhost/eci-test/busybox:1.35" {
		t.Errorf("manifest = %+v, want one image tagged localhost/eci-test/busybox:1.35", m)
	}
}

func TestTarDirRejectsSpecialFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := mkfifo(filepath.Join(dir, "fifo")); err != nil {
		t.Skip("mkfifo:", err)
	}
	if _, err := TarDir(dir); err == nil {
		t.Error("TarDir accepted a FIFO")
	}
}
