package controllers_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/eci-dev/eci/api/v1alpha1"
	"github.com/eci-dev/eci/controllers"
	"github.com/eci-dev/eci/internal/envtestutil"
)

// env is a running kube-apiserver with eci's CRDs and the controller's
// manager started against it.
type env struct {
	c   client.Client // direct, uncached
	mgr ctrl.Manager
}

// startEnv starts etcd and kube-apiserver from $KUBEBUILDER_ASSETS with the
// generated CRDs, and the controller's manager. It skips when the binaries
// are not configured, unless ECI_TEST_ENVTEST=1.
func startEnv(tb testing.TB) *env {
	tb.Helper()
	cfg := envtestutil.Start(tb, filepath.Join("..", "config", "crd", "bases"))
	// The controller's errors, not its chatter.
	ctrl.SetLogger(logr.FromSlogHandler(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	mgr, err := controllers.NewManager(controllers.Options{
		Config:                 cfg,
		MetricsBindAddress:     "0",
		HealthProbeBindAddress: "0",
		SkipNameValidation:     true,
		LeaderElect:            false,
	})
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("manager: %v", err)
		}
	})
	c, err := client.New(cfg, client.Options{Scheme: mgr.GetScheme()})
	if err != nil {
		tb.Fatal(err)
	}
	return &env{c: c, mgr: mgr}
}

// eventually polls check until it returns nil, failing with its last error
// after timeout.
func eventually(tb testing.TB, timeout time.Duration, check func() error) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("after %s: %v", timeout, err)
		}
		<-tick.C
	}
}

func (e *env) createNode(tb testing.TB, name string, ready bool) {
	tb.Helper()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if ready {
		n.Labels = map[string]string{controllers.RuntimeReadyLabel: controllers.RuntimeReadyValue}
	}
	if err := e.c.Create(context.Background(), n); err != nil {
		tb.Fatalf("creating node %s: %v", name, err)
	}
}

func (e *env) createPolicy(tb testing.TB, name string, priority int32, sel v1.PolicySelector) *v1.IsolationPolicy {
	tb.Helper()
	p := &v1.IsolationPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       v1.IsolationPolicySpec{Priority: priority, Selector: sel},
	}
	if err := e.c.Create(context.Background(), p); err != nil {
		tb.Fatalf("creating policy %s: %v", name, err)
	}
	return p
}

// report writes (creates or updates) node's status for the current
// generation of the policy, as eci-node will.
func (e *env) report(tb testing.TB, policy, node string, state v1.NodeState, msg string) {
	tb.Helper()
	ctx := context.Background()
	var p v1.IsolationPolicy
	if err := e.c.Get(ctx, types.NamespacedName{Name: policy}, &p); err != nil {
		tb.Fatal(err)
	}
	want, err := controllers.NewNodeStatus(&p, node, state, msg)
	if err != nil {
		tb.Fatal(err)
	}
	var got v1.IsolationPolicyNodeStatus
	err = e.c.Get(ctx, types.NamespacedName{Name: want.Name}, &got)
	switch {
	case apierrors.IsNotFound(err):
		err = e.c.Create(ctx, want)
	case err == nil:
		got.ObservedGeneration, got.State, got.Message = want.ObservedGeneration, want.State, want.Message
		err = e.c.Update(ctx, &got)
	}
	if err != nil {
		tb.Fatalf("reporting %s of policy %s on node %s: %v", state, policy, node, err)
	}
}

// policyStatus waits until policy's status describes its current
// generation and check accepts it.
func (e *env) waitStatus(tb testing.TB, policy string, check func(p *v1.IsolationPolicy) error) *v1.IsolationPolicy {
	tb.Helper()
	var p v1.IsolationPolicy
	eventually(tb, 30*time.Second, func() error {
		if err := e.c.Get(context.Background(), types.NamespacedName{Name: policy}, &p); err != nil {
			return err
		}
		if p.Status.ObservedGeneration != p.Generation {
			return fmt.Errorf("policy %s: observedGeneration %d, generation %d", policy, p.Status.ObservedGeneration, p.Generation)
		}
		for _, c := range p.Status.Conditions {
			if c.ObservedGeneration != p.Generation {
				return fmt.Errorf("policy %s: condition %s has observedGeneration %d, generation %d", policy, c.Type, c.ObservedGeneration, p.Generation)
			}
		}
		if err := check(&p); err != nil {
			return fmt.Errorf("policy %s: %w (status %+v)", policy, err, p.Status)
		}
		return nil
	})
	return &p
}

