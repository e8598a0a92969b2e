package main

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Paths inside the eci image. eci-node copies the artifacts to the host (DESIGN.md §7).
const (
	eciBinDir      = "/usr/local/bin"
	eciArtifactDir = "/opt/eci-artifacts"
	eciEntrypoint  = eciBinDir + "/eci-node"
	eciSource      = "https://github.com/eci-dev/eci"

	pauseImagePath = "/pause"
	pausePackage   = "github.com/eci-dev/eci/hack/mkimage/pause"
)

// Minimal account databases. nobody/nogroup use Debian's ids.
const (
	passwdRootNobody = "root:x:0:0:root:/root:/sbin/nologin\n" +
		"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
	groupRootNogroup = "root:x:0:\nnogroup:x:65534:\n"
)

// eciOptions are the inputs of the eci image.
type eciOptions struct {
	binDir   string // holds eci-node, eci-controller, eci-runtime, runc
	tag      string
	version  string // org.opencontainers.image.version
	revision string // org.opencontainers.image.revision
	source   string // org.opencontainers.image.source
}

// eciSpec lays out the eci image. eci-runtime and runc must exist in binDir; eci-node and
// eci-controller are included when present (each missing one is a warning). Every binary
// must be a static ELF for GOARCH: the image has no libc, and the artifacts run on hosts.
func eciSpec(o eciOptions) (s spec, warnings []string, err error) {
	files := tree{}
	add := func(name, dir string, required bool) error {
		src := filepath.Join(o.binDir, name)
		if _, err := os.Stat(src); errors.Is(err, fs.ErrNotExist) {
			if required {
				return fmt.Errorf("%s is missing (build it first: make build)", src)
			}
			warnings = append(warnings, fmt.Sprintf("%s is missing: the image has no %s/%s", src, dir, name))
			return nil
		}
		if err := checkStaticELF(src); err != nil {
			return err
		}
		return files.copyFile(dir+"/"+name, 0o755, src)
	}
	for _, b := range []struct {
		name, dir string
		required  bool
	}{
		{"eci-node", eciBinDir, false},
		{"eci-controller", eciBinDir, false},
		{"eci-runtime", eciArtifactDir, true},
		{"runc", eciArtifactDir, true},
	} {
		if err := add(b.name, b.dir, b.required); err != nil {
			return s, nil, err
		}
	}
	for _, d := range []string{eciBinDir, eciArtifactDir, "/etc"} {
		if err := files.dir(d, 0o755); err != nil {
			return s, nil, err
		}
	}
	if err := addBase(files); err != nil {
		return s, nil, err
	}
	version := o.version
	if version == "" {
		version = tagOf(o.tag)
	}
	source := o.source
	if source == "" {
		source = eciSource
	}
	return spec{
		tag:   o.tag,
		files: files,
		config: v1.Config{
			Entrypoint: []string{eciEntrypoint},
			Labels: map[string]string{
				"org.opencontainers.image.title":    "eci",
				"org.opencontainers.image.version":  version,
				"org.opencontainers.image.revision": o.revision,
				"org.opencontainers.image.source":   source,
			},
		},
		createdBy: "mkimage eci",
	}, warnings, nil
}

// addBase adds /etc/passwd, /etc/group and a 1777 /tmp.
func addBase(files tree) error {
	for _, err := range []error{
		files.file("/etc/passwd", 0o644, []byte(passwdRootNobody)),
		files.file("/etc/group", 0o644, []byte(groupRootNogroup)),
		files.dir("/tmp", 0o1777),
	} {
		if err != nil {
			return err
		}
	}
	return nil
}

// tagOf returns the tag part of an image reference ("1.2.3" of "ghcr.io/x/eci:1.2.3").
func tagOf(ref string) string {
	i := strings.LastIndex(ref, ":")
	if i < 0 || strings.Contains(ref[i:], "/") {
		return ""
	}
	return ref[i+1:]
}

