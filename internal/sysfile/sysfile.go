// Package sysfile reads and writes small files (kernfs, procfs, sysfs, vpsctl's state) and
// lists directories with plain system calls, and is vpsctl's one reader of a mount table.
//
// An os.File is made for Go's netpoller: opening one sets the descriptor non-blocking, tries to
// register it with epoll (which succeeds for the kernel's pollable pseudo-files, cgroup and
// procfs ones among them), and puts it back; closing deregisters it. That is four or five more
// system calls per file, and a boot touches some sixty files on its critical path. These
// helpers do the open, the reads or the one write, and the close, nothing else.
//
// Invariants: descriptors are close-on-exec and never outlive the call (Open's excepted, which
// hands one over); errors are *os.PathError, as os's, so errors.Is(err, fs.ErrNotExist) works.
package sysfile

import (
	"bytes"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/sys/mountinfo"

	"golang.org/x/sys/unix"
)

// Retry runs f, a system call's wrapper, until it fails with something other than EINTR: the one
// EINTR loop of vpsctl's Go code (a signal's handler interrupts a slow call, such as a blocking
// flock, a wait or a write to a pipe).
func Retry(f func() error) error {
	for {
		if err := f(); err != unix.EINTR {
			return err
		}
	}
}

// Open opens path with flags (O_CLOEXEC added), retrying on EINTR.
func Open(path string, flags int, perm uint32) (int, error) {
	for {
		fd, err := unix.Open(path, flags|unix.O_CLOEXEC, perm)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1, &os.PathError{Op: "open", Path: path, Err: err}
		}
		return fd, nil
	}
}

// OpenFile is Open returning an *os.File that is not registered with the netpoller (a
// blocking descriptor, as os.NewFile leaves it): for files whose descriptor is passed on or
// locked, not polled.
func OpenFile(path string, flags int, perm uint32) (*os.File, error) {
	fd, err := Open(path, flags, perm)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), path), nil
}

// ReadDir returns the entries of directory path sorted by name, as os.ReadDir (whose os.File
// goes through the netpoller's set-up and, for the first file a process opens, the netpoller's
// own).
func ReadDir(path string) ([]os.DirEntry, error) {
	f, err := OpenFile(path, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ents, err := f.ReadDir(-1)
	slices.SortFunc(ents, func(a, b os.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return ents, err
}

// Mounts is the mount table of process pid (0: the calling thread's), the entries filter keeps:
// vpsctl's one reader of a mount table, read here and parsed by moby/sys/mountinfo (whose
// GetMounts opens a polled os.File).
func Mounts(pid int, filter mountinfo.FilterFunc) ([]*mountinfo.Info, error) {
	path := "/proc/thread-self/mountinfo"
	if pid != 0 {
		path = "/proc/" + strconv.Itoa(pid) + "/mountinfo"
	}
	b, err := ReadFile(path)
	if err != nil {
		return nil, err
	}
	return mountinfo.GetMountsFromReader(bytes.NewReader(b), filter)
}

// ReadFile returns the whole content of path, as os.ReadFile.
func ReadFile(path string) ([]byte, error) {
	fd, err := Open(path, unix.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	b := make([]byte, 0, 512)
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := unix.Read(fd, b[len(b):cap(b)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			return b, nil
		}
		b = b[:len(b)+n]
	}
}

// WriteFile opens path with flags (O_WRONLY added; O_CREAT and O_TRUNC are the caller's) and
// writes data in one write(2): kernel files take one write as one command, and a value they
// refuse fails that write.
func WriteFile(path string, data []byte, flags int, perm uint32) error {
	fd, err := Open(path, unix.O_WRONLY|flags, perm)
	if err != nil {
		return err
	}
	for {
		n, err := unix.Write(fd, data)
		if err == unix.EINTR {
			continue
		}
		if err == nil && n != len(data) {
			err = io.ErrShortWrite
		}
		if cerr := unix.Close(fd); err == nil && cerr != nil && cerr != unix.EINTR {
			err = cerr
		}
		if err != nil {
			return &os.PathError{Op: "write", Path: path, Err: err}
		}
		return nil
	}
}
