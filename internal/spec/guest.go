package spec

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/vpsctl/vpsctl/cgroup"
	"github.com/vpsctl/vpsctl/store"
)

// Features are vzctl's names for what a VPS may be granted beyond its default devices: each is
// a device node in its /dev and the allowlist rule that opens it. A VPS with tun can run a VPN
// endpoint (`ip tuntap add`, TUNSETIFF works in its own network namespace); with fuse it can
// mount FUSE file systems (FUSE mounts are allowed in a user namespace); with ppp, pppd.
var Features = map[string]Device{
	"tun":  {Rule: cgroup.DeviceRule{Type: 'c', Major: 10, Minor: 200, Access: "rwm"}, Path: "dev/net/tun"},
	"fuse": {Rule: cgroup.DeviceRule{Type: 'c', Major: 10, Minor: 229, Access: "rwm"}, Path: "dev/fuse"},
	"ppp":  {Rule: cgroup.DeviceRule{Type: 'c', Major: 108, Minor: 0, Access: "rwm"}, Path: "dev/ppp"},
}

// Device is a node a VPS gets in its /dev, at Path (relative to its root), and the rule that
// lets it open it.
type Device struct {
	Rule cgroup.DeviceRule
	Path string // "" for a rule with a wildcard: allowed, no node
}

// ParseFeatures validates --features names (vzctl's: tun, fuse, ppp), comma-separated or
// repeated, and returns them sorted, once each.
func ParseFeatures(list []string) ([]string, error) {
	var out []string
	for _, l := range list {
		for _, f := range strings.Split(l, ",") {
			f = strings.TrimSpace(f)
			if _, ok := Features[f]; !ok {
				return nil, fmt.Errorf("--features: unknown feature %q (want some of tun, fuse, ppp): %w", f, ErrBadValue)
			}
			if !slices.Contains(out, f) {
				out = append(out, f)
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// Devices are the nodes VPS c gets beyond the defaults: its features', then its --devices rules'
// (a rule with a wildcard allows without a node). A node's path is the feature's, or found later
// on the host (see monitor).
func Devices(c *store.Config) ([]Device, error) {
	var out []Device
	for _, f := range c.Features {
		d, ok := Features[f]
		if !ok {
			return nil, fmt.Errorf("FEATURES %q: unknown feature: %w", f, ErrBadValue)
		}
		out = append(out, d)
	}
	for _, s := range c.Devices {
		r, err := ParseDevice(s)
		if err != nil {
			return nil, err
		}
		out = append(out, Device{Rule: r})
	}
	return out, nil
}

// BindMount is a host directory shown inside a VPS (vzctl's --bindmount), with the VPS's own
// UIDs (an idmapped mount), read-only if asked.
type BindMount struct {
	Host, VPS string // absolute paths
	ReadOnly  bool
}

func (b BindMount) String() string {
	s := b.Host + ":" + b.VPS
	if b.ReadOnly {
		s += ":ro"
	}
	return s
}

// forbidden are where a bind mount may come from or go to in no VPS: the host's kernel
// interfaces, and (HostDirs) the state root, whose files are other VPSs' and vpsctl's own.
var forbidden = []string{"/proc", "/sys", "/dev"}

// ParseBindMount parses HOSTDIR:VPSDIR[:ro] (or :rw). Both must be absolute and clean; HOSTDIR
// may not be /, nor in /proc, /sys, /dev or stateRoot; VPSDIR may not be / nor in /proc, /sys or
// /dev. The host side's existence is the caller's to check (it changes over time).
func ParseBindMount(s, stateRoot string) (BindMount, error) {
	bad := func(why string) (BindMount, error) {
		return BindMount{}, fmt.Errorf("--bindmount %q: %s: %w", s, why, ErrBadValue)
	}
	f := strings.Split(s, ":")
	if len(f) < 2 || len(f) > 3 {
		return bad("want HOSTDIR:VPSDIR[:ro]")
	}
	b := BindMount{Host: f[0], VPS: f[1]}
	if len(f) == 3 {
		switch f[2] {
		case "ro":
			b.ReadOnly = true
		case "rw":
		default:
			return bad("the option is ro or rw")
		}
	}
	for _, p := range []string{b.Host, b.VPS} {
		if !path.IsAbs(p) || path.Clean(p) != p || strings.ContainsAny(p, "\x00\n \t:") {
			return bad(fmt.Sprintf("%q is not an absolute, clean path without spaces", p))
		}
		if p == "/" {
			return bad("/ is not a directory to bind")
		}
		for _, no := range forbidden {
			if p == no || strings.HasPrefix(p, no+"/") {
				return bad(p + " is in " + no)
			}
		}
	}
	if stateRoot != "" {
		r := path.Clean(stateRoot)
		if b.Host == r || strings.HasPrefix(b.Host, r+"/") || strings.HasPrefix(r, b.Host+"/") {
			return bad(b.Host + " holds or is in the state root " + r)
		}
	}
	return b, nil
}
