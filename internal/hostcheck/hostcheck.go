// Package hostcheck tells, before anything is made, whether this host's kernel has what vpsctl
// needs, and names the first thing missing: a VPS that fails half-way through its start on an
// old kernel leaves a cryptic EINVAL or ENOSYS from deep inside, where this names the feature
// and the kernel release that brought it.
//
// System calls are probed in ways that change nothing (arguments the kernel rejects after it
// has looked the call up, or an O_PATH handle); what cannot be probed that cheaply (a flag, a
// file system's support for idmapped mounts) is judged by the running kernel's release.
// MinKernel is the oldest release the test suite runs on (the VM tier: Debian 12's 6.1); an
// older kernel with every feature is reported with ErrUntested, for the caller to warn about.
//
// Not for: deciding between code paths at run time (the cgroup package decides by statfs, the
// runtime by the error of the call itself); this is a start-up message, not a feature switch.
package hostcheck

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// MinKernel is the oldest kernel release vpsctl is tested on (the VM tier boots Debian 12's).
var MinKernel = Version{6, 1, 0}

var (
	// ErrMissing: the kernel lacks a feature vpsctl needs.
	ErrMissing = errors.New("kernel feature missing")
	// ErrUntested: every feature is there, but the kernel is older than MinKernel.
	ErrUntested = errors.New("kernel older than any vpsctl is tested on")
)

// Version is a kernel release's first three numbers.
type Version [3]int

// Less reports whether v is an older release than w.
func (v Version) Less(w Version) bool {
	for i := range v {
		if v[i] != w[i] {
			return v[i] < w[i]
		}
	}
	return false
}

// ParseRelease reads the version from a uname release such as "6.1.0-50-amd64" or
// "6.18.44-fc-v1272": two or three dot-separated numbers (a missing third is 0), then
// anything.
func ParseRelease(release string) (Version, error) {
	var v Version
	rest, got := release, 0
	for got < len(v) {
		n := 0
		for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
			n++
		}
		if n == 0 || n > 6 {
			break
		}
		v[got], _ = strconv.Atoi(rest[:n])
		got++
		if rest = rest[n:]; !strings.HasPrefix(rest, ".") {
			break
		}
		rest = rest[1:]
	}
	if got < 2 {
		return Version{}, fmt.Errorf("kernel release %q: no MAJOR.MINOR version", release)
	}
	return v, nil
}

// Feature is one thing vpsctl needs of the kernel.
type Feature struct {
	Name  string  // what it is, as a message names it
	Since Version // the release that brought it
	// Probe, when set, asks the running kernel: nil if it has the feature, ErrMissing if not,
	// another error if it cannot tell (then Since decides). Nil: Since alone decides.
	Probe func() error
}

// Features are what vpsctl uses, oldest first.
var Features = []Feature{
	{Name: "open_tree and move_mount (the VPS's root handed to its init as a mount)", Since: Version{5, 2, 0}, Probe: probeOpenTree},
	{Name: "clone3", Since: Version{5, 3, 0}, Probe: probeClone3},
	{Name: "pidfd_open (processes watched and signalled without PID reuse races)", Since: Version{5, 3, 0}, Probe: probePidfd},
	{Name: "clone3 CLONE_INTO_CGROUP (a VPS's init born in its group)", Since: Version{5, 7, 0}},
	{Name: "setns on a pidfd (exec joins every namespace at once)", Since: Version{5, 8, 0}},
	{Name: "close_range CLOSE_RANGE_CLOEXEC", Since: Version{5, 11, 0}},
	{Name: "mount_setattr and idmapped mounts (templates mapped to a VPS's UIDs)", Since: Version{5, 12, 0}, Probe: probeMountSetattr},
	{Name: "cgroup.kill (cgroup v2)", Since: Version{5, 14, 0}},
	{Name: "idmapped lower layers in overlayfs (a VPS's root over its template)", Since: Version{5, 19, 0}},
}

// Host is what a check reads of the running kernel; tests make their own.
type Host struct {
	Release string // uname -r
	// Probes run the Features' probes; false judges by Release alone.
	Probes bool
}

// Running is this host, probed.
func Running() (Host, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return Host{}, fmt.Errorf("uname: %w", err)
	}
	return Host{Release: unix.ByteSliceToString(u.Release[:]), Probes: true}, nil
}

// Check reports the first feature of fs the host lacks, as an error wrapping ErrMissing that
// names it, the release that brought it and the running one; ErrUntested if none is missing
// but the kernel is older than MinKernel; nil otherwise.
func (h Host) Check(fs []Feature) error {
	v, err := ParseRelease(h.Release)
	if err != nil {
		return err
	}
	for _, f := range fs {
		have := !v.Less(f.Since)
		if h.Probes && f.Probe != nil {
			switch err := f.Probe(); {
			case err == nil:
				have = true
			case errors.Is(err, ErrMissing):
				have = false
			}
		}
		if !have {
			return fmt.Errorf("kernel %s lacks %s (Linux %d.%d and later; vpsctl is tested on %d.%d and later): %w",
				h.Release, f.Name, f.Since[0], f.Since[1], MinKernel[0], MinKernel[1], ErrMissing)
		}
	}
	if v.Less(MinKernel) {
		return fmt.Errorf("kernel %s: vpsctl is tested on Linux %d.%d and later: %w", h.Release, MinKernel[0], MinKernel[1], ErrUntested)
	}
	return nil
}

// Check checks the running kernel for every feature vpsctl needs (see Host.Check).
func Check() error {
	h, err := Running()
	if err != nil {
		return err
	}
	return h.Check(Features)
}

// missingIfENOSYS turns the ENOSYS of an unknown system call into ErrMissing, and any other
// answer (the kernel looked at the arguments) into nil.
func missingIfENOSYS(err error) error {
	if errors.Is(err, unix.ENOSYS) {
		return ErrMissing
	}
	return nil
}

// probeClone3: a size below the first version of struct clone_args is EINVAL, before anything
// is cloned.
func probeClone3() error {
	_, _, e := unix.Syscall(unix.SYS_CLONE3, 0, 0, 0)
	if e == 0 {
		return errors.New("clone3 with no arguments succeeded")
	}
	return missingIfENOSYS(e)
}

func probePidfd() error {
	fd, err := unix.PidfdOpen(unix.Getpid(), 0)
	if err == nil {
		unix.Close(fd)
	}
	return missingIfENOSYS(err)
}

// probeOpenTree: without OPEN_TREE_CLONE open_tree returns an O_PATH handle, nothing mounted.
func probeOpenTree() error {
	fd, err := unix.OpenTree(unix.AT_FDCWD, "/", unix.OPEN_TREE_CLOEXEC)
	if err == nil {
		unix.Close(fd)
	}
	return missingIfENOSYS(err)
}

// probeMountSetattr: a zero-sized attribute is EINVAL, before any mount is looked up.
func probeMountSetattr() error {
	_, _, e := unix.Syscall6(unix.SYS_MOUNT_SETATTR, uintptr(^uint(0)), 0, 0, 0, 0, 0)
	if e == 0 {
		return errors.New("mount_setattr with no arguments succeeded")
	}
	return missingIfENOSYS(e)
}
