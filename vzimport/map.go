package vzimport

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/vpsctl/vpsctl/runtime"
)

// Outcome is what became of one key of the config.
type Outcome struct {
	Key   string `json:"key"`
	Value string `json:"value"`
	To    string `json:"to,omitempty"`  // mapped: the vpsctl setting it became ("--memory 256M")
	Why   string `json:"why,omitempty"` // noted, not mapped: why
}

// Plan is a config read for import: the VPS's create options (but its ID and template, which
// the import decides) and every key's outcome.
type Plan struct {
	Create     runtime.CreateOptions
	CTID       string // VEID of the config, if it names one
	OSTemplate string // the OpenVZ template the container was made from
	Layout     string // simfs (default) or ploop
	Mapped     []Outcome
	Noted      []Outcome
	Unmapped   []Outcome
}

// Device is a host device node, for DEVNODES (net/tun: the host's /dev/net/tun).
type Device struct {
	Char         bool
	Major, Minor uint32
}

// notMapped are the vzctl keys vpsctl knows and has no setting for, with the reason.
var notMapped = map[string]string{
	"DISKINODES":     "the disk image's file system has no inode limit (diskspace bounds the files)",
	"QUOTATIME":      "vpsctl's disk limit is a file system's size: no soft-limit grace period",
	"QUOTAUGIDLIMIT": "vpsctl has no per-user disk quota inside a VPS",
	"IOPRIO":         "vpsctl's disk weight (--ioweight 10..1000) has no scale equivalent to CFQ's 0..7 priority",
	"IOPSLIMIT":      "vpsctl limits disk bandwidth (--iolimit), not operations per second",
	"CPUMASK":        "vpsctl has no CPU pinning (--cpus limits the time, not the CPUs)",
	"NODEMASK":       "vpsctl has no NUMA placement",
	"DISABLED":       "vpsctl has no disabled VPSs: do not start it",
	"IPTABLES":       "netfilter modules are the host kernel's; nothing to enable per VPS",
	"NETFILTER":      "netfilter modules are the host kernel's; nothing to enable per VPS",
	"MEMINFO":        "vpsctl does not virtualise /proc/meminfo",
	"DESCRIPTION":    "vpsctl keeps no description",
	"LOCAL_UID":      "vpsctl allocates the VPS's UID range itself",
	"LOCAL_GID":      "vpsctl allocates the VPS's GID range itself",
	"STOP_TIMEOUT":   "give stop --timeout",
	"VE_TYPE":        "every vpsctl VPS is a system container",
	"UUID":           "vpsctl names VPSs by ID and name",
	"NAME_AUTOGEN":   "vpsctl names VPSs by ID and name",
	"SWAP":           "not a vzctl key of this name (SWAPPAGES is)",
}

// ubc are vzctl's user beancounters that vpsctl has no counterpart for: the kernel's cgroups
// account memory as a whole (PHYSPAGES, SWAPPAGES) and processes (NUMPROC).
var ubc = []string{"KMEMSIZE", "LOCKEDPAGES", "PRIVVMPAGES", "SHMPAGES", "VMGUARPAGES", "OOMGUARPAGES",
	"NUMTCPSOCK", "NUMFLOCK", "NUMPTY", "NUMSIGINFO", "TCPSNDBUF", "TCPRCVBUF", "OTHERSOCKBUF",
	"DGRAMRCVBUF", "NUMOTHERSOCK", "DCACHESIZE", "NUMFILE", "AVNUMPROC", "NUMIPTENT"}

// noted are keys understood that ask for nothing to be set.
var noted = map[string]string{
	"VE_ROOT":       "the mount point: vpsctl mounts the VPS's root itself",
	"VE_PRIVATE":    "the private area: given on the command line",
	"ORIGIN_SAMPLE": "the sample config it was made from",
	"VEID":          "the container's ID (--id chooses the VPS's)",
	"VERSION":       "the config's format version",
}

