package spec

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/vpsctl/vpsctl/cgroup"
	"github.com/vpsctl/vpsctl/store"
)

// defaultDevices is the device allowlist of every VPS (devices cgroup on v1, an eBPF program on
// v2): the nodes vpsctl puts in its /dev, and nothing else. A VPS's root may not open any other
// device node even if it finds or creates one (in a user namespace it cannot mknod anyway).
var defaultDevices = []cgroup.DeviceRule{
	{Type: 'c', Major: 1, Minor: 3, Access: "rwm"},    // null
	{Type: 'c', Major: 1, Minor: 5, Access: "rwm"},    // zero
	{Type: 'c', Major: 1, Minor: 7, Access: "rwm"},    // full
	{Type: 'c', Major: 1, Minor: 8, Access: "rwm"},    // random
	{Type: 'c', Major: 1, Minor: 9, Access: "rwm"},    // urandom
	{Type: 'c', Major: 5, Minor: 0, Access: "rwm"},    // tty
	{Type: 'c', Major: 5, Minor: 2, Access: "rwm"},    // ptmx
	{Type: 'c', Major: 136, Minor: -1, Access: "rwm"}, // pts/* (the console is a host pts)
}

// ParseDevice parses a --devices rule: TYPE:MAJOR:MINOR:ACCESS, e.g. c:10:200:rw (TUN), with
// '*' for any major or minor.
func ParseDevice(s string) (cgroup.DeviceRule, error) {
	bad := func(why string) (cgroup.DeviceRule, error) {
		return cgroup.DeviceRule{}, fmt.Errorf("--devices %q: %s (want c|b:MAJOR:MINOR:rwm): %w", s, why, ErrBadDevice)
	}
	f := strings.Split(s, ":")
	if len(f) != 4 {
		return bad("wrong number of fields")
	}
	if f[0] != "c" && f[0] != "b" {
		return bad("type must be c or b")
	}
	// The kernel's device numbers: a 12-bit major, a 20-bit minor.
	num := func(x string, bits uint) (int64, bool) {
		if x == "*" {
			return -1, true
		}
		n, err := strconv.ParseInt(x, 10, 64)
		return n, err == nil && n >= 0 && n < 1<<bits
	}
	maj, ok1 := num(f[1], 12)
	min, ok2 := num(f[2], 20)
	if !ok1 || !ok2 {
		return bad("bad major (0..4095) or minor (0..1048575)")
	}
	if f[3] == "" || len(f[3]) > 3 || strings.Trim(f[3], "rwm") != "" ||
		strings.Count(f[3], "r") > 1 || strings.Count(f[3], "w") > 1 || strings.Count(f[3], "m") > 1 {
		return bad("access must be a subset of rwm, each letter once")
	}
	return cgroup.DeviceRule{Type: rune(f[0][0]), Major: maj, Minor: min, Access: f[3]}, nil
}

// DeviceRules is VPS c's device allowlist: the defaults, its features' devices and its
// --devices rules.
func DeviceRules(c *store.Config) ([]cgroup.DeviceRule, error) {
	rules := append([]cgroup.DeviceRule(nil), defaultDevices...)
	devs, err := Devices(c)
	if err != nil {
		return nil, err
	}
	for _, d := range devs {
		rules = append(rules, d.Rule)
	}
	return rules, nil
}
