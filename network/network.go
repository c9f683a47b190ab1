package network

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vpsctl/vpsctl/container"
	"github.com/vpsctl/vpsctl/internal/revert"
	"golang.org/x/sys/unix"
)

// aliasPrefix starts the alias (IFLA_IFALIAS) of every host link this package
// creates: "vpsctl:<ID>:<name inside>". Only root on the host can set an
// alias, so a tenant cannot make Teardown delete a link. The kernel ignores an
// alias given at creation, so it is set right after; the host end's MAC
// (hostMAC), which is set at creation, identifies a link whose alias a crash
// kept from being set.
const aliasPrefix = "vpsctl:"

// The gateways of the routed (venet) interface, as the VPS sees them.
var (
	venetGW4 = netip.AddrFrom4([4]byte{169, 254, 0, 1})
	venetGW6 = netip.MustParseAddr("fe80::1")
)

func linkAlias(id container.ID, inside string) string {
	return aliasPrefix + strconv.FormatUint(uint64(id), 10) + ":" + inside
}

// ownedBy reports whether l is a host link this package created for VPS id,
// by its alias, or by its MAC for one of the names inside given.
func ownedBy(l netlink.Link, id container.ID, names ...string) bool {
	if l.Type() != "veth" {
		return false
	}
	if strings.HasPrefix(l.Attrs().Alias, linkAlias(id, "")) {
		return true
	}
	return slices.ContainsFunc(names, func(n string) bool {
		return bytes.Equal(l.Attrs().HardwareAddr, hostMAC(id, n))
	})
}

