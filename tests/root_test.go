package tests

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

// requireRoot skips t when not running as root, or fails it when CI=true: a CI run that
// silently skipped the tests that touch the kernel would prove nothing.
func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("this test needs root (CI=true: refusing to skip)")
	}
	t.Skip("needs root: run the suite as root")
}

// waitCmd waits for the started cmd, bounded: past timeout it is killed and t fails.
func waitCmd(t testing.TB, cmd *exec.Cmd, timeout time.Duration) error {
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
