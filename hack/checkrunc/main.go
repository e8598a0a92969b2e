// Command checkrunc verifies that a runc binary has what eci needs: seccomp
// with user notification, user namespaces, idmapped mounts and, with -static,
// no dynamic loader. It prints every missing feature and exits 1.
//
//	checkrunc [-static] [-version 1.5.3] path/to/runc
package main

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go/features"
)

func main() {
	static := flag.Bool("static", false, "also require a statically linked binary (no PT_INTERP, no DT_NEEDED)")
	version := flag.String("version", "", "also require `runc --version` to report this version (e.g. 1.5.3)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: checkrunc [-static] [-version V] path/to/runc\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := run(ctx, flag.Arg(0), *static, *version); err != nil {
		fmt.Fprintf(os.Stderr, "checkrunc: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, runc string, static bool, version string) error {
	var missing []string
	if static {
		m, err := checkStatic(runc)
		if err != nil {
			m = []string{err.Error()}
		}
		missing = append(missing, m...)
	}
	if version != "" {
		out, err := exec.CommandContext(ctx, runc, "--version").Output()
		if err != nil {
			missing = append(missing, fmt.Sprintf("version: %s --version: %v", runc, err))
		} else {
			missing = append(missing, checkVersion(out, version)...)
		}
	}
	out, err := exec.CommandContext(ctx, runc, "features").Output()
	var f features.Features
	if err == nil {
		err = json.Unmarshal(out, &f)
	}
	if err != nil {
		missing = append(missing, fmt.Sprintf("features: %s features: %v", runc, err))
	} else {
		missing = append(missing, Check(&f)...)
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s is unusable for eci, missing:\n  - %s", runc, strings.Join(missing, "\n  - "))
	}
	fmt.Printf("checkrunc: %s ok\n", runc)
	return nil
}

// Check returns what eci needs and f lacks, one line each; nil means usable.
func Check(f *features.Features) []string {
	var missing []string
	l := f.Linux
	if l == nil {
		l = &features.Linux{}
	}
	if l.Seccomp == nil || !isTrue(l.Seccomp.Enabled) {
		missing = append(missing, "linux.seccomp.enabled is not true (runc built without -tags seccomp or without libseccomp)")
	}
	if l.Seccomp == nil || !slices.Contains(l.Seccomp.Actions, "SCMP_ACT_NOTIFY") {
		missing = append(missing, `linux.seccomp.actions lacks "SCMP_ACT_NOTIFY"`)
	}
	if !slices.Contains(l.Namespaces, "user") {
		missing = append(missing, `linux.namespaces lacks "user"`)
	}
	if l.MountExtensions == nil || l.MountExtensions.IDMap == nil || !isTrue(l.MountExtensions.IDMap.Enabled) {
		missing = append(missing, "linux.mountExtensions.idmap.enabled is not true")
	}
	return missing
}

func isTrue(b *bool) bool { return b != nil && *b }

// checkVersion checks that the first line of `runc --version` is
// "runc version <want>".
func checkVersion(out []byte, want string) []string {
	first, _, _ := bytes.Cut(out, []byte("\n"))
	if got := strings.TrimSpace(string(first)); got != "runc version "+want {
		return []string{fmt.Sprintf("version: runc --version says %q, want %q", got, "runc version "+want)}
	}
	return nil
}

// checkStatic reports why the ELF file at path is not statically linked.
func checkStatic(path string) ([]string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("static: not a readable ELF file: %w", err)
	}
	defer f.Close()
	var missing []string
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			missing = append(missing, "static: binary has a PT_INTERP program header (dynamically linked)")
			break
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
		return nil, fmt.Errorf("static: %s: %w", path, err)
	}
	if len(libs) > 0 {
		missing = append(missing, fmt.Sprintf("static: binary needs shared libraries %s", strings.Join(libs, ", ")))
	}
	return missing, nil
}
