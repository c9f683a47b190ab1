// Package testutil holds helpers shared by vpsctl's tests.
//
// Root-only tests call RequireRoot: outside CI they skip with the reason, and
// in CI (CI=true) they fail loudly, because a CI run that silently skipped the
// tests that touch the kernel would prove nothing.
package testutil

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

// RequireRoot skips t when not running as root, or fails it when CI=true.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("this test needs root (CI=true: refusing to skip)")
	}
	t.Skip("needs root: run the suite as root")
}

// WaitCmd waits for the started cmd, bounded: past timeout it is killed and t fails.
func WaitCmd(t testing.TB, cmd *exec.Cmd, timeout time.Duration) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("%v did not exit within %v", cmd.Args, timeout)
		return nil
	}
}
