package spec

import (
	"errors"
	"testing"
)

func TestParseDevice(t *testing.T) {
	r, err := ParseDevice("c:10:200:rw")
	if err != nil || r.Type != 'c' || r.Major != 10 || r.Minor != 200 || r.Access != "rw" {
		t.Fatalf("got %+v, %v", r, err)
	}
	if r, err := ParseDevice("b:*:*:m"); err != nil || r.Major != -1 || r.Minor != -1 {
		t.Fatalf("wildcards: %+v %v", r, err)
	}
	if r, err := ParseDevice("c:4095:1048575:mwr"); err != nil || r.Major != 4095 || r.Minor != 1048575 {
		t.Fatalf("the largest numbers: %+v %v", r, err)
	}
	for _, s := range []string{"", "c:1:3", "x:1:3:r", "c:a:3:r", "c:1:3:rx", "c:1:3:", "c:-1:3:r",
		"c:1:3:rrr", "c:1:3:rwmr", "c:4096:1:rw", "c:1:1048576:rw"} {
		if _, err := ParseDevice(s); !errors.Is(err, ErrBadValue) {
			t.Errorf("ParseDevice(%q) = %v", s, err)
		}
	}
}

func FuzzParseDevice(f *testing.F) {
	f.Add("c:10:200:rwm")
	f.Add("b:*:0:r")
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseDevice(s)
		if err == nil && (r.Access == "" || (r.Type != 'c' && r.Type != 'b')) {
			t.Fatalf("accepted %q as %+v", s, r)
		}
	})
}
