// Package nsenter runs a command inside a running VPS: in all of its namespaces (the user
// namespace included), its cgroup, its root directory, as its root user.
//
// Joining a user namespace is impossible for a multithreaded process, and every Go program is
// one, so the joining is done by C code that runs as a constructor, before the Go runtime starts,
// in a re-executed copy of vpsctl (runc's nsenter works the same way). The command is exec'd from
// C: the joined process never starts a Go runtime, which keeps `vpsctl exec` near the cost of
// nsenter(1).
//
// Any binary that wants to use Start must import this package (it carries the constructor).
//
// The same constructor is where vpsctl's other pre-Go-runtime processes begin, each chosen by
// an environment variable or the command line and never returning to Go: the VPS's init child
// (initchild.c), a running VPS's monitor resting as the reaper (reaper.c), destroy's background
// remover (rmtree.c, RemoveTree), the plain `vpsctl exec` (fastexec.c), the fork of
// `vpsctl start` (startfork.c, StartFD) and that of the short commands (exitfork.c,
// ReleaseCaller).
//
// Protocol (one SOCK_SEQPACKET socketpair, the child's end passed as an inherited fd named by
// the _VPSCTL_NSENTER environment variable):
//
//	parent                                   joiner (C constructor)               child
//	spawn /proc/self/exe ------------------> blocks reading its config
//	BeforeConfig(pid): move into the cgroup
//	config: "key=value\0"... "\0" ---------> setns(pidfd), setresuid(0), fork --> (in the PID ns)
//	                      <----------------- msg{STARTED, pid}                    pty: fd of master (SCM_RIGHTS)
//	                      <------------------------------------------------------ msg{ERROR, stage, errno} if exec fails
//	EOF (the child's end closes on exec)
//	wait(joiner): exit status mirrors the command's (a signal is re-raised)
//
// Config keys: pidfd (fd number of a pidfd of the VPS's init), ns (CLONE_NEW* flags to join),
// setgroups (0/1), tty (0/1), capdrop (hex mask of capabilities to drop from the bounding set),
// cwd, arg (repeated: argv), env (repeated: the command's whole environment). Errors cross as a
// typed struct (Error), never as text.
package nsenter

// #cgo CFLAGS: -Wall -O2
// #include <stdint.h>
// #include <stdlib.h>
// uint64_t vpsctl_fast_capdrop(void);
// extern int vpsctl_start_fd;
// extern int vpsctl_exit_fd;
// extern unsigned long vpsctl_host_slack;
// int vpsctl_fast_groups(const char *id);
// const char *vpsctl_fast_group_list(int spares);
import "C"

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"github.com/vpsctl/vpsctl/internal/sysfile"
	"github.com/vpsctl/vpsctl/internal/timerslack"
	"golang.org/x/sys/unix"
)

// Stage names where the joiner failed.
type Stage int32

// Keep in step with nsenter.c.
const (
	StageConfig Stage = iota + 1
	StageSetns
	StageIDs
	StageFork
	StagePty
	StageSendPty
	StageCaps
	StageChdir
	StageExec
)

var stageNames = map[Stage]string{StageConfig: "config", StageSetns: "setns", StageIDs: "setresuid",
	StageFork: "fork", StagePty: "pty", StageSendPty: "send pty", StageCaps: "capabilities",
	StageChdir: "chdir", StageExec: "exec"}

func (s Stage) String() string {
	if n, ok := stageNames[s]; ok {
		return n
	}
	return "stage " + strconv.Itoa(int(s))
}

// Error is a failure reported by the joiner.
type Error struct {
	Stage Stage
	Errno syscall.Errno
	Cmd   string
}

func (e *Error) Error() string {
	if e.Stage == StageExec {
		return fmt.Sprintf("%s: %v", e.Cmd, e.Errno)
	}
	return fmt.Sprintf("joining the VPS: %s: %v", e.Stage, e.Errno)
}

func (e *Error) Unwrap() error { return e.Errno }

// The constructor raised this process's timer slack and found the one it was started with.
func init() { timerslack.SetHost(uint64(C.vpsctl_host_slack)) }

const (
	msgStarted = 1
	msgError   = 2
	msgSize    = 16
)

// Config says what to run and where.
type Config struct {
	InitPID      int      // host PID of the VPS's init; its namespaces are joined
	NSFlags      int      // CLONE_NEW* flags of the namespaces to join
	Setgroups    bool     // setgroups(2) is allowed in the VPS's user namespace
	TTY          bool     // give the command a new pty from the VPS's devpts
	CapDrop      uint64   // capabilities to drop from the bounding set
	Dir          string   // working directory inside the VPS
	Args         []string // argv; Args[0] is looked up in PATH from Env
	Env          []string
	Stdin        *os.File // non-TTY mode only
	Stdout       *os.File
	Stderr       *os.File
	BeforeConfig func(pid int) error // runs while the joiner waits, e.g. to put it in the VPS's cgroup
}

