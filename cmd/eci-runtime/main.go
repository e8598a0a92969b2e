// Command eci-runtime is a runc-compatible OCI runtime that isolates every container it
// creates: its own user namespace with an exclusive id range, idmapped rootfs and volumes,
// no host devices beyond a safe list, no protected host paths, and masked /proc and /sys.
// It then runs the pinned runc; every other verb goes to runc untouched.
//
// Usage: eci-runtime [runc global flags] <runc verb> [args]   (see `eci-runtime --help`)
//
// Environment: ECI_RUNC names the runc to run (default: the runc next to eci-runtime, then
// /opt/eci/bin/runc); ECI_CONFIG names the settings file (default /etc/eci/runtime.json).
package main

import (
	"context"
	"errors"
	"os"

	"github.com/eci-dev/eci/runtime"
)

func main() {
	err := runtime.Run(context.Background(), os.Args[1:], runtime.Options{})
	var exit *runtime.ExitError
	switch {
	case errors.As(err, &exit):
		os.Exit(exit.Code)
	case err != nil:
		os.Exit(1)
	}
}
