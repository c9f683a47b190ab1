package cgroup

import (
	"errors"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	good := map[string]int64{
		"0": 0, "123": 123, "512K": 512 << 10, "64M": 64 << 20, "64m": 64 << 20, "1G": 1 << 30,
		"1T": 1 << 40, "unlimited": -1, "9223372036854775807": math.MaxInt64, "8388607T": 8388607 << 40,
	}
	for in, want := range good {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "M", "-1", "+5", " 5", "5 ", "1.5G", "1KB", "0x10", "1P", "unlimitedK",
		"Unlimited", "9223372036854775808", "8388608T", "１２"} {
		if got, err := ParseSize(in); !errors.Is(err, ErrBadValue) {
			t.Errorf("ParseSize(%q) = %d, %v; want ErrBadValue", in, got, err)
		}
	}
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"64M", "1G", "512K", "1T", "123", "unlimited", "", "-1", "99999999999T", "1.5G", "0k"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseSize(s)
		if err != nil {
			if !errors.Is(err, ErrBadValue) {
				t.Fatalf("ParseSize(%q): error %v does not wrap ErrBadValue", s, err)
			}
			return
		}
		if v < -1 || (v == -1) != (s == "unlimited") {
			t.Fatalf("ParseSize(%q) = %d", s, v)
		}
		// Plain digits must round-trip.
		if isDigits(s) && strconv.FormatInt(v, 10) != strings.TrimLeft(s, "0") && v != 0 {
			t.Fatalf("ParseSize(%q) = %d does not round-trip", s, v)
		}
	})
}

const hybridProcCgroup = `12:pids:/vpsctl/101
11:cpu,cpuacct:/vpsctl/101
10:name=systemd:/vpsctl/101
4:memory:/process_api/b22938a8
0::/odd:name
`

func TestParseProcCgroup(t *testing.T) {
	lines, err := ParseProcCgroup(hybridProcCgroup)
	if err != nil {
		t.Fatal(err)
	}
	want := []ProcCgroupLine{
		{12, []string{"pids"}, "/vpsctl/101"},
		{11, []string{"cpu", "cpuacct"}, "/vpsctl/101"},
		{10, []string{"name=systemd"}, "/vpsctl/101"},
		{4, []string{"memory"}, "/process_api/b22938a8"},
		{0, nil, "/odd:name"}, // ':' belongs to the path
	}
	if !slices.EqualFunc(lines, want, func(a, b ProcCgroupLine) bool {
		return a.ID == b.ID && a.Path == b.Path && slices.Equal(a.Controllers, b.Controllers)
	}) {
		t.Fatalf("got %+v\nwant %+v", lines, want)
	}
	for ctrl, g := range map[string]string{"pids": "vpsctl/101", "memory": "process_api/b22938a8", "": "odd:name"} {
		if got, err := groupIn(lines, ctrl); err != nil || got != g {
			t.Errorf("groupIn(%q) = %q, %v; want %q", ctrl, got, err, g)
		}
	}
	if _, err := groupIn(lines, "freezer"); !errors.Is(err, ErrNoGroup) {
		t.Errorf("groupIn(freezer): %v, want ErrNoGroup", err)
	}
	root, _ := ParseProcCgroup("0::/\n")
	if g, err := groupIn(root, ""); err != nil || g != "" {
		t.Errorf("root group = %q, %v; want \"\"", g, err)
	}
	for _, bad := range []string{"x", "1:pids", "a:pids:/", "-1:pids:/", "1:pids:rel", "1:pids,,cpu:/", "1:pids:"} {
		if _, err := ParseProcCgroup(bad); !errors.Is(err, ErrBadValue) {
			t.Errorf("ParseProcCgroup(%q): %v, want ErrBadValue", bad, err)
		}
	}
}

