package runtime

import (
	"cmp"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/vpsctl/vpsctl/container"
	"github.com/vpsctl/vpsctl/store"
)

// `vpsctl list -o FIELD,...` (vzlist -o): a column per field, from the VPS's status or, for a
// running VPS, its beancounters. A beancounter's name alone is its held value; vzlist's
// suffixes pick the others: .m maxheld, .b barrier, .l limit, .f failcnt.

// statusFields are the fields read from a VPS's status.
var statusFields = []string{"id", "name", "state", "hostname", "domainname", "template", "init_pid", "ip", "boots", "idmap", "onboot", "bootorder"}

// statsFields are the usage totals of `vpsctl stats`.
var statsFields = []string{"cpu_usage_ns", "memory_bytes", "swap_bytes", "processes"}

// beancounters are the resources `vpsctl stats` reports (cgroup.Counter names).
var beancounters = []string{"numproc", "physpages", "swappages", "cpu"}

var bcSuffixes = []string{"", ".m", ".b", ".l", ".f"}

// diskFields are vzlist's disk columns, in KiB as vzlist has them: diskspace is the usage,
// .s and .h the soft and hard limits; diskinodes the inodes in use (of a running VPS: counting
// them reads its file tree). None for a VPS without a disk limit.
var diskFields = []string{"diskspace", "diskspace.s", "diskspace.h", "diskinodes"}

// fieldAliases are vzlist's names of vpsctl's fields, so that a vzlist user's -o and -s work
// as typed: vzlist -o ctid,status,ostemplate is vpsctl's id,state,template.
var fieldAliases = map[string]string{"ctid": "id", "veid": "id", "vpsid": "id", "status": "state", "ostemplate": "template"}

// ListFieldAliases lists vzlist's names -o also accepts, as "alias=field", for --help.
func ListFieldAliases() []string {
	var out []string
	for a, f := range fieldAliases {
		out = append(out, a+"="+f)
	}
	slices.Sort(out)
	return out
}

// ListFieldNames lists every field -o accepts, for --help and errors.
func ListFieldNames() []string {
	names := slices.Clone(statusFields)
	names = append(names, statsFields...)
	names = append(names, diskFields...)
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
		if _, alias := fieldAliases[f]; !alias && !slices.Contains(known, f) {
			return nil, fmt.Errorf("-o: unknown field %q (fields: %s): %w", f, strings.Join(known, ","), ErrUsage)
		}
		out = append(out, f)
	}
	return out, nil
}

// canonical is field f's own name (f, or what the alias f stands for).
func canonical(f string) string {
	if c, ok := fieldAliases[f]; ok {
		return c
	}
	return f
}

// needsStats reports whether any field comes from the cgroup.
func needsStats(fields []string) bool {
	return slices.ContainsFunc(fields, func(f string) bool {
		return !slices.Contains(statusFields, canonical(f)) && !slices.Contains(diskFields, f)
	})
}

// ListRow is one VPS's values for the fields asked, in their order; a value is a string, an
// int64, a uint64, a Limit (Unlimited for no limit), or nil where it does not apply (a stopped
// VPS has no beancounters).
type ListRow []any

// ListOptions choose and order the VPSs of a list, as vzlist's options do.
type ListOptions struct {
	All     bool     // stopped VPSs too (vzlist -a)
	Stopped bool     // only VPSs that do not run (vzlist -S)
	Match   []string // only these: IDs, or shell patterns of names (web*); any state unless Stopped
	SortBy  string   // a field (-o's names) to sort by; "": by ID
	Reverse bool     // sort in reverse (vzlist -s -FIELD)
}

