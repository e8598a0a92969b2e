package criconfig

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"reflect"
	"strings"
)

const (
	// criPluginV2 holds the CRI runtimes in config version 2 (containerd 1.x).
	criPluginV2 = "io.containerd.grpc.v1.cri"
	// criPluginV3 holds them in config versions 3 (containerd 2.0-2.2) and 4 (2.3+, which
	// moved only the server settings).
	criPluginV3 = "io.containerd.cri.v1.runtime"
	runcShim    = "io.containerd.runc.v2"
)

// runtimesKeys is where a config version keeps its CRI runtime handlers.
func runtimesKeys(version int) []string {
	plugin := criPluginV3
	if version == 2 {
		plugin = criPluginV2
	}
	return []string{"plugins", plugin, "containerd", "runtimes"}
}

func handlerKeys(version int, h Handler) []string {
	return append(runtimesKeys(version), h.Name)
}

// configVersion reads a containerd config's version. A document with no keys at all (an
// empty file, or only comments) has none: containerd runs on its defaults, and the
// caller picks the version from containerd's major version.
func configVersion(file string, m doc) (int, error) {
	if len(m) == 0 {
		return 0, nil
	}
	v, ok := m["version"]
	if !ok {
		return 0, fmt.Errorf("%s has no version key, so containerd reads it as config version 1, "+
			"which eci does not support (too old): migrate it to version 2 or later first "+
			"(containerd 2.x: containerd config migrate)", file)
	}
	n, ok := v.(int64)
	if !ok {
		return 0, fmt.Errorf("%s: version is a %s, want an integer", file, tomlType(v))
	}
	switch n {
	case 2, 3, 4:
		return int(n), nil
	case 1:
		return 0, fmt.Errorf("%s is config version 1, which eci does not support (too old): "+
			"migrate it to version 2 or later first (containerd 2.x: containerd config migrate)", file)
	default:
		return 0, fmt.Errorf("%s is config version %d, which eci does not know (it supports 2, 3 and 4)", file, n)
	}
}

// versionFor is the config version for a file that has none yet: the one the running
// containerd's own `config default` would write.
func versionFor(file string, containerdMajor int) (int, error) {
	switch {
	case containerdMajor == 1:
		return 2, nil
	case containerdMajor >= 2:
		return 3, nil
	default:
		return 0, fmt.Errorf("%s is empty or missing, so its config version follows containerd's major version, "+
			"which was not given (got %d)", file, containerdMajor)
	}
}

func checkVersionMajor(file string, version, containerdMajor int) error {
	if version >= 3 && containerdMajor == 1 {
		return fmt.Errorf("%s is config version %d, which containerd 1.x cannot read", file, version)
	}
	return nil
}

// stanza is the handler's runtime table. privileged_without_host_devices is always true:
// eci-runtime drops host devices from privileged containers anyway (runtime/harden), so
// the CRI should not hand them over. pod_annotations is never set, nor copied from runc:
// annotations are untrusted input and eci reads only the identity annotations the CRI
// itself sets, so forwarding pod annotations would only widen what reaches the runtime.
// systemd, when set, is the cgroup driver of the node's other runc-based runtimes: eci
// containers must use the same driver as runc ones, or the kubelet's cgroup layout breaks.
func stanza(h Handler, systemd *bool) doc {
	opts := doc{"BinaryName": h.BinaryName, "Root": h.RuncRoot}
	if systemd != nil {
		opts["SystemdCgroup"] = *systemd
	}
	return doc{
		"runtime_type":                    runcShim,
		"privileged_without_host_devices": true,
		"options":                         opts,
	}
}