// Process is a started command.
type Process struct {
	cmd *exec.Cmd
	// Pid is the host PID of the command.
	Pid int
	// Pty is the master side of the command's terminal (TTY mode), owned by the caller.
	Pty *os.File
}

// Start joins the VPS and starts the command. On error nothing is left running.
func Start(cfg Config) (*Process, error) {
	pidfd, err := unix.PidfdOpen(cfg.InitPID, 0)
	if err != nil {
		return nil, &os.SyscallError{Syscall: "pidfd_open", Err: err}
	}
	pf := os.NewFile(uintptr(pidfd), "pidfd")
	defer pf.Close()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, &os.SyscallError{Syscall: "socketpair", Err: err}
	}
	parent := os.NewFile(uintptr(fds[0]), "nsenter-parent")
	child := os.NewFile(uintptr(fds[1]), "nsenter-child")
	defer parent.Close()

	cmd := exec.Command("/proc/self/exe")
	cmd.Args = []string{"vpsctl-nsenter"}
	cmd.Env = append([]string{"_VPSCTL_NSENTER=3"}, timerslack.Env()...)
	cmd.ExtraFiles = []*os.File{child, pf} // fd 3, fd 4
	if cfg.TTY {
		cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, nil, os.Stderr
	} else {
		cmd.Stdin, cmd.Stdout, cmd.Stderr = cfg.Stdin, cfg.Stdout, cfg.Stderr
	}
	// The joiner dies with us. Pdeathsig fires when the creating thread exits, so the thread
	// is locked for the rest of this process's life (it is short: one command).
	runtime.LockOSThread()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		child.Close()
		return nil, err
	}
	child.Close()
	abort := func(err error) (*Process, error) {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, err
	}
	if cfg.BeforeConfig != nil {
		if err := cfg.BeforeConfig(cmd.Process.Pid); err != nil {
			return abort(err)
		}
	}
	var b strings.Builder
	kv := func(k, v string) { b.WriteString(k); b.WriteByte('='); b.WriteString(v); b.WriteByte(0) }
	kv("pidfd", "4")
	kv("ns", strconv.Itoa(cfg.NSFlags))
	kv("setgroups", boolStr(cfg.Setgroups))
	kv("tty", boolStr(cfg.TTY))
	kv("capdrop", strconv.FormatUint(cfg.CapDrop, 16))
	dir := cfg.Dir
	if dir == "" {
		dir = "/"
	}
	kv("cwd", dir)
	for _, a := range cfg.Args {
		kv("arg", a)
	}
	for _, e := range cfg.Env {
		kv("env", e)
	}
	b.WriteByte(0)
	// A SEQPACKET message is read whole by the joiner's read(2).
	if _, err := parent.Write([]byte(b.String())); err != nil {
		return abort(fmt.Errorf("nsenter config: %w", err))
	}
	p := &Process{cmd: cmd}
	buf := make([]byte, 64)
	oob := make([]byte, unix.CmsgSpace(4))
	for {
		n, oobn, _, _, err := unix.Recvmsg(int(parent.Fd()), buf, oob, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return abort(&os.SyscallError{Syscall: "recvmsg", Err: err})
		}
		if n == 0 {
			break // EOF: the command was exec'd (its end was close-on-exec)
		}
		if oobn > 0 {
			msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
			for _, m := range msgs {
				if rights, err := unix.ParseUnixRights(&m); err == nil {
					for _, fd := range rights {
						if p.Pty == nil {
							p.Pty = os.NewFile(uintptr(fd), "pty-master")
						} else {
							unix.Close(fd)
						}
					}
				}
			}
			continue
		}
		if n != msgSize {
			return abort(fmt.Errorf("nsenter: short message (%d bytes)", n))
		}
		kind := int32(binary.NativeEndian.Uint32(buf[0:]))
		stage := Stage(binary.NativeEndian.Uint32(buf[4:]))
		errno := syscall.Errno(binary.NativeEndian.Uint32(buf[8:]))
		switch kind {
		case msgStarted:
			p.Pid = int(binary.NativeEndian.Uint32(buf[12:]))
		case msgError:
			if p.Pty != nil {
				p.Pty.Close()
			}
			name := ""
			if len(cfg.Args) > 0 {
				name = cfg.Args[0]
			}
			return abort(&Error{Stage: stage, Errno: errno, Cmd: name})
		}
	}
	if p.Pid == 0 {
		return abort(errors.New("nsenter: joiner exited without starting the command"))
	}
	return p, nil
}

// Signal forwards sig to the command (through the joiner, which relays it).
func (p *Process) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Wait waits for the command and returns its exit status the way a shell reports it: the exit
// code, or 128+N for a command killed by signal N.
func (p *Process) Wait() (int, error) {
	err := p.cmd.Wait()
	st, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok {
		return 0, err
	}
	switch {
	case st.Exited():
		return st.ExitStatus(), nil
	case st.Signaled():
		return 128 + int(st.Signal()), nil
	}
	return 0, err
}

