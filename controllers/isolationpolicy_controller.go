// Package controllers holds eci's controller: it validates IsolationPolicy
// objects beyond what the API server's CEL rules can, and rolls up the
// per-node IsolationPolicyNodeStatus objects that eci-node writes into each
// policy's status.
package controllers

import (
	"context"
	"fmt"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1 "github.com/eci-dev/eci/api/v1alpha1"
)

const (
	// RuntimeReadyLabel marks the nodes where eci-node installed eci: the
	// nodes that must apply every policy.
	RuntimeReadyLabel = "eci.dev/runtime"
	// RuntimeReadyValue is RuntimeReadyLabel's value on a ready node.
	RuntimeReadyValue = "ready"

	// Cache indexes.
	indexNodeStatusPolicy = "policyName"
	indexPolicyPriority   = "spec.priority"
)

// IsolationPolicyReconciler sets the Valid and Ready conditions, the
// observedGeneration and the node rollup of IsolationPolicy objects.
type IsolationPolicyReconciler struct {
	Client   client.Client
	Recorder record.EventRecorder
	metrics  *policyMetrics
}

// +kubebuilder:rbac:groups=eci.dev,resources=isolationpolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=eci.dev,resources=isolationpolicies/status,verbs=update;patch
// +kubebuilder:rbac:groups=eci.dev,resources=isolationpolicynodestatuses,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=eci-system,resources=leases,verbs=get;create;update

// Reconcile is thin: fetch, ignore not-found, nothing to do on deletion
// (owner references garbage-collect the node statuses), else compute the
// status and patch it once. An invalid spec is terminal: it is reported in
// the Valid condition and not retried; an edit of this or a conflicting
// policy triggers the next reconcile.
func (r *IsolationPolicyReconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, err error) {
	start := time.Now()
	defer func() { r.metrics.observe(time.Since(start), err) }()

	var p v1.IsolationPolicy
	if err := r.Client.Get(ctx, req.NamespacedName, &p); err != nil {
		if apierrors.IsNotFound(err) {
			r.metrics.forget(req.Name)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("getting isolationpolicy %s: %w", req.Name, err)
	}
	if !p.DeletionTimestamp.IsZero() {
		r.metrics.forget(p.Name)
		return ctrl.Result{}, nil
	}
	return ctrl.Result{}, r.reconcile(ctx, &p)
}

func (r *IsolationPolicyReconciler) reconcile(ctx context.Context, p *v1.IsolationPolicy) error {
	var peers v1.IsolationPolicyList
	if err := r.Client.List(ctx, &peers, client.MatchingFields{indexPolicyPriority: strconv.Itoa(int(p.Spec.Priority))}); err != nil {
		return fmt.Errorf("listing isolationpolicies with priority %d for policy %s: %w", p.Spec.Priority, p.Name, err)
	}
	var nodes corev1.NodeList
	if err := r.Client.List(ctx, &nodes, client.MatchingLabels{RuntimeReadyLabel: RuntimeReadyValue}); err != nil {
		return fmt.Errorf("listing nodes labelled %s=%s for policy %s: %w", RuntimeReadyLabel, RuntimeReadyValue, p.Name, err)
	}
	var statuses v1.IsolationPolicyNodeStatusList
	if err := r.Client.List(ctx, &statuses, client.MatchingFields{indexNodeStatusPolicy: p.Name}); err != nil {
		return fmt.Errorf("listing isolationpolicynodestatuses of policy %s: %w", p.Name, err)
	}
	readyNodes := make([]string, 0, len(nodes.Items))
	for _, n := range nodes.Items {
		readyNodes = append(readyNodes, n.Name)
	}

	conds, rollup := computeStatus(statusInput{policy: p, others: peers.Items, readyNodes: readyNodes, nodeStatuses: statuses.Items})

	next := p.DeepCopy()
	next.Status.ObservedGeneration = p.Generation
	next.Status.Nodes = rollup
	for _, c := range conds {
		meta.SetStatusCondition(&next.Status.Conditions, c)
	}
	r.metrics.record(p.Name, next.Status.Conditions)
	if apiequality.Semantic.DeepEqual(p.Status, next.Status) {
		return nil
	}
	if r.Recorder != nil {
		was := meta.FindStatusCondition(p.Status.Conditions, ConditionValid)
		now := meta.FindStatusCondition(next.Status.Conditions, ConditionValid)
		if now.Status == "False" && (was == nil || was.Status != now.Status || was.Message != now.Message) {
			r.Recorder.Event(p, corev1.EventTypeWarning, now.Reason, now.Message)
		}
	}
	if err := r.Client.Status().Patch(ctx, next, client.MergeFrom(p)); err != nil {
		return fmt.Errorf("patching the status of isolationpolicy %s: %w", p.Name, err)
	}
	return nil
}

// SetupWithManager registers the indexes and watches: policies (a change
// also re-evaluates the policies of the same priority, old and new), node
// statuses (their policy) and nodes whose eci.dev/runtime label changes (all
// policies).
func (r *IsolationPolicyReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.metrics == nil {
		r.metrics = newPolicyMetrics()
	}
	ctx := context.Background()
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(ctx, &v1.IsolationPolicyNodeStatus{}, indexNodeStatusPolicy, func(o client.Object) []string {
		return []string{o.(*v1.IsolationPolicyNodeStatus).PolicyName}
	}); err != nil {
		return fmt.Errorf("indexing isolationpolicynodestatuses by policyName: %w", err)
	}
	if err := idx.IndexField(ctx, &v1.IsolationPolicy{}, indexPolicyPriority, func(o client.Object) []string {
		return []string{strconv.Itoa(int(o.(*v1.IsolationPolicy).Spec.Priority))}
	}); err != nil {
		return fmt.Errorf("indexing isolationpolicies by priority: %w", err)
	}

	return ctrl.NewControllerManagedBy(mgr).
		Named("isolationpolicy").
		For(&v1.IsolationPolicy{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Watches(&v1.IsolationPolicy{}, &samePriorityHandler{c: mgr.GetClient()}).
		Watches(&v1.IsolationPolicyNodeStatus{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: o.(*v1.IsolationPolicyNodeStatus).PolicyName}}}
		})).
		Watches(&corev1.Node{}, handler.EnqueueRequestsFromMapFunc(r.allPolicies), builder.WithPredicates(runtimeLabelChanged())).
		Complete(r)
}

