// Package dirimage builds a one-layer container image from a directory and
// writes it as a tarball that containerd's `ctr images import` accepts.
package dirimage

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Epoch is the timestamp of every file and of the image itself, so that an
// unchanged directory always gives the same digest.
var Epoch = time.Unix(0, 0).UTC()

// Options describes the image to build.
type Options struct {
	Dir        string   // root filesystem
	Tag        string   // image name, e.g. localhost/eci-test/pause:1
	Entrypoint []string // config Entrypoint
	Cmd        []string // config Cmd
	Env        []string // config Env (KEY=VALUE)
	WorkingDir string   // config WorkingDir
	Arch       string   // defaults to runtime.GOARCH
}

// Build returns the image: one uncompressed-tar-derived layer holding Dir,
// owned by 0:0, on an empty base, for linux/Arch.
func Build(opts Options) (v1.Image, error) {
	layerTar, err := TarDir(opts.Dir)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		return nil, fmt.Errorf("layer from %s: %w", opts.Dir, err)
	}
	arch := opts.Arch
	if arch == "" {
		arch = runtime.GOARCH
	}
	env := opts.Env
	if len(env) == 0 {
		env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	}
	cfg := &v1.ConfigFile{
		Architecture: arch,
		OS:           "linux",
		Created:      v1.Time{Time: Epoch},
		RootFS:       v1.RootFS{Type: "layers"},
		Config: v1.Config{
			Entrypoint: opts.Entrypoint,
			Cmd:        opts.Cmd,
			Env:        env,
			WorkingDir: opts.WorkingDir,
		},
	}
	img, err := mutate.ConfigFile(empty.Image, cfg)
	if err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	img, err = mutate.Append(img, mutate.Addendum{
		Layer:   layer,
		History: v1.History{Created: v1.Time{Time: Epoch}, CreatedBy: "dir2image " + filepath.Base(opts.Dir)},
	})
	if err != nil {
		return nil, fmt.Errorf("append layer: %w", err)
	}
	return img, nil
}

// WriteTarball builds the image and writes it to out (docker save format,
// tagged opts.Tag), replacing out atomically. It returns the image digest.
func WriteTarball(ctx context.Context, opts Options, out string) (v1.Hash, error) {
	ref, err := name.NewTag(opts.Tag)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("tag %q: %w", opts.Tag, err)
	}
	img, err := Build(opts)
	if err != nil {
		return v1.Hash{}, err
	}
	digest, err := img.Digest()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("digest of %s: %w", opts.Tag, err)
	}
	if err := ctx.Err(); err != nil {
		return v1.Hash{}, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".*")
	if err != nil {
		return v1.Hash{}, fmt.Errorf("write %s: %w", out, err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if err := tarball.Write(ref, img, tmp); err != nil {
		tmp.Close()
		return v1.Hash{}, fmt.Errorf("write %s: %w", out, err)
	}
	if err := tmp.Close(); err != nil {
		return v1.Hash{}, fmt.Errorf("write %s: %w", out, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return v1.Hash{}, fmt.Errorf("write %s: %w", out, err)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return v1.Hash{}, fmt.Errorf("write %s: %w", out, err)
	}
	return digest, nil
}

// TarDir returns an uncompressed tar of dir's contents (dir itself is the
// archive root): directories, regular files and symlinks, in lexical order,
// owned by 0:0 and dated Epoch. Hard links are stored as separate files; any
// other file type is an error.
func TarDir(dir string) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		hdr := &tar.Header{
			Name:    filepath.ToSlash(rel),
			Mode:    int64(info.Mode().Perm()),
			ModTime: Epoch,
			Format:  tar.FormatPAX,
		}
		if info.Mode()&fs.ModeSetuid != 0 {
			hdr.Mode |= 0o4000
		}
		if info.Mode()&fs.ModeSetgid != 0 {
			hdr.Mode |= 0o2000
		}
		if info.Mode()&fs.ModeSticky != 0 {
			hdr.Mode |= 0o1000
		}
		switch {
		case info.Mode().IsDir():
			hdr.Typeflag = tar.TypeDir
			hdr.Name += "/"
		case info.Mode().IsRegular():
			hdr.Typeflag = tar.TypeReg
			hdr.Size = info.Size()
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			hdr.Typeflag = tar.TypeSymlink
			hdr.Linkname = target
		default:
			return fmt.Errorf("%s: unsupported file type %s", path, info.Mode().Type())
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if hdr.Typeflag != tar.TypeReg {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := io.CopyN(tw, f, hdr.Size); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("tar %s: %w", dir, err)
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("tar %s: %w", dir, err)
	}
	return buf.Bytes(), nil
}