func FuzzParseProcCgroup(f *testing.F) {
	for _, s := range []string{hybridProcCgroup, "0::/\n", "0::/user.slice/a:b\n", "1:name=systemd:/\n\n", "x", "1::", "1:a,,b:/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		lines, err := ParseProcCgroup(s)
		if err != nil {
			if !errors.Is(err, ErrBadValue) {
				t.Fatalf("error %v does not wrap ErrBadValue", err)
			}
			return
		}
		var b strings.Builder
		for _, l := range lines {
			if l.ID < 0 || !strings.HasPrefix(l.Path, "/") || strings.Contains(l.Path, "\n") {
				t.Fatalf("bad line %+v", l)
			}
			for _, c := range l.Controllers {
				if c == "" || strings.ContainsAny(c, ",:\n") {
					t.Fatalf("bad controller %q", c)
				}
			}
			b.WriteString(strconv.Itoa(l.ID) + ":" + strings.Join(l.Controllers, ",") + ":" + l.Path + "\n")
		}
		// What was parsed re-parses to the same lines.
		again, err := ParseProcCgroup(b.String())
		if err != nil || len(again) != len(lines) {
			t.Fatalf("re-parse of %q: %v, %d lines", b.String(), err, len(again))
		}
		if len(lines) > 0 {
			_, _ = groupIn(lines, "pids")
		}
	})
}

func TestParseKeyed(t *testing.T) {
	m, err := parseKeyed("populated 1\nfrozen 0\nmax max\n")
	if err != nil || m["populated"] != 1 || m["frozen"] != 0 || m["max"] != Unlimited {
		t.Fatalf("parseKeyed = %v, %v", m, err)
	}
	for _, bad := range []string{"populated", "a -1", " 1", "a 1 2", "a 0x1"} {
		if _, err := parseKeyed(bad); !errors.Is(err, ErrBadValue) {
			t.Errorf("parseKeyed(%q): %v, want ErrBadValue", bad, err)
		}
	}
}

func FuzzParseKeyed(f *testing.F) {
	for _, s := range []string{"populated 1\nfrozen 0\n", "usage_usec 123\nnr_throttled 4", "max max", "a", " 1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if _, err := parseKeyed(s); err != nil && !errors.Is(err, ErrBadValue) {
			t.Fatalf("error %v does not wrap ErrBadValue", err)
		}
	})
}

func TestIsDescendant(t *testing.T) {
	cases := []struct {
		parent, child string
		want          bool
	}{
		{"vpsctl/101", "vpsctl/101", true},
		{"vpsctl/101", "vpsctl/101/sub", true},
		{"/vpsctl/101/", "vpsctl/101/sub/x", true},
		{"vpsctl/10", "vpsctl/101", false},
		{"vpsctl/101", "vpsctl", false},
		{"vpsctl/101", "vpsctl/102", false},
		{"", "anything", true},
		{"/", "/", true},
		{"vpsctl", "", false},
		{"vpsctl/101", "vpsctl/101/../102", false},
	}
	for _, c := range cases {
		if got := IsDescendant(c.parent, c.child); got != c.want {
			t.Errorf("IsDescendant(%q, %q) = %v", c.parent, c.child, got)
		}
	}
}

