// Command probe times a syscall in a loop and prints the nanoseconds per call, for the
// benchmarks that compare a syscall inside eci and runc containers.
//
//	probe getppid 1000000
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) != 3 || os.Args[1] != "getppid" {
		fmt.Fprintln(os.Stderr, "usage: probe getppid N")
		os.Exit(2)
	}
	n, err := strconv.Atoi(os.Args[2])
	if err != nil || n <= 0 {
		fmt.Fprintln(os.Stderr, "probe: N must be a positive number")
		os.Exit(2)
	}
	runtime.LockOSThread()
	for range n / 10 { // warm up
		unix.RawSyscall(unix.SYS_GETPPID, 0, 0, 0)
	}
	start := time.Now()
	for range n {
		unix.RawSyscall(unix.SYS_GETPPID, 0, 0, 0)
	}
	fmt.Printf("%.2f\n", float64(time.Since(start).Nanoseconds())/float64(n))
}
