package criu

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Version is a CRIU release number, as printed by `criu --version`.
type Version struct{ Major, Minor, Sublevel int }

// MinVersion is the oldest CRIU this package runs. 3.17 (Debian bookworm)
// aborts on 6.x kernels while mapping the vDSO; 4.1 cannot dump a TCP or UDP
// socket on Linux >= 6.16, which refuses getsockopt(SO_PASSCRED) on them
// (CRIU commit 4b7398595, "Restrict SO_PASSCRED and SO_PASSSEC to supported
// families", is in 4.2).
var MinVersion = Version{4, 2, 0}

// ErrBadVersion reports `criu --version` output without a parsable
// "Version: X.Y[.Z]" line.
var ErrBadVersion = errors.New("unrecognised criu version output")

func (v Version) String() string {
	return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Sublevel)
}

// Less reports whether v is an older release than w.
func (v Version) Less(w Version) bool {
	if v.Major != w.Major {
		return v.Major < w.Major
	}
	if v.Minor != w.Minor {
		return v.Minor < w.Minor
	}
	return v.Sublevel < w.Sublevel
}

// maxComponent bounds each number so a hostile or corrupt binary cannot make
// the parser overflow; real CRIU components are two digits at most.
const maxComponent = 1 << 20

// ParseVersion parses the output of `criu --version`, whose first
// significant line is "Version: 4.1.1" (older releases: "Version: 3.17.1";
// git builds may add a "GitID: v4.1-12-gabc" line, and a release may have no
// sublevel: "Version: 4.1"). A suffix after the numbers ("4.2-rc1") is
// ignored. It is pure: no I/O.
func ParseVersion(out string) (Version, error) {
	for _, line := range strings.Split(out, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "Version:")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return Version{}, fmt.Errorf("%w: empty version in %q", ErrBadVersion, line)
		}
		v, err := parseNumbers(fields[0])
		if err != nil {
			return Version{}, fmt.Errorf("%w: %q: %v", ErrBadVersion, fields[0], err)
		}
		return v, nil
	}
	return Version{}, fmt.Errorf("%w: no \"Version:\" line in %q", ErrBadVersion, truncate(out, 200))
}

// parseNumbers parses "X.Y" or "X.Y.Z", each optionally followed by a
// non-digit suffix on the last component ("4.2-rc1", "4.1.1+git").
func parseNumbers(s string) (Version, error) {
	parts := strings.SplitN(s, ".", 3)
	if len(parts) < 2 {
		return Version{}, errors.New("want MAJOR.MINOR[.SUBLEVEL]")
	}
	var n [3]int
	for i, p := range parts {
		last := i == len(parts)-1
		if last {
			// Keep the leading digits of the last component only.
			end := 0
			for end < len(p) && p[end] >= '0' && p[end] <= '9' {
				end++
			}
			p = p[:end]
		}
		if p == "" || len(p) > 7 {
			return Version{}, fmt.Errorf("bad component %d", i+1)
		}
		x, err := strconv.Atoi(p)
		if err != nil || x < 0 || x > maxComponent {
			return Version{}, fmt.Errorf("bad component %d", i+1)
		}
		n[i] = x
	}
	return Version{n[0], n[1], n[2]}, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
