package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mountOrder is the order of "mounts": attacks on the mounts a container was created
// with, and the in-container mounts that must keep working. They need a container with
// CAP_SYS_ADMIN (privileged), a read-only bind at -ro-dir and a bind over -masked-file.
var mountOrder = []string{
	"rbind-unmask", // first: the others undo (under runc) the bind it copies
	"umount-mask",
	"umount-proc-file",
	"remount-rw",
	"new-mount-api",
	"mount-race",
	"reboot",
	"tmpfs-mount",
	"nested-tmpfs",
}

var mountAttacks = map[string]func(config) result{
	"umount-mask":      umountMask,
	"umount-proc-file": umountProcFile,
	"remount-rw":       remountRW,
	"new-mount-api":    newMountAPI,
	"rbind-unmask":     rbindUnmask,
	"mount-race":       mountRace,
	"reboot":           rebootCall,
	"tmpfs-mount":      tmpfsMount,
	"nested-tmpfs":     nestedTmpfs,
}

// umountMask unmounts runc's mask over /sys/firmware: under it are the host's firmware
// tables.
func umountMask(config) result {
	const p = "/sys/firmware"
	if err := unix.Unmount(p, unix.MNT_DETACH); err != nil {
		return result{Result: blocked, Detail: "umount2 " + p + ": " + errName(err)}
	}
	return result{Result: succeeded, Detail: "unmounted " + p}
}

// umountProcFile unmounts a bind over a /proc file (eci's /proc emulation binds its files
// so): the kernel's host-wide file would show again.
func umountProcFile(c config) result {
	if err := unix.Unmount(c.maskedFile, unix.MNT_DETACH); err != nil {
		return result{Result: blocked, Detail: "umount2 " + c.maskedFile + ": " + errName(err)}
	}
	return result{Result: succeeded, Detail: "unmounted the bind over " + c.maskedFile}
}

// remountRW makes a read-only volume writable, per mount and per superblock, and proves it
// by creating a file.
func remountRW(c config) result {
	var tried []string
	for _, how := range []struct {
		name  string
		flags uintptr
	}{
		{"remount,bind (rw)", unix.MS_REMOUNT | unix.MS_BIND},
		{"remount (rw)", unix.MS_REMOUNT},
	} {
		err := unix.Mount("", c.roDir, "", how.flags, "")
		if err != nil {
			tried = append(tried, how.name+": "+errName(err))
			continue
		}
		f, err := os.CreateTemp(c.roDir, "rw-")
		if err != nil {
			tried = append(tried, how.name+": call returned 0 but create: "+errName(err))
			continue
		}
		f.Close()
		os.Remove(f.Name())
		return result{Result: succeeded, Detail: fmt.Sprintf("%s %s, then wrote a file in it", how.name, c.roDir)}
	}
	return result{Result: blocked, Detail: fmt.Sprint(tried)}
}

// newMountAPI covers /proc with a new tmpfs through fsopen, fsmount and move_mount,
// which a filter that only traps mount(2) would miss.
func newMountAPI(config) result {
	fsfd, err := unix.Fsopen("tmpfs", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return result{Result: blocked, Detail: "fsopen: " + errName(err)}
	}
	defer unix.Close(fsfd)
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return result{Result: blocked, Detail: "fsconfig: " + errName(err)}
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, 0)
	if err != nil {
		return result{Result: blocked, Detail: "fsmount: " + errName(err)}
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, "/proc", unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return result{Result: blocked, Detail: "move_mount onto /proc: " + errName(err)}
	}
	_ = unix.Unmount("/proc", unix.MNT_DETACH)
	return result{Result: succeeded, Detail: "covered /proc with a tmpfs through fsopen, fsmount and move_mount"}
}

// rbindUnmask copies the whole root with a recursive bind, then unmounts the copy of the
// bind over the -masked-file: the copy is a new mount, so a check that only knows the
// container's initial mounts would let it go, and the kernel's own file would show.
func rbindUnmask(c config) result {
	const dir = "/tmp/rbind"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return result{Result: na, Detail: err.Error()}
	}
	if err := unix.Mount("/", dir, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return result{Result: blocked, Detail: "mount --rbind / " + dir + ": " + errName(err)}
	}
	defer unix.Unmount(dir, unix.MNT_DETACH)
	copyOf := dir + c.maskedFile
	if err := unix.Unmount(copyOf, unix.MNT_DETACH); err != nil {
		return result{Result: blocked, Detail: "rbind worked; umount2 " + copyOf + ": " + errName(err)}
	}
	return result{Result: succeeded, Detail: "mount --rbind / " + dir + ", then unmounted the copy " + copyOf}
}

