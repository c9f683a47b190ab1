package hostconf

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vpsctl/vpsctl/cgroup"
	vpsspec "github.com/vpsctl/vpsctl/internal/spec"
	"github.com/vpsctl/vpsctl/internal/sysfile"
	"github.com/vpsctl/vpsctl/store"
	"github.com/vpsctl/vpsctl/template"
	"github.com/vpsctl/vpsctl/uid"
	"golang.org/x/sys/unix"
)

// DefaultPath is where the host configuration lives unless VPSCTL_CONFIG names another file.
const DefaultPath = "/etc/vpsctl/vpsctl.conf"

// PathEnv overrides DefaultPath (tests, a second state root with its own settings).
const PathEnv = "VPSCTL_CONFIG"

// RootEnv overrides ROOT, as it always did (before the host configuration existed, it was the
// only way besides --root to choose a state root).
const RootEnv = "VPSCTL_ROOT"

// ClusterEnv overrides CLUSTER (a host's state root tried against another cluster, tests).
const ClusterEnv = "VPSCTL_CLUSTER"

// Limits are a VPS's resource limits as vps.conf and the command-line flags spell them
// (vzctl style: "256M", "unlimited"); "" means not set (no limit, or the kernel's default
// weight). They are strings because they are stored as given: a plan or default copied into
// a VPS's config reads exactly as the administrator wrote it.
type Limits struct {
	Memory, Swap, CPUs, CPULimit, CPUUnits, NumProc, IOLimit, IOWeight string
}

// LimitKeys are the configuration keys of Limits, in vps.conf's order; each is also the
// upper-cased name of the matching create/set flag (MEMORY: --memory).
var LimitKeys = []string{"MEMORY", "SWAP", "CPUS", "CPULIMIT", "CPUUNITS", "NUMPROC", "IOLIMIT", "IOWEIGHT"}

// Field returns the field of l that key names, or nil for a key that is not a limit.
func (l *Limits) Field(key string) *string {
	switch key {
	case "MEMORY":
		return &l.Memory
	case "SWAP":
		return &l.Swap
	case "CPUS":
		return &l.CPUs
	case "CPULIMIT":
		return &l.CPULimit
	case "CPUUNITS":
		return &l.CPUUnits
	case "NUMPROC":
		return &l.NumProc
	case "IOLIMIT":
		return &l.IOLimit
	case "IOWEIGHT":
		return &l.IOWeight
	}
	return nil
}

// Over returns base with every limit that l sets replacing base's: l is the higher-precedence
// layer (a plan over the host defaults, command-line flags over a plan).
func (l Limits) Over(base Limits) Limits {
	out := base
	for _, k := range LimitKeys {
		if v := *l.Field(k); v != "" {
			*out.Field(k) = v
		}
	}
	return out
}

// Config is the effective host configuration. The zero value is not useful: get one from
// Defaults, Parse, Load or LoadDefault.
type Config struct {
	// File is the configuration file that was read; "" when there was none (all defaults).
	File string

	Root            string // state root (ROOT)
	DefaultTemplate string // template of a create without --template; "" = --template required
	Limits          Limits // limits of a create that names neither a limit nor a plan

	UIDPoolStart uint32 // first host UID of the pool VPS ranges come from
	UIDPoolSize  uint32 // IDs in the pool
	UIDRangeSize uint32 // IDs per VPS (create --idmap-size)

	LockWait          time.Duration // how long a command waits for another's lock
	StartTimeout      time.Duration // start: until the VPS's init runs
	StopTimeout       time.Duration // stop: graceful period before the kill
	CheckpointTimeout time.Duration // checkpoint and restore, each

	StartAllParallel int           // start --all: VPSs booted at once within a boot-order level
	StartAllTimeout  time.Duration // start --all: bound of the whole; what has not begun by then is skipped
	StopAllParallel  int           // stop --all: VPSs stopped at once
	StopAllTimeout   time.Duration // stop --all: graceful period for all together, then kill

	Nameservers   []string // resolv.conf servers of a new VPS ("inherit" = the host's); none = the template's
	SearchDomains []string

	// Cluster is the etcd endpoints of the cluster registry (package cluster), "" for none: a
	// host on its own. ClusterCert and ClusterKey are this host's TLS client certificate and
	// key, ClusterCA the certificate authority the endpoints' certificates must chain to ("":
	// the system's). ClusterTimeout bounds each request to the registry.
	Cluster                            []string
	ClusterCert, ClusterKey, ClusterCA string
	ClusterTimeout                     time.Duration
	Node                               string // this host's name in the cluster ("": its host name; see NodeName)

	EventsLogMax int64 // bytes of STATE/events.log before it is rotated
	AuditLogMax  int64 // bytes of STATE/audit.log before it is rotated
	LogKeep      int   // rotated generations kept of each (events.log.1 .. events.log.N)

	settings map[string]setting
}

