package network

import (
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/vpsctl/vpsctl/container"
)

// Conditions callers branch on; always returned wrapped with context.
var (
	ErrBadIP    = errors.New("bad IP address")
	ErrIPInUse  = errors.New("IP address already in use")
	ErrBadNetIf = errors.New("bad network interface")
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("interface already exists")
	ErrBadDNS   = errors.New("bad DNS setting")
	// ErrBadNameserver and ErrBadSearchDomain are ErrBadDNS of one kind each: vzctl gives
	// them exit codes of their own (72, 73), so a caller must be able to tell them apart.
	ErrBadNameserver   = fmt.Errorf("%w: nameserver", ErrBadDNS)
	ErrBadSearchDomain = fmt.Errorf("%w: search domain", ErrBadDNS)
	errHostNetns       = errors.New("process shares the host network namespace")
)

// Config is the network of one VPS.
type Config struct {
	IPs    []netip.Prefix // routed addresses on venet0; the prefix length is for display only
	NetIfs []NetIf        // bridged veth interfaces
}

// NetIf is one bridged (vzctl veth) interface of a VPS.
type NetIf struct {
	Name     string           // inside the VPS, e.g. "eth0"
	MAC      net.HardwareAddr // inside; empty: derived from the VPS ID and Name
	HostName string           // host end; empty: derived from the VPS ID and Name
	Bridge   string           // host bridge to enslave the host end to; empty: none
	Addrs    []netip.Prefix   // static addresses inside, with their real prefix
	GW       netip.Addr       // default gateway (IPv4 or IPv6); zero: none
	GW6      netip.Addr       // IPv6 default gateway when GW is IPv4 (dual stack); zero: none
}

const (
	maxIfName = 15 // IFNAMSIZ-1
	venetName = "venet0"
)

// HostIfName is the name of the host end of a VPS's routed (venet) veth pair:
// "vps" and the ID in decimal, at most 13 bytes, so it fits IFNAMSIZ for any ID.
func HostIfName(id container.ID) string {
	return "vps" + strconv.FormatUint(uint64(id), 10)
}

// vethHostName is the default host end name of the bridged interface name of
// VPS id. It is vzctl's "veth<ID>.<N>" for eth<N> (and "veth<ID>.<name>" for
// other names that are not all digits) when that fits IFNAMSIZ, else "vz" and
// 13 characters of a hash of both. The two forms differ in their second
// letter, digit-only suffixes come only from eth<N>, so distinct (id, name)
// pairs get distinct names.
func vethHostName(id container.ID, name string) string {
	suffix := name
	if rest, ok := strings.CutPrefix(name, "eth"); ok && allDigits(rest) {
		suffix = rest
	} else if allDigits(name) {
		suffix = ""
	}
	if suffix != "" {
		if s := "veth" + strconv.FormatUint(uint64(id), 10) + "." + suffix; len(s) <= maxIfName {
			return s
		}
	}
	sum := idHash(id, "host-ifname", name)
	return "vz" + strings.ToLower(base32.StdEncoding.EncodeToString(sum[:]))[:maxIfName-2]
}

// vpsMAC is the default MAC address of interface name inside VPS id: stable
// across restarts (so DHCP leases and the LAN's ARP caches stay valid), unicast
// and locally administered.
func vpsMAC(id container.ID, name string) net.HardwareAddr {
	sum := idHash(id, "mac", name)
	mac := net.HardwareAddr(sum[:6])
	mac[0] = mac[0]&^0x01 | 0x02
	return mac
}

// hostMAC is the MAC address of the host end for interface name of VPS id.
// It starts with 0xfe, as libvirt's tap devices do: a Linux bridge takes the
// lowest MAC of its ports as its own unless one is set, so a high one keeps a
// VPS's host end from changing the bridge's address when it joins.
func hostMAC(id container.ID, name string) net.HardwareAddr {
	sum := idHash(id, "host-mac", name)
	mac := net.HardwareAddr(sum[:6])
	mac[0] = 0xfe
	return mac
}

func idHash(id container.ID, purpose, name string) [32]byte {
	b := make([]byte, 0, 64)
	b = append(b, "vpsctl\x00"...)
	b = append(b, purpose...)
	b = append(b, 0)
	b = binary.BigEndian.AppendUint32(b, uint32(id))
	b = append(b, name...)
	return sha256.Sum256(b)
}

func allDigits(s string) bool {
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

// ParseIP parses a VPS address: "198.18.0.1", "198.18.0.1/24", "fd42:1::2" or
// "fd42:1::2/64". The prefix keeps the address unmasked; without a length it
// is a host prefix (/32, /128). Addresses that cannot belong to a VPS are
// ErrBadIP: unspecified, loopback, multicast, link-local (169.254.0.1 and
// fe80::1 are the routed gateway), limited broadcast, 0.0.0.0/8, IPv4-mapped
// IPv6, and zoned addresses.
func ParseIP(s string) (netip.Prefix, error) {
	var p netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			return netip.Prefix{}, fmt.Errorf("ip %q: %w", s, ErrBadIP)
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("ip %q: %w", s, ErrBadIP)
		}
		if a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("ip %q: zone not allowed: %w", s, ErrBadIP)
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if err := checkPrefix(p); err != nil {
		return netip.Prefix{}, fmt.Errorf("ip %q: %w", s, err)
	}
	return p, nil
}

