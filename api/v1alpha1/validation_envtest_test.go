package v1alpha1_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/eci-dev/eci/api/v1alpha1"
	"github.com/eci-dev/eci/internal/envtestutil"
)

// startAPIServer starts etcd and kube-apiserver from $KUBEBUILDER_ASSETS with the generated
// CRD installed. It skips when the binaries are not configured, unless ECI_TEST_ENVTEST=1.
func startAPIServer(t *testing.T) client.Client {
	t.Helper()
	cfg := envtestutil.Start(t, filepath.Join("..", "..", "config", "crd", "bases"))
	scheme := runtime.NewScheme()
	if err := v1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

const digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func goodSpec() v1.IsolationPolicySpec {
	return v1.IsolationPolicySpec{
		Priority:      10,
		Mode:          v1.ModeAudit,
		UserNamespace: v1.UserNamespace{IDsPerPod: 131072},
		Selector: v1.PolicySelector{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "a"}},
		},
		ProtectedMounts: v1.ProtectedMounts{
			Paths: []v1.AbsolutePath{"/", "/var/run/docker.sock", "/var/lib/kubelet"},
			Exceptions: []v1.MountException{{
				Namespaces: []string{"ci"},
				Images:     []v1.ImageDigest{digest},
				Paths:      []v1.AbsolutePath{"/var/run/docker.sock"},
			}},
		},
		TrappedSyscalls: []v1.TrappedSyscalls{
			{Names: []v1.SyscallName{"mount", "umount2"}, Action: v1.ActionEmulate},
			{Names: []v1.SyscallName{"reboot", "kexec_load"}, Action: v1.ActionDeny, Errno: "EPERM"},
			{Names: []v1.SyscallName{"ptrace"}, Action: v1.ActionAudit},
		},
	}
}

