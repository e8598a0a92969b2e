//go:build linux

package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/eci-dev/eci/internal/testbundle"
	"github.com/eci-dev/eci/procemu"
	"github.com/eci-dev/eci/runtime/policy"
)

// The cost of a trapped syscall answered CONTINUE by eci's supervisor (the real
// `eci-node supervisor` process, over its real socket protocol), against a minimal
// listener that does nothing but a blocking NOTIF_RECV and NOTIF_SEND CONTINUE, and
// against the same syscall untrapped; all in the same run. The caller is a child process
// that installs the filter itself (SECCOMP_FILTER_FLAG_NEW_LISTENER) and hands the fd over
// as runc does.
//
//	sudo go test -run '^$' -bench Supervisor -benchtime 20000x -v ./bench/

const envSeccompChild = "ECI_BENCH_SECCOMP_CHILD"

func init() {
	if v := os.Getenv(envSeccompChild); v != "" {
		os.Exit(seccompChild(v))
	}
}

// personalityQuery is personality(0xffffffff): it only returns the current persona.
const personalityQuery = 0xffffffff

// seccompChild is "<socket or - for none>:<n>": trap personality(2) (or not, with "-"),
// hand the fd to the socket, call it n times, print ns per call.
func seccompChild(arg string) int {
	sock, nStr, _ := strings.Cut(arg, ":")
	n, _ := strconv.Atoi(nStr)
	runtime.LockOSThread() // the filter is on this thread only
	if sock != "-" {
		fd, err := installNotifyFilter(unix.SYS_PERSONALITY)
		if err != nil {
			fmt.Fprintln(os.Stderr, "seccomp:", err)
			return 1
		}
		if err := handOver(sock, fd); err != nil {
			fmt.Fprintln(os.Stderr, "hand over:", err)
			return 1
		}
	}
	for range n / 10 {
		unix.RawSyscall(unix.SYS_PERSONALITY, personalityQuery, 0, 0)
	}
	start := time.Now()
	for range n {
		if _, _, e := unix.RawSyscall(unix.SYS_PERSONALITY, personalityQuery, 0, 0); e != 0 {
			fmt.Fprintln(os.Stderr, "personality:", e)
			return 1
		}
	}
	fmt.Printf("%.1f\n", float64(time.Since(start).Nanoseconds())/float64(n))
	return 0
}

// installNotifyFilter loads a filter that sends nr to a listener and allows the rest.
func installNotifyFilter(nr int) (int, error) {
	const (
		offNr   = 0
		offArch = 4
		// SECCOMP_RET_USER_NOTIF
		retNotify = 0x7fc00000
	)
	arch := uint32(0xc000003e) // AUDIT_ARCH_X86_64
	if runtime.GOARCH == "arm64" {
		arch = 0xc00000b7
	}
	prog := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: offArch},
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 1, Jf: 0, K: arch},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW},
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: offNr},
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 0, Jf: 1, K: uint32(nr)},
		{Code: unix.BPF_RET | unix.BPF_K, K: retNotify},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW},
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	fd, _, e := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_NEW_LISTENER, uintptr(unsafe.Pointer(&fprog)))
	if e != 0 {
		return -1, e
	}
	return int(fd), nil
}

// handOver sends the notify fd as runc does: the container process state, with the fd.
func handOver(sock string, fd int) error {
	meta, _ := json.Marshal(policy.Supervised{Container: "bench-" + strconv.Itoa(os.Getpid()), Policy: "bench", Mode: policy.Enforce, Traps: map[string]string{"personality": policy.ActionAllow}})
	state, _ := json.Marshal(specs.ContainerProcessState{
		Version: specs.Version, Fds: []string{specs.SeccompFdName}, Pid: os.Getpid(), Metadata: string(meta),
		State: specs.State{Version: specs.Version, ID: "bench", Status: specs.StateCreating, Pid: os.Getpid()},
	})
	c, err := net.Dial("unix", sock)
	if err != nil {
		return err
	}
	defer c.Close()
	_, _, err = c.(*net.UnixConn).WriteMsgUnix(state, unix.UnixRights(fd), nil)
	unix.Close(fd)
	return err
}

