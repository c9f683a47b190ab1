package nsenter

// extern int vpsctl_spawner_fd;
// extern int vpsctl_spawner_pid;
// extern int vpsctl_spawner_persistent;
import "C"

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// The spawner (spawner.c) is a process forked before the Go runtime started, for commands that
// boot a VPS: it clones a VPS's init child with no copy of the Go process and no exec, and can
// become a run's background remover. Either use is optional: without a spawner (VPSCTL_NO_SPAWNER,
// a spawned monitor) the callers do the same in Go.

// Keep in step with spawner.c.
const (
	opClone   = 1
	opReclaim = 2
	reqSize   = 32
)

// spawner is this process's (the constructor forked it before this package's variables were
// initialised); fd -1: none, or no more.
var spawner = struct {
	sync.Mutex
	fd, pid int
}{fd: int(C.vpsctl_spawner_fd), pid: int(C.vpsctl_spawner_pid)}

// HaveSpawner reports whether this process has a spawner to ask (see CloneInit).
func HaveSpawner() bool {
	spawner.Lock()
	defer spawner.Unlock()
	return spawner.fd >= 0
}

// reap waits for pid, a child of this process, to exit and collects it.
func reap(pid int) {
	var ws unix.WaitStatus
	for {
		if _, err := unix.Wait4(pid, &ws, 0, nil); err != unix.EINTR {
			return
		}
	}
}

// ErrNoSpawner: this process has no spawner (any more).
var ErrNoSpawner = errors.New("no spawner")

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
// waited for and reaped here), running initchild.c, as the VPS's root. ErrNoSpawner: do it in Go.
func CloneInit(r CloneRequest) (int, error) {
	spawner.Lock()
	defer spawner.Unlock()
	fd := spawner.fd
	if fd < 0 {
		return 0, ErrNoSpawner
	}
	req := make([]byte, reqSize)
	binary.NativeEndian.PutUint32(req[0:], opClone)
	binary.NativeEndian.PutUint32(req[4:], uint32(r.Pdeathsig))
	binary.NativeEndian.PutUint64(req[8:], uint64(r.Flags))
	binary.NativeEndian.PutUint32(req[16:], r.MapHost)
	binary.NativeEndian.PutUint32(req[20:], r.MapSize)
	fds := []int{r.MountNS, r.Cwd, int(r.Stdin.Fd()), int(r.Stdout.Fd()), int(r.Stderr.Fd()), int(r.Sock.Fd())}
	if r.CgroupFD >= 0 {
		binary.NativeEndian.PutUint32(req[24:], 1)
		fds = append(fds, r.CgroupFD)
	}
	if filepath.IsAbs(r.CwdPath) {
		req = append(req, r.CwdPath+"\x00"...)
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
	if spawner.fd < 0 {
		return
	}
	unix.Close(spawner.fd)
	spawner.fd = -1
	// It exits at once; nothing waits for its exit here (a monitor becomes the C reaper,
	// which reaps any child of its, and a reap before the exec is just as good).
	go reap(spawner.pid)
}

// reclaimBySpawner hands a RemoveTree job to the spawner, which becomes the remover (and is
// then gone). ErrNoSpawner: start a remover.
func reclaimBySpawner(dir string, dirLock *os.File, groups []string, vpsLock *os.File, vpsLockPath string, spares []string, hold []*os.File) error {
	spawner.Lock()
	defer spawner.Unlock()
	fd := spawner.fd
	if fd < 0 {
		return ErrNoSpawner
	}
	req := make([]byte, reqSize, reqSize+len(dir)+len(vpsLockPath)+64*(len(groups)+len(spares)))
	binary.NativeEndian.PutUint32(req[0:], opReclaim)
	fds := []int{int(dirLock.Fd())}
	lockPath := ""
	if vpsLock != nil {
		fds, lockPath = append(fds, int(vpsLock.Fd())), vpsLockPath
	}
	for _, f := range hold {
		fds = append(fds, int(f.Fd()))
	}
	req = append(req, dir+"\x00"+lockPath+"\x00"+strings.Join(groups, "\n")+"\x00"+strings.Join(spares, "\n")+"\x00"...)
	if _, _, err := call(fd, req, fds); err != nil {
		return err
	}
	// It is the remover now. It waits for this end's close, which tells it that this process
	// has closed its copies of the held files (whoever closes a mount namespace last unmounts
	// it, which must be the remover). The caller's Close of them again is harmless.
	for _, f := range hold {
		f.Close()
	}
	if C.vpsctl_spawner_persistent != 0 {
		// A spare keeper's spawner forks the remover once told, and stays.
		if _, err := unix.Write(fd, []byte{0}); err != nil {
			return os.NewSyscallError("spawner: write", err)
		}
		return nil
	}
	unix.Close(fd)
	spawner.fd = -1
	return nil
}
