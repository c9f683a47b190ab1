package runtime

import (
	"fmt"
	"slices"
	"strings"
)

// `vpsctl list -o FIELD,...` (vzlist -o): a column per field, from the VPS's status or, for a
// running VPS, its beancounters. A beancounter's name alone is its held value; vzlist's
// suffixes pick the others: .m maxheld, .b barrier, .l limit, .f failcnt.

// statusFields are the fields read from a VPS's status.
var statusFields = []string{"id", "name", "state", "hostname", "domainname", "template", "init_pid", "ip", "boots", "idmap"}

// statsFields are the usage totals of `vpsctl stats`.
var statsFields = []string{"cpu_usage_ns", "memory_bytes", "swap_bytes", "processes"}

// beancounters are the resources `vpsctl stats` reports (cgroup.Counter names).
var beancounters = []string{"numproc", "physpages", "swappages", "cpu"}

var bcSuffixes = []string{"", ".m", ".b", ".l", ".f"}

// ListFieldNames lists every field -o accepts, for --help and errors.
func ListFieldNames() []string {
	names := slices.Clone(statusFields)
	names = append(names, statsFields...)
	for _, b := range beancounters {
		for _, s := range bcSuffixes {
			names = append(names, b+s)
		}
	}
	return names
}

// ParseListFields checks a comma-separated -o list.
func ParseListFields(s string) ([]string, error) {
	var out []string
	known := ListFieldNames()
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if !slices.Contains(known, f) {
			return nil, fmt.Errorf("-o: unknown field %q (fields: %s): %w", f, strings.Join(known, ","), ErrUsage)
		}
		out = append(out, f)
	}
	return out, nil
}

// needsStats reports whether any field comes from the cgroup.
func needsStats(fields []string) bool {
	return slices.ContainsFunc(fields, func(f string) bool { return !slices.Contains(statusFields, f) })
}

// ListRow is one VPS's values for the fields asked, in their order; a value is a string, an
// int64, a uint64, a Limit (Unlimited for no limit), or nil where it does not apply (a stopped
// VPS has no beancounters).
type ListRow []any

// ListFields is List with the -o fields of each VPS.
func (r *Runtime) ListFields(all bool, fields []string) ([]ListRow, error) {
	ss, err := r.List(all)
	if err != nil {
		return nil, err
	}
	rows := make([]ListRow, 0, len(ss))
	for i := range ss {
		s := ss[i]
		var st *Stats
		if needsStats(fields) && s.State == "running" {
			st, _ = statsFor(s) // a VPS that stops meanwhile has none
		}
		row := make(ListRow, 0, len(fields))
		for _, f := range fields {
			row = append(row, fieldValue(s, st, f))
		}
		rows = append(rows, row)
	}
	return rows, nil
}

func fieldValue(s *Status, st *Stats, f string) any {
	switch f {
	case "id":
		return uint64(s.ID)
	case "name":
		return s.Name
	case "state":
		if s.Suspended {
			return s.State + ",suspended"
		}
		return s.State
	case "hostname":
		return s.Hostname
	case "domainname":
		return s.Domainname
	case "template":
		return s.Template
	case "init_pid":
		return int64(s.InitPID)
	case "ip":
		return strings.Join(s.IPs, " ")
	case "boots":
		return int64(s.Boots)
	case "idmap":
		return s.IDMap
	}
	if st == nil {
		return nil
	}
	switch f {
	case "cpu_usage_ns":
		return st.CPUUsageNs
	case "memory_bytes":
		return st.MemoryBytes
	case "swap_bytes":
		return st.SwapBytes
	case "processes":
		return st.Processes
	}
	name, suffix, _ := strings.Cut(f, ".")
	bc, ok := st.Beancounters[name]
	if !ok {
		return nil
	}
	switch suffix {
	case "m":
		return bc.MaxHeld
	case "b":
		return bc.Barrier
	case "l":
		return bc.Limit
	case "f":
		return bc.Failcnt
	}
	return bc.Held
}