// rawListener is the floor: receive one fd, then NOTIF_RECV / NOTIF_SEND CONTINUE until
// the fd's task is gone.
func rawListener(b *testing.B, sock string) {
	ln, err := net.Listen("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	go func() {
		defer ln.Close()
		c, err := ln.Accept()
		if err != nil {
			return
		}
		buf, oob := make([]byte, 64*1024), make([]byte, unix.CmsgSpace(4))
		_, oobn, _, _, err := c.(*net.UnixConn).ReadMsgUnix(buf, oob)
		c.Close()
		if err != nil {
			return
		}
		cmsgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
		fds, _ := unix.ParseUnixRights(&cmsgs[0])
		fd := fds[0]
		defer unix.Close(fd)
		runtime.LockOSThread()
		type notif struct {
			ID         uint64
			Pid, Flags uint32
			Nr         int32
			Arch       uint32
			IP         uint64
			Args       [6]uint64
		}
		type resp struct {
			ID    uint64
			Val   int64
			Error int32
			Flags uint32
		}
		for {
			var n notif
			if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SECCOMP_IOCTL_NOTIF_RECV, uintptr(unsafe.Pointer(&n))); e != 0 {
				if e == unix.EINTR {
					continue
				}
				if e == unix.ENOENT {
					// The caller was interrupted (a signal) before the receive, or every
					// task using the filter is gone: then the fd has hung up.
					pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
					if k, _ := unix.Poll(pfd, 0); k > 0 && pfd[0].Revents&unix.POLLHUP != 0 {
						return
					}
					continue
				}
				return
			}
			r := resp{ID: n.ID, Flags: unix.SECCOMP_USER_NOTIF_FLAG_CONTINUE}
			unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SECCOMP_IOCTL_NOTIF_SEND, uintptr(unsafe.Pointer(&r)))
		}
	}()
}

// startSupervisor runs bin/eci-node's supervisor with its socket in dir.
func startSupervisor(b *testing.B, dir string) string {
	bin := filepath.Join(binDir(b), "eci-node")
	cfg := filepath.Join(dir, "eci.json")
	runDir := filepath.Join(dir, "run")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`{"stateDir": %q, "runDir": %q}`, filepath.Join(dir, "state"), runDir)), 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.MkdirAll(runDir, 0o700); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, "supervisor", "--host-root", "/", "--config", cfg)
	cmd.Stderr = nil
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() })
	sock := policy.SupervisorSocket(runDir)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return sock
		}
		if time.Now().After(deadline) {
			b.Fatal("the supervisor did not listen")
		}
	}
}

// callCost runs the seccomp child against sock ("-": no filter) and returns ns per call.
func callCost(b *testing.B, sock string, n int) float64 {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envSeccompChild+"="+sock+":"+strconv.Itoa(n))
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		b.Fatalf("seccomp child: %v: %s", err, errb.String())
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(out.String()), 64)
	if err != nil {
		b.Fatalf("seccomp child printed %q", out.String())
	}
	return v
}

func BenchmarkSupervisorContinue(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root (seccomp user notification, the supervisor)")
	}
	dir := b.TempDir()
	eciSock := startSupervisor(b, dir)
	n := max(b.N, 2000)
	// Interleaved rounds, so a slow moment of the machine hits every subject alike.
	const rounds = 5
	var raw, eci, none []float64
	for i := range rounds {
		rawSock := filepath.Join(dir, "raw-"+strconv.Itoa(i)+".sock")
		rawListener(b, rawSock)
		raw = append(raw, callCost(b, rawSock, n))
		eci = append(eci, callCost(b, eciSock, n))
		none = append(none, callCost(b, "-", n))
	}
	m := medianOf
	b.ReportMetric(m(none), "untrapped-ns/call")
	b.ReportMetric(m(raw), "raw-listener-ns/call")
	b.ReportMetric(m(eci), "eci-ns/call")
	b.ReportMetric(m(eci)/m(raw), "eci/raw")
	b.Logf("personality(2), %d calls x %d rounds, medians: untrapped %.0f ns, raw-ioctl listener %.0f ns, eci supervisor %.0f ns: eci/raw %.2f (goal <= 1.2)",
		n, rounds, m(none), m(raw), m(eci), m(eci)/m(raw))
}

