//go:build !cgo

// Command gensyscalls needs cgo (libseccomp); see main.go.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "gensyscalls: needs cgo and libseccomp-dev (CGO_ENABLED=1, make deps)")
	os.Exit(1)
}
