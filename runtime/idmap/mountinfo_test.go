package idmap

import (
	"reflect"
	"strings"
	"testing"
)

const sampleMountInfo = `22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,discard
24 22 0:5 / /dev rw,nosuid shared:2 - devtmpfs devtmpfs rw,size=4096k
812 22 0:77 / /run/containerd/io.containerd.runtime.v2.task/k8s.io/abc/rootfs rw,relatime - overlay overlay rw,lowerdir=/var/lib/containerd/snapshots/3/fs:/var/lib/containerd/snapshots/2/fs,upperdir=/var/lib/containerd/snapshots/4/fs,workdir=/var/lib/containerd/snapshots/4/work,index=off
813 22 0:78 / /tmp/with\040space rw - tmpfs tmpfs rw
814 812 254:0 /x /run/containerd/io.containerd.runtime.v2.task/k8s.io/abc/rootfs rw,relatime,idmapped - ext4 /dev/vda rw
`

func TestParseMountInfo(t *testing.T) {
	t.Parallel()
	mounts, err := ParseMountInfo(strings.NewReader(sampleMountInfo))
	if err != nil {
		t.Fatal(err)
	}
	if len(mounts) != 5 {
		t.Fatalf("got %d mounts", len(mounts))
	}
	if mounts[3].MountPoint != "/tmp/with space" {
		t.Errorf("escaped mount point = %q", mounts[3].MountPoint)
	}
	rootfs := "/run/containerd/io.containerd.runtime.v2.task/k8s.io/abc/rootfs"
	top, ok := Topmost(mounts, rootfs)
	if !ok || top.ID != 814 || top.Options != "rw,relatime,idmapped" {
		t.Errorf("Topmost = %+v, %v; want the stacked mount 814", top, ok)
	}
	if _, ok := Topmost(mounts, "/nowhere"); ok {
		t.Error("Topmost found a mount at /nowhere")
	}
	if _, err := ParseMountInfo(strings.NewReader("garbage line\n")); err == nil {
		t.Error("malformed mountinfo parsed")
	}
}

func TestParseOverlay(t *testing.T) {
	t.Parallel()
	tests := []struct {
		opts    string
		want    Overlay
		wantErr string
	}{
		{
			opts: "rw,lowerdir=/l/3:/l/2,upperdir=/u,workdir=/w,index=off,redirect_dir=on",
			want: Overlay{Lower: []string{"/l/3", "/l/2"}, Upper: "/u", Work: "/w", Others: []string{"index=off", "redirect_dir=on"}},
		},
		{
			opts: `ro,lowerdir=/a\:b:/c\054d`,
			want: Overlay{Lower: []string{"/a:b", "/c,d"}},
		},
		{
			opts: "rw,lowerdir+=/l/1,lowerdir+=/l/2,upperdir=/u,workdir=/w",
			want: Overlay{Lower: []string{"/l/1", "/l/2"}, Upper: "/u", Work: "/w"},
		},
		{opts: "rw,upperdir=/u,workdir=/w", wantErr: "no lowerdir"},
		{opts: "rw,lowerdir=/l::/data", wantErr: "data-only layers"},
		{opts: "rw,lowerdir=relative/path", wantErr: "not an absolute path"},
	}
	for _, tt := range tests {
		got, err := ParseOverlay(tt.opts)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseOverlay(%q) err = %v, want %q", tt.opts, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseOverlay(%q) = %+v, %v; want %+v", tt.opts, got, err, tt.want)
		}
	}
}

func TestEscapeLowerRoundTrips(t *testing.T) {
	t.Parallel()
	for _, p := range []string{"/plain", "/with:colon", `/back\slash`, "/com,ma"} {
		got, err := splitLower(strings.NewReplacer(`\,`, ",").Replace(escapeLower(p)))
		if err != nil || len(got) != 1 || got[0] != p {
			t.Errorf("round trip of %q = %q, %v", p, got, err)
		}
	}
}
