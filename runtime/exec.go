package runtime

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/vpsctl/vpsctl/cgroup"
	"github.com/vpsctl/vpsctl/container"
	"github.com/vpsctl/vpsctl/internal/spec"
	"github.com/vpsctl/vpsctl/prestart"
	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// ExecOptions describe a command to run inside a VPS.
type ExecOptions struct {
	Args []string
	TTY  bool
	Env  []string // added to the default environment
	Dir  string   // absolute; "" is "/"
	// DirFallback runs the command in "/" when the VPS has no Dir (enter's /root); without
	// it, a Dir the VPS lacks is ErrBadValue.
	DirFallback bool
	Stdin       *os.File
	Stdout      *os.File
	Stderr      *os.File
	// OwnSignals leaves this process's signals alone: by default the signals a terminal
	// sends (SIGINT, SIGTERM, SIGHUP, ...) are relayed to the command, as a foreground
	// command's would be; a server's own SIGTERM is not its requests' commands'.
	OwnSignals bool
}

// ErrCommand reports that the command could not be started inside the VPS (not found: the
// shell's 127; not executable: 126).
var ErrCommand = errors.New("cannot run command")

// CommandError carries the shell-style status for a command that could not start.
type CommandError struct {
	Status int
	Err    error
}

func (e *CommandError) Error() string { return e.Err.Error() }
func (e *CommandError) Unwrap() []error {
	return []error{ErrCommand, e.Err}
}

// Exec runs a command in VPS id: in all its namespaces, its cgroup and root, as its root user.
// It returns the command's exit status (128+N if killed by signal N).
func (r *Runtime) Exec(ctx context.Context, id container.ID, o ExecOptions) (int, error) {
	s, err := r.running(id, false)
	if err != nil {
		return 0, err
	}
	if len(o.Args) == 0 {
		return 0, fmt.Errorf("exec: no command: %w", ErrUsage)
	}
	// execve(2) takes NUL-terminated strings: a NUL inside one cannot reach the command.
	for what, list := range map[string][]string{"argument": o.Args, "environment variable": o.Env, "working directory": {o.Dir}} {
		for _, v := range list {
			if strings.ContainsRune(v, 0) {
				return 0, fmt.Errorf("exec: %s %q holds a NUL byte: %w", what, v, ErrBadValue)
			}
		}
	}
	for _, e := range o.Env {
		if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
			return 0, fmt.Errorf("exec: environment variable %q: want NAME=VALUE: %w", e, ErrBadValue)
		}
	}
	if o.Dir != "" && !filepath.IsAbs(o.Dir) {
		return 0, fmt.Errorf("exec: working directory %q: want an absolute path: %w", o.Dir, ErrBadValue)
	}
	cg, err := cgroup.New(spec.CgroupPath(s.ID))
	if err != nil {
		return 0, err
	}
	cfg := spec.Join(s.cfg, s.InitPID, cg)
	if o.TTY {
		t := os.Getenv("TERM")
		if t == "" {
			t = "xterm"
		}
		cfg.Env = append(cfg.Env, "TERM="+t)
	}
	cfg.Env = append(cfg.Env, o.Env...)
	cfg.TTY, cfg.Dir, cfg.DirFallback, cfg.Args = o.TTY, o.Dir, o.DirFallback, o.Args
	cfg.Stdin, cfg.Stdout, cfg.Stderr = o.Stdin, o.Stdout, o.Stderr
	sigs := make(chan os.Signal, 8)
	if !o.OwnSignals {
		signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH)
		defer signal.Stop(sigs)
	}
	p, err := prestart.Start(cfg)
	if err != nil {
		var ne *prestart.Error
		if errors.As(err, &ne) && ne.Stage == prestart.StageExec {
			st := 126
			if ne.Errno == unix.ENOENT {
				st = 127
			}
			return st, &CommandError{Status: st, Err: err}
		}
		if errors.As(err, &ne) && ne.Stage == prestart.StageChdir {
			return 0, fmt.Errorf("exec: working directory %s: %v: %w", o.Dir, ne.Errno, ErrBadValue)
		}
		return 0, err
	}
	var restore func()
	if o.TTY && p.Pty != nil {
		restore = attachTTY(p.Pty, o.Stdin, o.Stdout)
	}
	// (The relay goroutine is the process's for as long as it lives: signal.Stop never closes
	// the channel. A long-lived caller passes OwnSignals and starts none.)
	if !o.OwnSignals {
		go relaySignals(sigs, p, o.Stdin)
	}
	// A done ctx ends the command (its joiner relays the signal).
	defer context.AfterFunc(ctx, func() { p.Signal(syscall.SIGKILL) })()
	code, err := p.Wait()
	if restore != nil {
		restore()
	}
	return code, err
}

// relaySignals passes what the terminal sends this process on to the command, and window size
// changes to its pty.
func relaySignals(sigs <-chan os.Signal, p *prestart.Process, stdin *os.File) {
	for sg := range sigs {
		if sg == syscall.SIGWINCH {
			if p.Pty != nil {
				copyWinsize(stdin, p.Pty)
			}
			continue
		}
		p.Signal(sg)
	}
}

// attachTTY connects the local terminal to the pty master: raw mode, both directions, and the
// window size. It returns a function that restores the terminal.
func attachTTY(pty *os.File, in, out *os.File) func() {
	var state *term.State
	if in != nil && term.IsTerminal(int(in.Fd())) {
		state, _ = term.MakeRaw(int(in.Fd()))
		copyWinsize(in, pty)
	}
	outDone := make(chan struct{})
	go func() {
		io.Copy(out, pty)
		close(outDone)
	}()
	if in != nil {
		go io.Copy(pty, in)
	}
	return func() {
		// The command has exited: drain what it printed last, bounded by the pty's EOF/EIO.
		<-outDone
		pty.Close()
		if state != nil {
			term.Restore(int(in.Fd()), state)
		}
	}
}

func copyWinsize(from, to *os.File) {
	if from == nil {
		return
	}
	if ws, err := unix.IoctlGetWinsize(int(from.Fd()), unix.TIOCGWINSZ); err == nil {
		unix.IoctlSetWinsize(int(to.Fd()), unix.TIOCSWINSZ, ws)
	}
}

// Enter opens an interactive login shell in VPS id on a new pty: root's shell from the VPS's
// /etc/passwd (read without following the tenant's symlinks out of its root), else /bin/sh.
func (r *Runtime) Enter(ctx context.Context, id container.ID, in, out, errw *os.File) (int, error) {
	s, err := r.running(id, false)
	if err != nil {
		return 0, err
	}
	shell := "/bin/sh"
	if f, err := openInVPS(s.InitPID, "etc/passwd"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fs := strings.Split(sc.Text(), ":")
			if len(fs) >= 7 && fs[0] == "root" && strings.HasPrefix(fs[6], "/") {
				shell = fs[6]
				break
			}
		}
		f.Close()
	}
	return r.Exec(ctx, id, ExecOptions{Args: []string{shell, "-l"}, TTY: true, Dir: "/root", DirFallback: true, Stdin: in, Stdout: out, Stderr: errw})
}

// openInVPS opens path (relative to the VPS's root) for reading, resolving it inside the VPS's
// root: a tenant's symlink can never lead the host out of it.
func openInVPS(initPID int, path string) (*os.File, error) {
	root, err := unix.Open(fmt.Sprintf("/proc/%d/root", initPID), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(root)
	fd, err := unix.Openat2(root, path, &unix.OpenHow{Flags: unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NOCTTY | unix.O_NONBLOCK,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV})
	if err != nil {
		return nil, &os.PathError{Op: "openat2", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}
