// Package procfs serves procemu's emulated files over FUSE: one directory per container,
// named by its id, holding one file per emulated /proc or /sys file. The adapter is thin:
// what a file says comes from procemu's renderers.
//
//	<mountpoint>/<container id>/meminfo     (for /proc/meminfo)
//	<mountpoint>/<container id>/cpu-online  (for /sys/devices/system/cpu/online)
//
// Each open renders the file once (from a per-container snapshot at most TTL old) and
// serves reads of that open from it (FOPEN_NOFLUSH: close costs no round trip). Files are
// read through the page cache, not with direct I/O: sendfile and splice (busybox cat uses
// them) read through it whatever the open flags say, and only up to the size the kernel
// holds for the inode, which they never ask the server for. So an open stores its
// rendering's size in the kernel (a FUSE notify-store) before it returns; read() asks for
// the size of its open (a getattr with the file handle); stat says 0, as procfs does, and
// renders nothing. Nothing is rendered before the first open: runc binds the files while
// the container's cgroup limits are not yet set.
//
// The server must run in the host's pid and cgroup namespaces and mount with allow_other:
// containers' roots are not the mounter.
package procfs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/eci-dev/eci/procemu"
)

// Resolver finds a container's cgroups.
type Resolver interface {
	// Cgroups returns the container's cgroup paths by controller, as in /proc/<pid>/cgroup
	// (procemu.ParseCgroupFile). An unknown container is an error.
	Cgroups(id string) (map[string]string, error)
}

// Owners is what a Resolver may also tell, for the writable /proc/sys knobs: the pod a
// container is in (its knobs are the pod's) and the host uid of its root (the only user,
// with the host's root, that may write them). Without it the knobs are read-only.
type Owners interface {
	Owner(id string) (pod string, rootUID uint32, err error)
}

// Names maps the file names in a container's directory to the files they emulate.
var Names = map[string]string{}

// knobNames maps the knob file names to the /proc/sys files they emulate.
var knobNames = map[string]string{}

var renderers = map[string]func(procemu.View) ([]byte, error){}

func init() {
	for _, f := range procemu.Files() {
		name := procemu.FileName(f.Path)
		Names[name] = f.Path
		renderers[name] = f.Render
	}
	for _, k := range procemu.Knobs() {
		knobNames[procemu.KnobFileName(k)] = k
	}
}

// MaxRead is the largest read the server takes; a caller that mounts the filesystem
// itself (Mount with /dev/fd/N) must pass it as max_read.
const MaxRead = 128 << 10

// DefaultTTL is how old a container's snapshot may be when a file is opened.
const DefaultTTL = time.Second

// Server renders and serves the files.
type Server struct {
	Resolver Resolver
	// Root is where the host's / is (cgroups and /proc are read below it).
	Root string
	TTL  time.Duration
	// Now is the clock (tests replace it).
	Now func() time.Time

	mu        sync.Mutex
	snapshots map[string]snapshot
	// knobs are the values pods wrote, by pod and /proc/sys path.
	knobs map[string]map[string][]byte
}

type snapshot struct {
	at   time.Time
	view procemu.View
}

// Render returns file name of container id.
func (s *Server) Render(id, name string) ([]byte, error) {
	r, ok := renderers[name]
	if !ok {
		return nil, fmt.Errorf("no emulated file %q", name)
	}
	v, err := s.view(id)
	if err != nil {
		return nil, err
	}
	return r(v)
}

func (s *Server) view(id string) (procemu.View, error) {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	ttl := s.TTL
	if ttl == 0 {
		ttl = DefaultTTL
	}
	t := now()
	s.mu.Lock()
	if s.snapshots == nil {
		s.snapshots = map[string]snapshot{}
	}
	snap, ok := s.snapshots[id]
	s.mu.Unlock()
	if ok && t.Sub(snap.at) < ttl && t.Sub(snap.at) >= 0 {
		return snap.view, nil
	}
	cg, err := s.Resolver.Cgroups(id)
	if err != nil {
		return procemu.View{}, err
	}
	root := s.Root
	if root == "" {
		root = "/"
	}
	v, err := procemu.Gather(root, cg, t)
	if err != nil {
		return procemu.View{}, fmt.Errorf("container %s: %w", id, err)
	}
	s.mu.Lock()
	s.snapshots[id] = snapshot{at: t, view: v}
	// Forget containers not read for a while, so the map stays the size of the node.
	for k, old := range s.snapshots {
		if t.Sub(old.at) > 60*ttl {
			delete(s.snapshots, k)
		}
	}
	s.mu.Unlock()
	return v, nil
}

