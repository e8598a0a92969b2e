package criconfig

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// hostTree writes files (host path → content) under a new root.
func hostTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, content := range files {
		writeHost(t, root, p, content)
	}
	return root
}

func writeHost(t *testing.T, root, p, content string) {
	t.Helper()
	full := filepath.Join(root, filepath.FromSlash(p))
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func exists(root, p string) bool {
	_, err := os.Lstat(filepath.Join(root, filepath.FromSlash(p)))
	return err == nil
}

func planInstall(t *testing.T, root string, major int, h Handler) Plan {
	t.Helper()
	p, err := PlanContainerdInstall(root, configPath, major, h)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func planUninstall(t *testing.T, root string, h Handler) Plan {
	t.Helper()
	p, err := PlanContainerdUninstall(root, configPath, h)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func install(t *testing.T, root string, major int, h Handler) Plan {
	t.Helper()
	p := planInstall(t, root, major, h)
	if err := p.Apply(root); err != nil {
		t.Fatal(err)
	}
	return p
}

func uninstall(t *testing.T, root string, h Handler) Plan {
	t.Helper()
	p := planUninstall(t, root, h)
	if err := p.Apply(root); err != nil {
		t.Fatal(err)
	}
	return p
}

func wantErr(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one with %q", parts)
	}
	for _, s := range parts {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not contain %q", err, s)
		}
	}
}

const minimalV3 = `version = 3
[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
  SystemdCgroup = true
`

func TestChooseStrategy(t *testing.T) {
	t.Parallel()
	h := DefaultHandler()
	for _, c := range []struct {
		name     string
		imports  []string
		major    int
		strategy Strategy
		dropIn   string
	}{
		{"containerd 2.2 default", []string{"/etc/containerd/conf.d/*.toml"}, 2, DropIn, "/etc/containerd/conf.d/99-eci.toml"},
		{"relative glob", []string{"conf.d/*.toml"}, 2, DropIn, "/etc/containerd/conf.d/99-eci.toml"},
		{"any file", []string{"/etc/containerd/config.d/*"}, 2, DropIn, "/etc/containerd/config.d/99-eci.toml"},
		{"first covering glob wins", []string{"/etc/containerd/other/*.conf", "/etc/containerd/a/*.toml", "/etc/containerd/b/*.toml"}, 2, DropIn, "/etc/containerd/a/99-eci.toml"},
		{"containerd 1.x", []string{"/etc/containerd/conf.d/*.toml"}, 1, Edit, ""},
		{"unknown major", []string{"/etc/containerd/conf.d/*.toml"}, 0, Edit, ""},
		{"no imports", nil, 2, Edit, ""},
		{"glob that does not cover 99-eci.toml", []string{"/etc/containerd/conf.d/1*.toml"}, 2, Edit, ""},
		{"other extension", []string{"/etc/containerd/conf.d/*.conf"}, 2, Edit, ""},
		{"glob in the directory", []string{"/etc/*/conf.d/*.toml"}, 2, Edit, ""},
		{"literal path to eci's file", []string{"/etc/containerd/conf.d/99-eci.toml"}, 2, Edit, ""},
		{"? is literal to containerd", []string{"/etc/containerd/conf.d/99-ec?.toml"}, 2, Edit, ""},
	} {
		s, d := ChooseStrategy(configPath, c.imports, c.major, h)
		if s != c.strategy || d != c.dropIn {
			t.Errorf("%s: ChooseStrategy = %s %q, want %s %q", c.name, s, d, c.strategy, c.dropIn)
		}
	}
}

func TestConfigVersionErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ config, err string }{
		{"version = 1\n", "config version 1, which eci does not support (too old)"},
		{"version = 5\n", "config version 5, which eci does not know"},
		{"version = '3'\n", "version is a string, want an integer"},
		{"[plugins.cri]\nx = 1\n", "no version key"},
		{"version = 3\nplugins = 1\n", "plugins is a integer, not a table"},
		{"version = 3\nimports = '/etc/containerd/conf.d/*.toml'\n", "imports is a string"},
		{"version = 3\n[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]\nSystemdCgroup = 'yes'\n", "SystemdCgroup is a string, want a boolean"},
	} {
		root := hostTree(t, map[string]string{configPath: c.config})
		_, err := PlanContainerdInstall(root, configPath, 2, DefaultHandler())
		wantErr(t, err, configPath, c.err)
	}
}

