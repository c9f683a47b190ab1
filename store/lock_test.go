package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestLockRemovedFile: a destroy removes the VPS's lock file while holding the lock. Whoever
// was waiting on the old file then locks the path anew, so that a third command still finds
// the VPS locked; a VPS that does not exist is refused and leaves no lock file.
func TestLockRemovedFile(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(s.VPSDir(7), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.Path(7, "vps.conf"), []byte("ID=\"7\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	lockPath := filepath.Join(s.Root, "locks", "7.lock")

	a, err := s.LockVPS(context.Background(), 7, "a")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *Lock, 1)
	go func() {
		b, err := s.LockVPS(context.Background(), 7, "b") // waits for a
		if err != nil {
			t.Error(err)
		}
		got <- b
	}()
	time.Sleep(100 * time.Millisecond) // b has opened the old file and is waiting on it
	a.RemoveFile()
	a.Unlock()
	b := <-got
	if b == nil {
		t.FailNow()
	}
	defer b.Unlock()
	var held, now unix.Stat_t
	if err := unix.Fstat(int(b.File().Fd()), &held); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat(lockPath, &now); err != nil || held.Ino != now.Ino {
		t.Fatalf("the second holder's lock is not on the lock file's path (%v): inode %d, path's %d", err, held.Ino, now.Ino)
	}
	old := LockWait
	LockWait = 100 * time.Millisecond
	defer func() { LockWait = old }()
	if c, err := s.LockVPS(context.Background(), 7, "c"); !errors.Is(err, ErrLocked) {
		c.Unlock()
		t.Fatalf("a third command got the lock while the second held it: %v", err)
	}

	if _, err := s.LockVPS(context.Background(), 8, "d"); !errors.Is(err, ErrNotExist) {
		t.Fatalf("lock of a VPS that does not exist: %v, want ErrNotExist", err)
	}
	if _, err := os.Stat(filepath.Join(s.Root, "locks", "8.lock")); !os.IsNotExist(err) {
		t.Fatalf("lock file of a VPS that does not exist left behind: %v", err)
	}
}
