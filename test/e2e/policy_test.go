package e2e

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"
)

var policyGVR = schema.GroupVersionResource{Group: "eci.dev", Version: "v1alpha1", Resource: "isolationpolicies"}

// A malformed IsolationPolicy is refused by the API server with a message a person
// understands; the chart's default policy is there.
func TestPolicyValidation(t *testing.T) {
	requireE2E(t)
	f := features.New("IsolationPolicy validation").
		Assess("bad policies are refused, the default exists", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			dc, err := dynamic.NewForConfig(cfg.Client().RESTConfig())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := dc.Resource(policyGVR).Get(ctx, "eci-default", metav1.GetOptions{}); err != nil {
				t.Errorf("the chart's default policy: %v", err)
			}
			for spec, want := range map[string]map[string]any{
				"path var/lib/x is not absolute":        {"protectedMounts": map[string]any{"paths": []any{"var/lib/x"}}},
				"idsPerPod must be a multiple of 65536": {"userNamespace": map[string]any{"idsPerPod": int64(1000)}},
			} {
				obj := &unstructured.Unstructured{Object: map[string]any{
					"apiVersion": "eci.dev/v1alpha1", "kind": "IsolationPolicy",
					"metadata": map[string]any{"name": "e2e-bad"},
					"spec":     want,
				}}
				_, err := dc.Resource(policyGVR).Create(ctx, obj, metav1.CreateOptions{})
				if err == nil {
					_ = dc.Resource(policyGVR).Delete(ctx, "e2e-bad", metav1.DeleteOptions{})
					t.Errorf("a policy with %v was accepted", want)
					continue
				}
				if !strings.Contains(err.Error(), spec) {
					t.Errorf("refusal %q does not say %q", err, spec)
				}
			}
			return ctx
		}).
		Assess("kubectl explain documents the spec", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			kubectl := os.Getenv("ECI_E2E_KUBECTL")
			if kubectl == "" {
				kubectl = "kubectl"
			}
			for _, field := range []string{"selector", "priority", "mode", "userNamespace", "protectedMounts", "trappedSyscalls", "procEmulation"} {
				out, err := exec.CommandContext(ctx, kubectl, "explain", "isolationpolicy.spec."+field).CombinedOutput()
				if err != nil {
					t.Fatalf("kubectl explain isolationpolicy.spec.%s: %v\n%s", field, err, out)
				}
				_, desc, ok := strings.Cut(string(out), "DESCRIPTION:")
				if !ok || len(strings.TrimSpace(desc)) < 20 {
					t.Errorf("kubectl explain isolationpolicy.spec.%s has no real description:\n%s", field, out)
				}
			}
			return ctx
		}).Feature()
	testenv.Test(t, f)
}
