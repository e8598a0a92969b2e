package v1alpha1_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	v1 "github.com/eci-dev/eci/api/v1alpha1"
	"github.com/eci-dev/eci/runtime/harden"
)

var (
	crdFile   = filepath.Join("..", "..", "config", "crd", "bases", "eci.dev_isolationpolicies.yaml")
	chartCRD  = filepath.Join("..", "..", "charts", "eci", "crds", "eci.dev_isolationpolicies.yaml")
	typesFile = "isolationpolicy_types.go"
)

func fullPolicy() *v1.IsolationPolicy {
	yes := true
	return &v1.IsolationPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Generation: 3, Labels: map[string]string{"a": "b"}},
		Spec: func() v1.IsolationPolicySpec {
			s := goodSpec()
			s.ProtectedMounts.ImmutableContainerMounts = &yes
			s.ProcEmulation.Enabled = &yes
			s.Selector.PodSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{"x", "y"}},
			}}
			return s
		}(),
		Status: v1.IsolationPolicyStatus{
			ObservedGeneration: 3,
			Conditions:         []metav1.Condition{{Type: "Valid", Status: metav1.ConditionTrue, Reason: "Valid", ObservedGeneration: 3}},
			Nodes: v1.NodeRollup{Desired: 3, Applied: 2, Failed: 1,
				Failures: []v1.NodeFailure{{Node: "n1", Message: "no space"}}},
		},
	}
}

func TestDeepCopyRoundTrip(t *testing.T) {
	p := fullPolicy()
	c := p.DeepCopy()
	if !reflect.DeepEqual(p, c) {
		t.Fatalf("DeepCopy differs:\n%+v\n%+v", p, c)
	}
	// The copy shares no memory with the original.
	*c.Spec.ProtectedMounts.ImmutableContainerMounts = false
	*c.Spec.ProcEmulation.Enabled = false
	c.Spec.ProtectedMounts.Paths[0] = "/changed"
	c.Spec.ProtectedMounts.Exceptions[0].Images[0] = "changed"
	c.Spec.TrappedSyscalls[0].Names[0] = "changed"
	c.Spec.Selector.PodSelector.MatchExpressions[0].Values[0] = "changed"
	c.Spec.Selector.NamespaceSelector.MatchLabels["team"] = "changed"
	c.Status.Conditions[0].Reason = "changed"
	c.Status.Nodes.Failures[0].Node = "changed"
	if !reflect.DeepEqual(p, fullPolicy()) {
		t.Fatalf("changing the copy changed the original: %+v", p)
	}

	list := &v1.IsolationPolicyList{Items: []v1.IsolationPolicy{*fullPolicy()}}
	lc := list.DeepCopyObject().(*v1.IsolationPolicyList)
	if !reflect.DeepEqual(list, lc) {
		t.Fatal("list DeepCopyObject differs")
	}

	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var back v1.IsolationPolicy
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p, &back) {
		t.Fatalf("JSON round trip differs:\n%s", b)
	}
}

func loadCRD(t *testing.T) *apiextv1.CustomResourceDefinition {
	t.Helper()
	b, err := os.ReadFile(crdFile)
	if err != nil {
		t.Fatalf("%v (run hack/generate.sh)", err)
	}
	var crd apiextv1.CustomResourceDefinition
	if err := yaml.UnmarshalStrict(b, &crd); err != nil {
		t.Fatal(err)
	}
	if len(crd.Spec.Versions) != 1 || crd.Spec.Versions[0].Schema == nil {
		t.Fatalf("want one version with a schema, got %+v", crd.Spec.Versions)
	}
	return &crd
}

