package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"
)

// The install labels every node ready and the RuntimeClass selects on that label.
func TestInstall(t *testing.T) {
	requireE2E(t)
	f := features.New("install").
		Assess("nodes are labelled ready and report the handler", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			cs := clientset(t, cfg)
			waitNodesLabel(ctx, t, cs, "ready", 3*time.Minute)
			nodes, _ := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
			for _, n := range nodes.Items {
				found := false
				for _, h := range n.Status.RuntimeHandlers {
					found = found || h.Name == "eci"
				}
				if !found {
					t.Errorf("node %s does not list the eci handler in status.runtimeHandlers", n.Name)
				}
			}
			return ctx
		}).
		Assess("the RuntimeClass exists", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			rc, err := clientset(t, cfg).NodeV1().RuntimeClasses().Get(ctx, "eci", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if rc.Handler != "eci" || rc.Scheduling == nil || rc.Scheduling.NodeSelector["eci.dev/runtime"] != "ready" {
				t.Errorf("RuntimeClass eci = handler %q scheduling %+v", rc.Handler, rc.Scheduling)
			}
			return ctx
		}).Feature()
	testenv.Test(t, f)
}

// Two eci pods each get a user namespace with their own 65536 host ids; a runc pod has none.
func TestPodsGetExclusiveRanges(t *testing.T) {
	requireE2E(t)
	f := features.New("user namespaces").
		Assess("disjoint ranges", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			cs := clientset(t, cfg)
			for _, name := range []string{"userns-a", "userns-b", "userns-runc"} {
				rc := "eci"
				if name == "userns-runc" {
					rc = ""
				}
				createPod(ctx, t, cs, pod(name, rc, "sleep 3600"))
			}
			maps := map[string][3]uint64{}
			for _, name := range []string{"userns-a", "userns-b", "userns-runc"} {
				waitPod(ctx, t, cs, name, 2*time.Minute, "Running", running)
				maps[name] = uidMap(ctx, t, cfg, name)
			}
			a, b := maps["userns-a"], maps["userns-b"]
			for name, m := range map[string][3]uint64{"userns-a": a, "userns-b": b} {
				if m[0] != 0 || m[1] < 1<<16 || m[2] != 65536 {
					t.Errorf("%s: uid_map %v, want 0 <host id >= 65536> 65536", name, m)
				}
			}
			if a[1] < b[1]+b[2] && b[1] < a[1]+a[2] {
				t.Errorf("pods share host ids: %v and %v", a, b)
			}
			if r := maps["userns-runc"]; r != [3]uint64{0, 0, 4294967295} {
				t.Errorf("the runc pod is not in the host's user namespace: %v (control)", r)
			}
			return ctx
		}).Feature()
	testenv.Test(t, f)
}

// A pod with hostUsers: false gets the kubelet's mapping; eci checks it and keeps it.
func TestKubeletMappingIsKept(t *testing.T) {
	requireE2E(t)
	f := features.New("hostUsers: false").
		Assess("the kubelet's range, not eci's", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			cs := clientset(t, cfg)
			no := false
			createPod(ctx, t, cs, pod("kubelet-userns", "eci", "sleep 3600", func(p *corev1.Pod) { p.Spec.HostUsers = &no }))
			waitPod(ctx, t, cs, "kubelet-userns", 2*time.Minute, "Running", running)
			m := uidMap(ctx, t, cfg, "kubelet-userns")
			if m[0] != 0 || m[1] < 65536 || m[2] != 65536 {
				t.Errorf("uid_map %v: want 0 <kubelet host id >= 65536> 65536", m)
			}
			if m[1] >= 1<<31 && m[1] < 1<<31+1<<30 {
				t.Errorf("uid_map %v comes from eci's pool, not from the kubelet", m)
			}
			return ctx
		}).Feature()
	testenv.Test(t, f)
}

// A pod mounting a protected host path fails to start, and its events say why.
func TestProtectedHostPath(t *testing.T) {
	requireE2E(t)
	f := features.New("protected mounts").
		Assess("hostPath /var/lib/kubelet is refused", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			cs := clientset(t, cfg)
			createPod(ctx, t, cs, pod("protected", "eci", "ls /host", hostPath("/var/lib/kubelet")))
			var events string
			err := wait.PollUntilContextTimeout(ctx, time.Second, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
				events = eventsFor(ctx, cs, "protected")
				return strings.Contains(events, "refused by policy"), nil
			})
			if err != nil {
				t.Fatalf("no event explains the refusal: %v\nevents:\n%s", err, events)
			}
			if !strings.Contains(events, "/var/lib/kubelet") {
				t.Errorf("the event does not name the path:\n%s", events)
			}
			p, _ := cs.CoreV1().Pods(namespace).Get(ctx, "protected", metav1.GetOptions{})
			if p.Status.Phase == corev1.PodRunning || p.Status.Phase == corev1.PodSucceeded {
				t.Errorf("the pod ran: %s", p.Status.Phase)
			}
			return ctx
		}).Feature()
	testenv.Test(t, f)
}

