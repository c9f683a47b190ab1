package monitor

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/vpsctl/vpsctl/internal/proc"
	"github.com/vpsctl/vpsctl/internal/spec"
	"github.com/vpsctl/vpsctl/internal/sysfile"
	"github.com/vpsctl/vpsctl/lxcfs"
	"github.com/vpsctl/vpsctl/store"
	"golang.org/x/sys/unix"
)

// extraMount is a detached mount (an open_tree clone, made here with the attributes it must
// have) that the init child attaches at path, relative to the VPS's root, after its pivot_root
// (prestart/initchild.c, mount=): a bind mount of a host directory, a LXCFS file, a device node.
type extraMount struct {
	fd   int
	path string
}

// guestMounts are the extra mounts of a boot of VPS c, whose init child is host PID pid: its
// --bindmount directories (idmapped with its user namespace, read-only if asked), the nodes of
// its devices and features, and LXCFS's views of its limits. What cannot be had makes a warning
// (LXCFS) or fails the boot (a bind mount whose host directory is gone); done closes the fds.
func (m *monitor) guestMounts(c *store.Config, pid int, userns bool, rootUID int, lx *lxcfsClones) (mounts []extraMount, warnings []string, err error) {
	defer func() {
		if err != nil {
			closeMounts(mounts)
			mounts = nil
		}
	}()
	var nsfd int = -1
	if userns && len(c.BindMounts) > 0 {
		if nsfd, err = sysfile.Open(fmt.Sprintf("/proc/%d/ns/user", pid), os.O_RDONLY, 0); err != nil {
			return nil, nil, err
		}
		defer unix.Close(nsfd)
	}
	for _, s := range c.BindMounts {
		b, err := spec.ParseBindMount(s, m.st.Root)
		if err != nil {
			return mounts, nil, err
		}
		fd, err := bindClone(b, nsfd)
		if err != nil {
			return mounts, nil, fmt.Errorf("bind mount %s: %w", b, err)
		}
		mounts = append(mounts, extraMount{fd, strings.TrimPrefix(b.VPS, "/")})
	}
	devs, err := spec.Devices(c)
	if err != nil {
		return mounts, nil, err
	}
	for _, d := range devs {
		if d.Rule.Major < 0 || d.Rule.Minor < 0 || d.Rule.Type == 'a' {
			continue // a wildcard: allowed, no node
		}
		host, vps, err := m.deviceNode(d, rootUID)
		if err != nil {
			return mounts, nil, fmt.Errorf("device %s: %w", d.Rule, err)
		}
		fd, err := unix.OpenTree(unix.AT_FDCWD, host, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
		if err != nil {
			return mounts, nil, fmt.Errorf("device %s: %w", d.Rule, os.NewSyscallError("open_tree", err))
		}
		mounts = append(mounts, extraMount{fd, vps})
	}
	views, lerr := lx.take()
	if lerr != nil {
		return mounts, []string{fmt.Sprintf("no LXCFS views (%v): it sees the host's memory, CPUs and uptime", lerr)}, nil
	}
	return append(mounts, views...), nil, nil
}

// lxcfsClones are a boot's LXCFS views (lxcfsViews), cloned on a goroutine of their own from
// the boot's start on: they need nothing of the VPS's but its state root, and LXCFS answers
// their lookups (and a liveness check: a statfs and a stat, each a round trip to the LXCFS
// daemon) while the init child is cloned and the root file system mounted, instead of after.
type lxcfsClones struct {
	done  chan struct{}
	views []extraMount
	err   error
	taken bool
}

func startLXCFSClones(root string, hostNS int) *lxcfsClones {
	l := &lxcfsClones{done: make(chan struct{})}
	go func() {
		defer close(l.done)
		l.views, _, l.err = lxcfsViews(root, hostNS)
	}()
	return l
}

// take waits for the views; the caller closes them from then on.
func (l *lxcfsClones) take() ([]extraMount, error) {
	<-l.done
	l.taken = true
	return l.views, l.err
}

// close waits for the views and closes them, unless they were taken.
func (l *lxcfsClones) close() {
	<-l.done
	if !l.taken {
		closeMounts(l.views)
		l.views = nil
	}
}

// lxcfsViews are detached clones of the LXCFS files (lxcfs.Files), LXCFS started if it runs
// nowhere. LXCFS is mounted in the host's mount namespace (hostNS), which a monitor, living in a
// private one made before, may not see: the clones are made on a thread that has joined the
// host's namespace (a clone is a mount of no namespace, which the init child attaches in its
// own).
func lxcfsViews(root string, hostNS int) (views []extraMount, dir string, err error) {
	if hostNS < 0 {
		return nil, "", errors.New("the host's mount namespace is unknown")
	}
	err = proc.InMountNS(hostNS, func() error {
		var err error
		if dir, err = lxcfs.Ensure(root); err != nil {
			return err
		}
		for _, f := range lxcfs.Files {
			fd, err := unix.OpenTree(unix.AT_FDCWD, filepath.Join(dir, f), unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
			if err != nil {
				if errors.Is(err, unix.ENOENT) {
					continue // a file this LXCFS does not serve
				}
				closeMounts(views)
				views = nil
				return fmt.Errorf("%s: %w", f, os.NewSyscallError("open_tree", err))
			}
			views = append(views, extraMount{fd, f})
		}
		return nil
	})
	return views, dir, err
}

func closeMounts(ms []extraMount) {
	for _, x := range ms {
		unix.Close(x.fd)
	}
}

// bindClone is b's host directory as a detached mount: idmapped with the VPS's user namespace
// (nsfd; -1: none), so that inside its files show with the VPS's own IDs as the template's do,
// and read-only if b says so. Not recursive: mounts below the directory are not carried in.
func bindClone(b spec.BindMount, nsfd int) (int, error) {
	fi, err := os.Stat(b.Host)
	if err != nil {
		return -1, err
	}
	if !fi.IsDir() {
		return -1, fmt.Errorf("%s is not a directory: %w", b.Host, spec.ErrBadValue)
	}
	fd, err := unix.OpenTree(unix.AT_FDCWD, b.Host, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return -1, os.NewSyscallError("open_tree", err)
	}
	attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV}
	if b.ReadOnly {
		attr.Attr_set |= unix.MOUNT_ATTR_RDONLY
	}
	if nsfd >= 0 {
		attr.Attr_set |= unix.MOUNT_ATTR_IDMAP
		attr.Userns_fd = uint64(nsfd)
	}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, attr); err != nil {
		unix.Close(fd)
		return -1, os.NewSyscallError("mount_setattr", err)
	}
	return fd, nil
}

