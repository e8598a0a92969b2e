// Package policy is eci-node's half of IsolationPolicy: it compiles the policies into the
// one that governs each pod on the node (Compile, pure), and the Syncer keeps the pod files
// eci-runtime reads up to date, writes the node's per-policy status, and turns eci-runtime's
// reports into Events, pod conditions and metrics.
package policy

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	v1 "github.com/eci-dev/eci/api/v1alpha1"
	"github.com/eci-dev/eci/runtime/harden"
	rpolicy "github.com/eci-dev/eci/runtime/policy"
)

// Node is what the compiler knows about the node.
type Node struct {
	// PoolSize is the size of the node's id pool; IDsPerPod its default range size.
	PoolSize, IDsPerPod uint32
	// ExtraProtected are the node's extraProtectedPaths (eci-runtime adds them itself;
	// the strict policy lists them too).
	ExtraProtected []string
}

// Result is what one policy became on this node.
type Result struct {
	Generation int64
	// Err is why the node cannot apply the policy; nil means applied.
	Err error
}

type compiled struct {
	name     string
	priority int32
	nsSel    labels.Selector
	podSel   labels.Selector
	policy   rpolicy.Policy
	err      error
}

// Compiled is the node's view of every policy.
type Compiled struct {
	byPrecedence []compiled
	// Results are per policy name.
	Results map[string]Result
	// Strict is what a pod gets when its own policy cannot be known: every policy's
	// protections and denials at once, Enforce, no exceptions.
	Strict  rpolicy.Policy
	builtin rpolicy.Policy
}

// Compile compiles policies for a node. It is pure: equal inputs give equal output.
func Compile(policies []v1.IsolationPolicy, node Node) *Compiled {
	c := &Compiled{Results: map[string]Result{}, builtin: harden.BuiltinPolicyFor(node.IDsPerPod, nil)}
	for i := range policies {
		p := &policies[i]
		cp := compiled{name: p.Name, priority: p.Spec.Priority}
		// The selectors are parsed even when the rest is unusable: a broken policy then
		// makes strict only the pods it selects.
		var nsErr, podErr error
		cp.nsSel, nsErr = selector("namespaceSelector", p.Spec.Selector.NamespaceSelector)
		cp.podSel, podErr = selector("podSelector", p.Spec.Selector.PodSelector)
		cp.policy, cp.err = convert(p, node)
		cp.err = cmp.Or(nsErr, podErr, cp.err)
		c.byPrecedence = append(c.byPrecedence, cp)
		c.Results[p.Name] = Result{Generation: p.Generation, Err: cp.err}
	}
	// Highest priority first; equal priorities by name, the first in alphabetical order
	// winning (as the controller's Valid condition says).
	slices.SortFunc(c.byPrecedence, func(a, b compiled) int {
		return cmp.Or(cmp.Compare(b.priority, a.priority), strings.Compare(a.name, b.name))
	})
	c.Strict = strict(c.byPrecedence, c.builtin, node)
	return c
}

func selector(field string, s *metav1.LabelSelector) (labels.Selector, error) {
	if s == nil {
		return labels.Everything(), nil
	}
	sel, err := metav1.LabelSelectorAsSelector(s)
	if err != nil {
		return nil, fmt.Errorf("selector.%s: %w", field, err)
	}
	return sel, nil
}

// maxIDsPerPod is the API's maximum for userNamespace.idsPerPod.
const maxIDsPerPod = 1 << 28

// convert turns an IsolationPolicy into what eci-runtime enforces.
func convert(p *v1.IsolationPolicy, node Node) (rpolicy.Policy, error) {
	s := p.Spec
	out := rpolicy.Policy{
		Name: p.Name, Generation: p.Generation, Mode: rpolicy.Mode(cmp.Or(s.Mode, v1.ModeEnforce)),
		ImmutableContainerMounts: s.ProtectedMounts.ImmutableContainerMounts == nil || *s.ProtectedMounts.ImmutableContainerMounts,
		ProcEmulation:            s.ProcEmulation.Enabled == nil || *s.ProcEmulation.Enabled,
	}
	ids := s.UserNamespace.IDsPerPod
	switch {
	case ids == 0:
		out.IDsPerPod = node.IDsPerPod
	case ids%65536 != 0 || ids < 0:
		return out, fmt.Errorf("userNamespace.idsPerPod %d is not a positive multiple of 65536", ids)
	case ids > maxIDsPerPod:
		return out, fmt.Errorf("userNamespace.idsPerPod %d is more than %d", ids, maxIDsPerPod)
	case node.PoolSize != 0 && ids > int64(node.PoolSize):
		return out, fmt.Errorf("userNamespace.idsPerPod %d is larger than this node's id pool (%d ids): no pod could start", ids, node.PoolSize)
	default:
		out.IDsPerPod = uint32(ids)
	}
	for _, path := range s.ProtectedMounts.Paths {
		out.Protected = append(out.Protected, string(path))
	}
	for _, e := range s.ProtectedMounts.Exceptions {
		ex := rpolicy.Exception{Namespaces: slices.Clone(e.Namespaces)}
		for _, d := range e.Images {
			ex.Images = append(ex.Images, string(d))
		}
		for _, path := range e.Paths {
			ex.Paths = append(ex.Paths, string(path))
		}
		out.Exceptions = append(out.Exceptions, ex)
	}
	for _, t := range s.TrappedSyscalls {
		tr := rpolicy.Trap{Action: string(t.Action), Errno: string(t.Errno)}
		for _, n := range t.Names {
			tr.Names = append(tr.Names, string(n))
		}
		out.Traps = append(out.Traps, tr)
	}
	if err := out.Validate(); err != nil {
		return out, err
	}
	return out, nil
}