// checkPrefix reports why p cannot be a VPS address, wrapping ErrBadIP.
func checkPrefix(p netip.Prefix) error {
	if !p.IsValid() {
		return fmt.Errorf("invalid prefix: %w", ErrBadIP)
	}
	if p.Bits() == 0 {
		return fmt.Errorf("prefix length 0: %w", ErrBadIP)
	}
	return checkAddr(p.Addr())
}

func checkAddr(a netip.Addr) error {
	var why string
	switch {
	case !a.IsValid():
		why = "invalid"
	case a.Zone() != "":
		why = "zone not allowed"
	case a.Is4In6():
		why = "IPv4-mapped IPv6 address"
	case a.IsUnspecified():
		why = "unspecified address"
	case a.IsLoopback():
		why = "loopback address"
	case a.IsMulticast():
		why = "multicast address"
	case a.IsLinkLocalUnicast():
		why = "link-local address"
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		why = "broadcast address"
	case a.Is4() && a.As4()[0] == 0:
		why = "address in 0.0.0.0/8"
	default:
		return nil
	}
	return fmt.Errorf("%s: %w", why, ErrBadIP)
}

// checkGW reports why a cannot be a default gateway, wrapping ErrBadNetIf.
// Unlike a VPS address, a gateway may be link-local (fe80::1 is common).
func checkGW(a netip.Addr) error {
	switch {
	case a.Zone() != "", a.Is4In6(), a.IsUnspecified(), a.IsLoopback(), a.IsMulticast(),
		a == netip.AddrFrom4([4]byte{255, 255, 255, 255}), a.Is4() && a.As4()[0] == 0:
		return fmt.Errorf("gateway %s: %w", a, ErrBadNetIf)
	}
	return nil
}

