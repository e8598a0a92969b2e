package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"
)

var nodeStatusGVR = schema.GroupVersionResource{Group: "eci.dev", Version: "v1alpha1", Resource: "isolationpolicynodestatuses"}

// protectedDir is the host path the test policy protects: eci-default does not.
const protectedDir = "/srv/eci-e2e-protected"

// A policy protecting a new path blocks pods that mount it, with an Event naming the policy
// and the path; in Audit mode the pod runs and the Event is recorded; an exception by
// namespace lets exactly that namespace through. Policy edits reach new pods within
// seconds, while a running pod keeps the generation it started with.
func TestPolicyEnforcement(t *testing.T) {
	requireE2E(t)
	const policyName = "e2e-protect-srv"
	nsA, nsB := namespace+"-pol-a", namespace+"-pol-b"
	var dc dynamic.Interface
	var cs kubernetes.Interface
	f := features.New("IsolationPolicy enforcement").
		Setup(func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			cs = clientset(t, cfg)
			var err error
			if dc, err = dynamic.NewForConfig(cfg.Client().RESTConfig()); err != nil {
				t.Fatal(err)
			}
			// A policy an interrupted earlier run left behind.
			if err := dc.Resource(policyGVR).Delete(ctx, policyName, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				t.Fatal(err)
			}
			for _, ns := range []string{nsA, nsB} {
				obj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{"eci-e2e-policy": "on"}}}
				if _, err := cs.CoreV1().Namespaces().Create(ctx, obj, metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			obj := &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": "eci.dev/v1alpha1", "kind": "IsolationPolicy",
				"metadata": map[string]any{"name": policyName},
				"spec": map[string]any{
					"priority":        int64(100),
					"mode":            "Enforce",
					"selector":        map[string]any{"namespaceSelector": map[string]any{"matchLabels": map[string]any{"eci-e2e-policy": "on"}}},
					"protectedMounts": map[string]any{"paths": []any{"/var/lib/kubelet", "/run/containerd", "/var/lib/containerd", protectedDir}},
				},
			}}
			if _, err := dc.Resource(policyGVR).Create(ctx, obj, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			waitApplied(ctx, t, cs, dc, policyName)
			return ctx
		}).
		Assess("Enforce blocks the pod and says why; plain runc mounts the path", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			createPod(ctx, t, cs, inNS(nsA, pod("denied", "eci", "ls /host", hostPathDir(protectedDir))))
			ev := waitEvent(ctx, t, cs, nsA, "denied", "EciMountDenied")
			for _, want := range []string{policyName, "generation 1", protectedDir} {
				if !strings.Contains(ev, want) {
					t.Errorf("EciMountDenied does not name %q: %s", want, ev)
				}
			}
			if p, _ := cs.CoreV1().Pods(nsA).Get(ctx, "denied", metav1.GetOptions{}); p != nil && (p.Status.Phase == corev1.PodRunning || p.Status.Phase == corev1.PodSucceeded) {
				t.Errorf("the pod ran: %s", p.Status.Phase)
			}
			createPod(ctx, t, cs, inNS(nsA, pod("runc-mounts", "", "ls /host", hostPathDir(protectedDir))))
			waitPodIn(ctx, t, cs, nsA, "runc-mounts", 2*time.Minute, "the runc pod to finish", succeeded)
			return ctx
		}).
		Assess("Audit lets the pod run and records the Event", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			patchPolicy(ctx, t, dc, policyName, `{"spec":{"mode":"Audit"}}`)
			waitApplied(ctx, t, cs, dc, policyName)
			// Not createPod: the pod must outlive this step (the namespace's deletion removes it).
			if _, err := cs.CoreV1().Pods(nsA).Create(ctx, inNS(nsA, pod("audited", "eci", "ls /host; sleep 3600", hostPathDir(protectedDir))), metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			waitPodIn(ctx, t, cs, nsA, "audited", 2*time.Minute, "the audited pod to run", running)
			ev := waitEvent(ctx, t, cs, nsA, "audited", "EciMountAudited")
			if !strings.Contains(ev, protectedDir) || !strings.Contains(ev, "Audit") {
				t.Errorf("EciMountAudited: %s", ev)
			}
			p := waitPodIn(ctx, t, cs, nsA, "audited", 30*time.Second, "the pod's policy condition", func(p *corev1.Pod) bool {
				return strings.Contains(policyCondition(p), policyName+" generation 2")
			})
			t.Logf("pod condition: %s", policyCondition(p))
			return ctx
		}).
		Assess("an exception by namespace lets exactly that namespace through", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			patchPolicy(ctx, t, dc, policyName, fmt.Sprintf(`{"spec":{"mode":"Enforce","protectedMounts":{"exceptions":[{"namespaces":[%q],"paths":[%q]}]}}}`, nsB, protectedDir))
			waitApplied(ctx, t, cs, dc, policyName)
			createPod(ctx, t, cs, inNS(nsB, pod("excepted", "eci", "ls /host", hostPathDir(protectedDir))))
			waitPodIn(ctx, t, cs, nsB, "excepted", 2*time.Minute, "the excepted pod to finish", succeeded)
			createPod(ctx, t, cs, inNS(nsA, pod("not-excepted", "eci", "ls /host", hostPathDir(protectedDir))))
			ev := waitEvent(ctx, t, cs, nsA, "not-excepted", "EciMountDenied")
			if !strings.Contains(ev, "generation 3") {
				t.Errorf("EciMountDenied does not name generation 3: %s", ev)
			}
			// The audited pod still runs under the generation it started with.
			p, err := cs.CoreV1().Pods(nsA).Get(ctx, "audited", metav1.GetOptions{})
			if err != nil || p.Status.Phase != corev1.PodRunning || !strings.Contains(policyCondition(p), "generation 2") {
				t.Errorf("the running audited pod: %v, %s, condition %q", err, podSummary(p), policyCondition(p))
			}
			return ctx
		}).
		Teardown(func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			_ = dc.Resource(policyGVR).Delete(ctx, policyName, metav1.DeleteOptions{})
			for _, ns := range []string{nsA, nsB} {
				_ = cs.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
			}
			return ctx
		}).Feature()
	testenv.Test(t, f)
}