func schemaAt(t *testing.T, crd *apiextv1.CustomResourceDefinition, path ...string) apiextv1.JSONSchemaProps {
	t.Helper()
	s := *crd.Spec.Versions[0].Schema.OpenAPIV3Schema
	for _, p := range path {
		if p == "[]" {
			if s.Items == nil || s.Items.Schema == nil {
				t.Fatalf("no items at %v", path)
			}
			s = *s.Items.Schema
			continue
		}
		next, ok := s.Properties[p]
		if !ok {
			t.Fatalf("no property %q on the way to %v", p, path)
		}
		s = next
	}
	return s
}

var quoted = regexp.MustCompile(`'([^']*)'`)

// TestKnownSyscallsMatchMarker fails when the syscall list of the CEL rule (in the marker
// and in the generated CRD) and the Go table KnownSyscalls drift apart.
func TestKnownSyscallsMatchMarker(t *testing.T) {
	want := v1.KnownSyscallNames()
	if d := duplicates(want); len(d) > 0 {
		t.Errorf("KnownSyscalls lists %v more than once", d)
	}
	name := regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)
	for _, s := range v1.KnownSyscalls {
		if !name.MatchString(s.Name) || len(s.Arches) == 0 {
			t.Errorf("bad table entry %+v", s)
		}
	}

	listOf := func(rule string) []string {
		i := strings.Index(rule, "[")
		j := strings.LastIndex(rule, "]")
		if !strings.HasPrefix(rule, "self in [") || j < i {
			t.Fatalf("the syscall rule is not \"self in [...]\": %s", rule)
		}
		var got []string
		for _, m := range quoted.FindAllStringSubmatch(rule[i:j], -1) {
			got = append(got, m[1])
		}
		return got
	}

	crd := loadCRD(t)
	items := schemaAt(t, crd, "spec", "trappedSyscalls", "[]", "names", "[]")
	var rules []string
	for _, r := range items.XValidations {
		if strings.HasPrefix(r.Rule, "self in [") {
			rules = append(rules, r.Rule)
		}
	}
	if len(rules) != 1 {
		t.Fatalf("want one \"self in [...]\" rule on trappedSyscalls[].names[], got %q", rules)
	}
	if got := listOf(rules[0]); !slices.Equal(got, want) {
		t.Errorf("the CRD's syscall list differs from KnownSyscalls (edit the marker on SyscallName in %s, then run hack/generate.sh):\n CRD:   %v\n table: %v", typesFile, got, want)
	}

	src, err := os.ReadFile(typesFile)
	if err != nil {
		t.Fatal(err)
	}
	marker := regexp.MustCompile(`(?m)^// \+kubebuilder:validation:XValidation:rule="(self in \[[^\]]*\])"`).FindSubmatch(src)
	if marker == nil {
		t.Fatalf("no syscall marker in %s", typesFile)
	}
	if got := listOf(string(marker[1])); !slices.Equal(got, want) {
		t.Errorf("the marker's syscall list differs from KnownSyscalls:\n marker: %v\n table:  %v", got, want)
	}
}

func TestKnownErrnosMatchMarker(t *testing.T) {
	crd := loadCRD(t)
	s := schemaAt(t, crd, "spec", "trappedSyscalls", "[]", "errno")
	var got []v1.Errno
	for _, e := range s.Enum {
		var v string
		if err := json.Unmarshal(e.Raw, &v); err != nil {
			t.Fatal(err)
		}
		got = append(got, v1.Errno(v))
	}
	if !slices.Equal(got, v1.KnownErrnos) {
		t.Errorf("the CRD's errno enum differs from KnownErrnos:\n CRD:   %v\n table: %v", got, v1.KnownErrnos)
	}
}

func duplicates(s []string) []string {
	seen := map[string]bool{}
	var d []string
	for _, x := range s {
		if seen[x] {
			d = append(d, x)
		}
		seen[x] = true
	}
	return d
}

