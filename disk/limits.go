package disk

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// MinHardBytes is the smallest hard limit: Linux refuses to resize a btrfs file system to less
// than 256 MiB (btrfs_ioctl_resize), and a limit that could be set but never changed would be a
// trap.
const MinHardBytes = 256 << 20

// sectorSize is the image's block size: file system sizes are whole sectors (btrfs rounds a
// resize down to one), and the loop device uses it as its logical block size.
const sectorSize = 4096

// Limits are a VPS's disk limits, as vzctl's DISKSPACE and DISKINODES.
type Limits struct {
	// SoftBytes is the barrier. It is recorded and reported (list -o diskspace.s) and never
	// above HardBytes, but nothing enforces it: a grace period needs a kernel disk quota, which
	// this mechanism does not use (see the package doc). 0 means HardBytes.
	SoftBytes uint64
	// HardBytes is the limit: the size of the VPS's file system, what df shows inside and where
	// writes fail with ENOSPC. At least MinHardBytes; rounded up to 4 KiB.
	HardBytes uint64
	// Inodes is vzctl's DISKINODES hard limit; 0 means none. btrfs allocates inodes as files
	// are made, with no limit to set, so a non-zero value is refused (ErrInodeLimit): space is
	// what bounds a VPS's files.
	Inodes uint64
}

// Validate reports whether l can be applied: wrapping ErrBadValue for sizes out of range or a
// soft limit above the hard one, ErrInodeLimit for an inode limit.
func (l Limits) Validate() error {
	if l.HardBytes < MinHardBytes {
		return fmt.Errorf("diskspace %s: the least is %s: %w", FormatSize(l.HardBytes), FormatSize(MinHardBytes), ErrBadValue)
	}
	if l.HardBytes > math.MaxInt64-sectorSize {
		return fmt.Errorf("diskspace %s: out of range: %w", FormatSize(l.HardBytes), ErrBadValue)
	}
	if l.SoftBytes > l.HardBytes {
		return fmt.Errorf("diskspace soft limit %s is above the hard limit %s: %w", FormatSize(l.SoftBytes), FormatSize(l.HardBytes), ErrBadValue)
	}
	if l.Inodes != 0 {
		return fmt.Errorf("diskinodes %d: %w", l.Inodes, ErrInodeLimit)
	}
	return nil
}

// size is the file system size l asks for, in bytes: HardBytes rounded up to a whole sector.
func (l Limits) size() int64 {
	return int64((l.HardBytes + sectorSize - 1) &^ (sectorSize - 1))
}

// Diskspace returns the DISKSPACE value of vps.conf for l: "SOFT:HARD" in 1 KiB blocks, as
// vzctl writes it. ParseDiskspace reads it back unchanged.
func (l Limits) Diskspace() string {
	soft := l.SoftBytes
	if soft == 0 {
		soft = l.HardBytes
	}
	return strconv.FormatUint(soft>>10, 10) + ":" + strconv.FormatUint(l.HardBytes>>10, 10)
}

// ParseDiskspace parses a --diskspace value or a DISKSPACE line: "HARD" or "SOFT:HARD", each a
// number with an optional K, M, G or T suffix (powers of 1024). A bare number counts 1 KiB
// blocks, as in vzctl (so "2097152" is 2 GiB, and a saved DISKSPACE reads back as it was
// written). One value sets both limits. Errors wrap ErrBadValue.
func ParseDiskspace(s string) (soft, hard uint64, err error) {
	a, b, two := strings.Cut(s, ":")
	if soft, err = parseKiB(a); err != nil {
		return 0, 0, fmt.Errorf("diskspace %q: %w", s, err)
	}
	hard = soft
	if two {
		if hard, err = parseKiB(b); err != nil {
			return 0, 0, fmt.Errorf("diskspace %q: %w", s, err)
		}
	}
	if soft > hard {
		return 0, 0, fmt.Errorf("diskspace %q: soft limit above the hard limit: %w", s, ErrBadValue)
	}
	return soft, hard, nil
}

// parseKiB parses one size of ParseDiskspace into bytes.
func parseKiB(s string) (uint64, error) {
	num, mult := s, uint64(1<<10) // no suffix: 1 KiB blocks
	if n := len(s); n > 0 {
		if m := suffix(s[n-1]); m != 0 {
			num, mult = s[:n-1], m
		}
	}
	v, err := parseCount(num)
	if err != nil {
		return 0, fmt.Errorf("%q: want a number with an optional K, M, G or T suffix: %w", s, ErrBadValue)
	}
	if v > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q is out of range: %w", s, ErrBadValue)
	}
	return v * mult, nil
}

// suffix returns the multiplier a size suffix stands for, 0 for none.
func suffix(c byte) uint64 {
	switch c {
	case 'K', 'k':
		return 1 << 10
	case 'M', 'm':
		return 1 << 20
	case 'G', 'g':
		return 1 << 30
	case 'T', 't':
		return 1 << 40
	}
	return 0
}

// ParseInodes parses a --diskinodes value or a DISKINODES line: "HARD" or "SOFT:HARD", plain
// counts as in vzctl. Errors wrap ErrBadValue. (Limits.Validate then refuses any inode limit:
// see Limits.Inodes.)
func ParseInodes(s string) (soft, hard uint64, err error) {
	a, b, two := strings.Cut(s, ":")
	if soft, err = parseCount(a); err != nil {
		return 0, 0, fmt.Errorf("diskinodes %q: %w", s, err)
	}
	hard = soft
	if two {
		if hard, err = parseCount(b); err != nil {
			return 0, 0, fmt.Errorf("diskinodes %q: %w", s, err)
		}
	}
	if soft > hard {
		return 0, 0, fmt.Errorf("diskinodes %q: soft limit above the hard limit: %w", s, ErrBadValue)
	}
	return soft, hard, nil
}

// parseCount parses a positive decimal number with no sign, space or leading zero, so that
// every value has one spelling.
func parseCount(s string) (uint64, error) {
	if s == "" || (len(s) > 1 && s[0] == '0') {
		return 0, fmt.Errorf("%q: want a positive number: %w", s, ErrBadValue)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("%q: want a positive number: %w", s, ErrBadValue)
		}
	}
	v, err := strconv.ParseUint(s, 10, 63)
	if err != nil {
		return 0, fmt.Errorf("%q is out of range: %w", s, ErrBadValue)
	}
	if v == 0 {
		return 0, fmt.Errorf("%q: want a positive number: %w", s, ErrBadValue)
	}
	return v, nil
}

// FormatSize renders a byte count the way df -h does, for messages: the largest unit of K, M,
// G, T in which it is at least 1, with one decimal below 10 and rounded up ("1.3G", "2G",
// "512M", "17G"), so that an amount in use is never shown smaller than it is.
func FormatSize(b uint64) string {
	const units = "KMGT"
	if b < 1<<10 {
		return strconv.FormatUint(b, 10)
	}
	u, div := 0, uint64(1<<10)
	for u < len(units)-1 && b >= div<<10 {
		u++
		div <<= 10
	}
	whole := b / div
	if whole < 10 {
		// Tenths, rounded up (9.95 becomes 10); b < 10 TiB here, so b*10 cannot overflow.
		tenths := (b*10 + div - 1) / div
		if tenths%10 == 0 {
			return strconv.FormatUint(tenths/10, 10) + units[u:u+1]
		}
		return strconv.FormatUint(tenths/10, 10) + "." + strconv.FormatUint(tenths%10, 10) + units[u:u+1]
	}
	if b%div != 0 {
		whole++
	}
	return strconv.FormatUint(whole, 10) + units[u:u+1]
}