// Select returns the statuses of the VPSs o chooses, in its order. A VPS ID of o.Match that
// does not exist is store.ErrNotExist, as for any command naming one; a pattern may match
// nothing.
func (r *Runtime) Select(o ListOptions) ([]*Status, error) {
	var sortField []string
	if o.SortBy != "" {
		f, err := ParseListFields(o.SortBy)
		if err != nil || len(f) != 1 {
			return nil, fmt.Errorf("sort by %q: not one field (fields: %s): %w", o.SortBy, strings.Join(ListFieldNames(), ","), ErrUsage)
		}
		sortField = f
	}
	var ids []container.ID
	var patterns []string
	for _, m := range o.Match {
		if container.LooksNumeric(m) {
			id, err := container.ParseID(m)
			if err != nil {
				return nil, err
			}
			if !r.St.Exists(id) {
				return nil, fmt.Errorf("VPS %d: %w", id, store.ErrNotExist)
			}
			ids = append(ids, id)
			continue
		}
		if _, err := path.Match(m, ""); err != nil {
			return nil, fmt.Errorf("pattern %q: %v: %w", m, err, ErrUsage)
		}
		patterns = append(patterns, m)
	}
	ss, err := r.List(o.All || o.Stopped || len(o.Match) > 0)
	if err != nil {
		return nil, err
	}
	out := ss[:0]
	for _, s := range ss {
		if o.Stopped && s.State == "running" {
			continue
		}
		if len(o.Match) > 0 && !slices.Contains(ids, s.ID) && !slices.ContainsFunc(patterns, func(p string) bool {
			ok, _ := path.Match(p, s.Name)
			return ok && s.Name != ""
		}) {
			continue
		}
		out = append(out, s)
	}
	if sortField != nil {
		keys := r.Rows(out, sortField)
		idx := make([]int, len(out))
		for i := range idx {
			idx[i] = i
		}
		slices.SortStableFunc(idx, func(a, b int) int {
			c := compareValues(keys[a][0], keys[b][0])
			if c == 0 {
				c = cmp.Compare(out[a].ID, out[b].ID)
			}
			if o.Reverse {
				return -c
			}
			return c
		})
		sorted := make([]*Status, len(out))
		for i, j := range idx {
			sorted[i] = out[j]
		}
		out = sorted
	} else if o.Reverse {
		slices.Reverse(out)
	}
	return out, nil
}

// compareValues orders two list values: none first, then numbers by value, strings as text.
func compareValues(a, b any) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return -1
	case b == nil:
		return 1
	}
	num := func(v any) (float64, bool) {
		switch x := v.(type) {
		case uint64:
			return float64(x), true
		case int64:
			return float64(x), true
		case Limit:
			return float64(x), true
		}
		return 0, false
	}
	if x, ok := num(a); ok {
		if y, ok := num(b); ok {
			return cmp.Compare(x, y)
		}
	}
	return strings.Compare(fmt.Sprint(a), fmt.Sprint(b))
}

// Rows are the -o fields of each of the VPSs ss (from Select).
func (r *Runtime) Rows(ss []*Status, fields []string) []ListRow {
	rows := make([]ListRow, 0, len(ss))
	for _, s := range ss {
		var st *Stats
		if needsStats(fields) && s.State == "running" {
			st, _ = r.statsFor(s) // a VPS that stops meanwhile has none
		}
		var du *DiskUsage
		if slices.ContainsFunc(fields, func(f string) bool { return slices.Contains(diskFields, f) }) {
			du, _ = r.diskUsage(s, slices.Contains(fields, "diskinodes") && s.State == "running")
		}
		row := make(ListRow, 0, len(fields))
		for _, f := range fields {
			if slices.Contains(diskFields, f) {
				row = append(row, diskValue(du, f))
				continue
			}
			row = append(row, fieldValue(s, st, f))
		}
		rows = append(rows, row)
	}
	return rows
}

func fieldValue(s *Status, st *Stats, f string) any {
	f = canonical(f)
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
	case "onboot":
		return cmp.Or(s.OnBoot, "no")
	case "bootorder":
		return s.BootOrder
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

// diskValue is disk field f of usage du (nil: none).
func diskValue(du *DiskUsage, f string) any {
	if du == nil {
		return nil
	}
	switch f {
	case "diskspace":
		return du.UsedBytes >> 10
	case "diskspace.s":
		return du.SoftBytes >> 10
	case "diskspace.h":
		return du.HardBytes >> 10
	}
	if du.Inodes == nil {
		return nil
	}
	return *du.Inodes
}
