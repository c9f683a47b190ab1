package uid

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
)

func TestParseSubIDs(t *testing.T) {
	in := "# comment\n" +
		"alice:100000:65536\n" +
		"\n" +
		"bob:951968:65536\r\n" +
		"1001:2000000:10\n" +
		"bad line\n" +
		"zero:5000000:0\n" +
		"neg:-1:10\n" +
		"four:1:2:3\n" +
		"huge:4294967290:100\n" +
		"big:99999999999:1\n" +
		"carol:300000:65536" // no final newline
	got, err := ParseSubIDs(strings.NewReader(in), "/etc/subuid")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`/etc/subuid: "alice" 100000:65536`,
		`/etc/subuid: "bob" 951968:65536`,
		`/etc/subuid: "1001" 2000000:10`,
		`/etc/subuid: "huge" 4294967290:5`, // cut at MaxID
		`/etc/subuid: "carol" 300000:65536`,
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("%d: %s, want %s", i, got[i], want[i])
		}
	}
	if _, err := ParseSubIDs(iotest.ErrReader(io.ErrUnexpectedEOF), "x"); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("reader error: %v", err)
	}
}

func TestParseHostAccounts(t *testing.T) {
	in := "root:x:0:0:root:/root:/bin/bash\n" +
		"bob:x:1500000:1500000::/home/bob:/bin/sh\n" +
		"weird\x1bname:x:1600000:1::/:/bin/sh\n" + // kept: leaving it out could hand out its ID
		"+nis::::::\n" +
		"short:x\n" +
		"noid:x:abc:1::/:\n" +
		"invalid:x:4294967295:1::/:\n"
	got, err := ParseHostAccounts(strings.NewReader(in), "/etc/passwd", 7)
	if err != nil {
		t.Fatal(err)
	}
	ids := []HostID{0, 1500000, 1600000}
	if len(got) != len(ids) {
		t.Fatalf("got %v", got)
	}
	for i, id := range ids {
		if got[i].Range != (Range{Host: id, Size: 1}) {
			t.Errorf("%d: %v, want %d", i, got[i], id)
		}
	}
	if !strings.Contains(got[2].Source, `"weird\x1bname"`) {
		t.Errorf("the source does not quote the name: %s", got[2].Source)
	}
	grp, err := ParseHostAccounts(strings.NewReader("wheel:x:10:alice,bob\nstaff:x:1700000:\n"), "/etc/group", 4)
	if err != nil || len(grp) != 2 || grp[1].Range.Host != 1700000 {
		t.Errorf("group: %v %v", grp, err)
	}
}

// TestAllocateSkipsHostIDs is the case: the 14th user useradd adds gets subordinate
// IDs 951968-1017503, across the pool's start; a host user has a UID inside the pool.
func TestAllocateSkipsHostIDs(t *testing.T) {
	sub, _ := ParseSubIDs(strings.NewReader("u14:951968:65536\n"), "/etc/subuid")
	subg, _ := ParseSubIDs(strings.NewReader("g:1083040:100\n"), "/etc/subgid")
	pw, _ := ParseHostAccounts(strings.NewReader("ldapish:x:1150000:1::/:/bin/sh\n"), "/etc/passwd", 7)
	res := append(append(sub, subg...), pw...)
	var used []Range
	var got []Range
	for range 4 {
		r, err := Allocate(DefaultPool, append(used, Reserved(res)...), 65536)
		if err != nil {
			t.Fatal(err)
		}
		if c := Conflicts(r, res); len(c) > 0 {
			t.Fatalf("allocated %s over %v", r, c)
		}
		used = append(used, r)
		got = append(got, r)
	}
	want := []Range{{1017504, 65536}, {1083140, 65536}, {1150001, 65536}, {1215537, 65536}}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("allocation %d: %s, want %s", i, got[i], want[i])
		}
	}
	// A pool taken whole by reservations is full: exit 93's error.
	pool := Pool{Base: 2000000, Size: 131072}
	res = []Reservation{{Range{2000000, 70000}, "a"}, {Range{2070000, 61072}, "b"}}
	if _, err := Allocate(pool, Reserved(res), 65536); !errors.Is(err, ErrPoolFull) {
		t.Errorf("pool covered by reservations: %v, want ErrPoolFull", err)
	}
}

func TestConflicts(t *testing.T) {
	res := []Reservation{
		{Range{1100000, 10}, "c"},
		{Range{951968, 65536}, "a"},
		{Range{1065535, 1}, "b"},
		{Range{1065536, 1}, "outside"},
		{Range{5, 0}, "empty"},
	}
	got := Conflicts(Range{1000000, 65536}, res)
	if len(got) != 2 || got[0].Source != "a" || got[1].Source != "b" {
		t.Errorf("Conflicts = %v", got)
	}
	if got := Conflicts(Range{3000000, 65536}, res); got != nil {
		t.Errorf("no overlap: %v", got)
	}
}

func FuzzParseSubIDs(f *testing.F) {
	f.Add("alice:100000:65536\nbob:1:1\n# c\n")
	f.Add("x:4294967295:1\ny:0:4294967295\n")
	f.Add("a:b:c\n::\n:1:1")
	f.Fuzz(func(t *testing.T, s string) {
		res, err := ParseSubIDs(strings.NewReader(s), "f")
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.Range.Size == 0 || uint64(r.Range.Host)+uint64(r.Range.Size)-1 > MaxID {
				t.Errorf("invalid range %v from %q", r, s)
			}
		}
	})
}

func FuzzParseHostAccounts(f *testing.F) {
	f.Add("root:x:0:0:root:/root:/bin/bash\n", 7)
	f.Add("g:x:10:a,b\n", 4)
	f.Add("::::\n:x:1\n", 1)
	f.Fuzz(func(t *testing.T, s string, fields int) {
		if fields < 0 || fields > 16 {
			return
		}
		res, err := ParseHostAccounts(strings.NewReader(s), "f", fields)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.Range.Size != 1 || uint64(r.Range.Host) > MaxID {
				t.Errorf("bad reservation %v from %q", r, s)
			}
		}
	})
}

func TestReadHostReservations(t *testing.T) {
	etc := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(etc, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("subuid", "alice:951968:65536\n")
	write("passwd", "root:x:0:0::/root:/bin/sh\nbob:x:1500000:1500000::/:/bin/sh\n")
	write("group", "g:x:1700000:\n")
	// No subgid: it reserves nothing.
	res, err := ReadHostReservations(etc)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range res {
		got = append(got, r.String())
	}
	if len(res) != 4 || res[0].Range != (Range{951968, 65536}) || res[2].Range != (Range{1500000, 1}) || res[3].Range != (Range{1700000, 1}) {
		t.Errorf("ReadHostReservations = %v", got)
	}
	if !strings.HasPrefix(res[0].Source, filepath.Join(etc, "subuid")+": ") {
		t.Errorf("source %q does not name the file", res[0].Source)
	}
	// A subgid that cannot be read (a directory) is an error, not "nothing reserved".
	if err := os.Mkdir(filepath.Join(etc, "subgid"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadHostReservations(etc); err == nil {
		t.Error("an unreadable subgid was taken as reserving nothing")
	}
}
