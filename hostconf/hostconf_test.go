package hostconf

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vpsctl/vpsctl/store"
)

const sampleDir = "../contrib/etc/vpsctl"

func TestDefaults(t *testing.T) {
	c := Defaults()
	if c.Root != "/var/lib/vpsctl" || c.LockWait != 3*time.Second || c.StartTimeout != time.Minute ||
		c.StopTimeout != time.Minute || c.CheckpointTimeout != 10*time.Minute || c.StopAllTimeout != 2*time.Minute ||
		c.UIDPoolStart != 1000000 || c.UIDPoolSize != 1<<30 || c.UIDRangeSize != 65536 ||
		c.StartAllParallel != 4 || c.StartAllTimeout != 10*time.Minute || c.StopAllParallel != 64 || c.EventsLogMax != 10<<20 || c.AuditLogMax != 10<<20 ||
		c.LogKeep != 3 || c.DefaultTemplate != "" || c.Nameservers != nil {
		t.Fatalf("defaults: %+v", c)
	}
	// Issue 20: a VPS created without limit flags is still bounded in memory, swap, processes
	// and CPU weight.
	want := Limits{Memory: "1G", Swap: "512M", CPUUnits: "1000", NumProc: "4096"}
	if c.Limits != want {
		t.Fatalf("default limits %+v, want %+v", c.Limits, want)
	}
	for _, s := range c.Settings() {
		if s.Source.Kind != FromDefault || s.Source.String() != "default" {
			t.Errorf("%s: source %v", s.Key, s.Source)
		}
		if d, ok := Default(s.Key); !ok || d != s.Value {
			t.Errorf("%s: Default = %q, %v; setting %q", s.Key, d, ok, s.Value)
		}
	}
	if len(c.Settings()) != len(Keys()) {
		t.Fatal("Settings and Keys disagree")
	}
	if _, ok := Default("NOPE"); ok {
		t.Fatal("unknown key has a default")
	}
}

