package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/eci-dev/eci/internal/mountns"
	"github.com/eci-dev/eci/procemu"
	"github.com/eci-dev/eci/runtime/policy"
)

// Server receives notify fds on Socket and answers their notifications.
type Server struct {
	// Socket is the unix socket runc connects to (the filters' listenerPath).
	Socket string
	// HostProc is the host's /proc (the supervisor runs in the host's pid namespace).
	HostProc string
	Log      *slog.Logger
	// Report, when set, is told about audited and refused calls: the first of each kind
	// (container, syscall, reason) in every Limit.Every, with how many were held back.
	Report  func(Event)
	Limit   *Limiter
	Metrics *Metrics
	// Sysinfo, when set, is what sysinfo(2) answers a container (its /proc emulation's
	// numbers); without it, or when it fails, the kernel answers.
	Sysinfo func(container string) (procemu.Sysinfo, error)

	epfd   int
	procFD int
	// maskSize is the kernel's cpumask size in bytes (what sched_getaffinity returns).
	maskSize int

	mu         sync.Mutex
	containers map[string]*container
	listeners  map[int32]*listener
}

// container is one container's identity and initial mounts, shared by its init and its
// exec'd processes (each has a notify fd of its own).
type container struct {
	// mu serializes the mounts performed for the container.
	mu      sync.Mutex
	meta    policy.Supervised
	mntNS   uint64
	initial Initial
	refs    int
}

type listener struct {
	fd int
	c  *container
}

// Event is an audited or refused call, for a pod Event and the log.
type Event struct {
	Container policy.Supervised
	Syscall   string
	Denied    bool
	Errno     unix.Errno
	Reason    string
	// Path is the container mount a refused mount was about (a bounded label).
	Path string
	// Held is how many calls like it were not reported since the last report.
	Held int
}

// Serve listens until ctx is done. Notify fds it holds stay open until their containers
// exit; when the process ends they close, and the containers' trapped syscalls fail with
// ENOSYS from then on (the kernel's answer with no supervisor).
func (s *Server) Serve(ctx context.Context) error {
	if s.HostProc == "" {
		s.HostProc = "/proc"
	}
	if s.Log == nil {
		s.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.Metrics == nil {
		s.Metrics = NewMetrics()
	}
	if s.Limit == nil {
		s.Limit = &Limiter{Every: 10 * time.Second}
	}
	s.maskSize = cpumaskSize()
	s.containers = map[string]*container{}
	s.listeners = map[int32]*listener{}
	var err error
	if s.procFD, err = unix.Open(s.HostProc, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
		return fmt.Errorf("opening %s: %w", s.HostProc, err)
	}
	if s.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return fmt.Errorf("epoll: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(s.Socket), 0o700); err != nil {
		return err
	}
	_ = os.Remove(s.Socket)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: s.Socket, Net: "unix"})
	if err != nil {
		return fmt.Errorf("listening on %s: %w", s.Socket, err)
	}
	if err := os.Chmod(s.Socket, 0o600); err != nil {
		ln.Close()
		return err
	}
	go s.loop()
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	s.Log.Info("supervisor listening", "socket", s.Socket)
	for {
		conn, err := ln.AcceptUnix()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			s.Log.Warn("accept", "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if err := s.register(conn); err != nil {
			s.Log.Warn("refused a notify fd", "err", err)
		}
		conn.Close()
	}
}