// allPolicies maps any object to every policy.
func (r *IsolationPolicyReconciler) allPolicies(ctx context.Context, _ client.Object) []reconcile.Request {
	var list v1.IsolationPolicyList
	if err := r.Client.List(ctx, &list); err != nil {
		// The cache-backed list fails only when the cache is gone; the
		// next node event retries.
		ctrl.LoggerFrom(ctx).Error(err, "listing isolationpolicies to re-evaluate after a node change")
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for _, p := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Name: p.Name}})
	}
	return reqs
}

// runtimeLabelChanged passes node creations and deletions, and updates that
// change the eci.dev/runtime label.
func runtimeLabelChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			return e.ObjectOld.GetLabels()[RuntimeReadyLabel] != e.ObjectNew.GetLabels()[RuntimeReadyLabel]
		},
		GenericFunc: func(event.GenericEvent) bool { return false },
	}
}

// samePriorityHandler enqueues, for a policy event, the other policies with
// the policy's priority (before and after an update), whose Valid condition
// may depend on it.
type samePriorityHandler struct{ c client.Client }

var _ handler.TypedEventHandler[client.Object, reconcile.Request] = &samePriorityHandler{}

type queue = workqueue.TypedRateLimitingInterface[reconcile.Request]

func (h *samePriorityHandler) enqueue(ctx context.Context, q queue, o client.Object) {
	p := o.(*v1.IsolationPolicy)
	var list v1.IsolationPolicyList
	if err := h.c.List(ctx, &list, client.MatchingFields{indexPolicyPriority: strconv.Itoa(int(p.Spec.Priority))}); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "listing isolationpolicies of the same priority", "policy", p.Name)
		return
	}
	for _, other := range list.Items {
		if other.Name != p.Name {
			q.Add(reconcile.Request{NamespacedName: types.NamespacedName{Name: other.Name}})
		}
	}
}

func (h *samePriorityHandler) Create(ctx context.Context, e event.CreateEvent, q queue) {
	h.enqueue(ctx, q, e.Object)
}

func (h *samePriorityHandler) Update(ctx context.Context, e event.UpdateEvent, q queue) {
	if e.ObjectOld.GetGeneration() == e.ObjectNew.GetGeneration() && e.ObjectOld.GetDeletionTimestamp().Equal(e.ObjectNew.GetDeletionTimestamp()) {
		return // a status update: no other policy's validity changed
	}
	h.enqueue(ctx, q, e.ObjectOld)
	h.enqueue(ctx, q, e.ObjectNew)
}

func (h *samePriorityHandler) Delete(ctx context.Context, e event.DeleteEvent, q queue) {
	h.enqueue(ctx, q, e.Object)
}

func (h *samePriorityHandler) Generic(context.Context, event.GenericEvent, queue) {}

// NewNodeStatus is the IsolationPolicyNodeStatus a node writes to report
// that it applied (or failed to apply) the current generation of p: named
// <policy>.<node>, owned by p so that deleting p garbage-collects it, and
// without blockOwnerDeletion or finalizers, so a vanished node never holds a
// deletion up.
func NewNodeStatus(p *v1.IsolationPolicy, node string, state v1.NodeState, message string) (*v1.IsolationPolicyNodeStatus, error) {
	name, err := v1.NodeStatusName(p.Name, node)
	if err != nil {
		return nil, err
	}
	return &v1.IsolationPolicyNodeStatus{
		ObjectMeta: metav1.ObjectMeta{
			Name: name,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: v1.GroupVersion.String(),
				Kind:       "IsolationPolicy",
				Name:       p.Name,
				UID:        p.UID,
			}},
		},
		PolicyName:         p.Name,
		NodeName:           node,
		ObservedGeneration: p.Generation,
		State:              state,
		Message:            message,
	}, nil
}
