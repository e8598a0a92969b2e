//go:build linux

package privileged

import (
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/eci-dev/eci/internal/testbundle"
)

// privilegedSpec is what containerd makes of a privileged: true container running args.
func privilegedSpec(t *testing.T, args ...string) *specs.Spec {
	t.Helper()
	s := testbundle.Spec(args...)
	if err := testbundle.Privileged(s); err != nil {
		t.Fatal(err)
	}
	return s
}

// The attack battery runs in a privileged container under eci and under plain runc. Under
// eci every attack must fail; under runc most succeed, which shows the attacks have teeth.
func TestPrivilegedAttackBattery(t *testing.T) {
	e := newEnv(t)
	dev := hostRootDev(t)
	results := map[string]map[string]attackResult{}
	for name, rt := range map[string]testbundle.Runtime{"eci": e.eci, "runc": e.runc} {
		id := e.id("attack-" + name)
		b := e.bundle(id, privilegedSpec(t, "/bin/attack", "-host-dev", dev, "all"))
		out, err := e.outputOf(rt, id, b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		results[name] = parseAttacks(t, out)
		t.Logf("%s:\n%s", name, out)
	}
	attacks := []string{"proc-sys-write", "sysrq-trigger", "host-block-device", "mount-host-disk", "kernel-module", "sys-write", "kernel-keyring"}
	succeededOnRunc := 0
	for _, a := range attacks {
		eci, ok := results["eci"][a]
		if !ok {
			t.Errorf("%s: no result under eci", a)
			continue
		}
		if eci.Result == "succeeded" {
			t.Errorf("%s SUCCEEDED in a privileged eci container: %s", a, eci.Detail)
		}
		if results["runc"][a].Result == "succeeded" {
			succeededOnRunc++
		}
	}
	// This kernel has neither modules nor sysrq, and host root itself may not read the
	// disk, so those can be n/a or blocked even under runc; the rest must get through.
	for _, a := range []string{"proc-sys-write", "mount-host-disk", "sys-write", "kernel-keyring"} {
		if r := results["runc"][a]; r.Result != "succeeded" {
			t.Errorf("%s did not succeed under plain runc privileged (%s: %s): the test has no teeth", a, r.Result, r.Detail)
		}
	}
	// Seeing the host's disk: visible (and mknod-able) under runc, neither under eci.
	if d := results["eci"]["host-block-device"].Detail; !strings.Contains(d, "not visible in /dev") || !strings.Contains(d, "mknod") {
		t.Errorf("eci: host disk: %s", d)
	}
	if d := results["runc"]["host-block-device"].Detail; !strings.Contains(d, "visible as /dev/") {
		t.Errorf("plain runc privileged should see the host disk: %s", d)
	}
	// keyctl is denied by the built-in policy's Deny trap (a seccomp errno), not by the
	// user namespace: the errno is the policy's.
	if d := results["eci"]["kernel-keyring"].Detail; !strings.Contains(d, "EPERM") {
		t.Errorf("eci: keyctl should fail with the policy's EPERM: %s", d)
	}
	t.Logf("%d of %d attacks succeeded under plain runc, 0 under eci", succeededOnRunc, len(attacks))
}

// Host paths on the protected list cannot be bind-mounted into an eci container, even a
// privileged one; plain runc mounts them. The error names the path and the policy.
func TestProtectedHostPathsAreRefused(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		source, want string
	}{
		{"/", "protected path / (the host's root filesystem)"},
		{"/etc", "it contains protected path /etc/kubernetes"},
		{"/proc/sys", "it is inside protected path /proc"},
		{"/dev/vda", "it is inside protected path /dev"},
		{"/run", "it contains protected path /run/containerd"},
	}
	for _, c := range cases {
		spec := privilegedSpec(t, "cat", "/host/.probe")
		spec.Mounts = append(spec.Mounts, specs.Mount{Destination: "/host", Type: "bind", Source: c.source, Options: []string{"rbind", "ro"}})
		id := e.id("protected")
		b := e.bundle(id, spec)
		_, err := e.eci.Create(id, b, nil)
		if err == nil {
			t.Errorf("bind of %s: eci created the container", c.source)
			continue
		}
		msg := err.Error()
		for _, want := range []string{"bind mount of host path " + c.source + " at /host is refused by policy eci-builtin-default", c.want, `"level":"error"`} {
			if !strings.Contains(msg, want) {
				t.Errorf("bind of %s: error %q lacks %q", c.source, msg, want)
			}
		}
	}
	// Plain runc mounts the host's root and reads a host file through it.
	spec := privilegedSpec(t, "cat", "/host/etc/hostname")
	spec.Mounts = append(spec.Mounts, specs.Mount{Destination: "/host", Type: "bind", Source: "/", Options: []string{"rbind", "ro"}})
	id := e.id("protected-runc")
	if _, err := e.outputOf(e.runc, id, e.bundle(id, spec)); err != nil {
		t.Fatalf("plain runc could not bind the host root (the test has no teeth): %v", err)
	}
	if list := e.entries(); len(list) != 0 {
		t.Errorf("refused creates kept ranges: %+v", list)
	}
}

// eci refuses containers that would share the host's pid, ipc or network namespace.
func TestHostNamespacesAreRefused(t *testing.T) {
	e := newEnv(t)
	for _, ns := range []specs.LinuxNamespaceType{specs.NetworkNamespace, specs.PIDNamespace, specs.IPCNamespace} {
		spec := privilegedSpec(t, "true")
		var kept []specs.LinuxNamespace
		for _, n := range spec.Linux.Namespaces {
			if n.Type != ns {
				kept = append(kept, n)
			}
		}
		spec.Linux.Namespaces = kept
		id := e.id("hostns")
		_, err := e.eci.Create(id, e.bundle(id, spec), nil)
		if err == nil || !strings.Contains(err.Error(), "eci refuses to share the host's "+string(ns)+" namespace") {
			t.Errorf("host %s namespace: err = %v", ns, err)
		}
		// Plain runc runs it.
		rid := e.id("hostns-runc")
		if _, err := e.outputOf(e.runc, rid, e.bundle(rid, spec)); err != nil {
			t.Errorf("plain runc with the host %s namespace: %v", ns, err)
		}
	}
}