// register takes one container process's notify fd from runc.
func (s *Server) register(conn *net.UnixConn) error {
	raw, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) { cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) }); err != nil {
		return err
	}
	if credErr != nil {
		return fmt.Errorf("peer credentials: %w", credErr)
	}
	if cred.Uid != 0 {
		return fmt.Errorf("peer pid %d uid %d is not root: only runc, run by eci-runtime as root, may hand over notify fds", cred.Pid, cred.Uid)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	var msg []byte
	var fds []int
	buf := make([]byte, 64*1024)
	oob := make([]byte, unix.CmsgSpace(4*8))
	for {
		n, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
		msg = append(msg, buf[:n]...)
		if oobn > 0 {
			cmsgs, perr := unix.ParseSocketControlMessage(oob[:oobn])
			if perr == nil {
				for _, cm := range cmsgs {
					if got, err := unix.ParseUnixRights(&cm); err == nil {
						fds = append(fds, got...)
					}
				}
			}
		}
		if err != nil || n == 0 {
			break
		}
		if json.Valid(msg) {
			break
		}
	}
	closeAll := func(keep int) {
		for _, fd := range fds {
			if fd != keep {
				_ = unix.Close(fd)
			}
		}
	}
	var state specs.ContainerProcessState
	if err := json.Unmarshal(msg, &state); err != nil {
		closeAll(-1)
		return fmt.Errorf("container process state from pid %d: %w", cred.Pid, err)
	}
	i := slices.Index(state.Fds, specs.SeccompFdName)
	if i < 0 || i >= len(fds) {
		closeAll(-1)
		return fmt.Errorf("container %s: no %s among the %d fds received", state.State.ID, specs.SeccompFdName, len(fds))
	}
	fd := fds[i]
	closeAll(fd)
	unix.CloseOnExec(fd)
	var meta policy.Supervised
	if err := json.Unmarshal([]byte(state.Metadata), &meta); err != nil || meta.Container == "" {
		_ = unix.Close(fd)
		return fmt.Errorf("container %s: listener metadata %q is not eci's: %v", state.State.ID, state.Metadata, err)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.containers[meta.Container]
	if c == nil {
		c = &container{meta: meta}
		pid := state.Pid
		if c.mntNS, err = nsInode(filepath.Join(s.HostProc, strconv.Itoa(pid), "ns", "mnt")); err == nil {
			var mounts map[int]Mount
			if mounts, err = readMountinfo(s.HostProc, pid); err == nil {
				c.initial = NewInitial(mounts)
			}
		}
		if err != nil {
			_ = unix.Close(fd)
			return fmt.Errorf("container %s: reading its mounts: %w", meta.Container, err)
		}
		s.containers[meta.Container] = c
		s.Metrics.containers.Inc()
	}
	c.refs++
	s.listeners[int32(fd)] = &listener{fd: fd, c: c}
	if err := unix.EpollCtl(s.epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}); err != nil {
		s.dropLocked(int32(fd))
		return fmt.Errorf("container %s: epoll: %w", meta.Container, err)
	}
	s.Log.Info("supervising", "container", meta.Container, "pod", meta.Namespace+"/"+meta.Name, "pid", state.Pid, "traps", len(meta.Traps))
	return nil
}

// dropLocked forgets a notify fd whose processes have all exited.
func (s *Server) dropLocked(fd int32) {
	l := s.listeners[fd]
	if l == nil {
		return
	}
	delete(s.listeners, fd)
	_ = unix.EpollCtl(s.epfd, unix.EPOLL_CTL_DEL, int(fd), nil)
	_ = unix.Close(int(fd))
	l.c.refs--
	if l.c.refs == 0 {
		delete(s.containers, l.c.meta.Container)
		s.Metrics.containers.Dec()
		s.Log.Info("container gone", "container", l.c.meta.Container)
	}
}

// loop waits on every notify fd at once: a notification to answer, or a hang-up when the
// last process using the filter has exited (then the fd is closed, so an exited container
// costs nothing).
func (s *Server) loop() {
	events := make([]unix.EpollEvent, 64)
	var n notif
	for {
		k, err := unix.EpollWait(s.epfd, events, -1)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			s.Log.Error("epoll_wait", "err", err)
			return
		}
		for _, ev := range events[:k] {
			s.mu.Lock()
			l := s.listeners[ev.Fd]
			s.mu.Unlock()
			if l == nil {
				continue
			}
			if ev.Events&unix.EPOLLIN != 0 {
				if err := recv(l.fd, &n); err == nil {
					s.serve(l, &n)
					continue
				}
			}
			if ev.Events&(unix.EPOLLHUP|unix.EPOLLERR) != 0 {
				s.mu.Lock()
				s.dropLocked(ev.Fd)
				s.mu.Unlock()
			}
		}
	}
}

// serve answers one notification; a mount to perform is done on a goroutine of its own.
func (s *Server) serve(l *listener, n *notif) {
	start := time.Now()
	c := l.c
	call := Call{Name: name(n.Arch, n.Nr), Native: n.Arch == nativeArch(), Args: n.Args}
	if call.Name == "mount" || call.Name == "umount2" || call.Name == "pivot_root" {
		ino, err := nsInode(filepath.Join(s.HostProc, strconv.Itoa(int(n.Pid)), "ns", "mnt"))
		if err != nil {
			_ = answer(l.fd, n.ID, unix.EPERM, false, 0)
			return
		}
		call.InitialNS = ino == c.mntNS
	}
	mem := &procMem{path: filepath.Join(s.HostProc, strconv.Itoa(int(n.Pid)), "mem")}
	d := Decide(c.meta.Traps, c.meta.Mode, call, mem)
	mem.Close()
	if mem.f != nil && !idValid(l.fd, n.ID) {
		return // the caller is gone: what was read may be another process's
	}
	switch d.Verdict {
	case Perform:
		id, pid, fd := n.ID, int(n.Pid), l.fd
		go func() {
			if d.Mount == nil {
				s.finish(c, call.Name, s.emulate(c, fd, id, pid, d), start)
				return
			}
			d := s.perform(c, fd, id, pid, *d.Mount)
			s.finish(c, call.Name, d, start)
		}()
		return
	case Continue:
		_ = answer(l.fd, n.ID, 0, true, 0)
	case Deny:
		_ = answer(l.fd, n.ID, d.Errno, false, 0)
	}
	s.finish(c, call.Name, d, start)
}

