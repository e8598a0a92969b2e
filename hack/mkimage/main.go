// Command mkimage builds container image tarballs without Docker or a registry: the eci
// image, and the busybox and pause images the tests run. Run `mkimage -h` for usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
)

const usage = `mkimage builds container image tarballs without Docker or a registry.

Every image is one layer, deterministic (all timestamps 1970-01-01T00:00:00Z, entries
sorted, owners uid/gid 0) and for linux/%[1]s (mkimage's own GOARCH, recorded in the
config). OUT is a docker-save style tarball carrying the tag, loaded with any of
    ctr -n k8s.io images import OUT.tar
    kind load image-archive OUT.tar --name CLUSTER
    docker load -i OUT.tar

usage: mkimage SUBCOMMAND -tag TAG -o OUT.tar [flags]

  eci -bin DIR -tag ghcr.io/eci-dev/eci:VERSION -o OUT.tar
        The eci image. From DIR (e.g. bin/ after make build):
          eci-node, eci-controller -> /usr/local/bin/  (each optional: warns if missing)
          eci-runtime, runc        -> /opt/eci-artifacts/  (required; eci-node copies
                                      them to the host)
        All must be static ELF binaries, mode 0755 in the image. Entrypoint
        /usr/local/bin/eci-node (the controller's pod overrides the command with
        /usr/local/bin/eci-controller). Labels org.opencontainers.image.{title,
        version,revision,source}. Minimal /etc/passwd and /etc/group, /tmp 1777, no shell.

  busybox -tag localhost/eci-test/busybox:1.35 -o OUT.tar
        A test image: /bin/busybox from Debian's busybox-static (static /bin/busybox on
        this host: make deps installs it), a /bin/APPLET -> busybox symlink for each
        applet of 'busybox --list', /etc/passwd with root and nobody, /tmp 1777. Cmd sh.

  pause -tag localhost/eci-test/pause:1 -o OUT.tar
        The pod sandbox image: hack/mkimage/pause (blocks until SIGTERM or SIGINT, exits
        0, reaps zombies as PID 1) built with CGO_ENABLED=0 by 'go build' from inside
        eci's module, at /pause, entrypoint /pause. containerd's sandbox image must
        name exactly this tag.

  dir -dir D -tag T -o OUT.tar [-entrypoint ARG]... [-cmd ARG]... [-env K=V]...
        An ad-hoc image whose root filesystem is D's content: permission bits and
        symlinks kept, owners reset to 0:0. -entrypoint and -cmd are repeated once per
        argv element: -entrypoint /bin/app -entrypoint --flag.

Run 'mkimage SUBCOMMAND -h' for every flag of a subcommand.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stderr)
	stop()
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "mkimage: %v\n", err)
		os.Exit(1)
	}
}

// errUsage means the command line was wrong; the reason was already printed.
var errUsage = errors.New("usage")

func printUsage(w io.Writer) { fmt.Fprintf(w, usage, runtime.GOARCH) }

// run executes one mkimage command line (without the program name), printing warnings and
// the result to stderr.
func run(ctx context.Context, args []string, stderr io.Writer) error {
	if len(args) == 0 {
		printUsage(stderr)
		return errUsage
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("mkimage "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	tag := fs.String("tag", "", "image reference with an explicit tag (required)")
	out := fs.String("o", "", "output tarball (required; replaced atomically)")

	var build func() (spec, error)
	switch sub {
	case "-h", "-help", "--help", "help":
		printUsage(stderr)
		return flag.ErrHelp
	case "eci":
		o := eciOptions{}
		fs.StringVar(&o.binDir, "bin", "", "directory with eci-node, eci-controller, eci-runtime and runc (required)")
		fs.StringVar(&o.version, "version", "", "org.opencontainers.image.version label (default: the tag)")
		fs.StringVar(&o.revision, "revision", "", "org.opencontainers.image.revision label (default: git rev-parse HEAD, or unknown)")
		fs.StringVar(&o.source, "source", eciSource, "org.opencontainers.image.source label")
		build = func() (spec, error) {
			if o.binDir == "" {
				return spec{}, usageError(fs, "-bin is required")
			}
			o.tag = *tag
			if o.revision == "" {
				o.revision = gitRevision(ctx)
			}
			s, warnings, err := eciSpec(o)
			for _, w := range warnings {
				fmt.Fprintf(stderr, "mkimage: warning: %s\n", w)
			}
			return s, err
		}
	case "busybox":
		bin := fs.String("busybox", "/bin/busybox", "static busybox binary to copy in")
		build = func() (spec, error) { return busyboxSpec(ctx, *bin, *tag) }
	case "pause":
		bin := fs.String("pause-bin", "", "prebuilt static pause binary (default: go build "+pausePackage+")")
		build = func() (spec, error) {
			if *bin != "" {
				return pauseSpec(*bin, *tag)
			}
			tmp, err := os.MkdirTemp("", "mkimage-pause-")
			if err != nil {
				return spec{}, err
			}
			defer os.RemoveAll(tmp)
			p, err := buildPause(ctx, tmp)
			if err != nil {
				return spec{}, err
			}
			s, err := pauseSpec(p, *tag)
			if err != nil {
				return spec{}, err
			}
			// The binary is read when the layer is written, after tmp is gone: keep its
			// bytes instead.
			return s, s.files.inline()
		}
	case "dir":
		o := dirOptions{labels: map[string]string{}}
		fs.StringVar(&o.dir, "dir", "", "directory whose content is the image's root filesystem (required)")
		fs.Var((*listFlag)(&o.entrypoint), "entrypoint", "one entrypoint argv element; repeat for more")
		fs.Var((*listFlag)(&o.cmd), "cmd", "one cmd argv element; repeat for more")
		fs.Var((*listFlag)(&o.env), "env", "K=V environment entry; repeat for more (default: a standard PATH)")
		fs.Var(mapFlag(o.labels), "label", "K=V image label; repeat for more")
		fs.StringVar(&o.workdir, "workdir", "", "working directory")
		fs.StringVar(&o.user, "user", "", "user (uid[:gid] or name) the container runs as")
		build = func() (spec, error) {
			if o.dir == "" {
				return spec{}, usageError(fs, "-dir is required")
			}
			o.tag = *tag
			return dirSpec(o)
		}
	default:
		fmt.Fprintf(stderr, "mkimage: unknown subcommand %q\n\n", sub)
		printUsage(stderr)
		return errUsage
	}

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		return usageError(fs, fmt.Sprintf("unexpected arguments: %s", strings.Join(fs.Args(), " ")))
	}
	if *tag == "" || *out == "" {
		return usageError(fs, "-tag and -o are required")
	}
	s, err := build()
	if err != nil {
		return err
	}
	res, err := writeImage(s, *out)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "mkimage: wrote %s: %s (linux/%s, id %s, %d bytes)\n",
		*out, res.tag, runtime.GOARCH, res.id, res.size)
	return nil
}

func usageError(fs *flag.FlagSet, msg string) error {
	fmt.Fprintf(fs.Output(), "%s: %s\n", fs.Name(), msg)
	fs.Usage()
	return errUsage
}

// gitRevision returns the commit of the current directory's git checkout, or "unknown".
func gitRevision(ctx context.Context) string {
	out, err := exec.CommandContext(ctx, "git", "rev-parse", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

// listFlag collects every occurrence of a flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// mapFlag collects K=V occurrences of a flag.
type mapFlag map[string]string

func (m mapFlag) String() string { return fmt.Sprint(map[string]string(m)) }
func (m mapFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q: want KEY=VALUE", v)
	}
	m[k] = val
	return nil
}
