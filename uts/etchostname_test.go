package uts

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func newRoot(t *testing.T) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "rootfs")
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	return root
}

func checkHostname(t *testing.T, path, want string) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.Mode().IsRegular() {
		t.Fatalf("%s is %v, not a regular file", path, fi.Mode())
	}
	b, err := os.ReadFile(path)
	if err != nil || string(b) != want+"\n" {
		t.Fatalf("%s = %q, %v; want %q", path, b, err, want+"\n")
	}
}

func noTempLeft(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".hostname.") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

func TestWriteEtcHostnamePlain(t *testing.T) {
	root := newRoot(t)
	if err := WriteEtcHostname(root, "web1"); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(root, "etc", "hostname")
	checkHostname(t, p, "web1")
	fi, _ := os.Stat(p)
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v", fi.Mode())
	}
	if err := WriteEtcHostname(root, "web2.example.com"); err != nil {
		t.Fatal(err)
	}
	checkHostname(t, p, "web2.example.com")
	noTempLeft(t, filepath.Join(root, "etc"))

	if err := WriteEtcHostname(root, "-bad"); !errors.Is(err, ErrBadName) {
		t.Errorf("bad name: %v", err)
	}
	checkHostname(t, p, "web2.example.com")
}

func TestWriteEtcHostnameKeepsOwner(t *testing.T) {
	requireRoot(t)
	root := newRoot(t)
	etc := filepath.Join(root, "etc")
	// The VPS's root is an unprivileged host user with a user namespace.
	if err := os.Chown(etc, 1000000, 1000000); err != nil {
		t.Fatal(err)
	}
	if err := WriteEtcHostname(root, "a"); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(etc, "hostname")
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil || st.Uid != 1000000 || st.Gid != 1000000 {
		t.Fatalf("new file owned by %d:%d (%v); want the directory's owner", st.Uid, st.Gid, err)
	}
	if err := os.Chown(p, 1000005, 1000006); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteEtcHostname(root, "b"); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat(p, &st); err != nil || st.Uid != 1000005 || st.Gid != 1000006 || st.Mode&0o777 != 0o600 {
		t.Fatalf("replaced file %d:%d %o (%v); want the old owner and mode", st.Uid, st.Gid, st.Mode&0o777, err)
	}
	checkHostname(t, p, "b")
}

func fileState(t *testing.T, path string) ([]byte, unix.Stat_t) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return b, st
}

func sameFile(t *testing.T, path string, b0 []byte, st0 unix.Stat_t) {
	t.Helper()
	b, st := fileState(t, path)
	if !bytes.Equal(b, b0) || st.Ino != st0.Ino || st.Size != st0.Size || st.Mtim != st0.Mtim || st.Ctim != st0.Ctim {
		t.Fatalf("%s was touched", path)
	}
}

