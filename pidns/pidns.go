// Package pidns translates PIDs at the boundary of a VPS's PID namespace (the seed's PID
// virtualization: pids 1..PIDMAX inside, translation at the boundary) and lists a VPS's
// processes with both PIDs, as `vpsctl ps` shows them.
//
// A VPS is identified by the host PID of its init: the process that is PID 1 of the VPS's PID
// namespace. Host PIDs are those of the /proc this process sees, so vpsctl must run in the
// host's PID namespace with the host's /proc (as it does).
//
// Membership rule. Let L = len(NSpid(init))-1, the index of the VPS's level in every NSpid
// list (NSpid[0] is the host level). A process p is in the VPS iff
//
//	len(NSpid(p)) > L, and the PID namespace of p's ancestor at depth L is init's:
//	  - if len(NSpid(p)) == L+1, p's own PID namespace (/proc/p/ns/pid) is init's;
//	  - if deeper (p is in a PID namespace nested inside the VPS, e.g. a container the tenant
//	    started), walking up len(NSpid(p))-1-L parents with ioctl(NS_GET_PARENT) from p's
//	    namespace reaches init's.
//
// Its VPS PID is then NSpid(p)[L]. The same NSpid level alone is not enough: a sibling VPS has
// the same depth, and its PIDs are small too. Namespaces are compared by nsfs device and inode.
//
// Invariants: host and VPS PIDs are distinct types; each process's status and namespace are read
// through one open /proc/PID directory, so they describe the same process even if its PID is
// reused meanwhile. A PID read from /proc can still be reused as soon as it is returned: callers
// that signal a process should use a pidfd. Only processes (thread-group leaders, what /proc
// lists) are translated, not individual thread IDs.
package pidns

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// HostPID is a PID as the host's /proc shows it.
type HostPID int

// VPSPID is a PID inside a VPS's PID namespace; the VPS's init is 1.
type VPSPID int

var (
	// ErrNotInVPS reports a process (or VPS PID) outside the VPS's PID namespace tree.
	ErrNotInVPS = errors.New("process not in the VPS's PID namespace")
	// ErrNotInit reports that the process naming a VPS is not PID 1 of its PID namespace.
	ErrNotInit = errors.New("not the init of a PID namespace")
)

// Proc is a process of a VPS with its PID on both sides of the boundary.
type Proc struct {
	Host    HostPID
	VPS     VPSPID
	Status  Status
	Cmdline string // arguments joined by spaces; "" for zombies and kernel threads
}

// nsID identifies a namespace: nsfs device and inode.
type nsID struct{ dev, ino uint64 }

// vps is a VPS's PID namespace as seen from the host's /proc.
type vps struct {
	init  HostPID
	level int  // L: index of the VPS's level in NSpid
	ns    nsID // init's PID namespace
	// deep caches, for namespaces nested below the VPS's level, whether they are inside it.
	deep map[nsID]bool
}

func procPath(pid HostPID, rest string) string {
	p := "/proc/" + strconv.Itoa(int(pid))
	if rest != "" {
		p += "/" + rest
	}
	return p
}

// procDir is an open /proc/PID directory: files opened through it belong to that process, or
// fail once it is gone (the kernel pins the task to the directory, not the number).
type procDir struct {
	pid HostPID
	fd  int
}

func openProc(pid HostPID) (procDir, error) {
	if pid <= 0 {
		return procDir{}, &os.PathError{Op: "open", Path: procPath(pid, ""), Err: os.ErrNotExist}
	}
	for {
		fd, err := unix.Open(procPath(pid, ""), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return procDir{}, gone(&os.PathError{Op: "open", Path: procPath(pid, ""), Err: err})
		}
		return procDir{pid: pid, fd: fd}, nil
	}
}

func (d procDir) close() { unix.Close(d.fd) }

func (d procDir) read(name string) ([]byte, error) {
	var fd int
	var err error
	for {
		fd, err = unix.Openat(d.fd, name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		return nil, gone(&os.PathError{Op: "open", Path: procPath(d.pid, name), Err: err})
	}
	f := os.NewFile(uintptr(fd), procPath(d.pid, name)) // os.File retries EINTR
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, gone(err)
	}
	return b, nil
}

func (d procDir) status() (Status, error) {
	b, err := d.read("status")
	if err != nil {
		return Status{}, err
	}
	s, err := ParseStatus(string(b))
	if err != nil {
		return Status{}, fmt.Errorf("%s: %w", procPath(d.pid, "status"), err)
	}
	return s, nil
}

func (d procDir) pidNS() (nsID, error) {
	var st unix.Stat_t
	for {
		err := unix.Fstatat(d.fd, "ns/pid", &st, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nsID{}, gone(&os.PathError{Op: "stat", Path: procPath(d.pid, "ns/pid"), Err: err})
		}
		return nsID{dev: st.Dev, ino: st.Ino}, nil
	}
}

func (d procDir) cmdline() string {
	b, err := d.read("cmdline")
	if err != nil {
		return ""
	}
	return strings.TrimRight(strings.ReplaceAll(string(b), "\x00", " "), " ")
}

// gone makes a process that exits while being read look like one that never existed: /proc
// answers ESRCH instead of ENOENT once the task is reaped under an open file.
func gone(err error) error {
	if errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("%w: %w", err, os.ErrNotExist)
	}
	return err
}