// setting is a key's effective value as written, and where it came from.
type setting struct {
	raw string
	src Source
}

// SourceKind says what kind of place a value came from.
type SourceKind int

// Source kinds, lowest precedence first.
const (
	FromDefault SourceKind = iota
	FromFile
	FromPlan
	FromEnv
	FromFlag
)

// Source is where an effective value came from.
type Source struct {
	Kind SourceKind
	File string // FromFile, FromPlan: the file
	Line int    // FromFile, FromPlan: its line
	Name string // FromPlan: the plan; FromEnv: the variable; FromFlag: the flag without dashes
}

// String renders s as config show prints it: "default", "/etc/vpsctl/vpsctl.conf:12",
// "plan small (/etc/vpsctl/plans/small.conf:3)", "env VPSCTL_ROOT", "flag --memory".
func (s Source) String() string {
	switch s.Kind {
	case FromFile:
		return fmt.Sprintf("%s:%d", s.File, s.Line)
	case FromPlan:
		return fmt.Sprintf("plan %s (%s:%d)", s.Name, s.File, s.Line)
	case FromEnv:
		return "env " + s.Name
	case FromFlag:
		return "flag --" + s.Name
	}
	return "default"
}

// MarshalText makes a Source a plain string in JSON.
func (s Source) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Setting is one effective value, for config show.
type Setting struct {
	Key    string `json:"key"`
	Value  string `json:"value"`
	Source Source `json:"source"`
}

// spec is one known key: its default as written in a file, and how a value is checked and
// stored. apply returns a plain message (the caller adds file and line).
type spec struct {
	key   string
	def   string
	apply func(c *Config, v string) error
}

