package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Lock is a held flock(2) lock. The kernel drops it when the holder dies, so a killed vpsctl
// never leaves a VPS locked.
type Lock struct {
	f *os.File
}

// LockWait is how long a command waits for a lock another vpsctl holds before giving up.
var LockWait = 3 * time.Second

// LockVPS takes the lock that serializes commands on VPS id. what names the command, and is
// shown to whoever waits in vain.
func (s *Store) LockVPS(id uint32, what string) (*Lock, error) {
	return lockFile(filepath.Join(s.Root, "locks", strconv.FormatUint(uint64(id), 10)+".lock"), what, fmt.Sprintf("VPS %d", id))
}

// LockGlobal takes the lock that serializes changes to shared state: ID and name allocation,
// UID ranges, addresses, templates.
func (s *Store) LockGlobal(what string) (*Lock, error) {
	return lockFile(filepath.Join(s.Root, "locks", ".global"), what, "state root")
}

func lockFile(path, what, subject string) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(LockWait)
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, &os.PathError{Op: "flock", Path: path, Err: err}
		}
		if time.Now().After(deadline) {
			holder, _ := os.ReadFile(path)
			f.Close()
			h := strings.TrimSpace(string(holder))
			if h == "" {
				h = "unknown holder"
			}
			return nil, fmt.Errorf("%s: %w (%s)", subject, ErrLocked, h)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Record the holder for the error message of whoever waits next.
	f.Truncate(0)
	f.WriteAt([]byte(fmt.Sprintf("pid %d: vpsctl %s\n", os.Getpid(), what)), 0)
	return &Lock{f: f}, nil
}

// Unlock releases the lock. Safe on nil.
func (l *Lock) Unlock() {
	if l == nil || l.f == nil {
		return
	}
	l.f.Truncate(0)
	l.f.Close()
	l.f = nil
}
