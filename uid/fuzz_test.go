package uid

import (
	"errors"
	"strings"
	"testing"
)

func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"1000000:65536", "0:4294967295", "4294967294:1", "4294967295:1", "1:0", "", ":", "01:1", "1:2:3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRange(s)
		if err != nil {
			if !errors.Is(err, ErrBadRange) {
				t.Fatalf("ParseRange(%q): error %v does not wrap ErrBadRange", s, err)
			}
			return
		}
		if r.Size == 0 || uint64(r.Host)+uint64(r.Size)-1 > MaxID {
			t.Fatalf("ParseRange(%q) accepted invalid %v", s, r)
		}
		if r.String() != s {
			t.Fatalf("ParseRange(%q) = %v: two spellings of one range", s, r)
		}
		r2, err := ParseRange(r.String())
		if err != nil || r2 != r {
			t.Fatalf("round trip %q -> %v -> %q -> %v, %v", s, r, r.String(), r2, err)
		}
	})
}

func FuzzParsePasswd(f *testing.F) {
	for _, s := range []string{
		"root:x:0:0:root:/root:/bin/bash\n",
		"# c\n\n+::::::\nbad\nx:x:4294967295:0::/:\n",
		"a:x:1:1::/:/bin/sh\r\nb:x:2:2::/:/bin/sh",
		"root:x:0:\nsudo:x:27:alice",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, parse := range []func(*strings.Reader) ([]Account, error){
			func(r *strings.Reader) ([]Account, error) { return ParsePasswd(r) },
			func(r *strings.Reader) ([]Account, error) { return ParseGroup(r) },
		} {
			accts, err := parse(strings.NewReader(s))
			if err != nil {
				t.Fatalf("error from an in-memory reader: %v", err)
			}
			for _, a := range accts {
				if a.Name == "" || a.ID == NoID || strings.ContainsAny(a.Name, ":\n") {
					t.Fatalf("bad account %+v", a)
				}
			}
		}
	})
}

// FuzzTranslate checks that translation is a bijection between 0..Size-1 and the range's host
// IDs for arbitrary (even malformed) ranges.
func FuzzTranslate(f *testing.F) {
	f.Add(uint32(1000000), uint32(65536), uint32(0), uint32(1000000))
	f.Add(uint32(0), uint32(4294967295), uint32(4294967294), uint32(4294967295))
	f.Add(uint32(4294967295), uint32(4294967295), uint32(1), uint32(5))
	f.Add(uint32(4294967290), uint32(10), uint32(5), uint32(4294967295))
	f.Fuzz(func(t *testing.T, host, size, g, h uint32) {
		r := Range{Host: HostID(host), Size: size}
		if hh, ok := r.ToHost(GuestID(g)); ok {
			if hh == NoID {
				t.Fatalf("%v.ToHost(%d) = invalid ID", r, g)
			}
			if !r.Overlaps(Range{Host: hh, Size: 1}) {
				t.Fatalf("%v.ToHost(%d) = %d outside the range", r, g, hh)
			}
			if back, ok := r.ToGuest(hh); !ok || back != GuestID(g) {
				t.Fatalf("%v: guest %d -> host %d -> guest %d, %v", r, g, hh, back, ok)
			}
		} else if g < size && uint64(host)+uint64(g) <= MaxID {
			t.Fatalf("%v.ToHost(%d) refused a mapped ID", r, g)
		}
		if gg, ok := r.ToGuest(HostID(h)); ok {
			if uint32(gg) >= size {
				t.Fatalf("%v.ToGuest(%d) = %d past the size", r, h, gg)
			}
			if back, ok := r.ToHost(gg); !ok || back != HostID(h) {
				t.Fatalf("%v: host %d -> guest %d -> host %d, %v", r, h, gg, back, ok)
			}
		}
	})
}
