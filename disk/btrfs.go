package disk

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// btrfs ioctls (include/uapi/linux/btrfs.h); x/sys/unix has none of them.
const (
	// _IOW(0x94, 3, struct btrfs_ioctl_vol_args): resize a device, name "DEVID:BYTES".
	iocResize = 0x50009403
	// _IOWR(0x94, 30, struct btrfs_ioctl_dev_info_args): a device's path and size.
	iocDevInfo = 0xd000941e
	// _IOWR(0x94, 17, struct btrfs_ioctl_search_args_v2): read items of a tree.
	iocTreeSearchV2 = 0xc0709411

	devID           = 1 // an image's file system has one device, the first
	inodeItemKey    = 1 // BTRFS_INODE_ITEM_KEY
	firstFreeObjID  = 256
	lastFreeObjID   = ^uint64(0) - 255 // BTRFS_LAST_FREE_OBJECTID (-256ULL)
	searchHeaderLen = 32               // struct btrfs_ioctl_search_header
	searchBufSize   = 64 << 10
)

// volArgs is struct btrfs_ioctl_vol_args.
type volArgs struct {
	fd   int64
	name [4088]byte
}

// devInfoArgs is struct btrfs_ioctl_dev_info_args.
type devInfoArgs struct {
	devid      uint64
	uuid       [16]byte
	bytesUsed  uint64
	totalBytes uint64
	fsid       [16]byte
	unused     [377]uint64
	path       [1024]byte
}

// searchKey is struct btrfs_ioctl_search_key, followed by the buf_size of
// struct btrfs_ioctl_search_args_v2.
type searchKey struct {
	treeID                   uint64
	minObjectID, maxObjectID uint64
	minOffset, maxOffset     uint64
	minTransID, maxTransID   uint64
	minType, maxType         uint32
	nrItems                  uint32
	_                        uint32
	_, _, _, _               uint64
	bufSize                  uint64
}

func init() {
	// The ioctl numbers above encode these sizes; a wrong struct would be a wrong request.
	if unsafe.Sizeof(volArgs{}) != 4096 || unsafe.Sizeof(devInfoArgs{}) != 4096 || unsafe.Sizeof(searchKey{}) != 112 {
		panic("disk: btrfs ioctl structs have the wrong size")
	}
}

// resizeFS sets the size of the file system's device to size bytes (btrfs moves what lies
// beyond a smaller size first, and fails with ENOSPC if it does not fit). fd is any open file
// of the file system.
func resizeFS(fd int, size int64) error {
	var a volArgs
	copy(a.name[:], strconv.Itoa(devID)+":"+strconv.FormatInt(size, 10))
	if err := ioctlRetry(fd, iocResize, unsafe.Pointer(&a)); err != nil {
		return os.NewSyscallError("btrfs resize", err)
	}
	return nil
}

// devInfo returns the path of the file system's device (as given to mount) and its size.
func devInfo(fd int) (path string, size int64, err error) {
	a := devInfoArgs{devid: devID}
	if err := ioctlRetry(fd, iocDevInfo, unsafe.Pointer(&a)); err != nil {
		return "", 0, os.NewSyscallError("btrfs dev info", err)
	}
	p, _, _ := bytes.Cut(a.path[:], []byte{0})
	return string(p), int64(a.totalBytes), nil
}

// countInodes counts the inodes of the file system tree fd is in: the INODE_ITEMs of its
// subvolume tree, read with the tree search ioctl (btrfs keeps no count of them; statfs
// reports 0 files). The cost is one pass over the tree's leaves (see Mounted.Inodes). Needs
// CAP_SYS_ADMIN.
func countInodes(fd int) (uint64, error) {
	buf := make([]byte, 112+searchBufSize)
	k := (*searchKey)(unsafe.Pointer(&buf[0]))
	next := key{objectID: firstFreeObjID}
	var n uint64
	for {
		*k = searchKey{
			treeID:      0, // the subvolume of fd
			minObjectID: next.objectID, maxObjectID: lastFreeObjID,
			minType: next.typ, maxType: 255,
			minOffset: next.offset, maxOffset: ^uint64(0),
			maxTransID: ^uint64(0),
			nrItems:    ^uint32(0),
			bufSize:    searchBufSize,
		}
		if err := ioctlRetry(fd, iocTreeSearchV2, unsafe.Pointer(&buf[0])); err != nil {
			return 0, os.NewSyscallError("btrfs tree search", err)
		}
		if k.nrItems == 0 {
			return n, nil
		}
		c, last, err := parseSearch(buf[112:], k.nrItems)
		if err != nil {
			return 0, err
		}
		n += c
		var more bool
		if next, more = last.successor(); !more {
			return n, nil
		}
	}
}

// key is a btrfs key: items sort by (objectid, type, offset).
type key struct {
	objectID uint64
	typ      uint32
	offset   uint64
}

// successor returns the smallest key after k (false if k is the last key there is), where the
// next search starts.
func (k key) successor() (key, bool) {
	switch {
	case k.offset < ^uint64(0):
		k.offset++
	case k.typ < 255:
		k.typ, k.offset = k.typ+1, 0
	case k.objectID < ^uint64(0):
		k.objectID, k.typ, k.offset = k.objectID+1, 0, 0
	default:
		return k, false
	}
	return k, true
}

// parseSearch walks the n items a tree search left in buf (each a 32-byte header and its item
// data) and counts the inode items of ordinary inodes. It returns the key of the last item,
// where the next search continues. Pure: no I/O.
func parseSearch(buf []byte, n uint32) (inodes uint64, last key, err error) {
	le := binary.LittleEndian
	off := 0
	for i := uint32(0); i < n; i++ {
		if len(buf)-off < searchHeaderLen {
			return 0, last, fmt.Errorf("btrfs tree search: item %d of %d past the buffer", i, n)
		}
		h := buf[off : off+searchHeaderLen]
		last = key{objectID: le.Uint64(h[8:]), offset: le.Uint64(h[16:]), typ: le.Uint32(h[24:])}
		l := le.Uint32(h[28:])
		if uint64(l) > uint64(len(buf)-off-searchHeaderLen) {
			return 0, last, fmt.Errorf("btrfs tree search: item %d of %d bytes past the buffer", i, l)
		}
		off += searchHeaderLen + int(l)
		if last.typ == inodeItemKey && last.objectID >= firstFreeObjID && last.objectID <= lastFreeObjID {
			inodes++
		}
	}
	return inodes, last, nil
}

// ioctlRetry is ioctl(2) with a pointer argument, retried on EINTR.
func ioctlRetry(fd int, req uint, arg unsafe.Pointer) error {
	for {
		_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(arg))
		switch e {
		case 0:
			return nil
		case unix.EINTR:
			continue
		}
		return e
	}
}