// cgroupDriver finds SystemdCgroup for eci's table among the config files containerd
// loads, in load order (the last one to set it wins, as containerd merges them): from the
// runc runtime's options, or if runc does not set it, from the default runtime's.
func cgroupDriver(files []loadedConfig) (*bool, string, error) {
	find := func(runtime string) (*bool, string, error) {
		var found *bool
		var from string
		for _, f := range files {
			for _, plugin := range []string{criPluginV2, criPluginV3} {
				v, ok := lookup(f.doc, "plugins", plugin, "containerd", "runtimes", runtime, "options", "SystemdCgroup")
				if !ok {
					continue
				}
				b, ok := v.(bool)
				if !ok {
					return nil, "", fmt.Errorf("%s: runtime %q SystemdCgroup is a %s, want a boolean", f.path, runtime, tomlType(v))
				}
				found, from = &b, fmt.Sprintf("runtime %q in %s", runtime, f.path)
			}
		}
		return found, from, nil
	}
	if b, from, err := find("runc"); b != nil || err != nil {
		return b, from, err
	}
	def := "runc"
	for _, f := range files {
		for _, plugin := range []string{criPluginV2, criPluginV3} {
			if v, ok := lookup(f.doc, "plugins", plugin, "containerd", "default_runtime_name"); ok {
				if s, ok := v.(string); ok && s != "" {
					def = s
				}
			}
		}
	}
	if def == "runc" {
		return nil, "", nil
	}
	return find(def)
}

// Registered reports whether a containerd config file (the main config or eci's drop-in)
// holds the handler's runtime table exactly as eci writes it: same keys, same values. A
// stale or hand-edited table is not registered. version 0 means the file's own version;
// a non-zero version must match the file's. SystemdCgroup must equal the one the same
// file sets for runc (or the default runtime); a file that sets none (a drop-in) is
// checked for the other keys only.
func Registered(config []byte, version int, h Handler) (bool, error) {
	const file = "containerd config"
	if err := h.Validate(); err != nil {
		return false, err
	}
	m, err := parseTOML(file, config)
	if err != nil {
		return false, err
	}
	v, err := configVersion(file, m)
	if err != nil || v == 0 {
		return false, err
	}
	if version != 0 && version != v {
		return false, fmt.Errorf("%s is version %d, not %d", file, v, version)
	}
	cur, err := tableAt(file, m, handlerKeys(v, h)...)
	if err != nil || cur == nil {
		return false, err
	}
	systemd, _, err := cgroupDriver([]loadedConfig{{path: file, doc: m}})
	if err != nil {
		return false, err
	}
	if opts, ok := cur["options"].(doc); ok && systemd == nil {
		if b, ok := opts["SystemdCgroup"].(bool); ok {
			systemd = &b
		}
	}
	return reflect.DeepEqual(cur, stanza(h, systemd)), nil
}

// ChooseStrategy picks how to register a handler with containerd, from the main config's
// imports and containerd's major version. It is DropIn, with the drop-in's host path,
// when an imports glob covers <glob's dir>/99-<handler>.toml and containerd is 2.x or
// later (1.x replaces whole plugin tables with an import's instead of merging them).
// Only globs count: containerd fails to start when a literally named import is missing,
// so a file imported by name cannot be removed on uninstall. Otherwise it is Edit.
func ChooseStrategy(configPath string, imports []string, containerdMajor int, h Handler) (Strategy, string) {
	dropIn, _ := coveredDropIn(configPath, imports, h)
	if dropIn == "" || containerdMajor < 2 {
		return Edit, ""
	}
	return DropIn, dropIn
}

