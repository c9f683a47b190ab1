package disk

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// requireRoot skips t when not running as root, or fails it when CI=true: a CI run that
// silently skipped the tests that touch the kernel would prove nothing.
func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		requireMkfs(t)
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("this test needs root (CI=true: refusing to skip)")
	}
	t.Skip("needs root: run the suite as root")
}

// requireMkfs is requireRoot's rule for mkfs.btrfs (Debian package btrfs-progs).
func requireMkfs(t testing.TB) {
	t.Helper()
	if _, err := findTool(mkfsProgram); err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("this test needs mkfs.btrfs (btrfs-progs) (CI=true: refusing to skip)")
	}
	t.Skip("needs mkfs.btrfs: apt-get install btrfs-progs")
}

// The root tests run in a mount namespace of their own, so that their mounts die with the test
// process however it ends (a panic, a timeout's kill): TestMain runs the test binary again,
// unshared, and then checks the host for what the run may have left (mounts, loop devices,
// files under its temporary directory).
const (
	envPrivate = "_DISK_TEST_PRIVATE_NS" // set in the re-executed test binary
	envHelper  = "_DISK_TEST_HELPER"     // a helper process: see runHelper
)

func TestMain(m *testing.M) {
	if h := os.Getenv(envHelper); h != "" {
		os.Exit(runHelper(h))
	}
	if os.Geteuid() != 0 || os.Getenv(envPrivate) != "" {
		os.Exit(m.Run())
	}
	os.Exit(runPrivate())
}

// runPrivate runs the tests in a private mount namespace with a temporary directory of their
// own, and fails the run if anything of theirs is left on the host afterwards.
func runPrivate() int {
	tmp, err := os.MkdirTemp("", "vpsctl-disk-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Env = append(os.Environ(), envPrivate+"=1", "TMPDIR="+tmp)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	// Go makes / private (recursively) in the child after unsharing: nothing propagates back.
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS, Pdeathsig: syscall.SIGKILL}
	code := 0
	if err := cmd.Run(); err != nil {
		code = 1
		if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() > 0 {
			code = ee.ExitCode()
		}
	}
	// The namespace is gone with the child; its file systems are unmounted and the loop
	// devices detach themselves, which may take the kernel a moment.
	if left := waitFor(10*time.Second, func() []string { return leftovers(tmp) }); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "disk tests left behind on the host:\n  %s\n", strings.Join(left, "\n  "))
		code = 1
	}
	if err := os.RemoveAll(tmp); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	return code
}

// leftovers lists the mounts (in the caller's mount namespace) and loop devices that involve
// dir.
func leftovers(dir string) []string {
	var left []string
	if mi, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		for _, l := range strings.Split(string(mi), "\n") {
			if strings.Contains(l, dir) {
				left = append(left, "mount: "+l)
			}
		}
	}
	for dev, file := range loopBackings() {
		if strings.HasPrefix(file, dir) {
			left = append(left, "loop device: "+dev+" on "+file)
		}
	}
	return left
}

// loopBackings maps each bound loop device to its backing file.
func loopBackings() map[string]string {
	m := map[string]string{}
	paths, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	for _, p := range paths {
		if b, err := os.ReadFile(p); err == nil {
			m["/dev/"+filepath.Base(filepath.Dir(filepath.Dir(p)))] = strings.TrimSpace(string(b))
		}
	}
	return m
}

