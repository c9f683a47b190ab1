package runtime

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vpsctl/vpsctl/container"
	"github.com/vpsctl/vpsctl/pidns"
)

// ErrBootTimeout: a VPS did not finish booting within the time it was given.
var ErrBootTimeout = errors.New("did not finish booting")

// BootState is how far a VPS's guest has booted, as its init kind tells it.
type BootState struct {
	Init  string // "systemd", "sysvinit", "busybox"
	State string // systemd's is-system-running, "runlevel N", "sysinit done", or what is pending
	Done  bool   // booted: systemd running or degraded, sysvinit in its runlevel, busybox's sysinit actions done
}

// WaitBooted waits until VPS id's guest has finished booting (see BootState), at most timeout
// and until ctx is done, and returns its last state; ErrBootTimeout when time ran out. What it
// asks the guest, it asks the way exec does (joined as its root, under its syscall filter).
func (r *Runtime) WaitBooted(ctx context.Context, id container.ID, timeout time.Duration) (*BootState, error) {
	deadline := time.Now().Add(timeout)
	var last *BootState
	settled := 0
	for {
		s, err := r.running(id, false)
		if err != nil {
			return last, err
		}
		if b, err := r.bootState(ctx, s); err == nil {
			last = b
			if b.Done {
				// Twice in a row, 50 ms apart: a busybox init between two sysinit actions,
				// or a systemd that reports before its last job, is not booted yet.
				if settled++; settled == 2 {
					return b, nil
				}
			} else {
				settled = 0
			}
		}
		if time.Now().After(deadline) {
			state := "unknown"
			if last != nil {
				state = last.Init + ": " + last.State
			}
			return last, fmt.Errorf("VPS %d: %w in %v (%s)", id, ErrBootTimeout, timeout, state)
		}
		select {
		case <-ctx.Done():
			return last, fmt.Errorf("VPS %d: waiting for its boot: %w", id, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// bootState asks running VPS s how far it has booted, by its init: systemd by
// `systemctl is-system-running`, sysvinit by `runlevel`, busybox init by whether any of its
// inittab's sysinit and wait actions still runs.
func (r *Runtime) bootState(ctx context.Context, s *Status) (*BootState, error) {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", s.InitPID))
	if err != nil {
		return nil, err
	}
	switch base := filepath.Base(exe); {
	case strings.Contains(base, "systemd"):
		out, _, err := r.probe(ctx, s.ID, "systemctl", "is-system-running")
		if err != nil {
			return nil, err
		}
		st := strings.TrimSpace(out)
		return &BootState{Init: "systemd", State: st, Done: st == "running" || st == "degraded"}, nil
	case strings.Contains(base, "busybox"):
		pending, err := r.busyboxPending(s)
		if err != nil {
			return nil, err
		}
		b := &BootState{Init: "busybox", State: "sysinit done", Done: len(pending) == 0}
		if !b.Done {
			b.State = "running " + strings.Join(pending, ", ")
		}
		return b, nil
	default:
		out, _, err := r.probe(ctx, s.ID, "runlevel")
		if err != nil {
			return nil, err
		}
		f := strings.Fields(out)
		b := &BootState{Init: "sysvinit", State: strings.TrimSpace(out)}
		if len(f) == 2 && len(f[1]) == 1 && f[1][0] >= '0' && f[1][0] <= '9' {
			b.State, b.Done = "runlevel "+f[1], true
		}
		return b, nil
	}
}

// probe runs argv in VPS id as exec does and returns its standard output (at most 4 KiB) and
// exit status.
func (r *Runtime) probe(ctx context.Context, id container.ID, argv ...string) (string, int, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return "", 0, err
	}
	defer pr.Close()
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		pw.Close()
		return "", 0, err
	}
	defer null.Close()
	out := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(pr, 4096))
		out <- string(b)
	}()
	code, err := r.Exec(ctx, id, ExecOptions{Args: argv, Stdin: null, Stdout: pw, Stderr: null})
	pw.Close()
	return <-out, code, err
}

// busyboxPending are the commands of the VPS's busybox inittab's sysinit and wait actions that
// still run (its boot is done when none does).
func (r *Runtime) busyboxPending(s *Status) ([]string, error) {
	f, err := r.openVPSFile(s, "etc/inittab")
	if err != nil {
		// No inittab: busybox's built-in default, whose sysinit is /etc/init.d/rcS.
		return r.running1(s, []string{"/etc/init.d/rcS"})
	}
	var actions []string
	sc := bufio.NewScanner(io.LimitReader(f, 1<<20))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || l[0] == '#' {
			continue
		}
		// id:runlevels:action:process
		p := strings.SplitN(l, ":", 4)
		if len(p) == 4 && (p[2] == "sysinit" || p[2] == "wait") {
			if cmd := strings.Fields(strings.TrimPrefix(p[3], "-")); len(cmd) > 0 {
				actions = append(actions, cmd[0])
			}
		}
	}
	f.Close()
	return r.running1(s, actions)
}

// running1 are those of cmds (program paths) that one of VPS s's processes runs.
func (r *Runtime) running1(s *Status, cmds []string) ([]string, error) {
	procs, err := pidns.List(pidns.HostPID(s.InitPID))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, c := range cmds {
		for _, p := range procs {
			if p.VPS != 1 && (p.Cmdline == c || strings.HasPrefix(p.Cmdline, c+" ") || strings.Contains(p.Cmdline, " "+c)) {
				out = append(out, c)
				break
			}
		}
	}
	return out, nil
}
