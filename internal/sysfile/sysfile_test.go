package sysfile

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// TestReadDir: what os.ReadDir returns (entries sorted by name, each with its type), and its
// errors: a missing directory is fs.ErrNotExist naming it; a file is not a directory.
func TestReadDir(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"b", "a", "c"} {
		if err := os.Mkdir(filepath.Join(dir, n), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := WriteFile(filepath.Join(dir, "0file"), []byte("x"), os.O_CREATE, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := ReadDir(dir)
	want, werr := os.ReadDir(dir)
	if err != nil || werr != nil || len(got) != len(want) {
		t.Fatalf("ReadDir: %v, %v; os.ReadDir: %v, %v", got, err, want, werr)
	}
	for i := range got {
		if got[i].Name() != want[i].Name() || got[i].IsDir() != want[i].IsDir() {
			t.Fatalf("entry %d: %s (dir %v), want %s (dir %v)", i, got[i].Name(), got[i].IsDir(), want[i].Name(), want[i].IsDir())
		}
	}
	var pe *os.PathError
	missing := filepath.Join(dir, "missing")
	if _, err := ReadDir(missing); !errors.Is(err, fs.ErrNotExist) || !errors.As(err, &pe) || pe.Path != missing {
		t.Fatalf("ReadDir of a missing directory: %v", err)
	}
	if _, err := ReadDir(filepath.Join(dir, "0file")); !errors.Is(err, unix.ENOTDIR) {
		t.Fatalf("ReadDir of a file: %v", err)
	}
}

// TestMounts: the calling thread's table and another process's (by PID) are read, filtered,
// and parsed as the library parses them (other tests may mount meanwhile: the root's entry is
// what is compared); a process that does not exist is fs.ErrNotExist.
func TestMounts(t *testing.T) {
	want, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter("/"))
	if err != nil || len(want) != 1 {
		t.Fatalf("the library's entry for /: %v, %v", want, err)
	}
	for _, pid := range []int{0, os.Getpid()} {
		all, err := Mounts(pid, nil)
		if err != nil || len(all) < 2 {
			t.Fatalf("Mounts(%d): %d entries, %v", pid, len(all), err)
		}
		root, err := Mounts(pid, mountinfo.SingleEntryFilter("/"))
		if err != nil || len(root) != 1 || *root[0] != *want[0] {
			t.Fatalf("Mounts(%d) filtered to /: %v, %v; want %+v", pid, root, err, want[0])
		}
	}
	if _, err := Mounts(1<<22+1, nil); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Mounts of no process: %v", err)
	}
}

// TestReadWrite: a file larger than the first buffer is read whole; a write replaces with
// O_TRUNC and creates with O_CREAT at the given mode (umask aside); missing files are
// fs.ErrNotExist as *os.PathError naming them.
func TestReadWrite(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	big := bytes.Repeat([]byte("0123456789abcdef"), 1000)
	if err := WriteFile(p, big, os.O_CREATE|os.O_TRUNC, 0o640); err != nil {
		t.Fatal(err)
	}
	got, err := ReadFile(p)
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("ReadFile: %d bytes, %v; want %d", len(got), err, len(big))
	}
	if err := WriteFile(p, []byte("x"), os.O_TRUNC, 0); err != nil {
		t.Fatal(err)
	}
	if got, _ := ReadFile(p); string(got) != "x" {
		t.Fatalf("after a truncating write: %q", got)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm()&^0o640 != 0 {
		t.Fatalf("mode %v, want within 0640", fi.Mode())
	}
	var pe *os.PathError
	missing := filepath.Join(dir, "missing")
	if _, err := ReadFile(missing); !errors.Is(err, fs.ErrNotExist) || !errors.As(err, &pe) || pe.Path != missing {
		t.Fatalf("ReadFile of a missing file: %v", err)
	}
	if err := WriteFile(missing, []byte("x"), 0, 0); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("WriteFile without O_CREAT of a missing file: %v", err)
	}
}

// TestWriteRefused: a value the kernel refuses fails the write, as *os.PathError.
func TestWriteRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (writes a sysctl)")
	}
	err := WriteFile("/proc/sys/kernel/pid_max", []byte("not a number"), 0, 0)
	var pe *os.PathError
	if !errors.Is(err, unix.EINVAL) || !errors.As(err, &pe) || pe.Op != "write" {
		t.Fatalf("refused value: %v, want a write *PathError with EINVAL", err)
	}
}

// TestOpenFile: the descriptor is close-on-exec and blocking (not the netpoller's).
func TestOpenFile(t *testing.T) {
	f, err := OpenFile(filepath.Join(t.TempDir(), "l"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fl, _ := unix.FcntlInt(f.Fd(), unix.F_GETFD, 0)
	st, _ := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
	if fl&unix.FD_CLOEXEC == 0 || st&unix.O_NONBLOCK != 0 {
		t.Fatalf("fd flags %#x, status %#x: want close-on-exec, blocking", fl, st)
	}
}
