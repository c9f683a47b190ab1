package uid

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestRangeTranslate(t *testing.T) {
	r := Range{Host: 1000000, Size: 65536}
	for _, c := range []struct {
		g  GuestID
		h  HostID
		ok bool
	}{{0, 1000000, true}, {65535, 1065535, true}, {65536, 0, false}} {
		h, ok := r.ToHost(c.g)
		if h != c.h || ok != c.ok {
			t.Errorf("ToHost(%d) = %d, %v; want %d, %v", c.g, h, ok, c.h, c.ok)
		}
	}
	for _, c := range []struct {
		h  HostID
		g  GuestID
		ok bool
	}{{999999, 0, false}, {1000000, 0, true}, {1065535, 65535, true}, {1065536, 0, false}, {NoID, 0, false}} {
		g, ok := r.ToGuest(c.h)
		if g != c.g || ok != c.ok {
			t.Errorf("ToGuest(%d) = %d, %v; want %d, %v", c.h, g, ok, c.g, c.ok)
		}
	}
	if h, ok := Identity.ToHost(MaxID); !ok || h != MaxID {
		t.Errorf("Identity.ToHost(MaxID) = %d, %v", h, ok)
	}
	if _, ok := Identity.ToGuest(NoID); ok {
		t.Error("Identity maps the invalid ID 4294967295")
	}
	if Identity.String() != "0:4294967295" {
		t.Errorf("Identity = %s", Identity)
	}
	if _, err := ParseRange(Identity.String()); err != nil {
		t.Errorf("Identity does not parse: %v", err)
	}
}

func TestOverlaps(t *testing.T) {
	a := Range{Host: 100, Size: 10}
	for _, c := range []struct {
		b    Range
		want bool
	}{
		{Range{90, 10}, false}, {Range{90, 11}, true}, {Range{109, 1}, true},
		{Range{110, 5}, false}, {Range{0, math.MaxUint32}, true}, {Range{105, 0}, false},
	} {
		if got := a.Overlaps(c.b); got != c.want {
			t.Errorf("%v.Overlaps(%v) = %v", a, c.b, got)
		}
		if got := c.b.Overlaps(a); got != c.want {
			t.Errorf("%v.Overlaps(%v) = %v (not symmetric)", c.b, a, got)
		}
	}
}

func TestParseRange(t *testing.T) {
	good := map[string]Range{
		"1000000:65536":    {1000000, 65536},
		"0:1":              {0, 1},
		"4294967294:1":     {4294967294, 1},
		"0:4294967295":     {0, 4294967295},
		"4294901759:65536": {4294901759, 65536},
	}
	for s, want := range good {
		r, err := ParseRange(s)
		if err != nil || r != want {
			t.Errorf("ParseRange(%q) = %v, %v; want %v", s, r, err, want)
		}
	}
	for _, s := range []string{"", ":", "1", "1:", ":1", "1:0", "-1:5", "+1:5", "1:+5", " 1:5", "1:5 ",
		"0x10:5", "00100:10", "100:010", "0:0", "1:2:3", "4294967295:1", "4294967294:2", "1:4294967295", "4294967296:1", "0:4294967296", "1_0:5"} {
		if r, err := ParseRange(s); !errors.Is(err, ErrBadRange) {
			t.Errorf("ParseRange(%q) = %v, %v; want ErrBadRange", s, r, err)
		}
	}
}

