package disk

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"sync"
)

// The primary btrfs superblock: 4 KiB at 64 KiB into the device (fs/btrfs/disk-io.c,
// btrfs_sb_offset(0)); its layout is struct btrfs_super_block (include/uapi/linux/btrfs_tree.h).
const (
	superOffset = 64 << 10
	superSize   = 4096

	offCsum        = 0x00 // [32]byte; crc32c of everything after it, little-endian in the first 4
	offFSID        = 0x20
	offMagic       = 0x40
	offGeneration  = 0x48
	offTotalBytes  = 0x70
	offBytesUsed   = 0x78
	offNumDevices  = 0x88
	offSectorSize  = 0x90
	offNodeSize    = 0x94
	offIncompat    = 0xbc
	offCsumType    = 0xc4
	offDevTotal    = 0xc9 + 8 // dev_item.total_bytes (dev_item.devid is at 0xc9)
	btrfsMagic     = "_BHRfS_M"
	csumTypeCRC32C = 0

	// BTRFS_FEATURE_INCOMPAT_MIXED_GROUPS: data and metadata share block groups. Create makes
	// every image so (see the package doc), and statfs then counts every byte of the device.
	incompatMixedGroups = 1 << 2
)

// castagnoli is made on first use: the table's making is 0.25 ms, which a package variable would
// add to the start of every vpsctl command.
var castagnoli = sync.OnceValue(func() *crc32.Table { return crc32.MakeTable(crc32.Castagnoli) })

// Superblock is what this package reads from an image's btrfs superblock: the size and usage of
// the file system as of its last committed transaction.
type Superblock struct {
	FSID       [16]byte
	Generation uint64
	TotalBytes uint64 // the file system's size: the hard limit in force
	BytesUsed  uint64 // bytes allocated to data and metadata
	DevBytes   uint64 // the size of its one device as btrfs knows it (= TotalBytes)
	SectorSize uint32
	NodeSize   uint32
	Mixed      bool // data and metadata in shared block groups
}

// ParseSuperblock parses the primary btrfs superblock (superSize bytes read at superOffset):
// the magic, the crc32c checksum, and the values this package relies on (one device, 4 KiB
// sectors, a used count within the size). Errors wrap ErrNotImage. Pure: no I/O.
func ParseSuperblock(b []byte) (Superblock, error) {
	var s Superblock
	if len(b) < superSize {
		return s, fmt.Errorf("superblock: %d bytes, want %d: %w", len(b), superSize, ErrNotImage)
	}
	b = b[:superSize]
	if string(b[offMagic:offMagic+8]) != btrfsMagic {
		return s, fmt.Errorf("superblock: no btrfs magic: %w", ErrNotImage)
	}
	le := binary.LittleEndian
	if t := le.Uint16(b[offCsumType:]); t != csumTypeCRC32C {
		return s, fmt.Errorf("superblock: checksum type %d, want crc32c: %w", t, ErrNotImage)
	}
	if got, want := crc32.Checksum(b[0x20:], castagnoli()), le.Uint32(b[offCsum:]); got != want {
		return s, fmt.Errorf("superblock: checksum %#08x, want %#08x (torn or damaged): %w", got, want, ErrNotImage)
	}
	copy(s.FSID[:], b[offFSID:])
	s.Generation = le.Uint64(b[offGeneration:])
	s.TotalBytes = le.Uint64(b[offTotalBytes:])
	s.BytesUsed = le.Uint64(b[offBytesUsed:])
	s.DevBytes = le.Uint64(b[offDevTotal:])
	s.SectorSize = le.Uint32(b[offSectorSize:])
	s.NodeSize = le.Uint32(b[offNodeSize:])
	s.Mixed = le.Uint64(b[offIncompat:])&incompatMixedGroups != 0
	switch {
	case le.Uint64(b[offNumDevices:]) != 1:
		return s, fmt.Errorf("superblock: %d devices, want 1: %w", le.Uint64(b[offNumDevices:]), ErrNotImage)
	case s.SectorSize != sectorSize:
		return s, fmt.Errorf("superblock: sector size %d, want %d: %w", s.SectorSize, sectorSize, ErrNotImage)
	case s.TotalBytes == 0 || s.BytesUsed > s.TotalBytes:
		return s, fmt.Errorf("superblock: %d bytes used of %d: %w", s.BytesUsed, s.TotalBytes, ErrNotImage)
	}
	return s, nil
}