func family(a netip.Addr) int {
	if a.Is4() {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}

func hostPrefix(a netip.Addr) netip.Prefix { return netip.PrefixFrom(a, a.BitLen()) }

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func defaultDst(fam int) *net.IPNet {
	if fam == netlink.FAMILY_V4 {
		return ipNet(netip.PrefixFrom(netip.IPv4Unspecified(), 0))
	}
	return ipNet(netip.PrefixFrom(netip.IPv6Unspecified(), 0))
}

func isDefault(r netlink.Route) bool {
	if r.Dst == nil {
		return true
	}
	ones, _ := r.Dst.Mask.Size()
	return ones == 0
}

func toAddr(ip net.IP) (netip.Addr, bool) {
	a, ok := netip.AddrFromSlice(ip)
	return a.Unmap(), ok
}

// ForwardingEnabled reports net.ipv4.ip_forward and
// net.ipv6.conf.all.forwarding of the host. Without them a VPS with routed
// addresses reaches only the host: not other VPSs, the LAN or the Internet.
func ForwardingEnabled() (v4, v6 bool) {
	s, err := hostSysctl("net/ipv4/ip_forward")
	v4 = err == nil && s == "1"
	s, err = hostSysctl("net/ipv6/conf/all/forwarding")
	v6 = err == nil && s == "1"
	return v4, v6
}

// Warnings reports host settings that keep cfg's routed addresses from working
// fully; this package never changes host-wide sysctls itself. Setup returns
// them; call it after AddIPs too.
func Warnings(id container.ID, cfg Config) []string {
	var w []string
	has4 := slices.ContainsFunc(cfg.IPs, func(p netip.Prefix) bool { return p.Addr().Is4() })
	has6 := slices.ContainsFunc(cfg.IPs, func(p netip.Prefix) bool { return p.Addr().Is6() })
	v4, v6 := ForwardingEnabled()
	own4, own6 := vpsForwarding(id)
	reach := func(own bool) string {
		if own {
			return "this host and other VPSs"
		}
		return "only this host"
	}
	if has4 && !v4 {
		w = append(w, fmt.Sprintf("net.ipv4.ip_forward is off: VPS %d reaches %s over IPv4, "+
			"not other networks; enable it with: sysctl -w net.ipv4.ip_forward=1", id, reach(own4)))
	}
	if has6 && !v6 {
		w = append(w, fmt.Sprintf("net.ipv6.conf.all.forwarding is off: VPS %d reaches %s over IPv6, "+
			"not other networks; enable it with: sysctl -w net.ipv6.conf.all.forwarding=1 "+
			"(an uplink configured by router advertisements then needs accept_ra=2)", id, reach(own6)))
	}
	if !has6 {
		return w
	}
	subnets, err := hostSubnets()
	if err != nil {
		return w
	}
	all, _ := hostSysctl("net/ipv6/conf/all/proxy_ndp")
	warned := map[string]bool{}
	for _, p := range cfg.IPs {
		if !p.Addr().Is6() {
			continue
		}
		for _, s := range proxyTargets(p.Addr(), subnets) {
			on, _ := hostSysctl("net/ipv6/conf/" + s.name + "/proxy_ndp")
			if on == "1" || all == "1" || warned[s.name] {
				continue
			}
			warned[s.name] = true
			w = append(w, fmt.Sprintf("net.ipv6.conf.%s.proxy_ndp is off: hosts on %s cannot find VPS %d's "+
				"addresses in %s; enable it with: sysctl -w net.ipv6.conf.%s.proxy_ndp=1", s.name, s.name, id, s.prefix.Masked(), s.name))
		}
	}
	return w
}

// HostAddrInUse reports whether a is held by an interface in the host's
// network namespace (the one this process runs in).
func HostAddrInUse(a netip.Addr) (bool, error) {
	a = a.Unmap()
	if !a.IsValid() {
		return false, fmt.Errorf("ip %v: %w", a, ErrBadIP)
	}
	addrs, err := dump(func() ([]netlink.Addr, error) { return netlink.AddrList(nil, family(a)) })
	if err != nil {
		return false, fmt.Errorf("list host addresses: %w", err)
	}
	for _, x := range addrs {
		if b, ok := toAddr(x.IP); ok && b == a.WithZone("") {
			return true, nil
		}
	}
	return false, nil
}

// Setup gives the VPS whose init is initPID (not yet running its own code)
// its network: loopback up, the routed addresses on venet0, the bridged
// interfaces. On error it undoes everything it did. The warnings say which
// host settings keep the network from working fully (see Warnings).
func Setup(id container.ID, initPID int, cfg Config) (warnings []string, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := checkHostNames(id, cfg.NetIfs); err != nil {
		return nil, err
	}
	v, err := openNetns(initPID)
	if err != nil {
		return nil, err
	}
	defer v.Close()
	var u revert.Steps
	defer u.Finish(&err)

	lo, err := v.h.LinkByName("lo")
	if err != nil {
		return nil, fmt.Errorf("loopback of VPS %d: %w", id, err)
	}
	if err := v.h.LinkSetUp(lo); err != nil {
		return nil, fmt.Errorf("set loopback of VPS %d up: %w", id, err)
	}
	if len(cfg.IPs) > 0 {
		if err := addIPs(v, id, cfg.IPs, &u); err != nil {
			return nil, err
		}
	}
	for _, n := range cfg.NetIfs {
		if err := addNetIf(v, id, n, &u); err != nil {
			return nil, err
		}
	}
	// After the bridged interfaces: a gateway given for one of them wins over
	// venet0's default route.
	if len(cfg.IPs) > 0 {
		if err := venetDefaults(v, id); err != nil {
			return nil, err
		}
	}
	return Warnings(id, cfg), nil
}

// checkHostNames refuses two interfaces of one VPS with the same host end.
func checkHostNames(id container.ID, netifs []NetIf) error {
	seen := map[string]bool{HostIfName(id): true}
	for _, n := range netifs {
		h := n.hostName(id)
		if seen[h] {
			return fmt.Errorf("netif %s: host-ifname %s used twice: %w", n.Name, h, ErrBadNetIf)
		}
		seen[h] = true
	}
	return nil
}

// Teardown removes what Setup, AddIPs and AddNetIf left on the host for VPS
// id: its host links (found by alias, so interfaces added live count too; the
// routes through them go with them), the proxy ARP/NDP entries of cfg.IPs and
// its source filter (when it has routed addresses in cfg or a routed link).
// It works whether or not the VPS's network namespace still exists (when it
// is gone the kernel has removed, or is removing, the veth pairs, but proxy
// entries stay) and is idempotent.
func Teardown(id container.ID, cfg Config) error {
	names := []string{venetName}
	for _, n := range cfg.NetIfs {
		names = append(names, n.Name)
	}
	links, err := ownHostLinks(id, names...)
	if err != nil {
		return err
	}
	ours := map[int]bool{}
	for _, l := range links {
		ours[l.Attrs().Index] = true
	}
	var errs []error
	for _, p := range cfg.IPs {
		if err := removeProxy(p.Addr(), ours); err != nil {
			errs = append(errs, err)
		}
	}
	// Only a VPS with routed addresses has a source filter; nft takes
	// milliseconds, which a VPS without them does not pay.
	routed := len(cfg.IPs) > 0 || slices.ContainsFunc(links, func(l netlink.Link) bool { return l.Attrs().Name == HostIfName(id) })
	if routed {
		if err := RemoveSourceFilter(id); err != nil && !errors.Is(err, ErrNoNftables) {
			// Without nft no filter can have been set.
			errs = append(errs, err)
		}
	}
	for _, l := range links {
		// The namespace's death may delete the pair under us.
		if err := netlink.LinkDel(l); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("delete host interface %s: %w", l.Attrs().Name, err))
		}
	}
	return errors.Join(errs...)
}

// AddIPs adds routed addresses to a running VPS, creating venet0 if it has
// none, and lets the VPS send from them (SetSourceFilter, before the first
// route exists). An address the VPS already has is left alone; one held by the host or
// routed elsewhere is ErrIPInUse. On error nothing is changed.
func AddIPs(id container.ID, initPID int, ips []netip.Prefix) (err error) {
	if err := (Config{IPs: ips}).Validate(); err != nil {
		return err
	}
	v, err := openNetns(initPID)
	if err != nil {
		return err
	}
	defer v.Close()
	var u revert.Steps
	defer u.Finish(&err)
	if err := addIPs(v, id, ips, &u); err != nil {
		return err
	}
	return venetDefaults(v, id)
}

