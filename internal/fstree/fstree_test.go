package fstree

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vpsctl/vpsctl/internal/idshift"
	"github.com/vpsctl/vpsctl/uid"
	"golang.org/x/sys/unix"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true: this test needs root")
		}
		t.Skip("needs root (chown, mknod, trusted.* xattrs)")
	}
}

var (
	rangeA = uid.Range{Host: 1000000, Size: 65536}
	rangeB = uid.Range{Host: 1131072, Size: 65536}
)

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// makeTree builds a private area as a VPS with range A leaves it: files of its users, setuid
// and setgid binaries, an ACL naming a VPS user, a v3 file capability, an overlay whiteout and
// opaque directory, hard and symbolic links, a FIFO.
func makeTree(t *testing.T, root string) {
	t.Helper()
	a := int(rangeA.Host)
	must(t, os.MkdirAll(filepath.Join(root, "etc/opaque"), 0o755))
	must(t, os.MkdirAll(filepath.Join(root, "usr/bin"), 0o755))
	must(t, os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0::/root:/bin/sh\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(root, "usr/bin/su"), []byte("#!/bin/sh\n"), 0o755))
	must(t, os.WriteFile(filepath.Join(root, "usr/bin/ping"), []byte("ping"), 0o755))
	must(t, os.WriteFile(filepath.Join(root, "usr/bin/wall"), []byte("wall"), 0o755))
	must(t, os.Link(filepath.Join(root, "usr/bin/ping"), filepath.Join(root, "usr/bin/ping4")))
	must(t, os.Symlink("/etc/passwd", filepath.Join(root, "etc/link")))
	must(t, unix.Mknod(filepath.Join(root, "etc/gone"), unix.S_IFCHR, 0)) // a whiteout
	must(t, unix.Mkfifo(filepath.Join(root, "etc/fifo"), 0o600))
	must(t, unix.Setxattr(filepath.Join(root, "etc/opaque"), "trusted.overlay.opaque", []byte("y"), 0))
	must(t, unix.Setxattr(filepath.Join(root, "etc/passwd"), "trusted.overlay.origin", []byte("handle"), 0))
	must(t, unix.Setxattr(filepath.Join(root, "etc/passwd"), "user.note", []byte("kept"), 0))
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		must(t, err)
		must(t, os.Lchown(p, a, a))
		return nil
	})
	must(t, os.Lchown(filepath.Join(root, "usr/bin/wall"), a, a+5)) // group tty
	must(t, unix.Chmod(filepath.Join(root, "usr/bin/su"), 0o4755))
	must(t, unix.Chmod(filepath.Join(root, "usr/bin/wall"), 0o2755))
	acl := binary.LittleEndian.AppendUint32(nil, 2)
	for _, e := range [][3]uint32{{1, 6, ^uint32(0)}, {2, 4, uint32(a + 1000)}, {4, 4, ^uint32(0)}, {0x10, 6, ^uint32(0)}, {0x20, 4, ^uint32(0)}} {
		acl = binary.LittleEndian.AppendUint16(acl, uint16(e[0]))
		acl = binary.LittleEndian.AppendUint16(acl, uint16(e[1]))
		acl = binary.LittleEndian.AppendUint32(acl, e[2])
	}
	must(t, unix.Setxattr(filepath.Join(root, "etc/passwd"), idshift.ACLAccess, acl, 0))
	cp := binary.LittleEndian.AppendUint32(nil, 0x03000001)
	cp = binary.LittleEndian.AppendUint64(cp, 1<<13)
	cp = binary.LittleEndian.AppendUint64(cp, 0)
	cp = binary.LittleEndian.AppendUint32(cp, uint32(a))
	must(t, unix.Setxattr(filepath.Join(root, "usr/bin/ping"), idshift.Capability, cp, 0))
}

