package lxcfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/vpsctl/vpsctl/internal/proc"
	"github.com/vpsctl/vpsctl/store"
	"golang.org/x/sys/unix"
)

// Refresh brings the views of every running VPS of state root up to date with the LXCFS mounted
// at dir: views a dead LXCFS left (reads fail with ENOTCONN) are detached, and the files of dir
// are bound in their place, so a VPS sees its own numbers again without a restart. With dir ""
// (no LXCFS live) the dead views are only detached: the VPS sees the host's numbers, as one that
// booted without LXCFS does, rather than errors. It returns how many VPSs it refreshed and the
// first error (it goes on past a VPS it cannot enter).
//
// Binding into a running VPS: the files are cloned here (open_tree, in the caller's mount
// namespace, which must see dir), then a thread joins the VPS's mount namespace, detaches what
// is stale and attaches the clones (move_mount of a detached mount works in any namespace its
// caller may administer). The thread never returns to the Go scheduler.
func Refresh(root, dir string) (int, error) {
	st, err := store.Open(root)
	if err != nil {
		return 0, err
	}
	ids, err := st.IDs()
	if err != nil {
		return 0, err
	}
	n := 0
	var first error
	for _, id := range ids {
		run, err := st.LoadRun(id)
		if err != nil || !proc.Alive(run.InitPID, run.InitStart) {
			continue
		}
		if err := refreshOne(run.InitPID, dir); err != nil {
			if first == nil && proc.Alive(run.InitPID, run.InitStart) {
				first = fmt.Errorf("VPS %d: %w", id, err)
			}
			continue
		}
		n++
	}
	return n, first
}

// refreshOne refreshes the views of the VPS whose init is host PID pid (see Refresh).
func refreshOne(pid int, dir string) error {
	ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/mnt", pid))
	if err != nil {
		return err
	}
	defer ns.Close()
	var clones []int
	defer func() {
		for _, fd := range clones {
			unix.Close(fd)
		}
	}()
	if dir != "" {
		for _, f := range Files {
			fd, err := unix.OpenTree(unix.AT_FDCWD, filepath.Join(dir, f), unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
			if errors.Is(err, unix.ENOENT) {
				clones = append(clones, -1) // a file this LXCFS does not serve
				continue
			}
			if err != nil {
				return fmt.Errorf("%s: %w", f, os.NewSyscallError("open_tree", err))
			}
			clones = append(clones, fd)
		}
	}
	return proc.InMountNS(int(ns.Fd()), func() error {
		for i, f := range Files {
			target := "/" + f
			if detachStale(target, dir != "") != nil || i >= len(clones) || clones[i] < 0 {
				continue // not ours to cover (something else is mounted there), or nothing to bind
			}
			if err := unix.MoveMount(clones[i], "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
				return fmt.Errorf("%s: %w", target, os.NewSyscallError("move_mount", err))
			}
		}
		return nil
	})
}

// errForeign: something that is not an LXCFS view is mounted on a view's path.
var errForeign = errors.New("not an LXCFS view")

// detachStale detaches the LXCFS views stacked on target, in the calling thread's mount
// namespace: the dead ones, and (all) the live ones too when they are to be replaced (stacking
// a fresh one on a live one would grow the stack at every refresh). Bounded: a view is one
// mount, a stack of them a handful.
func detachStale(target string, replace bool) error {
	for range 16 {
		var st unix.Statfs_t
		err := unix.Statfs(target, &st)
		switch {
		case deadConn(err): // a dead view
		case err != nil:
			return err
		case st.Type != fuseMagic:
			if st.Type == unix.PROC_SUPER_MAGIC || st.Type == unix.SYSFS_MAGIC {
				return nil // the VPS's own /proc or /sys: bare
			}
			return errForeign
		case !replace:
			return nil // a live view, kept
		}
		if err := unix.Unmount(target, unix.MNT_DETACH); err != nil {
			return os.NewSyscallError("umount2", err)
		}
	}
	return fmt.Errorf("%s: too many stacked mounts", target)
}