// medianOf is the middle of an odd number of samples.
func medianOf(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// probeEnv is an eci run dir and the two runtimes, with the probe built.
type probeEnv struct {
	dir, probe string
	eci, runc  testbundle.Runtime
	seq        int
}

func newProbeEnv(b *testing.B) *probeEnv {
	bin := binDir(b)
	if err := testbundle.BecomeSubreaper(); err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	if err := testbundle.MakeTraversable(dir); err != nil {
		b.Fatal(err)
	}
	probe := filepath.Join(dir, "probe")
	build := exec.Command("go", "build", "-o", probe, "github.com/eci-dev/eci/bench/probe")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("building the probe: %v\n%s", err, out)
	}
	cfg := filepath.Join(dir, "eci.json")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`{"stateDir": %q, "runDir": %q}`, filepath.Join(dir, "state"), filepath.Join(dir, "run"))), 0o644); err != nil {
		b.Fatal(err)
	}
	return &probeEnv{
		dir: dir, probe: probe,
		eci:  testbundle.Runtime{Binary: filepath.Join(bin, "eci-runtime"), Root: filepath.Join(dir, "eci-root"), Env: []string{"ECI_CONFIG=" + cfg}},
		runc: testbundle.Runtime{Binary: filepath.Join(bin, "runc"), Root: filepath.Join(dir, "runc-root")},
	}
}

// run runs the probe in a container and returns its output lines.
func (p *probeEnv) run(b *testing.B, rt testbundle.Runtime, name string, spec *specs.Spec) []string {
	p.seq++
	id := fmt.Sprintf("%s-%d", name, p.seq)
	bundle, err := testbundle.New(filepath.Join(p.dir, id), spec, map[string]string{"/bin/probe": p.probe})
	if err != nil {
		b.Fatal(err)
	}
	out := filepath.Join(bundle.Dir, "out")
	f, _ := os.Create(out)
	pid, err := rt.Create(id, bundle, f)
	f.Close()
	if err != nil {
		b.Fatalf("%s: %v", id, err)
	}
	if err := rt.Start(id); err != nil {
		b.Fatal(err)
	}
	code, err := testbundle.Wait(pid, time.Minute)
	_ = rt.Delete(id)
	data, _ := os.ReadFile(out)
	if err != nil || code != 0 {
		b.Fatalf("%s: exit %d %v: %s", id, code, err, data)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if !strings.HasPrefix(l, "eci:") { // eci-runtime's warnings share the output here
			lines = append(lines, strings.TrimSpace(l))
		}
	}
	return lines
}

// nsPerCall is the probe's first line.
func nsPerCall(b *testing.B, lines []string) float64 {
	v, err := strconv.ParseFloat(lines[0], 64)
	if err != nil {
		b.Fatalf("the probe printed %q", lines)
	}
	return v
}

// An untrapped syscall (getppid) inside a privileged container under eci (whose one
// filter carries the policy's rules) and under plain runc (no filter at all for a
// privileged container), and with a RuntimeDefault-style allowlist profile under both.
func BenchmarkUntrappedSyscall(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	p := newProbeEnv(b)
	n := max(b.N*100, 1000000)
	results := map[string][]float64{}
	for _, flavour := range []string{"privileged", "profile"} {
		for range 3 {
			for _, rt := range []struct {
				name string
				rt   testbundle.Runtime
			}{{"eci", p.eci}, {"runc", p.runc}} {
				spec := testbundle.Spec("/bin/probe", "getppid", strconv.Itoa(n))
				if flavour == "privileged" {
					if err := testbundle.Privileged(spec); err != nil {
						b.Fatal(err)
					}
				} else {
					spec.Linux.Seccomp = allowlistProfile()
				}
				results[flavour+"/"+rt.name] = append(results[flavour+"/"+rt.name], nsPerCall(b, p.run(b, rt.rt, "untrapped-"+rt.name, spec)))
			}
		}
	}
	for _, flavour := range []string{"privileged", "profile"} {
		e, r := medianOf(results[flavour+"/eci"]), medianOf(results[flavour+"/runc"])
		b.ReportMetric(e, flavour+"-eci-ns/call")
		b.ReportMetric(r, flavour+"-runc-ns/call")
		b.Logf("getppid, %s container, %d calls, median of 3: eci %.1f ns, runc %.1f ns (eci/runc %.2f)", flavour, n, e, r, e/r)
	}
}

