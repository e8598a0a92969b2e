package install

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/eci-dev/eci/nodeagent/criconfig"
	"github.com/eci-dev/eci/nodeagent/kube"
)

// fakeCRI serves handlers from what the config file on the host says, the way a restarted
// containerd would.
type fakeCRI struct {
	root, config string
	restarted    int
	failVersion  bool
}

func (c *fakeCRI) Version(context.Context) (string, string, error) {
	if c.failVersion {
		return "", "", errors.New("connection refused")
	}
	return "containerd", "v2.4.2", nil
}

func (c *fakeCRI) Handlers(context.Context) (map[string]bool, error) {
	data, err := os.ReadFile(filepath.Join(c.root, c.config))
	if err != nil {
		return nil, err
	}
	h := map[string]bool{"runc": true}
	if ok, _ := criconfig.Registered(data, 0, criconfig.DefaultHandler()); ok && c.restarted > 0 {
		h["eci"] = true
	}
	return h, nil
}

type fakeRestarter struct {
	cri *fakeCRI
	err error
}

func (r fakeRestarter) Restart(context.Context) error {
	if r.err != nil {
		return r.err
	}
	r.cri.restarted++
	return nil
}
func (fakeRestarter) String() string { return "fake" }

// fakeNode reports the handlers the CRI serves, as the kubelet does.
type fakeNode struct {
	cri    *fakeCRI
	labels map[string]string
}

func (n *fakeNode) SetLabel(_ context.Context, k, v string) error {
	if v == "" {
		delete(n.labels, k)
	} else {
		n.labels[k] = v
	}
	return nil
}

func (n *fakeNode) Get(ctx context.Context) (*corev1.Node, error) {
	node := &corev1.Node{}
	hs, _ := n.cri.Handlers(ctx)
	for h := range hs {
		node.Status.RuntimeHandlers = append(node.Status.RuntimeHandlers, corev1.NodeRuntimeHandler{Name: h})
	}
	return node, nil
}

const original = `version = 3

[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
    SystemdCgroup = false
`

func setup(t *testing.T) (*Installer, *fakeCRI, *fakeNode, string) {
	t.Helper()
	root := t.TempDir()
	files := map[string]string{
		"proc/sys/kernel/osrelease":         "6.18.0\n",
		"proc/sys/user/max_user_namespaces": "1000\n",
		"etc/containerd/config.toml":        original,
	}
	for p, body := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A real unix socket where containerd's would be.
	sock := filepath.Join(root, "run/containerd/containerd.sock")
	if err := os.MkdirAll(filepath.Dir(sock), 0o755); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	artifacts := t.TempDir()
	for _, b := range Binaries {
		if err := os.WriteFile(filepath.Join(artifacts, b), []byte("#!binary "+b), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cri := &fakeCRI{root: root, config: "/etc/containerd/config.toml"}
	node := &fakeNode{cri: cri, labels: map[string]string{}}
	h := criconfig.DefaultHandler()
	inst := &Installer{
		Opts: Options{HostRoot: root, Artifacts: artifacts, InstallDir: "/opt/eci/bin", RuncRoot: "/run/containerd/runc-eci",
			CRI: "auto", Handler: "eci", HandlerTimeout: 2 * time.Second, PollInterval: 10 * time.Millisecond},
		CRIFor: func(string) CRI { return cri },
		Config: func(name string) (CRIConfig, error) {
			return FileConfig{HostRoot: root, CRI: name, ContainerdConfig: "/etc/containerd/config.toml", Handler: h}, nil
		},
		Restarter: fakeRestarter{cri: cri},
		Node:      node,
		Log:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	return inst, cri, node, root
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestInstallUninstallRoundTrip(t *testing.T) {
	inst, cri, node, root := setup(t)
	ctx := context.Background()
	if err := inst.Install(ctx); err != nil {
		t.Fatal(err)
	}
	if node.labels[kube.LabelRuntime] != "ready" {
		t.Fatalf("label = %q, want ready", node.labels[kube.LabelRuntime])
	}
	for _, b := range Binaries {
		if got := readFile(t, filepath.Join(root, "opt/eci/bin", b)); got != "#!binary "+b {
			t.Errorf("%s installed as %q", b, got)
		}
	}
	conf := readFile(t, filepath.Join(root, "etc/containerd/config.toml"))
	if !strings.Contains(conf, "/opt/eci/bin/eci-runtime") || cri.restarted != 1 {
		t.Fatalf("config not registered or CRI not restarted (%d):\n%s", cri.restarted, conf)
	}
	// A second install changes nothing and does not restart the CRI.
	if err := inst.Install(ctx); err != nil || cri.restarted != 1 {
		t.Fatalf("reinstall: %v, restarts %d", err, cri.restarted)
	}
	if err := inst.Uninstall(ctx); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(root, "etc/containerd/config.toml")); got != original {
		t.Errorf("uninstall left the config different:\n%s", got)
	}
	if _, ok := node.labels[kube.LabelRuntime]; ok {
		t.Error("label left after uninstall")
	}
	if _, err := os.Stat(filepath.Join(root, "opt/eci/bin/eci-runtime")); !os.IsNotExist(err) {
		t.Errorf("binary left after uninstall: %v", err)
	}
}

// A failed step undoes the earlier ones: the node is left as it was.
func TestFailedInstallLeavesNodeAsItWas(t *testing.T) {
	inst, cri, node, root := setup(t)
	inst.Restarter = fakeRestarter{cri: cri, err: errors.New("unit containerd.service not found")}
	err := inst.Install(context.Background())
	var step *StepError
	if !errors.As(err, &step) || !strings.Contains(step.Step, "restart the CRI") || !strings.Contains(err.Error(), "unit containerd.service not found") {
		t.Fatalf("err = %v, want a StepError naming the restart", err)
	}
	if got := readFile(t, filepath.Join(root, "etc/containerd/config.toml")); got != original {
		t.Errorf("config not restored:\n%s", got)
	}
	if _, err := os.Stat(filepath.Join(root, "opt/eci/bin/runc")); !os.IsNotExist(err) {
		t.Errorf("binaries left: %v", err)
	}
	if len(node.labels) != 0 {
		t.Errorf("labels left: %v", node.labels)
	}
}

// With no CRI answering, install stops before touching anything.
func TestInstallWithoutCRI(t *testing.T) {
	inst, cri, node, root := setup(t)
	cri.failVersion = true
	if err := inst.Install(context.Background()); err == nil || !strings.Contains(err.Error(), "ask the CRI its version") {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "opt/eci")); !os.IsNotExist(err) {
		t.Error("install dir created without a CRI")
	}
	if len(node.labels) != 0 {
		t.Errorf("labels set: %v", node.labels)
	}
}

// A handler that never shows up in Node status times out and is undone.
func TestHandlerNeverReported(t *testing.T) {
	inst, cri, _, root := setup(t)
	inst.Restarter = fakeRestarter{cri: &fakeCRI{}} // "restarts" a different CRI: ours never serves eci
	_ = cri
	err := inst.Install(context.Background())
	if err == nil || !strings.Contains(err.Error(), `timed out`) || !strings.Contains(err.Error(), "confirm the handler is live") {
		t.Fatalf("err = %v", err)
	}
	if got := readFile(t, filepath.Join(root, "etc/containerd/config.toml")); got != original {
		t.Errorf("config not restored after the timeout:\n%s", got)
	}
}