func TestEmptyConfigNeedsMajor(t *testing.T) {
	t.Parallel()
	root := hostTree(t, map[string]string{configPath: "# nothing yet\n"})
	_, err := PlanContainerdInstall(root, configPath, 0, DefaultHandler())
	wantErr(t, err, configPath, "empty or missing", "major version")
}

func TestRegistered(t *testing.T) {
	t.Parallel()
	h := DefaultHandler()
	const eci = `
[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.eci]
  runtime_type = 'io.containerd.runc.v2'
  privileged_without_host_devices = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.eci.options]
    BinaryName = '/opt/eci/bin/eci-runtime'
    Root = '/run/containerd/runc-eci'
`
	for _, c := range []struct {
		name    string
		config  string
		version int
		want    bool
		err     string
	}{
		{name: "registered, no cgroup driver anywhere", config: "version = 3\n" + eci, want: true},
		{name: "registered with runc's driver", config: minimalV3 + eci + "    SystemdCgroup = true\n", want: true},
		{name: "wrong driver", config: minimalV3 + eci + "    SystemdCgroup = false\n"},
		{name: "driver missing", config: minimalV3 + eci},
		{name: "drop-in carries the driver", config: "version = 3\n" + eci + "    SystemdCgroup = true\n", want: true},
		{name: "wrong binary", config: "version = 3\n" + strings.Replace(eci, "/opt/eci/bin", "/usr/bin", 1)},
		{name: "extra key", config: "version = 3\n" + eci + "    NoNewKeyring = true\n"},
		{name: "other version's plugin", config: "version = 2\n" + eci},
		{name: "no handler", config: minimalV3},
		{name: "empty", config: ""},
		{name: "asked for the file's version", config: "version = 3\n" + eci, version: 3, want: true},
		{name: "asked for another version", config: "version = 3\n" + eci, version: 2, err: "is version 3, not 2"},
		{name: "version 1", config: "root = '/var/lib/containerd'\n", err: "version 1"},
		{name: "malformed", config: "version = 3\n[plugins\n", err: "line 2"},
	} {
		got, err := Registered([]byte(c.config), c.version, h)
		if c.err != "" {
			wantErr(t, err, c.err)
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s: Registered = %t, %v; want %t", c.name, got, err, c.want)
		}
	}
}

// After install, someone adds a runtime: uninstall takes out only eci's table, keeps theirs
// and the backup, and says so.
func TestUninstallAfterConfigChanged(t *testing.T) {
	t.Parallel()
	h := DefaultHandler()
	root := hostTree(t, map[string]string{configPath: minimalV3})
	install(t, root, 2, h)

	edited := string(readHost(t, root, configPath)) + `
[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.gvisor]
  runtime_type = 'io.containerd.runsc.v1'
`
	writeHost(t, root, configPath, edited)
	reinstall := planInstall(t, root, 2, h)
	if !reinstall.Noop() || reinstall.Changed {
		t.Errorf("reinstall over a config whose eci table is intact changes something: %s", reinstall.Description)
	}

	u := uninstall(t, root, h)
	if !u.Changed || !strings.Contains(u.Description, "changed since eci edited it") ||
		!strings.Contains(u.Description, "config.toml.eci-backup") {
		t.Errorf("description does not say the config was changed and where the backup is: %s", u.Description)
	}
	got := readHost(t, root, configPath)
	m, err := parseTOML("after", got)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := lookup(m, "plugins", criPluginV3, "containerd", "runtimes", "gvisor", "runtime_type"); !ok {
		t.Errorf("the added runtime is gone:\n%s", got)
	}
	if _, ok := lookup(m, "plugins", criPluginV3, "containerd", "runtimes", "eci"); ok {
		t.Errorf("eci's table is still there:\n%s", got)
	}
	if !bytes.Equal(readHost(t, root, configPath+".eci-backup"), []byte(minimalV3)) {
		t.Errorf("the backup of the original was not kept")
	}
	if exists(root, configPath+".eci-state") {
		t.Errorf("the install record was left behind")
	}
	if u2 := planUninstall(t, root, h); !u2.Noop() {
		t.Errorf("second uninstall is not a no-op: %s", u2.Description)
	}

	// Installing again keeps the old backup under its own name and backs up the config
	// as it is now, which the next uninstall puts back exactly.
	now := readHost(t, root, configPath)
	p := install(t, root, 2, h)
	if !strings.Contains(p.Description, "was kept as") {
		t.Errorf("description does not mention the earlier backup: %s", p.Description)
	}
	kept, _ := filepath.Glob(filepath.Join(root, "etc/containerd/config.toml.eci-backup.*"))
	if len(kept) != 1 {
		t.Fatalf("earlier backup not kept under its own name: %v", kept)
	}
	if b, _ := os.ReadFile(kept[0]); string(b) != minimalV3 {
		t.Errorf("kept backup = %q", b)
	}
	uninstall(t, root, h)
	if got := readHost(t, root, configPath); !bytes.Equal(got, now) {
		t.Errorf("uninstall did not restore the config from before the second install:\n%s", got)
	}
}

