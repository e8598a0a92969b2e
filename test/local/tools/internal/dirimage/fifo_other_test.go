//go:build !unix

package dirimage

import "errors"

func mkfifo(string) error { return errors.New("no FIFOs on this OS") }
