// Command attack runs inside a container and tries to tamper with the host
// kernel or reach the host disk. It prints one JSON line per attack:
//
//	{"attack":"<name>","result":"succeeded"|"blocked"|"n/a","detail":"..."}
//
// "succeeded" means the container could do it (an escape, if the container
// is supposed to be confined). The exit status is 0 whatever the results are,
// and 2 on a usage error.
//
// Nothing here changes the host: a write only writes back the value that is
// already there, sysrq-trigger is opened but never written, the host disk is
// only read or mounted read-only, and init_module only ever gets 64 zero
// bytes, which no kernel can load.
//
// Build it static: CGO_ENABLED=0 go build -o attack ./test/attack
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

const (
	succeeded = "succeeded"
	blocked   = "blocked"
	na        = "n/a"
)

type result struct {
	Attack string `json:"attack"`
	Result string `json:"result"`
	Detail string `json:"detail"`
}

type config struct {
	hostDev     uint64 // the host root block device
	sysFile     string
	procSysFile string
	fstype      string
	// For the mount attacks (mounts.go).
	roDir          string
	maskedFile     string
	raceIterations int
}

// order is the order of "all".
var order = []string{
	"proc-sys-write",
	"sysrq-trigger",
	"host-block-device",
	"mount-host-disk",
	"kernel-module",
	"sys-write",
	"kernel-keyring",
}

var attacks = map[string]func(config) result{
	"proc-sys-write":    func(c config) result { return writeBack(c.procSysFile) },
	"sysrq-trigger":     sysrqTrigger,
	"host-block-device": hostBlockDevice,
	"mount-host-disk":   mountHostDisk,
	"kernel-module":     kernelModule,
	"sys-write":         func(c config) result { return writeBack(c.sysFile) },
	"kernel-keyring":    kernelKeyring,
}

// needsHostDev lists the attacks that cannot run without -host-dev.
var needsHostDev = map[string]bool{"host-block-device": true, "mount-host-disk": true}

// tempRoots are the places tried, in order, for a scratch directory.
var tempRoots = []string{"/tmp", "/dev/shm", "/"}

// errMasked reports a path that opened but is not the kernel file it names,
// e.g. /dev/null bind-mounted over it: writes to it would go nowhere.
var errMasked = errors.New("masked (not a regular file)")

func main() {
	hostDev := flag.String("host-dev", "", "host root block device as `MAJ:MIN` (needed by host-block-device, mount-host-disk)")
	sysFile := flag.String("sys-file", "/sys/kernel/mm/ksm/sleep_millisecs", "sysfs `file` for sys-write")
	procSysFile := flag.String("proc-sys-file", "/proc/sys/kernel/panic", "/proc/sys `file` for proc-sys-write")
	fstype := flag.String("fstype", "ext4", "filesystem `type` of the host disk, for mount-host-disk")
	roDir := flag.String("ro-dir", "/ro", "a read-only bind mount (`dir`), for remount-rw")
	maskedFile := flag.String("masked-file", "/proc/meminfo", "a /proc `file` with a bind over it, for umount-proc-file")
	raceIterations := flag.Int("race-iterations", 2000, "`n` mount calls in mount-race")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: %s [flags] attack...\nattacks: %s all\nmount attacks: %s mounts\nflags:\n",
			filepath.Base(os.Args[0]), strings.Join(order, " "), strings.Join(mountOrder, " "))
		flag.PrintDefaults()
	}
	flag.Parse()

	names, err := expand(flag.Args())
	if err != nil {
		usageError(err)
	}
	c := config{sysFile: *sysFile, procSysFile: *procSysFile, fstype: *fstype, roDir: *roDir, maskedFile: *maskedFile, raceIterations: *raceIterations}
	if *hostDev != "" {
		if c.hostDev, err = parseDev(*hostDev); err != nil {
			usageError(err)
		}
	} else {
		for _, n := range names {
			if needsHostDev[n] {
				usageError(fmt.Errorf("%s needs -host-dev MAJ:MIN", n))
			}
		}
	}

	enc := json.NewEncoder(os.Stdout)
	enc.SetEscapeHTML(false)
	for _, n := range names {
		r := attacks[n](c)
		r.Attack = n
		if err := enc.Encode(r); err != nil {
			fmt.Fprintln(os.Stderr, "attack:", err)
			os.Exit(1)
		}
	}
}

func usageError(err error) {
	fmt.Fprintln(os.Stderr, "attack:", err)
	flag.Usage()
	os.Exit(2)
}

// expand turns the command-line attack names into the list to run.
func expand(args []string) ([]string, error) {
	if len(args) == 0 {
		return nil, errors.New("no attack named")
	}
	var names []string
	for _, a := range args {
		switch {
		case a == "all":
			names = append(names, order...)
		case a == "mounts":
			names = append(names, mountOrder...)
		case attacks[a] != nil:
			names = append(names, a)
		default:
			return nil, fmt.Errorf("unknown attack %q", a)
		}
	}
	return names, nil
}

