package uts

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"

	"github.com/vpsctl/vpsctl/internal/sysfile"
	"golang.org/x/sys/unix"
)

// WriteEtcHostname writes hostname (plus a newline) to <rootfs>/etc/hostname, where rootfs is
// the root directory of a VPS: a tree its possibly hostile tenant controls.
//
// rootfs itself is trusted (the host chose it). Below it, "etc" is resolved with openat2(2)
// RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS, so symlinks and ".." are resolved as the tenant sees
// them and can never leave rootfs. The name "hostname" is never opened for writing: a symlink
// there (say to /etc/passwd) would be followed by open(2), and O_TRUNC on a path the tenant
// controls is how CVE-2024-45310 let a container truncate host files. Instead the content goes
// to a new file created with O_EXCL in the same directory, which is renamed over "hostname";
// rename(2) replaces a symlink instead of following it. A regular file that already holds
// the name is left alone (every boot writes it: most boots change nothing). Nothing is
// fsynced: the VPS's config is the record, and every boot writes the file from it again.
//
// The new file keeps the owner and permission bits of the regular file it replaces; when there
// is none, it gets the owner of the etc directory (the VPS's root, whatever host ID that maps
// to) and mode 0644.
func WriteEtcHostname(rootfs string, hostname string) error {
	if err := ValidateHostname(hostname); err != nil {
		return err
	}
	root, err := openRetry(rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC)
	if err != nil {
		return &os.PathError{Op: "open", Path: rootfs, Err: err}
	}
	defer unix.Close(root)

	etcPath := filepath.Join(rootfs, "etc")
	// O_DIRECTORY refuses FIFOs and devices a tenant could plant there.
	etc, err := openat2Retry(root, "etc", &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return &os.PathError{Op: "openat2", Path: etcPath, Err: err}
	}
	defer unix.Close(etc)

	if current(etc, hostname+"\n") {
		return nil
	}
	uid, gid, mode, err := targetOwner(etc)
	if err != nil {
		return &os.PathError{Op: "stat", Path: etcPath, Err: err}
	}

	tmp, fd, err := createTemp(etc)
	if err != nil {
		return &os.PathError{Op: "create", Path: filepath.Join(etcPath, ".hostname.*"), Err: err}
	}
	tmpPath := filepath.Join(etcPath, tmp)
	ok := false
	defer func() {
		if fd >= 0 {
			unix.Close(fd)
		}
		if !ok {
			_ = unix.Unlinkat(etc, tmp, 0)
		}
	}()
	if err := writeAll(fd, []byte(hostname+"\n")); err != nil {
		return &os.PathError{Op: "write", Path: tmpPath, Err: err}
	}
	if err := sysfile.Retry(func() error { return unix.Fchown(fd, uid, gid) }); err != nil {
		return &os.PathError{Op: "fchown", Path: tmpPath, Err: err}
	}
	// Explicit: the creation mode passed through the umask.
	if err := sysfile.Retry(func() error { return unix.Fchmod(fd, mode) }); err != nil {
		return &os.PathError{Op: "fchmod", Path: tmpPath, Err: err}
	}
	err = unix.Close(fd)
	fd = -1
	if err != nil {
		return &os.PathError{Op: "close", Path: tmpPath, Err: err}
	}
	if err := sysfile.Retry(func() error { return unix.Renameat(etc, tmp, etc, "hostname") }); err != nil {
		return &os.PathError{Op: "rename", Path: filepath.Join(etcPath, "hostname"), Err: err}
	}
	ok = true
	return nil
}

// current reports whether etc/hostname is a regular file holding exactly want. It is opened
// with O_NOFOLLOW|O_NONBLOCK and checked with fstat before reading: a symlink, FIFO or device a
// tenant planted there is never followed, waited on or read.
func current(etc int, want string) bool {
	fd, err := openat2Retry(etc, "hostname", &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_NOCTTY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS,
	})
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if sysfile.Retry(func() error { return unix.Fstat(fd, &st) }) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size != int64(len(want)) {
		return false
	}
	b := make([]byte, len(want)+1)
	n, err := unix.Read(fd, b)
	return err == nil && string(b[:n]) == want
}

// targetOwner returns the owner and mode the new etc/hostname gets: those of the current
// regular file, else the directory's owner and 0644. AT_SYMLINK_NOFOLLOW: a symlink's target
// says nothing about what the file should be.
func targetOwner(etc int) (uid, gid int, mode uint32, err error) {
	var st unix.Stat_t
	err = sysfile.Retry(func() error { return unix.Fstatat(etc, "hostname", &st, unix.AT_SYMLINK_NOFOLLOW) })
	if err == nil && st.Mode&unix.S_IFMT == unix.S_IFREG {
		return int(st.Uid), int(st.Gid), st.Mode & 0o777, nil
	}
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return 0, 0, 0, err
	}
	if err := sysfile.Retry(func() error { return unix.Fstat(etc, &st) }); err != nil {
		return 0, 0, 0, err
	}
	return int(st.Uid), int(st.Gid), 0o644, nil
}

// createTemp creates a new, empty file with a random name in dir. O_EXCL makes the kernel
// refuse any existing name, symlinks included; RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS says the
// same to openat2 for good measure.
func createTemp(dir int) (string, int, error) {
	var err error
	for range 100 {
		name := ".hostname.vpsctl-" + strconv.FormatUint(rand.Uint64(), 36)
		var fd int
		fd, err = openat2Retry(dir, name, &unix.OpenHow{
			Flags:   unix.O_WRONLY | unix.O_CREAT | unix.O_EXCL | unix.O_NOFOLLOW | unix.O_CLOEXEC,
			Mode:    0o600,
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS,
		})
		if err == nil {
			return name, fd, nil
		}
		if !errors.Is(err, unix.EEXIST) {
			return "", -1, err
		}
	}
	return "", -1, fmt.Errorf("no unused temporary name: %w", err)
}

func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return unix.EIO
		}
		b = b[n:]
	}
	return nil
}

func openRetry(path string, flags int) (int, error) {
	for {
		fd, err := unix.Open(path, flags, 0)
		if !errors.Is(err, unix.EINTR) {
			return fd, err
		}
	}
}

// openat2Retry retries EINTR and, a bounded number of times, EAGAIN: openat2 returns EAGAIN
// for RESOLVE_IN_ROOT/RESOLVE_BENEATH when a concurrent rename could have let ".." escape
// (a tenant can provoke that at will, so it is not retried forever).
func openat2Retry(dir int, path string, how *unix.OpenHow) (int, error) {
	var err error
	for range 64 {
		var fd int
		fd, err = unix.Openat2(dir, path, how)
		if err == nil {
			return fd, nil
		}
		if !errors.Is(err, unix.EINTR) && !errors.Is(err, unix.EAGAIN) {
			return -1, err
		}
	}
	return -1, err
}
