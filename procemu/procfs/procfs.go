// Package procfs serves procemu's emulated files over FUSE: one directory per container,
// named by its id, holding one file per emulated /proc or /sys file. The adapter is thin:
// what a file says comes from procemu's renderers.
//
//	<mountpoint>/<container id>/meminfo     (for /proc/meminfo)
//	<mountpoint>/<container id>/cpu-online  (for /sys/devices/system/cpu/online)
//
// A file is read through the kernel's page cache, which holds a rendering (from a
// per-container snapshot) for at most TTL: a warm open, read and close costs no round trip
// to the server.
//   - OPEN and FLUSH answer ENOSYS, which stops OPEN, FLUSH and RELEASE for the whole mount
//     and keeps a file's pages between opens.
//   - The mount has default_permissions, so the kernel checks access itself, and at an open
//     asks for the file's attributes once the time it was given for them has passed.
//   - That getattr (or a lookup) renders the file anew when its rendering is TTL old, and
//     answers with its size, its version as the mtime (a new rendering gets a new one, so
//     the kernel drops the old pages) and the time left until it expires.
//   - A read is served from the rendering the kernel was last told the size of. sendfile
//     and splice (busybox cat) read only up to that size, never asking for it.
//
// runc's own lookups and stats, before it sets the container's cgroup limits, render
// nothing (it names its init stages "runc:[N:...]"). /proc/sys knobs are looked up at every
// open and are owned by the container's root (see knobNode).
//
// The server must run in the host's pid and cgroup namespaces and mount with allow_other:
// containers' roots are not the mounter.
package procfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
	// Requests counts the requests the kernel sent the server (the cache keeps warm reads
	// in the kernel: they send none).
	Requests atomic.Int64

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
	data, _, err := s.render(id, name)
	return data, err
}

// render renders file name of container id from its snapshot, and says when the snapshot
// was taken.
func (s *Server) render(id, name string) ([]byte, time.Time, error) {
	r, ok := renderers[name]
	if !ok {
		return nil, time.Time{}, fmt.Errorf("no emulated file %q", name)
	}
	v, at, err := s.view(id)
	if err != nil {
		return nil, time.Time{}, err
	}
	data, err := r(v)
	return data, at, err
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Server) ttl() time.Duration {
	if s.TTL == 0 {
		return DefaultTTL
	}
	return s.TTL
}

func (s *Server) root() string {
	if s.Root == "" {
		return "/"
	}
	return s.Root
}

// setupCaller reports whether the caller is runc setting the container up (its init
// stages name themselves "runc:[N:...]"): it stats and binds the files before it sets the
// container's cgroup limits, so what it would see must not be rendered and kept.
func (s *Server) setupCaller(ctx context.Context) bool {
	c, ok := fuse.FromContext(ctx)
	if !ok || c.Pid == 0 {
		return false
	}
	// The caller's pid is in the server's pid namespace, so its own /proc, not Root's.
	comm, err := os.ReadFile("/proc/" + strconv.FormatUint(uint64(c.Pid), 10) + "/comm")
	return err == nil && bytes.HasPrefix(comm, []byte("runc:["))
}