// vanished reports errors that mean "the process went away during a scan".
func vanished(err error) bool {
	return errors.Is(err, os.ErrNotExist)
}

func openVPS(init HostPID) (*vps, error) {
	d, err := openProc(init)
	if err != nil {
		return nil, err
	}
	defer d.close()
	st, err := d.status()
	if err != nil {
		return nil, err
	}
	if st.NSpid[len(st.NSpid)-1] != 1 {
		return nil, fmt.Errorf("process %d (PID %d in its namespace): %w", init, st.NSpid[len(st.NSpid)-1], ErrNotInit)
	}
	ns, err := d.pidNS()
	if err != nil {
		return nil, err
	}
	return &vps{init: init, level: len(st.NSpid) - 1, ns: ns, deep: make(map[nsID]bool)}, nil
}

// contains applies the membership rule of the package doc to the process open as d.
func (v *vps) contains(d procDir, st Status) (bool, error) {
	depth := len(st.NSpid)
	if depth <= v.level {
		return false, nil
	}
	ns, err := d.pidNS()
	if err != nil {
		return false, err
	}
	if depth == v.level+1 {
		return ns == v.ns, nil
	}
	if in, ok := v.deep[ns]; ok {
		return in, nil
	}
	anc, err := d.ancestorNS(depth - 1 - v.level)
	if err != nil {
		return false, err
	}
	in := anc == v.ns
	v.deep[ns] = in
	return in, nil
}

// ancestorNS returns the PID namespace up levels above the process's own.
func (d procDir) ancestorNS(up int) (nsID, error) {
	path := procPath(d.pid, "ns/pid")
	var fd int
	var err error
	for {
		fd, err = unix.Openat(d.fd, "ns/pid", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		return nsID{}, gone(&os.PathError{Op: "open", Path: path, Err: err})
	}
	defer func() { unix.Close(fd) }()
	for range up {
		// NS_GET_PARENT (Linux 4.9) returns a new fd for the parent PID namespace; EPERM would
		// mean the parent is outside ours, which cannot happen below a namespace we can see.
		pfd, err := unix.IoctlRetInt(fd, unix.NS_GET_PARENT)
		if err != nil {
			return nsID{}, &os.PathError{Op: "ioctl NS_GET_PARENT", Path: path, Err: err}
		}
		unix.Close(fd)
		fd = pfd
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nsID{}, &os.PathError{Op: "fstat", Path: path, Err: err}
	}
	return nsID{dev: st.Dev, ino: st.Ino}, nil
}

// ToVPS translates host PID p into its PID inside the VPS whose init is init. It fails with
// ErrNotInVPS when p is not in the VPS's PID namespace or one nested in it, and with an error
// wrapping os.ErrNotExist when init or p does not exist.
func ToVPS(init, p HostPID) (VPSPID, error) {
	v, err := openVPS(init)
	if err != nil {
		return 0, err
	}
	d, err := openProc(p)
	if err != nil {
		return 0, err
	}
	defer d.close()
	st, err := d.status()
	if err != nil {
		return 0, err
	}
	in, err := v.contains(d, st)
	if err != nil {
		return 0, err
	}
	if !in {
		return 0, fmt.Errorf("process %d, VPS init %d: %w", p, init, ErrNotInVPS)
	}
	return VPSPID(st.NSpid[v.level]), nil
}

// List returns every process in the VPS's PID namespace and in namespaces nested in it, sorted
// by VPS PID, so the first is the VPS's init (VPS PID 1). A process nested deeper is listed
// with its PID at the VPS's level.
func List(init HostPID) ([]Proc, error) {
	v, err := openVPS(init)
	if err != nil {
		return nil, err
	}
	var out []Proc
	err = v.scan(nil, func(d procDir, st Status) bool {
		out = append(out, Proc{Host: d.pid, VPS: VPSPID(st.NSpid[v.level]), Status: st, Cmdline: d.cmdline()})
		return true
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b Proc) int { return int(a.VPS) - int(b.VPS) })
	return out, nil
}

// scan calls found for every process of the VPS that passes the cheap filter pre (nil: all),
// until found returns false. Processes that exit during the scan are skipped.
func (v *vps) scan(pre func(Status) bool, found func(procDir, Status) bool) error {
	f, err := os.Open("/proc")
	if err != nil {
		return err
	}
	defer f.Close()
	for {
		names, err := f.Readdirnames(512)
		for _, name := range names {
			n, perr := strconv.Atoi(name)
			if perr != nil || n <= 0 {
				continue // not a process: self, sys, net, ...
			}
			more, serr := v.visit(HostPID(n), pre, found)
			if serr != nil {
				return serr
			}
			if !more {
				return nil
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func (v *vps) visit(pid HostPID, pre func(Status) bool, found func(procDir, Status) bool) (bool, error) {
	d, err := openProc(pid)
	if err != nil {
		if vanished(err) {
			return true, nil
		}
		return false, err
	}
	defer d.close()
	st, err := d.status()
	if err != nil {
		if vanished(err) {
			return true, nil
		}
		return false, err
	}
	if len(st.NSpid) <= v.level || pre != nil && !pre(st) {
		return true, nil
	}
	in, err := v.contains(d, st)
	if err != nil {
		if vanished(err) {
			return true, nil
		}
		return false, err
	}
	if !in {
		return true, nil
	}
	return found(d, st), nil
}
