package store

import (
	"bytes"
	"errors"
	"os"
	"reflect"
	"slices"
	"testing"

	"github.com/vpsctl/vpsctl/container"
)

func TestConfigRoundTrip(t *testing.T) {
	c := &Config{ID: 101, Name: "web", Hostname: "alpha", Template: "busybox",
		Namespaces: []string{"uts", "pid"}, IDMap: "1000000:65536", Memory: "64M",
		IPs: []string{"198.18.0.1", "fd42:1::1"}, Extra: map[string]string{"FUTURE": `a "b" \c`}}
	got, err := ParseConfig(c.Format())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, c) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, c)
	}
}

func TestParseConfigErrors(t *testing.T) {
	for _, s := range []string{"ID=\"0\"\n", "HOSTNAME=\"x\"\n", "ID=\"1\"\nbad line\n", "ID=\"1\"\nA=\"x\n", "ID=\"1\"\nA=\"x\\q\"\n", "ID=\"01\"\n"} {
		if _, err := ParseConfig([]byte(s)); !errors.Is(err, ErrBadConfig) {
			t.Errorf("ParseConfig(%q) err = %v; want ErrBadConfig", s, err)
		}
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("ID=\"101\"\nHOSTNAME=\"a\"\n# c\n\nIP_ADDRESS=\"1.2.3.4 ::1\"\n"))
	f.Add([]byte("ID=7\nX_Y=\"\\\"\\\\\\n\"\n"))
	f.Add([]byte("ID=\"1\"\nNAME=\"w\"\nDEVICES=\"c:1:3:rwm\"\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig(b)
		if err != nil {
			return
		}
		// Whatever parses must survive a write and a re-read unchanged.
		out := c.Format()
		c2, err := ParseConfig(out)
		if err != nil {
			t.Fatalf("re-parse of %q: %v", out, err)
		}
		if !bytes.Equal(c2.Format(), out) {
			t.Fatalf("not stable: %q vs %q", c2.Format(), out)
		}
	})
}

func TestParseLockHolder(t *testing.T) {
	text := "1: POSIX  ADVISORY  WRITE 99 00:1f:5 0 EOF\n2: FLOCK  ADVISORY  WRITE 4242 00:1f:123456 0 EOF\n3: FLOCK  ADVISORY  WRITE 7 00:1f:9 0 EOF\n"
	if got := parseLockHolder(text, 123456); got != 4242 {
		t.Fatalf("got %d", got)
	}
	if got := parseLockHolder(text, 5); got != 0 {
		t.Fatalf("POSIX lock taken for flock: %d", got)
	}
}

// benchConfig is a config as create writes it.
var benchConfig = (&Config{ID: 101, Name: "web", Hostname: "alpha", Template: "busybox",
	Namespaces: []string{"uts", "ipc", "pid", "mnt", "net", "user", "cgroup"}, IDMap: "1000000:65536",
	Memory: "64M", IPs: []string{"198.18.0.1", "fd42:1::1"}}).Format()

// BenchmarkParseConfig: create parses every VPS's config to allocate UIDs and addresses, so
// at 1000 VPSs this is most of a create.
func BenchmarkParseConfig(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseConfig(benchConfig); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkConfigs1000: reading 1000 VPSs' configs from a state root (what create does under
// the global lock).
func BenchmarkConfigs1000(b *testing.B) {
	s, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	for i := container.ID(1); i <= 1000; i++ {
		if err := os.MkdirAll(s.VPSDir(i), 0o700); err != nil {
			b.Fatal(err)
		}
		c, _ := ParseConfig(benchConfig)
		c.ID = i
		if err := os.WriteFile(s.Path(i, "vps.conf"), c.Format(), 0o600); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		cs, err := s.Configs()
		if err != nil || len(cs) != 1000 {
			b.Fatal(len(cs), err)
		}
	}
}

// TestConfigChanged: Changed names exactly the keys whose values differ, in vps.conf's order,
// unknown keys last; ONBOOT and BOOTORDER are known keys and survive a round trip.
func TestConfigChanged(t *testing.T) {
	a := &Config{ID: 7, Hostname: "a", IPs: []string{"198.18.0.7"}, OnBoot: "yes", Extra: map[string]string{"X": "1", "Y": "2"}}
	b := *a
	if got := a.Changed(&b); len(got) != 0 {
		t.Fatalf("same config: %v", got)
	}
	b.Hostname, b.IPs, b.BootOrder = "b", []string{"198.18.0.8"}, "20"
	b.Extra = map[string]string{"Y": "3", "Z": "4"}
	want := []string{"HOSTNAME", "IP_ADDRESS", "BOOTORDER", "X", "Y", "Z"}
	if got := a.Changed(&b); !slices.Equal(got, want) {
		t.Fatalf("Changed = %v, want %v", got, want)
	}
	c, err := ParseConfig(b.Format())
	if err != nil || c.OnBoot != "yes" || c.BootOrder != "20" || c.Extra["ONBOOT"] != "" {
		t.Fatalf("round trip: %+v, %v", c, err)
	}
}

// TestLex: assignments come in file order with their lines, values unquoted; a line that is no
// assignment stops the lexing with a *SyntaxError (Key empty for a bad KEY= part, set for a bad
// value); an error of the callback's stops it with that error.
func TestLex(t *testing.T) {
	type asg struct {
		line       int
		key, value string
	}
	var got []asg
	err := Lex([]byte("# c\n\nA=\"x \\\"y\\\"\\n\"\n  B=plain  \n"), func(n int, k, v string) error {
		got = append(got, asg{n, k, v})
		return nil
	})
	if want := []asg{{3, "A", "x \"y\"\n"}, {4, "B", "plain"}}; err != nil || !slices.Equal(got, want) {
		t.Fatalf("Lex: %v, %v; want %v", got, err, want)
	}
	for _, c := range []struct {
		text string
		line int
		key  string
	}{
		{"A=1\nlower=2\n", 2, ""},
		{"=1\n", 1, ""},
		{"A=1\nB=\"open\n", 2, "B"},
		{"A=x y\n", 1, "A"},
	} {
		var se *SyntaxError
		err := Lex([]byte(c.text), func(int, string, string) error { return nil })
		if !errors.As(err, &se) || se.Line != c.line || se.Key != c.key || (se.Key != "") != (se.Err != nil) {
			t.Errorf("Lex(%q): %#v, want a SyntaxError at line %d with key %q", c.text, err, c.line, c.key)
		}
	}
	stop := errors.New("stop")
	n := 0
	if err := Lex([]byte("A=1\nB=2\n"), func(int, string, string) error { n++; return stop }); err != stop || n != 1 {
		t.Errorf("Lex with a failing callback: %v after %d calls, want its error after 1", err, n)
	}
}