// DelIPs removes routed addresses from a running VPS: the source filter's
// entries (first), the host route, the
// proxy entries, the address on venet0, and the default route of a family
// that has no address left. An address the VPS does not have is ErrNotFound,
// and then nothing is changed.
func DelIPs(id container.ID, initPID int, ips []netip.Prefix) error {
	if err := (Config{IPs: ips}).Validate(); err != nil {
		return err
	}
	v, err := openNetns(initPID)
	if err != nil {
		return err
	}
	defer v.Close()
	host, inside, err := venetPair(v, id)
	if err != nil {
		return err
	}
	if host == nil {
		return fmt.Errorf("VPS %d has no routed addresses: %w", id, ErrNotFound)
	}
	held, err := dump(func() ([]netlink.Addr, error) { return v.h.AddrList(inside, netlink.FAMILY_ALL) })
	if err != nil {
		return fmt.Errorf("list addresses of VPS %d: %w", id, err)
	}
	hostIdx := host.Attrs().Index
	for _, p := range ips {
		a := p.Addr()
		owner, found, err := routeOwner(a)
		if err != nil {
			return err
		}
		onVenet := slices.ContainsFunc(held, func(x netlink.Addr) bool { b, _ := toAddr(x.IP); return b == a })
		if !(found && owner == hostIdx) && !onVenet {
			return fmt.Errorf("ip %s is not an address of VPS %d: %w", a, id, ErrNotFound)
		}
	}
	// The source filter first: should a later step fail, the VPS may not send
	// from an address it is losing, which errs on the safe side.
	routed, err := routedAddrs(hostIdx)
	if err != nil {
		return err
	}
	remaining := slices.DeleteFunc(routed, func(a netip.Addr) bool {
		return slices.ContainsFunc(ips, func(p netip.Prefix) bool { return p.Addr().Unmap() == a })
	})
	if err := SetSourceFilter(id, remaining); err != nil {
		return err
	}
	var errs []error
	for _, p := range ips {
		hp := hostPrefix(p.Addr())
		// The route first: from here on the host no longer sends to it.
		// RT_SCOPE_NOWHERE: whatever scope the route has (the library
		// would send RT_SCOPE_UNIVERSE, which matches no scope-link route).
		r := &netlink.Route{LinkIndex: hostIdx, Dst: ipNet(hp), Table: unix.RT_TABLE_MAIN, Scope: netlink.SCOPE_NOWHERE}
		if err := netlink.RouteDel(r); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("delete route to %s: %w", hp, err))
		}
		if err := removeProxy(p.Addr(), map[int]bool{hostIdx: true}); err != nil {
			errs = append(errs, err)
		}
		if err := v.h.AddrDel(inside, &netlink.Addr{IPNet: ipNet(hp)}); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("delete %s from venet0 of VPS %d: %w", hp, id, err))
		}
	}
	if err := venetDefaults(v, id); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// AddNetIf adds a bridged interface to a running VPS. A gateway it names
// replaces the VPS's default route of that family. On error nothing is
// changed.
func AddNetIf(id container.ID, initPID int, n NetIf) (err error) {
	if err := n.Validate(); err != nil {
		return err
	}
	if err := checkHostNames(id, []NetIf{n}); err != nil {
		return err
	}
	v, err := openNetns(initPID)
	if err != nil {
		return err
	}
	defer v.Close()
	defer func() {
		if err != nil {
			// A gateway may have replaced venet0's default route before
			// the failure; the rollback deleted it with the pair.
			_ = venetDefaults(v, id)
		}
	}()
	var u revert.Steps
	defer u.Finish(&err)
	return addNetIf(v, id, n, &u)
}

// DelNetIf removes the bridged interface name (its name inside) of a running
// VPS, found by the alias of its host end. If a default route went with it,
// venet0's comes back. initPID is used only for that: the pair is found on
// the host, where the tenant cannot rename it.
func DelNetIf(id container.ID, initPID int, name string) error {
	if !validIfName(name) || name == venetName || name == "lo" {
		return fmt.Errorf("interface name %q: %w", name, ErrBadNetIf)
	}
	links, err := ownHostLinks(id, name)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(links, func(l netlink.Link) bool {
		return l.Attrs().Alias == linkAlias(id, name) || bytes.Equal(l.Attrs().HardwareAddr, hostMAC(id, name))
	})
	if i < 0 {
		return fmt.Errorf("interface %s of VPS %d: %w", name, id, ErrNotFound)
	}
	if err := netlink.LinkDel(links[i]); err != nil && !isNotFound(err) {
		return fmt.Errorf("delete host interface %s: %w", links[i].Attrs().Name, err)
	}
	v, err := openNetns(initPID)
	if err != nil {
		return err
	}
	defer v.Close()
	return venetDefaults(v, id)
}

