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
	expectCode(t, 211, "template", "import", "imp-tgz", tgz) // exists
	list := must(t, "template", "list", "--format", "json")
	if !strings.Contains(list, `"imp-dir"`) || !strings.Contains(list, `"imp-tgz"`) {
		t.Fatalf("template list: %s", list)
	}
	must(t, "create", "118", "--template", "imp-tgz", "--hostname", "imported")
	must(t, "start", "118")
	if got := strings.TrimSpace(must(t, "exec", "118", "--", "hostname")); got != "imported" {
		t.Fatalf("hostname = %q", got)
	}
	expectCode(t, 210, "template", "remove", "imp-tgz") // in use
	must(t, "destroy", "--force", "118")
	must(t, "template", "remove", "imp-tgz")
	must(t, "template", "remove", "imp-dir")
	expectCode(t, 91, "template", "remove", "imp-dir")
}

// TestTemplateRebuildInUse: a rebuild (--force) deletes the old tree, which running VPSs and a
// keeper's spares are made of: it is refused while they run (and changes nothing), and goes
// ahead once they are stopped; the stopped VPS then boots on the new tree.
func TestTemplateRebuildInUse(t *testing.T) {
	checkClean(t, "119")
	t.Cleanup(func() {
		vpsctl(t, "spare", "stop", "rebuilt")
		vpsctl(t, "template", "remove", "rebuilt")
	})
	must(t, "template", "build", "busybox", "rebuilt")
	must(t, "create", "119", "--template", "rebuilt")
	must(t, "start", "119")
	applets := func() string { return strings.TrimSpace(must(t, "exec", "119", "--", "sh", "-c", "ls /bin | wc -l")) }
	before := applets()
	if r := expectCode(t, 210, "template", "build", "busybox", "rebuilt", "--force"); !strings.Contains(r.err, "running VPS [119]") {
		t.Fatalf("rebuild with a running VPS: %q", r.err)
	}
	if got := applets(); got != before || got == "0" {
		t.Fatalf("the running VPS's /bin after a refused rebuild: %s applets, before %s", got, before)
	}
	must(t, "stop", "--kill", "119")
	must(t, "spare", "start", "rebuilt")
	if r := expectCode(t, 210, "template", "build", "busybox", "rebuilt", "--force"); !strings.Contains(r.err, "vpsctl spare stop rebuilt") {
		t.Fatalf("rebuild with spares: %q", r.err)
	}
	must(t, "spare", "stop", "rebuilt")
	must(t, "template", "build", "busybox", "rebuilt", "--force")
	must(t, "start", "119")
	if got := applets(); got != before {
		t.Fatalf("after the rebuild: %s applets, want %s", got, before)
	}
	must(t, "destroy", "--force", "119")
}