// validIfName reports whether s can name a network interface here: 1 to 15
// bytes (IFNAMSIZ-1) of ASCII letters, digits, '-', '_' and '.', not "." or
// "..". The kernel (dev_valid_name) accepts more, but ',' and '=' are the
// separators of ParseNetIf, '/' and ':' break /proc/sys paths and aliases,
// and '@' is how "ip link" shows a veth's peer.
func validIfName(s string) bool {
	if s == "" || len(s) > maxIfName || s == "." || s == ".." {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

// ParseNetIf parses a bridged interface:
//
//	eth0[,mac=02:00:00:00:00:01][,host-ifname=veth101.0][,bridge=br0][,ip=ADDR/PREFIX]...[,gw=GW][,gw6=GW6]
//
// Keys may come in any order; ip may repeat; an ip without a prefix length is
// a host prefix. Anything else is ErrBadNetIf, and also ErrBadIP when an ip=
// value is at fault.
func ParseNetIf(s string) (NetIf, error) {
	n, err := parseNetIf(s)
	if err != nil && !errors.Is(err, ErrBadNetIf) {
		err = fmt.Errorf("%w: %w", ErrBadNetIf, err)
	}
	return n, err
}

func parseNetIf(s string) (NetIf, error) {
	fields := strings.Split(s, ",")
	n := NetIf{Name: fields[0]}
	seen := map[string]bool{}
	for _, f := range fields[1:] {
		k, v, ok := strings.Cut(f, "=")
		if !ok || v == "" {
			return NetIf{}, fmt.Errorf("netif %q: %q is not key=value: %w", s, f, ErrBadNetIf)
		}
		if seen[k] && k != "ip" {
			return NetIf{}, fmt.Errorf("netif %q: %s given twice: %w", s, k, ErrBadNetIf)
		}
		seen[k] = true
		switch k {
		case "mac":
			mac, err := net.ParseMAC(v)
			if err != nil {
				return NetIf{}, fmt.Errorf("netif %q: mac %q: %w", s, v, ErrBadNetIf)
			}
			n.MAC = mac
		case "host-ifname":
			n.HostName = v
		case "bridge":
			n.Bridge = v
		case "ip":
			p, err := ParseIP(v)
			if err != nil {
				return NetIf{}, fmt.Errorf("netif %q: %w", s, err)
			}
			n.Addrs = append(n.Addrs, p)
		case "gw", "gw6":
			a, err := netip.ParseAddr(v)
			if err != nil {
				return NetIf{}, fmt.Errorf("netif %q: %s %q: %w", s, k, v, ErrBadNetIf)
			}
			if k == "gw" {
				n.GW = a
			} else {
				n.GW6 = a
			}
		default:
			return NetIf{}, fmt.Errorf("netif %q: unknown key %q: %w", s, k, ErrBadNetIf)
		}
	}
	if err := n.Validate(); err != nil {
		return NetIf{}, fmt.Errorf("netif %q: %w", s, err)
	}
	return n, nil
}

// String formats n as ParseNetIf reads it, keys in a fixed order, so that it
// can be stored in a configuration file and read back unchanged.
func (n NetIf) String() string {
	var b strings.Builder
	b.WriteString(n.Name)
	if len(n.MAC) > 0 {
		b.WriteString(",mac=" + n.MAC.String())
	}
	if n.HostName != "" {
		b.WriteString(",host-ifname=" + n.HostName)
	}
	if n.Bridge != "" {
		b.WriteString(",bridge=" + n.Bridge)
	}
	for _, p := range n.Addrs {
		b.WriteString(",ip=" + p.String())
	}
	if n.GW.IsValid() {
		b.WriteString(",gw=" + n.GW.String())
	}
	if n.GW6.IsValid() {
		b.WriteString(",gw6=" + n.GW6.String())
	}
	return b.String()
}

// Validate reports, as ErrBadNetIf or ErrBadIP, what makes n unusable.
func (n NetIf) Validate() error {
	if !validIfName(n.Name) {
		return fmt.Errorf("interface name %q: %w", n.Name, ErrBadNetIf)
	}
	if n.Name == "lo" || n.Name == venetName {
		return fmt.Errorf("interface name %q is reserved: %w", n.Name, ErrBadNetIf)
	}
	if len(n.MAC) > 0 {
		if len(n.MAC) != 6 || n.MAC[0]&0x01 != 0 || string(n.MAC) == "\x00\x00\x00\x00\x00\x00" {
			return fmt.Errorf("mac %s: not a unicast Ethernet address: %w", n.MAC, ErrBadNetIf)
		}
	}
	if n.HostName != "" && !validIfName(n.HostName) {
		return fmt.Errorf("host-ifname %q: %w", n.HostName, ErrBadNetIf)
	}
	if n.Bridge != "" && !validIfName(n.Bridge) {
		return fmt.Errorf("bridge %q: %w", n.Bridge, ErrBadNetIf)
	}
	seen := map[netip.Addr]bool{}
	for _, p := range n.Addrs {
		if err := checkPrefix(p); err != nil {
			return fmt.Errorf("ip %s: %w", p, err)
		}
		if seen[p.Addr()] {
			return fmt.Errorf("ip %s given twice: %w", p.Addr(), ErrBadIP)
		}
		seen[p.Addr()] = true
	}
	if n.GW6.IsValid() && (!n.GW6.Is6() || n.GW.Is6()) {
		return fmt.Errorf("gw6 %s: needs an IPv6 gw6 and no IPv6 gw: %w", n.GW6, ErrBadNetIf)
	}
	for _, gw := range []netip.Addr{n.GW, n.GW6} {
		if !gw.IsValid() {
			continue
		}
		if err := checkGW(gw); err != nil {
			return err
		}
		if seen[gw] {
			return fmt.Errorf("gateway %s is the interface's own address: %w", gw, ErrBadNetIf)
		}
		// The kernel refuses a gateway it cannot reach on the link; IPv6
		// link-local gateways are always on the link.
		if gw.Is6() && gw.IsLinkLocalUnicast() {
			continue
		}
		onLink := false
		for _, p := range n.Addrs {
			onLink = onLink || p.Masked().Contains(gw)
		}
		if !onLink {
			return fmt.Errorf("gateway %s is on no ip= subnet: %w", gw, ErrBadNetIf)
		}
	}
	return nil
}

// hostName is the name of n's host end for VPS id.
func (n NetIf) hostName(id container.ID) string {
	if n.HostName != "" {
		return n.HostName
	}
	return vethHostName(id, n.Name)
}

// mac is the MAC address of n inside VPS id.
func (n NetIf) mac(id container.ID) net.HardwareAddr {
	if len(n.MAC) > 0 {
		return n.MAC
	}
	return vpsMAC(id, n.Name)
}

// Validate reports what makes c unusable: a bad address or interface, an
// address listed twice (routed or bridged), or two interfaces with the same
// name or host name.
// Empty reports a VPS with no routed addresses and no interfaces: the boot sets nothing of its
// network up on the host (its loopback is the init child's).
func (c Config) Empty() bool { return len(c.IPs) == 0 && len(c.NetIfs) == 0 }

func (c Config) Validate() error {
	seen := map[netip.Addr]bool{}
	for _, p := range c.IPs {
		if err := checkPrefix(p); err != nil {
			return fmt.Errorf("ip %s: %w", p, err)
		}
		if seen[p.Addr()] {
			return fmt.Errorf("ip %s given twice: %w", p.Addr(), ErrBadIP)
		}
		seen[p.Addr()] = true
	}
	names := map[string]bool{}
	for _, n := range c.NetIfs {
		if err := n.Validate(); err != nil {
			return fmt.Errorf("netif %s: %w", n.Name, err)
		}
		if names[n.Name] {
			return fmt.Errorf("netif %s given twice: %w", n.Name, ErrBadNetIf)
		}
		names[n.Name] = true
		for _, p := range n.Addrs {
			if seen[p.Addr()] {
				return fmt.Errorf("ip %s given twice: %w", p.Addr(), ErrBadIP)
			}
			seen[p.Addr()] = true
		}
	}
	// Host names are checked once the VPS ID is known (Setup).
	return nil
}
