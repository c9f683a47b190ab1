package cgroup

import (
	"fmt"
	"math"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/vpsctl/vpsctl/internal/sysfile"
)

// ParseSize parses a size as vzctl writes it: decimal digits with an
// optional binary suffix K, M, G or T (K = 1024; either case), or
// "unlimited", which is -1. Anything else, including signs, spaces and
// values that overflow int64, wraps ErrBadValue.
func ParseSize(s string) (int64, error) {
	if s == "unlimited" {
		return -1, nil
	}
	num, mult := s, int64(1)
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 'K', 'k':
			mult = 1 << 10
		case 'M', 'm':
			mult = 1 << 20
		case 'G', 'g':
			mult = 1 << 30
		case 'T', 't':
			mult = 1 << 40
		}
		if mult != 1 {
			num = s[:n-1]
		}
	}
	if !isDigits(num) {
		return 0, fmt.Errorf("size %q: want digits with an optional K, M, G or T suffix, or \"unlimited\": %w", s, ErrBadValue)
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil || v > math.MaxInt64/mult {
		return 0, fmt.Errorf("size %q: out of range: %w", s, ErrBadValue)
	}
	return v * mult, nil
}

// ProcCgroupLine is one line of /proc/PID/cgroup.
type ProcCgroupLine struct {
	ID          int      // hierarchy ID; 0 is the v2 unified hierarchy
	Controllers []string // v1 controllers, "name=X" for named hierarchies; none on v2
	Path        string   // absolute within the reader's cgroup namespace
}

// ParseProcCgroup parses the text of /proc/PID/cgroup
// ("hierarchy-ID:controller-list:path" per line). The path is the rest of
// the line, since group names may contain ':'.
func ParseProcCgroup(text string) ([]ProcCgroupLine, error) {
	var out []ProcCgroupLine
	for i, line := range strings.Split(text, "\n") {
		if line == "" {
			continue
		}
		bad := func(why string) error {
			return fmt.Errorf("/proc/PID/cgroup line %d %q: %s: %w", i+1, line, why, ErrBadValue)
		}
		id, rest, ok := strings.Cut(line, ":")
		ctrls, p, ok2 := strings.Cut(rest, ":")
		if !ok || !ok2 {
			return nil, bad("want ID:controllers:path")
		}
		n, err := strconv.Atoi(id)
		if !isDigits(id) || err != nil {
			return nil, bad("hierarchy ID is not a number")
		}
		if !strings.HasPrefix(p, "/") {
			return nil, bad("path is not absolute")
		}
		l := ProcCgroupLine{ID: n, Path: p}
		if ctrls != "" {
			l.Controllers = strings.Split(ctrls, ",")
			if slices.Contains(l.Controllers, "") {
				return nil, bad("empty controller name")
			}
		}
		out = append(out, l)
	}
	return out, nil
}

// ProcGroup returns the group of process pid relative to the hierarchy root
// ("" for the root itself): on v1 hosts from the pids line of
// /proc/PID/cgroup (memory if pids is not mounted), on v2 from the "0::"
// line. Paths are as seen from the caller's cgroup namespace.
func ProcGroup(pid int) (string, error) {
	v2, err := unified()
	if err != nil {
		return "", err
	}
	lines, err := readProcCgroup(pid)
	if err != nil {
		return "", err
	}
	if v2 {
		return groupIn(lines, "")
	}
	g, err := groupIn(lines, "pids")
	if err != nil {
		g, err = groupIn(lines, "memory")
	}
	return g, err
}

func readProcCgroup(pid int) ([]ProcCgroupLine, error) {
	data, err := sysfile.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return nil, err
	}
	return ParseProcCgroup(string(data))
}

// groupIn returns the relative group path in the hierarchy holding
// controller ctrl, or in the v2 hierarchy when ctrl is "".
func groupIn(lines []ProcCgroupLine, ctrl string) (string, error) {
	for _, l := range lines {
		if (ctrl == "" && l.ID == 0) || (ctrl != "" && slices.Contains(l.Controllers, ctrl)) {
			return strings.TrimPrefix(path.Clean(l.Path), "/"), nil
		}
	}
	if ctrl == "" {
		ctrl = "cgroup2"
	}
	return "", fmt.Errorf("%s: %w", ctrl, ErrNoGroup)
}

// parseKeyed parses a flat-keyed cgroup file ("key value" per line, as
// cgroup.events, cpu.stat, memory.events, pids.events).
func parseKeyed(text string) (map[string]uint64, error) {
	m := make(map[string]uint64)
	for line := range strings.SplitSeq(text, "\n") {
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, " ")
		if !ok || k == "" {
			return nil, fmt.Errorf("line %q: want \"key value\": %w", line, ErrBadValue)
		}
		n, err := parseValue(v)
		if err != nil {
			return nil, err
		}
		m[k] = n
	}
	return m, nil
}

// parseValue parses a single cgroup number; v2's "max" is Unlimited.
func parseValue(s string) (uint64, error) {
	if s == "max" {
		return Unlimited, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || !isDigits(s) {
		return 0, fmt.Errorf("value %q: %w", s, ErrBadValue)
	}
	return n, nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Place is where a process joins a group without a move by PID (see Manager.TaskFiles): it is
// cloned into Dir, the group's directory in the cgroup2 tree ("" on a host without one; clone3's
// CLONE_INTO_CGROUP), and writes 0 to each of Tasks, the v1 hierarchies' tasks files, while it
// is one thread.
type Place struct {
	Dir   string
	Tasks []string
}

// OpenDir opens p.Dir for clone3's CLONE_INTO_CGROUP (SysProcAttr.CgroupFD); the caller
// closes it.
func (p Place) OpenDir() (int, error) { return openDir(p.Dir) }

// JoinPlace is where a process joining group m beside process pid (a VPS's init) goes: m's
// own group, except on cgroup v2, where the group pid is in now is taken if it lies within m's.
// A guest's own systemd moves itself to a leaf of its group (/init.scope) and enables
// controllers in the group, which then refuses every process (EBUSY: no process in an inner
// node once controllers are enabled); the init's leaf takes one. A leaf outside m's group
// (impossible for a guest, which sees no further up) is never taken.
func JoinPlace(m Manager, pid int) Place {
	f2 := asFS2(m)
	if f2 == nil {
		return Place{Dir: Cgroup2Dir(m), Tasks: m.TaskFiles()}
	}
	lines, err := readProcCgroup(pid)
	if err != nil {
		return Place{Dir: f2.dir}
	}
	return Place{Dir: leafDir(f2, lines)}
}

// leafDir is JoinPlace's directory for v2 group f2 and the /proc/PID/cgroup lines of the
// process beside which one joins.
func leafDir(f2 *fs2, lines []ProcCgroupLine) string {
	g, err := groupIn(lines, "")
	if err != nil {
		return f2.dir
	}
	dir := filepath.Join(cgroupRoot, g)
	if dir == f2.dir || !IsDescendant(f2.dir, dir) {
		return f2.dir
	}
	return dir
}

// asFS2 is m's cgroup v2 group, nil for v1.
func asFS2(m Manager) *fs2 {
	switch g := m.(type) {
	case *fs2:
		return g
	case *sdScope:
		return g.fs2
	}
	return nil
}
