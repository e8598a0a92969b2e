package e2e

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"
)

func limits(mem, cpu string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Spec.Containers[0].Resources.Limits = corev1.ResourceList{
			corev1.ResourceMemory: resource.MustParse(mem),
			corev1.ResourceCPU:    resource.MustParse(cpu),
		}
	}
}

const procScript = "grep MemTotal /proc/meminfo; cat /sys/devices/system/cpu/online; cut -d' ' -f1 /proc/uptime; free | grep Mem: | tr -s ' ' | cut -d' ' -f2; nproc"

// checkEmulated reads the pod's /proc and /sys through exec and checks it sees its limits.
func checkEmulated(ctx context.Context, t *testing.T, cfg *envconf.Config, name, when string) {
	t.Helper()
	out := execIn(ctx, t, cfg, name, "sh", "-c", procScript)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 || strings.Join(strings.Fields(lines[0]), " ") != "MemTotal: 262144 kB" || lines[1] != "0" {
		t.Fatalf("%s: pod %s read %q; want MemTotal 262144 kB and online CPUs 0", when, name, out)
	}
	// busybox free asks sysinfo(2), which eci's supervisor answers with the same numbers.
	if lines[3] != "262144" {
		t.Errorf("%s: free in pod %s says total %q KiB, want 262144 as /proc/meminfo", when, name, lines[3])
	}
	// nproc counts sched_getaffinity's CPUs, which the supervisor gives as the quota's.
	if lines[4] != "1" {
		t.Errorf("%s: nproc in pod %s says %q, want 1 (500m)", when, name, lines[4])
	}
	if up, err := strconv.ParseFloat(lines[2], 64); err != nil || up > 600 {
		t.Errorf("%s: the pod's uptime %q is not its own", when, lines[2])
	}
}

// A pod limited to 256Mi and 500m CPU sees MemTotal 262144 kB (in /proc/meminfo and from
// free, through sysinfo(2)), one online CPU (and nproc 1) and its own uptime (a runc pod with the same limits sees the host's), and keeps reading them across
// a restart and a kill -9 of eci-node.
func TestProcEmulation(t *testing.T) {
	requireE2E(t)
	f := features.New("/proc and /sys emulation").
		Assess("a limited pod sees its limits; runc shows the host's", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			cs := clientset(t, cfg)
			createPod(ctx, t, cs, pod("emulated", "eci", "sleep 3600", limits("256Mi", "500m")))
			createPod(ctx, t, cs, pod("plain", "", "sleep 3600", limits("256Mi", "500m")))
			waitPod(ctx, t, cs, "emulated", 2*time.Minute, "Running", running)
			waitPod(ctx, t, cs, "plain", 2*time.Minute, "Running", running)
			checkEmulated(ctx, t, cfg, "emulated", "before any restart")
			if out := execIn(ctx, t, cfg, "plain", "grep", "MemTotal", "/proc/meminfo"); strings.Contains(out, " 262144 kB") {
				t.Fatalf("the runc pod already sees its limit (%q): the check proves nothing", out)
			}

			// eci-node restarts (its pods are deleted and replaced): the pod keeps reading.
			agents, err := cs.CoreV1().Pods(releaseNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=node"})
			if err != nil || len(agents.Items) == 0 {
				t.Fatalf("eci-node pods: %v (%d)", err, len(agents.Items))
			}
			for _, a := range agents.Items {
				if err := cs.CoreV1().Pods(releaseNamespace).Delete(ctx, a.Name, metav1.DeleteOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			waitAgentsReady(ctx, t, cfg, agents.Items)
			checkEmulated(ctx, t, cfg, "emulated", "after eci-node was replaced")

			// kill -9 of eci-node, where the test runs on the node.
			if os.Getenv("ECI_E2E_CONTAINERD_PIDFILE") != "" {
				killAgents(t)
				checkEmulated(ctx, t, cfg, "emulated", "right after kill -9 of eci-node")
				createPod(ctx, t, cs, pod("after-kill", "eci", "sleep 3600", limits("256Mi", "500m")))
				waitPod(ctx, t, cs, "after-kill", 2*time.Minute, "Running", running)
				checkEmulated(ctx, t, cfg, "after-kill", "a pod started after kill -9 of eci-node")
			}
			return ctx
		}).Feature()
	testenv.Test(t, f)
}

// killAgents kills every eci-node run process on this node with SIGKILL.
func killAgents(t *testing.T) {
	t.Helper()
	pids := processesNamed("eci-node", "run")
	if len(pids) == 0 {
		t.Fatal("no eci-node run process found on this node")
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatalf("kill -9 %d: %v", pid, err)
		}
	}
}

// processesNamed returns the pids whose command line starts with a binary named name and
// then arg.
func processesNamed(name, arg string) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		f := bytes.Split(cmd, []byte{0})
		if len(f) >= 2 && filepath.Base(string(f[0])) == name && string(f[1]) == arg {
			out = append(out, pid)
		}
	}
	return out
}

// sysctl -w of a host-wide knob (kernel.panic) inside an eci pod reads back in that pod;
// another pod and the node keep their value.
func TestProcSysKnobs(t *testing.T) {
	requireE2E(t)
	f := features.New("per-pod /proc/sys").
		Assess("a pod's sysctl stays in the pod", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			cs := clientset(t, cfg)
			createPod(ctx, t, cs, pod("knob-a", "eci", "sleep 3600", limits("128Mi", "200m")))
			createPod(ctx, t, cs, pod("knob-b", "eci", "sleep 3600", limits("128Mi", "200m")))
			waitPod(ctx, t, cs, "knob-a", 2*time.Minute, "Running", running)
			waitPod(ctx, t, cs, "knob-b", 2*time.Minute, "Running", running)
			before := strings.TrimSpace(execIn(ctx, t, cfg, "knob-b", "cat", "/proc/sys/kernel/panic"))
			want := "7"
			if before == want {
				want = "8"
			}
			if got := strings.TrimSpace(execIn(ctx, t, cfg, "knob-a", "sh", "-c", "sysctl -w kernel.panic="+want+" >/dev/null && cat /proc/sys/kernel/panic")); got != want {
				t.Errorf("knob-a reads back %q after sysctl -w kernel.panic=%s", got, want)
			}
			if got := strings.TrimSpace(execIn(ctx, t, cfg, "knob-b", "cat", "/proc/sys/kernel/panic")); got != before {
				t.Errorf("knob-b reads %q, want its own %q", got, before)
			}
			if os.Getenv("ECI_E2E_CONTAINERD_PIDFILE") != "" {
				if host, err := os.ReadFile("/proc/sys/kernel/panic"); err != nil || strings.TrimSpace(string(host)) != before {
					t.Errorf("the node's kernel.panic is %q (%v), want %q unchanged", host, err, before)
				}
			}
			return ctx
		}).Feature()
	testenv.Test(t, f)
}