// Someone breaks eci's table and adds a runtime; a reinstall fixes the table, and the
// uninstall must not then restore the original, which would drop their runtime.
func TestReinstallAfterDriftIsNotRestored(t *testing.T) {
	t.Parallel()
	h := DefaultHandler()
	root := hostTree(t, map[string]string{configPath: minimalV3})
	install(t, root, 2, h)

	drifted := strings.Replace(string(readHost(t, root, configPath)), "/opt/eci/bin/eci-runtime", "/usr/bin/runc", 1) + `
[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.gvisor]
  runtime_type = 'io.containerd.runsc.v1'
`
	writeHost(t, root, configPath, drifted)
	if ok, _ := Registered([]byte(drifted), 0, h); ok {
		t.Fatal("drifted table counts as registered")
	}
	p := install(t, root, 2, h)
	if !p.Changed || !strings.Contains(p.Description, "uninstall will remove only eci's table") {
		t.Errorf("reinstall: changed %t, %s", p.Changed, p.Description)
	}
	uninstall(t, root, h)
	m, err := parseTOML("after", readHost(t, root, configPath))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := lookup(m, "plugins", criPluginV3, "containerd", "runtimes", "gvisor"); !ok {
		t.Error("uninstall lost the runtime added after install")
	}
	if _, ok := lookup(m, "plugins", criPluginV3, "containerd", "runtimes", "eci"); ok {
		t.Error("uninstall left eci's table")
	}
}

// An eci upgrade that moves the binary rewrites eci's own config; uninstall still
// restores the original byte for byte.
func TestHandlerChangeKeepsRestore(t *testing.T) {
	t.Parallel()
	root := hostTree(t, map[string]string{configPath: minimalV3})
	install(t, root, 2, DefaultHandler())
	h2 := DefaultHandler()
	h2.BinaryName = "/opt/eci/v2/bin/eci-runtime"
	p := install(t, root, 2, h2)
	if !p.Changed {
		t.Fatal("new binary path did not change the config")
	}
	if ok, _ := Registered(readHost(t, root, configPath), 0, h2); !ok {
		t.Error("not registered with the new binary")
	}
	uninstall(t, root, h2)
	if got := readHost(t, root, configPath); string(got) != minimalV3 {
		t.Errorf("not restored:\n%s", got)
	}
}