// The sample file documents every key, commented out, with its true default: uncommented, it
// must parse to exactly the defaults.
func TestSampleDocumentsEveryKey(t *testing.T) {
	text, err := os.ReadFile(filepath.Join(sampleDir, "vpsctl.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse("vpsctl.conf", text); err != nil {
		t.Fatalf("sample as shipped: %v", err)
	}
	re := regexp.MustCompile(`(?m)^#([A-Z_]+=)`)
	on := re.ReplaceAll(text, []byte("$1"))
	c, err := Parse("on.conf", on)
	if err != nil {
		t.Fatalf("sample uncommented: %v", err)
	}
	seen := map[string]bool{}
	for _, m := range re.FindAllSubmatch(text, -1) {
		seen[strings.TrimSuffix(string(m[1]), "=")] = true
	}
	def := Defaults()
	for _, k := range Keys() {
		if !seen[k] {
			t.Errorf("sample does not document %s", k)
		}
	}
	for i, s := range c.Settings() {
		if d := def.Settings()[i]; s.Value != d.Value {
			t.Errorf("%s: sample says %q, default is %q", s.Key, s.Value, d.Value)
		}
		if s.Source.Kind != FromFile || s.Source.File != "on.conf" || s.Source.Line == 0 {
			t.Errorf("%s: source %v", s.Key, s.Source)
		}
	}
}

func TestParseAllKeys(t *testing.T) {
	text := `# every key
ROOT="/srv/vpsctl"
DEFAULT_TEMPLATE="debian-12"
MEMORY="2G"
SWAP="unlimited"
CPUS="2"
CPULIMIT="150"
CPUUNITS="2000"
NUMPROC="4096"
IOLIMIT="50M"
IOWEIGHT="300"
UID_POOL_START="2000000"
UID_POOL_SIZE="131072"
UID_RANGE_SIZE="65536"
LOCK_WAIT="0"
START_TIMEOUT="30"
STOP_TIMEOUT="1m30s"
CHECKPOINT_TIMEOUT="20m"
STARTALL_PARALLEL="8"
STARTALL_TIMEOUT="5m"
STOPALL_PARALLEL="100"
STOPALL_TIMEOUT="300"
NAMESERVER="198.18.0.53 fd42:1::53"
SEARCHDOMAIN="example.com corp.example.com"
CLUSTER="http://h1:2379,https://h2.example:2379"
NODE="node-7.eu1"
EVENTS_LOG_MAX="1M"
AUDIT_LOG_MAX="64K"
LOG_KEEP="10"
`
	c, err := Parse("/etc/x.conf", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	want := Defaults()
	want.File = "/etc/x.conf"
	want.Root, want.DefaultTemplate = "/srv/vpsctl", "debian-12"
	want.Limits = Limits{Memory: "2G", Swap: "unlimited", CPUs: "2", CPULimit: "150", CPUUnits: "2000", NumProc: "4096", IOLimit: "50M", IOWeight: "300"}
	want.UIDPoolStart, want.UIDPoolSize, want.UIDRangeSize = 2000000, 131072, 65536
	want.LockWait, want.StartTimeout, want.StopTimeout, want.CheckpointTimeout = 0, 30*time.Second, 90*time.Second, 20*time.Minute
	want.StartAllParallel, want.StartAllTimeout, want.StopAllParallel, want.StopAllTimeout = 8, 5*time.Minute, 100, 5*time.Minute
	want.Nameservers, want.SearchDomains = []string{"198.18.0.53", "fd42:1::53"}, []string{"example.com", "corp.example.com"}
	want.Cluster, want.Node = []string{"http://h1:2379", "https://h2.example:2379"}, "node-7.eu1"
	want.EventsLogMax, want.AuditLogMax, want.LogKeep = 1<<20, 64<<10, 10
	want.settings = c.settings
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got  %+v\nwant %+v", c, want)
	}
	if s := c.SourceOf("NODE"); s.String() != "/etc/x.conf:26" {
		t.Fatalf("NODE source %v", s)
	}
	if c.PlansDir() != "/etc/plans" || Defaults().PlansDir() != "/etc/vpsctl/plans" {
		t.Fatalf("plans dir %s / %s", c.PlansDir(), Defaults().PlansDir())
	}
}

func TestLastValueWins(t *testing.T) {
	c, err := Parse("f", []byte("MEMORY=\"2G\"\n\nMEMORY=3G\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Limits.Memory != "3G" || c.SourceOf("MEMORY").Line != 3 {
		t.Fatalf("%q from %v", c.Limits.Memory, c.SourceOf("MEMORY"))
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		text string
		line int
		msg  string
	}{
		{"# c\nROOT=\"/x\"\nbad line\n", 3, `want KEY="value"`},
		{"MEMORY=\"1G\n", 1, "unterminated quote"},
		{"MEMORY=1 G\n", 1, "unquoted value"},
		{"MEMROY=\"1G\"\n", 1, "unknown key MEMROY"},
		{"\n\nMEMORY=\"12Q\"\n", 3, `MEMORY="12Q"`},
		{"MEMORY=\"1M\"\n", 1, "at least 4M"},
		{"SWAP=\"-1\"\n", 1, "SWAP"},
		{"CPUUNITS=\"7\"\n", 1, "8..500000"},
		{"CPUUNITS=\"010\"\n", 1, "8..500000"},
		{"CPUS=\"4097\"\n", 1, "0..4096"},
		{"CPULIMIT=\"x\"\n", 1, "0..409600"},
		{"NUMPROC=\"0\"\n", 1, "at least its init"},
		{"NUMPROC=\"many\"\n", 1, "NUMPROC"},
		{"NUMPROC=\"4194305\"\n", 1, "PID limit"},
		{"IOLIMIT=\"fast\"\n", 1, "IOLIMIT"},
		{"IOWEIGHT=\"5\"\n", 1, "10..1000"},
		{"ROOT=\"relative\"\n", 1, "absolute"},
		{"ROOT=\"/a/../b\"\n", 1, "clean"},
		{"ROOT=\"/\"\n", 1, "other than /"},
		{"DEFAULT_TEMPLATE=\"../etc\"\n", 1, "bad template name"},
		{"UID_POOL_START=\"0\"\n", 1, "65536..4294967295"}, {"UID_POOL_START=\"65535\"\n", 1, "65536..4294967295"},
		{"UID_POOL_SIZE=\"4294967296\"\n", 1, "UID_POOL_SIZE"},
		{"UID_RANGE_SIZE=\"+5\"\n", 1, "UID_RANGE_SIZE"},
		{"UID_POOL_START=\"4000000000\"\nUID_POOL_SIZE=\"400000000\"\n", 2, "ends past"},
		{"UID_POOL_SIZE=\"400000000\"\nUID_POOL_START=\"4000000000\"\n", 2, "ends past"},
		{"UID_RANGE_SIZE=\"70000\"\nUID_POOL_SIZE=\"65536\"\n", 2, "larger than the pool"},
		{"LOCK_WAIT=\"-1s\"\n", 1, "0..24h"},
		{"START_TIMEOUT=\"0\"\n", 1, "at least 1s"},
		{"STOP_TIMEOUT=\"soon\"\n", 1, "want seconds"},
		{"STOPALL_TIMEOUT=\"60h\"\n", 1, "0..24h"},
		{"CHECKPOINT_TIMEOUT=\"99999999999\"\n", 1, "at most"},
		{"STARTALL_PARALLEL=\"0\"\n", 1, "1..1024"},
		{"STOPALL_PARALLEL=\"1e3\"\n", 1, "1..65536"},
		{"NAMESERVER=\"inherit 1.1.1.1\"\n", 1, "stands alone"},
		{"NAMESERVER=\"dns.example\"\n", 1, "not an IP"},
		{"SEARCHDOMAIN=\"a..b\"\n", 1, "not a domain"},
		{"CLUSTER=\"a/b\"\n", 1, "CLUSTER"},
		{"CLUSTER=\"h1:2379\"\n", 1, "etcd client URLs"},
		{"CLUSTER=\"http://h1\"\n", 1, "etcd client URLs"},
		{"CLUSTER=\"http://u@h1:2379\"\n", 1, "etcd client URLs"},
		{"CLUSTER=\"ftp://h1:2379\"\n", 1, "etcd client URLs"},
		{"CLUSTER=\"http://h1:2379/v3\"\n", 1, "etcd client URLs"},
		{"CLUSTER=\"http://h1:2379,http://h1:2379\"\n", 1, "twice"},
		{"CLUSTER_CERT=\"rel/cert.pem\"\n", 1, "absolute"},
		{"CLUSTER_CERT=\"/etc/c.pem\"\n", 1, "go together"},
		{"CLUSTER_KEY=\"/etc/k.pem\"\nNODE=\"a\"\n", 1, "go together"},
		{"CLUSTER_TIMEOUT=\"10ms\"\n", 1, "at least"},
		{"NODE=\"-x\"\n", 1, "NODE"},
		{"EVENTS_LOG_MAX=\"unlimited\"\n", 1, "bounded"},
		{"AUDIT_LOG_MAX=\"1K\"\n", 1, "64K"},
		{"LOG_KEEP=\"0\"\n", 1, "1..100"},
	} {
		_, err := Parse("/etc/vpsctl/vpsctl.conf", []byte(tc.text))
		var le *LineError
		if !errors.As(err, &le) || !errors.Is(err, ErrBadConfig) {
			t.Errorf("%q: err %v; want a LineError matching ErrBadConfig", tc.text, err)
			continue
		}
		prefix := "/etc/vpsctl/vpsctl.conf:" + strconv.Itoa(tc.line) + ": "
		if le.Line != tc.line || !strings.HasPrefix(err.Error(), prefix) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%q: %q; want prefix %q and %q", tc.text, err, prefix, tc.msg)
		}
	}
}

// A size error keeps its cause (cgroup's ErrBadValue) reachable for errors.As users, but the
// error is still ErrBadConfig first.
func TestLineErrorUnwraps(t *testing.T) {
	_, err := Parse("f", []byte("MEMORY=\"x\"\n"))
	var le *LineError
	if !errors.As(err, &le) || le.Err == nil || errors.Unwrap(err) != le.Err {
		t.Fatalf("%v", err)
	}
	if (&LineError{File: "f", Line: 2, Msg: "m"}).Error() != "f:2: m" {
		t.Fatal("format without cause")
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "none.conf")
	c, err := Load(missing, false)
	if err != nil || c.File != "" || c.Root != "/var/lib/vpsctl" {
		t.Fatalf("missing default file: %+v %v", c, err)
	}
	if _, err := Load(missing, true); !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), missing) {
		t.Fatalf("missing explicit file: %v", err)
	}
	good := filepath.Join(dir, "good.conf")
	os.WriteFile(good, []byte("ROOT=\"/srv/v\"\n"), 0o644)
	if c, err := Load(good, true); err != nil || c.Root != "/srv/v" || c.File != good {
		t.Fatalf("good: %+v %v", c, err)
	}
	big := filepath.Join(dir, "big.conf")
	os.WriteFile(big, bytes.Repeat([]byte("# padding\n"), maxFile/10+1), 0o644)
	if _, err := Load(big, true); !errors.Is(err, ErrBadConfig) {
		t.Fatalf("big: %v", err)
	}
	// A directory where the file should be: a read error, not ErrBadConfig and not defaults.
	if _, err := Load(dir, false); err == nil || errors.Is(err, ErrBadConfig) {
		t.Fatalf("directory: %v", err)
	}
}