// Map reads keys (from Parse) into a Plan. dev looks up a host device node for DEVNODES.
func Map(keys []Key, dev func(path string) (Device, error)) (*Plan, error) {
	p := &Plan{Layout: "simfs"}
	c := &p.Create
	mapped := func(k Key, to string) { p.Mapped = append(p.Mapped, Outcome{Key: k.Name, Value: k.Value, To: to}) }
	not := func(k Key, why string) {
		p.Unmapped = append(p.Unmapped, Outcome{Key: k.Name, Value: k.Value, Why: why})
	}
	bad := func(k Key, why string) error {
		return fmt.Errorf("line %d: %s=%q: %s: %w", k.Line, k.Name, k.Value, why, ErrBadConfig)
	}
	for _, k := range keys {
		v := strings.TrimSpace(k.Value)
		if why, ok := noted[k.Name]; ok {
			p.Noted = append(p.Noted, Outcome{Key: k.Name, Value: k.Value, Why: why})
			if k.Name == "VEID" {
				p.CTID = v
			}
			continue
		}
		if why, ok := notMapped[k.Name]; ok {
			not(k, why)
			continue
		}
		if v == "" {
			p.Noted = append(p.Noted, Outcome{Key: k.Name, Value: k.Value, Why: "empty: nothing to set"})
			continue
		}
		if isUBC(k.Name) {
			not(k, "a user beancounter without a cgroup counterpart (vpsctl limits memory, swap and processes)")
			continue
		}
		switch k.Name {
		case "HOSTNAME":
			c.Hostname = v
			mapped(k, "--hostname "+v)
		case "NAME":
			c.Name = v
			mapped(k, "--name "+v)
		case "DISKSPACE":
			c.DiskSpace = v // checked by create, as --diskspace is
			mapped(k, "--diskspace "+v)
		case "ONBOOT":
			c.OnBoot = v // checked by create, as --onboot is
			mapped(k, "--onboot "+v)
		case "BOOTORDER":
			c.BootOrder = v
			mapped(k, "--bootorder "+v)
		case "OSTEMPLATE":
			p.OSTemplate = v
			p.Noted = append(p.Noted, Outcome{Key: k.Name, Value: k.Value, Why: "recorded as the imported template's source"})
		case "VE_LAYOUT":
			layout, _, _ := strings.Cut(v, ":")
			if layout != "simfs" && layout != "ploop" {
				return nil, bad(k, "want simfs or ploop")
			}
			p.Layout = layout
			p.Noted = append(p.Noted, Outcome{Key: k.Name, Value: k.Value, Why: "the private area's layout"})
		case "IP_ADDRESS":
			for _, a := range strings.Fields(v) {
				pfx, err := ipAddress(a)
				if err != nil {
					return nil, bad(k, err.Error())
				}
				c.Net.IPAdd = append(c.Net.IPAdd, pfx)
			}
			mapped(k, "--ipadd "+strings.Join(c.Net.IPAdd, " --ipadd "))
		case "NAMESERVER":
			c.Net.Nameservers = strings.Fields(v)
			mapped(k, "--nameserver "+strings.Join(c.Net.Nameservers, " --nameserver "))
		case "SEARCHDOMAIN":
			c.Net.SearchDomains = strings.Fields(v)
			mapped(k, "--searchdomain "+strings.Join(c.Net.SearchDomains, " --searchdomain "))
		case "NETIF":
			ifs, dropped, err := netifs(v)
			if err != nil {
				return nil, bad(k, err.Error())
			}
			c.Net.NetIfAdd = ifs
			to := "--netif-add " + strings.Join(ifs, " --netif-add ")
			if len(dropped) > 0 {
				to += " (dropped: " + strings.Join(dropped, ", ") + ": vpsctl chooses the host end's MAC)"
			}
			mapped(k, to)
		case "PHYSPAGES", "SWAPPAGES":
			size, err := pagesLimit(v)
			if err != nil {
				return nil, bad(k, err.Error())
			}
			if k.Name == "PHYSPAGES" {
				c.Limits.Memory = &size
				mapped(k, "--memory "+size)
			} else {
				c.Limits.Swap = &size
				mapped(k, "--swap "+size)
			}
		case "NUMPROC":
			n, err := countLimit(v)
			if err != nil {
				return nil, bad(k, err.Error())
			}
			c.Limits.NumProc = &n
			mapped(k, "--numproc "+n)
		case "CPUUNITS", "CPUS":
			if _, err := strconv.ParseUint(v, 10, 32); err != nil {
				if k.Name == "CPUS" && v == "unlimited" {
					not(k, "no CPU count limit: nothing to set")
					continue
				}
				return nil, bad(k, "want a number")
			}
			if k.Name == "CPUUNITS" {
				c.Limits.CPUUnits = &v
				mapped(k, "--cpuunits "+v)
			} else {
				c.Limits.CPUs = &v
				mapped(k, "--cpus "+v)
			}
		case "CPULIMIT":
			pct := strings.TrimSuffix(v, "%")
			if _, err := strconv.ParseUint(pct, 10, 32); err != nil {
				not(k, "a limit in MHz has no vpsctl equivalent (--cpulimit is in % of one CPU)")
				continue
			}
			c.Limits.CPULimit = &pct
			mapped(k, "--cpulimit "+pct)
		case "IOLIMIT":
			if v == "0" || v == "" {
				not(k, "no limit: nothing to set")
				continue
			}
			c.Limits.IOLimit = &v
			mapped(k, "--iolimit "+v)
		case "CAPABILITY":
			for _, cp := range strings.Fields(v) {
				c.Caps = append(c.Caps, cp)
			}
			mapped(k, "--capability "+strings.Join(c.Caps, " --capability "))
		case "DEVICES":
			for _, d := range strings.Fields(v) {
				rule, ok, err := deviceRule(d)
				if err != nil {
					return nil, bad(k, err.Error())
				}
				if ok {
					c.Devices = append(c.Devices, rule)
				}
			}
			mapped(k, "--devices "+strings.Join(c.Devices, " --devices "))
		case "FEATURES":
			var off []string
			for _, f := range strings.Fields(v) {
				name, on, _ := strings.Cut(f, ":")
				if on == "on" && (name == "ppp" || name == "tun" || name == "fuse") {
					c.Features = append(c.Features, name)
				} else if on == "on" {
					off = append(off, name)
				}
			}
			to := "--features " + strings.Join(c.Features, ",")
			if len(off) > 0 {
				to += " (not mapped: " + strings.Join(off, ", ") + ": OpenVZ kernel features vpsctl has no switch for)"
			}
			mapped(k, to)
		case "DEVNODES":
			var rules []string
			for _, d := range strings.Fields(v) {
				path, perm, _ := strings.Cut(d, ":")
				if strings.Contains(path, "..") || path == "" {
					return nil, bad(k, "want dev/PATH:PERMS")
				}
				// The nodes vpsctl knows by a feature's name are made where the guest expects them.
				if f := devnodeFeatures[strings.TrimPrefix(path, "/dev/")]; f != "" {
					c.Features = append(c.Features, f)
					rules = append(rules, "--features "+f)
					continue
				}
				node, err := dev("/dev/" + strings.TrimPrefix(path, "/dev/"))
				if err != nil {
					return nil, bad(k, err.Error())
				}
				t := "b"
				if node.Char {
					t = "c"
				}
				access := strings.ReplaceAll(strings.ReplaceAll(perm, "q", ""), "none", "")
				if access == "" {
					continue
				}
				rule := fmt.Sprintf("%s:%d:%d:%s", t, node.Major, node.Minor, access)
				c.Devices = append(c.Devices, rule)
				rules = append(rules, "--devices "+rule)
			}
			mapped(k, strings.Join(rules, " "))
		default:
			not(k, "not a key vpsctl knows")
		}
	}
	return p, nil
}

