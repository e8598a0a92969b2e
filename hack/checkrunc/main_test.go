package main

import (
	"encoding/json"
	"os"
	"slices"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go/features"
)

// loadFeatures reads `runc features` output recorded from the pinned runc.
func loadFeatures(t *testing.T) *features.Features {
	t.Helper()
	b, err := os.ReadFile("testdata/runc-v1.5.3-features.json")
	if err != nil {
		t.Fatal(err)
	}
	var f features.Features
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return &f
}

func TestCheck(t *testing.T) {
	t.Parallel()
	no := false
	tests := []struct {
		name   string
		modify func(*features.Features)
		want   []string
	}{
		{name: "pinned runc", modify: func(*features.Features) {}},
		{
			name:   "seccomp disabled",
			modify: func(f *features.Features) { f.Linux.Seccomp = &features.Seccomp{Enabled: &no} },
			want: []string{
				"linux.seccomp.enabled is not true (runc built without -tags seccomp or without libseccomp)",
				`linux.seccomp.actions lacks "SCMP_ACT_NOTIFY"`,
			},
		},
		{
			name: "no notify action",
			modify: func(f *features.Features) {
				f.Linux.Seccomp.Actions = slices.DeleteFunc(f.Linux.Seccomp.Actions, func(a string) bool { return a == "SCMP_ACT_NOTIFY" })
			},
			want: []string{`linux.seccomp.actions lacks "SCMP_ACT_NOTIFY"`},
		},
		{
			name: "no user namespace",
			modify: func(f *features.Features) {
				f.Linux.Namespaces = slices.DeleteFunc(f.Linux.Namespaces, func(n string) bool { return n == "user" })
			},
			want: []string{`linux.namespaces lacks "user"`},
		},
		{
			name:   "no idmap",
			modify: func(f *features.Features) { f.Linux.MountExtensions = nil },
			want:   []string{"linux.mountExtensions.idmap.enabled is not true"},
		},
		{
			name:   "idmap disabled",
			modify: func(f *features.Features) { f.Linux.MountExtensions.IDMap.Enabled = &no },
			want:   []string{"linux.mountExtensions.idmap.enabled is not true"},
		},
		{
			name:   "no linux section",
			modify: func(f *features.Features) { f.Linux = nil },
			want: []string{
				"linux.seccomp.enabled is not true (runc built without -tags seccomp or without libseccomp)",
				`linux.seccomp.actions lacks "SCMP_ACT_NOTIFY"`,
				`linux.namespaces lacks "user"`,
				"linux.mountExtensions.idmap.enabled is not true",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := loadFeatures(t)
			tt.modify(f)
			if got := Check(f); !slices.Equal(got, tt.want) {
				t.Errorf("Check() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCheckVersion(t *testing.T) {
	t.Parallel()
	out := []byte("runc version 1.5.3\ncommit: v1.5.3\nspec: 1.3.0\n")
	if got := checkVersion(out, "1.5.3"); got != nil {
		t.Errorf("checkVersion(1.5.3) = %q, want nil", got)
	}
	if got := checkVersion(out, "1.5.4"); len(got) != 1 {
		t.Errorf("checkVersion(1.5.4) = %q, want one complaint", got)
	}
	if got := checkVersion(nil, "1.5.3"); len(got) != 1 {
		t.Errorf("checkVersion(empty) = %q, want one complaint", got)
	}
}