// TestWriteEtcHostnameSymlinkOut: a tenant's etc/hostname pointing at a host file. Tried
// first on a sentinel file, and only if that held, on the host's real /etc/passwd.
func TestWriteEtcHostnameSymlinkOut(t *testing.T) {
	safe := t.Run("sentinel", func(t *testing.T) {
		root := newRoot(t)
		sentinel := filepath.Join(t.TempDir(), "host-file")
		if err := os.WriteFile(sentinel, []byte("host data\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		b0, st0 := fileState(t, sentinel)
		link := filepath.Join(root, "etc", "hostname")
		if err := os.Symlink(sentinel, link); err != nil {
			t.Fatal(err)
		}
		if err := WriteEtcHostname(root, "evil"); err != nil {
			t.Fatal(err)
		}
		sameFile(t, sentinel, b0, st0)
		checkHostname(t, link, "evil")
	})
	if !safe {
		t.Fatal("not trying /etc/passwd: the sentinel was not safe")
	}
	t.Run("etc-passwd", func(t *testing.T) {
		root := newRoot(t)
		b0, st0 := fileState(t, "/etc/passwd")
		link := filepath.Join(root, "etc", "hostname")
		if err := os.Symlink("/etc/passwd", link); err != nil {
			t.Fatal(err)
		}
		if err := WriteEtcHostname(root, "evil"); err != nil {
			t.Fatal(err)
		}
		sameFile(t, "/etc/passwd", b0, st0)
		checkHostname(t, link, "evil")
		noTempLeft(t, filepath.Join(root, "etc"))
	})
}

// TestWriteEtcHostnameEtcEscapes: etc itself a symlink out of the root, absolute or by "..":
// RESOLVE_IN_ROOT resolves both inside the root, and the host directory is never written.
func TestWriteEtcHostnameEtcEscapes(t *testing.T) {
	outside := t.TempDir()
	for name, target := range map[string]string{
		"absolute": outside,
		"dotdot":   strings.Repeat("../", 20) + strings.TrimPrefix(outside, "/"),
	} {
		t.Run(name, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "rootfs")
			if err := os.MkdirAll(root, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, filepath.Join(root, "etc")); err != nil {
				t.Fatal(err)
			}
			err := WriteEtcHostname(root, "evil")
			if !errors.Is(err, os.ErrNotExist) {
				t.Errorf("WriteEtcHostname = %v; want not-exist (target resolved inside the root)", err)
			}
			ents, _ := os.ReadDir(outside)
			if len(ents) != 0 {
				t.Fatalf("host directory %s written: %v", outside, ents)
			}
			// Once the path the symlink names exists inside the root, it is used.
			inside := filepath.Join(root, outside)
			if err := os.MkdirAll(inside, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := WriteEtcHostname(root, "evil"); err != nil {
				t.Fatal(err)
			}
			checkHostname(t, filepath.Join(inside, "hostname"), "evil")
			if ents, _ := os.ReadDir(outside); len(ents) != 0 {
				t.Fatalf("host directory %s written: %v", outside, ents)
			}
		})
	}
}

func TestWriteEtcHostnameOddTargets(t *testing.T) {
	t.Run("hostname is a directory", func(t *testing.T) {
		root := newRoot(t)
		if err := os.Mkdir(filepath.Join(root, "etc", "hostname"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := WriteEtcHostname(root, "x"); err == nil {
			t.Fatal("replaced a directory")
		}
		noTempLeft(t, filepath.Join(root, "etc"))
	})
	t.Run("no etc", func(t *testing.T) {
		root := t.TempDir()
		if err := WriteEtcHostname(root, "x"); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("etc is a fifo", func(t *testing.T) {
		root := t.TempDir()
		if err := unix.Mkfifo(filepath.Join(root, "etc"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := WriteEtcHostname(root, "x"); !errors.Is(err, unix.ENOTDIR) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("etc through proc magic link", func(t *testing.T) {
		requireRoot(t)
		// The root has a real /proc, and etc names an fd of ours open on a host directory:
		// following that magic link would leave the root. RESOLVE_NO_MAGICLINKS refuses it.
		root := t.TempDir()
		proc := filepath.Join(root, "proc")
		if err := os.Mkdir(proc, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount("/proc", proc, "", unix.MS_BIND, ""); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := unix.Unmount(proc, unix.MNT_DETACH); err != nil {
				t.Errorf("unmount %s: %v", proc, err)
			}
		})
		outside := t.TempDir()
		dir, err := os.Open(outside)
		if err != nil {
			t.Fatal(err)
		}
		defer dir.Close()
		link := "/proc/self/fd/" + strconv.Itoa(int(dir.Fd()))
		if err := os.Symlink(link, filepath.Join(root, "etc")); err != nil {
			t.Fatal(err)
		}
		if err := WriteEtcHostname(root, "x"); !errors.Is(err, unix.ELOOP) {
			t.Errorf("got %v; want ELOOP", err)
		}
		if ents, _ := os.ReadDir(outside); len(ents) != 0 {
			t.Fatalf("host directory written through %s: %v", link, ents)
		}
	})
}

// TestWriteEtcHostnameUnchanged: a file that already holds the name is left as it is (no new
// inode, no copy-up into a VPS's private area at every boot); any other content, or a symlink
// to a file holding the name, is replaced.
func TestWriteEtcHostnameUnchanged(t *testing.T) {
	root := newRoot(t)
	p := filepath.Join(root, "etc", "hostname")
	ino := func() uint64 {
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			t.Fatal(err)
		}
		return st.Ino
	}
	if err := WriteEtcHostname(root, "web1"); err != nil {
		t.Fatal(err)
	}
	first := ino()
	if err := WriteEtcHostname(root, "web1"); err != nil {
		t.Fatal(err)
	}
	if ino() != first {
		t.Error("the same name was written again")
	}
	if err := WriteEtcHostname(root, "web2"); err != nil {
		t.Fatal(err)
	}
	if ino() == first {
		t.Error("a new name did not replace the file")
	}
	checkHostname(t, p, "web2")
	// A symlink to a file that happens to hold the name is still replaced, not trusted.
	other := filepath.Join(root, "other")
	if err := os.WriteFile(other, []byte("web3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Remove(p)
	if err := os.Symlink("/other", p); err != nil {
		t.Fatal(err)
	}
	if err := WriteEtcHostname(root, "web3"); err != nil {
		t.Fatal(err)
	}
	checkHostname(t, p, "web3")
	noTempLeft(t, filepath.Join(root, "etc"))
}