func boolStr(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// FastCapDrop is the bounding-set mask the C fast path of `vpsctl exec` drops (fastexec.c); it
// must equal the runtime's default (a test compares them).
func FastCapDrop() uint64 { return uint64(C.vpsctl_fast_capdrop()) }

// RemoveTree carries out a store.ReclaimJob in a background process (rmtree.c: no Go
// runtime, its own session, the files at the lowest CPU and I/O priority) and returns once that
// process runs: the directory is a destroyed VPS's, renamed into the state root's tmp/, with
// everything below it unmounted by the caller. The process inherits dirLock as fd 3 and
// vpsLock (if not nil; its file is vpsLockPath) as fd 4, and so holds those locks until it has
// done their parts: the held files (from fd 4 or 5 up) it closes first, then removes the groups
// (cgroup directories), then the VPS's lock file, and then lets go of that lock before it
// deletes any file. It is reaped by a goroutine, or by the host's init once the caller exited.
//
// After a stop, dir is "" and dirLock nil (there are no files to remove), and vpsLockPath "-"
// (the lock file stays): the process then closes the held files, removes the groups and lets go
// of the lock. Either way it then makes the spare groups that do not exist (cgroup
// directories: see cgroup.Manager.Spares) before it removes any file.
func RemoveTree(dir string, dirLock *os.File, groups []string, vpsLock *os.File, vpsLockPath string, spares []string, hold []*os.File) error {
	if dirLock == nil {
		null, err := sysfile.OpenFile(os.DevNull, os.O_RDONLY, 0) // fd 3's place
		if err != nil {
			return err
		}
		defer null.Close()
		dirLock = null
	}
	// A `run` has a spawner (spawner.c) that can be this process, with no exec.
	if reclaimBySpawner(dir, dirLock, groups, vpsLock, vpsLockPath, spares, hold) == nil {
		return nil
	}
	cmd := exec.Command("/proc/self/exe")
	cmd.Args[0] = "vpsctl-reclaim"
	cmd.Env = []string{"_VPSCTL_RMTREE=" + dir}
	cmd.ExtraFiles = []*os.File{dirLock}
	if vpsLock != nil {
		cmd.Env = append(cmd.Env, "_VPSCTL_RMTREE_LOCK="+vpsLockPath)
		cmd.ExtraFiles = append(cmd.ExtraFiles, vpsLock)
	}
	if len(groups) > 0 {
		cmd.Env = append(cmd.Env, "_VPSCTL_RMTREE_GROUPS="+strings.Join(groups, "\n"))
	}
	if len(spares) > 0 {
		cmd.Env = append(cmd.Env, "_VPSCTL_RMTREE_SPARES="+strings.Join(spares, "\n"))
	}
	cmd.ExtraFiles = append(cmd.ExtraFiles, hold...)
	if err := cmd.Start(); err != nil {
		return err
	}
	go cmd.Wait()
	return nil
}

// FastStopGroups returns the cgroup directories, and the spare slots beside them, that the C
// fast path of `vpsctl stop --kill` (fastlife.c) hands the remover for VPS id (ok false: it
// would leave the stop to Go). Only for the test that compares them with package cgroup's.
func FastStopGroups(id uint32) (groups, spares []string, ok bool) {
	cid := C.CString(strconv.FormatUint(uint64(id), 10))
	defer C.free(unsafe.Pointer(cid))
	if C.vpsctl_fast_groups(cid) < 0 {
		return nil, nil, false
	}
	return strings.Fields(C.GoString(C.vpsctl_fast_group_list(0))), strings.Fields(C.GoString(C.vpsctl_fast_group_list(1))), true
}

// StartFD is the pipe to the parent that `vpsctl start` forked before the Go runtime started
// (startfork.c), or -1: this process is then that start's child and may carry on as the VPS's
// monitor once it has written its exit code there.
func StartFD() int { return int(C.vpsctl_start_fd) }

// ReleaseCaller ends the command for its caller with exit code code, if the constructor forked
// a parent that waits for it (exitfork.c): stdin, stdout and stderr are let go first (a caller
// reading them sees their end now; nothing may be printed after this), then the code goes to
// the parent, which exits with it. The rest of this process's exit happens off the caller's
// clock. Without such a parent it does nothing.
func ReleaseCaller(code int) {
	fd := int(C.vpsctl_exit_fd)
	if fd < 0 {
		return
	}
	C.vpsctl_exit_fd = -1
	if null, err := unix.Open("/dev/null", unix.O_RDWR|unix.O_CLOEXEC, 0); err == nil {
		for std := 0; std <= 2; std++ {
			unix.Dup2(null, std)
		}
		unix.Close(null)
	}
	unix.Write(fd, []byte{byte(code)})
	unix.Close(fd)
}
