package disk

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vpsctl/vpsctl/internal/revert"
	"github.com/vpsctl/vpsctl/internal/sysfile"
	"github.com/vpsctl/vpsctl/internal/timerslack"
	"golang.org/x/sys/unix"
)

// The layout of an image's file system: the overlay's two directories, side by side in its root
// (overlayfs needs its work directory on the upper layer's file system).
const (
	UpperDir = "upper" // the overlay's upper layer: the VPS's own files, its "/"
	WorkDir  = "work"  // the overlay's work directory
)

// The programs this package runs; variables so that its tests can make them fail.
var (
	mkfsProgram = "mkfs.btrfs"
	cpProgram   = "cp"
)

// rootIno is the inode number of a btrfs subvolume's root directory (BTRFS_FIRST_FREE_OBJECTID).
const rootIno = 256

// Create makes the disk image of a VPS with limits l at imagePath: a file of l's hard size,
// preallocated on the host (so the VPS's writes never need the host's free space), holding an
// empty btrfs. The file appears complete or not at all: it is built unnamed (O_TMPFILE) in
// imagePath's directory and linked there at the end, so a crash leaves nothing behind. An
// existing file at imagePath is never replaced (ErrExist). ctx bounds mkfs.btrfs.
func Create(ctx context.Context, imagePath string, l Limits) error {
	if err := l.Validate(); err != nil {
		return err
	}
	f, err := build(ctx, imagePath, l)
	if err != nil {
		return err
	}
	defer f.Close()
	return commit(f, imagePath)
}

// build makes an unnamed image file for l in imagePath's directory.
func build(ctx context.Context, imagePath string, l Limits) (*os.File, error) {
	fd, err := sysfile.Open(filepath.Dir(imagePath), unix.O_TMPFILE|unix.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), imagePath)
	if err := preallocate(f, l.size()); err != nil {
		f.Close()
		return nil, err
	}
	if err := mkfs(ctx, f); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// commit gives the finished unnamed image f its name, durably.
func commit(f *os.File, imagePath string) error {
	if err := f.Sync(); err != nil {
		return err
	}
	err := unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(int(f.Fd())), unix.AT_FDCWD, imagePath, unix.AT_SYMLINK_FOLLOW)
	if errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("%s: %w", imagePath, ErrExist)
	}
	if err != nil {
		return &os.LinkError{Op: "link", Old: f.Name() + " (unnamed)", New: imagePath, Err: err}
	}
	return syncDir(filepath.Dir(imagePath))
}

// preallocate gives f size bytes, all allocated on the host now: a VPS filling its disk later
// takes nothing more from the host's free space (the host file system's blocks for turning
// the preallocated extents into written ones come from the reserve ext4 keeps for exactly
// that; the tests see the image's allocation unchanged after a VPS filled it).
func preallocate(f *os.File, size int64) error {
	err := sysfile.Retry(func() error { return unix.Fallocate(int(f.Fd()), 0, 0, size) })
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT):
		return fmt.Errorf("%s for %s: %w", FormatSize(uint64(size)), f.Name(), ErrHostSpace)
	case errors.Is(err, unix.EFBIG):
		return fmt.Errorf("diskspace %s: more than a file of the host's file system can hold: %w", FormatSize(uint64(size)), ErrBadValue)
	}
	return &os.PathError{Op: "fallocate", Path: f.Name(), Err: err}
}