// mountRace mounts a tmpfs on a path that a second thread keeps rewriting between a
// harmless directory and /proc: a supervisor that checked the path and then let the
// kernel read it again would sometimes let /proc be covered.
func mountRace(c config) result {
	const safe = "/tmp/race"
	if err := os.MkdirAll(safe, 0o755); err != nil {
		return result{Result: na, Detail: err.Error()}
	}
	var procStat unix.Statfs_t
	if err := unix.Statfs("/proc", &procStat); err != nil {
		return result{Result: na, Detail: err.Error()}
	}
	buf := make([]byte, 64)
	copy(buf, safe)
	fstype := []byte("tmpfs\x00")
	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer close(done)
		for !stop.Load() {
			copy(buf, "/proc\x00")
			copy(buf, safe+"\x00")
		}
	}()
	var covered, safeMounts, refused int
	for i := 0; i < c.raceIterations; i++ {
		_, _, e := unix.Syscall6(unix.SYS_MOUNT, uintptr(unsafe.Pointer(&fstype[0])), uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&fstype[0])), 0, 0, 0)
		if e != 0 {
			refused++
			continue
		}
		var st unix.Statfs_t
		if err := unix.Statfs("/proc", &st); err == nil && st.Type != procStat.Type {
			covered++
			_ = unix.Unmount("/proc", unix.MNT_DETACH)
		}
		if err := unix.Statfs(safe, &st); err == nil && st.Type == unix.TMPFS_MAGIC {
			safeMounts++
			_ = unix.Unmount(safe, unix.MNT_DETACH)
		}
	}
	stop.Store(true)
	<-done
	d := fmt.Sprintf("%d iterations: /proc covered %d times, %s mounted %d times, %d refused", c.raceIterations, covered, safe, safeMounts, refused)
	if covered > 0 {
		return result{Result: succeeded, Detail: d}
	}
	return result{Result: blocked, Detail: d}
}

// rebootCall asks the kernel to turn Ctrl-Alt-Del off, the mildest reboot(2) command. In a
// pid namespace the kernel refuses it with EINVAL after the permission check; a policy
// that denies reboot refuses it before (EPERM).
func rebootCall(config) result {
	err := unix.Reboot(unix.LINUX_REBOOT_CMD_CAD_OFF)
	switch {
	case err == nil:
		return result{Result: succeeded, Detail: "reboot(CAD_OFF) accepted"}
	case errors.Is(err, unix.EPERM):
		return result{Result: blocked, Detail: "reboot: EPERM"}
	}
	return result{Result: succeeded, Detail: "permission check passed: reboot: " + errName(err)}
}

// tmpfsMount mounts a tmpfs in the container, writes to it and unmounts it: what the
// supervisor must keep working.
func tmpfsMount(config) result {
	return tmpfsAt("/tmp/eci-tmpfs")
}

func tmpfsAt(dir string) result {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return result{Result: na, Detail: err.Error()}
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m,mode=755"); err != nil {
		return result{Result: blocked, Detail: "mount tmpfs on " + dir + ": " + errName(err)}
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil || st.Type != unix.TMPFS_MAGIC {
		return result{Result: blocked, Detail: fmt.Sprintf("mount returned 0 but %s is not a tmpfs: %v", dir, err)}
	}
	var owner unix.Stat_t
	_ = unix.Stat(dir, &owner)
	if err := os.WriteFile(dir+"/f", []byte("x"), 0o644); err != nil {
		return result{Result: blocked, Detail: "write in the new tmpfs: " + errName(err)}
	}
	if err := unix.Unmount(dir, 0); err != nil {
		return result{Result: blocked, Detail: "umount " + dir + ": " + errName(err)}
	}
	return result{Result: succeeded, Detail: fmt.Sprintf("mounted a tmpfs on %s owned by %d:%d, wrote a file, unmounted it", dir, owner.Uid, owner.Gid)}
}

// nestedTmpfs does what `unshare -m` and a mount do: a mount namespace of the container's
// own, private propagation, a tmpfs in it.
func nestedTmpfs(config) result {
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // the thread ends in its own mount namespace
		if err := unix.Unshare(unix.CLONE_NEWNS | unix.CLONE_FS); err != nil {
			ch <- result{Result: blocked, Detail: "unshare -m: " + errName(err)}
			return
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			ch <- result{Result: blocked, Detail: "make-rprivate /: " + errName(err)}
			return
		}
		r := tmpfsAt("/tmp/eci-nested")
		r.Detail = "in a new mount namespace: " + r.Detail
		ch <- r
	}()
	return <-ch
}

func init() {
	for name, a := range mountAttacks {
		attacks[name] = a
	}
}
