package criconfig

import (
	"bytes"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files from the current output")

const (
	configPath = "/etc/containerd/config.toml"
	crioDir    = "/etc/crio/crio.conf.d"
)

// goldenCase is a host tree testdata/<tree> and what to plan on it. The planned CRI file
// (the edited config or the drop-in) is compared with testdata/<name>.golden.toml, and a
// summary of the plan (or the error) with testdata/<name>.golden.txt.
type goldenCase struct {
	name  string
	tree  string // defaults to name
	major int    // containerd's major version
	crio  bool
}

var goldenCases = []goldenCase{
	{name: "v3-default", major: 2},                        // containerd 2.1 `config default`: edit
	{name: "v3-imports", major: 2},                        // 2.2 default importing conf.d, which sets SystemdCgroup: drop-in
	{name: "v3-minimal", major: 2},                        // hand-written, comments: edit
	{name: "v4-default", major: 2},                        // 2.3 default (config version 4): drop-in, conf.d created
	{name: "v2-default", major: 1},                        // 1.7 `config default`: edit
	{name: "v2-runtimes", major: 1},                       // kata and nvidia next to runc: edit
	{name: "v2-imports-1x", tree: "v2-imports", major: 1}, // a conf.d glob, but 1.x: edit
	{name: "v2-imports-2x", tree: "v2-imports", major: 2}, // the same config on 2.x: a version 2 drop-in
	{name: "empty", major: 2},                             // empty file: version 3 from containerd 2.x
	{name: "missing", major: 1},                           // no file: created, version 2 from 1.x
	{name: "stale-eci", major: 2},                         // a wrong eci table: replaced
	{name: "v1", major: 1},                                // error: too old
	{name: "malformed", major: 2},                         // error with the line
	{name: "v3-on-1x", tree: "v3-minimal", major: 1},      // error: 1.x cannot read version 3
	{name: "crio", crio: true},
}

func TestGolden(t *testing.T) {
	t.Parallel()
	for _, c := range goldenCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if c.tree == "" {
				c.tree = c.name
			}
			root := copyTree(t, filepath.Join("testdata", c.tree))
			before := snapshot(t, root)
			h := DefaultHandler()

			install := func() (Plan, error) {
				if c.crio {
					return PlanCRIOInstall(root, crioDir, h)
				}
				return PlanContainerdInstall(root, configPath, c.major, h)
			}
			uninstall := func() (Plan, error) {
				if c.crio {
					return PlanCRIOUninstall(root, crioDir, h)
				}
				return PlanContainerdUninstall(root, configPath, h)
			}

			p, err := install()
			if err != nil {
				compareGolden(t, c.name+".golden.txt", []byte("error: "+err.Error()+"\n"))
				if after := snapshot(t, root); !reflect.DeepEqual(after, before) {
					t.Errorf("a failed plan changed the host")
				}
				return
			}
			compareGolden(t, c.name+".golden.txt", summary(p))
			if !p.Changed || len(p.Writes) == 0 {
				t.Fatalf("first install is unchanged: %s", p.Description)
			}
			criFile := p.Writes[len(p.Writes)-1]
			compareGolden(t, c.name+".golden.toml", criFile.Data)
			if len(p.expect) == 0 {
				t.Errorf("the plan records nothing it read")
			}

			if !c.crio {
				if ok, err := Registered(before[configPath].data, 0, h); ok || (err != nil && before[configPath].exists) {
					t.Errorf("Registered(original) = %t, %v; want false", ok, err)
				}
				if p.Strategy == Edit {
					checkOnlyHandlerAdded(t, before[configPath].data, criFile.Data, c.name == "stale-eci")
				}
			}

			if err := p.Apply(root); err != nil {
				t.Fatal(err)
			}
			if !c.crio {
				if ok, err := Registered(readHost(t, root, criFile.Path), 0, h); !ok || err != nil {
					t.Errorf("Registered(%s) after install = %t, %v; want true", criFile.Path, ok, err)
				}
			}

			again, err := install()
			if err != nil {
				t.Fatal(err)
			}
			if again.Changed || !again.Noop() {
				t.Errorf("second install changes something: %+v", again)
			}

			u, err := uninstall()
			if err != nil {
				t.Fatal(err)
			}
			if !u.Changed {
				t.Errorf("uninstall is unchanged: %s", u.Description)
			}
			if err := u.Apply(root); err != nil {
				t.Fatal(err)
			}
			if after := snapshot(t, root); !reflect.DeepEqual(after, before) {
				t.Errorf("after install and uninstall the host differs:\n%s", diffSnapshots(before, after))
			}
			u2, err := uninstall()
			if err != nil {
				t.Fatal(err)
			}
			if u2.Changed || !u2.Noop() {
				t.Errorf("second uninstall changes something: %+v", u2)
			}
		})
	}
}

