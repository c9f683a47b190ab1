package uid

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vpsctl/vpsctl/internal/sysfile"
)

// A VPS's range must not hold host IDs that belong to someone else on the host: a host user
// whose UID, or whose subordinate range (/etc/subuid, /etc/subgid, handed out by useradd for
// rootless containers), falls in a VPS's range can signal that VPS's processes and own its
// files. Allocation skips such ranges (pass Reserved(...) with the used ranges to Allocate),
// and Conflicts names them for a VPS allocated before they appeared.

// MinPoolBase is the lowest first ID a pool may have: IDs below 65536 are the host's own
// accounts (root, system users, the users useradd numbers from 1000).
const MinPoolBase = 65536

// Reservation is a span of host IDs that belongs to something on the host, and what.
type Reservation struct {
	Range  Range
	Source string // e.g. `/etc/subuid: "alice"`, `/etc/passwd: "bob" (uid 1500000)`
}

func (r Reservation) String() string { return r.Source + " " + r.Range.String() }

// ParseSubIDs reads subuid(5)/subgid(5) lines "owner:first:count" (owner a name or an ID) and
// returns each as a Reservation whose Source names file and owner. It skips what it cannot
// use, as shadow's tools do: blank lines, comments, lines without three fields, IDs that are
// not plain decimal uint32s, count 0. A range that runs past MaxID is cut at MaxID (it cannot
// be used beyond it anyway). The only errors are the reader's.
func ParseSubIDs(r io.Reader, file string) ([]Reservation, error) {
	var out []Reservation
	err := eachLine(r, func(line string) {
		f := strings.Split(line, ":")
		if len(f) != 3 {
			return
		}
		first, err1 := parseID(f[1])
		count, err2 := parseID(f[2])
		if err1 != nil || err2 != nil || count == 0 || first > MaxID {
			return
		}
		if uint64(first)+uint64(count)-1 > MaxID {
			count = uint32(MaxID - uint64(first) + 1)
		}
		out = append(out, Reservation{Range{Host: HostID(first), Size: count}, fmt.Sprintf("%s: %q", file, f[0])})
	})
	return out, err
}

// ParseHostAccounts reads the host's passwd(5) (fields 7) or group(5) (fields 4) and returns
// each account's ID as a one-ID Reservation. Unlike ParsePasswd (a tenant's file, for
// display), it keeps every line whose third field is an ID, whatever its name: leaving an
// account out here could hand its ID to a VPS. The only errors are the reader's.
func ParseHostAccounts(r io.Reader, file string, fields int) ([]Reservation, error) {
	var out []Reservation
	err := eachLine(r, func(line string) {
		f := strings.SplitN(line, ":", fields)
		if len(f) < 3 || f[0] == "" || f[0][0] == '+' || f[0][0] == '-' {
			return
		}
		id, err := parseID(f[2])
		if err != nil || id == NoID {
			return
		}
		out = append(out, Reservation{Range{Host: HostID(id), Size: 1}, fmt.Sprintf("%s: %q (id %d)", file, f[0], id)})
	})
	return out, err
}

// eachLine calls f with each line of r that is not blank or a comment, without its newline
// (or "\r\n"); lines longer than maxLine are skipped.
func eachLine(r io.Reader, f func(string)) error {
	br := bufio.NewReaderSize(r, 4096)
	for {
		line, err := readLine(br)
		line = strings.TrimSuffix(line, "\r")
		if t := strings.TrimSpace(line); t != "" && t[0] != '#' {
			f(line)
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// Reserved returns the ranges of res, to pass to Allocate together with the VPSs' own:
//
//	rg, err := uid.Allocate(pool, append(used, uid.Reserved(res)...), size)
func Reserved(res []Reservation) []Range {
	out := make([]Range, 0, len(res))
	for _, r := range res {
		out = append(out, r.Range)
	}
	return out
}

// Conflicts returns the reservations that overlap r, sorted by first ID: what a warning on
// start names for a VPS whose range was allocated before they appeared.
func Conflicts(r Range, res []Reservation) []Reservation {
	var out []Reservation
	for _, x := range res {
		if x.Range.Overlaps(r) {
			out = append(out, x)
		}
	}
	slices.SortStableFunc(out, func(a, b Reservation) int {
		switch {
		case a.Range.Host < b.Range.Host:
			return -1
		case a.Range.Host > b.Range.Host:
			return 1
		}
		return 0
	})
	return out
}

// ReadHostReservations reads the host's subuid, subgid, passwd and group files in etc ("/etc"
// on a host; a directory of a test's elsewhere) and returns everything they reserve. A missing
// file reserves nothing. These are the host's own files, written by its administrator and
// tools: the one place this package reads files itself (a tenant's are opened by callers).
// Accounts that come from other NSS sources (LDAP, sssd) are not in them.
func ReadHostReservations(etc string) ([]Reservation, error) {
	var out []Reservation
	for _, f := range []struct {
		name  string
		parse func(io.Reader, string) ([]Reservation, error)
	}{
		{"subuid", ParseSubIDs},
		{"subgid", ParseSubIDs},
		{"passwd", func(r io.Reader, n string) ([]Reservation, error) { return ParseHostAccounts(r, n, 7) }},
		{"group", func(r io.Reader, n string) ([]Reservation, error) { return ParseHostAccounts(r, n, 4) }},
	} {
		p := filepath.Join(etc, f.name)
		b, err := sysfile.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		res, err := f.parse(bytes.NewReader(b), p)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", p, err)
		}
		out = append(out, res...)
	}
	return out, nil
}
