package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Source says where a pod's policy came from.
type Source string

// The sources, in the order Lookup tries them.
const (
	// FromPod is the pod's own file: the policy eci-node compiled for it.
	FromPod Source = "pod"
	// FromStrict is the node's strict policy: the pod's file was missing or unusable.
	FromStrict Source = "strict"
	// FromBuiltin is eci-runtime's built-in default: no policy data on the node at all.
	FromBuiltin Source = "builtin"
)

// Dir is the policy directory under the run dir.
func Dir(runDir string) string { return filepath.Join(runDir, "policy") }

// PodFile is where eci-node writes the policy of the pod with this uid.
func PodFile(runDir, uid string) string {
	return filepath.Join(Dir(runDir), "pods", uid+".json")
}

// StrictFile is where eci-node writes the node's strict policy.
func StrictFile(runDir string) string { return filepath.Join(Dir(runDir), "strict.json") }

// Result is what Lookup found.
type Result struct {
	Pod    Pod
	Source Source
	// Why says, for a fallback, what was wrong with the better sources.
	Why string
}

// Lookup finds the policy of the pod with uid: its pod file, else (after waiting up to
// wait for eci-node to write it, when eci-node has written policy data on this node) the
// strict policy, else builtin. It never returns a weaker policy than the pod's: the strict
// one is the union of all, and builtin is eci's own protections.
func Lookup(runDir, uid string, wait time.Duration, builtin Policy) Result {
	var why string
	if !safeUID(uid) {
		why = fmt.Sprintf("the container has no usable pod uid (%q)", uid)
	} else {
		pod, err := readPod(PodFile(runDir, uid))
		if err == nil {
			return Result{Pod: pod, Source: FromPod}
		}
		if errors.Is(err, fs.ErrNotExist) && wait > 0 && exists(StrictFile(runDir)) {
			// eci-node runs here but may not have seen the pod yet.
			deadline := time.Now().Add(wait)
			for errors.Is(err, fs.ErrNotExist) && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
				pod, err = readPod(PodFile(runDir, uid))
			}
			if err == nil {
				return Result{Pod: pod, Source: FromPod}
			}
		}
		if errors.Is(err, fs.ErrNotExist) {
			why = fmt.Sprintf("eci-node has written no policy for pod uid %s", uid)
			if wait > 0 {
				why += fmt.Sprintf(" within %s", wait)
			}
		} else {
			why = err.Error()
		}
	}
	strict, err := readPolicy(StrictFile(runDir))
	if err == nil {
		return Result{Pod: Pod{UID: uid, Policy: strict}, Source: FromStrict, Why: why}
	}
	if !errors.Is(err, fs.ErrNotExist) {
		why += "; " + err.Error()
	}
	return Result{Pod: Pod{UID: uid, Policy: builtin}, Source: FromBuiltin, Why: why}
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

func safeUID(s string) bool {
	return s != "" && s != "." && s != ".." && len(s) <= 128 && !strings.ContainsAny(s, "/\x00")
}

func readPod(path string) (Pod, error) {
	var p Pod
	data, err := os.ReadFile(path)
	if err != nil {
		return p, err
	}
	if err := json.Unmarshal(data, &p); err != nil {
		return p, fmt.Errorf("policy file %s: %w", path, err)
	}
	if err := p.Policy.Validate(); err != nil {
		return p, fmt.Errorf("policy file %s: %w", path, err)
	}
	return p, nil
}

func readPolicy(path string) (Policy, error) {
	var p Policy
	data, err := os.ReadFile(path)
	if err != nil {
		return p, err
	}
	if err := json.Unmarshal(data, &p); err != nil {
		return p, fmt.Errorf("strict policy %s: %w", path, err)
	}
	if err := p.Validate(); err != nil {
		return p, fmt.Errorf("strict policy %s: %w", path, err)
	}
	return p, nil
}
