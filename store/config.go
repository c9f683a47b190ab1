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
	fmt.Fprintf(&b, "ID=%s\n", quote(fmt.Sprint(c.ID)))
	for _, f := range fields {
		v := f.value(c)
		if v == "" {
			continue
		}
		fmt.Fprintf(&b, "%s=%s\n", f.key, quote(v))
	}
	keys := make([]string, 0, len(c.Extra))
	for k := range c.Extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s\n", k, quote(c.Extra[k]))
	}
	return []byte(b.String())
}

func quote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}

// ParseConfig parses vps.conf text. Blank lines and '#' comments are skipped; every other line
// must be KEY="value" (or KEY=value without spaces). It is the inverse of Format.
func ParseConfig(text []byte) (*Config, error) {
	c := &Config{}
	// Line by line over one string: create parses every VPS's config, so this stays free of
	// per-call buffers and maps (it was a 64 KiB scanner buffer and a key map per config).
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
			return nil, fmt.Errorf("%w: line %d: want KEY=\"value\"", ErrBadConfig, n)
		}
		v, err := unquote(raw)
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", ErrBadConfig, n, err)
		}
		if k == "ID" {
			id, err := strconv.ParseUint(v, 10, 32)
			if err != nil || strconv.FormatUint(id, 10) != v || id == 0 {
				return nil, fmt.Errorf("%w: line %d: bad ID %q", ErrBadConfig, n, v)
			}
			c.ID = container.ID(id)
			continue
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
	}
	if c.ID == 0 {
		return nil, fmt.Errorf("%w: no ID", ErrBadConfig)
	}
	return c, nil
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
