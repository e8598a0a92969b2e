//go:build linux

// Command demo runs one privileged busybox container under eci-runtime and prints what
// proves it is isolated: its uid map, the host uid its process runs as, the attack probe's
// results, and a refused bind mount of the host's root. It leaves nothing behind.
//
// Usage (as root, after make build): go run ./hack/demo -bin ./bin
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/eci-dev/eci/internal/testbundle"
)

func main() {
	bin := flag.String("bin", "bin", "directory with eci-runtime and runc")
	flag.Parse()
	if err := run(*bin); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func step(format string, args ...any) { fmt.Printf("==> "+format+"\n", args...) }

func run(bin string) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("run as root (containers are created for real)")
	}
	bin, _ = filepath.Abs(bin)
	dir, err := os.MkdirTemp("", "eci-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := testbundle.MakeTraversable(dir); err != nil {
		return err
	}
	cfg := filepath.Join(dir, "eci.json")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, `{"stateDir": %q, "runDir": %q}`, filepath.Join(dir, "state"), filepath.Join(dir, "run")), 0o644); err != nil {
		return err
	}
	rt := testbundle.Runtime{Binary: filepath.Join(bin, "eci-runtime"), Root: filepath.Join(dir, "root"), Env: []string{"ECI_CONFIG=" + cfg}}
	if err := testbundle.BecomeSubreaper(); err != nil {
		return err
	}

	attack := filepath.Join(dir, "attack")
	build := exec.Command("go", "build", "-o", attack, "./test/attack")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("building the attack probe: %v\n%s", err, out)
	}
	var st unix.Stat_t
	if err := unix.Stat("/", &st); err != nil {
		return err
	}
	dev := fmt.Sprintf("%d:%d", unix.Major(st.Dev), unix.Minor(st.Dev))

	step("a privileged busybox container (every capability, every host device) under eci-runtime")
	spec := testbundle.Spec("sh", "-c", "echo \"inside:   id=$(id -u) uid_map: $(cat /proc/self/uid_map)\"; /bin/attack -host-dev "+dev+" all; sleep 2")
	if err := testbundle.Privileged(spec); err != nil {
		return err
	}
	b, err := testbundle.New(filepath.Join(dir, "demo"), spec, map[string]string{"/bin/attack": attack})
	if err != nil {
		return err
	}
	out, err := os.Create(filepath.Join(dir, "out"))
	if err != nil {
		return err
	}
	defer out.Close()
	pid, err := rt.Create("demo", b, out)
	if err != nil {
		return err
	}
	defer rt.Delete("demo")
	if err := rt.Start("demo"); err != nil {
		return err
	}
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, "Uid:") {
			fmt.Printf("host:     container pid %d runs as host uid %s (container root is not host root)\n", pid, strings.Fields(line)[1])
		}
	}
	if _, err := testbundle.Wait(pid, time.Minute); err != nil {
		return err
	}
	f, _ := os.Open(out.Name())
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "{") {
			line = "attack:   " + line
		}
		fmt.Println(line)
	}
	f.Close()

	step("the same container asking for the host's / at /host")
	spec2 := testbundle.Spec("true")
	spec2.Mounts = append(spec2.Mounts, specs.Mount{Destination: "/host", Type: "bind", Source: "/", Options: []string{"rbind"}})
	b2, err := testbundle.New(filepath.Join(dir, "refused"), spec2, nil)
	if err != nil {
		return err
	}
	if _, err := rt.Create("refused", b2, nil); err != nil {
		fmt.Printf("refused:  %v\n", err)
	} else {
		_ = rt.Delete("refused")
		return fmt.Errorf("eci-runtime created a container with the host's / mounted")
	}
	step("done: every attack above is blocked or n/a under eci (run the same under plain runc with make test)")
	return nil
}
