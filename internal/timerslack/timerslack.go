// Package timerslack keeps the two timer slacks of vpsctl's processes apart.
//
// The Go runtime's sysmon thread sleeps 20 µs at a time while a program runs (the first
// millisecond and more of every process, and again after any busy stretch), and each of those
// wake-ups is a timer reprogrammed and an interrupt taken; in a VM both trap to the hypervisor,
// on the CPU that a boot's other processes (the spawner, the init child, the kernel's work for
// them) would use. vpsctl's Go processes therefore run with a timer slack of Raised: the kernel
// may defer a wake-up by that much to batch it with others, so sysmon wakes about every 0.2 ms,
// and vpsctl's own waits (milliseconds to seconds) do not notice. More slack would slow what
// sysmon is for: it takes a P back from a thread blocked in a system call, which is how a
// boot's goroutine for the cgroups gets to run beside the root file system's set-up (0.5 ms
// was no better for W1 and 0.2-0.3 ms worse for W4). The C constructor
// (package nsenter) raises it on the main thread before the Go runtime starts, so every thread
// the runtime makes inherits it. Measured in docs/BENCHMARKS.md.
//
// Invariant: nothing that is not vpsctl keeps the raised slack. A thread inherits its creator's
// slack and a child its parent thread's, so the slack vpsctl was started with (Host) is given
// back to what it starts: the VPS's init and the commands exec'd into a VPS (by the C code,
// from EnvName), and other programs (WithHost). EnvName carries the value across vpsctl's
// re-executions of itself, whose environments are explicit (Env).
package timerslack

import (
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// Raised is the slack of vpsctl's Go threads, in nanoseconds. Keep in step with nsenter.c.
const Raised = 200_000

// EnvName names the variable that hands the host's slack to a re-executed vpsctl.
const EnvName = "_VPSCTL_TIMERSLACK"

var host uint64

// SetHost records the slack vpsctl was started with (nanoseconds; 0: unknown, nothing is
// changed). Package nsenter calls it once, from what its constructor found.
func SetHost(ns uint64) { host = ns }

// Env returns the environment entry that gives a re-executed vpsctl the host's slack (none if
// unknown), for the explicit environments of those re-executions.
func Env() []string {
	if host == 0 {
		return nil
	}
	return []string{EnvName + "=" + strconv.FormatUint(host, 10)}
}

// WithHost runs fn on a thread whose slack is the host's, so that a program fn starts (its
// child inherits the forking thread's slack) runs as it would without vpsctl in between. fn's
// goroutine stays on that thread until fn returns.
func WithHost(fn func() error) error {
	if host == 0 {
		return fn()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cur, err := unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0)
	if err != nil || uint64(cur) == host {
		return fn()
	}
	if err := unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(host), 0, 0, 0); err != nil {
		return fn()
	}
	defer unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(cur), 0, 0, 0)
	return fn()
}

// WithHostOutput is WithHost for a function with output, such as (*exec.Cmd).Output.
func WithHostOutput(fn func() ([]byte, error)) ([]byte, error) {
	var out []byte
	err := WithHost(func() (err error) {
		out, err = fn()
		return err
	})
	return out, err
}
