package criu

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"time"

	"github.com/vpsctl/vpsctl/internal/timerslack"
	"golang.org/x/sys/unix"
)

// Offsets in struct user (<sys/user.h>, x86-64) of u_debugreg[0], [6], [7]:
// regs (216) + u_fpvalid (8, padded) + i387 (512) + 3 sizes + 2 starts +
// signal + reserved (8, padded) + u_ar0 + u_fpstate + magic + u_comm[32].
const (
	userDebugreg0 = 848
	userDebugreg6 = userDebugreg0 + 6*8
	userDebugreg7 = userDebugreg0 + 7*8
	// dr7Local0 enables DR0 locally with RW0=00 (execute) and LEN0=00,
	// exactly what CRIU's ptrace_set_breakpoint writes.
	dr7Local0 = 1
	dr6B0     = 1 // DR0 condition detected
	atEntry   = 9 // AT_ENTRY in the auxiliary vector
)

// breakpointTrialTimeout bounds the wait for the breakpoint: the child is
// /bin/true, which without a trap exits within milliseconds.
const breakpointTrialTimeout = 2 * time.Second

// probeBreakpoints does in miniature what criu does to cure its parasite:
// it starts /bin/true traced (stopped at its exec), sets an execution
// breakpoint on the program's entry point with PTRACE_POKEUSER into DR0/DR7,
// continues it, and waits. A SIGTRAP with DR6.B0 set means hardware
// breakpoints work; an exit means the trap was never delivered, the case in
// which criu waits forever without CRIU_FAULT=130.
func probeBreakpoints(ctx context.Context) (works bool, detail string) {
	truePath, err := exec.LookPath("true")
	if err != nil {
		return false, "probe not run: no true(1) binary"
	}
	type result struct {
		ok     bool
		detail string
	}
	ch := make(chan result, 1)
	go func() {
		// ptrace requests are accepted only from the tracing thread, which
		// for PTRACE_TRACEME is the thread that forked the child.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		ok, d := breakpointTrial(ctx, truePath)
		ch <- result{ok, d}
	}()
	r := <-ch
	return r.ok, r.detail
}

func breakpointTrial(ctx context.Context, truePath string) (bool, string) {
	var pid int
	err := timerslack.WithHost(func() (err error) {
		pid, err = syscall.ForkExec(truePath, []string{"true"}, &syscall.ProcAttr{
			Env: []string{},
			// Pdeathsig fires when this (locked) thread exits: the child never
			// outlives the probe.
			Sys: &syscall.SysProcAttr{Ptrace: true, Pdeathsig: syscall.SIGKILL},
		})
		return err
	})
	if err != nil {
		return false, "probe not run: " + err.Error()
	}
	defer func() {
		_ = unix.Kill(pid, unix.SIGKILL)
		var ws unix.WaitStatus
		// SIGKILL ends even a ptrace-stopped child at once; wait4 is bounded.
		for {
			_, err := unix.Wait4(pid, &ws, 0, nil)
			if err != unix.EINTR {
				break
			}
		}
	}()
	deadline := time.Now().Add(breakpointTrialTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}

	// 1. The exec stop (PTRACE_TRACEME makes execve raise SIGTRAP).
	ws, err := waitBounded(pid, deadline)
	if err != nil {
		return false, "probe failed: " + err.Error()
	}
	if !ws.Stopped() || ws.StopSignal() != unix.SIGTRAP {
		return false, fmt.Sprintf("probe failed: unexpected child state %#x at exec", uint32(ws))
	}
	entry, err := auxvEntry(pid)
	if err != nil {
		return false, "probe failed: " + err.Error()
	}
	// 2. Arm DR0 on the entry point.
	var w [8]byte
	binary.LittleEndian.PutUint64(w[:], entry)
	if _, err := unix.PtracePokeUser(pid, userDebugreg0, w[:]); err != nil {
		return false, "PTRACE_POKEUSER DR0: " + err.Error()
	}
	binary.LittleEndian.PutUint64(w[:], dr7Local0)
	if _, err := unix.PtracePokeUser(pid, userDebugreg7, w[:]); err != nil {
		return false, "PTRACE_POKEUSER DR7: " + err.Error()
	}
	if err := unix.PtraceCont(pid, 0); err != nil {
		return false, "probe failed: PTRACE_CONT: " + err.Error()
	}
	// 3. Trap or exit?
	ws, err = waitBounded(pid, deadline)
	switch {
	case err != nil:
		return false, "no trap within " + breakpointTrialTimeout.String()
	case ws.Exited() || ws.Signaled():
		return false, "DR0 execution breakpoint never trapped"
	case ws.Stopped() && ws.StopSignal() == unix.SIGTRAP:
		if _, err := unix.PtracePeekUser(pid, userDebugreg6, w[:]); err != nil {
			return false, "PTRACE_PEEKUSER DR6: " + err.Error()
		}
		if binary.LittleEndian.Uint64(w[:])&dr6B0 == 0 {
			return false, "SIGTRAP without DR6.B0"
		}
		return true, "DR0 execution breakpoint trapped"
	default:
		return false, fmt.Sprintf("unexpected child state %#x", uint32(ws))
	}
}

// waitBounded polls wait4(WNOHANG) until pid changes state or deadline.
func waitBounded(pid int, deadline time.Time) (unix.WaitStatus, error) {
	var ws unix.WaitStatus
	for {
		got, err := unix.Wait4(pid, &ws, unix.WNOHANG|unix.WALL, nil)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return 0, os.NewSyscallError("wait4", err)
		case got == pid:
			return ws, nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("child %d: timed out", pid)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// auxvEntry reads AT_ENTRY, the program's entry point, from /proc/PID/auxv.
func auxvEntry(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/auxv", pid))
	if err != nil {
		return 0, err
	}
	for i := 0; i+16 <= len(b); i += 16 {
		if binary.LittleEndian.Uint64(b[i:]) == atEntry {
			return binary.LittleEndian.Uint64(b[i+8:]), nil
		}
	}
	return 0, fmt.Errorf("/proc/%d/auxv: no AT_ENTRY", pid)
}
