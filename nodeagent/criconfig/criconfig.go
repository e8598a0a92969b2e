// Package criconfig registers eci's runtime handler with a node's CRI (containerd or CRI-O)
// and removes it again.
//
// Everything here plans; nothing changes the node until Plan.Apply. The planners read host
// files through a root prefix (/host in the eci-node pod, a testdata tree in tests) and
// return a Plan: the files to write and remove, in a safe order, whether the CRI's
// configuration changes (Changed: restart the CRI only then), and a description for logs
// and events. TOML is parsed and written with github.com/pelletier/go-toml/v2, the library
// containerd itself uses; no TOML text is edited by hand.
//
// containerd has two strategies, chosen by ChooseStrategy:
//
//   - drop-in: when the main config's imports already cover a file eci may own (the
//     containerd 2.2 default imports /etc/containerd/conf.d/*.toml) and containerd is 2.x
//     (drop-ins merge plugin tables only from 2.0), eci writes <dir>/99-eci.toml and
//     uninstall removes it. eci never adds an imports entry, so none can be left behind.
//   - edit: otherwise the main config is parsed, the handler's table added, and the file
//     written back. The original bytes are kept in <config>.eci-backup and a small record
//     of what eci wrote in <config>.eci-state. Uninstall restores the backup byte for byte
//     when the config is still exactly what eci wrote; when someone changed it since, only
//     eci's table is removed and the backup is kept for a human to look at.
//
// CRI-O always gets a drop-in, /etc/crio/crio.conf.d/99-eci.conf.
//
// For the caller: restart the CRI only when Plan.Changed, but always call Apply. Register
// the handler only once the binary is on the host, and on uninstall apply the plan and
// restart the CRI before deleting the binary: CRI-O checks every handler's runtime_path
// when it starts. Directories Apply creates (an absent conf.d) are left on uninstall;
// every file is put back as it was.
package criconfig

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"strings"
)

// Handler is the runtime handler eci registers: the name RuntimeClasses use and the
// runc-compatible binary behind it.
type Handler struct {
	// Name is the CRI runtime handler name ("eci"), the RuntimeClass's handler.
	Name string
	// BinaryName is eci-runtime on the host ("/opt/eci/bin/eci-runtime").
	BinaryName string
	// RuncRoot is the runc state root containerd's runc shim passes to the binary
	// ("/run/containerd/runc-eci"), kept apart from plain runc's.
	RuncRoot string
	// CRIORoot is CRI-O's runtime_root for the handler ("/run/eci-crio").
	CRIORoot string
}

// DefaultHandler is the handler the eci-node installer registers.
func DefaultHandler() Handler {
	return Handler{
		Name:       "eci",
		BinaryName: "/opt/eci/bin/eci-runtime",
		RuncRoot:   "/run/containerd/runc-eci",
		CRIORoot:   "/run/eci-crio",
	}
}

// DefaultContainerdConfig is containerd's main config file.
const DefaultContainerdConfig = "/etc/containerd/config.toml"

// handlerName is what the kubelet accepts as a RuntimeClass handler (a DNS label).
var handlerName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// Validate checks the handler before any of it is written into a CRI config.
func (h Handler) Validate() error {
	if len(h.Name) > 63 || !handlerName.MatchString(h.Name) {
		return fmt.Errorf("runtime handler name %q is not a DNS label", h.Name)
	}
	for _, p := range []struct{ what, path string }{
		{"binary", h.BinaryName}, {"runc root", h.RuncRoot}, {"CRI-O runtime root", h.CRIORoot},
	} {
		if !path.IsAbs(p.path) || path.Clean(p.path) != p.path {
			return fmt.Errorf("runtime handler %q: %s %q is not a clean absolute path", h.Name, p.what, p.path)
		}
	}
	return nil
}

// Strategy is how a handler is registered with containerd.
type Strategy string

const (
	// DropIn writes a file of eci's own that the CRI's config already imports.
	DropIn Strategy = "drop-in"
	// Edit rewrites the CRI's main config, keeping a backup of the original bytes.
	Edit Strategy = "edit"
)

// Write is one file a Plan writes, atomically (temp file, fsync, rename, fsync dir).
type Write struct {
	Path string // host path, absolute
	Data []byte
	Mode fs.FileMode
}

// Plan is what an install or uninstall does to the node.
type Plan struct {
	// Strategy is how the handler is, or was, registered.
	Strategy Strategy
	// Changed reports whether the CRI's configuration differs after Apply; the CRI must
	// be restarted to see it, and need not be when Changed is false. Apply may still
	// have bookkeeping to do (eci's state files) when Changed is false: always call it.
	Changed bool
	// Writes happen first, in order: backups, then eci's state, then the CRI's files.
	Writes []Write
	// Removes happen after the writes, in order. A path already gone is not an error.
	Removes []string
	// Description says what the plan does, or why nothing needs doing, for logs and
	// events.
	Description string

	// expect is what the planner read; Apply refuses to act when any of it changed.
	expect []expectation
}

// expectation is a file's content as the planner saw it (exists false: it was absent).
type expectation struct {
	path   string
	exists bool
	sum    string
}

// File returns the content the plan writes to path.
func (p Plan) File(path string) ([]byte, bool) {
	for _, w := range p.Writes {
		if w.Path == path {
			return w.Data, true
		}
	}
	return nil, false
}

// Noop reports whether Apply has nothing to do.
func (p Plan) Noop() bool { return len(p.Writes) == 0 && len(p.Removes) == 0 }

func (p *Plan) expectFile(f hostFile) {
	p.expect = append(p.expect, expectation{path: f.path, exists: f.exists, sum: sum(f.data)})
}

func (p *Plan) write(path string, data []byte, mode fs.FileMode) {
	p.Writes = append(p.Writes, Write{Path: path, Data: data, Mode: mode})
}

func (p *Plan) remove(path string) { p.Removes = append(p.Removes, path) }

func (p *Plan) describe(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	if p.Description == "" {
		p.Description = s
		return
	}
	p.Description = strings.TrimSuffix(p.Description, ".") + "; " + s
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