// sysinfo(2) in a 256Mi container: under eci the supervisor answers it with the
// container's numbers (with a /proc emulation mounted, as eci-node runs it), under runc
// the kernel answers with the host's.
func BenchmarkSysinfo(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	p := newProbeEnv(b)
	runDir := filepath.Join(p.dir, "run")
	mnt := filepath.Join(runDir, "procfs")
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		b.Fatal(err)
	}
	self, _ := os.ReadFile("/proc/self/cgroup")
	paths, err := procemu.ParseCgroupFile(self)
	if err != nil {
		b.Fatal(err)
	}
	cg, _ := json.Marshal(paths)
	serve := exec.Command(os.Args[0], "-test.run=^$")
	serve.Env = append(os.Environ(), envServe+"="+mnt, envMap+"="+string(cg))
	startServer(b, serve, mnt)
	startSupervisor(b, p.dir)
	n := max(b.N, 2000)
	limit := int64(256 << 20)
	results := map[string][]float64{}
	totals := map[string]string{}
	for range 3 {
		for _, rt := range []struct {
			name string
			rt   testbundle.Runtime
		}{{"eci", p.eci}, {"runc", p.runc}} {
			p.seq++
			spec := testbundle.Spec("/bin/probe", "sysinfo", strconv.Itoa(n))
			spec.Linux.Resources.Memory = &specs.LinuxMemory{Limit: &limit}
			spec.Linux.CgroupsPath = fmt.Sprintf("/eci-bench-sysinfo-%d", p.seq)
			lines := p.run(b, rt.rt, "sysinfo-"+rt.name, spec)
			results[rt.name] = append(results[rt.name], nsPerCall(b, lines))
			if len(lines) > 1 {
				totals[rt.name] = lines[1]
			}
		}
	}
	if totals["eci"] != "262144" {
		b.Fatalf("sysinfo under eci says totalram %s KiB, not the container's 262144", totals["eci"])
	}
	e, r := medianOf(results["eci"]), medianOf(results["runc"])
	b.ReportMetric(e, "eci-ns/call")
	b.ReportMetric(r, "runc-ns/call")
	b.Logf("sysinfo, %d calls, median of 3: eci %.0f ns (totalram %s KiB), runc %.0f ns (totalram %s KiB, the host's)", n, e, totals["eci"], r, totals["runc"])
}

// allowlistProfile is a RuntimeDefault-style profile: deny by default, allow a list.
func allowlistProfile() *specs.LinuxSeccomp {
	names := strings.Fields(`accept accept4 access arch_prctl bind brk capget capset chdir chmod chown clock_getres
clock_gettime clock_nanosleep clone clone3 close connect dup dup2 dup3 epoll_create1 epoll_ctl epoll_pwait
epoll_wait eventfd2 execve exit exit_group faccessat faccessat2 fchdir fchmod fchmodat fchown fchownat fcntl
fdatasync flock fstat fstatfs fsync ftruncate futex getcwd getdents64 getegid geteuid getgid getgroups
getpgid getpgrp getpid getppid getpriority getrandom getresgid getresuid getrlimit getrusage getsid
getsockname getsockopt gettid gettimeofday getuid ioctl kill lseek lstat madvise mkdirat mmap mprotect
mremap munmap nanosleep newfstatat open openat openat2 pipe pipe2 poll ppoll prctl pread64 prlimit64
pselect6 pwrite64 read readlink readlinkat readv recvfrom recvmsg rename renameat renameat2 rseq
rt_sigaction rt_sigprocmask rt_sigreturn sched_getaffinity sched_yield select sendmsg sendto set_robust_list
set_tid_address setgid setgroups setsockopt setuid sigaltstack socket stat statfs statx sysinfo tgkill
umask uname unlink unlinkat wait4 waitid write writev`)
	return &specs.LinuxSeccomp{
		DefaultAction: specs.ActErrno,
		Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32},
		Syscalls:      []specs.LinuxSyscall{{Names: names, Action: specs.ActAllow}},
	}
}
