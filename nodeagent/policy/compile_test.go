package policy

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	v1 "github.com/eci-dev/eci/api/v1alpha1"
	"github.com/eci-dev/eci/runtime/harden"
	rpolicy "github.com/eci-dev/eci/runtime/policy"
)

var testNode = Node{PoolSize: 100 * 65536, IDsPerPod: 65536, ExtraProtected: []string{"/srv/node-extra"}}

var (
	digestA = "sha256:" + strings.Repeat("a", 64)
	digestB = "sha256:" + strings.Repeat("b", 64)
)

// pol is a valid policy; the options change it.
func pol(name string, priority int32, opts ...func(*v1.IsolationPolicy)) v1.IsolationPolicy {
	p := v1.IsolationPolicy{ObjectMeta: metav1.ObjectMeta{Name: name, Generation: 1}}
	p.Spec.Priority = priority
	p.Spec.ProtectedMounts.Paths = []v1.AbsolutePath{v1.AbsolutePath("/srv/" + name)}
	for _, o := range opts {
		o(&p)
	}
	return p
}

func nsSel(s *metav1.LabelSelector) func(*v1.IsolationPolicy) {
	return func(p *v1.IsolationPolicy) { p.Spec.Selector.NamespaceSelector = s }
}

func podSel(s *metav1.LabelSelector) func(*v1.IsolationPolicy) {
	return func(p *v1.IsolationPolicy) { p.Spec.Selector.PodSelector = s }
}

func idsPerPod(n int64) func(*v1.IsolationPolicy) {
	return func(p *v1.IsolationPolicy) { p.Spec.UserNamespace.IDsPerPod = n }
}

func labelsSel(kv ...string) *metav1.LabelSelector {
	m := map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return &metav1.LabelSelector{MatchLabels: m}
}

func exprSel(key string, op metav1.LabelSelectorOperator, values ...string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: key, Operator: op, Values: values}}}
}

// bogus is a selector the API server's schema lets through but LabelSelectorAsSelector
// refuses.
var bogus = exprSel("team", "Bogus", "a")

func testPod(ns string, podLabels map[string]string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{UID: types.UID("uid-1"), Namespace: ns, Name: "p", Labels: podLabels}}
}

