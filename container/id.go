// Package container holds what identifies a VPS and a process's place among VPSs: the numeric
// VPS ID (the seed's unique container ID, 0 being the host), the optional unique name, and the
// owning and effective VPS of a process.
//
// Invariants: an ID is a uint32; ID 0 is the host and is never a VPS; a name is never a valid ID
// (so "101" always means VPS 101) and is unique per state root (the store enforces uniqueness).
package container

import (
	"errors"
	"fmt"
	"strconv"
)

// ID is a VPS ID. HostID (0) is the host itself.
type ID uint32

// HostID is the ID of the host: the seed's host_vps_info. It can never be created.
const HostID ID = 0

// ErrBadID and ErrBadName report an unusable ID or name.
var (
	ErrBadID   = errors.New("bad VPS ID")
	ErrBadName = errors.New("bad VPS name")
)

func (id ID) String() string { return strconv.FormatUint(uint64(id), 10) }

// ParseID parses a decimal VPS ID in 1..4294967295. Signs, spaces, leading zeros beyond "0",
// hex and the host's 0 are refused, so that one ID has exactly one spelling.
func ParseID(s string) (ID, error) {
	if s == "" {
		return 0, fmt.Errorf("%w: empty", ErrBadID)
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%w %q: not a decimal number", ErrBadID, s)
		}
	}
	if len(s) > 1 && s[0] == '0' {
		return 0, fmt.Errorf("%w %q: leading zero", ErrBadID, s)
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%w %q: out of range 1..4294967295", ErrBadID, s)
	}
	if n == 0 {
		return 0, fmt.Errorf("%w %q: 0 is the host", ErrBadID, s)
	}
	return ID(n), nil
}

// LooksNumeric reports whether s is meant as an ID rather than a name: any string of digits.
func LooksNumeric(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// ValidateName checks a VPS name: 1..64 characters of [A-Za-z0-9._-], starting with a letter, so
// it can never be confused with an ID, an option or a path.
func ValidateName(s string) error {
	if s == "" || len(s) > 64 {
		return fmt.Errorf("%w %q: must be 1..64 characters", ErrBadName, s)
	}
	c0 := s[0]
	if !(c0 >= 'a' && c0 <= 'z' || c0 >= 'A' && c0 <= 'Z') {
		return fmt.Errorf("%w %q: must start with a letter", ErrBadName, s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w %q: character %q not allowed", ErrBadName, s, c)
		}
	}
	return nil
}
