package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// defaultPath is the PATH of every image unless -env overrides it.
const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// spec is everything one image is made of: a single layer and a config.
type spec struct {
	tag       string
	files     tree
	config    v1.Config // Entrypoint, Cmd, Env, Labels, WorkingDir, User
	createdBy string    // history entry of the layer, e.g. "mkimage busybox"
}

// result describes a written image.
type result struct {
	tag    name.Tag
	id     v1.Hash // config digest: what `docker images`/`crictl images` show as the image id
	digest v1.Hash // manifest digest as written in the tarball
	size   int64   // bytes of the tarball
}

// writeImage builds s and writes it to out as a docker-save style tarball carrying s.tag,
// which `ctr -n k8s.io images import`, `kind load image-archive` and `docker load` read.
// out is replaced atomically.
func writeImage(s spec, out string) (result, error) {
	var res result
	tag, err := name.NewTag(s.tag, name.StrictValidation)
	if err != nil {
		return res, fmt.Errorf("tag %q: %w (want e.g. localhost/eci-test/busybox:1.35)", s.tag, err)
	}
	res.tag = tag

	dir := filepath.Dir(out)
	layerFile, err := os.CreateTemp(dir, ".mkimage-layer-*.tar")
	if err != nil {
		return res, fmt.Errorf("temporary layer next to %s: %w", out, err)
	}
	defer os.Remove(layerFile.Name())
	bw := bufio.NewWriterSize(layerFile, 1<<20)
	err = s.files.writeTar(bw)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := layerFile.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return res, fmt.Errorf("layer of %s: %w", s.tag, err)
	}

	img, err := buildImage(layerFile.Name(), s)
	if err != nil {
		return res, fmt.Errorf("image %s: %w", s.tag, err)
	}
	if res.id, err = img.ConfigName(); err != nil {
		return res, err
	}
	if res.digest, err = img.Digest(); err != nil {
		return res, err
	}

	tmp := out + ".tmp"
	if err := tarball.WriteToFile(tmp, tag, img); err != nil {
		os.Remove(tmp)
		return res, fmt.Errorf("write %s: %w", tmp, err)
	}
	fi, err := os.Stat(tmp)
	if err != nil {
		return res, err
	}
	res.size = fi.Size()
	if err := os.Rename(tmp, out); err != nil {
		os.Remove(tmp)
		return res, err
	}
	return res, nil
}

// buildImage makes a one-layer linux/GOARCH image from the uncompressed layer tar at
// layerPath. Every timestamp is the epoch.
func buildImage(layerPath string, s spec) (v1.Image, error) {
	layer, err := tarball.LayerFromFile(layerPath)
	if err != nil {
		return nil, err
	}
	cfg := s.config
	if len(cfg.Env) == 0 {
		cfg.Env = []string{defaultPath}
	}
	cf := &v1.ConfigFile{
		Architecture: runtime.GOARCH,
		OS:           "linux",
		Created:      v1.Time{Time: epoch},
		Config:       cfg,
		RootFS:       v1.RootFS{Type: "layers"},
	}
	img, err := mutate.ConfigFile(empty.Image, cf)
	if err != nil {
		return nil, err
	}
	return mutate.Append(img, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Created:   v1.Time{Time: epoch},
			CreatedBy: s.createdBy,
		},
	})
}