// TestCRDDocumentsEveryField is what `kubectl explain isolationpolicy.spec --recursive`
// relies on: every field of spec and status has a description.
func TestCRDDocumentsEveryField(t *testing.T) {
	crd := loadCRD(t)
	root := *crd.Spec.Versions[0].Schema.OpenAPIV3Schema
	var walk func(path string, s apiextv1.JSONSchemaProps)
	walk = func(path string, s apiextv1.JSONSchemaProps) {
		if strings.TrimSpace(s.Description) == "" {
			t.Errorf("%s has no description", path)
		}
		for name, p := range s.Properties {
			walk(path+"."+name, p)
		}
		if s.Items != nil && s.Items.Schema != nil {
			for name, p := range s.Items.Schema.Properties {
				walk(path+"[]."+name, p)
			}
		}
	}
	walk("spec", root.Properties["spec"])
	walk("status", root.Properties["status"])
}

func TestCRDShape(t *testing.T) {
	crd := loadCRD(t)
	if crd.Name != "isolationpolicies.eci.dev" || crd.Spec.Scope != apiextv1.ClusterScoped ||
		crd.Spec.Names.Kind != "IsolationPolicy" || !slices.Contains(crd.Spec.Names.ShortNames, "isopol") {
		t.Errorf("unexpected names or scope: %s %s %+v", crd.Name, crd.Spec.Scope, crd.Spec.Names)
	}
	v := crd.Spec.Versions[0]
	if v.Name != "v1alpha1" || !v.Served || !v.Storage || v.Subresources == nil || v.Subresources.Status == nil {
		t.Errorf("version %s: served %v storage %v subresources %+v", v.Name, v.Served, v.Storage, v.Subresources)
	}
	var cols []string
	for _, c := range v.AdditionalPrinterColumns {
		cols = append(cols, c.Name+"="+c.JSONPath)
	}
	wantCols := []string{"Mode=.spec.mode", "Priority=.spec.priority", "Nodes Ready=.status.nodes.applied", "Age=.metadata.creationTimestamp"}
	if !slices.Equal(cols, wantCols) {
		t.Errorf("printer columns %v, want %v", cols, wantCols)
	}

	rules := func(path ...string) string {
		var r []string
		for _, x := range schemaAt(t, crd, path...).XValidations {
			r = append(r, x.Rule)
		}
		return strings.Join(r, "\n")
	}
	for _, c := range []struct {
		path []string
		want string
	}{
		{[]string{"spec", "protectedMounts", "paths", "[]"}, "self.startsWith('/')"},
		{[]string{"spec", "protectedMounts", "paths", "[]"}, "!self.contains('//')"},
		{[]string{"spec", "protectedMounts", "paths", "[]"}, "!self.contains('/../')"},
		{[]string{"spec", "protectedMounts", "paths", "[]"}, "!self.endsWith('/')"},
		{[]string{"spec", "protectedMounts"}, "e.paths.all(p, has(self.paths) && p in self.paths)"},
		{[]string{"spec", "protectedMounts", "exceptions", "[]"}, "has(self.namespaces) || has(self.images)"},
		{[]string{"spec", "protectedMounts", "exceptions", "[]", "images", "[]"}, "self.matches('^sha256:[0-9a-f]{64}$')"},
		{[]string{"spec", "trappedSyscalls"}, "self.filter(b, b.names.exists(n, n in a.names)).size() == 1"},
		{[]string{"spec", "trappedSyscalls", "[]"}, "self.action != 'Deny' || has(self.errno)"},
		{[]string{"spec", "trappedSyscalls", "[]"}, "self.action == 'Deny' || !has(self.errno)"},
		{[]string{"spec", "trappedSyscalls", "[]", "names", "[]"}, "self in ['mount'"},
		{[]string{"spec", "userNamespace", "idsPerPod"}, "self % 65536 == 0"},
	} {
		if got := rules(c.path...); !strings.Contains(got, c.want) {
			t.Errorf("no rule %q at %v; rules there:\n%s", c.want, c.path, got)
		}
	}
	if got := schemaAt(t, crd, "spec", "protectedMounts", "paths"); got.XListType == nil || *got.XListType != "set" {
		t.Error("protectedMounts.paths is not a set")
	}
	if got := schemaAt(t, crd, "status", "conditions"); got.XListType == nil || *got.XListType != "map" || !slices.Equal(got.XListMapKeys, []string{"type"}) {
		t.Error("status.conditions is not a map keyed by type")
	}
}