func TestLoadDefaultEnv(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "vpsctl.conf")
	os.WriteFile(f, []byte("ROOT=\"/srv/a\"\nMEMORY=\"2G\"\n"), 0o644)
	env := map[string]string{PathEnv: f}
	getenv := func(k string) string { return env[k] }
	c, err := LoadDefault(getenv)
	if err != nil || c.Root != "/srv/a" || c.SourceOf("ROOT").String() != f+":1" {
		t.Fatalf("%+v %v", c, err)
	}
	env[RootEnv] = "/srv/b"
	c, err = LoadDefault(getenv)
	if err != nil || c.Root != "/srv/b" || c.SourceOf("ROOT").String() != "env VPSCTL_ROOT" {
		t.Fatalf("%+v %v", c, err)
	}
	env[RootEnv] = "rel"
	if _, err := LoadDefault(getenv); !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), "env VPSCTL_ROOT") {
		t.Fatalf("bad env root: %v", err)
	}
	delete(env, RootEnv)
	env[ClusterEnv] = "http://127.0.0.1:23791, http://127.0.0.1:23792"
	c, err = LoadDefault(getenv)
	if err != nil || !slices.Equal(c.Cluster, []string{"http://127.0.0.1:23791", "http://127.0.0.1:23792"}) ||
		c.SourceOf("CLUSTER").String() != "env VPSCTL_CLUSTER" {
		t.Fatalf("%+v %v", c, err)
	}
	env[ClusterEnv] = "127.0.0.1:23791"
	if _, err := LoadDefault(getenv); !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), "env VPSCTL_CLUSTER") {
		t.Fatalf("bad env cluster: %v", err)
	}
	delete(env, ClusterEnv)
	env = map[string]string{PathEnv: filepath.Join(dir, "nope")}
	if _, err := LoadDefault(getenv); !errors.Is(err, ErrBadConfig) {
		t.Fatalf("missing VPSCTL_CONFIG file: %v", err)
	}
	env = map[string]string{}
	if p, explicit := Path(getenv); p != DefaultPath || explicit {
		t.Fatal(p, explicit)
	}
	os.WriteFile(f, []byte("ROOT=x y\n"), 0o644)
	env[PathEnv] = f
	if _, err := LoadDefault(getenv); !errors.Is(err, ErrBadConfig) {
		t.Fatalf("malformed: %v", err)
	}
}

