package hostcheck

import (
	"errors"
	"strings"
	"testing"
)

func TestParseRelease(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Version
		bad  bool
	}{
		{in: "6.1.0-50-amd64", want: Version{6, 1, 0}},
		{in: "6.18.44-fc-v1272", want: Version{6, 18, 44}},
		{in: "5.19", want: Version{5, 19, 0}},
		{in: "6.8.0-rc3+", want: Version{6, 8, 0}},
		{in: "4.19.0+", want: Version{4, 19, 0}},
		{in: "6", bad: true},
		{in: "", bad: true},
		{in: "linux-6.1", bad: true},
		{in: "6.x", bad: true},
	} {
		got, err := ParseRelease(c.in)
		if c.bad {
			if err == nil {
				t.Errorf("ParseRelease(%q) = %v, want an error", c.in, got)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ParseRelease(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
}

func FuzzParseRelease(f *testing.F) {
	for _, s := range []string{"6.1.0-50-amd64", "5.19", "", "6..1", "999999999.1.1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseRelease(s)
		if err == nil && (v[0] < 0 || v[1] < 0 || v[2] < 0) {
			t.Fatalf("ParseRelease(%q) = %v", s, v)
		}
	})
}

func TestCheckByRelease(t *testing.T) {
	for _, c := range []struct {
		release string
		want    error
		names   string
	}{
		{release: "6.1.0-50-amd64"},
		{release: "6.18.44-fc-v1272"},
		{release: "6.0.12", want: ErrUntested, names: "tested on Linux 6.1"},
		{release: "5.15.0-91-generic", want: ErrMissing, names: "idmapped lower layers in overlayfs"},
		{release: "5.10.0-28-amd64", want: ErrMissing, names: "close_range"},
		{release: "4.19.0-26-amd64", want: ErrMissing, names: "open_tree"},
	} {
		err := Host{Release: c.release}.Check(Features)
		if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
			t.Errorf("%s: %v, want %v", c.release, err, c.want)
			continue
		}
		if err != nil && (!strings.Contains(err.Error(), c.names) || !strings.Contains(err.Error(), c.release)) {
			t.Errorf("%s: %q does not name %q and the release", c.release, err, c.names)
		}
	}
}

// A probe's answer overrides the release: a backported feature is there, a feature configured
// out is not.
func TestCheckProbes(t *testing.T) {
	missing := func() error { return ErrMissing }
	present := func() error { return nil }
	unsure := func() error { return errors.New("cannot tell") }
	h := Host{Release: "6.1.0", Probes: true}
	if err := h.Check([]Feature{{Name: "x", Since: Version{5, 0, 0}, Probe: missing}}); !errors.Is(err, ErrMissing) || !strings.Contains(err.Error(), "lacks x") {
		t.Errorf("a probe that says missing: %v", err)
	}
	h = Host{Release: "6.1.0", Probes: true}
	if err := h.Check([]Feature{{Name: "y", Since: Version{6, 5, 0}, Probe: present}}); err != nil {
		t.Errorf("a probe that says present: %v", err)
	}
	if err := h.Check([]Feature{{Name: "z", Since: Version{6, 5, 0}, Probe: unsure}}); !errors.Is(err, ErrMissing) {
		t.Errorf("an unsure probe on an older release: %v", err)
	}
}

// This host runs vpsctl's tests, so it has everything.
func TestCheckRunning(t *testing.T) {
	for _, f := range Features {
		if f.Probe != nil {
			if err := f.Probe(); err != nil {
				t.Errorf("probe %s: %v", f.Name, err)
			}
		}
	}
	if err := Check(); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkCheck: what start pays for the check (a uname and four probing system calls).
func BenchmarkCheck(b *testing.B) {
	for b.Loop() {
		if err := Check(); err != nil && !errors.Is(err, ErrUntested) {
			b.Fatal(err)
		}
	}
}