func TestValidationAgainstAPIServer(t *testing.T) {
	c := startAPIServer(t)
	ctx := context.Background()

	t.Run("good", func(t *testing.T) {
		p := &v1.IsolationPolicy{ObjectMeta: metav1.ObjectMeta{Name: "good"}, Spec: goodSpec()}
		if err := c.Create(ctx, p); err != nil {
			t.Fatalf("a valid policy was refused: %v", err)
		}
	})

	t.Run("defaults", func(t *testing.T) {
		p := &v1.IsolationPolicy{ObjectMeta: metav1.ObjectMeta{Name: "defaults"}}
		if err := c.Create(ctx, p); err != nil {
			t.Fatalf("an empty policy was refused: %v", err)
		}
		s := p.Spec
		if s.Mode != v1.ModeEnforce || s.Priority != 0 || s.UserNamespace.IDsPerPod != 65536 ||
			s.ProcEmulation.Enabled == nil || !*s.ProcEmulation.Enabled ||
			s.ProtectedMounts.ImmutableContainerMounts == nil || !*s.ProtectedMounts.ImmutableContainerMounts {
			t.Errorf("defaults not applied: %+v", s)
		}
	})

	t.Run("chart default policy", func(t *testing.T) {
		if err := c.Create(ctx, defaultPolicy(t)); err != nil {
			t.Fatalf("the chart's eci-default was refused: %v", err)
		}
	})

	t.Run("every known syscall", func(t *testing.T) {
		var names []v1.SyscallName
		for _, n := range v1.KnownSyscallNames() {
			names = append(names, v1.SyscallName(n))
		}
		spec := goodSpec()
		spec.TrappedSyscalls = nil
		for len(names) > 0 {
			n := min(len(names), 64)
			spec.TrappedSyscalls = append(spec.TrappedSyscalls, v1.TrappedSyscalls{Names: names[:n], Action: v1.ActionAudit})
			names = names[n:]
		}
		p := &v1.IsolationPolicy{ObjectMeta: metav1.ObjectMeta{Name: "all-syscalls"}, Spec: spec}
		if err := c.Create(ctx, p); err != nil {
			t.Fatalf("the known syscalls were refused: %v", err)
		}
	})

	// Each bad object must be refused with exactly these causes (field, and the message
	// after the apiserver's "Invalid value: ...: " prefix), and nothing else.
	type cause struct{ field, message string }
	bad := []struct {
		name   string
		mutate func(*v1.IsolationPolicySpec)
		want   []cause
	}{
		{"relative path", func(s *v1.IsolationPolicySpec) { s.ProtectedMounts.Paths = append(s.ProtectedMounts.Paths, "var/lib") },
			[]cause{{"spec.protectedMounts.paths[3]", "path var/lib is not absolute: it must start with /"}}},
		{"dotdot", func(s *v1.IsolationPolicySpec) {
			s.ProtectedMounts.Paths = append(s.ProtectedMounts.Paths, "/var/../x")
		},
			[]cause{{"spec.protectedMounts.paths[3]", "path /var/../x must not contain . or .. segments: eci compares paths literally, write the path they resolve to"}}},
		{"dot at end", func(s *v1.IsolationPolicySpec) { s.ProtectedMounts.Paths = append(s.ProtectedMounts.Paths, "/var/.") },
			[]cause{{"spec.protectedMounts.paths[3]", "path /var/. must not contain . or .. segments: eci compares paths literally, write the path they resolve to"}}},
		{"trailing slash", func(s *v1.IsolationPolicySpec) { s.ProtectedMounts.Paths = append(s.ProtectedMounts.Paths, "/var/") },
			[]cause{{"spec.protectedMounts.paths[3]", "path /var/ must not end with /"}}},
		{"double slash", func(s *v1.IsolationPolicySpec) {
			s.ProtectedMounts.Paths = append(s.ProtectedMounts.Paths, "/var//lib")
		},
			[]cause{{"spec.protectedMounts.paths[3]", "path /var//lib must not contain //"}}},
		{"duplicate path", func(s *v1.IsolationPolicySpec) { s.ProtectedMounts.Paths = append(s.ProtectedMounts.Paths, "/a", "/a") },
			[]cause{{"spec.protectedMounts.paths[4]", `Duplicate value: "/a"`}}},
		{"exception path not protected", func(s *v1.IsolationPolicySpec) {
			s.ProtectedMounts.Exceptions[0].Paths = []v1.AbsolutePath{"/run/containerd"}
		}, []cause{{"spec.protectedMounts", "every path of an exception must be one of protectedMounts.paths"}}},
		{"empty exception", func(s *v1.IsolationPolicySpec) { s.ProtectedMounts.Exceptions = []v1.MountException{{}} },
			[]cause{{"spec.protectedMounts.exceptions[0]", "an exception must list namespaces, images or both; an empty exception would except every pod"}}},
		{"unknown syscall", func(s *v1.IsolationPolicySpec) { s.TrappedSyscalls[0].Names = []v1.SyscallName{"mountt"} },
			[]cause{{"spec.trappedSyscalls[0].names[0]", "unknown syscall mountt: not one eci can trap on x86_64 or arm64 (names are lower case, as in man 2 syscalls; umount is umount2)"}}},
		{"syscall pattern", func(s *v1.IsolationPolicySpec) { s.TrappedSyscalls[0].Names = []v1.SyscallName{"Mount"} },
			[]cause{
				{"spec.trappedSyscalls[0].names[0]", `spec.trappedSyscalls[0].names[0] in body should match '^[a-z_][a-z0-9_]*$'`},
				{"spec.trappedSyscalls[0].names[0]", "unknown syscall Mount: not one eci can trap on x86_64 or arm64 (names are lower case, as in man 2 syscalls; umount is umount2)"},
			}},
		{"deny without errno", func(s *v1.IsolationPolicySpec) { s.TrappedSyscalls[1].Errno = "" },
			[]cause{{"spec.trappedSyscalls[1]", "errno is required when action is Deny, for example errno: EPERM"}}},
		{"errno without deny", func(s *v1.IsolationPolicySpec) { s.TrappedSyscalls[0].Errno = "EPERM" },
			[]cause{{"spec.trappedSyscalls[0]", "errno is only allowed when action is Deny"}}},
		{"unknown errno", func(s *v1.IsolationPolicySpec) { s.TrappedSyscalls[1].Errno = "EWHATEVER" },
			[]cause{{"spec.trappedSyscalls[1].errno", `Unsupported value: "EWHATEVER": supported values: "EPERM", "EACCES", "ENOENT", "EINVAL", "EBUSY", "EROFS", "ENOSYS", "ENOTSUP", "EOPNOTSUPP", "ENODEV", "ENXIO", "EAGAIN", "ENOMEM", "EFAULT"`}}},
		{"duplicate syscall across entries", func(s *v1.IsolationPolicySpec) {
			s.TrappedSyscalls[2].Names = append(s.TrappedSyscalls[2].Names, "mount")
		}, []cause{{"spec.trappedSyscalls", "syscalls listed in more than one trappedSyscalls entry: mount (a syscall may appear in only one entry: merge the entries or remove the duplicates)"}}},
		{"idsPerPod 1000", func(s *v1.IsolationPolicySpec) { s.UserNamespace.IDsPerPod = 1000 },
			[]cause{
				{"spec.userNamespace.idsPerPod", "spec.userNamespace.idsPerPod in body should be greater than or equal to 65536"},
				{"spec.userNamespace.idsPerPod", "idsPerPod must be a multiple of 65536 (65536, 131072, ...)"},
			}},
		{"idsPerPod not a multiple", func(s *v1.IsolationPolicySpec) { s.UserNamespace.IDsPerPod = 100000 },
			[]cause{{"spec.userNamespace.idsPerPod", "idsPerPod must be a multiple of 65536 (65536, 131072, ...)"}}},
		{"bad digest", func(s *v1.IsolationPolicySpec) {
			s.ProtectedMounts.Exceptions[0].Images = []v1.ImageDigest{"sha256:abc"}
		},
			[]cause{{"spec.protectedMounts.exceptions[0].images[0]", "image sha256:abc is not a digest: write sha256: and 64 lowercase hex digits, as in image@sha256:..."}}},
		{"bad mode", func(s *v1.IsolationPolicySpec) { s.Mode = "Off" },
			[]cause{{"spec.mode", `Unsupported value: "Off": supported values: "Enforce", "Audit"`}}},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			spec := goodSpec()
			tc.mutate(&spec)
			name := strings.ToLower(strings.ReplaceAll(tc.name, " ", "-"))
			err := c.Create(ctx, &v1.IsolationPolicy{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec})
			if err == nil {
				t.Fatal("the API server accepted it")
			}
			if !apierrors.IsInvalid(err) {
				t.Fatalf("want an Invalid error, got %v", err)
			}
			var status apierrors.APIStatus
			if !errors.As(err, &status) || status.Status().Details == nil {
				t.Fatalf("no details in %v", err)
			}
			var got []cause
			for _, c := range status.Status().Details.Causes {
				if c.Field == "<nil>" && strings.Contains(c.Message, "some validation rules were not checked") {
					continue // the apiserver's note after an OpenAPI error
				}
				got = append(got, cause{c.Field, c.Message})
			}
			if len(got) != len(tc.want) {
				t.Fatalf("want %d causes %q, got %q", len(tc.want), tc.want, got)
			}
			for i, w := range tc.want {
				if got[i].field != w.field || !strings.HasSuffix(got[i].message, w.message) {
					t.Errorf("cause %d: want %s: ...%s\ngot %s: %s", i, w.field, w.message, got[i].field, got[i].message)
				}
			}
			t.Logf("refused: %v", err)
		})
	}
}
