package prestart

import (
	"os"
	"testing"
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
