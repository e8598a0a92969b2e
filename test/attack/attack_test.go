package main

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseDev(t *testing.T) {
	for _, tc := range []struct {
		in       string
		maj, min uint32
		ok       bool
	}{
		{"254:0", 254, 0, true},
		{"8:1", 8, 1, true},
		{"259:65536", 259, 65536, true},
		{"0:0", 0, 0, true},
		{"", 0, 0, false},
		{"254", 0, 0, false},
		{"254:", 0, 0, false},
		{":0", 0, 0, false},
		{"a:b", 0, 0, false},
		{"-1:0", 0, 0, false},
		{"+8:0", 0, 0, false},
		{"8:0:1", 0, 0, false},
		{" 8:0", 0, 0, false},
		{"4294967296:0", 0, 0, false},
	} {
		dev, err := parseDev(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("parseDev(%q) error = %v, want ok=%v", tc.in, err, tc.ok)
			continue
		}
		if tc.ok && (unix.Major(dev) != tc.maj || unix.Minor(dev) != tc.min) {
			t.Errorf("parseDev(%q) = %s, want %d:%d", tc.in, devString(dev), tc.maj, tc.min)
		}
		if tc.ok && devString(dev) != tc.in {
			t.Errorf("devString(parseDev(%q)) = %q", tc.in, devString(dev))
		}
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, succeeded},
		{unix.EROFS, blocked},
		{unix.EACCES, blocked},
		{unix.EPERM, blocked},
		{&fs.PathError{Op: "open", Path: "/proc/sys/kernel/panic", Err: unix.EROFS}, blocked},
		{errMasked, blocked},
	} {
		if got := classify(tc.err); got != tc.want {
			t.Errorf("classify(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

func TestModuleResult(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{unix.EPERM, blocked},
		{fmt.Errorf("init_module: %w", unix.EPERM), blocked},
		{unix.ENOSYS, na},
		{unix.ENOEXEC, succeeded},
		{unix.EINVAL, succeeded},
		{unix.EBADMSG, succeeded},
		{unix.ENOKEY, succeeded},
		{unix.EKEYREJECTED, succeeded},
		{nil, succeeded},
	} {
		if got := moduleResult(tc.err).Result; got != tc.want {
			t.Errorf("moduleResult(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
	if d := moduleResult(unix.ENOEXEC).Detail; d != "permission check passed: init_module: ENOEXEC" {
		t.Errorf("ENOEXEC detail = %q", d)
	}
}

func TestErrName(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{unix.EROFS, "EROFS"},
		{unix.EACCES, "EACCES"},
		{&fs.PathError{Op: "open", Path: "/x", Err: unix.EPERM}, "EPERM"},
		{fmt.Errorf("mknod: %w", unix.ENOENT), "ENOENT"},
		{errMasked, errMasked.Error()},
		{errors.New("unexpected EOF"), "unexpected EOF"},
	} {
		if got := errName(tc.err); got != tc.want {
			t.Errorf("errName(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

func TestExpand(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string // nil: usage error
	}{
		{nil, nil},
		{[]string{"nope"}, nil},
		{[]string{"sys-write", "bogus"}, nil},
		{[]string{"all"}, order},
		{[]string{"mounts"}, mountOrder},
		{[]string{"kernel-module", "sys-write"}, []string{"kernel-module", "sys-write"}},
	} {
		got, err := expand(tc.args)
		if (err == nil) != (tc.want != nil) || !slices.Equal(got, tc.want) {
			t.Errorf("expand(%q) = %q, %v; want %q", tc.args, got, err, tc.want)
		}
	}
	// Every attack in "all" or "mounts" is runnable, and every runnable attack is in one.
	if len(order)+len(mountOrder) != len(attacks) {
		t.Errorf("order and mountOrder have %d attacks, map has %d", len(order)+len(mountOrder), len(attacks))
	}
	for _, n := range append(slices.Clone(order), mountOrder...) {
		if attacks[n] == nil {
			t.Errorf("%q is in order but has no function", n)
		}
	}
}
