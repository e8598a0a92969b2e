package policy

import (
	"encoding/json"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	v1 "github.com/eci-dev/eci/api/v1alpha1"
)

// benchPolicies are 101 policies: 100 selecting one namespace each (ns-0 to ns-99) at
// priorities 1 to 100, and a catch-all at priority 0. Each protects 24 paths and has 2
// traps.
func benchPolicies() []v1.IsolationPolicy {
	mk := func(name string, priority int32, sel *metav1.LabelSelector) v1.IsolationPolicy {
		p := v1.IsolationPolicy{ObjectMeta: metav1.ObjectMeta{Name: name, Generation: 3}}
		p.Spec.Priority = priority
		p.Spec.Selector.NamespaceSelector = sel
		for j := range 24 {
			p.Spec.ProtectedMounts.Paths = append(p.Spec.ProtectedMounts.Paths, v1.AbsolutePath(fmt.Sprintf("/srv/%s/data-%02d", name, j)))
		}
		p.Spec.TrappedSyscalls = []v1.TrappedSyscalls{
			{Names: []v1.SyscallName{"ptrace", "kcmp", "process_vm_readv", "process_vm_writev"}, Action: v1.ActionDeny, Errno: "EPERM"},
			{Names: []v1.SyscallName{"unshare", "setns"}, Action: v1.ActionAudit},
		}
		return p
	}
	var out []v1.IsolationPolicy
	for i := range 100 {
		out = append(out, mk(fmt.Sprintf("team-%03d", i), int32(i+1),
			&metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": fmt.Sprintf("ns-%d", i)}}))
	}
	return append(out, mk("eci-default", 0, nil))
}

var benchNode = Node{PoolSize: 1 << 24, IDsPerPod: 65536, ExtraProtected: []string{"/srv/node-extra"}}

// benchPod is pod i of a node: two containers, one pinned by digest.
func benchPod(i int) (*corev1.Pod, map[string]string) {
	ns := fmt.Sprintf("ns-%d", i)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			UID: types.UID(fmt.Sprintf("0b7c5e1a-0000-4000-8000-%012d", i)), Namespace: ns, Name: fmt.Sprintf("web-%d", i),
			Labels: map[string]string{"app": "web", "pod-template-hash": "5d8f7c9b6"},
		},
		Spec: corev1.PodSpec{Containers: []corev1.Container{
			{Name: "app", Image: "registry.example/web@" + digestA},
			{Name: "sidecar", Image: "registry.example/proxy:1.2"},
		}},
	}
	return pod, map[string]string{"kubernetes.io/metadata.name": ns, "team": "web"}
}

func BenchmarkCompile(b *testing.B) {
	policies := benchPolicies()
	b.ReportAllocs()
	for b.Loop() {
		c := Compile(policies, benchNode)
		if c.Results["eci-default"].Err != nil {
			b.Fatal(c.Results["eci-default"].Err)
		}
	}
}

// BenchmarkForPod is the worst case: a pod no namespaced policy selects, so every
// policy's selectors are tried before the catch-all matches.
func BenchmarkForPod(b *testing.B) {
	c := Compile(benchPolicies(), benchNode)
	pod, nsLabels := benchPod(1000)
	b.ReportAllocs()
	for b.Loop() {
		if p := c.ForPod(pod, nsLabels); p.Policy.Name != "eci-default" {
			b.Fatalf("pod governed by %s", p.Policy.Name)
		}
	}
}

// BenchmarkCompileNode110Pods is a full resync of a node with 110 pods (the kubelet's
// default maximum): compile every policy, then compute and encode each pod's file.
func BenchmarkCompileNode110Pods(b *testing.B) {
	policies := benchPolicies()
	type podNS struct {
		pod *corev1.Pod
		ns  map[string]string
	}
	var pods []podNS
	for i := range 110 { // ns-0 to ns-99 have their own policy; ns-100 to ns-109 the catch-all
		pod, ns := benchPod(i)
		pods = append(pods, podNS{pod, ns})
	}
	b.ReportAllocs()
	for b.Loop() {
		c := Compile(policies, benchNode)
		for _, p := range pods {
			if _, err := json.Marshal(c.ForPod(p.pod, p.ns)); err != nil {
				b.Fatal(err)
			}
		}
	}
}