// mkfs makes the btrfs in f.
//
// --mixed: data and metadata share block groups. With separate ones, btrfs hands unallocated
// space to data chunks while a VPS writes, and once it is all given out a VPS whose metadata
// chunk fills gets ENOSPC (and df shows 0 available) with a fifth of its limit unused, until a
// balance; mixed, all of the limit is usable and df's figures add up (measured: 2039 of 2048 MiB
// written, against 1671 of 2048 without). btrfs's documentation recommends mixed groups below
// 1 GiB and warns that larger ones may be slower (4 KiB tree nodes); at a VPS's sizes it was
// not, measured on a 4 GiB image: copying /usr/share (53000 files, 687 MB) in 20.0 s against
// 17.9 s, deleting it in 3.1 s against 7.3 s, 1.5 GB written and fsynced in 3.1 s against 7.3 s.
// single: one copy of everything (btrfs would otherwise keep two of the metadata, out of the
// VPS's limit, on a host device that has its own redundancy or none). -K: no discard of the
// image, which would punch its preallocation out.
func mkfs(ctx context.Context, f *os.File) error {
	path, err := findTool(mkfsProgram)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, path, "-q", "-K", "--mixed", "-s", "4096", "-d", "single", "-m", "single", "/proc/self/fd/3")
	cmd.ExtraFiles = []*os.File{f}
	out, err := timerslack.WithHostOutput(cmd.CombinedOutput)
	if err != nil {
		return fmt.Errorf("mkfs.btrfs for %s: %w: %s", f.Name(), err, bytes.TrimSpace(out))
	}
	return nil
}

// findTool finds a program of btrfs-progs or coreutils on PATH or in the sbin directories
// (absent from the PATH some services run with).
func findTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	if name == mkfsProgram {
		return "", ErrNoMkfs
	}
	return "", fmt.Errorf("%s: %w", name, exec.ErrNotFound)
}

// Mounted is an image's file system, mounted: by Mount (at Dir, in the caller's mount
// namespace), by Open (found at Dir), or privately by Attach, SetLimitsOffline and Convert (a
// detached mount, in no namespace at all).
type Mounted struct {
	Dir   string // where the file system is mounted ("" if detached)
	Upper string // Dir/upper: the overlay's upper layer (Attach: through a descriptor)
	Work  string // Dir/work: the overlay's work directory

	image string // the image file (its host path)
	root  int    // the file system's root directory, open: ioctls and statfs go here
	mnt   int    // a detached mount's descriptor, closed to unmount it; -1 otherwise
	owned bool   // Close unmounts Dir (Mount made it)
}

// Mount attaches the image at imagePath to a loop device and mounts its file system at
// mountDir, in the caller's mount namespace (a VPS's monitor's, which no other process sees).
// It makes upper/ (the VPS's "/": mode 0755, owned by uid:gid) and work/ (root's, 0700) if they
// are missing; an existing upper/ keeps its owner and mode. The loop device goes away by itself
// when the file system is unmounted, by Close or with the mount namespace. An image attached
// elsewhere is refused (ErrInUse): one btrfs mounted twice, through two loop devices, would be
// two caches writing one file, and corrupt.
func Mount(imagePath, mountDir string, uid, gid int) (m *Mounted, err error) {
	a, err := attach(imagePath)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	if err := a.layout(uid, gid); err != nil {
		return nil, err
	}
	if err := unix.MoveMount(a.mnt, "", unix.AT_FDCWD, mountDir, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return nil, fmt.Errorf("%s: %w", mountDir, os.NewSyscallError("move_mount", err))
	}
	// Attached at mountDir, the mount no longer goes away with its descriptor.
	unix.Close(a.mnt)
	a.mnt = -1
	a.owned = true
	a.setDir(mountDir)
	return a, nil
}

