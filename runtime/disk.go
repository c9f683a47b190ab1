package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/vpsctl/vpsctl/container"
	"github.com/vpsctl/vpsctl/disk"
	"github.com/vpsctl/vpsctl/internal/proc"
	"github.com/vpsctl/vpsctl/monitor"
	"github.com/vpsctl/vpsctl/store"
	"golang.org/x/sys/unix"
)

// A VPS created or set with --diskspace keeps its files in a disk image of its own
// (STATE/vps/ID/disk.img, package disk), which its monitor mounts at STATE/vps/ID/disk, in its
// private mount namespace, under the overlay (the image's upper/ is the VPS's "/"). Without
// one, its files are the directory STATE/vps/ID/private on the host's file system.

// DiskUsage is a VPS's disk: its limits and what it uses (vzctl's diskspace and diskinodes).
type DiskUsage struct {
	UsedBytes  uint64 `json:"used_bytes"`
	SizeBytes  uint64 `json:"size_bytes"`  // the file system's size: the hard limit in force
	AvailBytes uint64 `json:"avail_bytes"` // what the VPS can still write (df's Avail)
	SoftBytes  uint64 `json:"soft_bytes"`  // the barrier: recorded and shown, not enforced
	HardBytes  uint64 `json:"hard_bytes"`
	// Inodes in use, when asked for (a running VPS's: counting them reads its file tree).
	Inodes *uint64 `json:"inodes,omitempty"`
}

// diskLimits parses --diskspace and --diskinodes into checked limits. An inode limit is
// refused (disk.ErrInodeLimit): a VPS's file system allocates inodes as files are made.
func diskLimits(space, inodes string) (disk.Limits, error) {
	var l disk.Limits
	var err error
	if l.SoftBytes, l.HardBytes, err = disk.ParseDiskspace(space); err != nil {
		return l, fmt.Errorf("--diskspace: %w", err)
	}
	if inodes != "" {
		if _, l.Inodes, err = disk.ParseInodes(inodes); err != nil {
			return l, fmt.Errorf("--diskinodes: %w", err)
		}
	}
	if err := l.Validate(); err != nil {
		return l, fmt.Errorf("--diskspace: %w", err)
	}
	return l, nil
}

// savedLimits are the limits of VPS config c's DISKSPACE.
func savedLimits(c *store.Config) (disk.Limits, error) {
	var l disk.Limits
	var err error
	l.SoftBytes, l.HardBytes, err = disk.ParseDiskspace(c.DiskSpace)
	return l, err
}

// hasImage reports whether VPS id keeps its files in a disk image.
func (r *Runtime) hasImage(id container.ID) bool {
	_, err := os.Stat(r.St.Path(id, monitor.DiskImage))
	return err == nil
}

// mountedDisk opens the file system of running VPS s's image where its monitor mounted it
// (through the monitor's mount namespace, from the host).
func (r *Runtime) mountedDisk(s *Status) (*disk.Mounted, error) {
	if s.run == nil || !proc.Alive(s.run.MonitorPID, s.run.MonitorStart) {
		return nil, fmt.Errorf("VPS %d: its monitor is gone: its disk image cannot be reached until the VPS is stopped or restarted", s.ID)
	}
	return disk.Open(r.St.Path(s.ID, monitor.DiskImage), fmt.Sprintf("/proc/%d/root%s", s.run.MonitorPID, r.St.Path(s.ID, monitor.DiskDir)))
}

// privateTree is where VPS s's files (its private area: the overlay's upper layer) are read
// from the host, its lock held: the directory, or, for a VPS with a disk image, the image's
// upper/, where the running VPS's monitor mounted it (held open here) or, for a stopped VPS,
// mounted privately here. done lets go of it; until then, the image cannot be mounted again
// (a boot or a restore of the VPS here waits for it).
func (r *Runtime) privateTree(s *Status) (dir string, done func(), err error) {
	if !r.hasImage(s.ID) {
		return r.St.Path(s.ID, "private"), func() {}, nil
	}
	if s.State == "running" {
		return r.heldUpper(s)
	}
	// A VPS just stopped: its image lets go once its monitor's mount namespace has ended.
	var m *disk.Mounted
	for deadline := time.Now().Add(attachWait); ; time.Sleep(20 * time.Millisecond) {
		m, err = disk.Attach(r.St.Path(s.ID, monitor.DiskImage))
		if !errors.Is(err, disk.ErrInUse) || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		return "", nil, fmt.Errorf("VPS %d's disk image: %w", s.ID, err)
	}
	return m.Upper, func() { m.Close() }, nil
}

