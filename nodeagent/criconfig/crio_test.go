package criconfig

import (
	"reflect"
	"strings"
	"testing"
)

func TestCRIOMonitorFromDefaultRuntime(t *testing.T) {
	t.Parallel()
	h := DefaultHandler()
	for _, c := range []struct {
		name  string
		files map[string]string
		want  map[string]any // monitor keys in eci's table
		note  string
	}{
		{
			name: "crio.conf sets the default, a drop-in its conmon",
			files: map[string]string{
				"/etc/crio/crio.conf": "[crio.runtime]\ndefault_runtime = 'runc'\n[crio.runtime.runtimes.crun]\nmonitor_path = '/usr/bin/conmon-crun'\n",
				crioDir + "/10-runc.conf": "[crio.runtime.runtimes.runc]\nmonitor_path = '/usr/libexec/crio/conmon'\n" +
					"monitor_cgroup = 'pod'\nmonitor_env = ['PATH=/usr/bin']\n",
			},
			want: map[string]any{"monitor_path": "/usr/libexec/crio/conmon", "monitor_cgroup": "pod", "monitor_env": []any{"PATH=/usr/bin"}},
			note: `as the default runtime "runc"`,
		},
		{
			name: "later drop-ins override earlier ones",
			files: map[string]string{
				crioDir + "/10-crio.conf": "[crio.runtime.runtimes.crun]\nmonitor_path = '/a/conmon'\n",
				crioDir + "/20-site.conf": "[crio.runtime.runtimes.crun]\nmonitor_path = '/b/conmon'\n",
			},
			want: map[string]any{"monitor_path": "/b/conmon"},
			note: `"crun"`,
		},
		{
			name:  "nothing configured",
			files: map[string]string{},
			want:  map[string]any{},
			note:  `CRI-O's default conmon settings (the default runtime "runc" sets none)`,
		},
		{
			name: "eci's own stale drop-in is not a source",
			files: map[string]string{
				crioDir + "/99-eci.conf": "[crio.runtime]\ndefault_runtime = 'eci'\n[crio.runtime.runtimes.eci]\nmonitor_path = '/old/conmon'\n",
			},
			want: map[string]any{},
			note: "rewrote stale drop-in",
		},
	} {
		root := hostTree(t, c.files)
		p, err := PlanCRIOInstall(root, crioDir, h)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		data, ok := p.File(crioDir + "/99-eci.conf")
		if !ok {
			t.Fatalf("%s: no drop-in planned", c.name)
		}
		m, err := parseTOML("drop-in", data)
		if err != nil {
			t.Fatal(err)
		}
		table, _ := tableAt("drop-in", m, "crio", "runtime", "runtimes", "eci")
		for _, k := range crioMonitorKeys {
			if got, want := table[k], c.want[k]; !reflect.DeepEqual(got, want) {
				t.Errorf("%s: %s = %v, want %v", c.name, k, got, want)
			}
		}
		if table["runtime_path"] != h.BinaryName || table["runtime_type"] != "oci" || table["runtime_root"] != h.CRIORoot {
			t.Errorf("%s: table %v", c.name, table)
		}
		if !strings.Contains(p.Description, c.note) {
			t.Errorf("%s: description %q lacks %q", c.name, p.Description, c.note)
		}
	}
}

func TestCRIOErrors(t *testing.T) {
	t.Parallel()
	h := DefaultHandler()
	root := hostTree(t, map[string]string{crioDir + "/10-crio.conf": "[crio.runtime\n"})
	_, err := PlanCRIOInstall(root, crioDir, h)
	wantErr(t, err, crioDir+"/10-crio.conf: invalid TOML at line 1")

	root = hostTree(t, map[string]string{crioDir + "/10-crio.conf": "[crio.runtime]\ndefault_runtime = 1\n"})
	_, err = PlanCRIOInstall(root, crioDir, h)
	wantErr(t, err, "default_runtime is a integer")
}

func TestCRIOUninstallNothing(t *testing.T) {
	t.Parallel()
	p, err := PlanCRIOUninstall(t.TempDir(), crioDir, DefaultHandler())
	if err != nil || !p.Noop() || p.Changed {
		t.Errorf("uninstall without install: %+v, %v", p, err)
	}
}