func TestForPodSelection(t *testing.T) {
	t.Parallel()
	teamA := map[string]string{"team": "a", "kubernetes.io/metadata.name": "ns-a"}
	teamB := map[string]string{"team": "b", "kubernetes.io/metadata.name": "ns-b"}
	noLabels := map[string]string(nil)
	for _, tc := range []struct {
		name      string
		policies  []v1.IsolationPolicy
		ns        map[string]string
		podLabels map[string]string
		want      string
	}{
		{name: "no policies: built-in", ns: teamA, want: rpolicy.BuiltinName},
		{name: "nil selectors match every pod", policies: []v1.IsolationPolicy{pol("all", 0)}, ns: noLabels, want: "all"},
		{
			name:     "empty selectors match every pod",
			policies: []v1.IsolationPolicy{pol("all", 0, nsSel(&metav1.LabelSelector{}), podSel(&metav1.LabelSelector{}))},
			ns:       noLabels, want: "all",
		},
		{name: "namespace matchLabels: match", policies: []v1.IsolationPolicy{pol("a", 1, nsSel(labelsSel("team", "a")))}, ns: teamA, want: "a"},
		{name: "namespace matchLabels: no match", policies: []v1.IsolationPolicy{pol("a", 1, nsSel(labelsSel("team", "a")))}, ns: teamB, want: rpolicy.BuiltinName},
		{
			name:     "namespace matchLabels: every label must match",
			policies: []v1.IsolationPolicy{pol("a", 1, nsSel(labelsSel("team", "a", "kubernetes.io/metadata.name", "ns-b")))},
			ns:       teamA, want: rpolicy.BuiltinName,
		},
		{
			name:     "pod matchLabels: match",
			policies: []v1.IsolationPolicy{pol("web", 1, podSel(labelsSel("app", "web")))},
			ns:       teamA, podLabels: map[string]string{"app": "web", "tier": "x"}, want: "web",
		},
		{
			name:     "pod matchLabels: no match",
			policies: []v1.IsolationPolicy{pol("web", 1, podSel(labelsSel("app", "web")))},
			ns:       teamA, podLabels: map[string]string{"app": "db"}, want: rpolicy.BuiltinName,
		},
		{
			name:     "both selectors must match: namespace does, pod does not",
			policies: []v1.IsolationPolicy{pol("a-web", 1, nsSel(labelsSel("team", "a")), podSel(labelsSel("app", "web")))},
			ns:       teamA, podLabels: map[string]string{"app": "db"}, want: rpolicy.BuiltinName,
		},
		{
			name:     "both selectors must match: pod does, namespace does not",
			policies: []v1.IsolationPolicy{pol("a-web", 1, nsSel(labelsSel("team", "a")), podSel(labelsSel("app", "web")))},
			ns:       teamB, podLabels: map[string]string{"app": "web"}, want: rpolicy.BuiltinName,
		},
		{
			name:     "both selectors match",
			policies: []v1.IsolationPolicy{pol("a-web", 1, nsSel(labelsSel("team", "a")), podSel(labelsSel("app", "web")))},
			ns:       teamA, podLabels: map[string]string{"app": "web"}, want: "a-web",
		},
		{name: "matchExpressions In: match", policies: []v1.IsolationPolicy{pol("in", 1, nsSel(exprSel("team", metav1.LabelSelectorOpIn, "a", "c")))}, ns: teamA, want: "in"},
		{name: "matchExpressions In: no match", policies: []v1.IsolationPolicy{pol("in", 1, nsSel(exprSel("team", metav1.LabelSelectorOpIn, "a", "c")))}, ns: teamB, want: rpolicy.BuiltinName},
		{name: "matchExpressions NotIn: match", policies: []v1.IsolationPolicy{pol("notin", 1, nsSel(exprSel("team", metav1.LabelSelectorOpNotIn, "a")))}, ns: teamB, want: "notin"},
		{name: "matchExpressions NotIn: no match", policies: []v1.IsolationPolicy{pol("notin", 1, nsSel(exprSel("team", metav1.LabelSelectorOpNotIn, "a")))}, ns: teamA, want: rpolicy.BuiltinName},
		{name: "matchExpressions NotIn: a missing label matches", policies: []v1.IsolationPolicy{pol("notin", 1, nsSel(exprSel("team", metav1.LabelSelectorOpNotIn, "a")))}, ns: noLabels, want: "notin"},
		{
			name:     "matchExpressions Exists on pod labels: match",
			policies: []v1.IsolationPolicy{pol("exists", 1, podSel(exprSel("privileged", metav1.LabelSelectorOpExists)))},
			ns:       teamA, podLabels: map[string]string{"privileged": ""}, want: "exists",
		},
		{
			name:     "matchExpressions Exists on pod labels: no match",
			policies: []v1.IsolationPolicy{pol("exists", 1, podSel(exprSel("privileged", metav1.LabelSelectorOpExists)))},
			ns:       teamA, podLabels: map[string]string{"app": "web"}, want: rpolicy.BuiltinName,
		},
		{
			name:     "matchExpressions DoesNotExist: match",
			policies: []v1.IsolationPolicy{pol("dne", 1, podSel(exprSel("privileged", metav1.LabelSelectorOpDoesNotExist)))},
			ns:       teamA, podLabels: map[string]string{"app": "web"}, want: "dne",
		},
		{
			name:     "matchExpressions DoesNotExist: no match",
			policies: []v1.IsolationPolicy{pol("dne", 1, podSel(exprSel("privileged", metav1.LabelSelectorOpDoesNotExist)))},
			ns:       teamA, podLabels: map[string]string{"privileged": "yes"}, want: rpolicy.BuiltinName,
		},
		{
			name: "matchLabels and matchExpressions together must both match",
			policies: []v1.IsolationPolicy{pol("both", 1, nsSel(&metav1.LabelSelector{
				MatchLabels:      map[string]string{"team": "a"},
				MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpIn, Values: []string{"ns-b"}}},
			}))},
			ns: teamA, want: rpolicy.BuiltinName,
		},
		{
			name:     "highest priority wins, whatever the input order",
			policies: []v1.IsolationPolicy{pol("low", 1), pol("high", 100), pol("mid", 50)},
			ns:       teamA, want: "high",
		},
		{
			name:     "a higher priority that does not match is skipped",
			policies: []v1.IsolationPolicy{pol("catch-all", 0), pol("team-b", 100, nsSel(labelsSel("team", "b"))), pol("team-a", 10, nsSel(labelsSel("team", "a")))},
			ns:       teamA, want: "team-a",
		},
		{
			name:     "equal priority: the first name in alphabetical order wins",
			policies: []v1.IsolationPolicy{pol("zeta", 5), pol("beta", 5), pol("gamma", 5)},
			ns:       teamA, want: "beta",
		},
		{
			name:     "equal priority: the name tie-break is byte order",
			policies: []v1.IsolationPolicy{pol("b", 5), pol("a-b", 5), pol("a", 5)},
			ns:       teamA, want: "a",
		},
		{
			name:     "equal priority: an alphabetically earlier policy that does not match is skipped",
			policies: []v1.IsolationPolicy{pol("alpha", 5, nsSel(labelsSel("team", "b"))), pol("beta", 5)},
			ns:       teamA, want: "beta",
		},
		// Policies this node cannot apply.
		{
			name:     "a broken policy that outranks the match makes the pod strict",
			policies: []v1.IsolationPolicy{pol("good", 1), pol("broken", 10, nsSel(bogus))},
			ns:       teamA, want: rpolicy.StrictName,
		},
		{
			name:     "a broken pod selector that outranks the match makes the pod strict",
			policies: []v1.IsolationPolicy{pol("good", 1), pol("broken", 10, podSel(bogus))},
			ns:       teamA, want: rpolicy.StrictName,
		},
		{
			name:     "a broken policy and no match: strict, not built-in",
			policies: []v1.IsolationPolicy{pol("other", 100, nsSel(labelsSel("team", "c"))), pol("broken", 10, nsSel(bogus))},
			ns:       teamA, want: rpolicy.StrictName,
		},
		{
			name:     "a lower-priority broken policy does not affect a pod a higher one matches",
			policies: []v1.IsolationPolicy{pol("broken", 1, nsSel(bogus)), pol("good", 10)},
			ns:       teamA, want: "good",
		},
		{
			name:     "a broken policy of equal priority and a later name does not affect the match",
			policies: []v1.IsolationPolicy{pol("zz-broken", 5, nsSel(bogus)), pol("good", 5)},
			ns:       teamA, want: "good",
		},
		{
			name:     "a broken policy of equal priority and an earlier name makes the pod strict",
			policies: []v1.IsolationPolicy{pol("aa-broken", 5, nsSel(bogus)), pol("good", 5)},
			ns:       teamA, want: rpolicy.StrictName,
		},
		{
			name:     "a broken policy whose selectors parse and do not select the pod changes nothing",
			policies: []v1.IsolationPolicy{pol("good", 1), pol("too-big-elsewhere", 10, nsSel(labelsSel("team", "c")), idsPerPod(int64(testNode.PoolSize)+65536))},
			ns:       teamA, want: "good",
		},
		{
			name:     "a policy whose idsPerPod exceeds the pool is broken too",
			policies: []v1.IsolationPolicy{pol("good", 1), pol("too-big", 10, idsPerPod(int64(testNode.PoolSize)+65536))},
			ns:       teamA, want: rpolicy.StrictName,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := Compile(tc.policies, testNode)
			got := c.ForPod(testPod("ns", tc.podLabels), tc.ns)
			if got.Policy.Name != tc.want {
				t.Fatalf("pod governed by %q, want %q", got.Policy.Name, tc.want)
			}
			switch tc.want {
			case rpolicy.StrictName:
				if !reflect.DeepEqual(got.Policy, c.Strict) {
					t.Errorf("strict pod got %+v, not Compiled.Strict %+v", got.Policy, c.Strict)
				}
			case rpolicy.BuiltinName:
				if want := harden.BuiltinPolicyFor(testNode.IDsPerPod, nil); !reflect.DeepEqual(got.Policy, want) {
					t.Errorf("built-in pod got %+v, want %+v", got.Policy, want)
				}
			}
			if err := got.Policy.Validate(); err != nil {
				t.Errorf("ForPod returned an invalid policy: %v", err)
			}
		})
	}
}

