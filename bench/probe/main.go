// Command probe times a syscall in a loop and prints the nanoseconds per call, for the
// benchmarks that compare a syscall inside eci and runc containers.
//
//	probe getppid 1000000
//	probe sysinfo 20000   (also prints totalram in KiB on a second line)
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
	calls := map[string]func(){
		"getppid": func() { unix.RawSyscall(unix.SYS_GETPPID, 0, 0, 0) },
		"sysinfo": func() { var si unix.Sysinfo_t; _ = unix.Sysinfo(&si) },
	}
	if len(os.Args) != 3 || calls[os.Args[1]] == nil {
		fmt.Fprintln(os.Stderr, "usage: probe getppid|sysinfo N")
		os.Exit(2)
	}
	call := calls[os.Args[1]]
	n, err := strconv.Atoi(os.Args[2])
	if err != nil || n <= 0 {
		fmt.Fprintln(os.Stderr, "probe: N must be a positive number")
		os.Exit(2)
	}
	runtime.LockOSThread()
	for range n / 10 { // warm up
		call()
	}
	start := time.Now()
	for range n {
		call()
	}
	fmt.Printf("%.2f\n", float64(time.Since(start).Nanoseconds())/float64(n))
	if os.Args[1] == "sysinfo" {
		var si unix.Sysinfo_t
		if err := unix.Sysinfo(&si); err != nil {
			fmt.Fprintln(os.Stderr, "probe: sysinfo:", err)
			os.Exit(1)
		}
		fmt.Println(si.Totalram * uint64(si.Unit) / 1024)
	}
}
