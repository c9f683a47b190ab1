package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/vpsctl/vpsctl/container"
	"github.com/vpsctl/vpsctl/internal/sysfile"
	"golang.org/x/sys/unix"
)

// Lock is a held flock(2) lock. The kernel drops it when the holder dies, so a killed vpsctl
// never leaves a VPS locked.
type Lock struct {
	f    *os.File
	path string
}

// LockWait is how long a command waits for a lock another vpsctl holds before giving up.
var LockWait = 3 * time.Second

// LockVPS takes the lock that serializes commands on VPS id. what names the command, and is
// shown to whoever waits in vain. A VPS that does not exist (checked once the lock is held) is
// ErrNotExist, and leaves no lock file behind.
func (s *Store) LockVPS(ctx context.Context, id container.ID, what string) (*Lock, error) {
	lk, err := lockFile(ctx, filepath.Join(s.Root, "locks", strconv.FormatUint(uint64(id), 10)+".lock"), what, fmt.Sprintf("VPS %d", id))
	if err != nil {
		return nil, err
	}
	if !s.Exists(id) {
		lk.RemoveFile()
		lk.Unlock()
		return nil, fmt.Errorf("VPS %d: %w", id, ErrNotExist)
	}
	return lk, nil
}

// LockNewVPS takes the lock of VPS id, which need not exist: a VPS about to be made from
// another's files (a clone, a backup restored, a migration received) is claimed with its lock
// held. A caller whose VPS was not made removes the lock file (Lock.RemoveFile) before it lets
// go, as a destroy does.
func (s *Store) LockNewVPS(ctx context.Context, id container.ID, what string) (*Lock, error) {
	return lockFile(ctx, filepath.Join(s.Root, "locks", strconv.FormatUint(uint64(id), 10)+".lock"), what, fmt.Sprintf("VPS %d", id))
}

// LockGlobal takes the lock that serializes changes to shared state: ID and name allocation,
// UID ranges, addresses, templates.
func (s *Store) LockGlobal(ctx context.Context, what string) (*Lock, error) {
	return lockFile(ctx, filepath.Join(s.Root, "locks", ".global"), what, "state root")
}

func lockFile(ctx context.Context, path, what, subject string) (*Lock, error) {
	deadline := time.Now().Add(LockWait)
	for {
		f, err := lockOpen(ctx, path, subject, deadline)
		if err != nil {
			return nil, err
		}
		// A destroy removes the VPS's lock file while it holds it (RemoveFile): whoever
		// opened the file before and got the lock after holds a lock on a removed file, which
		// no one else will ever look at. Such a lock is no lock: take it again, on the path.
		var held, now unix.Stat_t
		if unix.Fstat(int(f.Fd()), &held) == nil && unix.Stat(path, &now) == nil && held.Ino == now.Ino && held.Dev == now.Dev {
			// Record the holder for the error message of whoever waits next.
			f.Truncate(0)
			f.WriteAt([]byte(fmt.Sprintf("pid %d: vpsctl %s\n", os.Getpid(), what)), 0)
			return &Lock{f: f, path: path}, nil
		}
		f.Close()
	}
}

// lockOpen opens path and flocks it, waiting until deadline. The wait is the kernel's own: a
// blocking flock(2) on a thread of its own, which is woken the moment the holder lets go (the
// usual holder is a stop's background remover, which lets go of a VPS's lock 1-20 ms after the
// stop returned). At the deadline, or when ctx is done, the file is closed: a flock granted
// after that is dropped with the file, so a wait given up never keeps a lock.
func lockOpen(ctx context.Context, path, subject string, deadline time.Time) (*os.File, error) {
	f, err := sysfile.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	fd := int(f.Fd())
	err = sysfile.Retry(func() error { return unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB) })
	if errors.Is(err, unix.EWOULDBLOCK) {
		done := make(chan error, 1)
		go func() { done <- sysfile.Retry(func() error { return unix.Flock(fd, unix.LOCK_EX) }) }()
		timer := time.NewTimer(time.Until(deadline))
		defer timer.Stop()
		select {
		case err = <-done:
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("%s: waiting for its lock: %w", subject, ctx.Err())
		case <-timer.C:
			holder, _ := os.ReadFile(path)
			h := strings.TrimSpace(string(holder))
			if h == "" {
				// Not a vpsctl (or one between lock and note): the kernel knows the holder.
				h = lockHolder(f)
			}
			f.Close()
			return nil, fmt.Errorf("%s: %w (%s)", subject, ErrLocked, h)
		}
	}
	if err != nil {
		f.Close()
		return nil, &os.PathError{Op: "flock", Path: path, Err: err}
	}
	return f, nil
}

// RemoveFile deletes the lock's file, still holding the lock: the last step of destroying a
// VPS, whose lock file would otherwise stay behind for good (one per ID ever used, a million
// after as many `run --rm`). Whoever waits on the old file finds it gone once it gets the lock,
// and locks the path anew (lockFile).
func (l *Lock) RemoveFile() {
	if l != nil && l.f != nil && l.path != "" {
		os.Remove(l.path)
	}
}

// File is the locked file: a child process that inherits it holds the lock too, until it
// closes it, even if this process dies first (flock(2) locks belong to the open file).
func (l *Lock) File() *os.File { return l.f }

// Path is the lock file's path.
func (l *Lock) Path() string { return l.path }

// Unlock releases the lock (its file, that is: a child that inherited it still holds it). Safe
// on nil.
func (l *Lock) Unlock() {
	if l == nil || l.f == nil {
		return
	}
	l.f.Truncate(0)
	l.f.Close()
	l.f = nil
}

// lockHolder names the process holding a flock on f, from /proc/locks.
func lockHolder(f *os.File) string {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return "unknown holder"
	}
	locks, err := os.ReadFile("/proc/locks")
	if err != nil {
		return "unknown holder"
	}
	if pid := parseLockHolder(string(locks), st.Ino); pid > 0 {
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		return fmt.Sprintf("pid %d: %s", pid, strings.TrimSpace(string(comm)))
	}
	return "unknown holder"
}

// parseLockHolder finds the PID of the FLOCK holder of inode ino in /proc/locks text
// ("1: FLOCK  ADVISORY  WRITE 4242 00:1f:123456 0 EOF").
func parseLockHolder(text string, ino uint64) int {
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || f[1] != "FLOCK" || strings.HasPrefix(f[1], "->") {
			continue
		}
		dev := strings.Split(f[5], ":")
		if len(dev) != 3 {
			continue
		}
		if n, err := strconv.ParseUint(dev[2], 10, 64); err == nil && n == ino {
			if pid, err := strconv.Atoi(f[4]); err == nil {
				return pid
			}
		}
	}
	return 0
}

// VPSLocked reports whether a command holds VPS id's lock now (a spare VPS's keeper holds it
// for the spare's whole life): a check, not a lock.
func (s *Store) VPSLocked(id container.ID) bool {
	held, _ := LockHeld(filepath.Join(s.Root, "locks", strconv.FormatUint(uint64(id), 10)+".lock"))
	return held
}

// LockHeld reports whether a process holds a flock on the file at path, and returns what the
// file says (a holder that writes its PID there names itself): a check, not a lock.
func LockHeld(path string) (bool, string) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, ""
	}
	defer unix.Close(fd)
	if err := unix.Flock(fd, unix.LOCK_SH|unix.LOCK_NB); err != unix.EWOULDBLOCK {
		return false, "" // not held (our shared lock goes with the close)
	}
	var b [64]byte
	n, _ := unix.Pread(fd, b[:], 0)
	return true, strings.TrimSpace(string(b[:max(n, 0)]))
}
