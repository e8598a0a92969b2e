package privileged

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/eci-dev/eci/internal/testbundle"
	"github.com/eci-dev/eci/runtime/policy"
)

// podEnv runs a pod's sandbox and containers through eci-runtime with the CRI's
// annotations, the way containerd does.
type podEnv struct {
	e        *env
	uid, sb  string
	sbPid    int
	runDir   string
	hostPath string
}

func (p *podEnv) annotations(kind, container string) map[string]string {
	return map[string]string{
		"io.kubernetes.cri.container-type":    kind,
		"io.kubernetes.cri.sandbox-id":        p.sb,
		"io.kubernetes.cri.sandbox-namespace": "team-a",
		"io.kubernetes.cri.sandbox-name":      "web-" + p.uid,
		"io.kubernetes.cri.sandbox-uid":       p.uid,
		"io.kubernetes.cri.container-name":    container,
	}
}

func (p *podEnv) startSandbox() {
	spec := testbundle.Spec("sleep", "300")
	spec.Annotations = p.annotations("sandbox", "")
	p.sbPid = p.e.startSleeper(p.e.eci, p.sb, spec)
}

// containerSpec is an app container of the pod running args, in the sandbox's namespaces.
func (p *podEnv) containerSpec(name string, args ...string) *specs.Spec {
	spec := testbundle.Spec(args...)
	spec.Annotations = p.annotations("container", name)
	for i, ns := range spec.Linux.Namespaces {
		if n, ok := map[specs.LinuxNamespaceType]string{specs.NetworkNamespace: "net", specs.IPCNamespace: "ipc", specs.UTSNamespace: "uts"}[ns.Type]; ok {
			spec.Linux.Namespaces[i].Path = fmt.Sprintf("/proc/%d/ns/%s", p.sbPid, n)
		}
	}
	return spec
}

func (p *podEnv) withHostMount(spec *specs.Spec) *specs.Spec {
	spec.Mounts = append(spec.Mounts, specs.Mount{Destination: "/data", Type: "bind", Source: p.hostPath, Options: []string{"rbind", "rw"}})
	return spec
}

