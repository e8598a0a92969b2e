package idalloc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"time"
)

// fileState is the on-disk form of ranges.json.
type fileState struct {
	Version int         `json:"version"`
	Entries []fileEntry `json:"entries"`
}

type fileEntry struct {
	Key          string    `json:"key"`
	Start        uint32    `json:"start"`
	Size         uint32    `json:"size"`
	RuncRoot     string    `json:"runcRoot"`
	CreatorPID   int       `json:"creatorPid"`
	CreatorStart uint64    `json:"creatorStart"`
	Created      time.Time `json:"created"`
}

// encodeState renders entries, ordered by range start, as a version 1 state file.
func encodeState(entries []Entry) ([]byte, error) {
	sorted := slices.Clone(entries)
	sortByStart(sorted)
	fs := fileState{Version: StateVersion, Entries: make([]fileEntry, 0, len(sorted))}
	for _, e := range sorted {
		fs.Entries = append(fs.Entries, fileEntry{
			Key:          e.Key,
			Start:        e.Range.Start,
			Size:         e.Range.Size,
			RuncRoot:     e.RuncRoot,
			CreatorPID:   e.CreatorPID,
			CreatorStart: e.CreatorStart,
			Created:      e.Created,
		})
	}
	b, err := json.MarshalIndent(fs, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// decodeState parses a state file and checks that its entries are
// consistent. Unknown fields are rejected rather than dropped, so that a
// file written by a newer build is never rewritten with less information.
func decodeState(b []byte) ([]Entry, error) {
	var head struct {
		Version *int `json:"version"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return nil, err
	}
	switch {
	case head.Version == nil:
		return nil, errors.New(`no "version" field`)
	case *head.Version != StateVersion:
		return nil, fmt.Errorf("unsupported version %d (this build reads version %d)", *head.Version, StateVersion)
	}
	var fs fileState
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fs); err != nil {
		return nil, err
	}
	entries := make([]Entry, 0, len(fs.Entries))
	for _, fe := range fs.Entries {
		entries = append(entries, Entry{
			Key:          fe.Key,
			Range:        Range{Start: fe.Start, Size: fe.Size},
			RuncRoot:     fe.RuncRoot,
			CreatorPID:   fe.CreatorPID,
			CreatorStart: fe.CreatorStart,
			Created:      fe.Created,
		})
	}
	if err := validateEntries(entries); err != nil {
		return nil, err
	}
	return entries, nil
}

// validateEntries checks the invariants every state file must hold: valid
// unique keys, absolute runc roots, aligned non-empty ranges below MaxID, and
// no two ranges overlapping. Entries need not lie inside the current pool.
func validateEntries(entries []Entry) error {
	seen := make(map[string]bool, len(entries))
	for i, e := range entries {
		if err := validateKey(e.Key); err != nil {
			return fmt.Errorf("entry %d: %w", i, err)
		}
		if seen[e.Key] {
			return fmt.Errorf("entry %d: duplicate key %q", i, e.Key)
		}
		seen[e.Key] = true
		if e.RuncRoot == "" || !filepath.IsAbs(e.RuncRoot) {
			return fmt.Errorf("entry %d (key %q): runc root %q is not an absolute path", i, e.Key, e.RuncRoot)
		}
		if e.CreatorPID < 0 {
			return fmt.Errorf("entry %d (key %q): negative creator pid %d", i, e.Key, e.CreatorPID)
		}
		r := e.Range
		if r.Size == 0 || r.Size%BlockSize != 0 || r.Start%BlockSize != 0 || r.Start == 0 || r.End() > MaxID {
			return fmt.Errorf("entry %d (key %q): range %v is not a non-empty %d-aligned block of ids in [%d, %d)", i, e.Key, r, BlockSize, BlockSize, uint64(MaxID))
		}
	}
	sorted := slices.Clone(entries)
	sortByStart(sorted)
	for i := 1; i < len(sorted); i++ {
		if p, e := sorted[i-1], sorted[i]; p.Range.Overlaps(e.Range) {
			return fmt.Errorf("keys %q %v and %q %v overlap", p.Key, p.Range, e.Key, e.Range)
		}
	}
	return nil
}