// TestChartCRDIsTheGeneratedOne: the chart ships exactly config/crd/bases.
func TestChartCRDIsTheGeneratedOne(t *testing.T) {
	a, err := os.ReadFile(crdFile)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(chartCRD)
	if err != nil {
		t.Fatal(err)
	}
	if string(a) != string(b) {
		t.Errorf("%s differs from %s: run hack/generate.sh", chartCRD, crdFile)
	}
}

var chartDefaultPolicy = filepath.Join("..", "..", "charts", "eci", "templates", "default-policy.yaml")

// defaultPolicy reads the chart's default policy, without its template lines.
func defaultPolicy(t *testing.T) *v1.IsolationPolicy {
	t.Helper()
	b, err := os.ReadFile(chartDefaultPolicy)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	inComment := false
	for _, l := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(trimmed, "{{- /*"):
			inComment = !strings.HasSuffix(trimmed, "*/}}")
			continue
		case inComment:
			inComment = !strings.HasSuffix(trimmed, "*/}}")
			continue
		case strings.HasPrefix(trimmed, "{{"):
			continue
		case strings.Contains(l, "{{"):
			t.Fatalf("unexpected template expression in the default policy: %s", l)
		}
		lines = append(lines, l)
	}
	var p v1.IsolationPolicy
	if err := yaml.UnmarshalStrict([]byte(strings.Join(lines, "\n")), &p); err != nil {
		t.Fatalf("%s: %v", chartDefaultPolicy, err)
	}
	return &p
}

// TestChartDefaultPolicy: the chart's default policy protects exactly the runtime's
// built-in paths, selects everything at priority 0, and uses only known syscalls.
func TestChartDefaultPolicy(t *testing.T) {
	p := defaultPolicy(t)
	if p.Name != "eci-default" || p.Kind != "IsolationPolicy" || p.APIVersion != "eci.dev/v1alpha1" {
		t.Errorf("unexpected object %s %s %s", p.APIVersion, p.Kind, p.Name)
	}
	s := p.Spec
	if s.Priority != 0 || s.Mode != v1.ModeEnforce || s.UserNamespace.IDsPerPod != 65536 ||
		s.Selector.NamespaceSelector != nil || s.Selector.PodSelector != nil {
		t.Errorf("want priority 0, Enforce, 65536 ids and empty selectors: %+v", s)
	}
	if s.ProtectedMounts.ImmutableContainerMounts == nil || !*s.ProtectedMounts.ImmutableContainerMounts ||
		s.ProcEmulation.Enabled == nil || !*s.ProcEmulation.Enabled {
		t.Error("immutableContainerMounts and procEmulation must be on")
	}
	var builtin []v1.AbsolutePath
	for _, b := range harden.BuiltinProtected() {
		builtin = append(builtin, v1.AbsolutePath(b.Path))
	}
	if !slices.Equal(s.ProtectedMounts.Paths, builtin) {
		t.Errorf("the default policy's paths differ from harden.BuiltinProtected:\n policy:  %v\n builtin: %v", s.ProtectedMounts.Paths, builtin)
	}
	known := v1.KnownSyscallNames()
	var all []string
	for _, e := range s.TrappedSyscalls {
		for _, n := range e.Names {
			if !slices.Contains(known, string(n)) {
				t.Errorf("unknown syscall %s", n)
			}
			all = append(all, string(n))
		}
	}
	if d := duplicates(all); len(d) > 0 {
		t.Errorf("syscalls in more than one entry: %v", d)
	}
}