func (p *podEnv) writePolicy(t *testing.T, pol policy.Policy) {
	t.Helper()
	data, err := json.Marshal(policy.Pod{UID: p.uid, Namespace: "team-a", Name: "web-" + p.uid, Policy: pol})
	if err != nil {
		t.Fatal(err)
	}
	path := policy.PodFile(p.runDir, p.uid)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// reports drains the spool and returns the reports of this pod.
func (p *podEnv) reports(t *testing.T) []policy.Report {
	t.Helper()
	var out []policy.Report
	if _, _, err := policy.Drain(p.runDir, func(r policy.Report) {
		if r.PodUID == p.uid {
			out = append(out, r)
		}
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func hasReport(rs []policy.Report, reason, contains string) bool {
	for _, r := range rs {
		if r.Reason == reason && strings.Contains(r.Message, contains) {
			return true
		}
	}
	return false
}

// eci-runtime enforces the policy eci-node wrote for the pod: its protected path, its
// idsPerPod and its Deny trap's errno; the pod keeps the generation it started with when
// the file changes; Audit lets the mount through and reports it. Plain runc mounts the path.
func TestPodPolicyIsEnforced(t *testing.T) {
	e := newEnv(t)
	secret := filepath.Join(e.dir, "secret")
	if err := os.MkdirAll(secret, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := testbundle.MakeTraversable(secret); err != nil {
		t.Fatal(err)
	}
	runDir := filepath.Join(e.dir, "run")
	team := policy.Policy{
		Name: "team", Generation: 1, Mode: policy.Enforce, IDsPerPod: 131072,
		Protected: []string{"/var/lib/kubelet", secret},
		Traps:     []policy.Trap{{Names: []string{"keyctl"}, Action: policy.ActionDeny, Errno: "EACCES"}},
	}
	p := &podEnv{e: e, uid: "uid-enforce", sb: e.id("sandbox"), runDir: runDir, hostPath: secret}
	p.writePolicy(t, team)
	p.startSandbox()
	if m := uidMap(t, p.sbPid); len(m) != 1 || m[0][2] != 131072 {
		t.Errorf("the pod's uid_map %v does not map the policy's idsPerPod 131072", m)
	}

	// The protected path is refused, naming the policy, its generation and the path.
	_, err := e.eci.Create(e.id("app"), e.bundle(e.id("app"), p.withHostMount(p.containerSpec("app", "true"))), nil)
	if err == nil || !strings.Contains(err.Error(), "refused by policy team (generation 1)") || !strings.Contains(err.Error(), secret) {
		t.Fatalf("a container mounting %s under policy team: %v", secret, err)
	}
	rs := p.reports(t)
	if !hasReport(rs, "EciMountDenied", secret) || !hasReport(rs, "EciPolicyApplied", "team (generation 1)") {
		t.Errorf("reports: %+v", rs)
	}

	// The Deny trap fails keyctl with the policy's errno.
	id := e.id("keys")
	out, err := e.outputOf(e.eci, id, e.bundle(id, p.containerSpec("keys", "/bin/attack", "kernel-keyring")))
	if err != nil || !strings.Contains(out, "keyctl: EACCES") {
		t.Errorf("keyctl under a policy denying it with EACCES: %v: %s", err, out)
	}

	// A new generation without the path does not reach the running pod.
	gen2 := team
	gen2.Generation, gen2.Protected = 2, []string{"/var/lib/kubelet"}
	p.writePolicy(t, gen2)
	_, err = e.eci.Create(e.id("app"), e.bundle(e.id("app"), p.withHostMount(p.containerSpec("app", "true"))), nil)
	if err == nil || !strings.Contains(err.Error(), "(generation 1)") {
		t.Errorf("the running pod's next container did not keep generation 1: %v", err)
	}
	// A new pod gets generation 2, and mounts the path.
	p2 := &podEnv{e: e, uid: "uid-gen2", sb: e.id("sandbox"), runDir: runDir, hostPath: secret}
	p2.writePolicy(t, gen2)
	p2.startSandbox()
	id = e.id("app")
	if _, err := e.outputOf(e.eci, id, e.bundle(id, p2.withHostMount(p2.containerSpec("app", "ls", "/data")))); err != nil {
		t.Errorf("a new pod under generation 2 could not mount %s: %v", secret, err)
	}

	// Audit lets the mount through and reports it.
	audit := team
	audit.Name, audit.Mode = "team-audit", policy.Audit
	p3 := &podEnv{e: e, uid: "uid-audit", sb: e.id("sandbox"), runDir: runDir, hostPath: secret}
	p3.writePolicy(t, audit)
	p3.startSandbox()
	id = e.id("app")
	if _, err := e.outputOf(e.eci, id, e.bundle(id, p3.withHostMount(p3.containerSpec("app", "ls", "/data")))); err != nil {
		t.Errorf("Audit mode refused the mount: %v", err)
	}
	if rs := p3.reports(t); !hasReport(rs, "EciMountAudited", secret) {
		t.Errorf("no EciMountAudited report: %+v", rs)
	}

	// Plain runc mounts the path: the refusal is eci's.
	id = e.id("runc")
	spec := testbundle.Spec("ls", "/data")
	spec.Mounts = append(spec.Mounts, specs.Mount{Destination: "/data", Type: "bind", Source: secret, Options: []string{"rbind", "rw"}})
	if _, err := e.outputOf(e.runc, id, e.bundle(id, spec)); err != nil {
		t.Errorf("plain runc could not mount %s: %v", secret, err)
	}
}

// With eci-node's files in place but none for the pod, the sandbox waits for it and then
// uses the strict policy, and says so.
func TestMissingPodPolicyFallsBackToStrict(t *testing.T) {
	e := newEnv(t)
	runDir := filepath.Join(e.dir, "run")
	strict := policy.Policy{Name: policy.StrictName, Mode: policy.Enforce, Protected: []string{"/var/lib/kubelet", "/srv/strict-only"}}
	data, _ := json.Marshal(strict)
	if err := os.MkdirAll(policy.Dir(runDir), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(policy.StrictFile(runDir), data, 0o600); err != nil {
		t.Fatal(err)
	}
	p := &podEnv{e: e, uid: "uid-nofile", sb: e.id("sandbox"), runDir: runDir, hostPath: "/srv/strict-only"}
	p.startSandbox()
	rs := p.reports(t)
	if !hasReport(rs, "EciPolicyFallback", "eci-node has written no policy for pod uid uid-nofile within 3s") {
		t.Errorf("no fallback report: %+v", rs)
	}
	_, err := e.eci.Create(e.id("app"), e.bundle(e.id("app"), p.withHostMount(p.containerSpec("app", "true"))), nil)
	if err == nil || !strings.Contains(err.Error(), "refused by policy "+policy.StrictName) {
		t.Errorf("the strict policy's path was not refused: %v", err)
	}
}
