// Package disk gives a VPS a disk limit, as vzctl's --diskspace did: the VPS's private area
// (the overlay's upper layer) is a file system of its own, whose size is the limit, in one
// preallocated image file on the host, attached through a loop device. This is OpenVZ's ploop
// layout without ploop: df inside the VPS shows the limit and the usage (overlayfs reports its
// upper layer's statfs), a VPS that writes past it gets ENOSPC and nobody else notices, and
// the limit changes live in both directions.
//
// # Why a btrfs image
//
// Linux's disk quotas would keep the private areas as directories, but they are out of reach
// on the hosts vpsctl targets: project quotas on the host's file system need it mounted with
// quota options (remounting or reformatting a host's root is not vpsctl's to do), and a quota
// inside a per-VPS ext4 image needs the kernel's quota format (CONFIG_QFMT_V2; without it, an
// ext4 made with -O quota does not mount at all). A per-VPS file system needs no quota: its
// size is the limit. Changing that size live is the rest of the choice:
//
//   - ext4 grows online only with CAP_SYS_RESOURCE (EXT4_IOC_RESIZE_FS), which a host can
//     withhold even from root (its bounding set), and never shrinks online.
//   - XFS grows online (CAP_SYS_ADMIN) but does not shrink.
//   - btrfs grows and shrinks online with CAP_SYS_ADMIN alone (BTRFS_IOC_RESIZE moves what
//     lies beyond a smaller end, or fails with ENOSPC when it does not fit), and statfs counts
//     exactly its device once data and metadata share block groups (mkfs --mixed; see mkfs).
//
// So: btrfs, mixed block groups, one copy of everything, on a loop device with direct I/O.
// btrfs has no inode limit (inodes are made as files are, and space bounds them): an inode
// limit is refused (ErrInodeLimit) rather than recorded and silently not enforced; the number
// of inodes in use is counted for reports (Mounted.Inodes). The soft limit (vzctl's barrier)
// is kept and shown by the caller, never enforced: a grace period is a quota's, and there is
// none.
//
// # Costs
//
// Create is a preallocation and a mkfs.btrfs (40 ms for 2 GiB, 75 ms for 20 GiB, medians
// here); a boot adds a mount (6 ms); a live grow or shrink takes milliseconds plus, for a
// shrink, the time to move what lies beyond the new end. A shrink needs about one block group
// (a tenth of the size) free besides the data, or btrfs refuses it (ErrTooSmall). A mounted
// image costs the host about 5 MiB of unreclaimable kernel memory and 15 kernel threads
// (measured per mount; an ext4 costs a tenth of a MiB and 2), not charged to the VPS: the price
// of the live resizing, paid only by VPSs with a disk limit.
//
// # Invariants
//
//   - An image is complete or absent: Create and Convert build it unnamed (O_TMPFILE) and link
//     it at the end; a crash leaves nothing to sweep.
//   - An image is preallocated in full (fallocate) and never discarded (mkfs -K, mount
//     nodiscard, and the VPS cannot reach FITRIM through its overlay): the host's free space
//     does not move when a VPS writes.
//   - An image is attached at most once: attaching takes an exclusive flock on the open image
//     that the loop device keeps for as long as it is bound (ErrInUse for a second attacher).
//   - Loop devices are bound with autoclear, and mounts are made in the caller's (private)
//     mount namespace or detached: when the file system is unmounted, by Close or by the
//     namespace's end, the device detaches itself. Nothing is left on the host by a crash.
//   - A VPS cannot change its limit: it sees only the overlay, which passes no btrfs ioctl
//     through, and the loop device and the image are the host's (tested).
//   - SetLimits changes nothing when it refuses (ErrTooSmall, ErrHostSpace), and is idempotent:
//     run again after a crash with the same limits, it finishes the job.
//
// Everything here needs root (CAP_SYS_ADMIN) and btrfs-progs' mkfs.btrfs.
package disk
