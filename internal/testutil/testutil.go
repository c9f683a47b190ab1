// Package testutil holds helpers shared by vpsctl's tests.
//
// Root-only tests call RequireRoot: outside CI they skip with the reason, and
// in CI (CI=true) they fail loudly, because a CI run that silently skipped the
// tests that touch the kernel would prove nothing.
package testutil

import (
	"os"
	"testing"
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
