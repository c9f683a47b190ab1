package uid

import (
	"fmt"
	"strconv"
	"strings"
)

// MapLine is one extent of /proc/PID/uid_map or gid_map: Count IDs starting at Inside (in the
// process's user namespace) are Outside.. in the namespace of the process reading the file.
// Read by a host process, Outside is a host ID.
type MapLine struct {
	Inside  GuestID
	Outside HostID
	Count   uint32
}

// maxExtents is the kernel's UID_GID_MAP_MAX_EXTENTS (340 since Linux 4.15).
const maxExtents = 340

// ParseIDMap parses the text of a uid_map or gid_map file: lines of three whitespace-separated
// decimal numbers "inside outside count" (the kernel pads them with spaces). Blank lines are
// skipped. It enforces what the kernel's map_write() enforces, so a map that parses could have
// been written: at most 340 extents, Count >= 1, neither side reaching 4294967295, and no two
// extents overlapping on either side. An empty text (a namespace with no map yet) gives no lines.
func ParseIDMap(text string) ([]MapLine, error) {
	var out []MapLine
	for n, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 {
			return nil, fmt.Errorf("%w: ID map line %d %q: want \"inside outside count\"", ErrBadRange, n+1, line)
		}
		var v [3]uint32
		for i := range f {
			x, err := parseID(f[i])
			if err != nil {
				return nil, fmt.Errorf("%w: ID map line %d: %v", ErrBadRange, n+1, err)
			}
			v[i] = x
		}
		m := MapLine{Inside: GuestID(v[0]), Outside: HostID(v[1]), Count: v[2]}
		if m.Count == 0 {
			return nil, fmt.Errorf("%w: ID map line %d: count 0", ErrBadRange, n+1)
		}
		if uint64(m.Inside)+uint64(m.Count)-1 > MaxID || uint64(m.Outside)+uint64(m.Count)-1 > MaxID {
			return nil, fmt.Errorf("%w: ID map line %d: extent reaches the invalid ID 4294967295", ErrBadRange, n+1)
		}
		for _, o := range out {
			if overlap(uint64(o.Inside), uint64(m.Inside), o.Count, m.Count) ||
				overlap(uint64(o.Outside), uint64(m.Outside), o.Count, m.Count) {
				return nil, fmt.Errorf("%w: ID map line %d overlaps an earlier extent", ErrBadRange, n+1)
			}
		}
		if len(out) == maxExtents {
			return nil, fmt.Errorf("%w: ID map has more than %d extents", ErrBadRange, maxExtents)
		}
		out = append(out, m)
	}
	return out, nil
}

func overlap(a, b uint64, na, nb uint32) bool {
	return a < b+uint64(nb) && b < a+uint64(na)
}

// FormatIDMap formats lines the way uid_map and gid_map are written: one "inside outside count"
// line each. The kernel takes a whole map in a single write(2), so write the result at once.
func FormatIDMap(lines []MapLine) string {
	var b strings.Builder
	for _, m := range lines {
		b.WriteString(strconv.FormatUint(uint64(m.Inside), 10))
		b.WriteByte(' ')
		b.WriteString(strconv.FormatUint(uint64(m.Outside), 10))
		b.WriteByte(' ')
		b.WriteString(strconv.FormatUint(uint64(m.Count), 10))
		b.WriteByte('\n')
	}
	return b.String()
}

// MapLines returns the ID map that gives a VPS the range r: guest 0.. onto r's host IDs.
func (r Range) MapLines() []MapLine {
	return []MapLine{{Inside: 0, Outside: r.Host, Count: r.Size}}
}