// An install that stopped after writing the backup and the record, before the config:
// both a retried install and an uninstall see the original and do the right thing.
func TestInterruptedInstall(t *testing.T) {
	t.Parallel()
	h := DefaultHandler()
	for _, then := range []string{"install", "uninstall"} {
		root := hostTree(t, map[string]string{configPath: minimalV3})
		p := planInstall(t, root, 2, h)
		if last := p.Writes[len(p.Writes)-1]; last.Path != configPath {
			t.Fatalf("the config is not written last: %s", last.Path)
		}
		p.Writes = p.Writes[:len(p.Writes)-1]
		if err := p.Apply(root); err != nil {
			t.Fatal(err)
		}
		if then == "install" {
			install(t, root, 2, h)
		}
		uninstall(t, root, h)
		if got := readHost(t, root, configPath); string(got) != minimalV3 {
			t.Errorf("%s after an interrupted install: config is\n%s", then, got)
		}
		for _, f := range []string{configPath + ".eci-backup", configPath + ".eci-state"} {
			if exists(root, f) {
				t.Errorf("%s after an interrupted install left %s", then, f)
			}
		}
	}
}

func TestModeIsKept(t *testing.T) {
	t.Parallel()
	h := DefaultHandler()
	root := hostTree(t, map[string]string{configPath: minimalV3})
	full := filepath.Join(root, configPath)
	if err := os.Chmod(full, 0o600); err != nil { // registry credentials live here
		t.Fatal(err)
	}
	install(t, root, 2, h)
	for _, f := range []string{configPath, configPath + ".eci-backup"} {
		if fi, err := os.Stat(filepath.Join(root, f)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, %v; want 0600", f, fi.Mode(), err)
		}
	}
	uninstall(t, root, h)
	if fi, _ := os.Stat(full); fi.Mode().Perm() != 0o600 {
		t.Errorf("restored config has mode %v", fi.Mode())
	}
}

func TestLiteralImportOfDropInBlocksUninstall(t *testing.T) {
	t.Parallel()
	h := DefaultHandler()
	root := hostTree(t, map[string]string{
		configPath: "version = 3\nimports = ['/etc/containerd/conf.d/*.toml']\n",
	})
	install(t, root, 2, h)
	// Someone names eci's drop-in in the imports: removing it would stop containerd.
	writeHost(t, root, configPath, "version = 3\nimports = ['/etc/containerd/conf.d/*.toml', '/etc/containerd/conf.d/99-eci.toml']\n")
	_, err := PlanContainerdUninstall(root, configPath, h)
	wantErr(t, err, "imports /etc/containerd/conf.d/99-eci.toml by name", "containerd would not start")
}

func TestDropInLifecycle(t *testing.T) {
	t.Parallel()
	h := DefaultHandler()
	const main = "version = 3\nimports = ['/etc/containerd/conf.d/*.toml']\n" + `
[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
  SystemdCgroup = false
`
	root := hostTree(t, map[string]string{configPath: main})
	dropIn := "/etc/containerd/conf.d/99-eci.toml"
	install(t, root, 2, h)
	if string(readHost(t, root, configPath)) != main {
		t.Error("the drop-in strategy touched the main config")
	}

	// The node switches to systemd cgroups: eci's drop-in follows.
	writeHost(t, root, configPath, strings.Replace(main, "false", "true", 1))
	p := install(t, root, 2, h)
	if !p.Changed || !strings.Contains(p.Description, "rewrote stale drop-in") {
		t.Errorf("cgroup driver change: %s", p.Description)
	}
	if ok, _ := Registered(readHost(t, root, dropIn), 0, h); !ok {
		t.Error("rewritten drop-in not registered")
	}
	if !bytes.Contains(readHost(t, root, dropIn), []byte("SystemdCgroup = true")) {
		t.Error("drop-in did not take the new cgroup driver")
	}

	// The imports line goes away: containerd no longer loads the drop-in, so eci edits
	// the main config instead and cleans up its drop-in at uninstall.
	writeHost(t, root, configPath, minimalV3)
	p = install(t, root, 2, h)
	if p.Strategy != Edit {
		t.Fatalf("strategy %s without imports", p.Strategy)
	}
	u := uninstall(t, root, h)
	if exists(root, dropIn) || !strings.Contains(u.Description, "no longer loads") {
		t.Errorf("unloaded drop-in: exists %t, %s", exists(root, dropIn), u.Description)
	}
	if string(readHost(t, root, configPath)) != minimalV3 {
		t.Error("config not restored")
	}
}

