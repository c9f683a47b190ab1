package disk

import "errors"

// Conditions callers branch on (cmd/ maps them to exit codes). Every error of this package that
// stands for one of them wraps it; the message says the details.
var (
	// ErrBadValue: a size or count that does not parse or is out of range.
	ErrBadValue = errors.New("bad value")
	// ErrInodeLimit: an inode limit was asked for, which this mechanism cannot enforce.
	ErrInodeLimit = errors.New("inode limits are not supported: btrfs allocates inodes as files are made, and diskspace bounds them")
	// ErrTooSmall: a new limit below what the VPS already uses; nothing was changed.
	ErrTooSmall = errors.New("limit below usage")
	// ErrExist: Create or Convert found an image already at the path.
	ErrExist = errors.New("disk image already exists")
	// ErrInUse: the image is attached already (its VPS runs, or another vpsctl holds it).
	ErrInUse = errors.New("disk image in use")
	// ErrNotImage: a file or mount that is not a disk image of this package.
	ErrNotImage = errors.New("not a vpsctl disk image")
	// ErrHostSpace: the host's file system has no room to preallocate the image.
	ErrHostSpace = errors.New("no space on the host for the disk image")
	// ErrNoMkfs: mkfs.btrfs is missing (Debian package btrfs-progs).
	ErrNoMkfs = errors.New("mkfs.btrfs not found: install btrfs-progs")
)