// waitFor polls f until it returns nothing or the time is up, and returns its last result.
func waitFor(d time.Duration, f func() []string) []string {
	deadline := time.Now().Add(d)
	for {
		r := f()
		if len(r) == 0 || time.Now().After(deadline) {
			return r
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// testDir makes a directory for one test, checked at its end for mounts and loop devices left
// (the file system a test made must be gone once it has closed it) and then removed.
func testDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	t.Cleanup(func() {
		if left := waitFor(5*time.Second, func() []string { return leftovers(dir) }); len(left) > 0 {
			t.Errorf("left behind:\n  %s", strings.Join(left, "\n  "))
			for _, l := range left { // unmount, so that the next tests start clean
				if f := strings.Fields(l); len(f) > 5 && f[0] == "mount:" {
					unix.Unmount(f[5], unix.MNT_DETACH)
				}
			}
		}
	})
	return dir
}

// newImage creates an image of size bytes in dir.
func newImage(t testing.TB, dir string, size uint64) string {
	t.Helper()
	img := filepath.Join(dir, "disk.img")
	if err := Create(t.Context(), img, Limits{HardBytes: size}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	return img
}

// mountImage mounts img at dir/mnt for the VPS root 1000000 and closes it at the test's end.
func mountImage(t testing.TB, img string) *Mounted {
	t.Helper()
	dir := filepath.Join(filepath.Dir(img), "mnt")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	m, err := Mount(img, dir, vpsRoot, vpsRoot)
	if err != nil {
		t.Fatalf("Mount: %v", err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return m
}

// vpsRoot is the host UID of the test VPS's root, as the runtime's first UID range.
const vpsRoot = 1000000

// mountOverlay mounts an overlay as the monitor does, upper layer in m, a small lower layer,
// and unmounts it at the test's end (before m's Close, registered earlier, runs).
func mountOverlay(t testing.TB, m *Mounted) string {
	t.Helper()
	base := filepath.Dir(m.Dir)
	lower, merged := filepath.Join(base, "lower"), filepath.Join(base, "merged")
	for _, d := range []string{lower, merged} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(lower, "from-template"), []byte("t\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	opts := "lowerdir=" + lower + ",upperdir=" + m.Upper + ",workdir=" + m.Work
	if err := unix.Mount("overlay", merged, "overlay", unix.MS_NODEV, opts); err != nil {
		t.Fatalf("mount overlay: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(merged, 0); err != nil {
			t.Errorf("unmount overlay: %v", err)
		}
	})
	return merged
}

// asVPSRoot runs a helper (see runHelper) as the root of a user namespace mapped onto the VPS's
// host UIDs, as a VPS's processes are, and returns its output. The helper gets dir as its
// descriptor 3 and reaches it as /proc/self/fd/3, as a VPS reaches its files only from its
// root: the host directories above (the tests' are root's, 0700) are not in its way.
func asVPSRoot(t testing.TB, helper, dir, name string) string {
	t.Helper()
	return asVPSUser(t, 0, helper, dir, name)
}

// asVPSUser is asVPSRoot for the VPS's user uid (host UID vpsRoot+uid).
func asVPSUser(t testing.TB, uid uint32, helper, dir, name string) string {
	t.Helper()
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	cmd := exec.Command("/proc/self/exe")
	cmd.Env = append(os.Environ(), envHelper+"="+helper+":"+name)
	cmd.ExtraFiles = []*os.File{d}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: vpsRoot, Size: 65536}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: vpsRoot, Size: 65536}},
		// Root inside (uid 0): host UID vpsRoot, with every capability in the namespace and
		// none in the host's, as a VPS's root; any other uid has none at all.
		Credential: &syscall.Credential{Uid: uid, Gid: uid, NoSetGroups: true},
		Pdeathsig:  syscall.SIGKILL,
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("helper %s: %v: %s", helper, err, out.String())
		}
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		<-done
		t.Fatalf("helper %s: still running after 2 minutes: %s", helper, out.String())
	}
	return strings.TrimSpace(out.String())
}

// runHelper is a helper process's whole life, in directory /proc/self/fd/3: "fill:NAME" writes
// file NAME until a write fails and prints the error and the bytes written; "ioctl:" tries, on
// the directory, the btrfs resize and FITRIM ioctls and a change of the file system's label,
// and prints each outcome.
func runHelper(h string) int {
	if !isMapped() {
		fmt.Println("helper is not in a user namespace mapped onto the VPS's UIDs")
		return 1
	}
	what, name, _ := strings.Cut(h, ":")
	path := filepath.Join("/proc/self/fd/3", name)
	switch what {
	case "fill":
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o644)
		if err != nil {
			fmt.Println("open:", err)
			return 1
		}
		buf := bytes.Repeat([]byte{0x5a}, 1<<20)
		var n int64
		for {
			w, err := f.Write(buf)
			n += int64(w)
			if err == nil && n%(64<<20) == 0 {
				err = f.Sync() // delayed allocation may report the full disk here
			}
			if err != nil {
				fmt.Printf("%s %d\n", errnoName(err), n)
				return 0
			}
			if n > 64<<30 {
				fmt.Println("no error after 64 GiB")
				return 1
			}
		}
	case "ioctl":
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if err != nil {
			fmt.Println("open:", err)
			return 1
		}
		var a volArgs
		copy(a.name[:], "1:max")
		r := []string{"resize=" + errnoName(ioctlRetry(fd, iocResize, unsafe.Pointer(&a)))}
		var trim [3]uint64
		trim[1] = ^uint64(0)
		r = append(r, "fitrim="+errnoName(ioctlRetry(fd, iocFitrim, unsafe.Pointer(&trim[0]))))
		var label [256]byte
		copy(label[:], "mine")
		r = append(r, "setlabel="+errnoName(ioctlRetry(fd, iocSetFSLabel, unsafe.Pointer(&label[0]))))
		fmt.Println(strings.Join(r, " "))
		return 0
	}
	fmt.Println("unknown helper", h)
	return 1
}

// isMapped reports whether this process's user namespace maps its root onto vpsRoot, and it is
// in it.
func isMapped() bool {
	b, err := os.ReadFile("/proc/self/uid_map")
	f := strings.Fields(string(b))
	return err == nil && len(f) == 3 && f[0] == "0" && f[1] == strconv.Itoa(vpsRoot) && os.Getuid() != 65534
}

// Ioctls a tenant might try (include/uapi/linux/fs.h).
const (
	iocFitrim     = 0xc0185879 // _IOWR('X', 121, struct fstrim_range)
	iocSetFSLabel = 0x41009432 // _IOW(0x94, 50, char[256])
)

// errnoName names err's errno ("ENOSPC"), or "ok" for nil.
func errnoName(err error) string {
	if err == nil {
		return "ok"
	}
	var e unix.Errno
	if errors.As(err, &e) {
		if n := unix.ErrnoName(e); n != "" {
			return n
		}
		return "errno" + strconv.Itoa(int(e))
	}
	return err.Error()
}