// Mount mounts the server at dir (an existing directory) and serves it until unmounted.
// dir may be /dev/fd/N: the server then serves /dev/fuse fd N, which the caller mounted.
func (s *Server) Mount(dir string) (*fuse.Server, error) {
	entry, attr := time.Second, time.Duration(0)
	return fs.Mount(dir, &rootNode{s: s}, &fs.Options{
		EntryTimeout: &entry,
		// Attributes (the size) are asked for again at every stat and read.
		AttrTimeout: &attr,
		MountOptions: fuse.MountOptions{
			AllowOther: true,
			MaxWrite:   MaxRead,
			Name:       "eci-procfs",
			FsName:     "eci-procfs",
			// mount(2) itself, not fusermount; never for /dev/fd/N, which go-fuse
			// would otherwise mount a second filesystem on.
			DirectMount: !strings.HasPrefix(dir, "/dev/fd/"),
		},
	})
}

// validID reports whether name can be a container id (one path element).
func validID(name string) bool {
	return name != "" && name != "." && name != ".." && len(name) <= 1024 && !strings.ContainsAny(name, "/\x00")
}

type rootNode struct {
	fs.Inode
	s *Server
}

var _ fs.NodeLookuper = (*rootNode)(nil)

func (r *rootNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if !validID(name) {
		return nil, syscall.ENOENT
	}
	if _, err := r.s.Resolver.Cgroups(name); err != nil {
		return nil, syscall.ENOENT
	}
	out.Mode = syscall.S_IFDIR | 0o555
	return r.NewInode(ctx, &containerNode{s: r.s, id: name}, fs.StableAttr{Mode: syscall.S_IFDIR}), 0
}

type containerNode struct {
	fs.Inode
	s  *Server
	id string
}

var (
	_ fs.NodeLookuper  = (*containerNode)(nil)
	_ fs.NodeReaddirer = (*containerNode)(nil)
)

func (c *containerNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if path, ok := knobNames[name]; ok {
		out.Mode = syscall.S_IFREG | 0o644
		return c.NewInode(ctx, &knobNode{s: c.s, id: c.id, path: path}, fs.StableAttr{Mode: syscall.S_IFREG}), 0
	}
	if _, ok := renderers[name]; !ok {
		return nil, syscall.ENOENT
	}
	out.Mode = syscall.S_IFREG | 0o444
	return c.NewInode(ctx, &fileNode{s: c.s, id: c.id, name: name}, fs.StableAttr{Mode: syscall.S_IFREG}), 0
}

func (c *containerNode) Readdir(context.Context) (fs.DirStream, syscall.Errno) {
	entries := make([]fuse.DirEntry, 0, len(Names)+len(knobNames))
	for name := range Names {
		entries = append(entries, fuse.DirEntry{Name: name, Mode: syscall.S_IFREG})
	}
	for name := range knobNames {
		entries = append(entries, fuse.DirEntry{Name: name, Mode: syscall.S_IFREG})
	}
	return fs.NewListDirStream(entries), 0
}

type fileNode struct {
	fs.Inode
	s        *Server
	id, name string
}

var (
	_ fs.NodeOpener    = (*fileNode)(nil)
	_ fs.NodeReader    = (*fileNode)(nil)
	_ fs.NodeGetattrer = (*fileNode)(nil)
)

// Getattr reports the size of the open's rendering when the kernel asks about an open
// file (read() does), else 0.
func (f *fileNode) Getattr(_ context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	return attrOf(fh, 0o444, out)
}

// attrOf fills a file's attributes: its mode, and the size of fh's rendering if any.
func attrOf(fh fs.FileHandle, mode uint32, out *fuse.AttrOut) syscall.Errno {
	out.Mode = syscall.S_IFREG | mode
	if h, ok := fh.(*handle); ok {
		out.Size = uint64(len(h.data))
	}
	return 0
}

// handle is one open: the rendering it reads from.
type handle struct{ data []byte }

func (f *fileNode) Open(_ context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if flags&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_TRUNC|syscall.O_APPEND) != 0 {
		return nil, 0, syscall.EACCES
	}
	data, err := f.s.Render(f.id, f.name)
	return openRendering(&f.Inode, data, err)
}

// openRendering is an open that reads data: the kernel is given its size for sendfile and
// splice (the stored pages themselves are dropped when the open completes; reads come back
// to the handle).
func openRendering(in *fs.Inode, data []byte, err error) (fs.FileHandle, uint32, syscall.Errno) {
	if err != nil {
		return nil, 0, syscall.EIO
	}
	if len(data) > 0 {
		_ = in.WriteCache(0, data)
	}
	return &handle{data: data}, fuse.FOPEN_NOFLUSH, 0
}

