package hostconf

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/vpsctl/vpsctl/store"
)

func TestBuiltinPlans(t *testing.T) {
	dir := t.TempDir()
	names, err := ListPlans(dir)
	if err != nil || !reflect.DeepEqual(names, []string{"large", "medium", "small"}) {
		t.Fatalf("%v %v", names, err)
	}
	var prev int64
	for _, n := range []string{"small", "medium", "large"} {
		p, err := LoadPlan(dir, n)
		if err != nil {
			t.Fatal(err)
		}
		// Every built-in plan bounds what issue 20 asks to be bounded, and each is bigger than the last.
		if p.Limits.Memory == "" || p.Limits.Swap == "" || p.Limits.NumProc == "" || p.Limits.CPUUnits == "" || p.Description == "" {
			t.Errorf("%s: %+v", n, p)
		}
		if p.File != "built-in "+n+".conf" || !strings.HasPrefix(p.sources["MEMORY"].String(), "plan "+n+" (built-in "+n+".conf:") {
			t.Errorf("%s: file %q, MEMORY from %v", n, p.File, p.sources["MEMORY"])
		}
		m, _ := parseSizeForTest(p.Limits.Memory)
		if m <= prev {
			t.Errorf("%s: memory %s not above the previous plan's", n, p.Limits.Memory)
		}
		prev = m
	}
	// A file in the plans directory replaces the built-in plan of its name and adds its own.
	os.WriteFile(filepath.Join(dir, "small.conf"), []byte("MEMORY=\"256M\"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "tiny.conf"), []byte("MEMORY=\"64M\"\n"), 0o644)
	p, err := LoadPlan(dir, "small")
	if err != nil || p.Limits.Memory != "256M" || p.Limits.Swap != "" || p.File != filepath.Join(dir, "small.conf") {
		t.Fatalf("replaced small: %+v %v", p, err)
	}
	// A broken file is an error, not a fall-back to the built-in plan.
	os.WriteFile(filepath.Join(dir, "medium.conf"), []byte("MEMROY=\"1G\"\n"), 0o644)
	if _, err := LoadPlan(dir, "medium"); !errors.Is(err, ErrBadConfig) || errors.Is(err, ErrNoPlan) {
		t.Fatalf("broken medium: %v", err)
	}
	if names, err := ListPlans(dir); err != nil || !reflect.DeepEqual(names, []string{"large", "medium", "small", "tiny"}) {
		t.Fatalf("%v %v", names, err)
	}
}

func parseSizeForTest(s string) (int64, error) { return sizeOf(s) }

func TestPlanErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name+".conf"), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("typo", "DESCRIPTION=\"x\"\nMEMROY=\"1G\"\n")
	write("badval", "MEMORY=\"1G\"\nCPUUNITS=\"1\"\n")
	write("syntax", "MEMORY=1 G\n")
	write("root", "ROOT=\"/srv\"\n")
	write("desc", "DESCRIPTION=\"a\\nb\"\n")
	for name, line := range map[string]int{"typo": 2, "badval": 2, "syntax": 1, "root": 1, "desc": 1} {
		_, err := LoadPlan(dir, name)
		var le *LineError
		if !errors.As(err, &le) || le.Line != line || le.File != filepath.Join(dir, name+".conf") || !errors.Is(err, ErrBadConfig) {
			t.Errorf("%s: %v", name, err)
		}
	}
	for _, bad := range []string{"", "../vpsctl", ".hidden", "-x", "a/b", "a b", strings.Repeat("a", 65)} {
		if _, err := LoadPlan(dir, bad); !errors.Is(err, ErrBadConfig) || errors.Is(err, ErrNoPlan) {
			t.Errorf("name %q: %v", bad, err)
		}
	}
	_, err := LoadPlan(dir, "absent")
	if !errors.Is(err, ErrNoPlan) || !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), "absent.conf") {
		t.Fatalf("absent: %v", err)
	}
	if err := os.Mkdir(filepath.Join(dir, "isdir.conf"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPlan(dir, "isdir"); err == nil || errors.Is(err, ErrBadConfig) {
		t.Fatalf("directory: %v", err)
	}
	// Listing skips directories, other extensions and names a plan cannot have.
	os.WriteFile(filepath.Join(dir, ".x.conf"), nil, 0o644)
	os.WriteFile(filepath.Join(dir, "notes.txt"), nil, 0o644)
	names, err := ListPlans(dir)
	if err != nil || !reflect.DeepEqual(names, []string{"badval", "desc", "large", "medium", "root", "small", "syntax", "typo"}) {
		t.Fatalf("%v %v", names, err)
	}
	if names, err := ListPlans(filepath.Join(dir, "none")); err != nil || !reflect.DeepEqual(names, []string{"large", "medium", "small"}) {
		t.Fatalf("missing dir: %v %v", names, err)
	}
	if _, err := ListPlans(filepath.Join(dir, "typo.conf")); err == nil {
		t.Fatal("listing a file as a directory succeeded")
	}
}

func TestCreateLimitsPrecedence(t *testing.T) {
	c, err := Parse("/etc/vpsctl/vpsctl.conf", []byte("MEMORY=\"2G\"\nIOLIMIT=\"10M\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParsePlan("small", "/etc/vpsctl/plans/small.conf", []byte("# small\nMEMORY=\"512M\"\nNUMPROC=\"100\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := c.CreateLimits(p, Limits{NumProc: "50"})
	want := Limits{Memory: "512M", Swap: "512M", CPUUnits: "1000", NumProc: "50", IOLimit: "10M"}
	if got != want {
		t.Fatalf("got %+v want %+v", got, want)
	}
	if got := c.CreateLimits(nil, Limits{}); got != c.Limits {
		t.Fatalf("no plan, no flags: %+v", got)
	}
	srcs := map[string]string{}
	for _, s := range c.LimitSettings(p) {
		srcs[s.Key] = s.Value + " @ " + s.Source.String()
	}
	if srcs["MEMORY"] != "512M @ plan small (/etc/vpsctl/plans/small.conf:2)" ||
		srcs["IOLIMIT"] != "10M @ /etc/vpsctl/vpsctl.conf:2" || srcs["SWAP"] != "512M @ default" {
		t.Fatalf("%v", srcs)
	}
	if len(c.LimitSettings(nil)) != len(LimitKeys) {
		t.Fatal("LimitSettings(nil)")
	}
}

func FuzzParsePlan(f *testing.F) {
	f.Add([]byte("DESCRIPTION=\"x\"\nMEMORY=\"512M\"\nCPUS=1\n"))
	f.Add([]byte("MEMORY=\"1M\"\n"))
	f.Add([]byte("ROOT=\"/\"\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePlan("p", "p.conf", b)
		if err != nil {
			if !errors.Is(err, ErrBadConfig) {
				t.Fatalf("error %v is not ErrBadConfig", err)
			}
			return
		}
		// Whatever a plan sets, a host configuration accepts as its defaults.
		var text strings.Builder
		for _, k := range LimitKeys {
			text.WriteString(k + "=" + store.Quote(*p.Limits.Field(k)) + "\n")
		}
		if _, err := Parse("as-host", []byte(text.String())); err != nil {
			t.Fatalf("plan limits refused as host defaults: %v", err)
		}
	})
}

func sizeOf(s string) (int64, error) {
	mult := map[byte]int64{'K': 1 << 10, 'M': 1 << 20, 'G': 1 << 30, 'T': 1 << 40}[s[len(s)-1]]
	n := int64(0)
	for _, ch := range s[:len(s)-1] {
		n = n*10 + int64(ch-'0')
	}
	return n * mult, nil
}
