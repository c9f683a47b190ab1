package pidns

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrBadStatus reports /proc/PID/status text that lacks a field this package needs or has one
// it cannot parse.
var ErrBadStatus = errors.New("bad /proc/PID/status")

// Status is what this package needs from /proc/PID/status.
type Status struct {
	// Name is the command name (comm), with the kernel's "\n" and "\\" escapes undone.
	Name string
	// PPid is the parent's PID as the reading /proc sees it; 0 when the parent is outside
	// that PID namespace (or for the initial process).
	PPid HostPID
	// NSpid lists the process's PID in each PID namespace from the one of the /proc mount
	// (NSpid[0], the host PID) down to its own (the last). Since Linux 4.1.
	NSpid []int
	// Uid and Gid are real, effective, saved set and filesystem IDs, as host IDs (the reading
	// process's user namespace).
	Uid, Gid [4]uint32
	// State is the one-letter state code: R, S, D, T, t, Z, X, I, ...
	State string
}

// ParseStatus parses the text of /proc/PID/status. Unknown lines are ignored; Name, State,
// PPid, Uid, Gid and NSpid are required.
func ParseStatus(text string) (Status, error) {
	var s Status
	const (
		haveName = 1 << iota
		haveState
		havePPid
		haveUid
		haveGid
		haveNSpid
		haveAll = 1<<iota - 1
	)
	have := 0
	for line := range strings.SplitSeq(text, "\n") {
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		var bit int
		var err error
		switch key {
		case "Name":
			bit = haveName
			// The kernel prints "Name:\t" then comm, in which it escapes only '\n' and '\\'
			// (proc_task_name); a comm may itself start with a tab or contain spaces.
			s.Name = unescapeName(strings.TrimPrefix(val, "\t"))
		case "State":
			bit = haveState
			f := strings.Fields(val)
			if len(f) == 0 || len(f[0]) != 1 {
				err = errors.New("no state letter")
			} else {
				s.State = f[0]
			}
		case "PPid":
			bit = havePPid
			var n []int
			if n, err = ints(val, 1, 1, 0); err == nil {
				s.PPid = HostPID(n[0])
			}
		case "Uid", "Gid":
			bit = haveUid
			dst := &s.Uid
			if key == "Gid" {
				bit, dst = haveGid, &s.Gid
			}
			f := strings.Fields(val)
			if len(f) != 4 {
				err = fmt.Errorf("%d IDs, want 4", len(f))
				break
			}
			for i := range f {
				var x uint64
				if x, err = strconv.ParseUint(f[i], 10, 32); err != nil {
					break
				}
				dst[i] = uint32(x)
			}
		case "NSpid":
			bit = haveNSpid
			// 32 is MAX_PID_NS_LEVEL: the kernel nests PID namespaces at most that deep.
			s.NSpid, err = ints(val, 1, 33, 1)
		default:
			continue
		}
		if err != nil {
			return Status{}, fmt.Errorf("%w: %s: %v", ErrBadStatus, key, err)
		}
		if have&bit != 0 {
			return Status{}, fmt.Errorf("%w: %s twice", ErrBadStatus, key)
		}
		have |= bit
	}
	if have != haveAll {
		var missing []string
		for i, k := range []string{"Name", "State", "PPid", "Uid", "Gid", "NSpid"} {
			if have&(1<<i) == 0 {
				missing = append(missing, k)
			}
		}
		return Status{}, fmt.Errorf("%w: missing %s", ErrBadStatus, strings.Join(missing, ", "))
	}
	return s, nil
}

// ints parses min..max whitespace-separated decimal ints, each >= lo and < 2^31.
func ints(val string, min, max, lo int) ([]int, error) {
	f := strings.Fields(val)
	if len(f) < min || len(f) > max {
		return nil, fmt.Errorf("%d numbers, want %d..%d", len(f), min, max)
	}
	out := make([]int, len(f))
	for i, x := range f {
		n, err := strconv.ParseInt(x, 10, 32)
		if err != nil || int(n) < lo {
			return nil, fmt.Errorf("bad number %q", x)
		}
		out[i] = int(n)
	}
	return out, nil
}

func unescapeName(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			switch s[i+1] {
			case 'n':
				b.WriteByte('\n')
				i++
				continue
			case '\\':
				b.WriteByte('\\')
				i++
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