// view is container id's snapshot, at most TTL old, and when it was taken.
func (s *Server) view(id string) (procemu.View, time.Time, error) {
	ttl := s.ttl()
	t := s.now()
	s.mu.Lock()
	if s.snapshots == nil {
		s.snapshots = map[string]snapshot{}
	}
	snap, ok := s.snapshots[id]
	s.mu.Unlock()
	if ok && t.Sub(snap.at) < ttl && t.Sub(snap.at) >= 0 {
		return snap.view, snap.at, nil
	}
	cg, err := s.Resolver.Cgroups(id)
	if err != nil {
		return procemu.View{}, time.Time{}, err
	}
	v, err := procemu.Gather(s.root(), cg, t)
	if err != nil {
		return procemu.View{}, time.Time{}, fmt.Errorf("container %s: %w", id, err)
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
	return v, t, nil
}

// Mount mounts the server at dir (an existing directory) and serves it until unmounted.
// dir may be /dev/fd/N: the server then serves /dev/fuse fd N, which the caller mounted.
func (s *Server) Mount(dir string) (*fuse.Server, error) {
	entry, attr := time.Second, time.Duration(0)
	return fs.Mount(dir, &rootNode{s: s}, &fs.Options{
		EntryTimeout: &entry,
		// Each file says how long its attributes hold (see fileNode.Getattr).
		AttrTimeout: &attr,
		MountOptions: fuse.MountOptions{
			AllowOther: true,
			Options:    []string{"default_permissions"},
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

var (
	_ fs.NodeLookuper  = (*rootNode)(nil)
	_ fs.NodeGetattrer = (*rootNode)(nil)
)

// dirAttrTimeout is how long the kernel keeps a directory's attributes: they never change,
// and with default_permissions every path walk checks them.
const dirAttrTimeout = time.Hour

func dirAttr(a *fuse.Attr) {
	a.Mode = syscall.S_IFDIR | 0o555
}

func (r *rootNode) Getattr(_ context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	r.s.Requests.Add(1)
	dirAttr(&out.Attr)
	out.SetTimeout(dirAttrTimeout)
	return 0
}

func (r *rootNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	r.s.Requests.Add(1)
	if !validID(name) {
		return nil, syscall.ENOENT
	}
	if _, err := r.s.Resolver.Cgroups(name); err != nil {
		return nil, syscall.ENOENT
	}
	dirAttr(&out.Attr)
	out.SetAttrTimeout(dirAttrTimeout)
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
	_ fs.NodeGetattrer = (*containerNode)(nil)
)

func (c *containerNode) Getattr(_ context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	c.s.Requests.Add(1)
	dirAttr(&out.Attr)
	out.SetTimeout(dirAttrTimeout)
	return 0
}

// Lookup answers with the file's current attributes, and with the inode the name already
// has: a reply for the same inode with other attributes (a size of 0) would change what
// the kernel holds for it under a reader that has just been told its size.
func (c *containerNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	c.s.Requests.Add(1)
	ch := c.GetChild(name)
	if ch == nil {
		var ops fs.InodeEmbedder
		if path, ok := knobNames[name]; ok {
			ops = &knobNode{s: c.s, id: c.id, path: path}
		} else if _, ok := renderers[name]; ok {
			ops = &fileNode{s: c.s, id: c.id, name: name}
		} else {
			return nil, syscall.ENOENT
		}
		ch = c.NewInode(ctx, ops, fs.StableAttr{Mode: syscall.S_IFREG})
	}
	switch n := ch.Operations().(type) {
	case *fileNode:
		d, errno := n.attr(ctx, &out.Attr)
		if errno != 0 {
			return nil, errno
		}
		out.SetAttrTimeout(d)
	case *knobNode:
		if errno := n.attr(&out.Attr); errno != 0 {
			return nil, errno
		}
	}
	return ch, 0
}

func (c *containerNode) Readdir(context.Context) (fs.DirStream, syscall.Errno) {
	c.s.Requests.Add(1)
	entries := make([]fuse.DirEntry, 0, len(Names)+len(knobNames))
	for name := range Names {
		entries = append(entries, fuse.DirEntry{Name: name, Mode: syscall.S_IFREG})
	}
	for name := range knobNames {
		entries = append(entries, fuse.DirEntry{Name: name, Mode: syscall.S_IFREG})
	}
	return fs.NewListDirStream(entries), 0
}

// cached is what the kernel holds of one file: the rendering its page cache is filled
// from, the version the kernel sees as the file's mtime (a new rendering has a new one, so
// the kernel drops the old pages), and until when the kernel may keep it without asking.
type cached struct {
	mu      sync.Mutex
	data    []byte
	ver     uint64
	expires time.Time
}

// set makes data the rendering the kernel reads, valid until expires.
func (c *cached) set(data []byte, expires time.Time) {
	if c.ver == 0 || !bytes.Equal(c.data, data) {
		c.ver++
	}
	c.data, c.expires = data, expires
}

// attr fills a with the rendering's size and version, and returns how long the kernel
// may keep them.
func (c *cached) attr(a *fuse.Attr, now time.Time) time.Duration {
	a.Size = uint64(len(c.data))
	a.Mtime = c.ver
	a.Ctime = c.ver
	return max(c.expires.Sub(now), 0)
}

// read serves a read of the rendering the kernel was told about.
func (c *cached) read(dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	c.mu.Lock()
	data := c.data
	c.mu.Unlock()
	if off >= int64(len(data)) {
		return fuse.ReadResultData(nil), 0
	}
	end := min(off+int64(len(dest)), int64(len(data)))
	return fuse.ReadResultData(data[off:end]), 0
}

type fileNode struct {
	fs.Inode
	s        *Server
	id, name string
	c        cached
}

var (
	_ fs.NodeOpener    = (*fileNode)(nil)
	_ fs.NodeFlusher   = (*fileNode)(nil)
	_ fs.NodeReader    = (*fileNode)(nil)
	_ fs.NodeGetattrer = (*fileNode)(nil)
)

// Open answers ENOSYS: the kernel then stops sending OPEN, FLUSH and RELEASE for every file
// of the mount and keeps their page cache between opens. Access is the kernel's to check
// (default_permissions).
func (f *fileNode) Open(context.Context, uint32) (fs.FileHandle, uint32, syscall.Errno) {
	return nil, 0, syscall.ENOSYS
}

// Flush answers ENOSYS: no FLUSH at close, for every file of the mount.
func (f *fileNode) Flush(context.Context, fs.FileHandle) syscall.Errno { return syscall.ENOSYS }

func (f *fileNode) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	f.s.Requests.Add(1)
	d, errno := f.attr(ctx, &out.Attr)
	out.SetTimeout(d)
	return errno
}

// attr tells the kernel the current rendering's size and version, rendering the file anew
// once the last one expired, and returns how long they hold. The kernel asks at open
// (default_permissions) once that time has passed, so a warm open and read never reach
// the server. runc's own lookup, stat and bind, before it sets the container's cgroup
// limits, render nothing.
func (f *fileNode) attr(ctx context.Context, a *fuse.Attr) (time.Duration, syscall.Errno) {
	a.Mode = syscall.S_IFREG | 0o444
	now := f.s.now()
	f.c.mu.Lock()
	defer f.c.mu.Unlock()
	if (f.c.ver == 0 || !now.Before(f.c.expires)) && !f.s.setupCaller(ctx) {
		data, at, err := f.s.render(f.id, f.name)
		if err != nil {
			return 0, syscall.EIO
		}
		f.c.set(data, at.Add(f.s.ttl()))
	}
	return f.c.attr(a, now), 0
}

// Read serves the rendering the kernel holds the size of.
func (f *fileNode) Read(_ context.Context, _ fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	f.s.Requests.Add(1)
	return f.c.read(dest, off)
}

// Knob returns what a container reads in a /proc/sys knob: its pod's value if the pod
// wrote one, else the host's.
func (s *Server) Knob(id, path string) ([]byte, error) {
	v, _, err := s.knob(id, path)
	return v, err
}

// knob is Knob, with the host uid of the container's root (0 without Owners), from one
// lookup of its owner.
func (s *Server) knob(id, path string) ([]byte, uint32, error) {
	pod, rootUID := id, uint32(0)
	if o, ok := s.Resolver.(Owners); ok {
		p, uid, err := o.Owner(id)
		if err != nil {
			return nil, 0, err
		}
		pod, rootUID = p, uid
	}
	s.mu.Lock()
	v, ok := s.knobs[pod][path]
	s.mu.Unlock()
	if ok {
		return v, rootUID, nil
	}
	v, err := os.ReadFile(filepath.Join(s.root(), path))
	return v, rootUID, err
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

// knobNode is a writable /proc/sys knob. It is owned by the container's root (mode 0644),
// so the kernel lets only that user and the host's root write it. Its value is looked up
// at every open (its attributes never hold), and a write is checked and kept for the pod,
// never passed to the host.
type knobNode struct {
	fs.Inode
	s        *Server
	id, path string
	c        cached
}

var (
	_ fs.NodeOpener    = (*knobNode)(nil)
	_ fs.NodeFlusher   = (*knobNode)(nil)
	_ fs.NodeReader    = (*knobNode)(nil)
	_ fs.NodeWriter    = (*knobNode)(nil)
	_ fs.NodeGetattrer = (*knobNode)(nil)
	_ fs.NodeSetattrer = (*knobNode)(nil)
)

// Open answers ENOSYS, as fileNode.Open.
func (k *knobNode) Open(context.Context, uint32) (fs.FileHandle, uint32, syscall.Errno) {
	return nil, 0, syscall.ENOSYS
}

// Flush answers ENOSYS, as fileNode.Flush.
func (k *knobNode) Flush(context.Context, fs.FileHandle) syscall.Errno { return syscall.ENOSYS }

func (k *knobNode) Getattr(_ context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	k.s.Requests.Add(1)
	return k.attr(&out.Attr)
}

// attr looks the value up and fills a with its size, version and owner; they never hold.
func (k *knobNode) attr(a *fuse.Attr) syscall.Errno {
	a.Mode = syscall.S_IFREG | 0o644
	v, rootUID, err := k.s.knob(k.id, k.path)
	if err != nil {
		return syscall.EIO
	}
	a.Uid = rootUID
	now := k.s.now()
	k.c.mu.Lock()
	defer k.c.mu.Unlock()
	k.c.set(v, now)
	k.c.attr(a, now)
	return 0
}

// Setattr takes the truncation an open for writing asks for: the kernel is told the size
// it asked for (0), so the write that follows is the whole value it holds; the value
// itself is replaced by that write.
func (k *knobNode) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if errno := k.Getattr(ctx, fh, out); errno != 0 {
		return errno
	}
	if size, ok := in.GetSize(); ok {
		out.Size = size
	}
	return 0
}

func (k *knobNode) Read(_ context.Context, _ fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	k.s.Requests.Add(1)
	return k.c.read(dest, off)
}

// Write keeps the value: the whole of it arrives in one write at offset 0, as sysctl and
// echo write it. The kernel already checked the writer may (default_permissions); the
// server checks again.
func (k *knobNode) Write(ctx context.Context, _ fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	k.s.Requests.Add(1)
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
	// The kept value is what a read of the pages the write left comes back for, and it is
	// a new version, so the next open (which asks: knob attributes never hold) drops them.
	v, err := k.s.Knob(k.id, k.path)
	k.c.mu.Lock()
	if err == nil {
		k.c.data = v
	}
	k.c.ver++
	k.c.mu.Unlock()
	return uint32(len(data)), 0
}
