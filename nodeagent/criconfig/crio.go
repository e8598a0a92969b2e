package criconfig

import (
	"fmt"
	"path"
)

// DefaultCRIODropInDir is where CRI-O reads drop-in configs from (its config_dir).
const DefaultCRIODropInDir = "/etc/crio/crio.conf.d"

// crioTable is the handler's table in a CRI-O drop-in: [crio.runtime.runtimes.<name>].
// runtime_type "oci" runs the binary as a runc-compatible runtime under conmon. CRI-O
// checks each handler's conmon when it starts, looking "conmon" up in $PATH when
// monitor_path is unset, and packaged CRI-O keeps conmon outside $PATH
// (/usr/libexec/crio/conmon) and names it per handler: so the monitor settings are
// copied from the default runtime's table, and eci containers get the same conmon, conmon
// cgroup and environment as the rest. The cgroup manager is CRI-O-wide
// (crio.runtime.cgroup_manager), so there is nothing to copy for it.
func crioTable(h Handler, monitor doc) doc {
	t := doc{
		"runtime_path": h.BinaryName,
		"runtime_type": "oci",
		"runtime_root": h.CRIORoot,
	}
	for k, v := range monitor {
		t[k] = v
	}
	return doc{"crio": doc{"runtime": doc{"runtimes": doc{h.Name: t}}}}
}

// crioMonitorKeys are the per-handler conmon settings eci's handler takes over from the
// default runtime.
var crioMonitorKeys = []string{"monitor_path", "monitor_cgroup", "monitor_env"}

// crioMonitor reads CRI-O's configuration as CRI-O does (crio.conf next to the drop-in
// directory, then every file in the directory in lexical order, later ones overriding)
// and returns the default runtime's monitor settings and that runtime's name. eci's own
// drop-in is left out.
func (hst *host) crioMonitor(dropInDir, ours string) (doc, string, error) {
	files := []string{path.Join(path.Dir(dropInDir), "crio.conf")}
	names, err := hst.readDir(dropInDir)
	if err != nil {
		return nil, "", err
	}
	for _, n := range names {
		files = append(files, path.Join(dropInDir, n))
	}
	var docs []loadedConfig
	for _, f := range files {
		if f == ours {
			continue
		}
		b, ok, err := hst.readFollow(f)
		if err != nil || !ok {
			if err != nil {
				return nil, "", err
			}
			continue
		}
		m, err := parseTOML(f, b)
		if err != nil {
			return nil, "", err
		}
		docs = append(docs, loadedConfig{path: f, doc: m})
	}
	def := ""
	defined := map[string]bool{}
	for _, d := range docs {
		if v, ok := lookup(d.doc, "crio", "runtime", "default_runtime"); ok {
			s, ok := v.(string)
			if !ok {
				return nil, "", fmt.Errorf("%s: crio.runtime.default_runtime is a %s, want a string", d.path, tomlType(v))
			}
			def = s
		}
		if rts, err := tableAt(d.path, d.doc, "crio", "runtime", "runtimes"); err == nil {
			for name := range rts {
				defined[name] = true
			}
		}
	}
	if def == "" {
		// CRI-O's built-in default: crun since 1.31, runc before.
		def = "runc"
		if defined["crun"] {
			def = "crun"
		}
	}
	monitor := doc{}
	for _, d := range docs {
		for _, k := range crioMonitorKeys {
			if v, ok := lookup(d.doc, "crio", "runtime", "runtimes", def, k); ok {
				monitor[k] = deepCopy(v)
			}
		}
	}
	return monitor, def, nil
}

func crioDropIn(dropInDir string, h Handler) string {
	return path.Join(dropInDir, "99-"+h.Name+".conf")
}

// PlanCRIOInstall plans the drop-in <dropInDir>/99-<handler>.conf registering the
// handler with CRI-O. An existing drop-in with the same settings is unchanged; a stale one
// is rewritten. CRI-O's reload of runtime handlers on SIGHUP is unreliable: restart it
// when the plan is Changed.
func PlanCRIOInstall(root, dropInDir string, h Handler) (Plan, error) {
	p := Plan{Strategy: DropIn}
	if err := h.Validate(); err != nil {
		return p, err
	}
	hst, err := openHost(root)
	if err != nil {
		return p, err
	}
	defer hst.close()
	file := crioDropIn(dropInDir, h)
	f, err := hst.readOwned(file)
	if err != nil {
		return p, err
	}
	monitor, def, err := hst.crioMonitor(dropInDir, file)
	if err != nil {
		return p, err
	}
	verb, err := p.writeDropIn(f, crioTable(h, monitor), h)
	if err != nil {
		return p, err
	}
	if verb == "" {
		p.describe("CRI-O: runtime handler %q is already registered by drop-in %s; nothing to do", h.Name, file)
		return p, nil
	}
	note := fmt.Sprintf("conmon settings as the default runtime %q", def)
	if len(monitor) == 0 {
		note = fmt.Sprintf("CRI-O's default conmon settings (the default runtime %q sets none)", def)
	}
	p.describe("CRI-O: %s drop-in %s registering runtime handler %q for %s (runtime root %s, %s); restart CRI-O to load it",
		verb, file, h.Name, h.BinaryName, h.CRIORoot, note)
	return p, nil
}

// PlanCRIOUninstall plans removing the drop-in PlanCRIOInstall writes.
func PlanCRIOUninstall(root, dropInDir string, h Handler) (Plan, error) {
	p := Plan{Strategy: DropIn}
	if err := h.Validate(); err != nil {
		return p, err
	}
	hst, err := openHost(root)
	if err != nil {
		return p, err
	}
	defer hst.close()
	file := crioDropIn(dropInDir, h)
	f, err := hst.readOwned(file)
	if err != nil {
		return p, err
	}
	if !f.exists {
		p.describe("CRI-O: drop-in %s is not there; nothing to do", file)
		return p, nil
	}
	p.expectFile(f)
	p.remove(file)
	p.Changed = true
	p.describe("CRI-O: removed drop-in %s; restart CRI-O to unload runtime handler %q", file, h.Name)
	return p, nil
}