func copyTree(t *testing.T, src, dst string, s idshift.Shift, o WriteOptions) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	o.Prefix = "private"
	must(t, Write(tw, src, o))
	must(t, tw.Close())
	x, err := NewExtractor(dst, s)
	must(t, err)
	tr := tar.NewReader(&buf)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		must(t, err)
		must(t, x.Entry(hdr, tr))
	}
	must(t, x.Close())
}

func lstat(t *testing.T, p string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	must(t, unix.Lstat(p, &st))
	return st
}

func TestCopyShifted(t *testing.T) {
	requireRoot(t)
	src, dst := filepath.Join(t.TempDir(), "src"), t.TempDir()
	must(t, os.Mkdir(src, 0o755))
	makeTree(t, src)
	s, _ := idshift.New(rangeA, rangeB)
	copyTree(t, src, dst, s, WriteOptions{})
	got := filepath.Join(dst, "private")
	b := int(rangeB.Host)
	for rel, want := range map[string][3]int{ // uid, gid, mode&07777
		".": {b, b, 0o755}, "etc/passwd": {b, b, 0o664}, // the ACL's mask is the group bits "usr/bin/su": {b, b, 0o4755}, "usr/bin/wall": {b, b + 5, 0o2755},
		"etc/fifo": {b, b, 0o600}, "etc/gone": {b, b, 0},
	} {
		st := lstat(t, filepath.Join(got, rel))
		if int(st.Uid) != want[0] || int(st.Gid) != want[1] || int(st.Mode&0o7777) != want[2] {
			t.Errorf("%s: %d:%d %o, want %d:%d %o", rel, st.Uid, st.Gid, st.Mode&0o7777, want[0], want[1], want[2])
		}
	}
	if st := lstat(t, filepath.Join(got, "etc/link")); st.Uid != uint32(b) || st.Mode&unix.S_IFMT != unix.S_IFLNK {
		t.Errorf("symlink: %+v", st)
	}
	if l, _ := os.Readlink(filepath.Join(got, "etc/link")); l != "/etc/passwd" {
		t.Errorf("symlink target %q", l)
	}
	if st := lstat(t, filepath.Join(got, "etc/gone")); st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Errorf("whiteout: mode %o rdev %d", st.Mode, st.Rdev)
	}
	if a, b := lstat(t, filepath.Join(got, "usr/bin/ping")), lstat(t, filepath.Join(got, "usr/bin/ping4")); a.Ino != b.Ino || a.Nlink != 2 {
		t.Errorf("hard link lost: %d/%d nlink %d", a.Ino, b.Ino, a.Nlink)
	}
	xattr := func(p, name string) []byte {
		v := make([]byte, 256)
		n, err := unix.Lgetxattr(filepath.Join(got, p), name, v)
		if err != nil {
			return nil
		}
		return v[:n]
	}
	if string(xattr("etc/opaque", "trusted.overlay.opaque")) != "y" || string(xattr("etc/passwd", "user.note")) != "kept" {
		t.Error("overlay or user xattr lost")
	}
	if xattr("etc/passwd", "trusted.overlay.origin") != nil {
		t.Error("trusted.overlay.origin copied")
	}
	if acl := xattr("etc/passwd", idshift.ACLAccess); len(acl) != 4+5*8 || binary.LittleEndian.Uint32(acl[4+8+4:]) != uint32(b+1000) {
		t.Errorf("ACL user entry not shifted: %x", acl)
	}
	if cp := xattr("usr/bin/ping", idshift.Capability); len(cp) != 24 || binary.LittleEndian.Uint32(cp[20:]) != uint32(b) {
		t.Errorf("capability root ID not shifted: %x", cp)
	}
	if out, err := exec.Command("getcap", filepath.Join(got, "usr/bin/ping")).CombinedOutput(); err == nil && !strings.Contains(string(out), "cap_net_raw") {
		t.Errorf("getcap: %s", out)
	}
	if mt, st := lstat(t, filepath.Join(src, "etc")).Mtim, lstat(t, filepath.Join(got, "etc")).Mtim; mt != st {
		t.Errorf("directory mtime %v, want %v", st, mt)
	}
}

