package runtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// stageError tags an error of the init child with the step that failed.
type stageError struct {
	stage string
	err   error
}

func (e *stageError) Error() string { return e.stage + ": " + e.err.Error() }
func (e *stageError) Unwrap() error { return e.err }

func at(stage string, err error) error {
	if err == nil {
		return nil
	}
	return &stageError{stage, err}
}

// initMain is the init child: it runs as PID 1 of the VPS's new PID namespace, as root of its
// user namespace, and turns itself into the VPS's init.
func initMain() {
	// unshare(CLONE_NEWCGROUP) applies to the calling thread only, and exec keeps the calling
	// thread's namespaces: both must happen on this one locked thread.
	goruntime.LockOSThread()
	sock := os.NewFile(3, "init-sock")
	msg, rootFd, err := recvInit(sock)
	if err == nil {
		err = setupInit(msg, rootFd)
	}
	// Only failures reach here: a successful exec replaces this program.
	ce := childError{Stage: "init", Msg: err.Error()}
	var se *stageError
	if errors.As(err, &se) {
		ce.Stage = se.stage
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		ce.Errno = int(errno)
	}
	b, _ := json.Marshal(ce)
	sock.Write(b)
	os.Exit(1)
}

func recvInit(sock *os.File) (*initMsg, int, error) {
	buf := make([]byte, 1<<16)
	oob := make([]byte, unix.CmsgSpace(4))
	var n, oobn int
	var err error
	for {
		n, oobn, _, _, err = unix.Recvmsg(int(sock.Fd()), buf, oob, 0)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return nil, -1, at("receive config", err)
	}
	if n == 0 {
		return nil, -1, at("receive config", errors.New("monitor went away"))
	}
	var m initMsg
	if err := json.Unmarshal(buf[:n], &m); err != nil {
		return nil, -1, at("receive config", err)
	}
	fd := -1
	if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
		for _, cm := range msgs {
			if fds, err := unix.ParseUnixRights(&cm); err == nil && len(fds) > 0 {
				fd = fds[0]
			}
		}
	}
	if fd < 0 {
		return nil, -1, at("receive config", errors.New("no rootfs mount fd"))
	}
	return &m, fd, nil
}

func setupInit(m *initMsg, rootFd int) error {
	has := func(ns string) bool { return slices.Contains(m.Namespaces, ns) }
	if has("cgroup") {
		// Now that the monitor has put us in the VPS's group, that group becomes the root of the
		// VPS's cgroup view (the seed's container_clone: a VPS sees only its own subtree).
		if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
			return at("unshare cgroup namespace", err)
		}
	}
	// Nothing we mount may propagate back to the monitor's (or the host's) namespace.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return at("make mounts private", err)
	}
	// Our working directory is the VPS's mount point, inherited from the monitor and translated
	// into our mount namespace by clone. We attach the root there by fd, with no path lookup:
	// as the VPS's root we may not traverse the host's state directory.
	if err := unix.MoveMount(rootFd, "", unix.AT_FDCWD, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		return at("attach root filesystem", os.NewSyscallError("move_mount", err))
	}
	if err := unix.Fchdir(rootFd); err != nil {
		return at("chdir root", err)
	}
	unix.Close(rootFd)
	if err := mountSpecial(has("net"), has("cgroup"), m.Console); err != nil {
		return err
	}
	// pivot_root(".", ".") stacks the old root on top of the new one; unmounting it leaves the
	// VPS with no path back to the host's tree (unlike chroot).
	if err := unix.PivotRoot(".", "."); err != nil {
		return at("pivot_root", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return at("detach old root", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return at("chdir /", err)
	}
	if has("uts") {
		if err := unix.Sethostname([]byte(m.Hostname)); err != nil {
			return at("sethostname", err)
		}
		if err := unix.Setdomainname([]byte(m.Domainname)); err != nil {
			return at("setdomainname", err)
		}
	}
	for _, c := range m.CapDrop {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && err != unix.EINVAL {
			return at("drop capabilities", err)
		}
	}
	if len(m.Init) == 0 {
		return at("exec init", errors.New("no init"))
	}
	// No host fd other than the console may reach the VPS (CVE-2024-21626); our socket is
	// close-on-exec, so a failed exec can still be reported.
	unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	path := m.Init[0]
	if !strings.Contains(path, "/") {
		// A one-shot command named without a path: look it up in the VPS's PATH.
		for _, d := range []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"} {
			if unix.Access(d+"/"+path, unix.X_OK) == nil {
				path = d + "/" + path
				break
			}
		}
	}
	err := unix.Exec(path, m.Init, m.Env)
	return at("exec "+m.Init[0], err)
}

const (
	msNoSuidDevExec = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
)