// parseDev parses "MAJ:MIN" into a dev_t.
func parseDev(s string) (uint64, error) {
	maj, min, ok := strings.Cut(s, ":")
	ma, err1 := strconv.ParseUint(maj, 10, 32)
	mi, err2 := strconv.ParseUint(min, 10, 32)
	if !ok || err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bad device %q, want MAJ:MIN", s)
	}
	return unix.Mkdev(uint32(ma), uint32(mi)), nil
}

func devString(dev uint64) string {
	return fmt.Sprintf("%d:%d", unix.Major(dev), unix.Minor(dev))
}

// errName names err by its errno (EPERM, EROFS...) when it has one.
func errName(err error) string {
	var e unix.Errno
	if errors.As(err, &e) {
		if n := unix.ErrnoName(e); n != "" {
			return n
		}
	}
	return err.Error()
}

// classify is the result of an attack that is one system call deep:
// it succeeded if the call did.
func classify(err error) string {
	if err == nil {
		return succeeded
	}
	return blocked
}

// moduleResult classifies init_module on a garbage image: only EPERM means
// the permission check stopped it; any other error came from parsing the
// image, after the check had passed.
func moduleResult(err error) result {
	switch {
	case err == nil:
		return result{Result: succeeded, Detail: "init_module accepted a 64-byte zero image"}
	case errors.Is(err, unix.EPERM):
		return result{Result: blocked, Detail: "init_module: EPERM"}
	case errors.Is(err, unix.ENOSYS):
		return result{Result: na, Detail: "init_module: ENOSYS: kernel has no module support"}
	default:
		return result{Result: succeeded, Detail: "permission check passed: init_module: " + errName(err)}
	}
}

// openWrite opens path O_WRONLY and makes sure it is a regular file, so that
// a path masked by a bind-mounted /dev/null does not count as writable.
func openWrite(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		f.Close()
		return nil, errMasked
	}
	return f, nil
}

// writeBack writes the current content of a kernel knob back to it.
func writeBack(path string) result {
	old, err := os.ReadFile(path)
	if err != nil {
		return result{Result: blocked, Detail: fmt.Sprintf("read %s: %s; nothing written", path, errName(err))}
	}
	f, err := openWrite(path)
	if err != nil {
		return result{Result: blocked, Detail: fmt.Sprintf("open %s O_WRONLY: %s", path, errName(err))}
	}
	defer f.Close()
	if _, err := f.Write(old); err != nil {
		return result{Result: classify(err), Detail: fmt.Sprintf("opened %s O_WRONLY; write: %s", path, errName(err))}
	}
	return result{Result: succeeded, Detail: fmt.Sprintf("wrote current value %s back to %s", strings.TrimSpace(string(old)), path)}
}

func sysrqTrigger(config) result {
	const path = "/proc/sysrq-trigger"
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		return result{Result: na, Detail: path + " does not exist"}
	}
	f, err := openWrite(path)
	if err != nil {
		return result{Result: blocked, Detail: fmt.Sprintf("open %s O_WRONLY: %s", path, errName(err))}
	}
	f.Close()
	return result{Result: succeeded, Detail: "opened " + path + " O_WRONLY (nothing written)"}
}

func hostBlockDevice(c config) result {
	used, seen, fails := tryHostNode(c.hostDev, "read", readBlock)
	d := visibility(c.hostDev, seen) + strings.Join(append([]string{""}, fails...), "; ")
	switch {
	case used == "":
		return result{Result: blocked, Detail: d}
	case slices.Contains(seen, used):
		return result{Result: succeeded, Detail: "saw and read " + used + "; " + d}
	default:
		return result{Result: succeeded, Detail: "mknod'ed and read " + used + "; " + d}
	}
}

func mountHostDisk(c config) result {
	var dir, how string
	mount := func(node string) error {
		var err error
		if dir, err = tempDir("mnt"); err != nil {
			return err
		}
		// Remove, never RemoveAll: dir may still be a mount point of the host disk.
		defer os.Remove(dir)
		if how, err = mountRO(node, dir, c.fstype); err != nil {
			return err
		}
		return unix.Unmount(dir, unix.MNT_DETACH)
	}
	used, seen, fails := tryHostNode(c.hostDev, "mount", mount)
	d := visibility(c.hostDev, seen) + strings.Join(append([]string{""}, fails...), "; ")
	if used == "" {
		return result{Result: blocked, Detail: d}
	}
	return result{Result: succeeded, Detail: fmt.Sprintf("mounted %s read-only on %s (%s %s), unmounted; %s", used, dir, c.fstype, how, d)}
}

func kernelModule(config) result {
	return moduleResult(unix.InitModule(make([]byte, 64), ""))
}

