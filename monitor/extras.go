package monitor

import (
	"errors"
	"fmt"
	"os"
	"path"
	"slices"

	"github.com/vpsctl/vpsctl/internal/proc"
	"github.com/vpsctl/vpsctl/internal/spec"
	"github.com/vpsctl/vpsctl/lxcfs"
	"github.com/vpsctl/vpsctl/store"
	"github.com/vpsctl/vpsctl/uid"
	"golang.org/x/sys/unix"
)

// A running VPS's extra mounts (guestMounts: bind mounts, device nodes, LXCFS views) are the
// host's: CRIU can neither dump them as the VPS's nor reopen their sources as the restored
// VPS's root. A checkpoint detaches them before the dump (DetachExtras) and binds them again if
// the VPS goes on running; a restore binds them into the restored VPS (AttachExtras), the same
// mounts a boot makes.

// ExtraTargets are where VPS c's extra mounts go, absolute paths inside it.
func ExtraTargets(c *store.Config) ([]string, error) {
	var out []string
	for _, s := range c.BindMounts {
		b, err := spec.ParseBindMount(s, "")
		if err != nil {
			return nil, err
		}
		out = append(out, b.VPS)
	}
	devs, err := spec.Devices(c)
	if err != nil {
		return nil, err
	}
	for _, d := range devs {
		if d.Rule.Major >= 0 && d.Rule.Minor >= 0 && d.Rule.Type != 'a' {
			out = append(out, "/"+deviceTarget(d))
		}
	}
	for _, f := range lxcfs.Files {
		out = append(out, "/"+f)
	}
	return out, nil
}

// DetachExtras detaches VPS c's extra mounts from its running instance (init host PID pid).
// A process with a file or its directory on a bind mount keeps it open on the detached mount
// (and a dump then fails on it).
func DetachExtras(c *store.Config, pid int) error {
	targets, err := ExtraTargets(c)
	if err != nil {
		return err
	}
	ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/mnt", pid))
	if err != nil {
		return err
	}
	defer ns.Close()
	return proc.InMountNS(int(ns.Fd()), func() error {
		var first error
		for _, t := range targets {
			if err := detachAll(t); err != nil && first == nil {
				first = err
			}
		}
		return first
	})
}

// AttachExtras binds VPS c's extra mounts into its running instance (init host PID pid),
// replacing what is mounted at their targets; hostNS is an fd of the host's mount namespace
// (where LXCFS is found). Its warnings are a boot's: LXCFS missing.
func AttachExtras(st *store.Store, c *store.Config, pid, hostNS int) ([]string, error) {
	userns := slices.Contains(c.Namespaces, "user")
	rootUID := 0
	if userns {
		r, err := uid.ParseRange(c.IDMap)
		if err != nil {
			return nil, fmt.Errorf("config IDMAP: %w", err)
		}
		rootUID = int(r.Host)
	}
	m := &monitor{st: st, id: c.ID, hostNS: hostNS}
	extra, warnings, _, err := m.guestMounts(c, pid, userns, rootUID)
	if err != nil {
		return nil, err
	}
	defer closeMounts(extra)
	ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/mnt", pid))
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	err = proc.InMountNS(int(ns.Fd()), func() error {
		for _, x := range extra {
			target := "/" + x.path
			if err := detachAll(target); err != nil {
				return err
			}
			if err := unix.MoveMount(x.fd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
				return fmt.Errorf("%s: %w", target, os.NewSyscallError("move_mount", err))
			}
		}
		return nil
	})
	return warnings, err
}

// detachAll detaches the mounts stacked on target in the calling thread's mount namespace,
// until what is there is its parent directory's mount (or target does not exist). Bounded.
func detachAll(target string) error {
	for range 16 {
		mine, err := mountID(target)
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		if err == nil {
			parent, perr := mountID(path.Dir(target))
			if perr != nil {
				return fmt.Errorf("%s: %w", path.Dir(target), perr)
			}
			if parent == mine {
				return nil // not a mount point
			}
		} else if !errors.Is(err, unix.ENOTCONN) {
			return fmt.Errorf("%s: %w", target, err) // ENOTCONN: a dead LXCFS view, detached below
		}
		if err := unix.Unmount(target, unix.MNT_DETACH); err != nil {
			return fmt.Errorf("%s: %w", target, os.NewSyscallError("umount2", err))
		}
	}
	return fmt.Errorf("%s: too many stacked mounts", target)
}

// mountID is the ID of the mount path is on (path itself, if a mount point).
func mountID(p string) (uint64, error) {
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, p, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID, &stx); err != nil {
		return 0, err
	}
	return stx.Mnt_id, nil
}
