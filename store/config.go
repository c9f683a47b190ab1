package store

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/vpsctl/vpsctl/container"
)

// ErrBadConfig reports a config file that cannot be parsed.
var ErrBadConfig = errors.New("bad config")

// Config is a VPS's persistent configuration, kept in vps.conf in vzctl's KEY="value" style so
// that an administrator can read and diff it. Unknown keys are kept (Extra) and written back,
// so a newer vpsctl's settings survive an older one's rewrite.
type Config struct {
	ID         container.ID
	Name       string
	Hostname   string
	Domainname string
	Template   string
	Namespaces []string // subset of uts,ipc,pid,mnt,net,user,cgroup
	IDMap      string   // "HOST:SIZE" host ID range of the user namespace; "" without one

	Memory   string // sizes as given by the user ("64M", "unlimited"); "" = not set
	Swap     string
	CPUs     string
	CPULimit string
	CPUUnits string
	NumProc  string
	IOLimit  string
	IOWeight string
	// DiskSpace is vzctl's DISKSPACE, "SOFT:HARD" in KiB: the VPS's files are in a disk image
	// of HARD's size (package disk); "" = none, its files are a directory of the host's.
	DiskSpace string

	IPs           []string
	NetIfs        []string
	Nameservers   []string
	SearchDomains []string
	Capabilities  []string // NAME:on|off overrides of the default bounding set
	Devices       []string // extra device rules
	Features      []string // vzctl's --features: tun, fuse, ppp
	BindMounts    []string // HOSTDIR:VPSDIR[:ro]

	OnBoot    string // vzctl's ONBOOT: "yes" starts the VPS with the host (start --all); "" = no
	BootOrder string // vzctl's BOOTORDER: higher boots first; "" = 0

	Extra map[string]string
}

type field struct {
	key  string
	str  func(c *Config) *string
	list func(c *Config) *[]string
}

// fields lists the known keys in the order they are written.
var fields = []field{
	{key: "NAME", str: func(c *Config) *string { return &c.Name }},
	{key: "HOSTNAME", str: func(c *Config) *string { return &c.Hostname }},
	{key: "DOMAINNAME", str: func(c *Config) *string { return &c.Domainname }},
	{key: "TEMPLATE", str: func(c *Config) *string { return &c.Template }},
	{key: "NAMESPACES", list: func(c *Config) *[]string { return &c.Namespaces }},
	{key: "IDMAP", str: func(c *Config) *string { return &c.IDMap }},
	{key: "MEMORY", str: func(c *Config) *string { return &c.Memory }},
	{key: "SWAP", str: func(c *Config) *string { return &c.Swap }},
	{key: "CPUS", str: func(c *Config) *string { return &c.CPUs }},
	{key: "CPULIMIT", str: func(c *Config) *string { return &c.CPULimit }},
	{key: "CPUUNITS", str: func(c *Config) *string { return &c.CPUUnits }},
	{key: "NUMPROC", str: func(c *Config) *string { return &c.NumProc }},
	{key: "IOLIMIT", str: func(c *Config) *string { return &c.IOLimit }},
	{key: "IOWEIGHT", str: func(c *Config) *string { return &c.IOWeight }},
	{key: "DISKSPACE", str: func(c *Config) *string { return &c.DiskSpace }},
	{key: "IP_ADDRESS", list: func(c *Config) *[]string { return &c.IPs }},
	{key: "NETIF", list: func(c *Config) *[]string { return &c.NetIfs }},
	{key: "NAMESERVER", list: func(c *Config) *[]string { return &c.Nameservers }},
	{key: "SEARCHDOMAIN", list: func(c *Config) *[]string { return &c.SearchDomains }},
	{key: "CAPABILITY", list: func(c *Config) *[]string { return &c.Capabilities }},
	{key: "DEVICES", list: func(c *Config) *[]string { return &c.Devices }},
	{key: "FEATURES", list: func(c *Config) *[]string { return &c.Features }},
	{key: "BINDMOUNT", list: func(c *Config) *[]string { return &c.BindMounts }},
	{key: "ONBOOT", str: func(c *Config) *string { return &c.OnBoot }},
	{key: "BOOTORDER", str: func(c *Config) *string { return &c.BootOrder }},
}

// value is c's value of f as vps.conf spells it.
func (f field) value(c *Config) string {
	if f.str != nil {
		return *f.str(c)
	}
	return strings.Join(*f.list(c), " ")
}

// Changed lists the keys whose values differ between c and o, in vps.conf's order (unknown
// keys last, sorted): what a change of a VPS's settings changed, for its "set" event.
func (c *Config) Changed(o *Config) []string {
	var out []string
	for _, f := range fields {
		if f.value(c) != f.value(o) {
			out = append(out, f.key)
		}
	}
	var extra []string
	for k, v := range c.Extra {
		if w, ok := o.Extra[k]; !ok || w != v {
			extra = append(extra, k)
		}
	}
	for k := range o.Extra {
		if _, ok := c.Extra[k]; !ok {
			extra = append(extra, k)
		}
	}
	sort.Strings(extra)
	return append(out, extra...)
}

