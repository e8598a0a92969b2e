package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestLoadFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}

	got, err := LoadFile(filepath.Join(dir, "missing.json"))
	if err != nil || !reflect.DeepEqual(got, Default()) {
		t.Fatalf("missing file: got %+v, %v; want defaults", got, err)
	}

	got, err = LoadFile(write("ok.json", `{"idsPerPod": 131072, "idPool": {"start": 65536, "size": 1048576}, "extraProtectedPaths": ["/srv"]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.IDsPerPod = 131072
	want.IDPool = Pool{Start: 65536, Size: 1048576}
	want.ExtraProtectedPaths = []string{"/srv"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v want %+v", got, want)
	}

	bad := map[string]string{
		`{"stateDir": "relative"}`:                                          `stateDir "relative" must be an absolute, clean path`,
		`{"runDir": "/run/../x"}`:                                           `runDir "/run/../x" must be an absolute, clean path`,
		`{"idsPerPod": 1000}`:                                               "idsPerPod 1000 must be a positive multiple of 65536",
		`{"idPool": {"start": 0, "size": 65536}}`:                           "idPool: start 0 is below 65536",
		`{"idPool": {"start": 65537, "size": 65536}}`:                       "must be multiples of 65536",
		`{"idPool": {"start": 4294901760, "size": 65536}}`:                  "passes the largest valid id",
		`{"idPool": {"start": 65536, "size": 0}}`:                           "idPool: size must be positive",
		`{"idsPerPod": 262144, "idPool": {"start": 65536, "size": 131072}}`: "larger than the pool",
		`{"stateDri": "/x"}`:                                                `unknown field "stateDri"`,
		`{"extraProtectedPaths": ["srv"]}`:                                  "extraProtectedPaths",
		`{`:                                                                 "unexpected EOF",
	}
	i := 0
	for body, wantErr := range bad {
		i++
		p := write(filepath.Base(t.Name())+string(rune('a'+i))+".json", body)
		_, err := LoadFile(p)
		if err == nil || !strings.Contains(err.Error(), wantErr) || !strings.Contains(err.Error(), p) {
			t.Errorf("LoadFile(%s) err = %v, want it to name the file and contain %q", body, err, wantErr)
		}
	}
}

func TestDefaultPoolIsValidAndHigh(t *testing.T) {
	t.Parallel()
	d := Default()
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	// The kubelet allocates from 65536 upward; eci's default pool starts at 2^31.
	if d.IDPool.Start < 1<<31 {
		t.Fatalf("default pool starts at %d, want >= 2^31", d.IDPool.Start)
	}
}
