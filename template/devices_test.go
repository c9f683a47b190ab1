package template

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vpsctl/vpsctl/store"
	"golang.org/x/sys/unix"
)

// devTree makes a root filesystem holding the nodes debootstrap trees and tarballs carry, and
// things that must stay. It returns the paths DropDevices must remove, sorted.
func devTree(t *testing.T, dir string) []string {
	t.Helper()
	for _, d := range []string{"bin", "dev/pts", "etc", "run"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "bin/sh"), []byte("#!/x\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	nodes := []struct {
		path string
		mode uint32
		dev  uint64
	}{
		{"dev/console", unix.S_IFCHR | 0o666, unix.Mkdev(5, 1)}, // the host's console
		{"dev/null", unix.S_IFCHR | 0o666, unix.Mkdev(1, 3)},
		{"dev/sda", unix.S_IFBLK | 0o660, unix.Mkdev(8, 0)},
		{"etc/whiteout", unix.S_IFCHR | 0o000, unix.Mkdev(0, 0)}, // an overlay whiteout
		{"run/fifo", unix.S_IFIFO | 0o644, 0},
		{"run/sock", unix.S_IFSOCK | 0o755, 0},
	}
	for _, n := range nodes {
		if err := unix.Mknod(filepath.Join(dir, n.path), n.mode, int(n.dev)); err != nil {
			t.Fatalf("mknod %s: %v", n.path, err)
		}
	}
	// A link to the console resolves inside the VPS to its own console: it stays.
	if err := os.Symlink("/dev/console", filepath.Join(dir, "etc/console-link")); err != nil {
		t.Fatal(err)
	}
	return []string{"dev/console", "dev/null", "dev/sda", "etc/whiteout"}
}

func TestDropDevices(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	want := devTree(t, dir)
	// A symlinked directory pointing at another tree's device: the walk must not follow it.
	outside := t.TempDir()
	if err := unix.Mknod(filepath.Join(outside, "tty"), unix.S_IFCHR|0o666, int(unix.Mkdev(5, 0))); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "etc/out")); err != nil {
		t.Fatal(err)
	}
	got, err := DropDevices(dir)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("dropped %v, want %v", got, want)
	}
	for _, p := range want {
		if _, err := os.Lstat(filepath.Join(dir, p)); !os.IsNotExist(err) {
			t.Errorf("%s still there: %v", p, err)
		}
	}
	for _, p := range []string{"bin/sh", "run/fifo", "run/sock", "etc/console-link", "etc/out"} {
		if _, err := os.Lstat(filepath.Join(dir, p)); err != nil {
			t.Errorf("%s was removed: %v", p, err)
		}
	}
	if _, err := os.Lstat(filepath.Join(outside, "tty")); err != nil {
		t.Errorf("a device outside the tree was removed: %v", err)
	}
	if got, err := DropDevices(dir); err != nil || len(got) != 0 {
		t.Errorf("second run: %v %v", got, err)
	}
	if _, err := DropDevices(filepath.Join(dir, "missing")); err == nil {
		t.Error("DropDevices of a missing tree succeeded")
	}
}

// TestImportDropsDevices imports a directory and a tarball carrying dev/console 5:1 and
// checks the template has no device node left and the import said so.
func TestImportDropsDevices(t *testing.T) {
	requireRoot(t)
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	want := devTree(t, src)
	tarball := filepath.Join(t.TempDir(), "tree.tar")
	if out, err := exec.Command("tar", "--numeric-owner", "-cpf", tarball, "-C", src, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v: %s", err, out)
	}
	for name, from := range map[string]string{"devtpl": src, "devtar": tarball} {
		var out bytes.Buffer
		if err := Import(st, name, from, &out); err != nil {
			t.Fatalf("import %s: %v", from, err)
		}
		msg := "template " + name + ": dropped 4 device nodes (" + strings.Join(want, ", ") + ")"
		if !strings.Contains(out.String(), msg) {
			t.Errorf("import %s said %q, want %q", from, out.String(), msg)
		}
		rootfs, err := Rootfs(st, name)
		if err != nil {
			t.Fatal(err)
		}
		left, err := DropDevices(rootfs)
		if err != nil || len(left) != 0 {
			t.Errorf("template %s still had device nodes: %v %v", name, left, err)
		}
		if _, err := os.Lstat(filepath.Join(rootfs, "run/fifo")); err != nil {
			t.Errorf("template %s lost its FIFO: %v", name, err)
		}
	}
	// The source tree is not touched.
	if _, err := os.Lstat(filepath.Join(src, "dev/console")); err != nil {
		t.Errorf("import changed its source: %v", err)
	}
}

func TestListSome(t *testing.T) {
	if got := listSome([]string{"a", "b\x1b]0;x\x07", "c"}, 2); got != `a, b\x1b]0;x\x07, and 1 more` {
		t.Errorf("listSome = %q", got)
	}
}
