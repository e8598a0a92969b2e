package controllers

import (
	"fmt"
	"sort"
	"strings"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/eci-dev/eci/api/v1alpha1"
)

// Condition types and reasons of an IsolationPolicy.
//
// Equal priorities: DESIGN §6 breaks a tie between policies that select the
// same pods by name, the first in alphabetical order winning. The controller
// makes the tie visible rather than silent: the policy that loses the tie is
// Valid=False/PriorityConflict (terminal: nothing but an edit of one of the
// two policies changes it), naming the winner; the winner stays
// Valid=True/WinsPriorityTie, naming the policies it beats. Nodes still apply
// both, with the tie-break, so the cluster behaves as documented either way.
const (
	ConditionValid = "Valid"
	ConditionReady = "Ready"

	ReasonValid            = "Valid"
	ReasonWinsPriorityTie  = "WinsPriorityTie"
	ReasonPriorityConflict = "PriorityConflict"

	ReasonApplied      = "Applied"
	ReasonRolling      = "Rolling"
	ReasonFailed       = "Failed"
	ReasonNoReadyNodes = "NoReadyNodes"
	ReasonInvalid      = "Invalid"
)

// maxFailures is how many failed nodes the status names (the CRD allows 16).
const maxFailures = 16

// statusInput is everything the status of one policy depends on.
type statusInput struct {
	policy *v1.IsolationPolicy
	// others are the other policies (the policy itself may be among them and
	// is ignored).
	others []v1.IsolationPolicy
	// readyNodes are the names of the nodes labelled eci.dev/runtime=ready.
	readyNodes []string
	// nodeStatuses are the policy's IsolationPolicyNodeStatus objects.
	nodeStatuses []v1.IsolationPolicyNodeStatus
}

// computeStatus is the pure heart of the reconciler: the conditions (without
// transition times: meta.SetStatusCondition keeps those) and the node rollup
// of a policy. A node counts as applied only when its status is for the
// policy's current generation.
func computeStatus(in statusInput) ([]metav1.Condition, v1.NodeRollup) {
	p := in.policy
	gen := p.Generation

	valid := validCondition(p, in.others)
	valid.ObservedGeneration = gen

	byNode := make(map[string]*v1.IsolationPolicyNodeStatus, len(in.nodeStatuses))
	for i := range in.nodeStatuses {
		s := &in.nodeStatuses[i]
		if s.PolicyName == p.Name {
			byNode[s.NodeName] = s
		}
	}
	nodes := append([]string(nil), in.readyNodes...)
	sort.Strings(nodes)
	rollup := v1.NodeRollup{Desired: int32(len(nodes))}
	var failures []v1.NodeFailure
	for _, n := range nodes {
		s, ok := byNode[n]
		if !ok || s.ObservedGeneration != gen {
			continue // not reported this generation yet
		}
		switch s.State {
		case v1.NodeStateApplied:
			rollup.Applied++
		case v1.NodeStateFailed:
			rollup.Failed++
			msg := s.Message
			if msg == "" {
				msg = "no message"
			}
			failures = append(failures, v1.NodeFailure{Node: n, Message: truncate(msg, 1024)})
		}
	}
	if len(failures) > maxFailures {
		rollup.Failures = failures[:maxFailures]
	} else {
		rollup.Failures = failures
	}

	ready := metav1.Condition{Type: ConditionReady, ObservedGeneration: gen}
	switch {
	case valid.Status == metav1.ConditionFalse:
		ready.Status, ready.Reason = metav1.ConditionFalse, ReasonInvalid
		ready.Message = "the spec is not valid (see the Valid condition)"
	case rollup.Failed > 0:
		names := make([]string, 0, len(failures))
		for _, f := range failures {
			names = append(names, f.Node+": "+f.Message)
		}
		ready.Status, ready.Reason = metav1.ConditionFalse, ReasonFailed
		ready.Message = truncate(fmt.Sprintf("%d of %d nodes failed to apply generation %d: %s",
			rollup.Failed, rollup.Desired, gen, strings.Join(names, "; ")), 32768)
	case rollup.Desired == 0:
		ready.Status, ready.Reason = metav1.ConditionFalse, ReasonNoReadyNodes
		ready.Message = "no node is labelled eci.dev/runtime=ready"
	case rollup.Applied < rollup.Desired:
		ready.Status, ready.Reason = metav1.ConditionFalse, ReasonRolling
		ready.Message = fmt.Sprintf("%d of %d nodes applied generation %d", rollup.Applied, rollup.Desired, gen)
	default:
		ready.Status, ready.Reason = metav1.ConditionTrue, ReasonApplied
		ready.Message = fmt.Sprintf("all %d nodes applied generation %d", rollup.Desired, gen)
	}
	return []metav1.Condition{valid, ready}, rollup
}