// kernelKeyring reaches the kernel's key store, state the kernel shares between every
// container (eci's policies deny keyctl): it asks for the session keyring's id, which
// creates nothing a container does not already have.
func kernelKeyring(config) result {
	id, err := unix.KeyctlInt(unix.KEYCTL_GET_KEYRING_ID, unix.KEY_SPEC_SESSION_KEYRING, 0, 0, 0)
	if err != nil {
		return result{Result: blocked, Detail: "keyctl: " + errName(err)}
	}
	return result{Result: succeeded, Detail: fmt.Sprintf("keyctl: session keyring %d", id)}
}

func visibility(dev uint64, seen []string) string {
	if len(seen) == 0 {
		return "host device " + devString(dev) + " not visible in /dev"
	}
	return "host device " + devString(dev) + " visible as " + strings.Join(seen, ", ")
}

// tryHostNode calls use on each block node for dev found in /dev, then on
// one mknod'ed in a scratch directory, until use succeeds. It returns the
// node that worked ("" if none), the nodes seen in /dev and one note per
// failed step. The mknod'ed node is removed before it returns.
func tryHostNode(dev uint64, verb string, use func(node string) error) (used string, seen, fails []string) {
	seen = findBlockNodes("/dev", dev)
	for _, node := range seen {
		err := use(node)
		if err == nil {
			return node, seen, fails
		}
		fails = append(fails, fmt.Sprintf("%s %s: %s", verb, node, errName(err)))
	}
	dir, err := tempDir("dev")
	if err != nil {
		return "", seen, append(fails, "mknod: no scratch dir: "+errName(err))
	}
	defer os.Remove(dir)
	node := filepath.Join(dir, "hostdisk")
	if err := unix.Mknod(node, unix.S_IFBLK|0o600, int(dev)); err != nil {
		return "", seen, append(fails, fmt.Sprintf("mknod %s: %s", node, errName(err)))
	}
	defer os.Remove(node)
	if err := use(node); err != nil {
		return "", seen, append(fails, fmt.Sprintf("mknod %s: ok; %s: %s", node, verb, errName(err)))
	}
	return node, seen, fails
}

// findBlockNodes walks root without following symlinks and returns the
// block device nodes whose rdev is dev.
func findBlockNodes(root string, dev uint64) []string {
	var found []string
	filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeDevice == 0 || d.Type()&fs.ModeCharDevice != 0 {
			return nil // unreadable entries are skipped, not fatal
		}
		var st unix.Stat_t
		if unix.Lstat(path, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFBLK && uint64(st.Rdev) == dev {
			found = append(found, path)
		}
		return nil
	})
	return found
}

// tempDir makes a fresh directory in the first writable of tempRoots.
func tempDir(prefix string) (string, error) {
	var err error
	for _, root := range tempRoots {
		var dir string
		if dir, err = os.MkdirTemp(root, "attack-"+prefix+"-"); err == nil {
			return dir, nil
		}
	}
	return "", err
}

// readBlock opens a block device read-only and reads its first sector.
func readBlock(node string) error {
	f, err := os.Open(node)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.ReadFull(f, make([]byte, 512))
	return err
}

// mountRO mounts src read-only on dir and says how it did it.
//
// mount(2) with MS_RDONLY fails with EBUSY when the filesystem is already
// mounted read-write (as the host root is): the permission check has passed,
// but the kernel will not flip the superblock to read-only. In that case
// attach a read-only mount of the existing superblock with the new mount
// API, which never makes anything writable.
func mountRO(src, dir, fstype string) (string, error) {
	err := unix.Mount(src, dir, fstype, unix.MS_RDONLY, "")
	if err == nil {
		return "mount(2) MS_RDONLY", nil
	}
	if !errors.Is(err, unix.EBUSY) {
		return "", err
	}
	fd, err := unix.Fsopen(fstype, unix.FSOPEN_CLOEXEC)
	if err != nil {
		return "", fmt.Errorf("MS_RDONLY: EBUSY; fsopen: %s", errName(err))
	}
	defer unix.Close(fd)
	if err := unix.FsconfigSetString(fd, "source", src); err != nil {
		return "", fmt.Errorf("MS_RDONLY: EBUSY; fsconfig source: %s", errName(err))
	}
	if err := unix.FsconfigCreate(fd); err != nil {
		return "", fmt.Errorf("MS_RDONLY: EBUSY; fsconfig create: %s", errName(err))
	}
	mfd, err := unix.Fsmount(fd, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_RDONLY)
	if err != nil {
		return "", fmt.Errorf("MS_RDONLY: EBUSY; fsmount: %s", errName(err))
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, dir, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return "", fmt.Errorf("MS_RDONLY: EBUSY; move_mount: %s", errName(err))
	}
	return "mount(2) MS_RDONLY: EBUSY (already mounted read-write), so fsmount MOUNT_ATTR_RDONLY", nil
}