func TestCompileResults(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		policy  v1.IsolationPolicy
		wantErr []string // substrings; none means applied
	}{
		{name: "valid", policy: pol("ok", 1, nsSel(labelsSel("team", "a")), podSel(exprSel("app", metav1.LabelSelectorOpExists)))},
		{name: "bogus namespace selector operator", policy: pol("p", 1, nsSel(bogus)), wantErr: []string{"selector.namespaceSelector", "Bogus"}},
		{name: "bogus pod selector operator", policy: pol("p", 1, podSel(bogus)), wantErr: []string{"selector.podSelector", "Bogus"}},
		{name: "In without values", policy: pol("p", 1, nsSel(exprSel("team", metav1.LabelSelectorOpIn))), wantErr: []string{"selector.namespaceSelector"}},
		{name: "invalid label key", policy: pol("p", 1, podSel(labelsSel("bad key!", "x"))), wantErr: []string{"selector.podSelector"}},
		{
			name:    "idsPerPod larger than the pool",
			policy:  pol("p", 1, idsPerPod(int64(testNode.PoolSize)+65536)),
			wantErr: []string{"idsPerPod 6619136", "(6553600 ids)"},
		},
		{name: "idsPerPod equal to the pool", policy: pol("p", 1, idsPerPod(int64(testNode.PoolSize)))},
		{name: "idsPerPod not a multiple of 65536", policy: pol("p", 1, idsPerPod(65537)), wantErr: []string{"idsPerPod 65537", "multiple of 65536"}},
		{name: "negative idsPerPod", policy: pol("p", 1, idsPerPod(-65536)), wantErr: []string{"idsPerPod -65536"}},
		{
			name:    "relative protected path",
			policy:  pol("p", 1, func(p *v1.IsolationPolicy) { p.Spec.ProtectedMounts.Paths = []v1.AbsolutePath{"srv"} }),
			wantErr: []string{`"srv"`},
		},
		{
			name:    "unknown mode",
			policy:  pol("p", 1, func(p *v1.IsolationPolicy) { p.Spec.Mode = "Warn" }),
			wantErr: []string{`"Warn"`},
		},
		{
			name: "Deny without a known errno",
			policy: pol("p", 1, func(p *v1.IsolationPolicy) {
				p.Spec.TrappedSyscalls = []v1.TrappedSyscalls{{Names: []v1.SyscallName{"ptrace"}, Action: v1.ActionDeny, Errno: "EWHAT"}}
			}),
			wantErr: []string{`"EWHAT"`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.policy.Generation = 7
			c := Compile([]v1.IsolationPolicy{tc.policy}, testNode)
			r, ok := c.Results[tc.policy.Name]
			if !ok || len(c.Results) != 1 {
				t.Fatalf("Results = %v, want one entry for %s", c.Results, tc.policy.Name)
			}
			if r.Generation != 7 {
				t.Errorf("Result.Generation = %d, want 7", r.Generation)
			}
			if len(tc.wantErr) == 0 {
				if r.Err != nil {
					t.Fatalf("Result.Err = %v, want nil", r.Err)
				}
				return
			}
			if r.Err == nil {
				t.Fatalf("Result.Err = nil, want an error containing %q", tc.wantErr)
			}
			for _, s := range tc.wantErr {
				if !strings.Contains(r.Err.Error(), s) {
					t.Errorf("Result.Err = %q, want it to contain %q", r.Err, s)
				}
			}
		})
	}
}