func (f *fileNode) Read(_ context.Context, fh fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	return readHandle(fh, dest, off)
}

// readHandle serves a read from its open's rendering.
func readHandle(fh fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	h, ok := fh.(*handle)
	if !ok {
		return nil, syscall.EBADF
	}
	if off >= int64(len(h.data)) {
		return fuse.ReadResultData(nil), 0
	}
	end := min(off+int64(len(dest)), int64(len(h.data)))
	return fuse.ReadResultData(h.data[off:end]), 0
}

// Knob returns what a container reads in a /proc/sys knob: its pod's value if the pod
// wrote one, else the host's.
func (s *Server) Knob(id, path string) ([]byte, error) {
	pod := id
	if o, ok := s.Resolver.(Owners); ok {
		p, _, err := o.Owner(id)
		if err != nil {
			return nil, err
		}
		pod = p
	}
	s.mu.Lock()
	v, ok := s.knobs[pod][path]
	s.mu.Unlock()
	if ok {
		return v, nil
	}
	root := s.Root
	if root == "" {
		root = "/"
	}
	return os.ReadFile(filepath.Join(root, path))
}

// SetKnob keeps a value a container's root wrote to a knob, for its whole pod. uid is the
// writer's host uid.
func (s *Server) SetKnob(id, path string, uid uint32, data []byte) error {
	o, ok := s.Resolver.(Owners)
	if !ok {
		return syscall.EACCES
	}
	pod, rootUID, err := o.Owner(id)
	if err != nil {
		return err
	}
	if uid != 0 && uid != rootUID {
		return syscall.EACCES // as the kernel: only root writes /proc/sys
	}
	v, err := procemu.ParseKnob(path, data)
	if err != nil {
		return syscall.EINVAL
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.knobs == nil {
		s.knobs = map[string]map[string][]byte{}
	}
	if s.knobs[pod] == nil {
		s.knobs[pod] = map[string][]byte{}
	}
	s.knobs[pod][path] = v
	return nil
}

// knobNode is a writable /proc/sys knob: reads like the other files (one value per
// open); a write is checked and kept for the pod, never passed to the host.
type knobNode struct {
	fs.Inode
	s        *Server
	id, path string
}

var (
	_ fs.NodeOpener    = (*knobNode)(nil)
	_ fs.NodeReader    = (*knobNode)(nil)
	_ fs.NodeWriter    = (*knobNode)(nil)
	_ fs.NodeGetattrer = (*knobNode)(nil)
	_ fs.NodeSetattrer = (*knobNode)(nil)
)

func (k *knobNode) Getattr(_ context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	return attrOf(fh, 0o644, out)
}

// Setattr takes the truncation an open for writing asks for (the value is replaced by
// the write anyway).
func (k *knobNode) Setattr(ctx context.Context, fh fs.FileHandle, _ *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	return k.Getattr(ctx, fh, out)
}

func (k *knobNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if flags&(syscall.O_WRONLY|syscall.O_RDWR) != 0 {
		caller, ok := fuse.FromContext(ctx)
		if !ok {
			return nil, 0, syscall.EACCES
		}
		o, ok := k.s.Resolver.(Owners)
		if !ok {
			return nil, 0, syscall.EACCES
		}
		if _, rootUID, err := o.Owner(k.id); err != nil || (caller.Uid != 0 && caller.Uid != rootUID) {
			return nil, 0, syscall.EACCES
		}
		return &handle{}, fuse.FOPEN_DIRECT_IO, 0
	}
	data, err := k.s.Knob(k.id, k.path)
	return openRendering(&k.Inode, data, err)
}

func (k *knobNode) Read(_ context.Context, fh fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	return readHandle(fh, dest, off)
}

// Write keeps the value: the whole of it arrives in one write at offset 0, as sysctl and
// echo write it.
func (k *knobNode) Write(ctx context.Context, _ fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	if off != 0 {
		return 0, syscall.EINVAL
	}
	caller, ok := fuse.FromContext(ctx)
	if !ok {
		return 0, syscall.EACCES
	}
	if err := k.s.SetKnob(k.id, k.path, caller.Uid, data); err != nil {
		var e syscall.Errno
		if errors.As(err, &e) {
			return 0, e
		}
		return 0, syscall.EIO
	}
	return uint32(len(data)), 0
}
