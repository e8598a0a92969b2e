package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
)

func image() string {
	if v := os.Getenv("ECI_E2E_IMAGE"); v != "" {
		return v
	}
	return "localhost/eci-test/busybox:1.35"
}

func clientset(t *testing.T, cfg *envconf.Config) kubernetes.Interface {
	t.Helper()
	cs, err := kubernetes.NewForConfig(cfg.Client().RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// pod builds a busybox pod running script, on the eci RuntimeClass unless runtimeClass is "".
func pod(name, runtimeClass, script string, mods ...func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyNever,
			TerminationGracePeriodSeconds: new(int64),
			Containers: []corev1.Container{{
				Name: "main", Image: image(), ImagePullPolicy: corev1.PullNever,
				Command: []string{"sh", "-c", script},
			}},
		},
	}
	if runtimeClass != "" {
		p.Spec.RuntimeClassName = &runtimeClass
	}
	for _, m := range mods {
		m(p)
	}
	return p
}

func privileged(p *corev1.Pod) {
	t := true
	p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Privileged: &t}
}

func hostPath(path string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: path}}})
		p.Spec.Containers[0].VolumeMounts = append(p.Spec.Containers[0].VolumeMounts, corev1.VolumeMount{Name: "host", MountPath: "/host"})
	}
}

func createPod(ctx context.Context, t *testing.T, cs kubernetes.Interface, p *corev1.Pod) *corev1.Pod {
	t.Helper()
	created, err := cs.CoreV1().Pods(p.Namespace).Create(ctx, p, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating pod %s: %v", p.Name, err)
	}
	t.Cleanup(func() {
		_ = cs.CoreV1().Pods(p.Namespace).Delete(context.Background(), p.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
	})
	return created
}

// waitPod waits until cond holds for the pod in the test namespace, and returns it.
func waitPod(ctx context.Context, t *testing.T, cs kubernetes.Interface, name string, timeout time.Duration, what string, cond func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	return waitPodIn(ctx, t, cs, namespace, name, timeout, what, cond)
}

func running(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning }

func podSummary(p *corev1.Pod) string {
	if p == nil {
		return "<none>"
	}
	s := string(p.Status.Phase)
	for _, c := range p.Status.ContainerStatuses {
		if c.State.Waiting != nil {
			s += fmt.Sprintf(" %s waiting: %s: %s", c.Name, c.State.Waiting.Reason, c.State.Waiting.Message)
		}
	}
	return s
}

// eventsFor returns the events of a pod in the test namespace, one per line (what kubectl
// describe shows).
func eventsFor(ctx context.Context, cs kubernetes.Interface, name string) string {
	return eventsIn(ctx, cs, namespace, name)
}

func execIn(ctx context.Context, t *testing.T, cfg *envconf.Config, podName string, cmd ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if err := cfg.Client().Resources().ExecInPod(ctx, namespace, podName, "main", cmd, &stdout, &stderr); err != nil {
		t.Fatalf("exec %v in %s: %v (stderr %q)", cmd, podName, err, stderr.String())
	}
	return stdout.String()
}

// waitExec waits until exec into the pod's container works (the CRI is listening).
func waitExec(ctx context.Context, t *testing.T, cfg *envconf.Config, podName string, timeout time.Duration) {
	t.Helper()
	var lastErr error
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		var stdout, stderr bytes.Buffer
		lastErr = cfg.Client().Resources().ExecInPod(ctx, namespace, podName, "main", []string{"true"}, &stdout, &stderr)
		return lastErr == nil, nil
	})
	if err != nil {
		t.Fatalf("exec in %s never worked: %v (last: %v)", podName, err, lastErr)
	}
}

// uidMap parses /proc/self/uid_map of a pod's container.
func uidMap(ctx context.Context, t *testing.T, cfg *envconf.Config, podName string) [3]uint64 {
	t.Helper()
	out := execIn(ctx, t, cfg, podName, "cat", "/proc/self/uid_map")
	f := strings.Fields(out)
	if len(f) != 3 {
		t.Fatalf("%s: uid_map %q has more than one line", podName, out)
	}
	var m [3]uint64
	for i := range m {
		v, err := strconv.ParseUint(f[i], 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		m[i] = v
	}
	return m
}

func helm(t *testing.T, args ...string) string {
	t.Helper()
	bin := os.Getenv("ECI_E2E_HELM")
	if bin == "" {
		bin = "helm"
	}
	cmd := exec.Command(bin, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helm %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func helmInstall(t *testing.T) {
	t.Helper()
	args := []string{"upgrade", "--install", releaseName, "../../charts/eci", "--namespace", releaseNamespace, "--create-namespace", "--wait", "--timeout", "5m"}
	args = append(args, strings.Fields(os.Getenv("ECI_E2E_HELM_ARGS"))...)
	helm(t, args...)
}

// waitNodesLabel waits until every node's eci.dev/runtime label has the value want ("" =
// absent).
func waitNodesLabel(ctx context.Context, t *testing.T, cs kubernetes.Interface, want string, timeout time.Duration) {
	t.Helper()
	var last string
	err := wait.PollUntilContextTimeout(ctx, time.Second, timeout, true, func(ctx context.Context) (bool, error) {
		nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		last = ""
		ok := true
		for _, n := range nodes.Items {
			v := n.Labels["eci.dev/runtime"]
			last += n.Name + "=" + v + " "
			ok = ok && v == want
		}
		return ok, nil
	})
	if err != nil {
		t.Fatalf("waiting for eci.dev/runtime=%q on every node: %v (now: %s)", want, err, last)
	}
}
