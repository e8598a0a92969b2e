//go:build linux

package idmap

import (
	"fmt"
	"os"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// MountSysfs mounts a read-only sysfs of the network namespace at netnsPath on target.
//
// A container in its own user namespace cannot mount sysfs when it joins a network
// namespace the CRI created (the kernel wants CAP_SYS_ADMIN in the user namespace that owns
// the network namespace: the host's). eci-runtime, as host root, makes that mount instead,
// from a thread that has joined the pod's network namespace, and places it in the rootfs;
// runc's recursive bind of the rootfs carries it into the container, where it is locked
// read-only. The container sees its own network devices, not the host's.
func MountSysfs(netnsPath, target string) error {
	ns, err := os.Open(netnsPath)
	if err != nil {
		return fmt.Errorf("sysfs: opening network namespace %s: %w", netnsPath, err)
	}
	defer ns.Close()
	type result struct {
		fd  int
		err error
	}
	done := make(chan result, 1)
	go func() {
		// The thread joins another network namespace and is never unlocked: Go
		// discards it when this goroutine ends, so no other code runs in that namespace.
		runtime.LockOSThread()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- result{-1, fmt.Errorf("sysfs: joining network namespace %s: %w", netnsPath, err)}
			return
		}
		fs, err := unix.Fsopen("sysfs", unix.FSOPEN_CLOEXEC)
		if err != nil {
			done <- result{-1, fmt.Errorf("sysfs: fsopen: %w", err)}
			return
		}
		defer unix.Close(fs)
		if err := unix.FsconfigCreate(fs); err != nil {
			done <- result{-1, fmt.Errorf("sysfs: create: %w", err)}
			return
		}
		fd, err := unix.Fsmount(fs, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC)
		done <- result{fd, err}
	}()
	r := <-done
	if r.err != nil {
		return r.err
	}
	defer unix.Close(r.fd)
	if err := os.MkdirAll(target, 0o555); err != nil {
		return fmt.Errorf("sysfs: creating %s: %w", target, err)
	}
	if err := retry(func() error {
		return unix.MoveMount(r.fd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH)
	}); err != nil {
		return fmt.Errorf("sysfs: mounting on %s: %w", target, err)
	}
	return nil
}

// Unmount detaches the mount at target, if there is one.
func Unmount(target string) error {
	err := retry(func() error { return unix.Unmount(target, unix.MNT_DETACH) })
	if err == unix.EINVAL || err == unix.ENOENT {
		return nil
	}
	return err
}

// SetNetSysctls writes network sysctls (net.*) in the network namespace at netnsPath, as
// host root. A container in its own user namespace cannot write them in a network
// namespace the CRI made (the host's user namespace owns it); they are per network
// namespace, so writing them for the pod touches nothing else.
func SetNetSysctls(netnsPath string, sysctls map[string]string) error {
	for key := range sysctls {
		if !strings.HasPrefix(key, "net.") || strings.Contains(key, "..") || strings.ContainsAny(key, " \x00") {
			return fmt.Errorf("sysctl %q: not a network sysctl", key)
		}
	}
	ns, err := os.Open(netnsPath)
	if err != nil {
		return fmt.Errorf("sysctls: opening network namespace %s: %w", netnsPath, err)
	}
	defer ns.Close()
	done := make(chan error, 1)
	go func() {
		// As in MountSysfs: the thread stays in the pod's namespace and is discarded.
		runtime.LockOSThread()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("sysctls: joining network namespace %s: %w", netnsPath, err)
			return
		}
		for key, value := range sysctls {
			path := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
			if err := os.WriteFile(path, []byte(value), 0); err != nil {
				done <- fmt.Errorf("sysctl %s=%s in %s: %w", key, value, netnsPath, err)
				return
			}
		}
		done <- nil
	}()
	return <-done
}
