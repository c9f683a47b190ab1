package tests

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestTemplateImport imports a root filesystem as a directory and as a .tar.gz, boots a VPS
// from the tarball's template, and removes the templates again.
func TestTemplateImport(t *testing.T) {
	checkClean(t, "118")
	src := filepath.Join(root, "templates", "busybox", "rootfs")
	tgz := filepath.Join(t.TempDir(), "rootfs.tar.gz")
	if out, err := execCmd("tar", "--numeric-owner", "-czf", tgz, "-C", src, "."); err != nil {
		t.Fatalf("tar: %v %s", err, out)
	}
	t.Cleanup(func() {
		vpsctl(t, "template", "remove", "imp-dir")
		vpsctl(t, "template", "remove", "imp-tgz")
	})
	must(t, "template", "import", "imp-dir", src)
	must(t, "template", "import", "imp-tgz", tgz)
	expectCode(t, 92, "template", "import", "imp-tgz", tgz) // exists
	list := must(t, "template", "list", "--format", "json")
	if !strings.Contains(list, `"imp-dir"`) || !strings.Contains(list, `"imp-tgz"`) {
		t.Fatalf("template list: %s", list)
	}
	must(t, "create", "118", "--template", "imp-tgz", "--hostname", "imported")
	must(t, "start", "118")
	if got := strings.TrimSpace(must(t, "exec", "118", "--", "hostname")); got != "imported" {
		t.Fatalf("hostname = %q", got)
	}
	expectCode(t, 92, "template", "remove", "imp-tgz") // in use
	must(t, "destroy", "--force", "118")
	must(t, "template", "remove", "imp-tgz")
	must(t, "template", "remove", "imp-dir")
	expectCode(t, 91, "template", "remove", "imp-dir")
}