func TestAllocate(t *testing.T) {
	pool := Pool{Base: 1000, Size: 100}
	cases := []struct {
		name string
		used []Range
		size uint32
		want Range
	}{
		{"empty", nil, 10, Range{1000, 10}},
		{"after first", []Range{{1000, 10}}, 10, Range{1010, 10}},
		{"gap fits", []Range{{1030, 10}, {1000, 10}}, 20, Range{1010, 20}},
		{"gap too small", []Range{{1030, 10}, {1000, 10}}, 21, Range{1040, 21}},
		{"outside pool ignored", []Range{{0, 1000}, {1100, 50}, {5000, 1}}, 100, Range{1000, 100}},
		{"straddles base", []Range{{990, 15}}, 5, Range{1005, 5}},
		{"overlapping used", []Range{{1000, 20}, {1010, 5}, {1015, 20}}, 5, Range{1035, 5}},
		{"empty used ignored", []Range{{1000, 0}}, 5, Range{1000, 5}},
		{"exact end", []Range{{1000, 90}}, 10, Range{1090, 10}},
	}
	for _, c := range cases {
		got, err := Allocate(pool, c.used, c.size)
		if err != nil || got != c.want {
			t.Errorf("%s: Allocate = %v, %v; want %v", c.name, got, err, c.want)
		}
	}
	_, err := Allocate(pool, []Range{{1000, 91}}, 10)
	if !errors.Is(err, ErrPoolFull) || !strings.Contains(err.Error(), "pool 1000:100") {
		t.Errorf("full pool: %v", err)
	}
	_, err = Allocate(DefaultPool, []Range{{DefaultPool.Base, DefaultPool.Size}}, 65536)
	if !errors.Is(err, ErrPoolFull) || !strings.Contains(err.Error(), "pool 1000000:1073741824") {
		t.Errorf("full default pool: %v", err)
	}
	if _, err := Allocate(pool, nil, 0); !errors.Is(err, ErrBadRange) {
		t.Errorf("size 0: %v", err)
	}
	if _, err := Allocate(Pool{Base: 4294967200, Size: 200}, nil, 1); !errors.Is(err, ErrBadRange) {
		t.Errorf("pool past MaxID: %v", err)
	}
	// Allocating one after another never overlaps.
	var used []Range
	for i := 0; i < 10; i++ {
		r, err := Allocate(pool, used, 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range used {
			if r.Overlaps(u) {
				t.Fatalf("%v overlaps %v", r, u)
			}
		}
		used = append(used, r)
	}
	if _, err := Allocate(pool, used, 1); !errors.Is(err, ErrPoolFull) {
		t.Errorf("after filling: %v", err)
	}
}

func TestParsePasswd(t *testing.T) {
	in := `# comment
root:x:0:0:root:/root:/bin/bash

daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
garbage line
short:x:5:5
+nis::::::
bad:x:abc:1::/:/bin/sh
neg:x:-1:1::/:/bin/sh
max:x:4294967295:1::/:/bin/sh
big:x:4294967296:1::/:/bin/sh
:x:7:7::/:/bin/sh
esc` + "\x1b[31m" + `:x:8:8::/:/bin/sh
crlf:x:9:9::/:/bin/sh` + "\r" + `
toor:x:0:0::/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
long:x:10:10:` + strings.Repeat("g", 100<<10) + `:/:/bin/sh
last:x:1000:1000:with:colons:in:shell`
	got, err := ParsePasswd(strings.NewReader(in))
	want := []Account{{"root", 0}, {"daemon", 1}, {"crlf", 9}, {"toor", 0}, {"nobody", 65534}, {"last", 1000}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("ParsePasswd = %v, %v\nwant %v", got, err, want)
	}
	g, err := ParseGroup(strings.NewReader("root:x:0:\nsudo:x:27:alice,bob\nbad:x:1\nusers:x:100:"))
	if wantG := []Account{{"root", 0}, {"sudo", 27}, {"users", 100}}; err != nil || !reflect.DeepEqual(g, wantG) {
		t.Errorf("ParseGroup = %v, %v", g, err)
	}
	readErr := errors.New("disk on fire")
	if _, err := ParsePasswd(errReader{readErr}); !errors.Is(err, readErr) {
		t.Errorf("reader error: %v", err)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestTable(t *testing.T) {
	r := Range{Host: 1000000, Size: 65536}
	accounts := []Account{{"root", 0}, {"toor", 0}, {"www-data", 33}, {"nobody", 65534}, {"unmapped", 70000}}
	procs := map[HostID]int{1000000: 3, 1001000: 2, 0: 50, 999999: 1, 1065536: 4, 1000033: 0}
	got := Table(r, accounts, procs)
	want := []Entry{
		{VPSID: 0, HostID: 1000000, User: "root", Processes: 3},
		{VPSID: 33, HostID: 1000033, User: "www-data"},
		{VPSID: 1000, HostID: 1001000, Processes: 2},
		{VPSID: 65534, HostID: 1065534, User: "nobody"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Table =\n%v\nwant\n%v", got, want)
	}
	if got := Table(r, nil, nil); len(got) != 0 {
		t.Errorf("empty table = %v", got)
	}
}
