package e2e

import (
	"context"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"
)

// mountScript tries, in a privileged pod, what eci's supervisor must refuse (unmounting the
// emulated /proc/meminfo and runc's mask over /sys/firmware, covering /proc/meminfo) and
// what it must let through (a tmpfs of the pod's own, in its namespace and in a nested
// one), and prints one line per try.
const mountScript = `try() { name=$1; shift; if "$@" >/dev/null 2>&1; then echo "$name=ok"; else echo "$name=refused"; fi; }
echo fake > /tmp/fake
try umount-meminfo umount /proc/meminfo
try umount-firmware umount /sys/firmware
try cover-meminfo mount --bind /tmp/fake /proc/meminfo
mkdir -p /tmp/m
try tmpfs sh -c 'mount -t tmpfs tmpfs /tmp/m && echo x > /tmp/m/f && umount /tmp/m'
try nested-tmpfs unshare -m sh -c 'mount -t tmpfs tmpfs /tmp/m && echo x > /tmp/m/f'
grep MemTotal /proc/meminfo || true`

func runMountScript(ctx context.Context, t *testing.T, cfg *envconf.Config, podName string) map[string]string {
	t.Helper()
	out := execIn(ctx, t, cfg, podName, "sh", "-c", mountScript)
	res := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			res[k] = v
		}
		if strings.HasPrefix(line, "MemTotal:") {
			res["MemTotal"] = strings.Join(strings.Fields(line), " ")
		}
	}
	t.Logf("%s:\n%s", podName, out)
	return res
}

// A privileged eci pod keeps the mounts it was created with (its /proc emulation binds and
// runc's masks cannot be unmounted or covered) while its own tmpfs mounts work, through
// eci-node's seccomp-notify supervisor; a refusal is a pod Event and a metric. The
// supervisor keeps serving the running pod across a kill -9 of eci-node. A plain runc
// privileged pod can do all of it.
func TestPrivilegedMountsSupervised(t *testing.T) {
	requireE2E(t)
	f := features.New("seccomp-notify supervisor").
		Assess("mounts stay, tmpfs works, across kill -9 of eci-node", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			cs := clientset(t, cfg)
			createPod(ctx, t, cs, pod("sup-eci", "eci", "sleep 3600", privileged, limits("256Mi", "500m")))
			createPod(ctx, t, cs, pod("sup-runc", "", "sleep 3600", privileged, limits("256Mi", "500m")))
			waitPod(ctx, t, cs, "sup-eci", 2*time.Minute, "Running", running)
			waitPod(ctx, t, cs, "sup-runc", 2*time.Minute, "Running", running)

			eci := runMountScript(ctx, t, cfg, "sup-eci")
			for k, want := range map[string]string{
				"umount-meminfo": "refused", "umount-firmware": "refused", "cover-meminfo": "refused",
				"tmpfs": "ok", "nested-tmpfs": "ok", "MemTotal": "MemTotal: 262144 kB",
			} {
				if eci[k] != want {
					t.Errorf("eci privileged pod: %s = %q, want %q", k, eci[k], want)
				}
			}
			// The control: under plain runc the cover works (the bind shows the fake file).
			runc := runMountScript(ctx, t, cfg, "sup-runc")
			if runc["cover-meminfo"] != "ok" || runc["tmpfs"] != "ok" {
				t.Errorf("plain runc privileged pod: cover-meminfo %q, tmpfs %q: the test has no teeth", runc["cover-meminfo"], runc["tmpfs"])
			}

			msg := waitEvent(ctx, t, cs, namespace, "sup-eci", "EciSyscallDenied")
			if !strings.Contains(msg, "umount2 denied (EPERM)") && !strings.Contains(msg, "mount denied (EPERM)") {
				t.Errorf("EciSyscallDenied event: %q", msg)
			}
			if metrics := agentMetrics(ctx, t, cfg); !strings.Contains(metrics, `eci_supervisor_trapped_syscalls_total{action="deny",namespace="`+namespace+`",syscall="umount2"}`) ||
				!strings.Contains(metrics, "eci_supervisor_up 1") {
				t.Errorf("eci-node /metrics lacks the supervisor's counts:\n%s", grepLines(metrics, "eci_supervisor"))
			}

			// kill -9 of eci-node, where the test runs on the node: the holder keeps
			// answering the running pod's trapped syscalls (no ENOSYS).
			if os.Getenv("ECI_E2E_CONTAINERD_PIDFILE") != "" {
				killAgents(t)
				after := runMountScript(ctx, t, cfg, "sup-eci")
				if after["tmpfs"] != "ok" || after["umount-meminfo"] != "refused" {
					t.Errorf("after kill -9 of eci-node: tmpfs %q, umount-meminfo %q", after["tmpfs"], after["umount-meminfo"])
				}
			}
			return ctx
		}).Feature()
	testenv.Test(t, f)
}

// agentMetrics fetches /metrics from an eci-node pod.
func agentMetrics(ctx context.Context, t *testing.T, cfg *envconf.Config) string {
	t.Helper()
	cs := clientset(t, cfg)
	agents, err := cs.CoreV1().Pods(releaseNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=node"})
	if err != nil || len(agents.Items) == 0 || agents.Items[0].Status.PodIP == "" {
		t.Fatalf("eci-node pods: %v", err)
	}
	port := "9101"
	for _, c := range agents.Items[0].Spec.Containers {
		for _, p := range c.Ports {
			if p.Name == "metrics" {
				port = strconv.Itoa(int(p.ContainerPort))
			}
		}
	}
	reqCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(reqCtx, http.MethodGet, "http://"+agents.Items[0].Status.PodIP+":"+port+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("eci-node /metrics: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

// grepLines keeps the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