// devnodeFeatures are the DEVNODES paths vpsctl grants by a feature (spec.Features).
var devnodeFeatures = map[string]string{"net/tun": "tun", "fuse": "fuse", "ppp": "ppp"}

func isUBC(k string) bool {
	for _, u := range ubc {
		if k == u {
			return true
		}
	}
	return false
}

// ipAddress reads an IP_ADDRESS entry: ADDR, ADDR/PREFIX or ADDR/NETMASK.
func ipAddress(s string) (string, error) {
	a, mask, hasMask := strings.Cut(s, "/")
	addr, err := netip.ParseAddr(a)
	if err != nil {
		return "", fmt.Errorf("%q is not an address", s)
	}
	if !hasMask {
		return addr.String(), nil
	}
	if n, err := strconv.Atoi(mask); err == nil {
		if n < 0 || n > addr.BitLen() {
			return "", fmt.Errorf("%q: prefix out of range", s)
		}
		return addr.String() + "/" + mask, nil
	}
	m, err := netip.ParseAddr(mask)
	if err != nil || !m.Is4() || !addr.Is4() {
		return "", fmt.Errorf("%q: bad netmask", s)
	}
	b := m.As4()
	bits := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	ones := 0
	for bits&(1<<31) != 0 {
		ones++
		bits <<= 1
	}
	if bits != 0 {
		return "", fmt.Errorf("%q: netmask not contiguous", s)
	}
	return addr.String() + "/" + strconv.Itoa(ones), nil
}

