package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/eci-dev/eci/api/v1alpha1"
	"github.com/eci-dev/eci/internal/envtestutil"
	rpolicy "github.com/eci-dev/eci/runtime/policy"
)

// The Syncer against a real kube-apiserver: pod files follow policy edits and namespace
// relabelling, pods on other nodes get nothing, node statuses say Applied or Failed,
// reports become Events, the pod condition and metrics, and a deleted pod's file goes.
func TestSyncerAgainstAPIServer(t *testing.T) {
	cfg := envtestutil.Start(t, filepath.Join("..", "..", "config", "crd", "bases"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	scheme, err := Scheme()
	if err != nil {
		t.Fatal(err)
	}
	cl, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	kube := kubernetes.NewForConfigOrDie(cfg)
	opts := NewCacheOptions("node-1")
	opts.Scheme = scheme
	c, err := cache.New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	runDir := t.TempDir()
	s := &Syncer{
		Cache: c, Client: cl, Kube: kube, NodeName: "node-1", RunDir: runDir,
		Node: Node{PoolSize: 1 << 30, IDsPerPod: 65536}, SpoolInterval: 50 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(cl.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team", Labels: map[string]string{"tier": "prod"}}}))
	mkPod := func(name, node string) *corev1.Pod {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "team"},
			Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{
				{Name: "app", Image: "example.com/app@sha256:" + strings.Repeat("c", 64)},
				{Name: "side", Image: "example.com/side:1"},
			}},
		}
		must(cl.Create(ctx, p))
		return p
	}
	here, there := mkPod("here", "node-1"), mkPod("there", "node-2")
	team := &v1.IsolationPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "team"},
		Spec: v1.IsolationPolicySpec{
			Priority: 10, Mode: v1.ModeEnforce,
			Selector:        v1.PolicySelector{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "prod"}}},
			ProtectedMounts: v1.ProtectedMounts{Paths: []v1.AbsolutePath{"/srv/a"}},
		},
	}
	must(cl.Create(ctx, team))
	catchAll := &v1.IsolationPolicy{ObjectMeta: metav1.ObjectMeta{Name: "catch-all"}, Spec: v1.IsolationPolicySpec{Mode: v1.ModeAudit}}
	must(cl.Create(ctx, catchAll))

	podFile := func(p *corev1.Pod) (rpolicy.Pod, error) {
		var out rpolicy.Pod
		data, err := os.ReadFile(rpolicy.PodFile(runDir, string(p.UID)))
		if err != nil {
			return out, err
		}
		return out, json.Unmarshal(data, &out)
	}
	waitFor := func(what string, cond func() (bool, string)) {
		t.Helper()
		var last string
		err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 15*time.Second, true, func(context.Context) (bool, error) {
			ok, l := cond()
			last = l
			return ok, nil
		})
		if err != nil {
			t.Fatalf("waiting for %s: %v (last: %s)", what, err, last)
		}
	}
	governedBy := func(p *corev1.Pod, name string, gen int64) func() (bool, string) {
		return func() (bool, string) {
			got, err := podFile(p)
			if err != nil {
				return false, err.Error()
			}
			return got.Policy.Name == name && got.Policy.Generation == gen, got.Policy.String()
		}
	}
	waitFor("pod here governed by team generation 1", governedBy(here, "team", 1))
	got, _ := podFile(here)
	if got.Images["app"] != "sha256:"+strings.Repeat("c", 64) || got.Images["side"] != "" || got.Namespace != "team" {
		t.Errorf("pod file: images %v, namespace %q", got.Images, got.Namespace)
	}
	if _, err := os.Stat(rpolicy.StrictFile(runDir)); err != nil {
		t.Errorf("no strict policy: %v", err)
	}
	if _, err := podFile(there); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a pod on another node got a policy file: %v", err)
	}
	nodeStatus := func(policy string, gen int64, state v1.NodeState) func() (bool, string) {
		return func() (bool, string) {
			var st v1.IsolationPolicyNodeStatus
			if err := cl.Get(ctx, types.NamespacedName{Name: policy + ".node-1"}, &st); err != nil {
				return false, err.Error()
			}
			return st.ObservedGeneration == gen && st.State == state, string(st.State) + ": " + st.Message
		}
	}
	waitFor("team's node status Applied", nodeStatus("team", 1, v1.NodeStateApplied))

	// A policy edit reaches the pod file within seconds.
	must(cl.Get(ctx, types.NamespacedName{Name: "team"}, team))
	team.Spec.ProtectedMounts.Paths = append(team.Spec.ProtectedMounts.Paths, "/srv/b")
	must(cl.Update(ctx, team))
	start := time.Now()
	waitFor("pod here governed by team generation 2", governedBy(here, "team", 2))
	t.Logf("generation 2 reached the pod file %s after the update", time.Since(start).Round(time.Millisecond))
	waitFor("team's node status generation 2", nodeStatus("team", 2, v1.NodeStateApplied))

	// Relabelling the namespace moves the pod to the catch-all policy.
	var ns corev1.Namespace
	must(cl.Get(ctx, types.NamespacedName{Name: "team"}, &ns))
	ns.Labels["tier"] = "dev"
	must(cl.Update(ctx, &ns))
	waitFor("pod here governed by catch-all", governedBy(here, "catch-all", 1))

	// A policy the node cannot apply, outranking the match, makes the pod strict.
	broken := &v1.IsolationPolicy{ObjectMeta: metav1.ObjectMeta{Name: "broken"}, Spec: v1.IsolationPolicySpec{
		Priority: 100,
		Selector: v1.PolicySelector{PodSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "a", Operator: "Bogus"}}}},
	}}
	must(cl.Create(ctx, broken))
	waitFor("broken's node status Failed", nodeStatus("broken", 1, v1.NodeStateFailed))
	waitFor("pod here strict", governedBy(here, rpolicy.StrictName, 0))
	must(cl.Delete(ctx, broken))
	waitFor("pod here back to catch-all", governedBy(here, "catch-all", 1))

	// Reports become Events, the pod condition and metrics.
	must(rpolicy.Spool(runDir, rpolicy.Report{
		Kind: rpolicy.KindDenied, Type: "Warning", Reason: "EciMountDenied", Message: "refused /srv/a",
		PodUID: string(here.UID), Namespace: "team", Name: "here", Policy: "team", Generation: 2, Mode: rpolicy.Enforce,
	}))
	must(rpolicy.Spool(runDir, rpolicy.Report{
		Kind: rpolicy.KindStarted, Type: "Normal", Reason: "EciPolicyApplied", Message: "started",
		PodUID: string(here.UID), Namespace: "team", Name: "here", Policy: "team", Generation: 2, Mode: rpolicy.Enforce, Source: rpolicy.FromPod,
	}))
	waitFor("the EciMountDenied Event", func() (bool, string) {
		evs, err := kube.CoreV1().Events("team").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=here,reason=EciMountDenied"})
		if err != nil || len(evs.Items) == 0 {
			return false, "none"
		}
		e := evs.Items[0]
		return e.Type == corev1.EventTypeWarning && e.Message == "refused /srv/a" && e.InvolvedObject.UID == here.UID, e.Message
	})
	waitFor("the pod's policy condition", func() (bool, string) {
		var p corev1.Pod
		if err := cl.Get(ctx, types.NamespacedName{Namespace: "team", Name: "here"}, &p); err != nil {
			return false, err.Error()
		}
		for _, c := range p.Status.Conditions {
			if c.Type == ConditionType {
				return c.Status == corev1.ConditionTrue && strings.Contains(c.Message, "team generation 2"), c.Message
			}
		}
		return false, "no condition"
	})
	if n := testutil.ToFloat64(s.metrics.reports.WithLabelValues(rpolicy.KindDenied, "EciMountDenied", "team", "Enforce")); n != 1 {
		t.Errorf("eci_policy_reports_total{kind=denied} = %v, want 1", n)
	}

	// A policy deleted and created again under the same name gets its node status anew
	// (the old one belongs to the deleted object).
	must(cl.Delete(ctx, catchAll))
	catchAll = &v1.IsolationPolicy{ObjectMeta: metav1.ObjectMeta{Name: "catch-all"}, Spec: v1.IsolationPolicySpec{Mode: v1.ModeAudit}}
	must(cl.Create(ctx, catchAll))
	waitFor("catch-all's node status owned by the new object", func() (bool, string) {
		var st v1.IsolationPolicyNodeStatus
		if err := cl.Get(ctx, types.NamespacedName{Name: "catch-all.node-1"}, &st); err != nil {
			return false, err.Error()
		}
		return len(st.OwnerReferences) == 1 && st.OwnerReferences[0].UID == catchAll.UID, fmt.Sprint(st.OwnerReferences)
	})

	// A deleted pod's file is removed.
	must(cl.Delete(ctx, here, client.GracePeriodSeconds(0))) // no kubelet here to finish a graceful delete
	waitFor("pod here's file removed", func() (bool, string) {
		_, err := podFile(here)
		return errors.Is(err, fs.ErrNotExist), "still there"
	})
}