// Format renders c as the text of vps.conf. Values are quoted; '"' and '\' are escaped.
func (c *Config) Format() []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# vpsctl configuration of VPS %d (edit with 'vpsctl set')\n", c.ID)
	fmt.Fprintf(&b, "ID=%s\n", Quote(fmt.Sprint(c.ID)))
	for _, f := range fields {
		v := f.value(c)
		if v == "" {
			continue
		}
		fmt.Fprintf(&b, "%s=%s\n", f.key, Quote(v))
	}
	keys := make([]string, 0, len(c.Extra))
	for k := range c.Extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s\n", k, Quote(c.Extra[k]))
	}
	return []byte(b.String())
}

// Quote renders s as a value Lex reads back unchanged.
func Quote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}

// ParseConfig parses vps.conf text (Lex's syntax). It is the inverse of Format.
func ParseConfig(text []byte) (*Config, error) {
	c := &Config{}
	err := Lex(text, func(n int, k, v string) error {
		if k == "ID" {
			id, err := strconv.ParseUint(v, 10, 32)
			if err != nil || strconv.FormatUint(id, 10) != v || id == 0 {
				return fmt.Errorf("%w: line %d: bad ID %q", ErrBadConfig, n, v)
			}
			c.ID = container.ID(id)
			return nil
		}
		f, known := fieldByKey[k]
		switch {
		case !known:
			if c.Extra == nil {
				c.Extra = map[string]string{}
			}
			c.Extra[k] = v
		case f.str != nil:
			*f.str(c) = v
		default:
			*f.list(c) = strings.Fields(v)
		}
		return nil
	})
	var se *SyntaxError
	switch {
	case errors.As(err, &se) && se.Key == "":
		return nil, fmt.Errorf("%w: line %d: want KEY=\"value\"", ErrBadConfig, se.Line)
	case errors.As(err, &se):
		return nil, fmt.Errorf("%w: line %d: %v", ErrBadConfig, se.Line, se.Err)
	case err != nil:
		return nil, err
	}
	if c.ID == 0 {
		return nil, fmt.Errorf("%w: no ID", ErrBadConfig)
	}
	return c, nil
}

// SyntaxError is a line of a file in Lex's syntax that is no assignment.
type SyntaxError struct {
	Line int    // 1-based
	Text string // the line, without its surrounding blanks
	Key  string // the assignment's key; "" when the line has no KEY= part
	Err  error  // what is wrong with the value, when Key is set
}

func (e *SyntaxError) Error() string {
	if e.Key == "" {
		return fmt.Sprintf("line %d: want KEY=\"value\"", e.Line)
	}
	return fmt.Sprintf("line %d: %s: %v", e.Line, e.Key, e.Err)
}

// Lex calls f with each assignment of text, in file order: its 1-based line, its key and its
// value unquoted. Blank lines and lines whose first non-blank character is '#' are skipped;
// every other line must be KEY="value" (KEY is [A-Z_][A-Z0-9_]*; inside the quotes \" \\ and
// \n are the only escapes) or KEY=value with no blanks, quotes or backslashes. It is the one
// syntax of every vpsctl file an administrator edits: vps.conf, and the host configuration and
// its plans (package hostconf). A line that is neither ends it with a *SyntaxError, an error of
// f's with that error. It reads one string line by line, with no buffer or map of its own:
// create parses every VPS's config.
func Lex(text []byte, f func(line int, key, value string) error) error {
	rest := string(text)
	n := 0
	for rest != "" {
		var line string
		line, rest, _ = strings.Cut(rest, "\n")
		n++
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		k, raw, ok := strings.Cut(line, "=")
		if !ok || !validKey(k) {
			return &SyntaxError{Line: n, Text: line}
		}
		v, err := unquote(raw)
		if err != nil {
			return &SyntaxError{Line: n, Text: line, Key: k, Err: err}
		}
		if err := f(n, k, v); err != nil {
			return err
		}
	}
	return nil
}

// fieldByKey indexes fields by their config key.
var fieldByKey = func() map[string]field {
	m := make(map[string]field, len(fields))
	for _, f := range fields {
		m[f.key] = f
	}
	return m
}()

func validKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		ch := k[i]
		if !(ch >= 'A' && ch <= 'Z' || ch == '_' || i > 0 && ch >= '0' && ch <= '9') {
			return false
		}
	}
	return true
}

func unquote(s string) (string, error) {
	if !strings.HasPrefix(s, `"`) {
		if strings.ContainsAny(s, "\" \t\\") {
			return "", errors.New("unquoted value with spaces, quotes or backslashes")
		}
		return s, nil
	}
	if len(s) < 2 || !strings.HasSuffix(s, `"`) {
		return "", errors.New("unterminated quote")
	}
	var b strings.Builder
	body := s[1 : len(s)-1]
	for i := 0; i < len(body); i++ {
		ch := body[i]
		switch ch {
		case '"':
			return "", errors.New("unescaped quote inside value")
		case '\\':
			i++
			if i >= len(body) {
				return "", errors.New("dangling backslash")
			}
			switch body[i] {
			case '\\', '"':
				b.WriteByte(body[i])
			case 'n':
				b.WriteByte('\n')
			default:
				return "", fmt.Errorf("unknown escape \\%c", body[i])
			}
		default:
			b.WriteByte(ch)
		}
	}
	return b.String(), nil
}
