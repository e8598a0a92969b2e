package controllers

import (
	"fmt"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/eci-dev/eci/api/v1alpha1"
)

func policy(name string, gen int64, prio int32, sel v1.PolicySelector) v1.IsolationPolicy {
	return v1.IsolationPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name, Generation: gen},
		Spec:       v1.IsolationPolicySpec{Priority: prio, Selector: sel},
	}
}

func ns(labels map[string]string) v1.PolicySelector {
	return v1.PolicySelector{NamespaceSelector: &metav1.LabelSelector{MatchLabels: labels}}
}

func pods(labels map[string]string) v1.PolicySelector {
	return v1.PolicySelector{PodSelector: &metav1.LabelSelector{MatchLabels: labels}}
}

func nodeStatus(policy, node string, gen int64, state v1.NodeState, msg string) v1.IsolationPolicyNodeStatus {
	return v1.IsolationPolicyNodeStatus{PolicyName: policy, NodeName: node, ObservedGeneration: gen, State: state, Message: msg}
}

func TestComputeStatus(t *testing.T) {
	t.Parallel()
	three := []string{"n3", "n1", "n2"}
	tests := []struct {
		name        string
		policy      v1.IsolationPolicy
		others      []v1.IsolationPolicy
		nodes       []string
		statuses    []v1.IsolationPolicyNodeStatus
		valid       string // status/reason
		ready       string
		rollup      string // desired/applied/failed
		validMsg    []string
		readyMsg    []string
		failedNodes []string
	}{{
		name:   "no nodes",
		policy: policy("p", 1, 0, v1.PolicySelector{}),
		valid:  "True/Valid", ready: "False/NoReadyNodes", rollup: "0/0/0",
	}, {
		name:   "rolling",
		policy: policy("p", 2, 0, v1.PolicySelector{}), nodes: three,
		statuses: []v1.IsolationPolicyNodeStatus{
			nodeStatus("p", "n1", 2, v1.NodeStateApplied, ""),
			nodeStatus("p", "n2", 2, v1.NodeStateApplied, ""),
			nodeStatus("p", "n3", 1, v1.NodeStateApplied, ""), // older generation
		},
		valid: "True/Valid", ready: "False/Rolling", rollup: "3/2/0",
		readyMsg: []string{"2 of 3 nodes applied generation 2"},
	}, {
		name:   "all applied; statuses of other nodes and policies ignored",
		policy: policy("p", 2, 0, v1.PolicySelector{}), nodes: three,
		statuses: []v1.IsolationPolicyNodeStatus{
			nodeStatus("p", "n1", 2, v1.NodeStateApplied, ""),
			nodeStatus("p", "n2", 2, v1.NodeStateApplied, ""),
			nodeStatus("p", "n3", 2, v1.NodeStateApplied, ""),
			nodeStatus("p", "gone", 2, v1.NodeStateFailed, "x"),
			nodeStatus("q", "n1", 2, v1.NodeStateFailed, "x"),
		},
		valid: "True/Valid", ready: "True/Applied", rollup: "3/3/0",
	}, {
		name:   "failed wins over rolling and names the nodes",
		policy: policy("p", 3, 0, v1.PolicySelector{}), nodes: three,
		statuses: []v1.IsolationPolicyNodeStatus{
			nodeStatus("p", "n2", 3, v1.NodeStateFailed, "disk full"),
			nodeStatus("p", "n1", 3, v1.NodeStateFailed, ""),
			nodeStatus("p", "n3", 2, v1.NodeStateFailed, "old news"),
		},
		valid: "True/Valid", ready: "False/Failed", rollup: "3/0/2",
		readyMsg:    []string{"2 of 3 nodes failed to apply generation 3", "n1: no message", "n2: disk full"},
		failedNodes: []string{"n1", "n2"},
	}, {
		name:   "equal priority, both select everything: the later name loses",
		policy: policy("zeta", 1, 5, v1.PolicySelector{}), nodes: three,
		others: []v1.IsolationPolicy{policy("alpha", 1, 5, v1.PolicySelector{}), policy("zeta", 1, 5, v1.PolicySelector{})},
		valid:  "False/PriorityConflict", ready: "False/Invalid", rollup: "3/0/0",
		validMsg: []string{"priority 5 conflicts with policy alpha", "alpha wins the tie by name"},
	}, {
		name:   "equal priority: the earlier name wins and says so",
		policy: policy("alpha", 1, 5, ns(map[string]string{"a": "b"})), nodes: three,
		others: []v1.IsolationPolicy{policy("zeta", 1, 5, v1.PolicySelector{}), policy("beta", 1, 5, ns(map[string]string{"a": "b"}))},
		valid:  "True/WinsPriorityTie", ready: "False/Rolling", rollup: "3/0/0",
		validMsg: []string{"policy beta, zeta has the same priority 5"},
	}, {
		name:   "equal priority, disjoint selectors",
		policy: policy("zeta", 1, 5, pods(map[string]string{"app": "x"})), nodes: three,
		others: []v1.IsolationPolicy{policy("alpha", 1, 5, pods(map[string]string{"app": "y"}))},
		valid:  "True/Valid", ready: "False/Rolling", rollup: "3/0/0",
	}, {
		name:   "different priorities never conflict",
		policy: policy("zeta", 1, 5, v1.PolicySelector{}),
		others: []v1.IsolationPolicy{policy("alpha", 1, 6, v1.PolicySelector{})},
		valid:  "True/Valid", ready: "False/NoReadyNodes", rollup: "0/0/0",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := tc.policy
			conds, rollup := computeStatus(statusInput{policy: &p, others: tc.others, readyNodes: tc.nodes, nodeStatuses: tc.statuses})
			if len(conds) != 2 || conds[0].Type != ConditionValid || conds[1].Type != ConditionReady {
				t.Fatalf("conditions %+v, want Valid and Ready", conds)
			}
			check := func(c metav1.Condition, want string, msgs []string) {
				if got := string(c.Status) + "/" + c.Reason; got != want {
					t.Errorf("%s = %s (%q), want %s", c.Type, got, c.Message, want)
				}
				if c.ObservedGeneration != p.Generation {
					t.Errorf("%s observedGeneration %d, want %d", c.Type, c.ObservedGeneration, p.Generation)
				}
				if c.Message == "" {
					t.Errorf("%s has no message", c.Type)
				}
				for _, m := range msgs {
					if !strings.Contains(c.Message, m) {
						t.Errorf("%s message %q does not contain %q", c.Type, c.Message, m)
					}
				}
			}
			check(conds[0], tc.valid, tc.validMsg)
			check(conds[1], tc.ready, tc.readyMsg)
			if got := fmt.Sprintf("%d/%d/%d", rollup.Desired, rollup.Applied, rollup.Failed); got != tc.rollup {
				t.Errorf("rollup %s, want %s", got, tc.rollup)
			}
			var failed []string
			for _, f := range rollup.Failures {
				failed = append(failed, f.Node)
			}
			if strings.Join(failed, ",") != strings.Join(tc.failedNodes, ",") {
				t.Errorf("failures %v, want %v", failed, tc.failedNodes)
			}
		})
	}
}

