package tests

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// raisedSlack is the timer slack of vpsctl's own processes (internal/timerslack.Raised).
const raisedSlack = 200000

// withSlack runs fn on a thread whose timer slack is ns, so that the vpsctl commands fn runs
// (a child inherits its forking thread's slack) start as under a host process with that slack.
func withSlack(t *testing.T, ns int, fn func()) {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	old, err := unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0)
	if err != nil {
		t.Fatalf("PR_GET_TIMERSLACK: %v", err)
	}
	if err := unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(ns), 0, 0, 0); err != nil {
		t.Fatalf("PR_SET_TIMERSLACK: %v", err)
	}
	defer unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(old), 0, 0, 0)
	fn()
}

func slackOf(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/timerslack_ns")
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("timerslack_ns %q: %v", b, err)
	}
	return n
}

// TestTimerSlack: vpsctl's own processes run with a raised timer slack (Go's sysmon wakes less
// often), and nothing of a VPS keeps it: the VPS's init, what is exec'd into it and a run's
// command get the slack vpsctl was started with, on every path that starts them.
func TestTimerSlack(t *testing.T) {
	checkClean(t, "191")
	const host = 123000 // not the kernel's default, to tell "given back" from "defaulted"
	inside := func(args ...string) int {
		t.Helper()
		n, err := strconv.Atoi(strings.TrimSpace(must(t, args...)))
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return n
	}
	must(t, "create", "191", "--template", "busybox")
	for _, tc := range []struct {
		name string
		cmd  string
	}{{"in-process start", "start"}, {"spawned monitor", "restart"}} {
		t.Run(tc.name, func(t *testing.T) {
			withSlack(t, host, func() {
				if r := vpsctl(t, tc.cmd, "191"); r.code != 0 {
					t.Fatalf("start: %d %s", r.code, r.err)
				}
			})
			// The monitor rests (execs the reaper) just after the start returns: during that
			// exec the status may not see it alive for a moment.
			var s statusJSON
			waitFor(t, 5*time.Second, "the resting monitor in the status", func() bool {
				s = status(t, "191")
				return s.MonitorPID > 0
			})
			if got := slackOf(t, s.InitPID); got != host {
				t.Errorf("VPS init's timer slack %d, want the host's %d", got, host)
			}
			// The monitor, resting as the reaper, is vpsctl's: raised.
			if got := slackOf(t, s.MonitorPID); got != raisedSlack {
				t.Errorf("monitor's timer slack %d, want %d", got, raisedSlack)
			}
			withSlack(t, host, func() {
				if got := inside("exec", "191", "--", "cat", "/proc/self/timerslack_ns"); got != host {
					t.Errorf("exec (fast path): slack %d, want %d", got, host)
				}
				r := vpsctlEnv(t, []string{"VPSCTL_NO_FASTPATH=1"}, "exec", "191", "--", "cat", "/proc/self/timerslack_ns")
				if got := strings.TrimSpace(r.out); r.code != 0 || got != strconv.Itoa(host) {
					t.Errorf("exec (joiner): slack %q (code %d %s), want %d", got, r.code, r.err, host)
				}
			})
			must(t, "stop", "--kill", "191")
		})
	}
	withSlack(t, host, func() {
		if got := inside("run", "--rm", "--template", "busybox", "--", "cat", "/proc/self/timerslack_ns"); got != host {
			t.Errorf("run --rm: slack %d, want %d", got, host)
		}
	})
	// Started by a process that has vpsctl's raised slack but did not say what the host's was
	// (a vpsctl environment without _VPSCTL_TIMERSLACK): the kernel's default, not the raised one.
	withSlack(t, raisedSlack, func() {
		if got := inside("run", "--rm", "--template", "busybox", "--", "cat", "/proc/self/timerslack_ns"); got != 50000 {
			t.Errorf("run --rm under a raised slack: %d, want the kernel's default 50000", got)
		}
	})
}