// specs lists the known keys in the order config show prints them and the sample file
// documents them. The limits' defaults are spec.Defaults and the UID pool's uid.DefaultPool,
// which the runtime applies when no host configuration is given (a program that imports the
// library): the two cannot drift apart.
var specs = []spec{
	{"ROOT", "/var/lib/vpsctl", func(c *Config, v string) error {
		if !filepath.IsAbs(v) || filepath.Clean(v) != v || v == "/" {
			return errors.New("want a clean absolute path other than /")
		}
		c.Root = v
		return nil
	}},
	{"DEFAULT_TEMPLATE", "", func(c *Config, v string) error {
		if v != "" {
			if err := template.ValidateName(v); err != nil {
				return err
			}
		}
		c.DefaultTemplate = v
		return nil
	}},
	{"MEMORY", vpsspec.Defaults.Memory, limit(func(l *Limits) *string { return &l.Memory }, checkMemory)},
	{"SWAP", vpsspec.Defaults.Swap, limit(func(l *Limits) *string { return &l.Swap }, checkSize)},
	{"CPUS", vpsspec.Defaults.CPUs, limit(func(l *Limits) *string { return &l.CPUs }, checkInt(0, 4096))},
	{"CPULIMIT", vpsspec.Defaults.CPULimit, limit(func(l *Limits) *string { return &l.CPULimit }, checkInt(0, 409600))},
	{"CPUUNITS", vpsspec.Defaults.CPUUnits, limit(func(l *Limits) *string { return &l.CPUUnits }, checkInt(8, 500000))},
	{"NUMPROC", vpsspec.Defaults.NumProc, limit(func(l *Limits) *string { return &l.NumProc }, checkNumProc)},
	{"IOLIMIT", vpsspec.Defaults.IOLimit, limit(func(l *Limits) *string { return &l.IOLimit }, checkSize)},
	{"IOWEIGHT", vpsspec.Defaults.IOWeight, limit(func(l *Limits) *string { return &l.IOWeight }, checkInt(10, 1000))},
	{"UID_POOL_START", strconv.FormatUint(uint64(uid.DefaultPool.Base), 10), func(c *Config, v string) error {
		// Below uid.MinPoolBase a VPS's root could be mapped onto a host account.
		n, err := parseUint32(v, uid.MinPoolBase)
		c.UIDPoolStart = n
		return err
	}},
	{"UID_POOL_SIZE", strconv.FormatUint(uint64(uid.DefaultPool.Size), 10), func(c *Config, v string) error {
		n, err := parseUint32(v, 1)
		c.UIDPoolSize = n
		return err
	}},
	{"UID_RANGE_SIZE", "65536", func(c *Config, v string) error {
		n, err := parseUint32(v, 1)
		c.UIDRangeSize = n
		return err
	}},
	{"LOCK_WAIT", "3s", duration(func(c *Config) *time.Duration { return &c.LockWait }, 0)},
	{"START_TIMEOUT", "60s", duration(func(c *Config) *time.Duration { return &c.StartTimeout }, time.Second)},
	{"STOP_TIMEOUT", "60s", duration(func(c *Config) *time.Duration { return &c.StopTimeout }, time.Second)},
	{"CHECKPOINT_TIMEOUT", "10m", duration(func(c *Config) *time.Duration { return &c.CheckpointTimeout }, time.Second)},
	{"STARTALL_PARALLEL", "4", count(func(c *Config) *int { return &c.StartAllParallel }, 1, 1024)},
	{"STARTALL_TIMEOUT", "10m", duration(func(c *Config) *time.Duration { return &c.StartAllTimeout }, time.Second)},
	{"STOPALL_PARALLEL", "64", count(func(c *Config) *int { return &c.StopAllParallel }, 1, 65536)},
	{"STOPALL_TIMEOUT", "120s", duration(func(c *Config) *time.Duration { return &c.StopAllTimeout }, time.Second)},
	{"NAMESERVER", "", func(c *Config, v string) error {
		ns := strings.Fields(v)
		for _, a := range ns {
			if a == "inherit" {
				if len(ns) != 1 {
					return errors.New(`"inherit" stands alone`)
				}
				continue
			}
			if _, err := netip.ParseAddr(a); err != nil {
				return fmt.Errorf("%q is not an IP address", a)
			}
		}
		c.Nameservers = nilIfEmpty(ns)
		return nil
	}},
	{"SEARCHDOMAIN", "", func(c *Config, v string) error {
		ds := strings.Fields(v)
		for _, d := range ds {
			if !validDomain(d) {
				return fmt.Errorf("%q is not a domain name", d)
			}
		}
		c.SearchDomains = nilIfEmpty(ds)
		return nil
	}},
	{"CLUSTER", "", func(c *Config, v string) error {
		eps, err := ParseEndpoints(v)
		c.Cluster = eps
		return err
	}},
	{"CLUSTER_CERT", "", clusterFile(func(c *Config) *string { return &c.ClusterCert })},
	{"CLUSTER_KEY", "", clusterFile(func(c *Config) *string { return &c.ClusterKey })},
	{"CLUSTER_CA", "", clusterFile(func(c *Config) *string { return &c.ClusterCA })},
	{"CLUSTER_TIMEOUT", "3s", duration(func(c *Config) *time.Duration { return &c.ClusterTimeout }, 100*time.Millisecond)},
	{"NODE", "", func(c *Config, v string) error {
		if v != "" && !validDomain(v) {
			return errors.New("want letters, digits, '-' and '.'")
		}
		c.Node = v
		return nil
	}},
	{"EVENTS_LOG_MAX", "10M", logSize(func(c *Config) *int64 { return &c.EventsLogMax })},
	{"AUDIT_LOG_MAX", "10M", logSize(func(c *Config) *int64 { return &c.AuditLogMax })},
	{"LOG_KEEP", "3", count(func(c *Config) *int { return &c.LogKeep }, 1, 100)},
}

var specByKey = func() map[string]*spec {
	m := make(map[string]*spec, len(specs))
	for i := range specs {
		m[specs[i].key] = &specs[i]
	}
	return m
}()

func limit(field func(*Limits) *string, check func(string) error) func(*Config, string) error {
	return func(c *Config, v string) error {
		if v != "" {
			if err := check(v); err != nil {
				return err
			}
		}
		*field(&c.Limits) = v
		return nil
	}
}

// The limit checks mirror runtime/limits.go's resources(), which validates the same values
// given as flags: a default must be something create accepts.

func checkSize(v string) error {
	_, err := cgroup.ParseSize(v)
	return err
}

