// Package uid gives every VPS its own set of user and group IDs: the seed's per-container uid
// hash, done with Linux user namespaces. A VPS with a user namespace sees guest IDs
// 0..Size-1, which the kernel maps to a contiguous, non-overlapping range of host IDs
// (Incus calls this an isolated idmap), so uid 0 in VPS 101 and uid 0 in VPS 102 are two
// different unprivileged host users.
//
// The package allocates those ranges (first fit in a pool, skipping host IDs that belong to
// host accounts or to their subordinate ranges in /etc/subuid and /etc/subgid: host.go),
// translates IDs both ways, parses /proc/PID/uid_map, a VPS's /etc/passwd and /etc/group and
// the host's subuid, subgid, passwd and group files, and builds the per-VPS UID table (guest
// ID, host ID, name, process count).
//
// Invariants:
//   - Host IDs (HostID) and guest IDs (GuestID) are distinct types, so a swapped translation
//     does not compile.
//   - Every valid Range lies inside 0..4294967294: user_namespaces(7) reserves 4294967295
//     ((uid_t)-1) as "no ID", and the kernel refuses extents that reach it.
//   - Parsers are pure and never panic on any input (fuzzed).
//   - A pool never starts below MinPoolBase (the host configuration refuses one), so no range
//     maps a VPS's root to host root or to a host account numbered the usual way.
//
// It opens no tenant file: callers open those (inside a tenant's root, safely) and pass
// readers. The one file reading of its own is ReadHostReservations, of the host's /etc.
package uid

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// HostID is a user or group ID in the host's (initial) user namespace.
type HostID uint32

// GuestID is a user or group ID inside a VPS's user namespace.
type GuestID uint32

// MaxID is the largest usable ID. 4294967295 is (uid_t)-1, which user_namespaces(7) and the
// kernel's map_write() treat as invalid, so no mapping may cover it.
const MaxID = math.MaxUint32 - 1

// NoID is (uid_t)-1: the kernel's "no ID", never part of a valid range.
const NoID = math.MaxUint32

var (
	// ErrBadRange reports a malformed or out-of-bounds ID range or ID map.
	ErrBadRange = errors.New("bad ID range")
	// ErrPoolFull reports that no free range of the requested size is left in a pool.
	ErrPoolFull = errors.New("ID pool full")
)

// Range maps guest IDs 0..Size-1 to host IDs Host..Host+Size-1 (one "0 Host Size" line of
// uid_map). The zero Range (Size 0) maps nothing.
type Range struct {
	Host HostID
	Size uint32
}

// Identity is the mapping of a VPS WITHOUT a user namespace: guest ID n is host ID n for every
// valid ID, so the VPS's root is the host's root. It is exactly what the initial user
// namespace's /proc/self/uid_map shows ("0 0 4294967295"). A Range equal to Identity must never
// be handed to a tenant as an isolated range; Allocate never returns it.
var Identity = Range{Host: 0, Size: math.MaxUint32}

// end returns one past the last host ID, computed without overflow.
func (r Range) end() uint64 { return uint64(r.Host) + uint64(r.Size) }

// ToHost translates guest ID g to its host ID. It reports false when g is not mapped by r
// (outside 0..Size-1, or a host ID past MaxID for a malformed r).
func (r Range) ToHost(g GuestID) (HostID, bool) {
	if uint64(g) >= uint64(r.Size) {
		return 0, false
	}
	h := uint64(r.Host) + uint64(g)
	if h > MaxID {
		return 0, false
	}
	return HostID(h), true
}

// ToGuest translates host ID h to the guest ID it is seen as inside the VPS. It reports false
// when h is not in r (the kernel shows such IDs as the overflow ID, usually 65534).
func (r Range) ToGuest(h HostID) (GuestID, bool) {
	if h < r.Host || uint64(h) > MaxID || uint64(h) >= r.end() {
		return 0, false
	}
	return GuestID(h - r.Host), true
}

// Overlaps reports whether r and o share at least one host ID. Empty ranges overlap nothing.
func (r Range) Overlaps(o Range) bool {
	if r.Size == 0 || o.Size == 0 {
		return false
	}
	return uint64(r.Host) < o.end() && uint64(o.Host) < r.end()
}

