package container

import (
	"errors"
	"testing"
)

func TestParseID(t *testing.T) {
	good := map[string]ID{"1": 1, "101": 101, "4294967295": 4294967295}
	for s, want := range good {
		got, err := ParseID(s)
		if err != nil || got != want {
			t.Errorf("ParseID(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "0", "-1", "+1", "4294967296", "abc", "0101", " 1", "1e3", "0x10"} {
		if _, err := ParseID(s); !errors.Is(err, ErrBadID) {
			t.Errorf("ParseID(%q) err = %v; want ErrBadID", s, err)
		}
	}
}

func TestValidateName(t *testing.T) {
	for _, s := range []string{"web", "a", "web-1.example_x"} {
		if err := ValidateName(s); err != nil {
			t.Errorf("ValidateName(%q) = %v", s, err)
		}
	}
	for _, s := range []string{"", "1web", "-x", "a b", "a/b", string(make([]byte, 65))} {
		if err := ValidateName(s); !errors.Is(err, ErrBadName) {
			t.Errorf("ValidateName(%q) = %v; want ErrBadName", s, err)
		}
	}
}

func FuzzParseID(f *testing.F) {
	for _, s := range []string{"1", "101", "0", "-5", "4294967295", "4294967296", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseID(s)
		if err != nil {
			return
		}
		if id == HostID {
			t.Fatalf("ParseID(%q) returned the host ID", s)
		}
		if id.String() != s {
			t.Fatalf("ParseID(%q) = %v: not a round trip", s, id)
		}
		if ValidateName(s) == nil {
			t.Fatalf("%q is both an ID and a name", s)
		}
	})
}
