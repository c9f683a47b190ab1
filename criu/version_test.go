package criu

import (
	"errors"
	"os"
	"testing"
)

var versionCases = []struct {
	out  string
	want Version
	ok   bool
}{
	{"Version: 4.1.1\n", Version{4, 1, 1}, true},
	{"Version: 3.17.1\n", Version{3, 17, 1}, true},
	{"Version: 4.1\n", Version{4, 1, 0}, true},
	{"Version: 4.2-rc1\nGitID: v4.1-123-gdeadbeef\n", Version{4, 2, 0}, true},
	{"  Version:\t4.1.1+git \n", Version{4, 1, 1}, true},
	{"Warn: something\nVersion: 4.0.0\n", Version{4, 0, 0}, true},
	{"Version: 4.1.1.5\n", Version{4, 1, 1}, true}, // a fourth number is a suffix
	{"Version: 4\n", Version{}, false},
	{"Version: \n", Version{}, false},
	{"Version: x.y\n", Version{}, false},
	{"Version: 4.-1\n", Version{}, false},
	{"Version: 99999999999999999999.1\n", Version{}, false},
	{"criu: command not found\n", Version{}, false},
	{"", Version{}, false},
}

func TestParseVersion(t *testing.T) {
	for _, c := range versionCases {
		got, err := ParseVersion(c.out)
		if c.ok != (err == nil) || got != c.want {
			t.Errorf("ParseVersion(%q) = %v, %v; want %v, ok=%v", c.out, got, err, c.want, c.ok)
		}
		if err != nil && !errors.Is(err, ErrBadVersion) {
			t.Errorf("ParseVersion(%q): error %v does not wrap ErrBadVersion", c.out, err)
		}
	}
}

func TestVersionLess(t *testing.T) {
	order := []Version{{3, 17, 1}, {4, 0, 0}, {4, 1, 0}, {4, 1, 1}, {4, 2, 0}, {5, 0, 0}}
	for i, a := range order {
		for j, b := range order {
			if a.Less(b) != (i < j) {
				t.Errorf("%v.Less(%v) = %v", a, b, a.Less(b))
			}
		}
	}
	if (Version{4, 1, 1}).Less(MinVersion) != true || (Version{4, 2, 1}).Less(MinVersion) {
		t.Errorf("MinVersion comparison wrong")
	}
}

func FuzzParseVersion(f *testing.F) {
	for _, c := range versionCases {
		f.Add(c.out)
	}
	f.Fuzz(func(t *testing.T, out string) {
		v, err := ParseVersion(out)
		if err != nil {
			if !errors.Is(err, ErrBadVersion) {
				t.Fatalf("error %v does not wrap ErrBadVersion", err)
			}
			if v != (Version{}) {
				t.Fatalf("error with non-zero version %v", v)
			}
			return
		}
		if v.Major < 0 || v.Minor < 0 || v.Sublevel < 0 ||
			v.Major > maxComponent || v.Minor > maxComponent || v.Sublevel > maxComponent {
			t.Fatalf("out-of-range version %v from %q", v, out)
		}
		// What String prints parses back to the same version.
		back, err := ParseVersion("Version: " + v.String() + "\n")
		if err != nil || back != v {
			t.Fatalf("round trip of %v: %v, %v", v, back, err)
		}
	})
}

func TestLogTail(t *testing.T) {
	dir := t.TempDir()
	p := dir + "/dump.log"
	var s string
	s += "(00.001) Error (criu/mount.c:1): the cause\n"
	for i := 0; i < 30; i++ {
		s += "(00.002) cleanup line\n"
	}
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	got := logTail(p, 5)
	if want := "(00.001) Error (criu/mount.c:1): the cause\n(00.002) cleanup line"; len(got) < len(want) || got[:len(want)] != want {
		t.Errorf("logTail = %q, want the error line first", got)
	}
	if logTail(dir+"/missing", 5) != "" {
		t.Errorf("logTail of a missing file should be empty")
	}
}