func checkMemory(v string) error {
	n, err := cgroup.ParseSize(v)
	if err != nil {
		return err
	}
	if n >= 0 && n < 4<<20 {
		return errors.New("at least 4M")
	}
	return nil
}

func checkNumProc(v string) error {
	n, err := cgroup.ParseSize(v)
	if err != nil {
		return err
	}
	if n == 0 {
		return errors.New("a VPS needs at least its init")
	}
	if n > 4<<20 {
		return errors.New("at most 4194304 (the kernel's PID limit), or unlimited")
	}
	return nil
}

func checkInt(lo, hi int) func(string) error {
	return func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < lo || n > hi || strconv.Itoa(n) != v {
			return fmt.Errorf("want an integer in %d..%d", lo, hi)
		}
		return nil
	}
}

func count(field func(*Config) *int, lo, hi int) func(*Config, string) error {
	return func(c *Config, v string) error {
		if err := checkInt(lo, hi)(v); err != nil {
			return err
		}
		*field(c), _ = strconv.Atoi(v)
		return nil
	}
}

// maxDuration bounds every timeout: a typo such as "60h" for "60s" should be refused rather
// than make a shutdown hang for days.
const maxDuration = 24 * time.Hour

// ParseDuration reads a timeout as vz.conf writes them (whole seconds: "60") or as Go does
// ("90s", "2m30s"). Negative values are refused.
func ParseDuration(v string) (time.Duration, error) {
	if v != "" && isDigits(v) {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n > int64(maxDuration/time.Second) {
			return 0, fmt.Errorf("%q: at most %v", v, maxDuration)
		}
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%q: want seconds or a duration such as 90s or 2m", v)
	}
	if d < 0 || d > maxDuration {
		return 0, fmt.Errorf("%q: want 0..%v", v, maxDuration)
	}
	return d, nil
}

func duration(field func(*Config) *time.Duration, min time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := ParseDuration(v)
		if err != nil {
			return err
		}
		if d < min {
			return fmt.Errorf("%q: at least %v", v, min)
		}
		*field(c) = d
		return nil
	}
}

func logSize(field func(*Config) *int64) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := cgroup.ParseSize(v)
		if err != nil {
			return err
		}
		// A log must hold a few lines (one event is well under 64 KiB) and must be bounded.
		if n < 64<<10 {
			return errors.New("want a size of at least 64K (unlimited is not allowed: the log is bounded)")
		}
		*field(c) = n
		return nil
	}
}

func parseUint32(v string, min uint64) (uint32, error) {
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil || !isDigits(v) || n < min || strconv.FormatUint(n, 10) != v {
		return 0, fmt.Errorf("want an integer in %d..%d", min, uint64(math.MaxUint32))
	}
	return uint32(n), nil
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// validDomain accepts host and domain names: labels of letters, digits and '-', joined by
// dots, at most 253 characters (RFC 1035 as resolv.conf takes them).
func validDomain(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			ch := label[i]
			if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-') {
				return false
			}
		}
	}
	return true
}

// ParseEndpoints reads CLUSTER: etcd client URLs separated by commas (or spaces),
// "http://h1:2379,https://h2:2379". Each is http or https with a host and a port and nothing
// else (no path, user or query): that is all an etcd client endpoint is. "" is no cluster.
func ParseEndpoints(v string) ([]string, error) {
	var out []string
	for _, e := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
		u, err := url.Parse(e)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Port() == "" ||
			u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("%q: want etcd client URLs such as http://h1:2379,https://h2:2379", e)
		}
		if slices.Contains(out, e) {
			return nil, fmt.Errorf("%q given twice", e)
		}
		out = append(out, e)
	}
	return out, nil
}

// clusterFile checks a TLS file setting: an absolute path ("" for none). Whether the file is
// there and holds a certificate is the cluster agent's to find out, when it connects: a
// missing certificate must not keep commands that never use the cluster from running.
func clusterFile(field func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error {
		if v != "" && (!filepath.IsAbs(v) || filepath.Clean(v) != v) {
			return errors.New("want a clean absolute path")
		}
		*field(c) = v
		return nil
	}
}

// NodeName is this host's name in the cluster: NODE, or else the machine's host name.
func (c *Config) NodeName() string {
	if c.Node != "" {
		return c.Node
	}
	h, err := os.Hostname()
	if err != nil || !validDomain(h) {
		return "localhost"
	}
	return h
}