// checkOnlyHandlerAdded checks that the edited config, less the handler's table, means
// what the original meant.
func checkOnlyHandlerAdded(t *testing.T, orig, edited []byte, hadHandler bool) {
	t.Helper()
	o, err := parseTOML("original", orig)
	if err != nil {
		t.Fatal(err)
	}
	e, err := parseTOML("edited", edited)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := e["version"].(int64)
	keys := handlerKeys(int(v), DefaultHandler())
	if hadHandler {
		if _, err := deleteTable("original", o, keys...); err != nil {
			t.Fatal(err)
		}
	}
	if len(o) == 0 {
		o["version"] = v
	}
	if removed, err := deleteTable("edited", e, keys...); !removed || err != nil {
		t.Fatalf("no handler table in the edited config (%v)", err)
	}
	if !reflect.DeepEqual(o, e) {
		t.Errorf("the edit changed more than the handler's table")
	}
}

func summary(p Plan) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "strategy: %s\nchanged: %t\n", p.Strategy, p.Changed)
	for _, w := range p.Writes {
		fmt.Fprintf(&b, "write %s (%04o, %d bytes)\n", w.Path, w.Mode, len(w.Data))
	}
	for _, r := range p.Removes {
		fmt.Fprintf(&b, "remove %s\n", r)
	}
	b.WriteString("description:\n")
	for _, s := range strings.Split(p.Description, "; ") {
		fmt.Fprintf(&b, "  %s\n", s)
	}
	return b.Bytes()
}

func compareGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	file := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run go test -update to accept):\n--- got\n%s\n--- want\n%s", file, got, want)
	}
}

// copyTree copies a testdata host tree into a temporary root.
func copyTree(t *testing.T, src string) string {
	t.Helper()
	root := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		dst := filepath.Join(root, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return root
}

type snapFile struct {
	data   []byte
	mode   fs.FileMode
	exists bool
}

// snapshot maps every regular file under root, by host path, to its content and mode.
// Directories are not compared: uninstall leaves a directory that install created.
func snapshot(t *testing.T, root string) map[string]snapFile {
	t.Helper()
	out := map[string]snapFile{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		out["/"+filepath.ToSlash(rel)] = snapFile{data: b, mode: fi.Mode(), exists: true}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func diffSnapshots(a, b map[string]snapFile) string {
	var out []string
	for p, f := range a {
		g, ok := b[p]
		switch {
		case !ok:
			out = append(out, "missing "+p)
		case !bytes.Equal(f.data, g.data):
			out = append(out, fmt.Sprintf("content of %s:\n%s", p, g.data))
		case f.mode != g.mode:
			out = append(out, fmt.Sprintf("mode of %s: %v, was %v", p, g.mode, f.mode))
		}
	}
	for p := range b {
		if _, ok := a[p]; !ok {
			out = append(out, "extra "+p)
		}
	}
	return strings.Join(out, "\n")
}

func readHost(t *testing.T, root, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(path.Clean(p))))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
