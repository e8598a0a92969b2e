package policy

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/eci-dev/eci/internal/atomicfile"
)

// Report kinds.
const (
	// KindDenied: Enforce refused something (a pod that mounts a protected path).
	KindDenied = "denied"
	// KindAudited: Audit let through what Enforce would have refused.
	KindAudited = "audited"
	// KindFallback: the pod's own policy could not be read; a stricter one was used.
	KindFallback = "fallback"
	// KindStarted: a pod's sandbox started under a policy.
	KindStarted = "started"
)

// Report is one thing eci-runtime tells eci-node about a pod.
type Report struct {
	Time time.Time `json:"time"`
	Kind string    `json:"kind"`
	// Warning or Normal, as Kubernetes Events have it.
	Type       string `json:"type"`
	Reason     string `json:"reason"`
	Message    string `json:"message"`
	PodUID     string `json:"podUID"`
	Namespace  string `json:"namespace"`
	Name       string `json:"name"`
	Policy     string `json:"policy"`
	Generation int64  `json:"generation"`
	Mode       Mode   `json:"mode,omitempty"`
	// What is what was refused or audited ("mount"), for metrics.
	What string `json:"what,omitempty"`
	// Source is where a started pod's policy came from.
	Source Source `json:"source,omitempty"`
}

// SpoolDir is where eci-runtime leaves reports.
func SpoolDir(runDir string) string { return filepath.Join(runDir, "events") }

// MaxSpooled bounds the spool: when eci-node is down, reports beyond it are dropped rather
// than filling the run dir's tmpfs.
const MaxSpooled = 4096

// Spool leaves a report for eci-node.
func Spool(runDir string, r Report) error {
	dir := SpoolDir(runDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if ents, err := os.ReadDir(dir); err == nil && len(ents) >= MaxSpooled {
		return fmt.Errorf("report spool %s is full (%d reports): is eci-node running?", dir, len(ents))
	}
	if r.Time.IsZero() {
		r.Time = time.Now()
	}
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	name := fmt.Sprintf("%020d-%s.json", r.Time.UnixNano(), hex.EncodeToString(rnd[:]))
	return atomicfile.Write(filepath.Join(dir, name), data, 0o600, false)
}

// Drain reads every spooled report, oldest first, and removes each after handle returns.
// Unreadable reports are removed and counted in bad.
func Drain(runDir string, handle func(Report)) (n, bad int, err error) {
	dir := SpoolDir(runDir)
	ents, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, err
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		if e.Type().IsRegular() && strings.HasSuffix(e.Name(), ".json") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	for _, name := range names {
		p := filepath.Join(dir, name)
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		var r Report
		if json.Unmarshal(data, &r) != nil {
			bad++
		} else {
			handle(r)
			n++
		}
		_ = os.Remove(p)
	}
	return n, bad, nil
}
