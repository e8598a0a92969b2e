package controllers

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"
)

var (
	templateComment = regexp.MustCompile(`(?s)\{\{-?\s*/\*.*?\*/\s*-?\}\}`)
	templateAction  = regexp.MustCompile(`\{\{.*?\}\}`)
)

// rbacRules reads the ClusterRole and Role rules of a YAML stream, keyed by
// kind. Lines that hold only a template action are dropped and the other
// actions replaced by a placeholder, so a chart template parses without helm.
func rbacRules(t *testing.T, path string) map[string][]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data = templateComment.ReplaceAll(data, nil)
	var lines []string
	for _, l := range strings.Split(string(data), "\n") {
		if s := strings.TrimSpace(l); strings.HasPrefix(s, "{{") && strings.HasSuffix(s, "}}") {
			continue
		}
		lines = append(lines, templateAction.ReplaceAllString(l, "placeholder"))
	}
	out := map[string][]string{}
	for _, doc := range bytes.Split([]byte(strings.Join(lines, "\n")), []byte("\n---")) {
		var obj struct {
			Kind  string              `json:"kind"`
			Rules []rbacv1.PolicyRule `json:"rules"`
		}
		if err := yaml.Unmarshal(doc, &obj); err != nil {
			t.Fatalf("%s: %v\n%s", path, err, doc)
		}
		if obj.Kind != "ClusterRole" && obj.Kind != "Role" {
			continue
		}
		if _, dup := out[obj.Kind]; dup {
			t.Fatalf("%s: more than one %s", path, obj.Kind)
		}
		rules := []string{}
		for _, r := range obj.Rules {
			// One line per (group, resource, verb): the same permissions
			// written as differently grouped rules compare equal.
			for _, g := range r.APIGroups {
				for _, res := range r.Resources {
					for _, v := range r.Verbs {
						rules = append(rules, g+"/"+res+" "+v)
					}
				}
			}
			for _, u := range r.NonResourceURLs {
				for _, v := range r.Verbs {
					rules = append(rules, u+" "+v)
				}
			}
		}
		slices.Sort(rules)
		out[obj.Kind] = slices.Compact(rules)
	}
	return out
}

// TestChartRBACMatchesGenerated keeps the chart's controller RBAC equal to
// what controller-gen generates from the +kubebuilder:rbac markers.
func TestChartRBACMatchesGenerated(t *testing.T) {
	t.Parallel()
	generated := rbacRules(t, filepath.Join("..", "config", "rbac", "role.yaml"))
	chart := rbacRules(t, filepath.Join("..", "charts", "eci", "templates", "controller-rbac.yaml"))
	for _, kind := range []string{"ClusterRole", "Role"} {
		g, c := generated[kind], chart[kind]
		if len(g) == 0 {
			t.Errorf("config/rbac/role.yaml has no %s rules (run make generate)", kind)
		}
		if !slices.Equal(g, c) {
			t.Errorf("%s rules differ: charts/eci/templates/controller-rbac.yaml must carry what make generate writes into config/rbac/role.yaml\ngenerated:\n  %s\nchart:\n  %s",
				kind, strings.Join(g, "\n  "), strings.Join(c, "\n  "))
		}
	}
}