// heldUpper is privateTree for running VPS s with a disk image: its upper/ where its monitor
// mounted it, reached through a descriptor of this process, so that the tree stays readable
// after the VPS stops here (a live migration reads it again after the dump): its file system
// stays mounted, detached, until done, and so does the image's loop device.
func (r *Runtime) heldUpper(s *Status) (string, func(), error) {
	m, err := r.mountedDisk(s)
	if err != nil {
		return "", nil, err
	}
	defer m.Close()
	// Its root, not upper/ itself: a path ending in the descriptor's link would name the link
	// (lstat), not the directory.
	fd, err := unix.Open(m.Dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", nil, fmt.Errorf("VPS %d's disk image: %w", s.ID, &os.PathError{Op: "open", Path: m.Dir, Err: err})
	}
	return fmt.Sprintf("/proc/self/fd/%d/%s", fd, disk.UpperDir), func() { unix.Close(fd) }, nil
}

// attachWait bounds the wait for a stopped VPS's image to be let go by its last boot (see
// privateTree): that boot's mount namespace ends a moment after its monitor.
const attachWait = 3 * time.Second

// imageFromPrivate moves stopped VPS id's files from its private directory into a new disk
// image for limits l (disk.Convert: nothing made if they do not fit), and empties the
// directory, which stays (an older vpsctl, or a crash here, finds the layout it expects).
func (r *Runtime) imageFromPrivate(ctx context.Context, id container.ID, l disk.Limits) error {
	if err := disk.Convert(ctx, r.St.Path(id, "private"), r.St.Path(id, monitor.DiskImage), l); err != nil {
		return err
	}
	return clearDir(r.St.Path(id, "private"))
}

// setDisk applies limits l to VPS s (its lock held): live on a running VPS's mounted image,
// offline on a stopped one's; a stopped VPS without an image gets one, its files moved in (a
// running one is refused: its files are in use where they are).
func (r *Runtime) setDisk(ctx context.Context, s *Status, l disk.Limits) error {
	image := r.St.Path(s.ID, monitor.DiskImage)
	if !r.hasImage(s.ID) {
		if s.State == "running" {
			return fmt.Errorf("VPS %d has no disk limit yet: its files move into a disk image while it is stopped: %w", s.ID, ErrRunning)
		}
		return r.imageFromPrivate(ctx, s.ID, l)
	}
	if s.State != "running" {
		return disk.SetLimitsOffline(image, l)
	}
	m, err := r.mountedDisk(s)
	if err != nil {
		return err
	}
	defer m.Close()
	return m.SetLimits(l)
}

// clearDir removes what dir holds, keeping dir.
func clearDir(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := os.RemoveAll(dir + "/" + e.Name()); err != nil {
			return err
		}
	}
	return nil
}

// diskUsage is running or stopped VPS s's disk limits and usage; nil, nil for a VPS without
// a disk limit. inodes counts its inodes too (a running VPS only; it reads its file tree).
func (r *Runtime) diskUsage(s *Status, inodes bool) (*DiskUsage, error) {
	if s.cfg == nil || s.cfg.DiskSpace == "" || !r.hasImage(s.ID) {
		return nil, nil
	}
	l, err := savedLimits(s.cfg)
	if err != nil {
		return nil, err
	}
	out := &DiskUsage{SoftBytes: l.SoftBytes, HardBytes: l.HardBytes}
	var u disk.Usage
	if s.State == "running" {
		m, err := r.mountedDisk(s)
		if err != nil {
			return nil, err
		}
		defer m.Close()
		if u, err = m.Usage(); err != nil {
			return nil, err
		}
		if inodes {
			n, err := m.Inodes()
			if err != nil {
				return nil, err
			}
			out.Inodes = &n
		}
	} else if u, err = disk.ReadUsage(r.St.Path(s.ID, monitor.DiskImage)); err != nil {
		return nil, err
	}
	out.UsedBytes, out.SizeBytes, out.AvailBytes = u.UsedBytes, u.SizeBytes, u.AvailBytes
	return out, nil
}
