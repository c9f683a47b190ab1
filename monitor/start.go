package monitor

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"github.com/vpsctl/vpsctl/container"
	"github.com/vpsctl/vpsctl/criu"
	"github.com/vpsctl/vpsctl/internal/fault"
	"github.com/vpsctl/vpsctl/internal/sysfile"
	"github.com/vpsctl/vpsctl/internal/timerslack"
	"github.com/vpsctl/vpsctl/store"
	"golang.org/x/sys/unix"
)

// StartTimeout bounds how long start waits for the monitor to report the VPS's init running.
var StartTimeout = 60 * time.Second

// monitorEnv is the whole environment of a monitor process: its mode, the state root, a small
// Go runtime, the host's timer slack, the host configuration's settings it needs (settingsEnv),
// the test and trace switches that were set, and the CRIU binary chosen (a restore's boot runs
// it).
func monitorEnv(root string) []string {
	env := append([]string{modeEnv + "=monitor", "VPSCTL_ROOT=" + root, "GOMAXPROCS=1", "GOGC=25"}, timerslack.Env()...)
	env = append(env, settingsEnv()...)
	return append(env, inheritEnv(fault.Env, fault.TraceEnv, criu.EnvCRIU)...)
}

// inheritEnv is the "KEY=value" entries of this process's environment for the keys that are
// set: the switches that a process vpsctl starts with an environment of its own must carry.
func inheritEnv(keys ...string) []string {
	var env []string
	for _, k := range keys {
		if v := os.Getenv(k); v != "" {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// pendingMonitor is set once this process has booted a VPS itself (startHere): what is left
// for BecomeMonitor to do.
var pendingMonitor func(code int)

// Pending reports whether this process booted a VPS it is to stay with (StartHere): Become
// then makes it its monitor.
func Pending() bool { return pendingMonitor != nil }

// StartHere boots VPS id in this process, the child that `vpsctl start` forked before its Go
// runtime started (cmd/vpsctl/frontdoor.c: a session and a mount namespace of its own), and
// returns once the VPS's init runs: the init's host PID and the boot's warnings. The monitor's loop runs
// meanwhile in a goroutine; it waits at its first report until BecomeMonitor has let the
// parent go (fd is the pipe to it) and moved this process's stdio to the monitor's log. The
// caller holds the VPS's lock throughout the boot, and a crash of this process is a crash of
// the monitor: the next command repairs whatever it left.
func StartHere(ctx context.Context, st *store.Store, id container.ID, fd, hostNS int) (int, []string, error) {
	logf, err := sysfile.OpenFile(st.Path(id, "monitor.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return 0, nil, err
	}
	// The monitor's log lines go to its log, as in a spawned monitor; so do the rest of this
	// command's (there are none on success). A failed boot gives the command its log back.
	prevOut, prevFlags, prevPrefix := log.Writer(), log.Flags(), log.Prefix()
	log.SetOutput(logf)
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	log.SetPrefix(fmt.Sprintf("monitor %d: ", id))
	got := make(chan Report, 1)
	proceed := make(chan struct{})
	m := &monitor{st: st, id: id, hostNS: hostNS, reportFn: func(msg Report) {
		got <- msg
		<-proceed
	}}
	done := make(chan int, 1)
	go func() { done <- m.main() }()
	fault.Point("start-spawned")
	var msg Report
	select {
	case msg = <-got:
	case <-ctx.Done():
		// As with a spawned monitor: give up. This process exits with the error, which ends
		// the boot; the next command repairs what it made.
		return 0, nil, fmt.Errorf("VPS %d: start: %w (see %s)", id, ctx.Err(), st.Path(id, "monitor.log"))
	case <-time.After(StartTimeout):
		return 0, nil, fmt.Errorf("VPS %d: start timed out after %v (see %s)", id, StartTimeout, st.Path(id, "monitor.log"))
	}
	if msg.Error != "" {
		close(proceed) // the monitor tidies up after its failed boot and returns
		select {
		case <-done:
		case <-time.After(StartTimeout):
		}
		log.SetOutput(prevOut)
		log.SetFlags(prevFlags)
		log.SetPrefix(prevPrefix)
		logf.Close()
		return 0, nil, msg.Failure(id)
	}
	pendingMonitor = func(code int) {
		sysfile.WriteFile("/proc/self/comm", []byte("vpsctl-monitor"), os.O_WRONLY, 0)
		// Nothing of the caller's may stay open here: its terminal or pipe would not see EOF
		// while the VPS runs.
		if null, err := sysfile.Open(os.DevNull, os.O_RDONLY, 0); err == nil {
			unix.Dup2(null, 0)
			unix.Close(null)
		}
		unix.Dup2(int(logf.Fd()), 1)
		unix.Dup2(int(logf.Fd()), 2)
		log.SetOutput(os.Stderr) // fd 2, which rotateLog replaces when the log is full
		unix.Write(fd, []byte{byte(code)})
		unix.Close(fd)
		close(proceed)
		os.Exit(<-done)
	}
	return msg.InitPID, msg.Warnings, nil
}

// Become ends the command: if it booted a VPS in this process (StartHere), the process
// lets the command's caller go with exit code code and stays as that VPS's monitor until the
// VPS halts (it then exits, never returning). Otherwise it returns at once.
func Become(code int) {
	if pendingMonitor != nil {
		pendingMonitor(code)
	}
}

// Spawn starts VPS id's monitor (extra args select a mode, e.g. --restore DIR) and waits for its
// report: the init's host PID and the boot's warnings. The monitor inherits the VPS's lock
// (lock, held by the caller) and keeps it until its first boot is done: if this command dies
// meanwhile, no other one can start the VPS a second time under the booting monitor.
func Spawn(ctx context.Context, st *store.Store, id container.ID, lock *os.File, extra ...string) (int, []string, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return 0, nil, err
	}
	defer pr.Close()
	logf, err := sysfile.OpenFile(st.Path(id, "monitor.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		pw.Close()
		return 0, nil, err
	}
	defer logf.Close()
	cmd := exec.Command("/proc/self/exe", append([]string{strconv.FormatUint(uint64(id), 10)}, extra...)...)
	cmd.Args[0] = "vpsctl-monitor"
	cmd.Env = monitorEnv(st.Root)
	cmd.Stdout, cmd.Stderr = logf, logf
	// fd 3: the ready pipe, fd 4: the lock, fd 5: our (the host's) mount namespace
	hostNS, err := os.Open("/proc/thread-self/ns/mnt")
	if err != nil {
		pw.Close()
		return 0, nil, err
	}
	defer hostNS.Close()
	cmd.ExtraFiles = []*os.File{pw, lock, hostNS}
	// setsid: the monitor outlives this command and its terminal. CLONE_NEWNS: the VPS's mounts
	// are made in the monitor's own mount namespace and never appear in the host's.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Cloneflags: unix.CLONE_NEWNS}
	if err := cmd.Start(); err != nil {
		pw.Close()
		return 0, nil, fmt.Errorf("spawn monitor: %w", err)
	}
	pw.Close()
	fault.Point("start-spawned")
	type result struct {
		b   []byte
		err error
	}
	ch := make(chan result, 1)
	go func() {
		b, err := io.ReadAll(pr)
		ch <- result{b, err}
	}()
	var res result
	select {
	case res = <-ch:
	case <-ctx.Done():
		// A monitor given SIGTERM during its boot stops the VPS once booted (requestStop).
		cmd.Process.Signal(syscall.SIGTERM)
		return 0, nil, fmt.Errorf("VPS %d: start: %w (see %s)", id, ctx.Err(), st.Path(id, "monitor.log"))
	case <-time.After(StartTimeout):
		cmd.Process.Signal(syscall.SIGTERM)
		return 0, nil, fmt.Errorf("VPS %d: start timed out after %v (see %s)", id, StartTimeout, st.Path(id, "monitor.log"))
	}
	var msg Report
	if len(res.b) == 0 || json.Unmarshal(res.b, &msg) != nil {
		cmd.Wait()
		return 0, nil, fmt.Errorf("VPS %d: monitor died during start (see %s)", id, st.Path(id, "monitor.log"))
	}
	if msg.Error != "" {
		cmd.Wait() // the monitor has cleaned up and exits
		return 0, nil, msg.Failure(id)
	}
	cmd.Process.Release()
	return msg.InitPID, msg.Warnings, nil
}