// busyboxSpec lays out a busybox image from the static busybox at bin: /bin/busybox, a
// symlink /bin/APPLET -> busybox for every applet it lists, root and nobody, /tmp 1777.
func busyboxSpec(ctx context.Context, bin, tag string) (spec, error) {
	if _, err := os.Stat(bin); err != nil {
		return spec{}, fmt.Errorf("%s is missing: install Debian's busybox-static (make deps): %w", bin, err)
	}
	if err := checkStaticELF(bin); err != nil {
		return spec{}, fmt.Errorf("%w (Debian's busybox-static provides a static /bin/busybox: make deps)", err)
	}
	out, err := exec.CommandContext(ctx, bin, "--list").Output()
	if err != nil {
		return spec{}, fmt.Errorf("%s --list: %w", bin, err)
	}
	applets := strings.Fields(string(out))
	if len(applets) == 0 {
		return spec{}, fmt.Errorf("%s --list printed no applets", bin)
	}
	files := tree{}
	if err := files.copyFile("/bin/busybox", 0o755, bin); err != nil {
		return spec{}, err
	}
	for _, a := range applets {
		if a == "busybox" {
			continue
		}
		if strings.Contains(a, "/") {
			return spec{}, fmt.Errorf("%s --list: unexpected applet name %q", bin, a)
		}
		if err := files.symlink("/bin/"+a, "busybox"); err != nil {
			return spec{}, err
		}
	}
	if err := files.file("/etc/passwd", 0o644, []byte(
		"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")); err != nil {
		return spec{}, err
	}
	if err := files.file("/etc/group", 0o644, []byte(groupRootNogroup)); err != nil {
		return spec{}, err
	}
	if err := files.dir("/tmp", 0o1777); err != nil {
		return spec{}, err
	}
	if err := files.dir("/root", 0o700); err != nil {
		return spec{}, err
	}
	return spec{
		tag:       tag,
		files:     files,
		config:    v1.Config{Cmd: []string{"sh"}},
		createdBy: "mkimage busybox",
	}, nil
}

// pauseSpec lays out the sandbox image: the static binary bin at /pause, entrypoint /pause.
func pauseSpec(bin, tag string) (spec, error) {
	if err := checkStaticELF(bin); err != nil {
		return spec{}, err
	}
	files := tree{}
	if err := files.copyFile(pauseImagePath, 0o755, bin); err != nil {
		return spec{}, err
	}
	return spec{
		tag:       tag,
		files:     files,
		config:    v1.Config{Entrypoint: []string{pauseImagePath}},
		createdBy: "mkimage pause",
	}, nil
}

// buildPause compiles hack/mkimage/pause statically for linux/GOARCH into dir and returns
// the binary's path. It runs the go command found in PATH, from the current directory,
// which must be inside eci's module.
func buildPause(ctx context.Context, dir string) (string, error) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("building the pause binary needs the go command: %w (or pass -pause-bin)", err)
	}
	out := filepath.Join(dir, "pause")
	cmd := exec.CommandContext(ctx, gobin, "build", "-trimpath", "-buildvcs=false",
		"-ldflags=-s -w", "-o", out, pausePackage)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build %s (run mkimage from inside eci's module): %w\n%s",
			pausePackage, err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// dirOptions are the inputs of an ad-hoc image made from a host directory.
type dirOptions struct {
	dir, tag   string
	entrypoint []string
	cmd        []string
	env        []string
	labels     map[string]string
	workdir    string
	user       string
}

// dirSpec lays out an image whose root filesystem is the content of o.dir.
func dirSpec(o dirOptions) (spec, error) {
	fi, err := os.Stat(o.dir)
	if err != nil {
		return spec{}, err
	}
	if !fi.IsDir() {
		return spec{}, fmt.Errorf("%s: not a directory", o.dir)
	}
	files := tree{}
	if err := files.addDir(o.dir, "/"); err != nil {
		return spec{}, err
	}
	if len(files) == 0 {
		return spec{}, fmt.Errorf("%s is empty", o.dir)
	}
	return spec{
		tag:   o.tag,
		files: files,
		config: v1.Config{
			Entrypoint: o.entrypoint,
			Cmd:        o.cmd,
			Env:        o.env,
			Labels:     o.labels,
			WorkingDir: o.workdir,
			User:       o.user,
		},
		createdBy: "mkimage dir",
	}, nil
}

// checkStaticELF fails unless path is an ELF executable for GOARCH without a program
// interpreter (i.e. it runs in an image without libc and on any Linux host).
func checkStaticELF(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("%s: not an ELF executable: %w", path, err)
	}
	defer f.Close()
	if want, ok := elfMachines[runtime.GOARCH]; ok && f.Machine != want {
		return fmt.Errorf("%s: built for %s, the image is for %s", path, f.Machine, runtime.GOARCH)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s: dynamically linked (has a program interpreter); a static binary is needed", path)
		}
	}
	return nil
}

var elfMachines = map[string]elf.Machine{
	"amd64":   elf.EM_X86_64,
	"arm64":   elf.EM_AARCH64,
	"386":     elf.EM_386,
	"arm":     elf.EM_ARM,
	"ppc64le": elf.EM_PPC64,
	"s390x":   elf.EM_S390,
	"riscv64": elf.EM_RISCV,
}