func TestDelta(t *testing.T) {
	requireRoot(t)
	src, dst := filepath.Join(t.TempDir(), "src"), t.TempDir()
	must(t, os.Mkdir(src, 0o755))
	makeTree(t, src)
	inv := Inventory{}
	copyTree(t, src, dst, idshift.Shift{}, WriteOptions{Record: inv})
	must(t, os.WriteFile(filepath.Join(src, "etc/passwd"), []byte("changed\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(src, "etc/new"), []byte("new\n"), 0o644))
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := Inventory{}
	must(t, Write(tw, src, WriteOptions{Prefix: "private", Since: inv, Record: now}))
	must(t, tw.Close())
	var names []string
	tr := tar.NewReader(&buf)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		must(t, err)
		if hdr.Typeflag != tar.TypeDir {
			names = append(names, hdr.Name)
		}
	}
	if strings.Join(names, " ") != "private/etc/new private/etc/passwd" {
		t.Errorf("delta wrote %q, want the changed and the new file only", names)
	}
	if _, ok := now["etc/new"]; !ok || len(now) != len(inv)+1 {
		t.Errorf("inventory %d entries after %d", len(now), len(inv))
	}
}

// TestHostileArchive feeds the extractor entries a tampered archive could hold: none may write
// outside the target or through a link it made.
func TestHostileArchive(t *testing.T) {
	requireRoot(t)
	base := t.TempDir()
	dst, outside := filepath.Join(base, "dst"), filepath.Join(base, "outside")
	must(t, os.Mkdir(dst, 0o700))
	must(t, os.Mkdir(outside, 0o700))
	must(t, os.WriteFile(filepath.Join(outside, "secret"), []byte("x"), 0o600))
	x, err := NewExtractor(dst, idshift.Shift{})
	must(t, err)
	defer x.Close()
	reg := func(name string) *tar.Header {
		return &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: 2}
	}
	for _, name := range []string{"../escape", "/abs", "a/../../escape"} {
		if err := x.Entry(reg(name), strings.NewReader("hi")); !errors.Is(err, ErrBadEntry) {
			t.Errorf("entry %q: %v, want ErrBadEntry", name, err)
		}
	}
	must(t, x.Entry(&tar.Header{Name: "link", Typeflag: tar.TypeSymlink, Linkname: outside, Mode: 0o777}, nil))
	if err := x.Entry(reg("link/secret"), strings.NewReader("hi")); err == nil {
		t.Error("wrote through a symbolic link the archive made")
	}
	if err := x.Entry(&tar.Header{Name: "hard", Typeflag: tar.TypeLink, Linkname: "link/secret"}, nil); err == nil {
		t.Error("hard link through a symbolic link")
	}
	if err := x.Entry(&tar.Header{Name: "hard2", Typeflag: tar.TypeLink, Linkname: "../outside/secret"}, nil); !errors.Is(err, ErrBadEntry) {
		t.Errorf("hard link outside: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(outside, "secret")); string(b) != "x" {
		t.Errorf("outside file changed: %q", b)
	}
	if err := x.Remove("link/secret"); err == nil {
		t.Error("removed through a symbolic link")
	}
	if _, err := os.Stat(filepath.Join(outside, "secret")); err != nil {
		t.Error("outside file removed")
	}
	// A file replaced by a directory and back, as a later pass may do.
	must(t, x.Entry(reg("f"), strings.NewReader("hi")))
	must(t, x.Entry(&tar.Header{Name: "f", Typeflag: tar.TypeDir, Mode: 0o755}, nil))
	must(t, x.Entry(reg("f/g"), strings.NewReader("hi")))
	must(t, x.Entry(reg("f"), strings.NewReader("hi")))
	if st := lstat(t, filepath.Join(dst, "f")); st.Mode&unix.S_IFMT != unix.S_IFREG {
		t.Errorf("f is %o", st.Mode)
	}
	must(t, x.Remove("f"))
	must(t, x.Remove("nonexistent"))
}
