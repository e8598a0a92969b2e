package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/eci-dev/eci/procemu"
	"github.com/eci-dev/eci/procemu/procfs"
)

// The emulated files' open+read+close latency through eci's FUSE server, against the real
// procfs file and against LXCFS (`lxcfs -l --enable-cfs`, Debian's package, make bench
// installs it) serving the same file, side by side in the same run; and each server's CPU
// per read at a steady 1,000 reads/s. Both servers render for the benchmark's own cgroups.
// eci's warm reads stay in the kernel's page cache; eci-cold is a second eci server whose
// renderings expire at once, what the first read after the TTL costs.
//
//	sudo go test -run '^$' -bench Procfs -benchtime 2000x -v ./bench/

const (
	envServe = "ECI_BENCH_PROCFS_SERVE"
	envMap   = "ECI_BENCH_PROCFS_CGROUPS"
	envTTL   = "ECI_BENCH_PROCFS_TTL"
)

func init() {
	// The benchmark binary re-executed as eci's FUSE server (a process must not serve a
	// FUSE mount and read it).
	if dir := os.Getenv(envServe); dir != "" {
		os.Exit(serveBench(dir, os.Getenv(envMap)))
	}
}

type fixedResolver map[string]string

func (f fixedResolver) Cgroups(string) (map[string]string, error) { return f, nil }

func serveBench(dir, cgroups string) int {
	var cg map[string]string
	if err := json.Unmarshal([]byte(cgroups), &cg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ttl, _ := time.ParseDuration(os.Getenv(envTTL)) // 0: procfs.DefaultTTL
	srv, err := (&procfs.Server{Resolver: fixedResolver(cg), Root: "/", TTL: ttl}).Mount(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "procfs server:", err)
		return 1
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	go func() { <-sig; _ = srv.Unmount() }()
	srv.Wait()
	return 0
}

// startServer runs cmd, waits until dir is a FUSE mount, and stops it when b ends.
func startServer(b *testing.B, cmd *exec.Cmd, dir string) *os.Process {
	b.Helper()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
		}
		_ = unix.Unmount(dir, unix.MNT_DETACH)
	})
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var st unix.Statfs_t
		if unix.Statfs(dir, &st) == nil && st.Type == unix.FUSE_SUPER_MAGIC {
			return cmd.Process
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s did not mount %s", cmd.Path, dir)
		}
	}
}

func readOnce(b *testing.B, path string, buf []byte) {
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	for {
		n, err := f.Read(buf)
		if n == 0 || err != nil {
			break
		}
	}
	f.Close()
}

// cpuTime is a process's user+system CPU time.
func cpuTime(b *testing.B, pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * (time.Second / 100)
}

// cpuPerRead reads path 1,000 times a second for 3 s and returns the server's CPU per read.
func cpuPerRead(b *testing.B, pid int, path string) time.Duration {
	buf := make([]byte, 64<<10)
	before := cpuTime(b, pid)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	const reads = 3000
	for range reads {
		<-tick.C
		readOnce(b, path, buf)
	}
	return (cpuTime(b, pid) - before) / reads
}

func BenchmarkProcfs(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root (FUSE mounts)")
	}
	lxcfsBin, err := exec.LookPath("lxcfs")
	if err != nil {
		b.Skip("lxcfs not installed (make bench installs it: hack/install-bench-deps.sh)")
	}
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		b.Fatal(err)
	}
	cg, err := procemu.ParseCgroupFile(self)
	if err != nil {
		b.Fatal(err)
	}
	cgJSON, _ := json.Marshal(cg)
	dir := b.TempDir()
	eciDir, coldDir, lxDir := filepath.Join(dir, "eci"), filepath.Join(dir, "eci-cold"), filepath.Join(dir, "lxcfs")
	for _, d := range []string{eciDir, coldDir, lxDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			b.Fatal(err)
		}
	}
	eciCmd := exec.Command(os.Args[0])
	eciCmd.Env = append(os.Environ(), envServe+"="+eciDir, envMap+"="+string(cgJSON))
	eciProc := startServer(b, eciCmd, eciDir)
	// eci-cold: a server whose renderings expire at once, so every open asks for the
	// attributes, renders and reads: what the first read after the 1 s TTL costs.
	coldCmd := exec.Command(os.Args[0])
	coldCmd.Env = append(os.Environ(), envServe+"="+coldDir, envMap+"="+string(cgJSON), envTTL+"=1ns")
	startServer(b, coldCmd, coldDir)
	lxProc := startServer(b, exec.Command(lxcfsBin, "-l", "--enable-cfs", "-p", filepath.Join(dir, "lxcfs.pid"), lxDir), lxDir)

	files := []string{"meminfo", "cpuinfo", "stat", "uptime", "loadavg", "diskstats", "swaps"}
	buf := make([]byte, 64<<10)
	for _, name := range files {
		paths := map[string]string{
			"real":     "/proc/" + name,
			"eci":      filepath.Join(eciDir, "self", name),
			"eci-cold": filepath.Join(coldDir, "self", name),
			"lxcfs":    filepath.Join(lxDir, "proc", name),
		}
		perOp := map[string]float64{}
		for _, which := range []string{"real", "eci", "eci-cold", "lxcfs"} {
			b.Run(name+"/"+which, func(b *testing.B) {
				readOnce(b, paths[which], buf) // warm: lookup, snapshot
				b.ResetTimer()
				for range b.N {
					readOnce(b, paths[which], buf)
				}
				perOp[which] = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			})
		}
		if perOp["eci"] > 0 && perOp["lxcfs"] > 0 && perOp["real"] > 0 {
			b.Logf("%-9s real %7.1f µs  eci %7.1f µs  lxcfs %7.1f µs  eci/lxcfs %.3f (goal ≤ 0.25)  eci/real %.2f (goal ≤ 3)  eci-cold %7.1f µs (%.2f× lxcfs)",
				name, perOp["real"]/1e3, perOp["eci"]/1e3, perOp["lxcfs"]/1e3, perOp["eci"]/perOp["lxcfs"], perOp["eci"]/perOp["real"],
				perOp["eci-cold"]/1e3, perOp["eci-cold"]/perOp["lxcfs"])
		}
	}
	eciCPU := cpuPerRead(b, eciProc.Pid, filepath.Join(eciDir, "self", "meminfo"))
	lxCPU := cpuPerRead(b, lxProc.Pid, filepath.Join(lxDir, "proc", "meminfo"))
	ratio := 0.0
	if lxCPU > 0 {
		ratio = float64(eciCPU) / float64(lxCPU)
	}
	b.Logf("server CPU per meminfo read at 1,000 reads/s: eci %s, lxcfs %s, eci/lxcfs %.3f (goal ≤ 0.5)", eciCPU, lxCPU, ratio)
}