// deviceNode makes the node of device d that VPS root gets, and returns it and where the VPS
// gets it: the feature's path, else the host's own name for the device below /dev, else
// dev/char/MAJ:MIN (dev/block/...). The node is made in the VPS's directory on the state root's
// file system (not nodev), owned by the VPS's root (owner, host UID) and mode 0600: the host's
// own node is host root's, which the VPS's root, in its user namespace, could not open.
func (m *monitor) deviceNode(d spec.Device, owner int) (host, vps string, err error) {
	want, mode := deviceNumber(d)
	vps = deviceTarget(d)
	dir := m.st.Path(m.id, "devices")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", err
	}
	host = filepath.Join(dir, fmt.Sprintf("%c-%d-%d", d.Rule.Type, d.Rule.Major, d.Rule.Minor))
	os.Remove(host)
	if err := unix.Mknod(host, mode|0o600, int(want)); err != nil {
		return "", "", &os.PathError{Op: "mknod", Path: host, Err: err}
	}
	if err := os.Lchown(host, owner, owner); err != nil {
		return "", "", err
	}
	return host, vps, nil
}

// deviceNumber is d's device number and node type (S_IFCHR or S_IFBLK).
func deviceNumber(d spec.Device) (uint64, uint32) {
	mode := uint32(unix.S_IFCHR)
	if d.Rule.Type == 'b' {
		mode = unix.S_IFBLK
	}
	return unix.Mkdev(uint32(d.Rule.Major), uint32(d.Rule.Minor)), mode
}

// deviceTarget is where in the VPS (relative to its root) device d's node goes: the feature's
// path, else the host's own name for the device below /dev, else dev/char/MAJ:MIN
// (dev/block/...).
func deviceTarget(d spec.Device) string {
	if d.Path != "" {
		return d.Path
	}
	want, mode := deviceNumber(d)
	if n := findNode("/dev", mode, want); n != "" {
		return strings.TrimPrefix(n, "/")
	}
	kind := "char"
	if mode == unix.S_IFBLK {
		kind = "block"
	}
	return fmt.Sprintf("dev/%s/%d:%d", kind, d.Rule.Major, d.Rule.Minor)
}

// findNode returns a node below dir of type mode (S_IFCHR or S_IFBLK) and number rdev, "" if
// none: the host's own name for it.
func findNode(dir string, mode uint32, rdev uint64) string {
	var found string
	filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || found != "" {
			return filepath.SkipDir
		}
		if e.Type()&(fs.ModeDevice|fs.ModeCharDevice) == 0 {
			return nil
		}
		var st unix.Stat_t
		if unix.Lstat(p, &st) == nil && st.Mode&unix.S_IFMT == mode && st.Rdev == rdev {
			found = p
			return filepath.SkipAll
		}
		return nil
	})
	return found
}