func TestNodeName(t *testing.T) {
	c := Defaults()
	h, _ := os.Hostname()
	if n := c.NodeName(); n == "" || (validDomain(h) && n != h) {
		t.Fatalf("default node %q, host name %q", n, h)
	}
	c.Node = "node-7.eu1"
	if c.NodeName() != "node-7.eu1" {
		t.Fatal(c.NodeName())
	}
}

func TestOverride(t *testing.T) {
	c := Defaults()
	if err := c.Override("MEMORY", "256M", Source{Kind: FromFlag, Name: "memory"}); err != nil {
		t.Fatal(err)
	}
	if c.Limits.Memory != "256M" || c.SourceOf("MEMORY").String() != "flag --memory" {
		t.Fatalf("%v %v", c.Limits.Memory, c.SourceOf("MEMORY"))
	}
	before := *c
	beforeSettings := c.Settings()
	for _, kv := range [][2]string{{"MEMORY", "1"}, {"NOPE", "1"}, {"UID_POOL_START", "4294967000"}} {
		err := c.Override(kv[0], kv[1], Source{Kind: FromFlag, Name: "x"})
		if !errors.Is(err, ErrBadConfig) || !strings.HasPrefix(err.Error(), "flag --x: ") {
			t.Fatalf("%v: %v", kv, err)
		}
		after := *c
		after.settings, before.settings = nil, nil
		if !reflect.DeepEqual(after, before) || !reflect.DeepEqual(c.Settings(), beforeSettings) {
			t.Fatalf("%v: refused override changed the config", kv)
		}
	}
}

