package runtime

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestBundleSpecKeepsWhatItDoesNotEdit(t *testing.T) {
	t.Parallel()
	in := `{"ociVersion":"1.3.0","process":{"args":["sh"],"cwd":"/","user":{"uid":0,"gid":0},"futureProcessField":7},
"root":{"path":"rootfs"},"hostname":"h","linux":{"namespaces":[{"type":"pid"}]},"futureTopLevel":{"x":[1,2]}}`
	b, err := parseBundleSpec([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	b.Spec.Linux.MaskedPaths = []string{"/proc/kcore"}
	b.Spec.Annotations = map[string]string{"eci.dev/id-range": "1-2"}
	out, err := b.marshal()
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]json.RawMessage
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	for field, want := range map[string]string{
		"futureTopLevel": `{"x":[1,2]}`,
		"process":        `{"args":["sh"],"cwd":"/","user":{"uid":0,"gid":0},"futureProcessField":7}`,
		"hostname":       `"h"`,
		"ociVersion":     `"1.3.0"`,
	} {
		if string(got[field]) != want {
			t.Errorf("%s = %s, want it untouched: %s", field, got[field], want)
		}
	}
	if !strings.Contains(string(got["linux"]), `"maskedPaths":["/proc/kcore"]`) || !strings.Contains(string(got["annotations"]), "eci.dev/id-range") {
		t.Errorf("edits lost: linux %s annotations %s", got["linux"], got["annotations"])
	}
	if _, ok := got["mounts"]; ok {
		t.Errorf("an absent mounts field was written as %s", got["mounts"])
	}
}

func TestBundleSpecErrors(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		`{"root":{"path":"r"},"linux":{}}`:                              "lacks its process section",
		`{"root":{"path":"r"},"process":{},"linux":null}`:               "lacks its linux section",
		`{"root":{"path":"r"},"process":{},"linux":{"namespaces":"x"}}`: "field linux",
		`not json`: "invalid character",
	} {
		if _, err := parseBundleSpec([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseBundleSpec(%s) err = %v, want %q", in, err, want)
		}
	}
}
