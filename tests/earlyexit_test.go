package tests

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// goChild finds the vpsctl process that the command with PID parent forked before its Go
// runtime started (nsenter/exitfork.c), waiting for it a bounded time.
func goChild(t *testing.T, parent int) int {
	t.Helper()
	child := 0
	waitFor(t, 10*time.Second, "the command's forked child", func() bool {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(parent) + "/task/" + strconv.Itoa(parent) + "/children")
		if err != nil {
			return false
		}
		for _, f := range strings.Fields(string(b)) {
			pid, _ := strconv.Atoi(f)
			if exe, err := os.Readlink("/proc/" + f + "/exe"); err == nil && exe == bin {
				child = pid
				return true
			}
		}
		return false
	})
	return child
}

func gone(pid int) func() bool {
	return func() bool {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		// A zombie waiting for its reaper has done all it will do.
		return err != nil || bytes.Contains(b, []byte(") Z "))
	}
}

// TestEarlyExit: a short command's caller waits for a parent that the command forked before its
// Go runtime started, which exits with the child's code as soon as the child has done its work
// (the child's own exit follows off the caller's clock). Codes and messages are those of the
// one-process command; signals sent to the parent reach the child; a parent killed takes the
// child with it.
func TestEarlyExit(t *testing.T) {
	checkClean(t, "192")
	for _, tc := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"create", "192", "--template", "busybox"}, 0, "VPS 192 created"},
		{[]string{"status", "192"}, 0, "VPS 192 exist stopped"},
		{[]string{"status", "1929"}, 0, "VPS 1929 deleted"},
		{[]string{"stop", "192"}, 31, ""},
		{[]string{"destroy", "192", "--bogus"}, 20, ""},
		{[]string{"destroy", "192"}, 0, "VPS 192 destroyed"},
		{[]string{"destroy", "192"}, 43, ""},
	} {
		r := vpsctl(t, tc.args...)
		if r.code != tc.code || !strings.HasPrefix(r.out, tc.out) || (tc.code != 0) != (r.err != "") {
			t.Errorf("%v: code %d out %q err %q; want code %d, out %q", tc.args, r.code, r.out, r.err, tc.code, tc.out)
		}
	}

	before := vpsDirs(t)
	start := func() (*exec.Cmd, int) {
		t.Helper()
		cmd := exec.Command(bin, "--root", root, "run", "--rm", "--template", "busybox", "--", "/bin/sleep", "60")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if cmd.ProcessState == nil {
				cmd.Process.Kill()
				cmd.Wait()
			}
		})
		child := goChild(t, cmd.Process.Pid)
		waitFor(t, 10*time.Second, "the run's VPS", func() bool { return len(vpsDirs(t)) > len(before) })
		return cmd, child
	}

	// SIGTERM to the process the caller knows reaches the run, which ends its VPS and removes it.
	cmd, child := start()
	time.Sleep(100 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGTERM)
	var ee *exec.ExitError
	if err := waitCmd(t, cmd, 20*time.Second); !errors.As(err, &ee) || ee.ExitCode() != 128+int(syscall.SIGKILL) {
		t.Fatalf("run after SIGTERM to its parent: %v, want exit %d", err, 128+int(syscall.SIGKILL))
	}
	waitFor(t, 10*time.Second, "the run's child to end", gone(child))
	if after := vpsDirs(t); len(after) != len(before) {
		t.Fatalf("run --rm after SIGTERM left a VPS: %v -> %v", before, after)
	}

	// SIGKILL to it: the child dies with it (and the VPS with the child), as one process did.
	cmd, child = start()
	cmd.Process.Kill()
	waitCmd(t, cmd, 20*time.Second)
	waitFor(t, 10*time.Second, "the killed command's child to die with it", gone(child))
	// The run never destroyed its VPS: it is left stopped, as a killed run leaves it.
	for _, id := range vpsDirs(t) {
		if !strings.HasPrefix(id, "100") || len(id) != 10 {
			continue
		}
		waitFor(t, 10*time.Second, "the killed run's VPS to stop", func() bool { return status(t, id).State == "stopped" })
		must(t, "destroy", id)
	}
	waitTmpEmpty(t, 10*time.Second)
}