// finish records a decision once the caller has its answer.
func (s *Server) finish(c *container, syscall string, d Decision, start time.Time) {
	s.Metrics.observe(c.meta.Namespace, syscall, d, time.Since(start))
	if !d.Audit {
		return
	}
	ok, held := s.Limit.Allow(c.meta.Container + "\x00" + syscall + "\x00" + d.Reason)
	if !ok {
		return
	}
	s.Log.Info("trapped syscall", "container", c.meta.Container, "pod", c.meta.Namespace+"/"+c.meta.Name, "syscall", syscall, "verdict", d.Verdict.String(), "errno", unix.ErrnoName(d.Errno), "reason", d.Reason, "heldBack", held)
	if s.Report != nil {
		s.Report(Event{Container: c.meta, Syscall: syscall, Denied: d.Verdict == Deny, Errno: d.Errno, Reason: d.Reason, Path: d.path, Held: held})
	}
}

// perform vets a mount or unmount against what the supervisor resolves itself, then does
// it in the caller's mount namespace, and answers the caller.
func (s *Server) perform(c *container, fd int, id uint64, pid int, op MountOp) Decision {
	c.mu.Lock()
	d := s.vetAndDo(c, fd, id, pid, op)
	c.mu.Unlock()
	switch d.Verdict {
	case Continue:
		_ = answer(fd, id, 0, true, 0)
	case Deny:
		_ = answer(fd, id, d.Errno, false, 0)
	default:
		_ = answer(fd, id, 0, false, 0)
	}
	return d
}