// A privileged eci pod can't write the host's /proc/sys (vm.dirty_ratio here: the knobs eci keeps
// per pod are TestProcSysKnobs's) or reach host devices; a privileged runc pod can.
func TestPrivilegedPodIsContained(t *testing.T) {
	requireE2E(t)
	script := `
if echo "$(cat /proc/sys/vm/dirty_ratio)" > /proc/sys/vm/dirty_ratio 2>/dev/null; then echo procsys=written; else echo procsys=blocked; fi
n=0; for d in /dev/*; do [ -b "$d" ] && n=$((n+1)); done; echo blockdevs=$n
if mknod /tmp/disk b 254 0 2>/dev/null; then echo mknod=ok; else echo mknod=blocked; fi
sleep 3600`
	f := features.New("privileged").
		Assess("contained under eci, not under runc", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			cs := clientset(t, cfg)
			createPod(ctx, t, cs, pod("priv-eci", "eci", script, privileged))
			createPod(ctx, t, cs, pod("priv-runc", "", script, privileged))
			out := map[string]string{}
			for _, name := range []string{"priv-eci", "priv-runc"} {
				waitPod(ctx, t, cs, name, 2*time.Minute, "Running", running)
				var logs string
				_ = wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
					b, err := cs.CoreV1().Pods(namespace).GetLogs(name, &corev1.PodLogOptions{}).DoRaw(ctx)
					logs = string(b)
					return err == nil && strings.Contains(logs, "mknod="), nil
				})
				out[name] = logs
			}
			for _, want := range []string{"procsys=blocked", "blockdevs=0", "mknod=blocked"} {
				if !strings.Contains(out["priv-eci"], want) {
					t.Errorf("privileged eci pod: want %q in\n%s", want, out["priv-eci"])
				}
			}
			for _, want := range []string{"procsys=written", "mknod=ok"} {
				if !strings.Contains(out["priv-runc"], want) {
					t.Errorf("privileged runc pod (control): want %q in\n%s", want, out["priv-runc"])
				}
			}
			if strings.Contains(out["priv-runc"], "blockdevs=0") {
				t.Errorf("privileged runc pod sees no block devices (control):\n%s", out["priv-runc"])
			}
			return ctx
		}).Feature()
	testenv.Test(t, f)
}

// Running eci pods survive a restart of eci-node and of containerd.
func TestPodsSurviveRestarts(t *testing.T) {
	requireE2E(t)
	f := features.New("restarts").
		Assess("eci-node and containerd restart under a running pod", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			cs := clientset(t, cfg)
			createPod(ctx, t, cs, pod("survivor", "eci", "sleep 3600"))
			p := waitPod(ctx, t, cs, "survivor", 2*time.Minute, "Running", running)
			before := uidMap(ctx, t, cfg, "survivor")

			// eci-node: delete its pods; the DaemonSet brings them back.
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
			if got := uidMap(ctx, t, cfg, "survivor"); got != before {
				t.Errorf("after the eci-node restart the pod's uid_map is %v, was %v", got, before)
			}

			if pidFile := os.Getenv("ECI_E2E_CONTAINERD_PIDFILE"); pidFile != "" {
				data, err := os.ReadFile(pidFile)
				if err != nil {
					t.Fatal(err)
				}
				pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
				if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
					t.Fatalf("restarting containerd (pid %d): %v", pid, err)
				}
				err = wait.PollUntilContextTimeout(ctx, time.Second, 2*time.Minute, true, func(context.Context) (bool, error) {
					d, err := os.ReadFile(pidFile)
					n, _ := strconv.Atoi(strings.TrimSpace(string(d)))
					return err == nil && n != pid && n > 0, nil
				})
				if err != nil {
					t.Fatalf("containerd did not come back: %v", err)
				}
				waitPod(ctx, t, cs, "survivor", time.Minute, "Running after the containerd restart", running)
				// containerd writes its pid file before it listens: wait until exec works.
				waitExec(ctx, t, cfg, "survivor", time.Minute)
				if got := uidMap(ctx, t, cfg, "survivor"); got != before {
					t.Errorf("after the containerd restart the pod's uid_map is %v, was %v", got, before)
				}
			} else {
				t.Log("ECI_E2E_CONTAINERD_PIDFILE unset: containerd restart not exercised (not on the node)")
			}
			if p2, _ := cs.CoreV1().Pods(namespace).Get(ctx, "survivor", metav1.GetOptions{}); p2.Status.ContainerStatuses[0].RestartCount != 0 || p2.UID != p.UID {
				t.Errorf("the pod was restarted or replaced")
			}
			// And new eci pods still start.
			createPod(ctx, t, cs, pod("after-restart", "eci", "sleep 3600"))
			waitPod(ctx, t, cs, "after-restart", 2*time.Minute, "Running", running)
			return ctx
		}).Feature()
	testenv.Test(t, f)
}

