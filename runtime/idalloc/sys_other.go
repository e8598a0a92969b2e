//go:build !linux

package idalloc

import (
	"errors"
	"fmt"
	"runtime"
)

var errNotLinux = fmt.Errorf("idalloc is linux-only, not %s: %w", runtime.GOOS, errors.ErrUnsupported)

func lockExclusive(string) (func(), error) { return nil, errNotLinux }

func readProcFile(string) ([]byte, error) { return nil, errNotLinux }
