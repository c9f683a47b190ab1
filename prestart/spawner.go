package prestart

// extern int vpsctl_spawner_fd;
// extern int vpsctl_spawner_pid;
// extern int vpsctl_spawner_persistent;
import "C"

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// The spawner (spawner.c) is a small process for commands that boot a VPS: it clones a VPS's
// init child with no copy of the Go process and no exec, and can become a background remover.
// The vpsctl CLI's front door and the gate (for a monitor or a spare keeper) fork one before
// the Go runtime starts; a program with none (one that imports the library) starts one the
// first time it needs it (startSpawner), with an exec.

// spawner is this process's (the constructor forked it before this package's variables were
// initialised); fd -1: none, or no more.
var spawner = struct {
	sync.Mutex
	fd, pid int
	// persistent: it serves every request of this process (a keeper's, a started one), and
	// forks a remover for a reclaim instead of becoming one.
	persistent bool
	// started: this process had one (forked before Go, or started): a one-shot spawner that
	// is gone is not started again (a monitor's, once its init is cloned).
	started bool
}{fd: int(C.vpsctl_spawner_fd), pid: int(C.vpsctl_spawner_pid), persistent: C.vpsctl_spawner_persistent != 0,
	started: C.vpsctl_spawner_fd >= 0}

// reap waits for pid, a child of this process, to exit and collects it.
func reap(pid int) {
	var ws unix.WaitStatus
	for {
		if _, err := unix.Wait4(pid, &ws, 0, nil); err != unix.EINTR {
			return
		}
	}
}

// SpawnerPID is the PID of this process's spawner, 0 if it has none (any more): the monitor
// takes it along into its own cgroup (monitor.JoinGroup), since what it clones is born there.
func SpawnerPID() int {
	spawner.Lock()
	defer spawner.Unlock()
	if spawner.fd < 0 {
		return 0
	}
	return spawner.pid
}

// ErrNoSpawner: this process has no spawner (any more).
var ErrNoSpawner = errors.New("no spawner")

// startSpawner starts a persistent spawner for this process, with the spawner lock held: one
// exec of this program, gated into spawner.c (prestart.c). It serves the process until it exits.
func startSpawner() error {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("socketpair", err)
	}
	child := os.NewFile(uintptr(fds[1]), "spawner")
	defer child.Close()
	cmd := exec.Command("/proc/self/exe")
	cmd.Args[0] = "vpsctl-spawner"
	cmd.Env = []string{StageEnv + "=spawner:3"}
	cmd.ExtraFiles = []*os.File{child}
	if err := cmd.Start(); err != nil {
		unix.Close(fds[0])
		return fmt.Errorf("start spawner: %w", err)
	}
	spawner.fd, spawner.pid, spawner.persistent = fds[0], cmd.Process.Pid, true
	return nil
}

// spawnerFD is the spawner's socket, started if this process has none yet; the caller holds the
// spawner lock.
func spawnerFD() (int, error) {
	if spawner.fd < 0 && !spawner.started {
		spawner.started = true
		if err := startSpawner(); err != nil {
			return -1, err
		}
	}
	if spawner.fd < 0 {
		return -1, ErrNoSpawner
	}
	return spawner.fd, nil
}

// CloneRequest is what CloneInit needs: the init child's clone flags (CLONE_NEW*), its user
// namespace's map (0..MapSize-1 onto MapHost..; MapSize 0: none), its parent-death signal (0:
// none), the mount namespace and working directory to clone it from (a boot's; the directory
// by path too, CwdPath, for a child the spawner cloned in advance, whose mount namespace is a
// copy of the host's), its stdio, the init socket it gets as fd 3 (initchild.c), and a cgroup2
// directory to clone it into (-1: none).
type CloneRequest struct {
	Flags                 uintptr
	MapHost, MapSize      uint32
	Pdeathsig             syscall.Signal
	MountNS, Cwd          int
	CwdPath               string
	Stdin, Stdout, Stderr *os.File
	Sock                  *os.File
	CgroupFD              int
}