// Defaults returns the built-in configuration: what a host without a file gets.
func Defaults() *Config {
	c := *builtin()
	c.settings = maps.Clone(c.settings)
	c.Nameservers, c.SearchDomains = slices.Clone(c.Nameservers), slices.Clone(c.SearchDomains)
	return &c
}

// builtin is the defaults, checked and built once per process (every command starts from
// them; building them was a third of reading a configuration).
var builtin = sync.OnceValue(func() *Config {
	c := &Config{settings: make(map[string]setting, len(specs))}
	for _, s := range specs {
		if err := s.apply(c, s.def); err != nil {
			panic("hostconf: built-in default " + s.key + "=" + s.def + ": " + err.Error())
		}
		c.settings[s.key] = setting{raw: s.def}
	}
	return c
})

// Parse reads a host configuration's text; name is the file's path, used in errors and
// sources. Keys not set keep their defaults. A key given twice takes its last value, as a
// shell sourcing the file would. Errors are *LineError (ErrBadConfig). Parse is pure.
func Parse(name string, text []byte) (*Config, error) {
	entries, err := Lex(name, text)
	if err != nil {
		return nil, err
	}
	c := Defaults()
	c.File = name
	for _, e := range entries {
		if err := c.set(e.Key, e.Value, Source{Kind: FromFile, File: name, Line: e.Line}); err != nil {
			return nil, err
		}
	}
	if err := c.crossCheck(); err != nil {
		return nil, err
	}
	return c, nil
}

// set checks and stores one value. Errors name src's file and line when it has them.
func (c *Config) set(key, v string, src Source) error {
	s, ok := specByKey[key]
	if !ok {
		return c.errAt(src, fmt.Sprintf("unknown key %s", key), nil)
	}
	if err := s.apply(c, v); err != nil {
		return c.errAt(src, fmt.Sprintf("%s=%s", key, store.Quote(v)), err)
	}
	c.settings[key] = setting{raw: v, src: src}
	return nil
}

func (c *Config) errAt(src Source, msg string, cause error) error {
	switch src.Kind {
	case FromFile, FromPlan:
		return &LineError{File: src.File, Line: src.Line, Msg: msg, Err: cause}
	}
	if cause != nil {
		return fmt.Errorf("%s: %s: %v: %w", src, msg, cause, ErrBadConfig)
	}
	return fmt.Errorf("%s: %s: %w", src, msg, ErrBadConfig)
}

// crossCheck checks what no single key can: the UID pool must fit in 32 bits and hold at
// least one VPS's range; a TLS client certificate comes with its key. The error blames the
// line of the key involved set last in the file.
func (c *Config) crossCheck() error {
	end := uint64(c.UIDPoolStart) + uint64(c.UIDPoolSize)
	keys := []string{"UID_POOL_START", "UID_POOL_SIZE", "UID_RANGE_SIZE"}
	var msg string
	switch {
	case end > math.MaxUint32:
		// uid.MaxID is MaxUint32-1: the last ID of the pool must be below the kernel's (uid_t)-1.
		msg = fmt.Sprintf("UID pool %d+%d ends past 4294967295", c.UIDPoolStart, c.UIDPoolSize)
	case c.UIDRangeSize > c.UIDPoolSize:
		msg = fmt.Sprintf("UID_RANGE_SIZE %d is larger than the pool (UID_POOL_SIZE %d)", c.UIDRangeSize, c.UIDPoolSize)
	case (c.ClusterCert == "") != (c.ClusterKey == ""):
		// A certificate is useless without its key, and a key without its certificate.
		msg = "CLUSTER_CERT and CLUSTER_KEY go together: set both or neither"
		keys = []string{"CLUSTER_CERT", "CLUSTER_KEY"}
	default:
		return nil
	}
	blame := Source{}
	for _, k := range keys {
		if s := c.settings[k].src; s.Kind > blame.Kind || s.Kind == blame.Kind && s.Line > blame.Line {
			blame = s
		}
	}
	return c.errAt(blame, msg, nil)
}

// Override sets key from the environment or the command line (src says which), with the same
// checks as a file's value; the value then shows that source in Settings.
// A refused value leaves c as it was.
func (c *Config) Override(key, value string, src Source) error {
	old, oldSetting, had := *c, c.settings[key], true
	if _, ok := c.settings[key]; !ok {
		had = false
	}
	err := c.set(key, value, src)
	if err == nil {
		err = c.crossCheck()
	}
	if err != nil {
		settings := c.settings
		*c = old
		c.settings = settings
		if had {
			c.settings[key] = oldSetting
		}
	}
	return err
}