func (s *Server) vetAndDo(c *container, fd int, id uint64, pid int, op MountOp) Decision {
	fail := func(errno unix.Errno, why string) Decision {
		return Decision{Verdict: Deny, Errno: errno, Reason: why}
	}
	cl, err := openCaller(s.HostProc, pid)
	if err != nil {
		return fail(unix.EPERM, err.Error())
	}
	defer cl.close()
	if !idValid(fd, id) {
		return fail(unix.EPERM, "caller gone")
	}
	var st unix.Stat_t
	if err := unix.Fstat(cl.mnt, &st); err != nil {
		return fail(unix.EPERM, err.Error())
	}
	f := Facts{Initial: st.Ino == c.mntNS}
	if op.Unmount {
		return s.unmount(c, cl, op, f) // it reads the mount table once it has resolved the target
	}
	mounts, err := readMountinfo(s.HostProc, pid)
	if err != nil {
		return fail(unix.EPERM, err.Error())
	}
	factsOf := func(path string, nofollow bool) (int, Mount, bool, error) {
		pfd, err := cl.resolve(path, nofollow)
		if err != nil {
			return -1, Mount{}, false, err
		}
		mid, isRoot, err := mountOf(pfd)
		if err != nil {
			_ = unix.Close(pfd)
			return -1, Mount{}, false, err
		}
		m, ok := mounts[mid]
		if !ok {
			// Mounted after the table was read (by a nested namespace): read it again.
			if again, err := readMountinfo(s.HostProc, pid); err == nil {
				mounts = again
				m, ok = mounts[mid]
			}
		}
		if !ok {
			_ = unix.Close(pfd)
			return -1, Mount{}, false, unix.EINVAL
		}
		return pfd, m, isRoot, nil
	}
	tfd, tm, tRoot, err := factsOf(op.Target, false)
	if err != nil {
		return fail(errnoOf(err), "target "+op.Target+": "+err.Error())
	}
	defer unix.Close(tfd)
	f.Target, f.TargetIsRoot = tm, tRoot
	sfd := -1
	if k := kindOf(op.Flags); k == kindBind || k == kindMove {
		var sm Mount
		sfd, sm, f.SourceIsRoot, err = factsOf(op.Source, false)
		if err != nil {
			return fail(errnoOf(err), "source "+op.Source+": "+err.Error())
		}
		defer unix.Close(sfd)
		f.Source = &sm
	}
	if errno, why, where := Vet(c.initial, op, f); errno != 0 {
		d := refuse(c.meta.Mode, errno, why)
		d.path = where
		return d
	}
	data := op.Data
	if (kindOf(op.Flags) == kindNew || kindOf(op.Flags) == kindRemount) && (op.FSType == "tmpfs" || f.Target.FSType == "tmpfs") {
		uids, err1 := readIDMap(filepath.Join(s.HostProc, strconv.Itoa(pid), "uid_map"))
		gids, err2 := readIDMap(filepath.Join(s.HostProc, strconv.Itoa(pid), "gid_map"))
		if err := errors.Join(err1, err2); err != nil {
			return fail(unix.EPERM, err.Error())
		}
		if data, err = ownerOptions(op.Data, uids, gids, kindOf(op.Flags) == kindNew); err != nil {
			return fail(unix.EINVAL, err.Error())
		}
	}
	err = mountns.Do(cl.mnt, cl.root, s.procFD, func() error {
		switch kindOf(op.Flags) {
		case kindRemount:
			return unix.Mount("", mountns.FDPath(tfd), "", uintptr(op.Flags|lockedFor(c.initial, f.Target)&^unix.MS_RDONLY), data)
		case kindBind:
			if op.Flags&unix.MS_REC != 0 {
				// Where the source is, as the caller names it (the thread's root is the
				// caller's): a recursive bind must not copy a proc or sysfs mount,
				// whose copy could then be unmounted to show what eci masks.
				src, err := os.Readlink(mountns.FDPath(sfd))
				if err != nil {
					return err
				}
				for _, m := range mounts {
					if (m.FSType == "proc" || m.FSType == "sysfs") && under(m.MountPoint, src) {
						return &refusal{unix.EPERM, fmt.Sprintf("a recursive bind of %s would copy %s (%s) without eci's masks", src, m.MountPoint, m.FSType), m.MountPoint}
					}
				}
			}
			return unix.Mount(mountns.FDPath(sfd), mountns.FDPath(tfd), "", uintptr(op.Flags&(unix.MS_BIND|unix.MS_REC)), "")
		case kindPropagation:
			return unix.Mount("", mountns.FDPath(tfd), "", uintptr(op.Flags&(propagationFlags|unix.MS_REC)), "")
		case kindMove:
			return unix.Mount(mountns.FDPath(sfd), mountns.FDPath(tfd), "", unix.MS_MOVE, "")
		}
		src := op.Source
		if src == "" {
			src = op.FSType
		}
		return unix.Mount(src, mountns.FDPath(tfd), op.FSType, uintptr(op.Flags|unix.MS_NODEV), data)
	})
	var r *refusal
	if errors.As(err, &r) {
		d := refuse(c.meta.Mode, r.errno, r.why)
		d.path = r.where
		return d
	}
	if err != nil {
		return Decision{Verdict: Deny, Errno: errnoOf(err), Reason: err.Error()}
	}
	return Decision{Verdict: Perform}
}

// refusal is a Vet-like refusal found while performing (it needed the caller's view).
type refusal struct {
	errno      unix.Errno
	why, where string
}

func (r *refusal) Error() string { return r.why }

// unmount vets and performs an umount2. The mount is named from its directory (an fd on
// the mount would make it busy): while it stays mounted its name there cannot be renamed
// or replaced, and mounts in this namespace only change through the supervisor, one at a
// time per container, so the name reaches the mount that was vetted.
func (s *Server) unmount(c *container, cl *caller, op MountOp, f Facts) Decision {
	nofollow := op.UmountFlags&unix.UMOUNT_NOFOLLOW != 0
	dfd, base, err := cl.resolveParent(op.Target, nofollow)
	if err != nil {
		return Decision{Verdict: Deny, Errno: errnoOf(err), Reason: "target " + op.Target + ": " + err.Error()}
	}
	defer unix.Close(dfd)
	tfd, err := unix.Openat(dfd, base, unix.O_PATH|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return Decision{Verdict: Deny, Errno: errnoOf(err), Reason: "target " + op.Target + ": " + err.Error()}
	}
	mid, isRoot, err := mountOf(tfd)
	unix.Close(tfd)
	if err != nil {
		return Decision{Verdict: Deny, Errno: errnoOf(err), Reason: err.Error()}
	}
	m, ok := Mount{}, false
	if mounts, err := readMountinfo(s.HostProc, cl.pid); err == nil {
		m, ok = mounts[mid]
	}
	if !ok {
		return Decision{Verdict: Deny, Errno: unix.EINVAL, Reason: "target " + op.Target + ": mount not found"}
	}
	f.Target, f.TargetIsRoot = m, isRoot
	if errno, why, where := Vet(c.initial, op, f); errno != 0 {
		d := refuse(c.meta.Mode, errno, why)
		d.path = where
		return d
	}
	err = mountns.Do(cl.mnt, cl.root, dfd, func() error {
		return unix.Unmount(base, op.UmountFlags|unix.UMOUNT_NOFOLLOW)
	})
	if err != nil {
		return Decision{Verdict: Deny, Errno: errnoOf(err), Reason: err.Error()}
	}
	return Decision{Verdict: Perform}
}

