package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWrite(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	for _, sync := range []bool{false, true} {
		if err := os.WriteFile(p, []byte("old"), 0o600); err != nil {
			t.Fatal(err)
		}
		before, _ := os.Stat(p)
		if err := Write(p, []byte("new"), 0o755, sync); err != nil {
			t.Fatal(err)
		}
		after, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(p); string(got) != "new" || after.Mode().Perm() != 0o755 || os.SameFile(before, after) {
			t.Errorf("sync=%v: content %q mode %v, same inode %v", sync, got, after.Mode().Perm(), os.SameFile(before, after))
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("temp files left: %v", entries)
	}
	if err := Write(filepath.Join(dir, "missing", "f"), nil, 0o644, false); err == nil {
		t.Error("writing into a missing directory succeeded")
	}
}