func TestShow(t *testing.T) {
	c, err := Parse("/etc/vpsctl/vpsctl.conf", []byte("MEMORY=\"2G\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := Show(&b, c.Settings()); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != len(Keys()) {
		t.Fatalf("%d lines", len(lines))
	}
	if !regexp.MustCompile(`^MEMORY="2G" +# /etc/vpsctl/vpsctl.conf:1$`).MatchString(lines[2]) ||
		!regexp.MustCompile(`^ROOT="/var/lib/vpsctl" +# default$`).MatchString(lines[0]) {
		t.Fatalf("show:\n%s", b.String())
	}
	// What show prints, less its source column, is a configuration that loads to the same values.
	c2, err := Parse("show", stripSources(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range c2.Settings() {
		if s.Value != c.Settings()[i].Value {
			t.Fatalf("%s: %q vs %q", s.Key, s.Value, c.Settings()[i].Value)
		}
	}
	js, err := json.Marshal(c.Settings()[2])
	if err != nil || string(js) != `{"key":"MEMORY","value":"2G","source":"/etc/vpsctl/vpsctl.conf:1"}` {
		t.Fatalf("json %s %v", js, err)
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"0": 0, "60": time.Minute, "90s": 90 * time.Second, "1h": time.Hour, "86400": 24 * time.Hour, "1.5s": 1500 * time.Millisecond} {
		if d, err := ParseDuration(in); err != nil || d != want {
			t.Errorf("%q: %v %v", in, d, err)
		}
	}
	for _, in := range []string{"", "-1s", "86401", "25h", "1x", "99999999999999999999"} {
		if _, err := ParseDuration(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

func TestLexMatchesStore(t *testing.T) {
	text := "ID=\"1\"\n  # c\nA=\"x \\\"y\\\" \\\\ \\n\"\nB=plain\nC=\"\"\n"
	es, err := Lex("f", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{{"ID", "1", 1}, {"A", "x \"y\" \\ \n", 3}, {"B", "plain", 4}, {"C", "", 5}}
	if !reflect.DeepEqual(es, want) {
		t.Fatalf("%+v", es)
	}
	for _, e := range es {
		if got, err := Lex("q", []byte(e.Key+"="+store.Quote(e.Value))); err != nil || got[0].Value != e.Value {
			t.Fatalf("quote round trip %q: %v %v", e.Value, got, err)
		}
	}
}

// FuzzLex holds Lex to store.ParseConfig's syntax: with an ID line in front, store accepts
// exactly what Lex accepts, and reads the same values.
func FuzzLex(f *testing.F) {
	f.Add([]byte("MEMORY=\"1G\"\n# c\n\nNAMESERVER=\"1.2.3.4 ::1\"\n"))
	f.Add([]byte("X_Y=\"\\\"\\\\\\n\"\n"))
	f.Add([]byte("bad\n"))
	f.Add([]byte("A=\"x\\q\"\n"))
	f.Add([]byte("A=x y\n"))
	f.Add([]byte("A=\"\n"))
	f.Add([]byte("\t A=\"b\" \r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		es, err := Lex("f", b)
		c, serr := store.ParseConfig(append([]byte("ID=\"1\"\n"), b...))
		if (err == nil) != (serr == nil) {
			// store also refuses a second, bad ID; Lex takes ID as any key.
			for _, e := range es {
				if e.Key == "ID" {
					return
				}
			}
			t.Fatalf("Lex err %v, store err %v", err, serr)
		}
		if err != nil {
			var le *LineError
			if !errors.As(err, &le) || !errors.Is(err, ErrBadConfig) || le.Line < 1 {
				t.Fatalf("error %v is not a LineError", err)
			}
			return
		}
		got := map[string]string{}
		for _, e := range es {
			if e.Key == "ID" {
				return
			}
			got[e.Key] = e.Value
		}
		// Store's view of the same keys, through its Format (which quotes every value).
		sv, err := Lex("store", c.Format())
		if err != nil {
			t.Fatalf("store's output does not lex: %v", err)
		}
		want := map[string]string{}
		for _, e := range sv {
			if e.Key != "ID" {
				want[e.Key] = e.Value
			}
		}
		for k, v := range got {
			// Store splits its list keys on blanks and joins them with one space; an empty
			// list (a blank value) it does not write at all.
			norm := strings.Join(strings.Fields(v), " ")
			if w, ok := want[k]; !ok && norm != "" || ok && w != v && w != norm {
				t.Fatalf("key %s: Lex %q, store %q", k, v, w)
			}
		}
	})
}

// FuzzParse: Parse never panics, refuses only with a LineError, and whatever it accepts shows
// as a configuration that parses to the same values.
func FuzzParse(f *testing.F) {
	f.Add([]byte("MEMORY=\"2G\"\nROOT=/srv\n"))
	f.Add([]byte("UID_POOL_START=\"4000000000\"\nUID_POOL_SIZE=\"400000000\"\n"))
	f.Add([]byte("NAMESERVER=\"inherit\"\nSEARCHDOMAIN=\"a.b c\"\nSTOP_TIMEOUT=90\n"))
	f.Add([]byte("LOG_KEEP=\"5\"\nEVENTS_LOG_MAX=\"1G\"\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse("f", b)
		if err != nil {
			var le *LineError
			if !errors.As(err, &le) || !errors.Is(err, ErrBadConfig) {
				t.Fatalf("error %v is not a LineError", err)
			}
			return
		}
		var out bytes.Buffer
		Show(&out, c.Settings())
		c2, err := Parse("show", stripSources(out.String()))
		if err != nil {
			t.Fatalf("show output %q: %v", out.String(), err)
		}
		for i, s := range c2.Settings() {
			if s.Value != c.Settings()[i].Value {
				t.Fatalf("%s: %q vs %q", s.Key, s.Value, c.Settings()[i].Value)
			}
		}
	})
}

// stripSources removes Show's source column.
func stripSources(s string) []byte {
	var b strings.Builder
	for _, line := range strings.Split(s, "\n") {
		if i := strings.LastIndex(line, "  # "); i >= 0 {
			line = line[:i]
		}
		b.WriteString(line + "\n")
	}
	return []byte(b.String())
}

// BenchmarkLoadSample: what every command pays to read the host configuration (the shipped
// sample, every key commented, and a file setting every key).
func BenchmarkLoadSample(b *testing.B) {
	path := filepath.Join(sampleDir, "vpsctl.conf")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Load(path, true); err != nil {
			b.Fatal(err)
		}
	}
}

// Defaults hands out copies: changing one changes no other, nor the next.
func TestDefaultsAreCopies(t *testing.T) {
	a := Defaults()
	a.Limits.Memory, a.Root = "2G", "/x"
	if err := a.Override("NAMESERVER", "198.18.0.1", Source{Kind: FromFlag, Name: "nameserver"}); err != nil {
		t.Fatal(err)
	}
	b := Defaults()
	if b.Limits.Memory != "1G" || b.Root != "/var/lib/vpsctl" || b.Nameservers != nil || b.SourceOf("NAMESERVER").Kind != FromDefault {
		t.Fatalf("%+v", b)
	}
}