// emulate answers sysinfo(2) or sched_getaffinity(2) with the container's own numbers,
// written into the caller's buffer; when they cannot be had, the kernel answers (the
// host's numbers, as without emulation).
func (s *Server) emulate(c *container, fd int, id uint64, pid int, d Decision) Decision {
	cont := func() Decision {
		_ = answer(fd, id, 0, true, 0)
		return Decision{Verdict: Continue}
	}
	if s.Sysinfo == nil {
		return cont()
	}
	si, err := s.Sysinfo(c.meta.Container)
	if err != nil {
		s.Log.Debug("emulated syscall: the kernel answers", "syscall", d.Emulate, "container", c.meta.Container, "err", err)
		return cont()
	}
	var buf []byte
	switch d.Emulate {
	case "sysinfo":
		info := unix.Sysinfo_t{
			Uptime: si.Uptime, Loads: si.Loads,
			Totalram: si.TotalRAM, Freeram: si.FreeRAM, Sharedram: si.SharedRAM, Bufferram: si.BufferRAM,
			Totalswap: si.TotalSwap, Freeswap: si.FreeSwap, Procs: si.Procs, Unit: 1,
		}
		buf = slices.Clone(unsafe.Slice((*byte)(unsafe.Pointer(&info)), unsafe.Sizeof(info)))
	case "sched_getaffinity":
		var set unix.CPUSet
		if err := unix.SchedGetaffinity(pid, &set); err != nil {
			return cont()
		}
		buf = affinityMask(set, si.CPUs, s.maskSize)
		if buf == nil || uint64(len(buf)) > d.Len || d.Len%8 != 0 {
			return cont() // the kernel's EINVAL for a buffer too small or unaligned
		}
	default:
		return cont()
	}
	mem, err := os.OpenFile(filepath.Join(s.HostProc, strconv.Itoa(pid), "mem"), os.O_WRONLY, 0)
	if err != nil {
		return cont()
	}
	defer mem.Close()
	if !idValid(fd, id) {
		return Decision{Verdict: Continue} // the caller is gone
	}
	if d.At >= 1<<63 {
		_ = answer(fd, id, unix.EFAULT, false, 0)
		return Decision{Verdict: Deny, Errno: unix.EFAULT}
	}
	if _, err := mem.WriteAt(buf, int64(d.At)); err != nil {
		_ = answer(fd, id, unix.EFAULT, false, 0)
		return Decision{Verdict: Deny, Errno: unix.EFAULT}
	}
	ret := int64(0)
	if d.Emulate == "sched_getaffinity" {
		ret = int64(len(buf)) // the kernel returns the mask's size
	}
	_ = answer(fd, id, 0, false, ret)
	return Decision{Verdict: Perform}
}

// affinityMask keeps the first n CPUs of set, as a kernel cpumask of size bytes (0 bytes:
// unknown, nil).
func affinityMask(set unix.CPUSet, n, size int) []byte {
	if size <= 0 {
		return nil
	}
	out := make([]byte, size)
	kept := 0
	for cpu := 0; cpu < size*8 && kept < n; cpu++ {
		if set.IsSet(cpu) {
			out[cpu/8] |= 1 << (cpu % 8)
			kept++
		}
	}
	return out
}

// cpumaskSize is the size in bytes of the kernel's cpumask: nr_cpu_ids bits (from
// /sys/devices/system/cpu/possible) in whole longs, which sched_getaffinity returns.
func cpumaskSize() int {
	data, err := os.ReadFile("/sys/devices/system/cpu/possible")
	if err != nil {
		return 0
	}
	cpus, err := procemu.ParseCPUList(strings.TrimSpace(string(data)))
	if err != nil || len(cpus) == 0 {
		return 0
	}
	bits := slices.Max(cpus) + 1
	return (bits + 63) / 64 * 8
}