// LinkInfo describes one interface inside a VPS.
type LinkInfo struct {
	Name     string   `json:"name"`
	HostName string   `json:"host_ifname"`
	MAC      string   `json:"mac"`
	Addrs    []string `json:"addrs"`
}

// Links lists the interfaces inside the VPS whose init is initPID, except
// loopback, sorted by name, with their addresses (not IPv6 link-local ones)
// and, for pairs this package made, the name of the host end.
func Links(initPID int) ([]LinkInfo, error) {
	v, err := openNetns(initPID)
	if err != nil {
		return nil, err
	}
	defer v.Close()
	links, err := dump(v.h.LinkList)
	if err != nil {
		return nil, fmt.Errorf("list interfaces of pid %d: %w", initPID, err)
	}
	hostLinks, err := dump(netlink.LinkList)
	if err != nil {
		return nil, fmt.Errorf("list host interfaces: %w", err)
	}
	hostByIdx := map[int]netlink.Link{}
	for _, l := range hostLinks {
		hostByIdx[l.Attrs().Index] = l
	}
	infos := []LinkInfo{}
	for _, l := range links {
		la := l.Attrs()
		if la.Flags&net.FlagLoopback != 0 {
			continue
		}
		info := LinkInfo{Name: la.Name, MAC: la.HardwareAddr.String(), Addrs: []string{}}
		// A veth's IFLA_LINK is its peer's index, in the namespace named
		// by IFLA_LINK_NETNSID; check the peer points back to be sure it
		// is the host's.
		if h, ok := hostByIdx[la.ParentIndex]; ok && l.Type() == "veth" && la.NetNsID >= 0 &&
			h.Type() == "veth" && h.Attrs().ParentIndex == la.Index && strings.HasPrefix(h.Attrs().Alias, aliasPrefix) {
			info.HostName = h.Attrs().Name
		}
		addrs, err := dump(func() ([]netlink.Addr, error) { return v.h.AddrList(l, netlink.FAMILY_ALL) })
		if err != nil {
			return nil, fmt.Errorf("list addresses of %s: %w", la.Name, err)
		}
		for _, x := range addrs {
			a, ok := toAddr(x.IP)
			if !ok || (a.Is6() && a.IsLinkLocalUnicast()) {
				continue
			}
			ones, _ := x.Mask.Size()
			info.Addrs = append(info.Addrs, netip.PrefixFrom(a, ones).String())
		}
		infos = append(infos, info)
	}
	slices.SortFunc(infos, func(a, b LinkInfo) int { return strings.Compare(a.Name, b.Name) })
	return infos, nil
}

// ownHostLinks lists the host links created for VPS id (see ownedBy).
func ownHostLinks(id container.ID, names ...string) ([]netlink.Link, error) {
	all, err := dump(netlink.LinkList)
	if err != nil {
		return nil, fmt.Errorf("list host interfaces: %w", err)
	}
	var own []netlink.Link
	for _, l := range all {
		if ownedBy(l, id, names...) {
			own = append(own, l)
		}
	}
	return own, nil
}