// maskedPaths hide host information from the VPS (bound to /dev/null, or an empty read-only
// tmpfs for directories): kernel memory, the host's keys, timers and scheduler state.
var maskedPaths = []string{"proc/kcore", "proc/keys", "proc/timer_list", "proc/sched_debug",
	"proc/latency_stats", "proc/acpi", "proc/scsi", "sys/firmware", "sys/kernel/security"}

// readonlyPaths stay visible but cannot be written (host-wide kernel knobs).
var readonlyPaths = []string{"proc/sys", "proc/sysrq-trigger", "proc/irq", "proc/bus", "proc/fs"}

// mountSpecial builds the VPS's /proc, /sys, /dev and /run below the current directory (the new
// root). console is the host path of the pty slave the monitor made (also our stdio).
func mountSpecial(ownNet, ownCgroup bool, console string) error {
	mk := func(src, dst, fstype string, flags uintptr, data string) error {
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return at("mkdir "+dst, err)
		}
		if err := unix.Mount(src, dst, fstype, flags, data); err != nil {
			return at("mount "+dst, &os.PathError{Op: "mount " + fstype, Path: "/" + dst, Err: err})
		}
		return nil
	}
	if err := mk("proc", "proc", "proc", msNoSuidDevExec, ""); err != nil {
		return err
	}
	if ownNet {
		if err := mk("sysfs", "sys", "sysfs", msNoSuidDevExec|unix.MS_RDONLY, ""); err != nil {
			return err
		}
	} else {
		// sysfs can only be mounted by the owner of the network namespace; without one of its
		// own the VPS gets a read-only view of the host's.
		if err := mk("/sys", "sys", "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return err
		}
		if err := unix.Mount("", "sys", "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|msNoSuidDevExec, ""); err != nil {
			return at("remount /sys read-only", err)
		}
	}
	if ownCgroup {
		if err := mountGuestCgroups(); err != nil {
			return err
		}
	}
	if err := mk("tmpfs", "dev", "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC, "mode=755,size=64k"); err != nil {
		return err
	}
	for _, d := range []string{"null", "zero", "full", "random", "urandom", "tty"} {
		if err := bindFile("/dev/"+d, "dev/"+d); err != nil {
			return err
		}
	}
	// By path, not through /proc/self/fd: that would name the monitor's mount of the host's
	// devpts, which is not in our mount namespace (EINVAL).
	if err := bindFile(console, "dev/console"); err != nil {
		return err
	}
	if err := mk("devpts", "dev/pts", "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5"); err != nil {
		return err
	}
	if err := mk("shm", "dev/shm", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777,size=65536k"); err != nil {
		return err
	}
	for name, target := range map[string]string{"ptmx": "pts/ptmx", "fd": "/proc/self/fd", "stdin": "/proc/self/fd/0",
		"stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2"} {
		if err := os.Symlink(target, "dev/"+name); err != nil {
			return at("symlink /dev/"+name, err)
		}
	}
	if err := mk("tmpfs", "run", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=755,size=20%"); err != nil {
		return err
	}
	if err := os.MkdirAll("run/lock", os.ModeSticky|0o777); err != nil {
		return at("mkdir /run/lock", err)
	}
	if fi, err := os.Lstat("tmp"); err != nil {
		if err := os.Mkdir("tmp", os.ModeSticky|0o777); err != nil {
			return at("mkdir /tmp", err)
		}
		os.Chmod("tmp", os.ModeSticky|0o777)
	} else if !fi.IsDir() {
		return at("/tmp", fmt.Errorf("not a directory"))
	}
	for _, p := range maskedPaths {
		fi, err := os.Lstat(p)
		if err != nil {
			continue
		}
		if fi.IsDir() {
			err = unix.Mount("tmpfs", p, "tmpfs", unix.MS_RDONLY|msNoSuidDevExec, "size=0")
		} else {
			err = unix.Mount("/dev/null", p, "", unix.MS_BIND, "")
		}
		if err != nil {
			return at("mask /"+p, err)
		}
	}
	for _, p := range readonlyPaths {
		if _, err := os.Lstat(p); err != nil {
			continue
		}
		if err := unix.Mount(p, p, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return at("bind /"+p, err)
		}
		if err := unix.Mount("", p, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|msNoSuidDevExec, ""); err != nil {
			return at("read-only /"+p, err)
		}
	}
	return nil
}

// bindFile bind-mounts the file src onto dst, creating dst.
func bindFile(src, dst string) error {
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return at("create "+dst, err)
	}
	f.Close()
	if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
		return at("bind "+filepath.Base(dst), &os.PathError{Op: "bind", Path: src, Err: err})
	}
	return nil
}
