// Package prestart holds vpsctl's C programs, which run in processes vpsctl starts, before (or
// instead of) a Go runtime, and the Go side that starts them and talks to them:
//
//   - the joiner (join.c): runs a command inside a running VPS, in all of its namespaces (the
//     user namespace included, which a multithreaded Go process can never join), its groups,
//     its root, as its root user;
//   - the init child (initchild.c): builds a booting VPS's root around itself and execs its
//     init;
//   - the spawner (spawner.c): clones init children without copying a Go process, and becomes
//     the background remover;
//   - the reaper (reaper.c): a running VPS's monitor at rest, with no Go runtime;
//   - the remover (remover.c): deletes a destroyed VPS's files, a stopped VPS's groups, in the
//     background.
//
// Invariants: the C code is entered through one gate (prestart.c), the environment variable
// _VPSCTL_STAGE, which only vpsctl sets on processes it starts: a program that imports this
// package (through package runtime) behaves like itself whatever its argv. Every program reads
// its instructions as one message in one format (msg.h, Msg), written by Go; C never reads
// vpsctl's files for facts, decides nothing Go decides, and prints no message of Go's.
//
// The joiner's protocol (one SOCK_SEQPACKET socketpair, the child's end named by
// _VPSCTL_STAGE=join:FD):
//
//	parent                                   joiner (C)                            child
//	spawn /proc/self/exe ------------------> blocks reading its message
//	message ------------------------------->  join groups, setns(pidfd), become root, fork --> (in the PID ns)
//	                      <----------------- report{STARTED, pid}                  pty: fd of master (SCM_RIGHTS)
//	                      <------------------------------------------------------- report{ERROR, stage, errno} if exec fails
//	EOF (the child's end closes on exec)
//	wait(joiner): exit status mirrors the command's (a signal is re-raised)
//
// Message keys: pidfd (fd of a pidfd of the VPS init), ns (CLONE_NEW* flags to join),
// setgroups (0/1), tty (0/1), capdrop (hex mask of capabilities to drop from the bounding set),
// cwd, tasks (a v1 tasks file the joiner writes 0 to, repeated: it is cloned into the cgroup2
// group), arg (repeated: argv), env (repeated: the command's whole environment). Errors cross as a typed struct (Error), never as text. The
// vpsctl CLI's front door (cmd/vpsctl/frontdoor.c) runs the same joiner from a join record
// (JoinRecord) without starting a Go runtime.
package prestart

// #cgo CFLAGS: -Wall -O2
// extern unsigned long vpsctl_host_slack;
import "C"

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"syscall"

	"github.com/vpsctl/vpsctl/cgroup"
	"github.com/vpsctl/vpsctl/internal/timerslack"
	"golang.org/x/sys/unix"
)

// Stage names where the joiner failed.
type Stage int32

// The stages, as join.c numbers them.
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
	StageCgroup
	StageSeccomp
)