// routeOwner finds the host's route to exactly a (/32 or /128) in the main
// table, and the link it goes through (0 for routes such as blackhole).
func routeOwner(a netip.Addr) (linkIndex int, found bool, err error) {
	filter := &netlink.Route{Dst: ipNet(hostPrefix(a)), Table: unix.RT_TABLE_MAIN}
	routes, err := dump(func() ([]netlink.Route, error) {
		return netlink.RouteListFiltered(family(a), filter, netlink.RT_FILTER_DST|netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return 0, false, fmt.Errorf("list host routes to %s: %w", a, err)
	}
	if len(routes) == 0 {
		return 0, false, nil
	}
	return routes[0].LinkIndex, true, nil
}

// routedAddrs returns the addresses the host routes to the routed host end
// whose index is hostIdx (none for -1): its /32 and /128 routes in the main
// table. The host's routing table, not the VPS's venet0 (which the tenant may
// change), says which addresses are a VPS's.
func routedAddrs(hostIdx int) ([]netip.Addr, error) {
	if hostIdx < 0 {
		return nil, nil
	}
	routes, err := dump(func() ([]netlink.Route, error) {
		return netlink.RouteListFiltered(netlink.FAMILY_ALL,
			&netlink.Route{LinkIndex: hostIdx, Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_OIF|netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return nil, fmt.Errorf("list routes through interface %d: %w", hostIdx, err)
	}
	var out []netip.Addr
	for _, r := range routes {
		if r.Dst == nil {
			continue
		}
		a, ok := toAddr(r.Dst.IP)
		ones, bits := r.Dst.Mask.Size()
		if ok && ones == bits && ones == a.BitLen() && !a.IsLinkLocalUnicast() {
			out = append(out, a)
		}
	}
	return out, nil
}

// venetPair finds VPS id's routed pair: nil links if there is none.
// A host end not made by this package, or a venet0 that is not its peer
// (one the tenant made, say), is ErrExists.
func venetPair(v *vpsNetns, id container.ID) (host, inside netlink.Link, err error) {
	name := HostIfName(id)
	host, err = netlink.LinkByName(name)
	if isNotFound(err) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("host interface %s: %w", name, err)
	}
	if !ownedBy(host, id, venetName) {
		return nil, nil, fmt.Errorf("host interface %s was not made for VPS %d: %w", name, id, ErrExists)
	}
	inside, err = v.h.LinkByName(venetName)
	if err == nil && (inside.Type() != "veth" || inside.Attrs().ParentIndex != host.Attrs().Index || inside.Attrs().NetNsID < 0) {
		err = fmt.Errorf("%s of pid %d is not the peer of %s: %w", venetName, v.pid, name, ErrExists)
	} else if isNotFound(err) {
		err = fmt.Errorf("%s of pid %d (peer of %s): %w", venetName, v.pid, name, ErrNotFound)
	}
	if err != nil {
		return nil, nil, err
	}
	return host, inside, nil
}

// newVeth creates a veth pair: host end hostName on the host, the other end
// inside v named inside. Creating the peer directly in the VPS's namespace
// (IFLA_NET_NS_FD) means its name never has to be free on the host.
func newVeth(v *vpsNetns, id container.ID, hostName, inside string, insideMAC net.HardwareAddr, u *revert.Steps) (*netlink.Veth, error) {
	attrs := netlink.NewLinkAttrs()
	attrs.Name = hostName
	attrs.HardwareAddr = hostMAC(id, inside)
	veth := netlink.NewVeth(attrs)
	veth.PeerName = inside
	veth.PeerHardwareAddr = insideMAC
	veth.PeerNamespace = netlink.NsFd(v.ns)
	if err := netlink.LinkAdd(veth); err != nil {
		if errors.Is(err, unix.EEXIST) {
			err = ErrExists
		}
		return nil, fmt.Errorf("create veth %s (host) / %s (VPS %d): %w", hostName, inside, id, err)
	}
	u.AddErr(func() error {
		if err := netlink.LinkDel(veth); err != nil && !isNotFound(err) {
			return fmt.Errorf("delete host interface %s: %w", hostName, err)
		}
		return nil
	})
	if err := netlink.LinkSetAlias(veth, linkAlias(id, inside)); err != nil {
		return nil, fmt.Errorf("set alias of %s: %w", hostName, err)
	}
	return veth, nil
}

// configureHostEnd sets the sysctls of a host end this package created,
// before it comes up. A tenant must not configure the host: no router
// advertisements (with forwarding off the host would take a default route
// from the VPS) and no redirects. On the routed end, rp_filter=1 drops
// packets whose IPv4 source is not routed to this VPS, as venet did, and
// IPv4 forwarding is on for packets that arrive from the VPS: the kernel
// decides it by the input interface (IN_DEV_FORWARD in ip_route_input_slow),
// so VPS to VPS traffic works without net.ipv4.ip_forward, which replies from
// other networks still need (see Warnings). IPv6 has force_forwarding (Linux
// 6.17) but no rp_filter; the source filter (srcfilter.go) now drops forged
// IPv6 sources, but turning IPv6 forwarding on stays the administrator's
// decision, as it was.
func configureHostEnd(name string, routed bool) error {
	set := [][2]string{{"net/ipv4/conf/" + name + "/accept_redirects", "0"}}
	if routed {
		set = append(set, [2]string{"net/ipv4/conf/" + name + "/rp_filter", "1"},
			[2]string{"net/ipv4/conf/" + name + "/forwarding", "1"})
	}
	set = append(set,
		[2]string{"net/ipv6/conf/" + name + "/accept_ra", "0"},
		[2]string{"net/ipv6/conf/" + name + "/accept_redirects", "0"})
	for _, kv := range set {
		if err := setHostSysctl(kv[0], kv[1]); err != nil {
			if strings.HasPrefix(kv[0], "net/ipv6/") && errors.Is(err, fs.ErrNotExist) {
				continue // IPv6 is not built into this kernel
			}
			return err
		}
	}
	return nil
}

// vpsForwarding reports whether the routed host end of VPS id forwards what
// the VPS sends, for IPv4 and IPv6 (force_forwarding, which an administrator
// may set; this package does not).
func vpsForwarding(id container.ID) (v4, v6 bool) {
	s, err := hostSysctl("net/ipv4/conf/" + HostIfName(id) + "/forwarding")
	v4 = err == nil && s == "1"
	s, err = hostSysctl("net/ipv6/conf/" + HostIfName(id) + "/force_forwarding")
	v6 = err == nil && s == "1"
	return v4, v6
}

// ensureVenet returns VPS id's routed pair, creating and configuring it if
// there is none.
func ensureVenet(v *vpsNetns, id container.ID, u *revert.Steps) (host, inside netlink.Link, err error) {
	host, inside, err = venetPair(v, id)
	if err != nil || host != nil {
		return host, inside, err
	}
	name := HostIfName(id)
	veth, err := newVeth(v, id, name, venetName, vpsMAC(id, venetName), u)
	if err != nil {
		return nil, nil, err
	}
	if err := configureHostEnd(name, true); err != nil {
		return nil, nil, err
	}
	if inside, err = v.h.LinkByName(venetName); err != nil {
		return nil, nil, fmt.Errorf("%s of VPS %d: %w", venetName, id, err)
	}
	if err := v.h.LinkSetUp(inside); err != nil {
		return nil, nil, fmt.Errorf("set %s of VPS %d up: %w", venetName, id, err)
	}
	if err := netlink.LinkSetUp(veth); err != nil {
		return nil, nil, fmt.Errorf("set %s up: %w", name, err)
	}
	if host, err = netlink.LinkByName(name); err != nil {
		return nil, nil, fmt.Errorf("host interface %s: %w", name, err)
	}
	return host, inside, nil
}

// addIPs puts routed addresses on VPS id (see AddIPs), recording undo steps.
func addIPs(v *vpsNetns, id container.ID, ips []netip.Prefix, u *revert.Steps) error {
	// Refuse addresses in use before creating anything.
	hostIdx := -1
	if l, err := netlink.LinkByName(HostIfName(id)); err == nil && ownedBy(l, id, venetName) {
		hostIdx = l.Attrs().Index
	}
	for _, p := range ips {
		a := p.Addr()
		owner, found, err := routeOwner(a)
		if err != nil {
			return err
		}
		if found && owner != hostIdx {
			return fmt.Errorf("ip %s: routed to another interface (index %d): %w", a, owner, ErrIPInUse)
		}
		held, err := HostAddrInUse(a)
		if err != nil {
			return err
		}
		if held {
			return fmt.Errorf("ip %s: held by the host: %w", a, ErrIPInUse)
		}
	}
	// The source filter first: it matches the interface by name, so it is in
	// place before the interface exists or the VPS can send from a new address.
	prev, err := routedAddrs(hostIdx)
	if err != nil {
		return err
	}
	next := slices.Clone(prev)
	for _, p := range ips {
		next = append(next, p.Addr())
	}
	if err := SetSourceFilter(id, next); err != nil {
		return err
	}
	u.AddErr(func() error {
		if hostIdx < 0 {
			return RemoveSourceFilter(id)
		}
		return SetSourceFilter(id, prev)
	})
	host, inside, err := ensureVenet(v, id, u)
	if err != nil {
		return err
	}
	subnets, err := hostSubnets()
	if err != nil {
		return err
	}
	fams := map[int]bool{}
	for _, p := range ips {
		if err := addVenetIP(v, id, host, inside, p.Addr(), subnets, u); err != nil {
			return err
		}
		fams[family(p.Addr())] = true
	}
	for fam := range fams {
		if err := venetGateway(v, host, inside, fam); err != nil {
			return err
		}
	}
	return nil
}

// addVenetIP routes a to the VPS: the address on venet0, the host route, and
// proxy entries where a lies in a subnet of a host interface.
func addVenetIP(v *vpsNetns, id container.ID, host, inside netlink.Link, a netip.Addr, subnets []subnet, u *revert.Steps) error {
	hp := hostPrefix(a)
	addr := &netlink.Addr{IPNet: ipNet(hp)}
	if a.Is6() {
		// No duplicate address detection: the host routes a to this
		// link alone, and DAD would hold the address back for a second.
		addr.Flags = unix.IFA_F_NODAD
	}
	if err := v.h.AddrAdd(inside, addr); err == nil {
		u.AddErr(func() error {
			if err := v.h.AddrDel(inside, addr); err != nil && !isNotFound(err) {
				return fmt.Errorf("delete %s from venet0 of VPS %d: %w", hp, id, err)
			}
			return nil
		})
	} else if !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add %s to venet0 of VPS %d: %w", hp, id, err)
	}
	r := &netlink.Route{LinkIndex: host.Attrs().Index, Dst: ipNet(hp), Table: unix.RT_TABLE_MAIN, Protocol: unix.RTPROT_STATIC}
	if a.Is4() {
		r.Scope = netlink.SCOPE_LINK
	}
	if err := netlink.RouteAdd(r); err == nil {
		u.AddErr(func() error {
			if err := netlink.RouteDel(r); err != nil && !isNotFound(err) {
				return fmt.Errorf("delete route to %s: %w", hp, err)
			}
			return nil
		})
	} else if !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add route to %s via %s: %w", hp, host.Attrs().Name, err)
	} else if owner, found, err := routeOwner(a); err != nil {
		return err
	} else if !found || owner != host.Attrs().Index {
		// Another Setup took a since addIPs looked.
		return fmt.Errorf("ip %s: routed to another interface: %w", a, ErrIPInUse)
	}
	for _, s := range proxyTargets(a, subnets) {
		n := &netlink.Neigh{LinkIndex: s.link, Family: family(a), Flags: netlink.NTF_PROXY, IP: net.IP(a.AsSlice())}
		if err := netlink.NeighAdd(n); err == nil {
			u.AddErr(func() error {
				if err := netlink.NeighDel(n); err != nil && !isNotFound(err) {
					return fmt.Errorf("delete proxy entry %s on %s: %w", a, s.name, err)
				}
				return nil
			})
		} else if !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("add proxy entry %s on %s: %w", a, s.name, err)
		}
	}
	return nil
}

// venetGateway makes the gateway of family fam reachable from the VPS: a
// permanent neighbour entry for it inside (the host does not answer ARP for
// 169.254.0.1, see the package doc) and, for IPv6, fe80::1 on the host end.
func venetGateway(v *vpsNetns, host, inside netlink.Link, fam int) error {
	gw := venetGW4
	if fam == netlink.FAMILY_V6 {
		gw = venetGW6
		ll := &netlink.Addr{IPNet: ipNet(netip.PrefixFrom(gw, 64)), Flags: unix.IFA_F_NODAD}
		if err := netlink.AddrReplace(host, ll); err != nil {
			return fmt.Errorf("add %s to %s: %w", ll.IPNet, host.Attrs().Name, err)
		}
	}
	n := &netlink.Neigh{
		LinkIndex: inside.Attrs().Index, Family: fam, State: netlink.NUD_PERMANENT,
		IP: net.IP(gw.AsSlice()), HardwareAddr: host.Attrs().HardwareAddr,
	}
	if err := v.h.NeighSet(n); err != nil {
		return fmt.Errorf("add neighbour %s to venet0 of pid %d: %w", gw, v.pid, err)
	}
	return nil
}

// venetDefaults keeps venet0's default routes in step with its addresses:
// one per family that has an address, unless the VPS has a default route of
// that family already (a bridged interface's gateway wins), and none for a
// family without addresses. A VPS without venet0 is left alone.
func venetDefaults(v *vpsNetns, id container.ID) error {
	host, inside, err := venetPair(v, id)
	if err != nil || host == nil {
		return err
	}
	addrs, err := dump(func() ([]netlink.Addr, error) { return v.h.AddrList(inside, netlink.FAMILY_ALL) })
	if err != nil {
		return fmt.Errorf("list addresses of venet0 of VPS %d: %w", id, err)
	}
	has := map[int]bool{}
	for _, x := range addrs {
		if a, ok := toAddr(x.IP); ok && !a.IsLinkLocalUnicast() {
			has[family(a)] = true
		}
	}
	idx := inside.Attrs().Index
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		gw := venetGW4
		if fam == netlink.FAMILY_V6 {
			gw = venetGW6
		}
		routes, err := dump(func() ([]netlink.Route, error) {
			return v.h.RouteListFiltered(fam, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
		})
		if err != nil {
			return fmt.Errorf("list routes of VPS %d: %w", id, err)
		}
		routes = slices.DeleteFunc(routes, func(r netlink.Route) bool { return !isDefault(r) })
		switch {
		case has[fam] && len(routes) == 0:
			r := &netlink.Route{LinkIndex: idx, Dst: defaultDst(fam), Gw: net.IP(gw.AsSlice()), Protocol: unix.RTPROT_STATIC}
			if fam == netlink.FAMILY_V4 {
				// 169.254.0.1 is on no subnet of venet0.
				r.Flags = int(netlink.FLAG_ONLINK)
			}
			if err := v.h.RouteAdd(r); err != nil {
				return fmt.Errorf("add default route via %s to VPS %d: %w", gw, id, err)
			}
		case !has[fam]:
			for _, r := range routes {
				if r.LinkIndex != idx || !r.Gw.Equal(net.IP(gw.AsSlice())) {
					continue
				}
				if err := v.h.RouteDel(&r); err != nil && !isNotFound(err) {
					return fmt.Errorf("delete default route via %s of VPS %d: %w", gw, id, err)
				}
			}
		}
	}
	return nil
}

// addNetIf creates bridged interface n of VPS id (see AddNetIf), recording
// undo steps.
func addNetIf(v *vpsNetns, id container.ID, n NetIf, u *revert.Steps) error {
	var br netlink.Link
	if n.Bridge != "" {
		var err error
		br, err = netlink.LinkByName(n.Bridge)
		if isNotFound(err) {
			return fmt.Errorf("netif %s: bridge %s: %w: %w", n.Name, n.Bridge, ErrNotFound, ErrBadNetIf)
		}
		if err != nil {
			return fmt.Errorf("netif %s: bridge %s: %w", n.Name, n.Bridge, err)
		}
		if br.Type() != "bridge" {
			return fmt.Errorf("netif %s: %s is a %s, not a bridge: %w", n.Name, n.Bridge, br.Type(), ErrBadNetIf)
		}
	}
	hostName := n.hostName(id)
	veth, err := newVeth(v, id, hostName, n.Name, n.mac(id), u)
	if errors.Is(err, ErrExists) {
		// The host end's name is taken (host-ifname= naming another's link): the setting is bad.
		return fmt.Errorf("netif %s: %w: %w", n.Name, err, ErrBadNetIf)
	}
	if err != nil {
		return err
	}
	if err := configureHostEnd(hostName, false); err != nil {
		return err
	}
	if br != nil {
		if err := netlink.LinkSetMaster(veth, br); err != nil {
			return fmt.Errorf("enslave %s to %s: %w", hostName, n.Bridge, err)
		}
	}
	if err := netlink.LinkSetUp(veth); err != nil {
		return fmt.Errorf("set %s up: %w", hostName, err)
	}
	inside, err := v.h.LinkByName(n.Name)
	if err != nil {
		return fmt.Errorf("%s of VPS %d: %w", n.Name, id, err)
	}
	if err := v.h.LinkSetUp(inside); err != nil {
		return fmt.Errorf("set %s of VPS %d up: %w", n.Name, id, err)
	}
	// What follows lives in the VPS's namespace on the new link: deleting
	// the pair (the undo step above) removes it.
	for _, p := range n.Addrs {
		if err := v.h.AddrAdd(inside, &netlink.Addr{IPNet: ipNet(p)}); err != nil {
			return fmt.Errorf("add %s to %s of VPS %d: %w", p, n.Name, id, err)
		}
	}
	for _, gw := range []netip.Addr{n.GW, n.GW6} {
		if !gw.IsValid() {
			continue
		}
		r := &netlink.Route{LinkIndex: inside.Attrs().Index, Dst: defaultDst(family(gw)), Gw: net.IP(gw.AsSlice()), Protocol: unix.RTPROT_STATIC}
		if err := v.h.RouteReplace(r); err != nil {
			return fmt.Errorf("default route via %s on %s of VPS %d: %w", gw, n.Name, id, err)
		}
	}
	return nil
}

// subnet is a subnet directly configured on a host interface.
type subnet struct {
	prefix netip.Prefix // the interface's address and the subnet's length
	link   int
	name   string
}

// hostSubnets lists the subnets configured on host interfaces that could
// need proxy entries: not loopback, not this package's host ends, and not
// host (/32, /128) or point-to-point addresses, which name no subnet.
func hostSubnets() ([]subnet, error) {
	links, err := dump(netlink.LinkList)
	if err != nil {
		return nil, fmt.Errorf("list host interfaces: %w", err)
	}
	byIdx := map[int]netlink.Link{}
	for _, l := range links {
		byIdx[l.Attrs().Index] = l
	}
	addrs, err := dump(func() ([]netlink.Addr, error) { return netlink.AddrList(nil, netlink.FAMILY_ALL) })
	if err != nil {
		return nil, fmt.Errorf("list host addresses: %w", err)
	}
	var subnets []subnet
	for _, x := range addrs {
		l, ok := byIdx[x.LinkIndex]
		if !ok || l.Attrs().Flags&net.FlagLoopback != 0 || strings.HasPrefix(l.Attrs().Alias, aliasPrefix) {
			continue
		}
		if x.Peer != nil && !x.Peer.IP.Equal(x.IP) {
			continue
		}
		a, ok := toAddr(x.IP)
		ones, _ := x.Mask.Size()
		if !ok || ones >= a.BitLen() {
			continue
		}
		subnets = append(subnets, subnet{prefix: netip.PrefixFrom(a, ones), link: x.LinkIndex, name: l.Attrs().Name})
	}
	return subnets, nil
}

// proxyTargets picks the host interfaces that need a proxy ARP/NDP entry for
// VPS address a: those with a subnet containing a, once each. Any other
// address needs none, so it never shows on an uplink.
func proxyTargets(a netip.Addr, subnets []subnet) []subnet {
	var out []subnet
	for _, s := range subnets {
		if s.prefix.Masked().Contains(a) && !slices.ContainsFunc(out, func(o subnet) bool { return o.link == s.link }) {
			out = append(out, s)
		}
	}
	return out
}

// removeProxy deletes the host's proxy entries for a, unless a is now routed
// through a link not in ours (it has moved to another VPS, whose entries
// they then are).
func removeProxy(a netip.Addr, ours map[int]bool) error {
	owner, found, err := routeOwner(a)
	if err != nil {
		return err
	}
	if found && !ours[owner] {
		return nil
	}
	entries, err := dump(func() ([]netlink.Neigh, error) { return netlink.NeighProxyList(0, family(a)) })
	if err != nil {
		return fmt.Errorf("list proxy entries: %w", err)
	}
	var errs []error
	for _, e := range entries {
		if b, ok := toAddr(e.IP); !ok || b != a {
			continue
		}
		n := &netlink.Neigh{LinkIndex: e.LinkIndex, Family: family(a), Flags: netlink.NTF_PROXY, IP: e.IP}
		if err := netlink.NeighDel(n); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("delete proxy entry %s (interface index %d): %w", a, e.LinkIndex, err))
		}
	}
	return errors.Join(errs...)
}