// netifs reads NETIF: interfaces separated by ';', each ifname=...,mac=...,host_ifname=...,
// host_mac=...,bridge=.... It returns them as --netif-add values and what was dropped.
func netifs(v string) (ifs, dropped []string, err error) {
	for _, spec := range strings.Split(v, ";") {
		spec = strings.TrimSpace(spec)
		if spec == "" {
			continue
		}
		var name string
		var opts []string
		for _, kv := range strings.Split(spec, ",") {
			key, val, ok := strings.Cut(kv, "=")
			if !ok {
				return nil, nil, fmt.Errorf("%q: want key=value", kv)
			}
			switch key {
			case "ifname":
				name = val
			case "mac":
				opts = append(opts, "mac="+val)
			case "host_ifname":
				opts = append(opts, "host-ifname="+val)
			case "bridge":
				opts = append(opts, "bridge="+val)
			case "host_mac", "mac_filter":
				dropped = append(dropped, key)
			default:
				return nil, nil, fmt.Errorf("unknown NETIF parameter %q", key)
			}
		}
		if name == "" {
			return nil, nil, fmt.Errorf("%q: no ifname", spec)
		}
		ifs = append(ifs, strings.Join(append([]string{name}, opts...), ","))
	}
	return ifs, dropped, nil
}

// pagesLimit reads a PHYSPAGES or SWAPPAGES value: [BARRIER:]LIMIT, in 4 KiB pages, or in
// bytes with a K, M, G, T or P suffix, or unlimited. Its limit is what the VPS may use.
func pagesLimit(v string) (string, error) {
	_, limit, ok := strings.Cut(v, ":")
	if !ok {
		limit = v
	}
	if limit == "unlimited" || limit == "9223372036854775807" {
		return "unlimited", nil
	}
	if n := len(limit); n > 1 && strings.ContainsRune("KMGTPkmgtp", rune(limit[n-1])) {
		num := limit[:n-1]
		if _, err := strconv.ParseUint(num, 10, 64); err != nil {
			return "", fmt.Errorf("%q: want pages, or a size with K/M/G/T/P", limit)
		}
		unit := strings.ToUpper(limit[n-1:])
		if unit == "P" {
			n, _ := strconv.ParseUint(num, 10, 64)
			return strconv.FormatUint(n*1024, 10) + "T", nil
		}
		return num + unit, nil
	}
	pages, err := strconv.ParseUint(limit, 10, 64)
	if err != nil || pages > 1<<50 {
		return "", fmt.Errorf("%q: want pages, or a size with K/M/G/T/P", limit)
	}
	return strconv.FormatUint(pages*4, 10) + "K", nil
}

// countLimit reads [BARRIER:]LIMIT of a count (NUMPROC).
func countLimit(v string) (string, error) {
	_, limit, ok := strings.Cut(v, ":")
	if !ok {
		limit = v
	}
	if limit == "unlimited" || limit == "9223372036854775807" {
		return "unlimited", nil
	}
	if _, err := strconv.ParseUint(limit, 10, 32); err != nil {
		return "", fmt.Errorf("%q: want a number", limit)
	}
	return limit, nil
}

// deviceRule reads a DEVICES entry, TYPE:MAJOR:MINOR:PERMS with PERMS of r, w and q (quota
// management, which vpsctl has no use for), into a --devices rule; "none" grants nothing.
func deviceRule(s string) (string, bool, error) {
	f := strings.Split(s, ":")
	if len(f) != 4 || (f[0] != "c" && f[0] != "b") {
		return "", false, fmt.Errorf("%q: want c|b:MAJOR:MINOR:PERMS", s)
	}
	for i := 1; i <= 2; i++ {
		if f[i] == "all" {
			f[i] = "*"
		}
	}
	access := strings.ReplaceAll(f[3], "q", "")
	if access == "none" || access == "" {
		return "", false, nil
	}
	if strings.Trim(access, "rw") != "" {
		return "", false, fmt.Errorf("%q: want PERMS of r, w, q or none", s)
	}
	return strings.Join([]string{f[0], f[1], f[2], access}, ":"), true, nil
}