// Settings returns every key's effective value and its source, in the order config show prints them.
func (c *Config) Settings() []Setting {
	out := make([]Setting, 0, len(specs))
	for _, s := range specs {
		st := c.settings[s.key]
		out = append(out, Setting{Key: s.key, Value: st.raw, Source: st.src})
	}
	return out
}

// SourceOf returns where key's effective value came from.
func (c *Config) SourceOf(key string) Source { return c.settings[key].src }

// PlansDir is the directory of the plans: "plans" beside the configuration file (beside
// DefaultPath when there is no file), so a test or second installation that points
// VPSCTL_CONFIG elsewhere gets its own plans too.
func (c *Config) PlansDir() string {
	f := c.File
	if f == "" {
		f = DefaultPath
	}
	return filepath.Join(filepath.Dir(f), "plans")
}

// Path returns the configuration file to read: getenv(PathEnv) if set, else DefaultPath; and
// whether it was named explicitly (then it must exist).
func Path(getenv func(string) string) (path string, explicit bool) {
	if p := getenv(PathEnv); p != "" {
		return p, true
	}
	return DefaultPath, false
}

// maxFile bounds what Load reads: a host configuration is a few KiB; anything larger is the
// wrong file.
const maxFile = 1 << 20

// Load reads the configuration file at path. A missing file is all defaults unless explicit;
// an explicit path that is missing, or a file that is too large or malformed, is ErrBadConfig.
// Other read errors (permissions) are returned as they are.
func Load(path string, explicit bool) (*Config, error) {
	text, err := readBounded(path)
	if errors.Is(err, fs.ErrNotExist) && !explicit {
		return Defaults(), nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s (%s): no such file: %w", path, PathEnv, ErrBadConfig)
	}
	if err != nil {
		return nil, err
	}
	return Parse(path, text)
}

// readBounded reads a configuration file with plain system calls (every command reads one:
// an os.File's poller registration and io.ReadAll's growth were two thirds of the cost), and
// refuses one larger than maxFile.
func readBounded(path string) ([]byte, error) {
	fd, err := sysfile.Open(path, unix.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, &os.PathError{Op: "fstat", Path: path, Err: err}
	}
	// The size is a hint (the file may change while read); the bound is enforced on what is
	// actually read.
	b := make([]byte, 0, min(max(st.Size, 0), maxFile)+1)
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := unix.Read(fd, b[len(b):cap(b)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "read", Path: path, Err: err}
		}
		b = b[:len(b)+n]
		if len(b) > maxFile {
			return nil, fmt.Errorf("%s: larger than %d bytes: %w", path, maxFile, ErrBadConfig)
		}
		if n == 0 {
			return b, nil
		}
	}
}

// LoadDefault is what a command does first: it reads the file Path names and applies the
// environment's VPSCTL_ROOT over ROOT and VPSCTL_CLUSTER over CLUSTER. Command-line flags are the caller's to apply with
// Override (source FromFlag).
func LoadDefault(getenv func(string) string) (*Config, error) {
	path, explicit := Path(getenv)
	c, err := Load(path, explicit)
	if err != nil {
		return nil, err
	}
	if r := getenv(RootEnv); r != "" {
		if err := c.Override("ROOT", r, Source{Kind: FromEnv, Name: RootEnv}); err != nil {
			return nil, err
		}
	}
	if v := getenv(ClusterEnv); v != "" {
		if err := c.Override("CLUSTER", v, Source{Kind: FromEnv, Name: ClusterEnv}); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Show writes settings as config show prints them: one KEY="value" per line, as a
// configuration file spells it, then "# " and its source in a column of its own. (The syntax
// has no trailing comments: strip them to turn the output into a file.)
func Show(w io.Writer, settings []Setting) error {
	width := 0
	lines := make([]string, len(settings))
	for i, s := range settings {
		lines[i] = s.Key + "=" + store.Quote(s.Value)
		width = max(width, len(lines[i]))
	}
	var b strings.Builder
	for i, s := range settings {
		fmt.Fprintf(&b, "%-*s  # %s\n", width, lines[i], s.Source)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