// On containerd 1.x a drop-in of eci's that the imports cover would replace the main
// config's whole CRI table: an edit removes it.
func TestEditRemovesLoadedDropIn(t *testing.T) {
	t.Parallel()
	h := DefaultHandler()
	root := hostTree(t, map[string]string{
		configPath:                           "version = 2\nimports = ['/etc/containerd/conf.d/*.toml']\n",
		"/etc/containerd/conf.d/99-eci.toml": "version = 2\n[plugins.'io.containerd.grpc.v1.cri'.containerd.runtimes.eci]\nruntime_type = 'io.containerd.runc.v2'\n",
	})
	p := install(t, root, 1, h)
	if p.Strategy != Edit || exists(root, "/etc/containerd/conf.d/99-eci.toml") {
		t.Errorf("strategy %s, drop-in left: %t", p.Strategy, exists(root, "/etc/containerd/conf.d/99-eci.toml"))
	}
	if !strings.Contains(p.Description, "stale drop-in") {
		t.Errorf("description: %s", p.Description)
	}
}

func TestMainConfigHandlerForcesEdit(t *testing.T) {
	t.Parallel()
	h := DefaultHandler()
	root := hostTree(t, map[string]string{
		configPath: "version = 3\nimports = ['/etc/containerd/conf.d/*.toml']\n" +
			"[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.eci]\nruntime_type = 'io.containerd.runc.v1'\n",
	})
	p := planInstall(t, root, 2, h)
	if p.Strategy != Edit || !strings.Contains(p.Description, "already has a table for the handler") {
		t.Errorf("strategy %s: %s", p.Strategy, p.Description)
	}
}

func TestImportConflicts(t *testing.T) {
	t.Parallel()
	h := DefaultHandler()
	for _, c := range []struct {
		name  string
		major int
		files map[string]string
		err   []string
	}{
		{"an import defines eci", 2, map[string]string{
			configPath:                         "version = 3\nimports = ['/etc/containerd/conf.d/*.toml']\n",
			"/etc/containerd/conf.d/50-x.toml": "version = 3\n[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.eci]\nruntime_type = 'x'\n",
		}, []string{"50-x.toml (imported by " + configPath + ") also defines runtime handler \"eci\""}},
		{"1.x import replaces the CRI table", 1, map[string]string{
			configPath:                      "version = 2\nimports = ['/etc/containerd/registry.toml']\n",
			"/etc/containerd/registry.toml": "version = 2\n[plugins.'io.containerd.grpc.v1.cri'.registry]\nconfig_path = '/etc/containerd/certs.d'\n",
		}, []string{"registry.toml", "replaces the whole table"}},
		{"missing literal import", 2, map[string]string{
			configPath: "version = 3\nimports = ['/etc/containerd/gone.toml']\n",
		}, []string{"imports /etc/containerd/gone.toml, which does not exist"}},
		{"malformed import", 2, map[string]string{
			configPath:                         "version = 3\nimports = ['/etc/containerd/conf.d/*.toml']\n",
			"/etc/containerd/conf.d/10-a.toml": "version = 3\n[x\n",
		}, []string{"/etc/containerd/conf.d/10-a.toml: invalid TOML at line 2"}},
		{"imports would load the backup", 1, map[string]string{
			configPath: "version = 2\nimports = ['/etc/containerd/*']\n",
		}, []string{"would make containerd load eci's backup"}},
	} {
		root := hostTree(t, c.files)
		_, err := PlanContainerdInstall(root, configPath, c.major, h)
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		wantErr(t, err, c.err...)
	}
}

