// Package lxcfs gives VPSs views of /proc and /sys that reflect their own limits, through
// LXCFS (Debian's lxcfs package, the standard LXC and Incus use): its FUSE file system serves
// /proc/meminfo, cpuinfo, stat, uptime, loadavg, swaps, diskstats and
// /sys/devices/system/cpu/online computed for the cgroup of whoever reads them, and a VPS's
// boot binds those files over its own /proc and /sys.
//
// One LXCFS serves the host. vpsctl uses the host's service when it runs (Debian's unit mounts
// it at /var/lib/lxcfs: `systemctl enable --now lxcfs`); otherwise it starts one of its own,
// mounted at STATE/lxcfs and supervised by a small process of vpsctl's (restarted if it dies,
// its flock and PID in STATE/lxcfs.lock, its log STATE/lxcfs.log), found again by every later
// command, and stopped with `vpsctl lxcfs stop`.
//
// Invariants: a VPS boots whether or not LXCFS is there (Find and Ensure fail, the boot warns
// and binds nothing); a VPS's views are live only while the LXCFS instance it booted with runs
// (LXCFS restarted is a new FUSE connection: the old binds read ENOTCONN), which Live tells.
package lxcfs

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vpsctl/vpsctl/internal/sysfile"
	"github.com/vpsctl/vpsctl/prestart"
	"github.com/vpsctl/vpsctl/store"
	"golang.org/x/sys/unix"
)

// ServiceMount is where the host's own LXCFS service mounts it (Debian's lxcfs.service).
const ServiceMount = "/var/lib/lxcfs"

// Files are what a VPS sees through LXCFS, relative to both LXCFS's mount and the VPS's root.
var Files = []string{
	"proc/cpuinfo", "proc/diskstats", "proc/loadavg", "proc/meminfo", "proc/stat", "proc/swaps",
	"proc/uptime", "sys/devices/system/cpu/online",
}

// Errors callers branch on.
var (
	ErrNotInstalled = errors.New("lxcfs is not installed (apt-get install lxcfs)")
	ErrNotRunning   = errors.New("lxcfs did not come up")
)

// fuseMagic is FUSE_SUPER_MAGIC, statfs's f_type of a FUSE mount.
const fuseMagic = 0x65735546

// Live reports whether dir is a working LXCFS mount: a FUSE file system whose meminfo answers
// (a dead instance's mount answers ENOTCONN).
func Live(dir string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil || st.Type != fuseMagic {
		return false
	}
	_, err := os.Stat(filepath.Join(dir, "proc", "meminfo"))
	return err == nil
}

// deadConn tells a dead LXCFS's answer: ENOTCONN once its connection is gone, ECONNABORTED
// while the kernel is still aborting it.
func deadConn(err error) bool {
	return errors.Is(err, unix.ENOTCONN) || errors.Is(err, unix.ECONNABORTED)
}

// ownMount is vpsctl's own instance's mount point under state root.
func ownMount(root string) string { return filepath.Join(root, "lxcfs") }

// Find returns a live LXCFS mount: the host service's, else vpsctl's own of this state root.
func Find(root string) (string, bool) {
	for _, d := range []string{ServiceMount, ownMount(root)} {
		if Live(d) {
			return d, true
		}
	}
	return "", false
}

// Ensure returns a live LXCFS mount, starting vpsctl's own supervised instance for state root
// if none runs (and waiting for it, bounded): ErrNotInstalled without the lxcfs program,
// ErrNotRunning if it did not come up (its log says why).
func Ensure(root string) (string, error) {
	if d, ok := Find(root); ok {
		return d, nil
	}
	bin := program()
	if bin == "" {
		return "", ErrNotInstalled
	}
	held, text := store.LockHeld(lockPath(root))
	if held && !sameMountNS(text) {
		// A supervisor started from another mount namespace serves that one only: replace it
		// with one in ours (the host's, which the callers' clones come from).
		if _, err := Stop(root); err != nil {
			return "", err
		}
		held = false
	}
	// A supervisor of ours gets LXCFS up in tens of milliseconds; one that runs already and
	// has no live mount is between restarts of a failing LXCFS: a boot does not wait long.
	wait := 2 * time.Second // the supervisor's first restart wait, and LXCFS's start
	if !held {
		if err := startSupervisor(root, bin); err != nil {
			return "", err
		}
		wait = 5 * time.Second
	}
	dir := ownMount(root)
	t0 := time.Now()
	for deadline := t0.Add(wait); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		// Live, and the running VPSs' views bound to it: what the caller sees next (a
		// status, a VPS's /proc/meminfo) is this instance's.
		if _, err := os.Stat(boundPath(root)); err == nil && Live(dir) {
			return dir, nil
		}
		// A supervisor that could not set up (its log says why) has let go of its lock.
		if time.Since(t0) > 300*time.Millisecond {
			if held, _ := store.LockHeld(lockPath(root)); !held {
				return "", fmt.Errorf("%w: its supervisor exited (see %s)", ErrNotRunning, logPath(root))
			}
		}
	}
	return "", fmt.Errorf("%w within %v (see %s)", ErrNotRunning, wait, logPath(root))
}

