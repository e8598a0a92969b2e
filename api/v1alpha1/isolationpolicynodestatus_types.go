package v1alpha1

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// IsolationPolicyNodeStatus is one node's report on one IsolationPolicy:
// which generation of the policy the node applied, and whether that
// worked. eci-node writes one per (policy, node), named
// <policy>.<node>, with an owner reference to the policy, so deleting the
// policy garbage-collects its node statuses; there are no finalizers, so a
// node that vanished never blocks a deletion. eci's controller rolls them
// up into the policy's status. Do not write them by hand.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=isopolns,categories=eci
// +kubebuilder:validation:XValidation:rule="self.metadata.name == self.policyName + '.' + self.nodeName",message="the name must be <policyName>.<nodeName>"
// +kubebuilder:validation:XValidation:rule="self.policyName == oldSelf.policyName && self.nodeName == oldSelf.nodeName",message="policyName and nodeName are immutable"
// +kubebuilder:printcolumn:name="Policy",type=string,JSONPath=".policyName",description="The IsolationPolicy this node reports on"
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=".nodeName",description="The reporting node"
// +kubebuilder:printcolumn:name="Generation",type=integer,JSONPath=".observedGeneration",description="The policy generation the node applied or failed to apply"
// +kubebuilder:printcolumn:name="State",type=string,JSONPath=".state",description="Applied or Failed"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=".metadata.creationTimestamp"
type IsolationPolicyNodeStatus struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the object's metadata. The name is <policyName>.<nodeName>
	// and at most 253 characters; ownerReferences names the policy.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// policyName is the name of the IsolationPolicy this status reports on.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	PolicyName string `json:"policyName"`

	// nodeName is the name of the node that reports.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	NodeName string `json:"nodeName"`

	// observedGeneration is the metadata.generation of the policy the node
	// applied (or failed to apply). A node whose observedGeneration is older
	// than the policy's has not caught up yet.
	// +kubebuilder:validation:Minimum=0
	// +required
	ObservedGeneration int64 `json:"observedGeneration"`

	// state is Applied when the node enforces observedGeneration for pods
	// created from now on, and Failed when it could not (message says why).
	// +required
	State NodeState `json:"state"`

	// message says why the node failed to apply the policy, or anything else
	// a person should know.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Message string `json:"message,omitempty"`
}

// NodeState is whether a node applied a policy generation.
// +kubebuilder:validation:Enum=Applied;Failed
type NodeState string

// The node states.
const (
	NodeStateApplied NodeState = "Applied"
	NodeStateFailed  NodeState = "Failed"
)

// maxObjectName is the longest metadata.name of a cluster-scoped object.
const maxObjectName = 253

// NodeStatusName is the name of the IsolationPolicyNodeStatus of policy on
// node: <policy>.<node>. It fails when that is longer than an object name
// may be (253 characters).
func NodeStatusName(policy, node string) (string, error) {
	name := policy + "." + node
	if len(name) > maxObjectName {
		return "", fmt.Errorf("node status name for policy %s on node %s is %d characters, more than the %d an object name may have: shorten the policy name", policy, node, len(name), maxObjectName)
	}
	return name, nil
}

// IsolationPolicyNodeStatusList is a list of IsolationPolicyNodeStatus
// objects.
//
// +kubebuilder:object:root=true
type IsolationPolicyNodeStatusList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the node statuses.
	Items []IsolationPolicyNodeStatus `json:"items"`
}

func init() {
	SchemeBuilder.Register(func(s *runtime.Scheme) error {
		s.AddKnownTypes(GroupVersion, &IsolationPolicyNodeStatus{}, &IsolationPolicyNodeStatusList{})
		return nil
	})
}
