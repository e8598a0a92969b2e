// Package procfs serves procemu's emulated files over FUSE: one directory per container,
// named by its id, holding one file per emulated /proc or /sys file. The adapter is thin:
// what a file says comes from procemu's renderers.
//
//	<mountpoint>/<container id>/meminfo     (for /proc/meminfo)
//	<mountpoint>/<container id>/cpu-online  (for /sys/devices/system/cpu/online)
//
// A file is rendered when first read (from a per-container snapshot at most TTL old) and
// the kernel keeps that rendering in its page cache until the TTL expires, so warm reads
// cost no round trip: OPEN answers ENOSYS, which stops OPEN, FLUSH and RELEASE for good.
// When a rendering expires, its pages are dropped and the kernel's size is raised, so the
// next read asks again; a read's short answer brings the size down to the rendering's.
// sendfile and splice (busybox cat uses them) read only up to the kernel's size and never
// ask the server for it, which is why the size is managed this way. stat, and runc's bind
// before the container's cgroup limits are set, render nothing.
//
// The server must run in the host's pid and cgroup namespaces and mount with allow_other:
// containers' roots are not the mounter.
package procfs

import (
	"context"
	"fmt"
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

// Names maps the file names in a container's directory to the files they emulate.
var Names = map[string]string{}

var renderers = map[string]func(procemu.View) ([]byte, error){}

func init() {
	for _, f := range procemu.Files() {
		name := procemu.FileName(f.Path)
		Names[name] = f.Path
		renderers[name] = f.Render
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

func (s *Server) ttl() time.Duration {
	if s.TTL == 0 {
		return DefaultTTL
	}
	return s.TTL
}

func (s *Server) view(id string) (procemu.View, error) {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	ttl := s.ttl()
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
	// A name looked up again (its entry expired) is the same inode, with the attributes it
	// has: a new inode, or a size of 0, would make sendfile read nothing.
	if ch := c.GetChild(name); ch != nil {
		if f, ok := ch.Operations().(*fileNode); ok {
			out.SetAttrTimeout(f.attr(&out.Attr))
			return ch, 0
		}
	}
	if _, ok := renderers[name]; !ok {
		return nil, syscall.ENOENT
	}
	f := &fileNode{s: c.s, id: c.id, name: name}
	out.SetAttrTimeout(f.attr(&out.Attr))
	return c.NewInode(ctx, f, fs.StableAttr{Mode: syscall.S_IFREG}), 0
}

func (c *containerNode) Readdir(context.Context) (fs.DirStream, syscall.Errno) {
	entries := make([]fuse.DirEntry, 0, len(renderers))
	for name := range renderers {
		entries = append(entries, fuse.DirEntry{Name: name, Mode: syscall.S_IFREG})
	}
	return fs.NewListDirStream(entries), 0
}

// unknownSize is the size a file reports until a read renders it: stat and runc's bind
// must not render it (the container's cgroup limits are not set while runc binds), and
// sendfile reads only up to the size the kernel holds. A read's short answer brings the
// kernel's size down to the rendering's.
const unknownSize = 1 << 16

type fileNode struct {
	fs.Inode
	s        *Server
	id, name string

	mu    sync.Mutex
	valid bool   // cur is the rendering the kernel caches (an empty file is one too)
	cur   []byte // set by a read, cleared when it expires
	at    time.Time
}

var (
	_ fs.NodeOpener    = (*fileNode)(nil)
	_ fs.NodeFlusher   = (*fileNode)(nil)
	_ fs.NodeReader    = (*fileNode)(nil)
	_ fs.NodeGetattrer = (*fileNode)(nil)
)

// Open answers ENOSYS: the kernel then stops sending OPEN, FLUSH and RELEASE for every file,
// and keeps the page cache between opens, so a warm read costs no round trip.
func (f *fileNode) Open(context.Context, uint32) (fs.FileHandle, uint32, syscall.Errno) {
	return nil, 0, syscall.ENOSYS
}

// Flush answers ENOSYS: no FLUSH on close.
func (f *fileNode) Flush(context.Context, fs.FileHandle) syscall.Errno { return syscall.ENOSYS }

func (f *fileNode) Getattr(_ context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.SetTimeout(f.attr(&out.Attr))
	return 0
}

// attr fills the file's attributes and returns how long they hold: the size of the cached
// rendering until it expires, or unknownSize (and 0) when there is none.
func (f *fileNode) attr(out *fuse.Attr) time.Duration {
	out.Mode = syscall.S_IFREG | 0o444
	f.mu.Lock()
	valid, cur, at := f.valid, f.cur, f.at
	f.mu.Unlock()
	if !valid {
		out.Size = unknownSize
		return 0
	}
	out.Size = uint64(len(cur))
	return max(f.s.ttl()-time.Since(at), 0)
}

func (f *fileNode) Read(_ context.Context, _ fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	data, err := f.current()
	if err != nil {
		return nil, syscall.EIO
	}
	if off >= int64(len(data)) {
		return fuse.ReadResultData(nil), 0
	}
	end := min(off+int64(len(dest)), int64(len(data)))
	return fuse.ReadResultData(data[off:end]), 0
}

// current is the rendering the kernel caches, rendered if there is none. It expires after
// the TTL: the kernel drops its pages, and its size is raised to unknownSize so that
// sendfile reads the next rendering whole.
func (f *fileNode) current() ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.valid {
		return f.cur, nil
	}
	data, err := f.s.Render(f.id, f.name)
	if err != nil {
		return nil, err
	}
	f.valid, f.cur, f.at = true, data, time.Now()
	time.AfterFunc(f.s.ttl(), f.expire)
	return data, nil
}

func (f *fileNode) expire() {
	f.mu.Lock()
	f.valid, f.cur = false, nil
	f.mu.Unlock()
	_ = f.NotifyContent(0, 0)                     // drop the pages and the attributes
	_ = f.WriteCache(unknownSize-1, []byte{'\n'}) // raise the size (a read shrinks it)
}