// program is the lxcfs program's path ("" if it is not installed), looked for where Debian puts
// it and in PATH (a monitor's environment has none).
func program() string {
	for _, p := range []string{"/usr/bin/lxcfs", "/usr/local/bin/lxcfs", "/usr/sbin/lxcfs"} {
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	p, _ := exec.LookPath("lxcfs")
	return p
}

// sameMountNS reports whether the process whose PID text holds is in the calling thread's
// mount namespace.
func sameMountNS(text string) bool {
	pid, err := strconv.Atoi(strings.TrimSpace(text))
	if err != nil {
		return false
	}
	theirs, err1 := os.Readlink("/proc/" + strconv.Itoa(pid) + "/ns/mnt")
	ours, err2 := os.Readlink("/proc/thread-self/ns/mnt")
	return err1 == nil && err2 == nil && theirs == ours
}

func lockPath(root string) string { return filepath.Join(root, "lxcfs.lock") }
func logPath(root string) string  { return filepath.Join(root, "lxcfs.log") }

// boundPath is there while the supervisor's LXCFS serves and the running VPSs' views are bound
// to it (its first refresh after each start of LXCFS is done).
func boundPath(root string) string { return filepath.Join(root, "lxcfs.bound") }

// stageName is the supervisor's stage (prestart.StageEnv).
const stageName = "lxcfs"

// startSupervisor starts the supervisor of state root's LXCFS, detached: a session of its own,
// stdio to its log. Two commands racing both start one; the loser finds the lock held and exits.
func startSupervisor(root, bin string) error {
	logf, err := sysfile.OpenFile(logPath(root), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command("/proc/self/exe", bin, root)
	cmd.Args[0] = "vpsctl-lxcfs"
	cmd.Env = []string{prestart.StageEnv + "=" + stageName, "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the lxcfs supervisor: %w", err)
	}
	return cmd.Process.Release()
}

// Stop stops state root's own LXCFS (its supervisor, then LXCFS, then the mount): the views
// of the VPSs booted with it are detached, so they see the host's numbers until an LXCFS runs
// again and its views are bound (TestGuestViewsWithoutLXCFS). false: none ran.
func Stop(root string) (bool, error) {
	held, text := store.LockHeld(lockPath(root))
	if !held {
		unix.Unmount(ownMount(root), unix.MNT_DETACH) // a stale mount of a killed one
		return false, nil
	}
	pid, err := strconv.Atoi(strings.TrimSpace(text))
	if err != nil || pid <= 0 {
		return true, fmt.Errorf("lxcfs supervisor: no PID in %s", lockPath(root))
	}
	if err := unix.Kill(pid, unix.SIGTERM); err != nil && err != unix.ESRCH {
		return true, os.NewSyscallError("kill", err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if held, _ := store.LockHeld(lockPath(root)); !held {
			return true, nil
		}
		if time.Now().After(deadline) {
			return true, fmt.Errorf("lxcfs supervisor (PID %d) still running after 10s", pid)
		}
	}
}

// A VPS's views, as ViewState finds them.
const (
	ViewLive = "live" // served by a running LXCFS
	ViewDead = "dead" // bound, but their LXCFS is gone: reads fail until the VPS restarts
	ViewNone = "none" // not bound: the VPS booted without LXCFS and sees the host's numbers
)

// ViewState tells what serves the view file at path: a VPS's /proc/meminfo seen from the host
// through /proc/INITPID/root.
func ViewState(path string) string {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		if deadConn(err) {
			return ViewDead
		}
		return ViewNone
	}
	if st.Type != fuseMagic {
		return ViewNone
	}
	if _, err := os.Stat(path); err != nil {
		return ViewDead
	}
	return ViewLive
}

// Instance describes the LXCFS vpsctl uses for a state root.
type Instance struct {
	Mount         string `json:"mount,omitempty"`          // "" when none is live
	Service       bool   `json:"service"`                  // the host's own service, not vpsctl's
	SupervisorPID int    `json:"supervisor_pid,omitempty"` // vpsctl's own instance's supervisor
	Installed     bool   `json:"installed"`                // the lxcfs program is there
}

// Status describes the LXCFS state root's VPSs boot with: the host's service if live, else
// vpsctl's own.
func Status(root string) Instance {
	in := Instance{Installed: program() != ""}
	if held, text := store.LockHeld(lockPath(root)); held {
		in.SupervisorPID, _ = strconv.Atoi(strings.TrimSpace(text))
	}
	if d, ok := Find(root); ok {
		in.Mount, in.Service = d, d == ServiceMount
	}
	return in
}
