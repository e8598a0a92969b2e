package idalloc

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestStateRoundTrip(t *testing.T) {
	t.Parallel()
	created := time.Date(2025, 6, 7, 8, 9, 10, 11, time.UTC)
	entries := []Entry{
		{Key: "b", Range: Range{3 * B, 2 * B}, RuncRoot: "/run/runc", CreatorPID: 7, CreatorStart: 8, Created: created},
		{Key: "a", Range: Range{B, B}, RuncRoot: "/run/containerd/runc/k8s.io", CreatorPID: 1, CreatorStart: 2, Created: created},
	}
	b, err := encodeState(entries)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"version": 1`, `"key": "a"`, `"runcRoot": "/run/runc"`, `"creatorStart": 8`} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("encoded state lacks %s:\n%s", want, b)
		}
	}
	got, err := decodeState(b)
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{entries[1], entries[0]} // ordered by start
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
	}
	if got, err := decodeState([]byte(`{"version":1}`)); err != nil || len(got) != 0 {
		t.Fatalf("decode of an empty state = %v, %v", got, err)
	}
}

func TestCorruptStateFile(t *testing.T) {
	t.Parallel()
	entry := func(key string, start, size uint32) string {
		return `{"key":"` + key + `","start":` + itoa(start) + `,"size":` + itoa(size) + `,"runcRoot":"/run/runc","creatorPid":1,"creatorStart":1,"created":"2025-01-01T00:00:00Z"}`
	}
	tests := []struct {
		name    string
		content string
		detail  string
	}{
		{"garbage", "not json at all", "invalid character"},
		{"empty", "", "unexpected end of JSON input"},
		{"truncated", `{"version":1,"entries":[{"key":"a"`, "unexpected end of JSON input"},
		{"trailing data", `{"version":1,"entries":[]} {}`, "invalid character"},
		{"newer version", `{"version":2,"entries":[],"pools":{}}`, "unsupported version 2"},
		{"version zero", `{"version":0,"entries":[]}`, "unsupported version 0"},
		{"no version", `{"entries":[]}`, `no "version" field`},
		{"not an object", `[1,2]`, "cannot unmarshal array"},
		{"unknown field", `{"version":1,"entries":[],"owner":"x"}`, `unknown field "owner"`},
		{"negative start", `{"version":1,"entries":[{"key":"a","start":-65536,"size":65536,"runcRoot":"/r"}]}`, "cannot unmarshal number -65536"},
		{"overlap", `{"version":1,"entries":[` + entry("a", B, 2*B) + `,` + entry("b", 2*B, B) + `]}`, `"a" [65536, 196608) and "b" [131072, 196608) overlap`},
		{"duplicate key", `{"version":1,"entries":[` + entry("a", B, B) + `,` + entry("a", 2*B, B) + `]}`, `duplicate key "a"`},
		{"misaligned", `{"version":1,"entries":[` + entry("a", B+1, B) + `]}`, "not a non-empty 65536-aligned block"},
		{"zero size", `{"version":1,"entries":[` + entry("a", B, 0) + `]}`, "not a non-empty 65536-aligned block"},
		{"contains uid -1", `{"version":1,"entries":[` + entry("a", MaxID+1-B, B) + `]}`, "not a non-empty 65536-aligned block"},
		{"bad key", `{"version":1,"entries":[` + entry("../etc", B, B) + `]}`, "invalid key"},
		{"relative runc root", `{"version":1,"entries":[{"key":"a","start":65536,"size":65536,"runcRoot":"run"}]}`, "not an absolute path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := newAllocator(t, Pool{Start: B, Size: 8 * B}, WithLiveness(alwaysDead))
			if err := os.WriteFile(a.statePath, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			ops := map[string]func() error{
				"Allocate": func() error { _, err := a.Allocate(owner("new"), B); return err },
				"Lookup":   func() error { _, _, err := a.Lookup("a"); return err },
				"Release":  func() error { _, err := a.Release("a"); return err },
				"GC":       func() error { _, err := a.GC(); return err },
				"List":     func() error { _, err := a.List(); return err },
			}
			wantPrefix := "idalloc: state file " + a.statePath + " is corrupt: "
			for name, op := range ops {
				err := op()
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("%s = %v, want ErrCorrupt", name, err)
				}
				if _, ok := errors.AsType[*StateError](err); !ok {
					t.Errorf("%s: %T is not a *StateError", name, err)
				}
				if msg := err.Error(); !strings.HasPrefix(msg, wantPrefix) || !strings.Contains(msg, tt.detail) {
					t.Errorf("%s error = %q\nwant prefix %q and %q", name, msg, wantPrefix, tt.detail)
				}
				got, err := os.ReadFile(a.statePath)
				if err != nil || string(got) != tt.content {
					t.Fatalf("after %s the state file changed: %q, %v", name, got, err)
				}
			}
			if tmps, _ := filepath.Glob(filepath.Join(a.Dir(), tempPattern)); len(tmps) != 0 {
				t.Errorf("temp files left: %v", tmps)
			}
		})
	}
}

func TestUnreadableStateFileIsNotCorrupt(t *testing.T) {
	t.Parallel()
	a := newAllocator(t, Pool{Start: B, Size: B})
	if err := os.Mkdir(a.statePath, 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := a.Allocate(owner("k"), B)
	if err == nil || errors.Is(err, ErrCorrupt) {
		t.Fatalf("Allocate with a directory as state file = %v; want a read error", err)
	}
	for _, want := range []string{`key "k"`, a.Dir(), "read state file"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func itoa(u uint32) string { return strconv.FormatUint(uint64(u), 10) }
