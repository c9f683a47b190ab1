package runtime

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/vpsctl/vpsctl/network"
	"github.com/vpsctl/vpsctl/store"
)

// NetOptions are network settings as given on the command line.
type NetOptions struct {
	IPAdd         []string
	IPDel         []string // addresses, or "all"
	NetIfAdd      []string
	NetIfDel      []string
	Nameservers   []string // replaces the list when non-nil
	SearchDomains []string
}

// Empty reports whether no network setting is given.
func (o NetOptions) Empty() bool {
	return len(o.IPAdd) == 0 && len(o.IPDel) == 0 && len(o.NetIfAdd) == 0 && len(o.NetIfDel) == 0 &&
		o.Nameservers == nil && o.SearchDomains == nil
}

// validate applies the options to c after checking every value (malformed: network.ErrBadIP).
func (o NetOptions) validate(c *store.Config) error {
	next := slices.Clone(c.IPs)
	for _, d := range o.IPDel {
		if d == "all" {
			next = nil
			continue
		}
		p, err := network.ParseIP(d)
		if err != nil {
			return err
		}
		next = slices.DeleteFunc(next, func(s string) bool {
			q, err := network.ParseIP(s)
			return err == nil && q.Addr() == p.Addr()
		})
	}
	for _, a := range o.IPAdd {
		p, err := network.ParseIP(a)
		if err != nil {
			return err
		}
		dup := slices.ContainsFunc(next, func(s string) bool {
			q, err := network.ParseIP(s)
			return err == nil && q.Addr() == p.Addr()
		})
		if !dup {
			next = append(next, p.String())
		}
	}
	ifs := slices.Clone(c.NetIfs)
	for _, d := range o.NetIfDel {
		n := len(ifs)
		ifs = slices.DeleteFunc(ifs, func(s string) bool {
			ni, err := network.ParseNetIf(s)
			return err == nil && ni.Name == d
		})
		if len(ifs) == n {
			return fmt.Errorf("--netif-del %q: no such interface: %w", d, network.ErrBadNetIf)
		}
	}
	for _, a := range o.NetIfAdd {
		ni, err := network.ParseNetIf(a)
		if err != nil {
			return err
		}
		for _, s := range ifs {
			if old, err := network.ParseNetIf(s); err == nil && old.Name == ni.Name {
				return fmt.Errorf("--netif-add %q: interface already configured: %w", ni.Name, network.ErrBadNetIf)
			}
		}
		ifs = append(ifs, ni.String())
	}
	for _, ns := range o.Nameservers {
		if err := network.ValidateNameserver(ns); err != nil {
			return fmt.Errorf("--nameserver: %w", err)
		}
	}
	for _, d := range o.SearchDomains {
		if err := network.ValidateSearchDomain(d); err != nil {
			return fmt.Errorf("--searchdomain: %w", err)
		}
	}
	c.IPs, c.NetIfs = next, ifs
	if o.Nameservers != nil {
		c.Nameservers = o.Nameservers
	}
	if o.SearchDomains != nil {
		c.SearchDomains = o.SearchDomains
	}
	return nil
}

// checkAddrsFree refuses addresses of c held by another VPS or by the host (network.ErrIPInUse).
// The caller holds the global lock.
func (r *Runtime) checkAddrsFree(c *store.Config, others []*store.Config) error {
	for _, a := range configAddrs(c) {
		for _, oc := range others {
			if oc.ID == c.ID {
				continue
			}
			if slices.Contains(configAddrs(oc), a) {
				return fmt.Errorf("%s: held by VPS %d: %w", a, oc.ID, network.ErrIPInUse)
			}
		}
		if used, err := network.HostAddrInUse(a); err != nil {
			return err
		} else if used {
			return fmt.Errorf("%s: held by the host: %w", a, network.ErrIPInUse)
		}
	}
	return nil
}

// configAddrs lists every address a VPS's config gives it: routed ones and the static addresses
// of its bridged interfaces.
func configAddrs(c *store.Config) []netip.Addr {
	var out []netip.Addr
	for _, s := range c.IPs {
		if p, err := network.ParseIP(s); err == nil {
			out = append(out, p.Addr())
		}
	}
	for _, s := range c.NetIfs {
		if ni, err := network.ParseNetIf(s); err == nil {
			for _, p := range ni.Addrs {
				out = append(out, p.Addr())
			}
		}
	}
	return out
}
