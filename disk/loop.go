package disk

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/vpsctl/vpsctl/internal/sysfile"
	"golang.org/x/sys/unix"
)

// attachTries bounds the retries of a loop device that another process configured between
// LOOP_CTL_GET_FREE and LOOP_CONFIGURE.
const attachTries = 16

// attachLoop binds the image open as img to a free loop device and returns the device's path
// and an open descriptor of it (the caller's to close; closing the device's last descriptor
// once nothing is mounted from it detaches it: autoclear).
//
// The image's exclusive flock is taken on img first, and lives as long as the loop device holds
// img (the lock belongs to the open file, which the device keeps): no second vpsctl can attach
// the same image, and so no second btrfs can write into it, while the first is attached.
func attachLoop(img *os.File) (dev string, fd int, err error) {
	if err := unix.Flock(int(img.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		if errors.Is(err, unix.EWOULDBLOCK) {
			return "", -1, fmt.Errorf("%s: attached elsewhere (a running VPS, or another vpsctl): %w", img.Name(), ErrInUse)
		}
		return "", -1, &os.PathError{Op: "flock", Path: img.Name(), Err: err}
	}
	ctl, err := sysfile.Open("/dev/loop-control", unix.O_RDWR, 0)
	if err != nil {
		return "", -1, err
	}
	defer unix.Close(ctl)
	cfg := unix.LoopConfig{
		Fd:   uint32(img.Fd()),
		Size: sectorSize,
	}
	// Direct I/O: the image's pages are cached once, in the VPS's file system, not a second
	// time as pages of the image file (the kernel falls back to buffered I/O if it cannot).
	cfg.Info.Flags = unix.LO_FLAGS_AUTOCLEAR | unix.LO_FLAGS_DIRECT_IO
	for try := 0; ; try++ {
		n, err := unix.IoctlRetInt(ctl, unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return "", -1, os.NewSyscallError("LOOP_CTL_GET_FREE", err)
		}
		dev = "/dev/loop" + strconv.Itoa(n)
		fd, err = sysfile.Open(dev, unix.O_RDWR, 0)
		if err != nil {
			return "", -1, err
		}
		err = sysfile.Retry(func() error { return unix.IoctlLoopConfigure(fd, &cfg) })
		if err == nil {
			return dev, fd, nil
		}
		unix.Close(fd)
		// EBUSY: another process configured the device first; take the next free one.
		if !errors.Is(err, unix.EBUSY) || try == attachTries {
			return "", -1, fmt.Errorf("%s: %w", dev, os.NewSyscallError("LOOP_CONFIGURE", err))
		}
	}
}

// setCapacity makes the loop device dev take its backing file's current size.
func setCapacity(dev string) error {
	fd, err := sysfile.Open(dev, unix.O_RDONLY, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := sysfile.Retry(func() error { return unix.IoctlSetInt(fd, unix.LOOP_SET_CAPACITY, 0) }); err != nil {
		return fmt.Errorf("%s: %w", dev, os.NewSyscallError("LOOP_SET_CAPACITY", err))
	}
	return nil
}

// backs reports whether loop device dev is bound to the file whose stat is st.
func backs(dev string, st *unix.Stat_t) (bool, error) {
	fd, err := sysfile.Open(dev, unix.O_RDONLY, 0)
	if err != nil {
		return false, err
	}
	defer unix.Close(fd)
	info, err := unix.IoctlLoopGetStatus64(fd)
	if err != nil {
		if errors.Is(err, unix.ENXIO) { // not bound
			return false, nil
		}
		return false, fmt.Errorf("%s: %w", dev, os.NewSyscallError("LOOP_GET_STATUS64", err))
	}
	return info.Device == st.Dev && info.Inode == st.Ino, nil
}
