// Command dir2image writes a directory as a one-layer container image tarball
// (docker save format) that `ctr -n k8s.io images import` loads, so the local
// cluster harness needs no registry:
//
//	dir2image -dir D -tag localhost/eci-test/busybox:1.35 -o busybox.tar [-entrypoint /bin/sh] [-cmd sh] [-env K=V]
//
// Every file is owned by 0:0 with a fixed timestamp, so the same directory
// always gives the same image digest.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/eci-dev/eci/test/local/tools/internal/dirimage"
)

// listFlag collects a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	var opts dirimage.Options
	var entrypoint, cmd, env listFlag
	flag.StringVar(&opts.Dir, "dir", "", "directory that becomes the image's root filesystem (required)")
	flag.StringVar(&opts.Tag, "tag", "", "image name, e.g. localhost/eci-test/pause:1 (required)")
	out := flag.String("o", "", "output tarball (required)")
	flag.Var(&entrypoint, "entrypoint", "entrypoint argument (repeat for each)")
	flag.Var(&cmd, "cmd", "cmd argument (repeat for each)")
	flag.Var(&env, "env", "KEY=VALUE environment variable (repeat for each)")
	flag.StringVar(&opts.WorkingDir, "workdir", "", "working directory")
	flag.StringVar(&opts.Arch, "arch", "", "image architecture (default: this machine's)")
	flag.Parse()
	opts.Entrypoint, opts.Cmd, opts.Env = entrypoint, cmd, env
	if opts.Dir == "" || opts.Tag == "" || *out == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: dir2image -dir D -tag NAME -o out.tar [-entrypoint ARG]... [-cmd ARG]... [-env K=V]...")
		os.Exit(2)
	}
	digest, err := dirimage.WriteTarball(context.Background(), opts, *out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "dir2image:", err)
		os.Exit(1)
	}
	fmt.Printf("%s %s %s\n", *out, opts.Tag, digest)
}