// coveredDropIn returns the drop-in path an imports glob covers, and the glob.
func coveredDropIn(configPath string, imports []string, h Handler) (string, string) {
	base := dropInName(h)
	for _, imp := range imports {
		p := importPath(configPath, imp)
		if !strings.Contains(p, "*") {
			continue
		}
		dir := path.Dir(p)
		if strings.ContainsAny(dir, `*?[\`) {
			continue
		}
		candidate := path.Join(dir, base)
		if ok, err := path.Match(p, candidate); err == nil && ok {
			return candidate, imp
		}
	}
	return "", ""
}

func dropInName(h Handler) string { return "99-" + h.Name + ".toml" }

// importPath resolves an imports entry as containerd does: cleaned, relative to the
// importing file's directory.
func importPath(parent, imp string) string {
	p := path.Clean(imp)
	if !path.IsAbs(p) {
		p = path.Join(path.Dir(parent), p)
	}
	return p
}

// importedBy reports the imports entry that makes containerd load p, if any.
func importedBy(configPath string, imports []string, p string) string {
	for _, imp := range imports {
		ip := importPath(configPath, imp)
		if ip == p {
			return imp
		}
		if strings.Contains(ip, "*") {
			if ok, _ := path.Match(ip, p); ok {
				return imp
			}
		}
	}
	return ""
}

func importsOf(file string, m doc) ([]string, error) {
	v, ok := m["imports"]
	if !ok {
		return nil, nil
	}
	arr, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%s: imports is a %s, want an array of strings", file, tomlType(v))
	}
	out := make([]string, len(arr))
	for i, e := range arr {
		s, ok := e.(string)
		if !ok {
			return nil, fmt.Errorf("%s: imports[%d] is a %s, want a string", file, i, tomlType(e))
		}
		out[i] = s
	}
	return out, nil
}

// loadedConfig is one parsed file of containerd's configuration.
type loadedConfig struct {
	path string
	doc  doc
}

// loadImports reads the files containerd imports, transitively and in its load order,
// leaving out skip (eci's own drop-in). A missing file imported by name is an error:
// containerd would not start.
func (h *host) loadImports(configPath string, imports []string, skip string) ([]loadedConfig, error) {
	var out []loadedConfig
	loaded := map[string]bool{configPath: true}
	type pending struct{ parent, imp string }
	queue := make([]pending, 0, len(imports))
	for _, imp := range imports {
		queue = append(queue, pending{configPath, imp})
	}
	for len(queue) > 0 {
		next := queue[0]
		queue = queue[1:]
		p := importPath(next.parent, next.imp)
		paths := []string{p}
		if strings.Contains(p, "*") {
			var err error
			if paths, err = h.glob(p); err != nil {
				return nil, fmt.Errorf("%s: %w", next.parent, err)
			}
		}
		for _, p := range paths {
			if loaded[p] || p == skip {
				continue
			}
			loaded[p] = true
			b, ok, err := h.readFollow(p)
			if err != nil {
				return nil, fmt.Errorf("%s, imported by %s: %w", p, next.parent, err)
			}
			if !ok {
				return nil, fmt.Errorf("%s imports %s, which does not exist: containerd would not start; fix that first", next.parent, p)
			}
			m, err := parseTOML(p, b)
			if err != nil {
				return nil, err
			}
			out = append(out, loadedConfig{path: p, doc: m})
			more, err := importsOf(p, m)
			if err != nil {
				return nil, err
			}
			for _, imp := range more {
				queue = append(queue, pending{p, imp})
			}
		}
	}
	return out, nil
}

// checkImports refuses imported files that would undo eci's table: one that defines the
// handler itself (it would override eci's values), and, on containerd 1.x (or unknown),
// one that sets the CRI plugin at all, since 1.x replaces the main config's whole plugin
// table with the import's.
func checkImports(configPath string, imports []loadedConfig, containerdMajor int, h Handler) error {
	for _, f := range imports {
		for _, plugin := range []string{criPluginV2, criPluginV3} {
			if _, ok := lookup(f.doc, "plugins", plugin, "containerd", "runtimes", h.Name); ok {
				return fmt.Errorf("%s (imported by %s) also defines runtime handler %q; it would override eci's: remove it first",
					f.path, configPath, h.Name)
			}
		}
		if containerdMajor < 2 {
			if _, ok := lookup(f.doc, "plugins", criPluginV2); ok {
				return fmt.Errorf("%s (imported by %s) sets plugins.%q, which on containerd 1.x replaces the whole table of the main config, "+
					"eci's runtime with it: eci cannot register with this configuration", f.path, configPath, criPluginV2)
			}
		}
	}
	return nil
}

// editState is eci's record, next to the config, of an edit it made.
type editState struct {
	// Handler is the runtime handler the edit registered.
	Handler string `json:"handler"`
	// Original is "backup" when the original bytes are in the backup file, "absent" when
	// there was no config file before eci.
	Original string `json:"original"`
	// WrittenSHA256 is the hash of the config eci last wrote.
	WrittenSHA256 string `json:"writtenSHA256"`
	// Restorable is false once the config was changed by someone else between two eci
	// writes: restoring the backup would then lose that change.
	Restorable bool `json:"restorable"`
}

const (
	originalBackup = "backup"
	originalAbsent = "absent"
)

func backupPath(configPath string, h Handler) string { return configPath + "." + h.Name + "-backup" }
func statePath(configPath string, h Handler) string  { return configPath + "." + h.Name + "-state" }

func readState(f hostFile) (editState, error) {
	var st editState
	if !f.exists {
		return st, nil
	}
	if err := json.Unmarshal(f.data, &st); err != nil {
		return st, fmt.Errorf("%s: eci's install record is not valid JSON: %w", f.path, err)
	}
	if st.Original != originalBackup && st.Original != originalAbsent {
		return st, fmt.Errorf("%s: eci's install record has original %q, want %q or %q", f.path, st.Original, originalBackup, originalAbsent)
	}
	return st, nil
}

func encodeState(st editState) []byte {
	b, _ := json.MarshalIndent(st, "", "  ")
	return append(b, '\n')
}

// containerdFiles is what the planners read about one containerd config.
type containerdFiles struct {
	config, backup, state hostFile
	st                    editState
	doc                   doc // nil when the config could not be parsed (uninstall only)
	imports               []string
}

func (h *host) readContainerd(configPath string, hd Handler, mustParse bool) (containerdFiles, error) {
	var c containerdFiles
	var err error
	if c.config, err = h.readOwned(configPath); err != nil {
		return c, err
	}
	if c.backup, err = h.readOwned(backupPath(configPath, hd)); err != nil {
		return c, err
	}
	if c.state, err = h.readOwned(statePath(configPath, hd)); err != nil {
		return c, err
	}
	if c.st, err = readState(c.state); err != nil {
		return c, err
	}
	m, err := parseTOML(configPath, c.config.data)
	if err != nil {
		if mustParse {
			return c, err
		}
		return c, nil
	}
	c.doc = m
	c.imports, err = importsOf(configPath, m)
	return c, err
}

// PlanContainerdInstall plans registering the handler with the containerd whose main
// config is configPath (a host path; root is the host's root prefix). containerdMajor is
// the major version of the containerd binary (from containerd --version); it picks the
// config version of an empty or missing config and whether drop-ins work.
//
// Installing over a config that already registers the handler exactly is unchanged. A
// stale or wrong table for the handler is replaced whole.
func PlanContainerdInstall(root, configPath string, containerdMajor int, h Handler) (Plan, error) {
	var p Plan
	if err := h.Validate(); err != nil {
		return p, err
	}
	hst, err := openHost(root)
	if err != nil {
		return p, err
	}
	defer hst.close()
	c, err := hst.readContainerd(configPath, h, true)
	if err != nil {
		return p, err
	}
	version, err := configVersion(configPath, c.doc)
	if err != nil {
		return p, err
	}
	if version == 0 {
		if version, err = versionFor(configPath, containerdMajor); err != nil {
			return p, err
		}
	}
	if err := checkVersionMajor(configPath, version, containerdMajor); err != nil {
		return p, err
	}
	strategy, dropIn := ChooseStrategy(configPath, c.imports, containerdMajor, h)
	existing, err := tableAt(configPath, c.doc, handlerKeys(version, h)...)
	if err != nil {
		return p, err
	}
	var why string
	switch {
	case strategy == DropIn && c.state.exists:
		strategy, why = Edit, "eci registered the handler by editing this config before, so it keeps doing so"
	case strategy == DropIn && existing != nil:
		strategy, why = Edit, "the main config already has a table for the handler, which a drop-in would only partly override"
	}
	// A drop-in eci owns that containerd loads is left out of the merged view: it is
	// rewritten (drop-in) or removed (edit).
	ours, _ := coveredDropIn(configPath, c.imports, h)
	imported, err := hst.loadImports(configPath, c.imports, ours)
	if err != nil {
		return p, err
	}
	if err := checkImports(configPath, imported, containerdMajor, h); err != nil {
		return p, err
	}
	systemd, from, err := cgroupDriver(append([]loadedConfig{{path: configPath, doc: c.doc}}, imported...))
	if err != nil {
		return p, err
	}
	want := stanza(h, systemd)
	p.Strategy = strategy
	if strategy == DropIn {
		return planDropIn(hst, p, configPath, dropIn, version, h, want, from)
	}
	return planEdit(hst, p, c, configPath, ours, version, h, want, from, why)
}

// writeDropIn plans writing want, with eci's header, to the drop-in f, unless f already
// holds exactly that table. It returns how the description should call the write ("wrote",
// "rewrote stale"), or "" when nothing needs doing.
func (p *Plan) writeDropIn(f hostFile, want doc, h Handler) (string, error) {
	if f.exists {
		if cur, err := parseTOML(f.path, f.data); err == nil && reflect.DeepEqual(cur, want) {
			return "", nil
		}
	}
	body, err := marshalTOML(want)
	if err != nil {
		return "", fmt.Errorf("%s: %w", f.path, err)
	}
	p.expectFile(f)
	p.write(f.path, append(fmt.Appendf(nil, dropInHeader, h.Name), body...), 0o644)
	p.Changed = true
	if f.exists {
		return "rewrote stale", nil
	}
	return "wrote", nil
}

const dropInHeader = "# Written by eci: registers the %q runtime handler. eci rewrites this file when it is\n" +
	"# installed and removes it when it is uninstalled; do not edit.\n\n"

func planDropIn(hst *host, p Plan, configPath, dropIn string, version int, h Handler, want doc, from string) (Plan, error) {
	plugin := runtimesKeys(version)[1]
	m := doc{
		"version": int64(version),
		"plugins": doc{plugin: doc{"containerd": doc{"runtimes": doc{h.Name: want}}}},
	}
	f, err := hst.readOwned(dropIn)
	if err != nil {
		return p, err
	}
	verb, err := p.writeDropIn(f, m, h)
	if err != nil {
		return p, err
	}
	if verb == "" {
		p.describe("containerd: runtime handler %q is already registered by drop-in %s; nothing to do", h.Name, dropIn)
		return p, nil
	}
	p.describe("containerd: %s drop-in %s (config version %d, loaded through the imports of %s) registering runtime handler %q for %s%s; "+
		"restart containerd to load it", verb, dropIn, version, configPath, h.Name, h.BinaryName, systemdNote(want, from))
	return p, nil
}

func systemdNote(want doc, from string) string {
	if b, ok := want["options"].(doc)["SystemdCgroup"].(bool); ok {
		return fmt.Sprintf(", with SystemdCgroup = %t as %s", b, from)
	}
	return ", with containerd's default cgroup driver (no runtime sets SystemdCgroup)"
}

func planEdit(hst *host, p Plan, c containerdFiles, configPath, ours string, version int, h Handler, want doc, from, why string) (Plan, error) {
	keys := handlerKeys(version, h)
	bak, stp := backupPath(configPath, h), statePath(configPath, h)
	if imp := importedBy(configPath, c.imports, bak); imp != "" {
		return p, fmt.Errorf("%s: imports entry %q would make containerd load eci's backup %s as config: narrow it first", configPath, imp, bak)
	}
	if imp := importedBy(configPath, c.imports, stp); imp != "" {
		return p, fmt.Errorf("%s: imports entry %q would make containerd load eci's install record %s as config: narrow it first", configPath, imp, stp)
	}
	var staleDropIn hostFile
	if ours != "" {
		var err error
		if staleDropIn, err = hst.readOwned(ours); err != nil {
			return p, err
		}
	}
	if why != "" {
		p.describe("containerd: editing %s rather than writing a drop-in: %s", configPath, why)
	}
	cur, _ := tableAt(configPath, c.doc, keys...)
	if cur != nil && reflect.DeepEqual(cur, want) {
		p.describe("containerd: runtime handler %q is already registered in %s; nothing to do", h.Name, configPath)
		return removeStaleDropIn(p, staleDropIn), nil
	}

	m := deepCopy(c.doc).(doc)
	if len(m) == 0 {
		m["version"] = int64(version)
	}
	runtimes, err := ensureTable(configPath, m, runtimesKeys(version)...)
	if err != nil {
		return p, err
	}
	runtimes[h.Name] = want
	out, err := marshalTOML(m)
	if err != nil {
		return p, fmt.Errorf("%s: %w", configPath, err)
	}

	st := editState{Handler: h.Name, WrittenSHA256: sum(out), Restorable: true, Original: originalBackup}
	if !c.config.exists {
		st.Original = originalAbsent
	}
	p.expectFile(c.config)
	p.expectFile(c.backup)
	p.expectFile(c.state)
	if c.state.exists {
		ours := c.config.exists && sum(c.config.data) == c.st.WrittenSHA256
		original := c.st.Original == originalAbsent && !c.config.exists ||
			c.st.Original == originalBackup && c.backup.exists && c.config.exists && bytes.Equal(c.config.data, c.backup.data)
		st.Original = c.st.Original
		st.Restorable = ours && c.st.Restorable || original
		if c.st.Original == originalBackup && !c.backup.exists {
			st.Restorable = false
		}
	} else {
		// A backup without an install record is left over (a previous uninstall kept it
		// because the config had been changed, or an install stopped half way). It is
		// never overwritten: it moves to a name of its own, by content.
		if c.backup.exists && !(c.config.exists && bytes.Equal(c.backup.data, c.config.data)) {
			kept := bak + "." + sum(c.backup.data)[:12]
			p.write(kept, c.backup.data, c.backup.mode)
			p.describe("containerd: an earlier backup %s was kept as %s", bak, kept)
		}
		if c.config.exists {
			p.write(bak, c.config.data, c.config.mode)
		} else if c.backup.exists {
			p.remove(bak)
		}
	}
	p.write(stp, encodeState(st), 0o644)
	mode := fs.FileMode(0o644)
	if c.config.exists {
		mode = c.config.mode
	}
	p.write(configPath, out, mode)
	p.Changed = true

	switch {
	case cur != nil:
		p.describe("containerd: replaced the stale table %s in %s", dotted(keys...), configPath)
	case !c.config.exists:
		p.describe("containerd: created %s (config version %d, after containerd's major version) with the table %s",
			configPath, version, dotted(keys...))
	case len(c.doc) == 0:
		p.describe("containerd: wrote the table %s into %s, which was empty (config version %d, after containerd's major version)",
			dotted(keys...), configPath, version)
	default:
		p.describe("containerd: added the table %s to %s (config version %d)", dotted(keys...), configPath, version)
	}
	p.describe("runtime handler %q runs %s%s", h.Name, h.BinaryName, systemdNote(want, from))
	if c.config.exists && len(c.config.data) > 0 {
		p.describe("the file is rewritten by a TOML encoder, so its comments and key order are not kept")
	}
	switch {
	case !c.state.exists && c.config.exists:
		p.describe("the original is saved as %s and uninstall puts it back byte for byte", bak)
	case !c.state.exists:
		p.describe("uninstall removes the file again")
	case !st.Restorable:
		p.describe("the config was changed since eci wrote it, so uninstall will remove only eci's table (the backup %s stays)", bak)
	}
	p.describe("restart containerd to load it")
	return removeStaleDropIn(p, staleDropIn), nil
}

// removeStaleDropIn removes a drop-in of eci's that containerd loads while the handler is
// registered by editing the main config.
func removeStaleDropIn(p Plan, f hostFile) Plan {
	if !f.exists {
		return p
	}
	p.expectFile(f)
	p.remove(f.path)
	p.Changed = true
	p.describe("removed eci's stale drop-in %s, which containerd loads too", f.path)
	return p
}

// PlanContainerdUninstall plans removing the handler registered by
// PlanContainerdInstall. An edit is undone by restoring the backup byte for byte when the
// config is still exactly what eci wrote; otherwise only eci's table is removed and the
// backup is kept (the Description says so). eci's drop-in is removed. A config eci never
// touched is left alone, even if it has a table for the handler.
func PlanContainerdUninstall(root, configPath string, h Handler) (Plan, error) {
	var p Plan
	if err := h.Validate(); err != nil {
		return p, err
	}
	hst, err := openHost(root)
	if err != nil {
		return p, err
	}
	defer hst.close()
	c, err := hst.readContainerd(configPath, h, false)
	if err != nil {
		return p, err
	}
	if c.state.exists {
		if p, err = planUndoEdit(p, c, configPath, h); err != nil {
			return p, err
		}
	}

	// eci's drop-in: where the imports put it, and at the conventional place in case the
	// imports entry went away since.
	// (When the config does not parse, its imports are unknown and only the conventional
	// place is looked at.)
	candidates := []string{path.Join(path.Dir(configPath), "conf.d", dropInName(h))}
	if d, _ := coveredDropIn(configPath, c.imports, h); d != "" && d != candidates[0] {
		candidates = append([]string{d}, candidates...)
	}
	for _, d := range candidates {
		f, err := hst.readOwned(d)
		if err != nil {
			return p, err
		}
		if !f.exists {
			continue
		}
		for _, imp := range c.imports {
			if importPath(configPath, imp) == d {
				return p, fmt.Errorf("%s imports %s by name (%q), so containerd would not start without it: "+
					"remove that imports entry first, then uninstall", configPath, d, imp)
			}
		}
		if p.Strategy == "" {
			p.Strategy = DropIn
		}
		p.expectFile(f)
		p.remove(d)
		if importedBy(configPath, c.imports, d) != "" {
			p.Changed = true
			p.describe("containerd: removed drop-in %s", d)
		} else {
			p.describe("containerd: removed drop-in %s, which containerd no longer loads", d)
		}
	}
	if p.Noop() && p.Description == "" {
		p.describe("containerd: eci has not registered runtime handler %q in %s; nothing to do", h.Name, configPath)
	}
	if p.Changed {
		p.describe("restart containerd to unload the handler")
	}
	return p, nil
}

func planUndoEdit(p Plan, c containerdFiles, configPath string, h Handler) (Plan, error) {
	bak, stp := backupPath(configPath, h), statePath(configPath, h)
	p.Strategy = Edit
	p.expectFile(c.config)
	p.expectFile(c.backup)
	p.expectFile(c.state)
	ours := c.config.exists && sum(c.config.data) == c.st.WrittenSHA256
	switch {
	case ours && c.st.Restorable && c.st.Original == originalAbsent:
		p.remove(configPath)
		p.remove(stp)
		p.Changed = true
		p.describe("containerd: removed %s, which eci had created", configPath)
		return p, nil
	case ours && c.st.Restorable:
		if !c.backup.exists {
			return p, fmt.Errorf("%s is as eci wrote it, but the backup of the original, %s, is missing: restore it by hand", configPath, bak)
		}
		p.write(configPath, c.backup.data, c.backup.mode)
		p.remove(stp)
		p.remove(bak)
		p.Changed = true
		p.describe("containerd: restored %s byte for byte from %s", configPath, bak)
		return p, nil
	case c.st.Original == originalAbsent && !c.config.exists,
		c.st.Original == originalBackup && c.backup.exists && c.config.exists && bytes.Equal(c.config.data, c.backup.data):
		p.remove(stp)
		if c.st.Original == originalBackup {
			p.remove(bak)
		}
		p.describe("containerd: %s is already as it was before eci; removed eci's install record", configPath)
		return p, nil
	case !c.config.exists:
		p.remove(stp)
		p.describe("containerd: %s was deleted since eci edited it; left as is, the original stays in %s", configPath, bak)
		return p, nil
	}

	// Someone changed the config since eci wrote it: take out only eci's table.
	if c.doc == nil {
		_, err := parseTOML(configPath, c.config.data)
		return p, err
	}
	version, err := configVersion(configPath, c.doc)
	if err != nil {
		return p, err
	}
	m := deepCopy(c.doc).(doc)
	removed := false
	if version != 0 {
		if removed, err = deleteTable(configPath, m, handlerKeys(version, h)...); err != nil {
			return p, err
		}
	}
	p.remove(stp)
	keep := "the original from before eci stays in " + bak
	if c.st.Original == originalAbsent {
		keep = "there was no config before eci"
	}
	if !removed {
		p.describe("containerd: %s was changed since eci edited it and no longer has eci's table; left as is (%s)", configPath, keep)
		return p, nil
	}
	out, err := marshalTOML(m)
	if err != nil {
		return p, fmt.Errorf("%s: %w", configPath, err)
	}
	p.write(configPath, out, c.config.mode)
	p.Changed = true
	p.describe("containerd: %s was changed since eci edited it, so it is not restored from the backup: only the table %s was removed, "+
		"the rest is kept as it is now (%s)", configPath, dotted(handlerKeys(version, h)...), keep)
	return p, nil
}