// strict is the union of every usable policy and the built-in one.
func strict(ps []compiled, builtin rpolicy.Policy, node Node) rpolicy.Policy {
	out := rpolicy.Policy{
		Name: rpolicy.StrictName, Mode: rpolicy.Enforce, IDsPerPod: node.IDsPerPod,
		ImmutableContainerMounts: true, ProcEmulation: true,
	}
	seen := map[string]bool{}
	addPaths := func(paths []string) {
		for _, p := range paths {
			if !seen[p] {
				seen[p] = true
				out.Protected = append(out.Protected, p)
			}
		}
	}
	addPaths(builtin.Protected)
	addPaths(node.ExtraProtected)
	denied := map[string]string{}
	var names []string
	addDenied := func(p rpolicy.Policy) {
		for _, t := range p.Traps {
			if t.Action != rpolicy.ActionDeny {
				continue
			}
			for _, n := range t.Names {
				if _, ok := denied[n]; !ok {
					denied[n] = t.Errno
					names = append(names, n)
				}
			}
		}
	}
	for _, cp := range ps {
		if cp.err == nil {
			addPaths(cp.policy.Protected)
			addDenied(cp.policy)
		}
	}
	// The built-in denials last: a policy's errno for the same syscall wins.
	addDenied(builtin)
	byErrno := map[string][]string{}
	var errnos []string
	for _, n := range names {
		e := denied[n]
		if byErrno[e] == nil {
			errnos = append(errnos, e)
		}
		byErrno[e] = append(byErrno[e], n)
	}
	for _, e := range errnos {
		out.Traps = append(out.Traps, rpolicy.Trap{Names: byErrno[e], Action: rpolicy.ActionDeny, Errno: e})
	}
	return out
}

// ForPod is the policy that governs pod, whose namespace has nsLabels: the matching policy
// of highest precedence. A policy this node cannot apply that would govern the pod (it
// selects the pod, or its selectors do not parse, and it outranks every match) makes the
// pod strict: eci never guesses a weaker policy. A pod no policy selects gets eci's
// built-in policy.
func (c *Compiled) ForPod(pod *corev1.Pod, nsLabels map[string]string) rpolicy.Pod {
	out := rpolicy.Pod{UID: string(pod.UID), Namespace: pod.Namespace, Name: pod.Name, Images: pinnedImages(pod)}
	out.Policy = c.builtin
	for _, cp := range c.byPrecedence {
		selectable := cp.nsSel != nil && cp.podSel != nil
		if selectable && !(cp.nsSel.Matches(labels.Set(nsLabels)) && cp.podSel.Matches(labels.Set(pod.Labels))) {
			continue
		}
		if cp.err != nil {
			// It selects the pod, or its selectors cannot say whether it does.
			out.Policy = c.Strict
		} else {
			out.Policy = cp.policy
		}
		break
	}
	return out
}

// pinnedImages maps container names to the digests their images are pinned by
// (name@sha256:...). Exceptions by image match only these: a tag can be moved.
func pinnedImages(pod *corev1.Pod) map[string]string {
	var out map[string]string
	add := func(cs []corev1.Container) {
		for _, c := range cs {
			if i := strings.LastIndex(c.Image, "@sha256:"); i >= 0 {
				if out == nil {
					out = map[string]string{}
				}
				out[c.Name] = c.Image[i+1:]
			}
		}
	}
	add(pod.Spec.InitContainers)
	add(pod.Spec.Containers)
	return out
}