// The chart's admission option refuses a runc pod in a namespace labelled
// eci.dev/enforce=true, with a message that says what to do, and admits an eci pod.
func TestAdmissionRequiresEci(t *testing.T) {
	requireE2E(t)
	ns := namespace + "-enforced"
	f := features.New("admission requires eci").
		Assess("a runc pod is refused in an enforced namespace", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			cs := clientset(t, cfg)
			obj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{"eci.dev/enforce": "true"}}}
			if _, err := cs.CoreV1().Namespaces().Create(ctx, obj, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cs.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
			// The binding may take a moment to be enforced after install.
			var err error
			_ = wait.PollUntilContextTimeout(ctx, time.Second, time.Minute, true, func(ctx context.Context) (bool, error) {
				_, err = cs.CoreV1().Pods(ns).Create(ctx, inNS(ns, pod("runc-pod", "", "true")), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
				return err != nil, nil
			})
			if err == nil {
				t.Fatal("a pod without runtimeClassName eci was admitted in a namespace labelled eci.dev/enforce=true")
			}
			if !apierrors.IsInvalid(err) && !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "must set runtimeClassName: eci") {
				t.Errorf("the refusal does not say what to do: %v", err)
			}
			if _, err := cs.CoreV1().Pods(ns).Create(ctx, inNS(ns, pod("eci-pod", "eci", "true")), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
				t.Errorf("an eci pod was refused: %v", err)
			}
			// A namespace without the label is not enforced.
			if _, err := cs.CoreV1().Pods(namespace).Create(ctx, pod("runc-free", "", "true"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
				t.Errorf("a runc pod was refused in a namespace without the label: %v", err)
			}
			return ctx
		}).Feature()
	testenv.Test(t, f)
}

func inNS(ns string, p *corev1.Pod) *corev1.Pod { p.Namespace = ns; return p }

func hostPathDir(path string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		typ := corev1.HostPathDirectoryOrCreate
		hostPath(path)(p)
		p.Spec.Volumes[len(p.Spec.Volumes)-1].HostPath.Type = &typ
	}
}

func succeeded(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodSucceeded }

func policyCondition(p *corev1.Pod) string {
	if p == nil {
		return ""
	}
	for _, c := range p.Status.Conditions {
		if c.Type == "eci.dev/IsolationPolicy" {
			return c.Message
		}
	}
	return ""
}

// waitPodIn waits until cond holds for the pod ns/name, and returns it.
func waitPodIn(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns, name string, timeout time.Duration, what string, cond func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	var last *corev1.Pod
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		last = p
		return cond(p), nil
	})
	if err != nil {
		t.Fatalf("pod %s/%s: waiting for %s: %v; last status: %s\nevents:\n%s", ns, name, what, err, podSummary(last), eventsIn(ctx, cs, ns, name))
	}
	return last
}

// eventsIn returns the pod's events, one per line (what kubectl describe shows).
func eventsIn(ctx context.Context, cs kubernetes.Interface, ns, name string) string {
	evs, err := cs.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + name})
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, e := range evs.Items {
		fmt.Fprintf(&b, "%s %s: %s\n", e.Type, e.Reason, e.Message)
	}
	return b.String()
}

// waitEvent waits for an Event with reason on the pod and returns its message.
func waitEvent(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns, name, reason string) string {
	t.Helper()
	var msg string
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		evs, err := cs.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + name + ",reason=" + reason})
		if err != nil || len(evs.Items) == 0 {
			return false, nil
		}
		msg = evs.Items[0].Message
		return true, nil
	})
	if err != nil {
		t.Fatalf("pod %s/%s: no %s Event: %v\nevents:\n%s", ns, name, reason, err, eventsIn(ctx, cs, ns, name))
	}
	return msg
}

func patchPolicy(ctx context.Context, t *testing.T, dc dynamic.Interface, name, patch string) {
	t.Helper()
	if _, err := dc.Resource(policyGVR).Patch(ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatalf("patching policy %s with %s: %v", name, patch, err)
	}
}

// waitApplied waits until every eci node reports the policy's current generation applied.
func waitApplied(ctx context.Context, t *testing.T, cs kubernetes.Interface, dc dynamic.Interface, name string) {
	t.Helper()
	var last string
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		p, err := dc.Resource(policyGVR).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "eci.dev/runtime=ready"})
		if err != nil || len(nodes.Items) == 0 {
			last = "no node labelled eci.dev/runtime=ready"
			return false, nil
		}
		for _, n := range nodes.Items {
			st, err := dc.Resource(nodeStatusGVR).Get(ctx, name+"."+n.Name, metav1.GetOptions{})
			if err != nil {
				last = err.Error()
				return false, nil
			}
			gen, _, _ := unstructured.NestedInt64(st.Object, "observedGeneration")
			state, _, _ := unstructured.NestedString(st.Object, "state")
			last = fmt.Sprintf("node %s: generation %d %s (want %d Applied)", n.Name, gen, state, p.GetGeneration())
			if gen != p.GetGeneration() || state != "Applied" {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("policy %s: not applied on every node: %v (%s)", name, err, last)
	}
}