// A rolling update of the DaemonSet (any change to its pod template) restarts eci-node
// but never uninstalls: the node stays ready and running eci pods keep working.
func TestRollingUpdateKeepsEci(t *testing.T) {
	requireE2E(t)
	f := features.New("rolling update").
		Assess("helm upgrade with a new pod template", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			cs := clientset(t, cfg)
			createPod(ctx, t, cs, pod("rolling", "eci", "sleep 3600"))
			waitPod(ctx, t, cs, "rolling", 2*time.Minute, "Running", running)
			before := uidMap(ctx, t, cfg, "rolling")
			agents, err := cs.CoreV1().Pods(releaseNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=node"})
			if err != nil {
				t.Fatal(err)
			}
			args := []string{"upgrade", releaseName, "../../charts/eci", "--namespace", releaseNamespace, "--reuse-values",
				"--set-string", "node.podAnnotations.eci\\.dev/rollout=" + strconv.FormatInt(time.Now().UnixNano(), 10)}
			helm(t, args...)
			waitAgentsReady(ctx, t, cfg, agents.Items)
			nodes, _ := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
			for _, n := range nodes.Items {
				if v := n.Labels["eci.dev/runtime"]; v != "ready" {
					t.Errorf("node %s is %q after a rolling update, want ready", n.Name, v)
				}
			}
			if got := uidMap(ctx, t, cfg, "rolling"); got != before {
				t.Errorf("after the rolling update the pod's uid_map is %v, was %v", got, before)
			}
			createPod(ctx, t, cs, pod("after-rolling", "eci", "sleep 3600"))
			waitPod(ctx, t, cs, "after-rolling", 2*time.Minute, "Running", running)
			return ctx
		}).Feature()
	testenv.Test(t, f)
}

func waitAgentsReady(ctx context.Context, t *testing.T, cfg *envconf.Config, old []corev1.Pod) {
	t.Helper()
	cs := clientset(t, cfg)
	oldNames := map[string]bool{}
	for _, o := range old {
		oldNames[o.Name] = true
	}
	err := wait.PollUntilContextTimeout(ctx, time.Second, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		pods, err := cs.CoreV1().Pods(releaseNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=node"})
		if err != nil || len(pods.Items) != len(old) {
			return false, nil
		}
		for _, p := range pods.Items {
			if oldNames[p.Name] || !podReady(&p) {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("eci-node pods did not come back ready: %v", err)
	}
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// helm uninstall restores containerd's config byte for byte and removes the label; a
// reinstall works. Runs last (Go runs tests in source order, and this file's name sorts
// after the others').
func TestZZUninstallAndReinstall(t *testing.T) {
	requireE2E(t)
	f := features.New("uninstall").
		Assess("uninstall restores, reinstall works", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			cs := clientset(t, cfg)
			confPath := os.Getenv("ECI_E2E_CONTAINERD_CONFIG")
			// readConf returns containerd's config as it loads it: the main file and the
			// drop-ins of conf.d beside it (eci uses a drop-in where the imports allow).
			readConf := func() string {
				if confPath == "" {
					return ""
				}
				b, err := os.ReadFile(confPath)
				if err != nil {
					t.Fatal(err)
				}
				state := "== " + confPath + "\n" + string(b)
				dropIns, _ := filepath.Glob(filepath.Join(filepath.Dir(confPath), "conf.d", "*"))
				for _, d := range dropIns {
					b, err := os.ReadFile(d)
					if err != nil {
						t.Fatal(err)
					}
					state += "== " + d + "\n" + string(b)
				}
				return state
			}
			installed := readConf()
			helm(t, "uninstall", releaseName, "--namespace", releaseNamespace, "--wait", "--timeout", "5m")
			waitNodesLabel(ctx, t, cs, "", 2*time.Minute)
			pristine := readConf()
			if confPath != "" && (strings.Contains(pristine, "eci-runtime") || !strings.Contains(installed, "eci-runtime")) {
				t.Errorf("containerd's config registered eci before uninstall: %v, after: %v\n--- before\n%s\n--- after\n%s",
					strings.Contains(installed, "eci-runtime"), strings.Contains(pristine, "eci-runtime"), installed, pristine)
			}
			if orig := os.Getenv("ECI_E2E_CONTAINERD_CONFIG_ORIGINAL"); orig != "" {
				want, err := os.ReadFile(orig)
				if err != nil {
					t.Fatal(err)
				}
				if got, _ := os.ReadFile(confPath); string(got) != string(want) {
					t.Errorf("after uninstall %s differs from the config as written before eci (%s)", confPath, orig)
				}
			}
			helmInstall(t)
			waitNodesLabel(ctx, t, cs, "ready", 3*time.Minute)
			createPod(ctx, t, cs, pod("reinstalled", "eci", "sleep 3600"))
			waitPod(ctx, t, cs, "reinstalled", 2*time.Minute, "Running", running)
			if confPath != "" {
				helm(t, "uninstall", releaseName, "--namespace", releaseNamespace, "--wait", "--timeout", "5m")
				waitNodesLabel(ctx, t, cs, "", 2*time.Minute)
				if again := readConf(); again != pristine {
					t.Errorf("the second uninstall left %s different from before install:\n--- before\n%s\n--- after\n%s", confPath, pristine, again)
				}
				helmInstall(t)
				waitNodesLabel(ctx, t, cs, "ready", 3*time.Minute)
			}
			return ctx
		}).Feature()
	testenv.Test(t, f)
}