// validCondition checks what CEL cannot: another policy with the same
// priority whose selector may select the same pods.
func validCondition(p *v1.IsolationPolicy, others []v1.IsolationPolicy) metav1.Condition {
	var winners, losers []string
	for i := range others {
		o := &others[i]
		if o.Name == p.Name || o.DeletionTimestamp != nil || o.Spec.Priority != p.Spec.Priority {
			continue
		}
		if !selectorsOverlap(p.Spec.Selector, o.Spec.Selector) {
			continue
		}
		if o.Name < p.Name {
			winners = append(winners, o.Name)
		} else {
			losers = append(losers, o.Name)
		}
	}
	sort.Strings(winners)
	sort.Strings(losers)
	c := metav1.Condition{Type: ConditionValid, Status: metav1.ConditionTrue}
	switch {
	case len(winners) > 0:
		c.Status, c.Reason = metav1.ConditionFalse, ReasonPriorityConflict
		c.Message = truncate(fmt.Sprintf("priority %d conflicts with policy %s, which has the same priority and may select the same pods; %s wins the tie by name, so it governs the pods both select: give one of them a different priority or disjoint selectors",
			p.Spec.Priority, strings.Join(winners, ", "), winners[0]), 32768)
	case len(losers) > 0:
		c.Reason = ReasonWinsPriorityTie
		c.Message = truncate(fmt.Sprintf("policy %s has the same priority %d and may select the same pods; this policy wins the tie by name",
			strings.Join(losers, ", "), p.Spec.Priority), 32768)
	default:
		c.Reason = ReasonValid
		c.Message = "the spec is valid"
	}
	return c
}

// selectorsOverlap reports whether two policy selectors may select the same
// pod. It is conservative: it answers true only when it is sure, namely when
// for both the namespace and the pod selector the two are identical or one
// of them is empty (selects everything). Selectors that differ otherwise are
// treated as disjoint, even if some pod could match both.
func selectorsOverlap(a, b v1.PolicySelector) bool {
	return labelSelectorsOverlap(a.NamespaceSelector, b.NamespaceSelector) &&
		labelSelectorsOverlap(a.PodSelector, b.PodSelector)
}

func labelSelectorsOverlap(a, b *metav1.LabelSelector) bool {
	if selectsAll(a) || selectsAll(b) {
		return true
	}
	return apiequality.Semantic.DeepEqual(normalize(a), normalize(b))
}

func selectsAll(s *metav1.LabelSelector) bool {
	return s == nil || (len(s.MatchLabels) == 0 && len(s.MatchExpressions) == 0)
}

// normalize sorts a selector's expressions and their values, so that
// selectors that differ only in order compare equal.
func normalize(s *metav1.LabelSelector) *metav1.LabelSelector {
	n := s.DeepCopy()
	if len(n.MatchLabels) == 0 {
		n.MatchLabels = nil
	}
	for i := range n.MatchExpressions {
		sort.Strings(n.MatchExpressions[i].Values)
		if len(n.MatchExpressions[i].Values) == 0 {
			n.MatchExpressions[i].Values = nil
		}
	}
	sort.Slice(n.MatchExpressions, func(i, j int) bool {
		a, b := n.MatchExpressions[i], n.MatchExpressions[j]
		if a.Key != b.Key {
			return a.Key < b.Key
		}
		if a.Operator != b.Operator {
			return a.Operator < b.Operator
		}
		return strings.Join(a.Values, ",") < strings.Join(b.Values, ",")
	})
	if len(n.MatchExpressions) == 0 {
		n.MatchExpressions = nil
	}
	return n
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}
