// Package v1alpha1 is the eci.dev/v1alpha1 API: IsolationPolicy, the cluster-scoped object
// with which a cluster admin decides which host paths eci pods may not mount, which syscalls
// eci traps and how, and which pods a policy governs.
//
// +kubebuilder:object:generate=true
// +groupName=eci.dev
package v1alpha1