// A nested import sets the cgroup driver: it is found through the chain.
func TestNestedImportCgroupDriver(t *testing.T) {
	t.Parallel()
	root := hostTree(t, map[string]string{
		configPath:                         "version = 3\nimports = ['conf.d/*.toml']\n",
		"/etc/containerd/conf.d/10-a.toml": "version = 3\nimports = ['/etc/containerd/more/b.toml']\n",
		"/etc/containerd/more/b.toml":      "version = 3\n[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]\nSystemdCgroup = true\n",
	})
	p := planInstall(t, root, 2, DefaultHandler())
	data, _ := p.File("/etc/containerd/conf.d/99-eci.toml")
	if !bytes.Contains(data, []byte("SystemdCgroup = true")) || !strings.Contains(p.Description, "more/b.toml") {
		t.Errorf("cgroup driver not taken from the nested import:\n%s\n%s", data, p.Description)
	}
}

func TestDefaultRuntimeCgroupDriver(t *testing.T) {
	t.Parallel()
	root := hostTree(t, map[string]string{configPath: `version = 2
[plugins."io.containerd.grpc.v1.cri".containerd]
  default_runtime_name = "nvidia"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia.options]
  SystemdCgroup = true
`})
	p := planInstall(t, root, 1, DefaultHandler())
	if !strings.Contains(p.Description, `SystemdCgroup = true as runtime "nvidia"`) {
		t.Errorf("cgroup driver not taken from the default runtime: %s", p.Description)
	}
}

func TestSymlinkedConfigRefused(t *testing.T) {
	t.Parallel()
	root := hostTree(t, map[string]string{"/etc/containerd/real.toml": minimalV3})
	if err := os.Symlink("real.toml", filepath.Join(root, "etc/containerd/config.toml")); err != nil {
		t.Fatal(err)
	}
	_, err := PlanContainerdInstall(root, configPath, 2, DefaultHandler())
	wantErr(t, err, configPath+" is a symlink")
}

func TestApplyRefusesChangedFile(t *testing.T) {
	t.Parallel()
	root := hostTree(t, map[string]string{configPath: minimalV3})
	p := planInstall(t, root, 2, DefaultHandler())
	writeHost(t, root, configPath, minimalV3+"# someone else\n")
	wantErr(t, p.Apply(root), configPath+" changed since the plan was made")
	if exists(root, configPath+".eci-backup") || exists(root, configPath+".eci-state") {
		t.Error("Apply wrote files before noticing the change")
	}
}

func TestUninstallWithoutInstall(t *testing.T) {
	t.Parallel()
	h := DefaultHandler()
	// A table for the handler that eci did not write stays: uninstall undoes only what
	// eci did.
	config := "version = 3\n[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.eci]\nruntime_type = 'io.containerd.runc.v2'\n"
	root := hostTree(t, map[string]string{configPath: config})
	p := planUninstall(t, root, h)
	if !p.Noop() || p.Changed || !strings.Contains(p.Description, "nothing to do") {
		t.Errorf("uninstall without install: %+v", p)
	}
}

func TestUninstallLostBackup(t *testing.T) {
	t.Parallel()
	h := DefaultHandler()
	root := hostTree(t, map[string]string{configPath: minimalV3})
	install(t, root, 2, h)
	if err := os.Remove(filepath.Join(root, configPath+".eci-backup")); err != nil {
		t.Fatal(err)
	}
	_, err := PlanContainerdUninstall(root, configPath, h)
	wantErr(t, err, "backup of the original", "is missing")
}

func TestHandlerValidation(t *testing.T) {
	t.Parallel()
	for _, h := range []Handler{
		{Name: "ECI", BinaryName: "/a", RuncRoot: "/b", CRIORoot: "/c"},
		{Name: "eci", BinaryName: "eci-runtime", RuncRoot: "/b", CRIORoot: "/c"},
		{Name: "eci", BinaryName: "/a", RuncRoot: "/b/../c", CRIORoot: "/c"},
		{Name: "a.b", BinaryName: "/a", RuncRoot: "/b", CRIORoot: "/c"},
	} {
		if err := h.Validate(); err == nil {
			t.Errorf("%+v: valid", h)
		}
		if _, err := PlanContainerdInstall(t.TempDir(), configPath, 2, h); err == nil {
			t.Errorf("%+v: planned", h)
		}
	}
	if err := DefaultHandler().Validate(); err != nil {
		t.Error(err)
	}
}