// Open finds the file system of the image at imagePath mounted at mountDir, for SetLimits and
// Usage from a process other than the one that mounted it. mountDir is resolved in the caller's
// mount namespace: for a running VPS's, from the host, use /proc/PID/root/DIR with PID a process
// of that namespace (its monitor). Close only closes what Open opened. ErrNotImage if the file
// system at mountDir is not the one in that image.
func Open(imagePath, mountDir string) (*Mounted, error) {
	root, err := sysfile.Open(mountDir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, err
	}
	m := &Mounted{image: imagePath, root: root, mnt: -1}
	m.setDir(mountDir)
	if _, err := m.device(); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

// where names m's file system in messages.
func (m *Mounted) where() string {
	if m.Dir != "" {
		return m.Dir
	}
	return m.image + " (privately mounted)"
}

func (m *Mounted) setDir(dir string) {
	m.Dir = dir
	if dir != "" {
		m.Upper, m.Work = filepath.Join(dir, UpperDir), filepath.Join(dir, WorkDir)
	}
}

// device returns the loop device m's file system is on, after checking that it is the root of
// that file system and that the device is backed by m.image: SetLimits must never resize or
// truncate anything else.
func (m *Mounted) device() (string, error) {
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(m.root, &sfs); err != nil {
		return "", &os.PathError{Op: "statfs", Path: m.where(), Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(m.root, &st); err != nil {
		return "", &os.PathError{Op: "stat", Path: m.where(), Err: err}
	}
	if sfs.Type != unix.BTRFS_SUPER_MAGIC || st.Ino != rootIno {
		return "", fmt.Errorf("%s: not the root of a btrfs: %w", m.where(), ErrNotImage)
	}
	dev, _, err := devInfo(m.root)
	if err != nil {
		return "", err
	}
	var ist unix.Stat_t
	if err := unix.Stat(m.image, &ist); err != nil {
		return "", &os.PathError{Op: "stat", Path: m.image, Err: err}
	}
	if ok, err := backs(dev, &ist); err != nil || !ok {
		if err == nil {
			err = fmt.Errorf("%s (on %s) is not %s's file system: %w", m.where(), dev, m.image, ErrNotImage)
		}
		return "", err
	}
	return dev, nil
}

// Close lets go of m: it closes its descriptors and, if Mount mounted it, unmounts it (the
// loop device then detaches itself). A file system something else is mounted on (the overlay)
// is busy: Close fails, and can be called again once that is unmounted.
func (m *Mounted) Close() error {
	if m.root >= 0 {
		unix.Close(m.root)
		m.root = -1
	}
	if m.mnt >= 0 {
		// A detached mount is unmounted when its last descriptor closes.
		unix.Close(m.mnt)
		m.mnt = -1
	}
	if m.owned {
		if err := unix.Unmount(m.Dir, 0); err != nil {
			return &os.PathError{Op: "unmount", Path: m.Dir, Err: err}
		}
		m.owned = false
	}
	return nil
}

// Usage is a VPS's disk usage and limit.
type Usage struct {
	SizeBytes  uint64 // the file system's size: the hard limit in force (df's Size)
	UsedBytes  uint64 // allocated to data and metadata (df's Used)
	AvailBytes uint64 // what the VPS can still write, as statfs estimates it (df's Avail)
}

// Usage returns the file system's usage, as df inside the VPS shows it (statfs).
func (m *Mounted) Usage() (Usage, error) {
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(m.root, &sfs); err != nil {
		return Usage{}, &os.PathError{Op: "statfs", Path: m.where(), Err: err}
	}
	bs := uint64(sfs.Bsize)
	return Usage{SizeBytes: sfs.Blocks * bs, UsedBytes: (sfs.Blocks - sfs.Bfree) * bs, AvailBytes: sfs.Bavail * bs}, nil
}

// Inodes returns the number of inodes in the file system (vzctl's diskinodes usage): the VPS's
// files and the image's own three directories. btrfs keeps no count (statfs reports 0 files),
// so this reads the file system tree's leaves: a few milliseconds per thousand files (25-40 ms
// for 10000 measured), for the commands that show it, not for every listing.
func (m *Mounted) Inodes() (uint64, error) {
	return countInodes(m.root)
}

// ReadUsage returns the size and usage of the image at imagePath as its superblock has them
// (as of the last transaction commit, at most 30 seconds old while it is mounted), without
// mounting it: for a stopped VPS, or for a listing that should not enter any namespace.
func ReadUsage(imagePath string) (Usage, error) {
	f, err := sysfile.OpenFile(imagePath, unix.O_RDONLY, 0)
	if err != nil {
		return Usage{}, err
	}
	defer f.Close()
	sb, err := readSuper(f)
	if err != nil {
		return Usage{}, err
	}
	return Usage{SizeBytes: sb.TotalBytes, UsedBytes: sb.BytesUsed, AvailBytes: sb.TotalBytes - sb.BytesUsed}, nil
}

// readSuper reads and parses the primary superblock of the image open as f. A commit can
// rewrite it while it is read (a running VPS): a torn copy fails its checksum, and is read
// again.
func readSuper(f *os.File) (Superblock, error) {
	buf := make([]byte, superSize)
	var err error
	for try := 0; try < 3; try++ {
		var n int
		n, err = f.ReadAt(buf, superOffset)
		if n < superSize {
			if err == nil || errors.Is(err, io.EOF) {
				return Superblock{}, fmt.Errorf("%s: too short for a btrfs: %w", f.Name(), ErrNotImage)
			}
			return Superblock{}, err
		}
		var sb Superblock
		if sb, err = ParseSuperblock(buf); err == nil {
			return sb, nil
		}
	}
	return Superblock{}, fmt.Errorf("%s: %w", f.Name(), err)
}

// SetLimits applies l to the mounted file system, live: the VPS keeps running and its df shows
// the new size at once.
//
// Growing preallocates the image's new part on the host (ErrHostSpace if the host has no room),
// tells the loop device, then grows the file system. Shrinking is refused, with nothing
// changed, when the VPS uses more than l allows (ErrTooSmall, naming both); otherwise btrfs
// moves what lies beyond the new end (as long as that I/O takes: it cannot be interrupted) and
// the image is cut to the new size, giving the host its space back. A shrink that btrfs finds
// does not fit after all (its metadata needs room too) fails with ErrTooSmall and nothing
// changed (btrfs moves data a block group at a time, and needs one's room free: about a tenth
// of the size). SetLimits also trims an image left larger than its file system (an interrupted
// SetLimits), so calling it again with the same limits finishes what a crash left.
//
// l.SoftBytes is not the file system's business: the caller records it. Callers serialize
// SetLimits on one image (the VPS's lock).
func (m *Mounted) SetLimits(l Limits) (err error) {
	if err := l.Validate(); err != nil {
		return err
	}
	dev, err := m.device()
	if err != nil {
		return err
	}
	_, cur, err := devInfo(m.root)
	if err != nil {
		return err
	}
	img, err := sysfile.OpenFile(m.image, unix.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer img.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(img.Fd()), &st); err != nil {
		return &os.PathError{Op: "stat", Path: m.image, Err: err}
	}
	if ok, err := backs(dev, &st); err != nil || !ok { // the path was replaced since device()
		if err == nil {
			err = fmt.Errorf("%s is no longer the image on %s: %w", m.image, dev, ErrNotImage)
		}
		return err
	}
	want := l.size()
	switch {
	case want > cur:
		if err := m.grow(img, dev, st.Size, want); err != nil {
			return err
		}
	case want < cur:
		if err := m.shrink(l, want); err != nil {
			return err
		}
	}
	if st.Size > want {
		return trim(img, dev, want)
	}
	return nil
}

// grow grows the image to want bytes and the file system with it; on failure both are as they
// were.
func (m *Mounted) grow(img *os.File, dev string, imgSize, want int64) (err error) {
	var undo revert.Steps
	defer undo.Finish(&err)
	if want > imgSize {
		// On failure the image goes back to its size, and the loop device with it (fallocate
		// may have allocated, and grown the file, part of the way).
		undo.AddErr(func() error {
			if err := img.Truncate(imgSize); err != nil {
				return err
			}
			return setCapacity(dev)
		})
		if err := preallocate(img, want); err != nil {
			return err
		}
	}
	if err := setCapacity(dev); err != nil {
		return err
	}
	if err := resizeFS(m.root, want); err != nil {
		return fmt.Errorf("grow %s to %s: %w", m.image, FormatSize(uint64(want)), err)
	}
	return nil
}

// shrink shrinks the file system to want bytes, if what the VPS uses fits.
func (m *Mounted) shrink(l Limits, want int64) error {
	used, err := m.settledUsed(uint64(want))
	if err != nil {
		return err
	}
	if used > uint64(want) {
		return fmt.Errorf("diskspace %s is less than the %s in use: %w", FormatSize(l.HardBytes), FormatSize(used), ErrTooSmall)
	}
	if err := resizeFS(m.root, want); err != nil {
		if errors.Is(err, unix.ENOSPC) {
			return fmt.Errorf("diskspace %s does not fit the %s in use (btrfs needs free room to move what lies beyond the new end): %w", FormatSize(l.HardBytes), FormatSize(used), ErrTooSmall)
		}
		return fmt.Errorf("shrink %s to %s: %w", m.image, FormatSize(uint64(want)), err)
	}
	return nil
}

// settleRounds and settlePause bound how long settledUsed waits for btrfs to free what was
// deleted: at most about half a second, and only when the usage is above what is asked for.
const (
	settleRounds = 10
	settlePause  = 50 * time.Millisecond
)

// settledUsed returns the bytes the file system uses once its dirty pages are written (delayed
// allocation is not in statfs yet) and what was deleted is freed, or as soon as that is at most
// enough. Freeing takes btrfs several steps: a file deleted with pages under writeback (through
// the overlay, a deleted file's last reference often goes with its writeback) is put by the
// cleaner thread after a commit, and its extents are pinned until the commit after that. No
// ioctl waits for the cleaner, so this commits (syncfs) until the figure stops falling.
func (m *Mounted) settledUsed(enough uint64) (uint64, error) {
	var used, prev uint64
	for i := 0; i < settleRounds; i++ {
		if i > 0 {
			time.Sleep(settlePause)
		}
		if err := unix.Syncfs(m.root); err != nil {
			return 0, os.NewSyscallError("syncfs", err)
		}
		var sfs unix.Statfs_t
		if err := unix.Fstatfs(m.root, &sfs); err != nil {
			return 0, &os.PathError{Op: "statfs", Path: m.where(), Err: err}
		}
		prev, used = used, (sfs.Blocks-sfs.Bfree)*uint64(sfs.Bsize)
		if used <= enough || (i >= 3 && used >= prev) {
			break
		}
	}
	return used, nil
}

// trim cuts the image to size bytes (the file system ends there already) and shrinks the loop
// device to match, giving the host the rest back. Safe while mounted: btrfs neither reads nor
// writes past its device's size, which it lowered before.
func trim(img *os.File, dev string, size int64) error {
	if err := img.Truncate(size); err != nil {
		return fmt.Errorf("trim image (the limit is in force): %w", err)
	}
	return setCapacity(dev)
}

// SetLimitsOffline applies l to the image of a stopped VPS: it attaches and mounts it where
// only this call sees it (a detached mount), sets the limits as SetLimits does, and lets go.
// ErrInUse if the image is attached (its VPS runs: use Open and SetLimits).
func SetLimitsOffline(imagePath string, l Limits) error {
	if err := l.Validate(); err != nil {
		return err
	}
	m, err := attach(imagePath)
	if err != nil {
		return err
	}
	defer m.Close()
	return m.SetLimits(l)
}

// Attach mounts the file system of the image at imagePath privately (a detached mount, seen by
// no mount namespace), for reading a stopped VPS's files from the host (a backup, a clone, a
// migration): Upper is then its upper/ reached through the mount's descriptor
// (/proc/self/fd/N/upper), valid until Close, which unmounts it and lets the loop device go.
// ErrInUse if the image is attached already (its VPS runs, or has just stopped and its
// monitor's mount namespace has not ended yet).
func Attach(imagePath string) (*Mounted, error) {
	m, err := attach(imagePath)
	if err != nil {
		return nil, err
	}
	m.Upper = fmt.Sprintf("/proc/self/fd/%d/%s", m.root, UpperDir)
	return m, nil
}

// attach attaches the image at imagePath to a loop device and mounts its file system detached
// (in no mount namespace: nothing can see or reach it but the returned descriptors).
func attach(imagePath string) (*Mounted, error) {
	img, err := sysfile.OpenFile(imagePath, unix.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	// The loop device holds the image open (and its flock with it) from here on.
	defer img.Close()
	return attachFile(img, imagePath)
}

// attachFile is attach for an image open as img (imagePath names it, or will).
func attachFile(img *os.File, imagePath string) (m *Mounted, err error) {
	sb, err := readSuper(img)
	if err != nil {
		return nil, err
	}
	if !sb.Mixed {
		return nil, fmt.Errorf("%s: a btrfs without mixed block groups was not made by this package: %w", imagePath, ErrNotImage)
	}
	dev, dfd, err := attachLoop(img)
	if err != nil {
		return nil, err
	}
	// Whatever happens next, this descriptor is not what keeps the device: the mount is, or
	// nothing, and then closing it detaches the device (autoclear).
	defer unix.Close(dfd)
	mnt, err := mountDetached(dev)
	if err != nil {
		return nil, fmt.Errorf("%s on %s: %w", imagePath, dev, err)
	}
	root, err := unix.Openat(mnt, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(mnt)
		return nil, os.NewSyscallError("openat", err)
	}
	return &Mounted{image: imagePath, root: root, mnt: mnt}, nil
}

// mountDetached mounts the btrfs on dev as a detached mount and returns its descriptor: closing
// it, while the mount is not attached anywhere, unmounts the file system.
func mountDetached(dev string) (int, error) {
	fsfd, err := unix.Fsopen("btrfs", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, os.NewSyscallError("fsopen btrfs", err)
	}
	defer unix.Close(fsfd)
	if err := unix.FsconfigSetString(fsfd, "source", dev); err != nil {
		return -1, fsError(fsfd, "fsconfig source", err)
	}
	// nodiscard: btrfs turns on discard=async by itself on a device that can discard, and a
	// loop device can (by punching holes in its file): each hole would hand part of the
	// preallocation back to the host, and the VPS's next write there would need the host's
	// free space again.
	if err := unix.FsconfigSetFlag(fsfd, "nodiscard"); err != nil {
		return -1, fsError(fsfd, "fsconfig nodiscard", err)
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return -1, fsError(fsfd, "fsconfig create", err)
	}
	// nodev: the host side of a VPS's files opens no device node of theirs (the VPS's own
	// view, the overlay, is nodev as well).
	mnt, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_NODEV)
	if err != nil {
		return -1, fsError(fsfd, "fsmount", err)
	}
	return mnt, nil
}

// fsError wraps err of a file system context operation with the messages the kernel left in
// the context (btrfs says there why a mount failed).
func fsError(fsfd int, op string, err error) error {
	var msgs []byte
	buf := make([]byte, 1024)
	for i := 0; i < 8; i++ {
		n, rerr := unix.Read(fsfd, buf)
		if rerr != nil || n <= 0 {
			break
		}
		msgs = append(append(msgs, "; "...), bytes.TrimSpace(buf[:n])...)
	}
	return fmt.Errorf("%w%s", os.NewSyscallError(op, err), msgs)
}

// layout makes upper/ and work/ in the file system's root if they are missing. Each is made
// under a temporary name and renamed into place with its owner and mode set, so that a crash
// never leaves an upper/ the VPS's root does not own.
func (m *Mounted) layout(uid, gid int) error {
	if err := mkdirAs(m.root, UpperDir, 0o755, uid, gid); err != nil {
		return err
	}
	return mkdirAs(m.root, WorkDir, 0o700, 0, 0)
}

func mkdirAs(dirfd int, name string, mode uint32, uid, gid int) error {
	var st unix.Stat_t
	err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	if err == nil {
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return fmt.Errorf("%s in the image is not a directory: %w", name, ErrNotImage)
		}
		return nil
	}
	if !errors.Is(err, unix.ENOENT) {
		return &os.PathError{Op: "stat", Path: name, Err: err}
	}
	tmp := name + ".new"
	if err := unix.Mkdirat(dirfd, tmp, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
		return &os.PathError{Op: "mkdir", Path: tmp, Err: err}
	}
	if err := unix.Fchownat(dirfd, tmp, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "chown", Path: tmp, Err: err}
	}
	// After the chown, which would clear set-ID bits; and exactly mode, whatever the umask.
	if err := unix.Fchmodat(dirfd, tmp, mode, 0); err != nil {
		return &os.PathError{Op: "chmod", Path: tmp, Err: err}
	}
	if err := unix.Renameat(dirfd, tmp, dirfd, name); err != nil {
		return &os.LinkError{Op: "rename", Old: tmp, New: name, Err: err}
	}
	return nil
}

// Convert makes the image of a VPS created without one: an image for l at imagePath whose
// upper/ holds a copy of privateDir (its plain private area) with owners, modes, timestamps,
// hard links, device nodes and overlayfs whiteouts, extended attributes (overlayfs's opaque
// and redirect marks, file capabilities, ACLs) and holes, by cp -a. The VPS must be stopped
// (its caller holds its lock). privateDir is left as it was: the caller records the limit
// and removes it. If the files do not fit in l, ErrTooSmall, naming both, and no image. The
// image appears complete or not at all, as with Create. ctx bounds mkfs and the copy.
func Convert(ctx context.Context, privateDir, imagePath string, l Limits) error {
	if err := l.Validate(); err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Lstat(privateDir, &st); err != nil {
		return &os.PathError{Op: "stat", Path: privateDir, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return &os.PathError{Op: "convert", Path: privateDir, Err: unix.ENOTDIR}
	}
	if _, err := os.Lstat(imagePath); err == nil {
		return fmt.Errorf("%s: %w", imagePath, ErrExist)
	}
	used, inodes, err := treeUsage(privateDir)
	if err != nil {
		return err
	}
	if used > l.HardBytes {
		return fmt.Errorf("diskspace %s is less than the %s in use in %s: %w", FormatSize(l.HardBytes), FormatSize(used), privateDir, ErrTooSmall)
	}
	if need := convertNeed(used, inodes); need > l.HardBytes {
		return fmt.Errorf("diskspace %s does not fit the %s in use in %s with the file system's metadata for its %d files (about %s): %w",
			FormatSize(l.HardBytes), FormatSize(used), privateDir, inodes, FormatSize(need-used), ErrTooSmall)
	}
	f, err := build(ctx, imagePath, l)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := copyInto(ctx, f, privateDir, int(st.Uid), int(st.Gid), l, used); err != nil {
		return err
	}
	return commit(f, imagePath)
}

// metaPerInode and metaBase estimate, generously, what btrfs adds to a tree's data: per file
// an inode item, its name twice in its directory, its back reference and its extent items, in
// 4 KiB nodes rarely full (about 0.5 KiB measured, doubled); and the empty file system's own.
const (
	metaPerInode = 1 << 10
	metaBase     = 1 << 20
)

// convertNeed estimates the size a private area of used bytes in inodes files takes in an
// image.
func convertNeed(used, inodes uint64) uint64 {
	return used + inodes*metaPerInode + metaBase
}

// copyInto mounts the unnamed image f privately and copies privateDir's tree into its upper/.
func copyInto(ctx context.Context, f *os.File, privateDir string, uid, gid int, l Limits, used uint64) error {
	m, err := attachFile(f, f.Name())
	if err != nil {
		return err
	}
	defer m.Close()
	if err := m.layout(uid, gid); err != nil {
		return err
	}
	cp, err := findTool(cpProgram)
	if err != nil {
		return err
	}
	rfd, err := unix.FcntlInt(uintptr(m.root), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("fcntl", err)
	}
	rootf := os.NewFile(uintptr(rfd), "image root")
	defer rootf.Close()
	// The child reaches the detached mount through its descriptor 3. --one-file-system: were
	// something mounted inside the private area, it is not the VPS's.
	msg, err := runStopOnError(ctx, rootf, cp, "-a", "--sparse=always", "--one-file-system",
		privateDir+"/.", "/proc/self/fd/3/"+UpperDir+"/")
	if err != nil {
		// cp says why only in words; a full file system is what a failed copy into an image
		// sized for the files most likely met, and statfs tells.
		var sfs unix.Statfs_t
		if unix.Fstatfs(m.root, &sfs) == nil && sfs.Bavail*uint64(sfs.Bsize) < fullBelow {
			return fmt.Errorf("diskspace %s does not fit the %s in use in %s (%s): %w", FormatSize(l.HardBytes), FormatSize(used), privateDir, msg, ErrTooSmall)
		}
		return fmt.Errorf("copy %s into the image: %w: %s", privateDir, err, msg)
	}
	if err := unix.Syncfs(m.root); err != nil {
		return os.NewSyscallError("syncfs", err)
	}
	return nil
}

// fullBelow is the space left below which a btrfs is full: what btrfs keeps back for its own
// metadata (its global reserve, a few MiB at the sizes of a VPS) is never available.
const fullBelow = 8 << 20

// runStopOnError runs program with args and dir as its descriptor 3, and stops it at the first
// line it writes to its standard error (cp goes on after an error, and past a full btrfs each
// of its later attempts waits for the file system's own flushing: minutes for a large tree).
// It returns that line.
func runStopOnError(ctx context.Context, dir *os.File, program string, args ...string) (string, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(ctx, program, args...)
	cmd.ExtraFiles = []*os.File{dir}
	// Its own process group, killed whole: nothing it started outlives the stop.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return "", err
	}
	if err := timerslack.WithHost(cmd.Start); err != nil {
		return "", err
	}
	first, _ := bufio.NewReader(stderr).ReadString('\n')
	if first != "" {
		cancel()
	}
	// Wait closes the pipe: whatever else the program would say is not read.
	err = cmd.Wait()
	if err == nil && first != "" {
		err = errors.New("wrote to its standard error")
	}
	return strings.TrimSpace(first), err
}

// treeUsage is what the files under dir occupy (du) and how many there are: their allocated
// blocks, a file with several links counted once, not crossing into other file systems.
func treeUsage(dir string) (used, inodes uint64, err error) {
	var top unix.Stat_t
	if err := unix.Lstat(dir, &top); err != nil {
		return 0, 0, &os.PathError{Op: "stat", Path: dir, Err: err}
	}
	type inode struct{ dev, ino uint64 }
	seen := map[inode]bool{}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return &os.PathError{Op: "stat", Path: p, Err: err}
		}
		if st.Dev != top.Dev { // a mount point: cp --one-file-system leaves it out too
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if st.Nlink > 1 && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			k := inode{st.Dev, st.Ino}
			if seen[k] {
				return nil
			}
			seen[k] = true
		}
		used += uint64(st.Blocks) * 512
		inodes++
		return nil
	})
	return used, inodes, err
}

// syncDir makes a directory's entries durable.
func syncDir(dir string) error {
	fd, err := sysfile.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Fsync(fd); err != nil {
		return &os.PathError{Op: "fsync", Path: dir, Err: err}
	}
	return nil
}
