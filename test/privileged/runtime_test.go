//go:build linux

package privileged

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/eci-dev/eci/internal/testbundle"
)

func runBoth(t *testing.T, e *env, args ...string) (eciOut, runcOut string, eciCode, runcCode int) {
	t.Helper()
	run := func(rt testbundle.Runtime) (string, int) {
		cmd := exec.Command(rt.Binary, append([]string{"--root", e.runc.Root}, args...)...)
		cmd.Env = append(os.Environ(), rt.Env...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		// runc's log lines carry the second they were written: the two runs may straddle one.
		errText := logTime.ReplaceAllString(stderr.String(), `time="<time>"`)
		return stdout.String() + "|stderr|" + errText, cmd.ProcessState.ExitCode()
	}
	eciOut, eciCode = run(e.eci)
	runcOut, runcCode = run(e.runc)
	return
}

// logTime is the timestamp of a logrus text line, as runc writes errors.
var logTime = regexp.MustCompile(`time="[^"]*"`)

// Verbs other than create, run and delete reach runc untouched: same stdout, stderr and
// exit status as runc itself.
func TestOtherVerbsPassThrough(t *testing.T) {
	e := newEnv(t)
	for _, args := range [][]string{
		{"features"},
		{"state", "no-such-container"},
		{"list", "--format", "json"},
		{"kill", "no-such-container", "9"},
		{"ps", "no-such-container"},
		{"spec", "--help"},
	} {
		eciOut, runcOut, eciCode, runcCode := runBoth(t, e, args...)
		if eciOut != runcOut || eciCode != runcCode {
			t.Errorf("%v: eci-runtime gave (%d) %q, runc gave (%d) %q", args, eciCode, eciOut, runcCode, runcOut)
		}
	}
	// And features says what the kubelet needs for hostUsers: false.
	out, err := exec.Command(e.eci.Binary, "features").Output()
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Linux struct {
			Namespaces      []string `json:"namespaces"`
			MountExtensions struct {
				IDMap struct{ Enabled *bool } `json:"idmap"`
			} `json:"mountExtensions"`
			Seccomp struct{ Actions []string } `json:"seccomp"`
		} `json:"linux"`
	}
	if err := json.Unmarshal(out, &f); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(f.Linux.Namespaces, ","), "user") || f.Linux.MountExtensions.IDMap.Enabled == nil || !*f.Linux.MountExtensions.IDMap.Enabled {
		t.Errorf("features lack user namespaces or idmap: %s", out)
	}
}

func TestVersionNamesBoth(t *testing.T) {
	e := newEnv(t)
	out, err := exec.Command(e.eci.Binary, "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"eci-runtime version ", "runc version 1.5.3", "spec: "} {
		if !strings.Contains(string(out), want) {
			t.Errorf("--version output lacks %q:\n%s", want, out)
		}
	}
}

// A create that runc fails leaves nothing changed: config.json byte-identical, no range,
// no record, no mount. The error lands in --log as JSON with a lowercase "level":"error".
func TestFailedCreateRollsBack(t *testing.T) {
	e := newEnv(t)
	id := e.id("fail")
	b := e.bundle(id, testbundle.Spec("/no/such/binary"))
	before, err := os.ReadFile(filepath.Join(b.Dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.eci.Create(id, b, nil); err == nil {
		t.Fatal("runc create of a missing binary succeeded")
	}
	after, _ := os.ReadFile(filepath.Join(b.Dir, "config.json"))
	if !bytes.Equal(before, after) {
		t.Error("config.json differs after a failed create")
	}
	if list := e.entries(); len(list) != 0 {
		t.Errorf("range kept after a failed create: %+v", list)
	}
	if recs, _ := os.ReadDir(filepath.Join(e.dir, "run", "containers")); len(recs) != 0 {
		t.Errorf("records kept after a failed create: %v", recs)
	}
	if left := mountsUnder(t, e.dir); len(left) != 0 {
		t.Errorf("mounts kept after a failed create: %v", left)
	}

	// An eci refusal goes to the --log file as runc's callers expect.
	log := filepath.Join(e.dir, "refused.log")
	spec := testbundle.Spec("true")
	spec.Linux.Namespaces = spec.Linux.Namespaces[1:] // no pid namespace: hostPID
	b2 := e.bundle("refused", spec)
	cmd := exec.Command(e.eci.Binary, "--root", e.eci.Root, "--log", log, "--log-format", "json", "create", "--bundle", b2.Dir, "refused")
	cmd.Env = append(os.Environ(), e.eci.Env...)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	if err := cmd.Run(); err == nil {
		t.Fatal("hostPID create succeeded")
	}
	if stdout.Len() != 0 {
		t.Errorf("eci-runtime wrote to stdout: %q", stdout.String())
	}
	data, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	var line struct{ Level, Msg string }
	if err := json.Unmarshal(bytes.TrimSpace(data), &line); err != nil || line.Level != "error" || !strings.Contains(line.Msg, "hostPID") {
		t.Errorf("log line %q: level %q msg %q err %v", data, line.Level, line.Msg, err)
	}
}

// A bad settings file stops creation with an error naming the file; nothing runs.
func TestBadSettingsFailClosed(t *testing.T) {
	e := newEnv(t)
	cfg := filepath.Join(e.dir, "bad.json")
	if err := os.WriteFile(cfg, []byte(`{"idsPerPod": 1234}`), 0o644); err != nil {
		t.Fatal(err)
	}
	rt := e.eci
	rt.Env = []string{"ECI_CONFIG=" + cfg}
	id := e.id("badcfg")
	_, err := rt.Create(id, e.bundle(id, testbundle.Spec("true")), nil)
	if err == nil || !strings.Contains(err.Error(), cfg) || !strings.Contains(err.Error(), "idsPerPod 1234") {
		t.Fatalf("err = %v", err)
	}
	if _, statErr := os.Stat(filepath.Join(rt.Root, id)); statErr == nil {
		t.Error("runc created the container anyway")
	}
}

// containerd makes each bundle directory 0700; eci lets only the container's root group
// search it, and a failed create puts the mode and group back.
func TestPrivateBundleDir(t *testing.T) {
	e := newEnv(t)
	id := e.id("private")
	b := e.bundle(id, testbundle.Spec("true"))
	if err := os.Chmod(b.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := e.outputOf(e.eci, id, b); err != nil {
		t.Fatalf("a 0700 bundle dir: %v", err)
	}
	var st unix.Stat_t
	if err := unix.Stat(b.Dir, &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&0o777 != 0o710 || st.Gid < 1<<31 {
		t.Errorf("bundle dir mode %o gid %d: want 0710 and the container's root group", st.Mode&0o777, st.Gid)
	}

	failing := e.bundle(e.id("private-fail"), testbundle.Spec("/no/such/binary"))
	if err := os.Chmod(failing.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := e.eci.Create(filepath.Base(failing.Dir), failing, nil); err == nil {
		t.Fatal("create of a missing binary succeeded")
	}
	if err := unix.Stat(failing.Dir, &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&0o777 != 0o700 || st.Gid != 0 {
		t.Errorf("after a failed create the bundle dir is mode %o gid %d, want 0700 and 0", st.Mode&0o777, st.Gid)
	}
}