func TestIDsPerPod(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		ids  int64
		node Node
		want uint32
	}{
		{name: "0 uses the node's setting", ids: 0, node: Node{PoolSize: 10 * 65536, IDsPerPod: 131072}, want: 131072},
		{name: "0 on a node without a setting stays 0", ids: 0, node: Node{PoolSize: 10 * 65536}, want: 0},
		{name: "set", ids: 4 * 65536, node: Node{PoolSize: 10 * 65536, IDsPerPod: 65536}, want: 4 * 65536},
		{name: "unknown pool size: no upper bound", ids: 4096 * 65536, node: Node{IDsPerPod: 65536}, want: 4096 * 65536},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := Compile([]v1.IsolationPolicy{pol("p", 1, idsPerPod(tc.ids))}, tc.node)
			if err := c.Results["p"].Err; err != nil {
				t.Fatal(err)
			}
			if got := c.ForPod(testPod("ns", nil), nil).Policy.IDsPerPod; got != tc.want {
				t.Fatalf("IDsPerPod = %d, want %d", got, tc.want)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestConvert(t *testing.T) {
	t.Parallel()
	full := v1.IsolationPolicySpec{
		Mode:          v1.ModeAudit,
		UserNamespace: v1.UserNamespace{IDsPerPod: 131072},
		ProtectedMounts: v1.ProtectedMounts{
			Paths: []v1.AbsolutePath{"/srv/data", "/var/run/docker.sock"},
			Exceptions: []v1.MountException{
				{Namespaces: []string{"ci", "build"}},
				{Images: []v1.ImageDigest{v1.ImageDigest(digestA), v1.ImageDigest(digestB)}, Paths: []v1.AbsolutePath{"/var/run/docker.sock"}},
				{Namespaces: []string{"ops"}, Images: []v1.ImageDigest{v1.ImageDigest(digestA)}, Paths: []v1.AbsolutePath{"/srv/data"}},
			},
			ImmutableContainerMounts: ptr(false),
		},
		TrappedSyscalls: []v1.TrappedSyscalls{
			{Names: []v1.SyscallName{"ptrace", "kcmp"}, Action: v1.ActionDeny, Errno: "EACCES"},
			{Names: []v1.SyscallName{"unshare"}, Action: v1.ActionAudit},
			{Names: []v1.SyscallName{"mount"}, Action: v1.ActionEmulate},
			{Names: []v1.SyscallName{"sethostname"}, Action: v1.ActionAllow},
		},
		ProcEmulation: v1.ProcEmulation{Enabled: ptr(false)},
	}
	for _, tc := range []struct {
		name string
		spec v1.IsolationPolicySpec
		want rpolicy.Policy
	}{
		{
			name: "defaults: Enforce, node ids, immutable mounts, proc emulation",
			spec: v1.IsolationPolicySpec{},
			want: rpolicy.Policy{Name: "p", Generation: 3, Mode: rpolicy.Enforce, IDsPerPod: 65536, ImmutableContainerMounts: true, ProcEmulation: true},
		},
		{
			name: "explicit true",
			spec: v1.IsolationPolicySpec{
				Mode:            v1.ModeEnforce,
				ProtectedMounts: v1.ProtectedMounts{ImmutableContainerMounts: ptr(true)},
				ProcEmulation:   v1.ProcEmulation{Enabled: ptr(true)},
			},
			want: rpolicy.Policy{Name: "p", Generation: 3, Mode: rpolicy.Enforce, IDsPerPod: 65536, ImmutableContainerMounts: true, ProcEmulation: true},
		},
		{
			name: "every field",
			spec: full,
			want: rpolicy.Policy{
				Name: "p", Generation: 3, Mode: rpolicy.Audit, IDsPerPod: 131072,
				Protected: []string{"/srv/data", "/var/run/docker.sock"},
				Exceptions: []rpolicy.Exception{
					{Namespaces: []string{"ci", "build"}},
					{Images: []string{digestA, digestB}, Paths: []string{"/var/run/docker.sock"}},
					{Namespaces: []string{"ops"}, Images: []string{digestA}, Paths: []string{"/srv/data"}},
				},
				Traps: []rpolicy.Trap{
					{Names: []string{"ptrace", "kcmp"}, Action: rpolicy.ActionDeny, Errno: "EACCES"},
					{Names: []string{"unshare"}, Action: rpolicy.ActionAudit},
					{Names: []string{"mount"}, Action: rpolicy.ActionEmulate},
					{Names: []string{"sethostname"}, Action: rpolicy.ActionAllow},
				},
				ImmutableContainerMounts: false, ProcEmulation: false,
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := v1.IsolationPolicy{ObjectMeta: metav1.ObjectMeta{Name: "p", Generation: 3}, Spec: tc.spec}
			c := Compile([]v1.IsolationPolicy{p}, testNode)
			if err := c.Results["p"].Err; err != nil {
				t.Fatal(err)
			}
			got := c.ForPod(testPod("ns", nil), nil).Policy
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("converted policy:\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestStrict(t *testing.T) {
	t.Parallel()
	deny := func(errno v1.Errno, names ...v1.SyscallName) v1.TrappedSyscalls {
		return v1.TrappedSyscalls{Names: names, Action: v1.ActionDeny, Errno: errno}
	}
	policies := []v1.IsolationPolicy{
		// Listed before "high" so that precedence, not input order, must decide.
		pol("low", 5, nsSel(labelsSel("team", "b")), func(p *v1.IsolationPolicy) {
			p.Spec.ProtectedMounts.Paths = []v1.AbsolutePath{"/data", "/opt/low", "/"}
			p.Spec.ProtectedMounts.Exceptions = []v1.MountException{{Namespaces: []string{"ops"}}}
			p.Spec.TrappedSyscalls = []v1.TrappedSyscalls{deny("EPERM", "ptrace", "setns"), deny("EINVAL", "chroot")}
		}),
		pol("high", 10, nsSel(labelsSel("team", "a")), func(p *v1.IsolationPolicy) {
			p.Spec.Mode = v1.ModeAudit // strict is Enforce whatever the policies' modes
			p.Spec.ProtectedMounts.Paths = []v1.AbsolutePath{"/srv/high", "/data"}
			p.Spec.ProtectedMounts.Exceptions = []v1.MountException{{Images: []v1.ImageDigest{v1.ImageDigest(digestA)}}}
			p.Spec.TrappedSyscalls = []v1.TrappedSyscalls{
				deny("EACCES", "ptrace", "kcmp", "bpf"),
				{Names: []v1.SyscallName{"unshare"}, Action: v1.ActionAudit},
				{Names: []v1.SyscallName{"pivot_root"}, Action: v1.ActionEmulate},
			}
		}),
		pol("broken", 100, nsSel(bogus), func(p *v1.IsolationPolicy) {
			p.Spec.ProtectedMounts.Paths = []v1.AbsolutePath{"/srv/broken"}
			p.Spec.TrappedSyscalls = []v1.TrappedSyscalls{deny("EPERM", "sethostname")}
		}),
		pol("broken-ids", 100, idsPerPod(int64(testNode.PoolSize)*2), func(p *v1.IsolationPolicy) {
			p.Spec.ProtectedMounts.Paths = []v1.AbsolutePath{"/srv/broken-ids"}
		}),
	}
	node := testNode
	node.ExtraProtected = []string{"/srv/node-extra", "/data", "/"}
	c := Compile(policies, node)
	s := c.Strict

	if s.Name != rpolicy.StrictName || s.Generation != 0 || s.Mode != rpolicy.Enforce || s.IDsPerPod != node.IDsPerPod ||
		!s.ImmutableContainerMounts || !s.ProcEmulation {
		t.Errorf("strict header = %+v", s)
	}
	if len(s.Exceptions) != 0 {
		t.Errorf("strict has exceptions: %+v", s.Exceptions)
	}
	if err := s.Validate(); err != nil {
		t.Errorf("strict does not validate: %v", err)
	}

	// Protected: the built-in paths, the node's extra ones, then every usable policy's,
	// each once.
	var want []string
	for _, b := range harden.BuiltinProtected() {
		want = append(want, b.Path)
	}
	want = append(want, "/srv/node-extra", "/data", "/srv/high", "/opt/low")
	if !reflect.DeepEqual(s.Protected, want) {
		t.Errorf("strict protected:\n got %q\nwant %q", s.Protected, want)
	}

	// Deny traps: the union; the first by precedence sets a name's errno.
	denied := s.Denied()
	wantDenied := map[string]string{}
	for n, e := range harden.BuiltinPolicyFor(0, nil).Denied() {
		wantDenied[n] = e
	}
	wantDenied["ptrace"] = "EACCES" // high's, not low's EPERM
	wantDenied["bpf"] = "EACCES"    // a policy's errno wins over the built-in one
	wantDenied["kcmp"] = "EACCES"
	wantDenied["setns"] = "EPERM"
	wantDenied["chroot"] = "EINVAL"
	if !reflect.DeepEqual(denied, wantDenied) {
		t.Errorf("strict denies:\n got %v\nwant %v", denied, wantDenied)
	}
	for _, tr := range s.Traps {
		if tr.Action != rpolicy.ActionDeny {
			t.Errorf("strict has a %s trap %v; only Deny traps belong in it", tr.Action, tr.Names)
		}
	}
	// One trap per errno: a name is never listed twice.
	var names []string
	errnos := map[string]bool{}
	for _, tr := range s.Traps {
		if errnos[tr.Errno] {
			t.Errorf("errno %s has two traps", tr.Errno)
		}
		errnos[tr.Errno] = true
		names = append(names, tr.Names...)
	}
	if len(names) != len(denied) {
		t.Errorf("strict traps list %d names for %d denied syscalls: %v", len(names), len(denied), s.Traps)
	}

	// Compile is pure: the same policies in another order give the same result.
	rev := slices.Clone(policies)
	slices.Reverse(rev)
	if c2 := Compile(rev, node); !reflect.DeepEqual(c2.Strict, s) || !reflect.DeepEqual(c2.Results, c.Results) {
		t.Errorf("Compile depends on input order:\n%+v\n%+v", c2.Strict, s)
	}

	// With no policy at all, strict is the built-in policy plus the node's paths.
	empty := Compile(nil, node).Strict
	builtin := harden.BuiltinPolicyFor(node.IDsPerPod, nil)
	if !reflect.DeepEqual(empty.Denied(), builtin.Denied()) {
		t.Errorf("empty strict denies %v, want the built-in %v", empty.Denied(), builtin.Denied())
	}
	if wantP := append(slices.Clone(builtin.Protected), "/srv/node-extra", "/data"); !reflect.DeepEqual(empty.Protected, wantP) {
		t.Errorf("empty strict protected:\n got %q\nwant %q", empty.Protected, wantP)
	}
}

func TestPinnedImages(t *testing.T) {
	t.Parallel()
	c := Compile([]v1.IsolationPolicy{pol("all", 0)}, testNode)
	for _, tc := range []struct {
		name       string
		init, main []corev1.Container
		want       map[string]string
	}{
		{name: "no containers", want: nil},
		{name: "tags only", main: []corev1.Container{{Name: "app", Image: "nginx:1.27"}, {Name: "side", Image: "busybox"}}, want: nil},
		{
			name: "pinned, tag-and-pinned, tag-only, init containers",
			init: []corev1.Container{{Name: "init", Image: "registry.example:5000/tools@" + digestB}, {Name: "init-tag", Image: "busybox:1.36"}},
			main: []corev1.Container{
				{Name: "app", Image: "nginx@" + digestA},
				{Name: "side", Image: "ghcr.io/org/side:v1@" + digestB},
				{Name: "tag", Image: "nginx:latest"},
			},
			want: map[string]string{"init": digestB, "app": digestA, "side": digestB},
		},
		{name: "other digest algorithms are not pins eci matches", main: []corev1.Container{{Name: "app", Image: "nginx@sha512:" + strings.Repeat("c", 128)}}, want: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pod := testPod("team-a", nil)
			pod.Spec.InitContainers, pod.Spec.Containers = tc.init, tc.main
			got := c.ForPod(pod, nil)
			if got.UID != "uid-1" || got.Namespace != "team-a" || got.Name != "p" || got.Policy.Name != "all" {
				t.Errorf("pod identity = %s %s/%s %s", got.UID, got.Namespace, got.Name, got.Policy.Name)
			}
			if !reflect.DeepEqual(got.Images, tc.want) {
				t.Fatalf("Images = %v, want %v", got.Images, tc.want)
			}
		})
	}
}