func TestCheckRel(t *testing.T) {
	for _, ok := range []string{"vpsctl/101", "a", "a/b/c", "..a"} {
		if err := checkRel(ok); err != nil {
			t.Errorf("checkRel(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "/vpsctl", "vpsctl/", "a//b", "../x", "..", "a/../b", "a/./b"} {
		if err := checkRel(bad); !errors.Is(err, ErrBadValue) {
			t.Errorf("checkRel(%q): %v, want ErrBadValue", bad, err)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func TestCPUMapping(t *testing.T) {
	quota := func(cpus, pct *int) int64 {
		q, ok := cfsQuota(&Resources{CPUs: cpus, CPULimitPct: pct}, 100000)
		if !ok {
			return -2
		}
		return q
	}
	for _, c := range []struct {
		cpus, pct *int
		want      int64
	}{
		{nil, nil, -2},
		{ptr(2), nil, 200000},
		{nil, ptr(50), 50000},
		{ptr(1), ptr(150), 100000},
		{ptr(2), ptr(150), 150000},
		{ptr(0), ptr(0), -1},
		{ptr(0), ptr(25), 25000},
		{nil, ptr(0), -1},
		{nil, ptr(1), 1000},
	} {
		if got := quota(c.cpus, c.pct); got != c.want {
			t.Errorf("quota(cpus %v, pct %v) = %d, want %d", c.cpus, c.pct, got, c.want)
		}
	}
	for units, want := range map[int]uint64{8: 8, 1000: 1024, 500: 512, 500000: 262144} {
		if got := cpuShares(units); got != want {
			t.Errorf("cpuShares(%d) = %d, want %d", units, got, want)
		}
	}
	for units, want := range map[int]uint64{8: 1, 1000: 100, 250: 25, 500000: 10000} {
		if got := cpuWeight(units); got != want {
			t.Errorf("cpuWeight(%d) = %d, want %d", units, got, want)
		}
	}
}

func TestValidate(t *testing.T) {
	bad := []Resources{
		{MemoryBytes: ptr[int64](0)},
		{MemoryBytes: ptr[int64](-2)},
		{SwapBytes: ptr[int64](-5)},
		{CPUs: ptr(-1)},
		{CPUUnits: ptr(7)},
		{CPUUnits: ptr(500001)},
		{IOWeight: ptr(5)},
		{IOLimitBps: ptr[int64](-1)},
		{NumProc: ptr[int64](-2)},
		{Devices: []DeviceRule{{Type: 'x', Major: 1, Minor: 3, Access: "r"}}},
		{Devices: []DeviceRule{{Type: 'c', Major: 1, Minor: 3, Access: "rr"}}},
		{Devices: []DeviceRule{{Type: 'c', Major: 1, Minor: 3, Access: ""}}},
		{Devices: []DeviceRule{{Type: 'c', Major: -2, Minor: 3, Access: "r"}}},
		{Devices: []DeviceRule{{Type: 'a', Major: -1, Minor: -1, Access: "r"}}},
		{Devices: []DeviceRule{{Type: 'a', Major: 1, Minor: -1, Access: "rwm"}}},
	}
	for _, r := range bad {
		if err := validate(&r); !errors.Is(err, ErrBadValue) {
			t.Errorf("validate(%+v): %v, want ErrBadValue", r, err)
		}
	}
	ok := Resources{MemoryBytes: ptr[int64](-1), SwapBytes: ptr[int64](0), CPUs: ptr(0), CPUUnits: ptr(1000),
		NumProc: ptr[int64](0), IOWeight: ptr(1000), IOLimitBps: ptr[int64](0),
		Devices: []DeviceRule{{'a', -1, -1, "rwm"}, {'c', 1, 3, "mwr"}}}
	if err := validate(&ok); err != nil {
		t.Errorf("validate: %v", err)
	}
	if s := (DeviceRule{'c', 5, -1, "rw"}).String(); s != "c 5:* rw" {
		t.Errorf("DeviceRule.String = %q", s)
	}
}

// Memory and swap whose sum does not fit 63 bits are refused before any file is written: v1
// would refuse their sum in memory.memsw.limit_in_bytes, v2 would take each in its own file.
func TestValidateMemoryPlusSwap(t *testing.T) {
	big := int64(1) << 62
	if err := validate(&Resources{MemoryBytes: &big, SwapBytes: &big}); !errors.Is(err, ErrBadValue) {
		t.Errorf("2^62 + 2^62: %v, want ErrBadValue", err)
	}
	small, unlimited := int64(1)<<30, int64(-1)
	for _, r := range []Resources{{MemoryBytes: &big, SwapBytes: &small}, {MemoryBytes: &big, SwapBytes: &unlimited}, {MemoryBytes: &big}} {
		if err := validate(&r); err != nil {
			t.Errorf("%+v: %v", r, err)
		}
	}
}

// TestLeafDir: a join beside a systemd guest's init goes to the init's leaf inside the VPS's
// group, never to a group outside it, and to the group itself when the init is there.
func TestLeafDir(t *testing.T) {
	f2 := newFS2(cgroupRoot, "vpsctl/101")
	own := filepath.Join(cgroupRoot, "vpsctl/101")
	for _, tc := range []struct{ procCgroup, want string }{
		{"0::/vpsctl/101\n", own},
		{"0::/vpsctl/101/init.scope\n", filepath.Join(cgroupRoot, "vpsctl/101/init.scope")},
		{"0::/vpsctl/1010/init.scope\n", own}, // another VPS's: not below ours
		{"0::/user.slice\n", own},
		{"0::/vpsctl/101/../../etc\n", own},
		{"1:name=systemd:/x\n", own}, // no v2 line
	} {
		lines, err := ParseProcCgroup(tc.procCgroup)
		if err != nil {
			t.Fatalf("%q: %v", tc.procCgroup, err)
		}
		if got := leafDir(f2, lines); got != tc.want {
			t.Errorf("%q: %v, want %s", tc.procCgroup, got, tc.want)
		}
	}
}