func TestComputeStatusCapsFailures(t *testing.T) {
	t.Parallel()
	p := policy("p", 1, 0, v1.PolicySelector{})
	var nodes []string
	var statuses []v1.IsolationPolicyNodeStatus
	for i := range 20 {
		n := fmt.Sprintf("n%02d", i)
		nodes = append(nodes, n)
		statuses = append(statuses, nodeStatus("p", n, 1, v1.NodeStateFailed, "boom"))
	}
	_, rollup := computeStatus(statusInput{policy: &p, readyNodes: nodes, nodeStatuses: statuses})
	if rollup.Failed != 20 || len(rollup.Failures) != maxFailures {
		t.Errorf("failed %d with %d failures listed, want 20 and %d", rollup.Failed, len(rollup.Failures), maxFailures)
	}
}

func TestSelectorsOverlap(t *testing.T) {
	t.Parallel()
	expr := func(vals ...string) *metav1.LabelSelector {
		return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: "tier", Operator: metav1.LabelSelectorOpIn, Values: vals},
			{Key: "env", Operator: metav1.LabelSelectorOpExists},
		}}
	}
	reordered := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
		{Key: "env", Operator: metav1.LabelSelectorOpExists, Values: []string{}},
		{Key: "tier", Operator: metav1.LabelSelectorOpIn, Values: []string{"b", "a"}},
	}}
	tests := []struct {
		name string
		a, b v1.PolicySelector
		want bool
	}{
		{"both select everything", v1.PolicySelector{}, v1.PolicySelector{}, true},
		{"empty selectors select everything", v1.PolicySelector{NamespaceSelector: &metav1.LabelSelector{}}, ns(map[string]string{"a": "b"}), true},
		{"one empty", v1.PolicySelector{}, ns(map[string]string{"a": "b"}), true},
		{"identical", ns(map[string]string{"a": "b"}), ns(map[string]string{"a": "b"}), true},
		{"identical up to order", v1.PolicySelector{PodSelector: expr("a", "b")}, v1.PolicySelector{PodSelector: reordered}, true},
		{"namespace and pod selectors combine", ns(map[string]string{"a": "b"}), pods(map[string]string{"c": "d"}), true},
		{"different namespace selectors", ns(map[string]string{"a": "b"}), ns(map[string]string{"a": "c"}), false},
		{"different pod selectors", pods(map[string]string{"a": "b"}), pods(map[string]string{"x": "y"}), false},
		{"different expressions", v1.PolicySelector{PodSelector: expr("a")}, v1.PolicySelector{PodSelector: expr("b")}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := selectorsOverlap(tc.a, tc.b); got != tc.want {
				t.Errorf("selectorsOverlap = %v, want %v", got, tc.want)
			}
			if got := selectorsOverlap(tc.b, tc.a); got != tc.want {
				t.Errorf("selectorsOverlap (swapped) = %v, want %v", got, tc.want)
			}
		})
	}
}