var stageNames = map[Stage]string{StageConfig: "config", StageSetns: "setns", StageIDs: "setresuid",
	StageFork: "fork", StagePty: "pty", StageSendPty: "send pty", StageCaps: "capabilities",
	StageChdir: "chdir", StageExec: "exec", StageCgroup: "cgroup", StageSeccomp: "seccomp"}

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
	InitPID   int    // host PID of the VPS's init; its namespaces are joined
	NSFlags   int    // CLONE_NEW* flags of the namespaces to join
	Setgroups bool   // setgroups(2) is allowed in the VPS's user namespace
	TTY       bool   // give the command a new pty from the VPS's devpts
	CapDrop   uint64 // capabilities to drop from the bounding set
	Dir       string // working directory inside the VPS
	// DirFallback: a Dir the VPS lacks means "/" instead of a failure (StageChdir).
	DirFallback bool
	Args        []string // argv; Args[0] is looked up in PATH from Env
	Env         []string
	// Place is where the command joins the VPS's groups (cgroup.JoinPlace): the joiner is
	// cloned into its cgroup2 directory and writes itself into its v1 tasks files first.
	Place  cgroup.Place
	Stdin  *os.File // non-TTY mode only
	Stdout *os.File
	Stderr *os.File
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
	cmd.Args = []string{"vpsctl-join"}
	cmd.Env = append([]string{StageEnv + "=join:3"}, timerslack.Env()...)
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
	if cfg.Place.Dir != "" {
		// Born in the VPS's cgroup2 group: a move by PID would wait for an RCU grace period
		// after a quiet spell (cgroup.Manager.TaskFiles).
		fd, err := cfg.Place.OpenDir()
		if err != nil {
			child.Close()
			return nil, &Error{Stage: StageCgroup, Errno: errnoOf(err)}
		}
		defer unix.Close(fd)
		cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, fd
	}
	if err := cmd.Start(); err != nil {
		child.Close()
		if cfg.Place.Dir != "" {
			return nil, &Error{Stage: StageCgroup, Errno: errnoOf(err)}
		}
		return nil, err
	}
	child.Close()
	abort := func(err error) (*Process, error) {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, err
	}
	msg := joinMsg(cfg, 4).AddInt("tty", b2i(cfg.TTY)).AddInt("cwd-fallback", b2i(cfg.DirFallback))
	b, err := msg.Add("cwd", orRoot(cfg.Dir)).AddAll("arg", cfg.Args).Bytes()
	if err != nil {
		return abort(err)
	}
	// A SEQPACKET message is read whole by the joiner's one recvmsg.
	if _, err := parent.Write(b); err != nil {
		return abort(fmt.Errorf("joiner message: %w", err))
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
			return abort(fmt.Errorf("joiner: short report (%d bytes)", n))
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
		return abort(errors.New("joiner exited without starting the command"))
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

// errnoOf is err's errno (EIO if it carries none).
func errnoOf(err error) syscall.Errno {
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return syscall.EIO
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func orRoot(dir string) string {
	if dir == "" {
		return "/"
	}
	return dir
}

// joinMsg is the part of a joiner's message that says where to join: the VPS's namespaces (a
// pidfd of its init, fd pidfd), groups, capabilities and the command's environment.
func joinMsg(cfg Config, pidfd int) *Msg {
	m := &Msg{}
	m.AddInt("pidfd", pidfd).AddInt("ns", cfg.NSFlags).AddInt("setgroups", b2i(cfg.Setgroups))
	m.AddHex("capdrop", cfg.CapDrop).AddAll("tasks", cfg.Place.Tasks)
	return m.AddAll("env", cfg.Env)
}

// JoinRecord is what a running VPS's monitor leaves beside its run state for the CLI's front
// door (cmd/vpsctl/frontdoor.c), which runs `vpsctl exec ID -- CMD` from it with no Go runtime:
// the joiner's message for the VPS (Config without a command: its init's PID and start time,
// to check it is still that process, the file whose first line is Thawed while the VPS is not
// suspended, and the cgroup2 directory the joiner is cloned into). The front door opens the
// pidfd itself and adds the command; cwd is "/".
func JoinRecord(cfg Config, initStart uint64, thawedFile, thawed string) ([]byte, error) {
	m := &Msg{}
	m.AddInt("pid", cfg.InitPID).AddHex("start", initStart)
	if thawedFile != "" {
		m.Add("thawed", thawedFile+"="+thawed)
	}
	if cfg.Place.Dir != "" {
		m.Add("cgroup2", cfg.Place.Dir)
	}
	m.AddInt("ns", cfg.NSFlags).AddInt("setgroups", b2i(cfg.Setgroups)).AddHex("capdrop", cfg.CapDrop)
	m.AddAll("tasks", cfg.Place.Tasks).AddAll("env", cfg.Env).Add("tty", "0").Add("cwd", "/")
	return m.Bytes()
}