// CloneInit has the spawner clone a VPS's init child, which is this process's child (so it is
// waited for and reaped here), running initchild.c, as the VPS's root.
func CloneInit(r CloneRequest) (int, error) {
	spawner.Lock()
	defer spawner.Unlock()
	fd, err := spawnerFD()
	if err != nil {
		return 0, err
	}
	m := (&Msg{}).Add("op", "clone").AddHex("flags", uint64(r.Flags)).AddHex("maphost", uint64(r.MapHost))
	m.AddHex("mapsize", uint64(r.MapSize)).AddInt("pdeathsig", int(r.Pdeathsig))
	fds := []int{r.MountNS, r.Cwd, int(r.Stdin.Fd()), int(r.Stdout.Fd()), int(r.Stderr.Fd()), int(r.Sock.Fd())}
	if r.CgroupFD >= 0 {
		m.Add("cgroup", "1")
		fds = append(fds, r.CgroupFD)
	}
	if filepath.IsAbs(r.CwdPath) {
		m.Add("cwd", r.CwdPath)
	}
	req, err := m.Bytes()
	if err != nil {
		return 0, err
	}
	pid, discarded, err := call(fd, req, fds)
	if discarded > 0 {
		reap(discarded) // a child cloned in advance but not used (other flags): ours
	}
	if err != nil {
		if pid > 0 {
			reap(pid) // killed by the spawner after a failed map: ours to reap
		}
		return 0, err
	}
	return pid, nil
}

// call sends one request and reads the reply: the pid it names, a discarded child cloned in
// advance (0: none) and its error.
func call(fd int, req []byte, fds []int) (pid, discarded int, err error) {
	if err := unix.Sendmsg(fd, req, unix.UnixRights(fds...), nil, 0); err != nil {
		return 0, 0, os.NewSyscallError("spawner: sendmsg", err)
	}
	rep := make([]byte, 16)
	for {
		n, err := unix.Read(fd, rep)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, 0, os.NewSyscallError("spawner: read", err)
		}
		if n != len(rep) {
			return 0, 0, errors.New("spawner: no reply")
		}
		break
	}
	pid = int(int32(binary.NativeEndian.Uint32(rep[0:])))
	discarded = int(int32(binary.NativeEndian.Uint32(rep[8:])))
	if e := syscall.Errno(binary.NativeEndian.Uint32(rep[4:])); e != 0 {
		return pid, discarded, os.NewSyscallError("spawner", e)
	}
	return pid, discarded, nil
}

// CloseSpawner ends the spawner, if there is one, and reaps it in the background: a monitor
// calls it once its VPS's init is cloned (the spawner is its child, which would otherwise stay
// a zombie).
func CloseSpawner() {
	spawner.Lock()
	defer spawner.Unlock()
	if spawner.fd < 0 || spawner.persistent {
		return
	}
	unix.Close(spawner.fd)
	spawner.fd = -1
	// It exits at once; nothing waits for its exit here (a monitor becomes the C reaper,
	// which reaps any child of its, and a reap before the exec is just as good).
	go reap(spawner.pid)
}

// reclaimBySpawner hands job to the spawner, which becomes the remover (or, a persistent one,
// forks it). ErrNoSpawner: start a remover.
func reclaimBySpawner(job RemoveJob) error {
	spawner.Lock()
	defer spawner.Unlock()
	fd := spawner.fd
	if fd < 0 {
		return ErrNoSpawner
	}
	files, req, err := job.msg("reclaim")
	if err != nil {
		return err
	}
	fds := make([]int, len(files))
	for i, f := range files {
		fds[i] = int(f.Fd())
	}
	if _, _, err := call(fd, req, fds); err != nil {
		return err
	}
	// It is the remover now. It waits for this end's close, which tells it that this process
	// has closed its copies of the held files (whoever closes a mount namespace last unmounts
	// it, which must be the remover). The caller's Close of them again is harmless.
	for _, f := range job.Hold {
		f.Close()
	}
	if spawner.persistent {
		// A persistent spawner forks the remover once told, and stays.
		if _, err := unix.Write(fd, []byte{0}); err != nil {
			return os.NewSyscallError("spawner: write", err)
		}
		return nil
	}
	unix.Close(fd)
	spawner.fd = -1
	return nil
}
