package uid

import (
	"slices"

	"github.com/vpsctl/vpsctl/internal/safetext"
)

// Entry is one row of a VPS's UID table.
type Entry struct {
	VPSID     GuestID       `json:"vps_uid"`
	HostID    HostID        `json:"host_uid"`
	User      safetext.Text `json:"user"` // from the VPS's own files: escaped in tables and JSON
	Processes int           `json:"processes"`
}

// Table builds the UID table of a VPS whose user namespace maps r: one row per guest ID that
// has a name in accounts or has running processes, sorted by guest ID.
//
// When several accounts share an ID the first one in file order names it, as getpwuid(3) would.
// Accounts whose ID r does not map are left out: such an ID can own no process and no file
// (the kernel shows those as the overflow ID). Process counts keyed by host IDs outside r are
// ignored: they belong to the host or to other VPSs.
func Table(r Range, accounts []Account, procsByHostUID map[HostID]int) []Entry {
	rows := make(map[GuestID]*Entry)
	row := func(g GuestID, h HostID) *Entry {
		e := rows[g]
		if e == nil {
			e = &Entry{VPSID: g, HostID: h}
			rows[g] = e
		}
		return e
	}
	for _, a := range accounts {
		h, ok := r.ToHost(a.ID)
		if !ok {
			continue
		}
		if e := row(a.ID, h); e.User == "" {
			e.User = safetext.Text(a.Name)
		}
	}
	for h, n := range procsByHostUID {
		g, ok := r.ToGuest(h)
		if !ok || n <= 0 {
			continue
		}
		row(g, h).Processes += n
	}
	out := make([]Entry, 0, len(rows))
	for _, e := range rows {
		out = append(out, *e)
	}
	slices.SortFunc(out, func(a, b Entry) int {
		switch {
		case a.VPSID < b.VPSID:
			return -1
		case a.VPSID > b.VPSID:
			return 1
		}
		return 0
	})
	return out
}