// String formats r as "HOST:SIZE", e.g. "1000000:65536"; ParseRange is its inverse.
func (r Range) String() string {
	return strconv.FormatUint(uint64(r.Host), 10) + ":" + strconv.FormatUint(uint64(r.Size), 10)
}

// ParseRange parses "HOST:SIZE" (two decimal numbers without sign or leading zeros, so that
// ParseRange(s).String() == s). It refuses an empty range, numbers that
// do not fit in 32 bits and ranges that reach the invalid ID 4294967295.
func ParseRange(s string) (Range, error) {
	hs, ss, ok := strings.Cut(s, ":")
	if !ok {
		return Range{}, fmt.Errorf("%w %q: want HOST:SIZE", ErrBadRange, s)
	}
	if len(hs) > 1 && hs[0] == '0' || len(ss) > 1 && ss[0] == '0' {
		// One range, one spelling: stored configs compare as text.
		return Range{}, fmt.Errorf("%w %q: leading zero", ErrBadRange, s)
	}
	h, err := parseID(hs)
	if err != nil {
		return Range{}, fmt.Errorf("%w %q: host ID: %v", ErrBadRange, s, err)
	}
	n, err := parseID(ss)
	if err != nil {
		return Range{}, fmt.Errorf("%w %q: size: %v", ErrBadRange, s, err)
	}
	r := Range{Host: HostID(h), Size: n}
	if err := r.check(); err != nil {
		return Range{}, fmt.Errorf("%w %q: %v", ErrBadRange, s, err)
	}
	return r, nil
}

// check explains why r is not valid, or returns nil.
func (r Range) check() error {
	if r.Size == 0 {
		return errors.New("size must be at least 1")
	}
	if r.end()-1 > MaxID {
		return fmt.Errorf("last host ID %d is past %d (4294967295 is invalid, user_namespaces(7))", r.end()-1, uint64(MaxID))
	}
	return nil
}

// parseID parses a plain decimal uint32: digits only, no sign, no spaces.
func parseID(s string) (uint32, error) {
	if s == "" {
		return 0, errors.New("empty")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("%q is not a decimal number", s)
		}
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%q does not fit in 32 bits", s)
	}
	return uint32(n), nil
}

// Pool is the span of host IDs that VPS ranges are allocated from.
type Pool struct {
	Base HostID
	Size uint32
}

// DefaultPool starts above the IDs distributions hand to real users and system services
// (and above the 100000.. subuid ranges useradd gives by default) and holds 16384 VPSs of 65536 IDs.
var DefaultPool = Pool{Base: 1000000, Size: 1 << 30}

// String formats p as "BASE:SIZE", e.g. "1000000:1073741824".
func (p Pool) String() string { return Range{Host: p.Base, Size: p.Size}.String() }

// Allocate returns the lowest range of size IDs inside pool that overlaps none of used (first
// fit). used may be unsorted and may hold ranges outside the pool or empty ones. When nothing
// fits, the error wraps ErrPoolFull and names the pool.
//
// Allocation is only as unique as used is complete: callers hold the store's lock across
// reading every VPS's range, Allocate, and persisting the result.
func Allocate(pool Pool, used []Range, size uint32) (Range, error) {
	pr := Range{Host: pool.Base, Size: pool.Size}
	if err := pr.check(); err != nil {
		return Range{}, fmt.Errorf("%w: pool %s: %v", ErrBadRange, pool, err)
	}
	if size == 0 {
		return Range{}, fmt.Errorf("%w: allocate 0 IDs from pool %s", ErrBadRange, pool)
	}
	sorted := make([]Range, 0, len(used))
	for _, u := range used {
		if u.Overlaps(pr) {
			sorted = append(sorted, u)
		}
	}
	slices.SortFunc(sorted, func(a, b Range) int {
		switch {
		case a.Host < b.Host:
			return -1
		case a.Host > b.Host:
			return 1
		}
		return 0
	})
	cand := uint64(pool.Base)
	for _, u := range sorted {
		if u.end() <= cand {
			continue // entirely below the candidate
		}
		if uint64(u.Host) >= cand+uint64(size) {
			break // the gap before u fits
		}
		cand = u.end()
	}
	if cand+uint64(size) > pr.end() {
		return Range{}, fmt.Errorf("pool %s: no free range of %d IDs: %w", pool, size, ErrPoolFull)
	}
	return Range{Host: HostID(cand), Size: size}, nil
}
