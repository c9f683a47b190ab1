package fleet

import (
	"errors"
	"strconv"
	"testing"
)

func TestParseOnBootAndOrder(t *testing.T) {
	for in, want := range map[string]bool{"yes": true, "no": false, "": false} {
		if got, err := ParseOnBoot(in); err != nil || got != want {
			t.Errorf("onboot %q: %v %v", in, got, err)
		}
	}
	for _, in := range []string{"Yes", "1", "true", "y", " yes"} {
		if _, err := ParseOnBoot(in); !errors.Is(err, ErrBadValue) {
			t.Errorf("onboot %q: %v", in, err)
		}
	}
	for in, want := range map[string]int{"": 0, "0": 0, "10": 10, "2147483647": MaxBootOrder} {
		if got, err := ParseBootOrder(in); err != nil || got != want {
			t.Errorf("bootorder %q: %v %v", in, got, err)
		}
	}
	for _, in := range []string{"-1", "+1", "010", "2147483648", "1e3", "ten", " 1"} {
		if _, err := ParseBootOrder(in); !errors.Is(err, ErrBadValue) {
			t.Errorf("bootorder %q: %v", in, err)
		}
	}
	v, err := FromConfig(501, "web", "yes", "10")
	if err != nil || v != (VPS{ID: 501, Name: "web", OnBoot: true, BootOrder: 10}) {
		t.Fatalf("%+v %v", v, err)
	}
	for _, kv := range [][2]string{{"maybe", "1"}, {"yes", "x"}} {
		if _, err := FromConfig(7, "", kv[0], kv[1]); !errors.Is(err, ErrBadValue) {
			t.Fatalf("%v: %v", kv, err)
		}
	}
}

func FuzzParseBootOrder(f *testing.F) {
	for _, s := range []string{"", "0", "10", "-1", "010", "2147483648"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseBootOrder(s)
		if err != nil {
			if !errors.Is(err, ErrBadValue) {
				t.Fatal(err)
			}
			return
		}
		// What parses is what vps.conf would store for it.
		if n < 0 || n > MaxBootOrder || s != "" && strconv.Itoa(n) != s {
			t.Fatalf("%q -> %d", s, n)
		}
	})
}