// cond checks a condition's status and reason, and that its message
// contains every one of contains.
func cond(typ string, status metav1.ConditionStatus, reason string, contains ...string) func(*v1.IsolationPolicy) error {
	return func(p *v1.IsolationPolicy) error {
		c := meta.FindStatusCondition(p.Status.Conditions, typ)
		if c == nil {
			return fmt.Errorf("no %s condition", typ)
		}
		if c.Status != status || c.Reason != reason {
			return fmt.Errorf("%s is %s/%s (%q), want %s/%s", typ, c.Status, c.Reason, c.Message, status, reason)
		}
		for _, s := range contains {
			if !strings.Contains(c.Message, s) {
				return fmt.Errorf("%s message %q does not contain %q", typ, c.Message, s)
			}
		}
		return nil
	}
}

func all(checks ...func(*v1.IsolationPolicy) error) func(*v1.IsolationPolicy) error {
	return func(p *v1.IsolationPolicy) error {
		var errs []error
		for _, c := range checks {
			if err := c(p); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
}

func nodes(desired, applied, failed int32) func(*v1.IsolationPolicy) error {
	return func(p *v1.IsolationPolicy) error {
		n := p.Status.Nodes
		if n.Desired != desired || n.Applied != applied || n.Failed != failed {
			return fmt.Errorf("nodes desired/applied/failed %d/%d/%d, want %d/%d/%d", n.Desired, n.Applied, n.Failed, desired, applied, failed)
		}
		return nil
	}
}

func TestController(t *testing.T) {
	e := startEnv(t)
	ctx := context.Background()
	for _, n := range []string{"node-1", "node-2", "node-3"} {
		e.createNode(t, n, true)
	}
	e.createNode(t, "node-without-eci", false)

	t.Run("conditions and node rollup", func(t *testing.T) {
		e.createPolicy(t, "rollup", 100, v1.PolicySelector{})
		e.waitStatus(t, "rollup", all(
			cond(controllers.ConditionValid, metav1.ConditionTrue, controllers.ReasonValid),
			cond(controllers.ConditionReady, metav1.ConditionFalse, controllers.ReasonRolling, "0 of 3 nodes applied generation 1"),
			nodes(3, 0, 0)))

		e.report(t, "rollup", "node-1", v1.NodeStateApplied, "")
		e.report(t, "rollup", "node-2", v1.NodeStateApplied, "")
		// A node without eci reporting does not count.
		e.report(t, "rollup", "node-without-eci", v1.NodeStateApplied, "")
		e.waitStatus(t, "rollup", all(
			cond(controllers.ConditionReady, metav1.ConditionFalse, controllers.ReasonRolling, "2 of 3 nodes applied generation 1"),
			nodes(3, 2, 0)))

		e.report(t, "rollup", "node-3", v1.NodeStateApplied, "")
		e.waitStatus(t, "rollup", all(
			cond(controllers.ConditionReady, metav1.ConditionTrue, controllers.ReasonApplied, "all 3 nodes"),
			nodes(3, 3, 0)))

		e.report(t, "rollup", "node-2", v1.NodeStateFailed, "cannot write /run/eci/policies: read-only file system")
		p := e.waitStatus(t, "rollup", all(
			cond(controllers.ConditionReady, metav1.ConditionFalse, controllers.ReasonFailed, "node-2: cannot write /run/eci/policies"),
			nodes(3, 2, 1)))
		if f := p.Status.Nodes.Failures; len(f) != 1 || f[0].Node != "node-2" {
			t.Errorf("failures %+v, want node-2 only", f)
		}

		// A node that stops being ready is no longer desired.
		var n corev1.Node
		if err := e.c.Get(ctx, types.NamespacedName{Name: "node-2"}, &n); err != nil {
			t.Fatal(err)
		}
		n.Labels[controllers.RuntimeReadyLabel] = "uninstalling"
		if err := e.c.Update(ctx, &n); err != nil {
			t.Fatal(err)
		}
		e.waitStatus(t, "rollup", all(
			cond(controllers.ConditionReady, metav1.ConditionTrue, controllers.ReasonApplied, "all 2 nodes"),
			nodes(2, 2, 0)))
		n.Labels[controllers.RuntimeReadyLabel] = controllers.RuntimeReadyValue
		if err := e.c.Update(ctx, &n); err != nil {
			t.Fatal(err)
		}
		e.waitStatus(t, "rollup", nodes(3, 2, 1))
	})

	t.Run("a new generation resets the applied count", func(t *testing.T) {
		e.createPolicy(t, "generations", 101, v1.PolicySelector{})
		for _, n := range []string{"node-1", "node-2", "node-3"} {
			e.report(t, "generations", n, v1.NodeStateApplied, "")
		}
		e.waitStatus(t, "generations", all(cond(controllers.ConditionReady, metav1.ConditionTrue, controllers.ReasonApplied), nodes(3, 3, 0)))

		var p v1.IsolationPolicy
		if err := e.c.Get(ctx, types.NamespacedName{Name: "generations"}, &p); err != nil {
			t.Fatal(err)
		}
		p.Spec.Mode = v1.ModeAudit
		if err := e.c.Update(ctx, &p); err != nil {
			t.Fatal(err)
		}
		got := e.waitStatus(t, "generations", all(
			cond(controllers.ConditionReady, metav1.ConditionFalse, controllers.ReasonRolling, "0 of 3 nodes applied generation 2"),
			nodes(3, 0, 0)))
		if got.Generation != 2 || got.Status.ObservedGeneration != 2 {
			t.Errorf("generation %d, observedGeneration %d, want 2 and 2", got.Generation, got.Status.ObservedGeneration)
		}
		e.report(t, "generations", "node-1", v1.NodeStateApplied, "")
		e.waitStatus(t, "generations", nodes(3, 1, 0))
	})

	t.Run("a conflicting spec is terminal and says why", func(t *testing.T) {
		e.createPolicy(t, "conflict-a", 200, v1.PolicySelector{})
		team := v1.PolicySelector{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "b"}}}
		e.createPolicy(t, "conflict-b", 200, team)
		e.waitStatus(t, "conflict-b", all(
			cond(controllers.ConditionValid, metav1.ConditionFalse, controllers.ReasonPriorityConflict, "conflict-a", "priority 200", "conflict-a wins the tie by name"),
			cond(controllers.ConditionReady, metav1.ConditionFalse, controllers.ReasonInvalid)))
		e.waitStatus(t, "conflict-a", cond(controllers.ConditionValid, metav1.ConditionTrue, controllers.ReasonWinsPriorityTie, "conflict-b"))

		// Terminal: reconciling it again succeeds without a requeue.
		r := &controllers.IsolationPolicyReconciler{Client: e.mgr.GetClient()}
		res, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: types.NamespacedName{Name: "conflict-b"}})
		if err != nil || !res.IsZero() {
			t.Errorf("Reconcile of an invalid policy = %+v, %v; want no requeue and no error", res, err)
		}

		// A disjoint selector at the same priority does not conflict.
		e.createPolicy(t, "conflict-c", 200, v1.PolicySelector{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "x"}}})
		e.createPolicy(t, "conflict-d", 200, v1.PolicySelector{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "y"}}})
		e.waitStatus(t, "conflict-d", cond(controllers.ConditionValid, metav1.ConditionFalse, controllers.ReasonPriorityConflict, "conflict-a"))

		// Editing the winner's priority makes the loser valid again.
		var a v1.IsolationPolicy
		if err := e.c.Get(ctx, types.NamespacedName{Name: "conflict-a"}, &a); err != nil {
			t.Fatal(err)
		}
		a.Spec.Priority = 201
		if err := e.c.Update(ctx, &a); err != nil {
			t.Fatal(err)
		}
		// conflict-b (namespaces team=b) and conflict-c (pods app=x) may both
		// select a pod app=x in a team=b namespace; conflict-c and conflict-d
		// select disjoint pods.
		e.waitStatus(t, "conflict-a", cond(controllers.ConditionValid, metav1.ConditionTrue, controllers.ReasonValid))
		e.waitStatus(t, "conflict-b", cond(controllers.ConditionValid, metav1.ConditionTrue, controllers.ReasonWinsPriorityTie, "conflict-c, conflict-d"))
		e.waitStatus(t, "conflict-c", cond(controllers.ConditionValid, metav1.ConditionFalse, controllers.ReasonPriorityConflict, "conflicts with policy conflict-b, "))
		d := e.waitStatus(t, "conflict-d", cond(controllers.ConditionValid, metav1.ConditionFalse, controllers.ReasonPriorityConflict, "conflicts with policy conflict-b, "))
		if m := meta.FindStatusCondition(d.Status.Conditions, controllers.ConditionValid).Message; strings.Contains(m, "conflict-c") {
			t.Errorf("conflict-d, disjoint from conflict-c, names it: %s", m)
		}
	})

	t.Run("node status names are validated", func(t *testing.T) {
		bad := &v1.IsolationPolicyNodeStatus{
			ObjectMeta: metav1.ObjectMeta{Name: "rollup.node-9"},
			PolicyName: "rollup", NodeName: "node-1", State: v1.NodeStateApplied,
		}
		err := e.c.Create(ctx, bad)
		if err == nil || !strings.Contains(err.Error(), "the name must be <policyName>.<nodeName>") {
			t.Errorf("creating a node status named %s for node-1: %v, want a refusal", bad.Name, err)
		}
		if _, err := v1.NodeStatusName(strings.Repeat("p", 200), strings.Repeat("n", 60)); err == nil {
			t.Error("NodeStatusName accepted a 261-character name")
		}
	})

	t.Run("deletion", func(t *testing.T) {
		// envtest runs no garbage collector (it has no kube-controller-manager):
		// this checks what the garbage collector relies on, that every node
		// status is owned by its policy with the policy's UID and that nothing
		// (no finalizer) holds the policy's deletion up.
		p := e.createPolicy(t, "deleted", 102, v1.PolicySelector{})
		for _, n := range []string{"node-1", "node-2"} {
			e.report(t, "deleted", n, v1.NodeStateApplied, "")
		}
		e.waitStatus(t, "deleted", nodes(3, 2, 0))
		var list v1.IsolationPolicyNodeStatusList
		if err := e.c.List(ctx, &list); err != nil {
			t.Fatal(err)
		}
		owned := 0
		for _, s := range list.Items {
			if s.PolicyName != "deleted" {
				continue
			}
			owned++
			refs := s.OwnerReferences
			if len(refs) != 1 || refs[0].Kind != "IsolationPolicy" || refs[0].APIVersion != v1.GroupVersion.String() || refs[0].Name != "deleted" || refs[0].UID != p.UID {
				t.Errorf("node status %s: owner references %+v, want the policy deleted (uid %s)", s.Name, refs, p.UID)
			}
			if len(s.Finalizers) != 0 {
				t.Errorf("node status %s has finalizers %v", s.Name, s.Finalizers)
			}
		}
		if owned != 2 {
			t.Errorf("%d node statuses of policy deleted, want 2", owned)
		}
		var got v1.IsolationPolicy
		if err := e.c.Get(ctx, types.NamespacedName{Name: "deleted"}, &got); err != nil {
			t.Fatal(err)
		}
		if len(got.Finalizers) != 0 {
			t.Errorf("policy has finalizers %v; deletion must not wait for nodes", got.Finalizers)
		}
		if err := e.c.Delete(ctx, &got); err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, func() error {
			err := e.c.Get(ctx, types.NamespacedName{Name: "deleted"}, &got)
			if apierrors.IsNotFound(err) {
				return nil
			}
			return fmt.Errorf("policy still there after delete: %v", err)
		})
		// The reconciler treats the vanished policy as done.
		r := &controllers.IsolationPolicyReconciler{Client: e.mgr.GetClient()}
		eventually(t, 10*time.Second, func() error {
			res, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: types.NamespacedName{Name: "deleted"}})
			if err != nil || !res.IsZero() {
				return fmt.Errorf("Reconcile of a deleted policy = %+v, %v", res, err)
			}
			return nil
		})
	})
}
