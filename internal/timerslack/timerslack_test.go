package timerslack

import (
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func threadSlack(t *testing.T) int {
	t.Helper()
	n, err := unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestWithHost: fn, and what it starts, run with the host's slack; the thread gets its own
// back afterwards.
func TestWithHost(t *testing.T) {
	defer SetHost(host)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	old := threadSlack(t)
	defer unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(old), 0, 0, 0)
	if err := unix.Prctl(unix.PR_SET_TIMERSLACK, Raised, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	SetHost(77000)
	if got := Env(); len(got) != 1 || got[0] != EnvName+"=77000" {
		t.Fatalf("Env() = %q", got)
	}
	var inFn int
	out, err := WithHostOutput(func() ([]byte, error) {
		inFn = threadSlack(t)
		return exec.Command("cat", "/proc/self/timerslack_ns").Output()
	})
	if err != nil {
		t.Fatal(err)
	}
	if inFn != 77000 {
		t.Errorf("slack in fn %d, want 77000", inFn)
	}
	if got := strings.TrimSpace(string(out)); got != "77000" {
		t.Errorf("child's slack %s, want 77000", got)
	}
	if got := threadSlack(t); got != Raised {
		t.Errorf("slack after WithHost %d, want %d back", got, Raised)
	}

	// Unknown host slack: fn runs as it is, nothing changes.
	SetHost(0)
	if Env() != nil {
		t.Errorf("Env() with no host slack = %q", Env())
	}
	if err := WithHost(func() error {
		if got := threadSlack(t); got != Raised {
			t.Errorf("slack changed to %d with no host slack", got)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
