// Package network gives a VPS its network, the way vzctl's venet and veth
// devices did, built from veth pairs and netlink.
//
// Every VPS runs in its own network namespace (made by the runtime when it
// starts the VPS's init). This package configures that namespace and the host
// side of it:
//
//   - Routed addresses (venet-style, Config.IPs): one veth pair per VPS, the
//     host end named HostIfName(id) ("vps<ID>"), the VPS end "venet0". Inside,
//     each address sits on venet0 as a /32 or /128 (the prefix the user gave is
//     kept only for display), and the default routes are
//     "default via 169.254.0.1 dev venet0 onlink" and
//     "default via fe80::1 dev venet0". On the host, each address gets a /32 or
//     /128 route through the host end.
//   - Bridged interfaces (vzctl veth, Config.NetIfs): a veth pair per NetIf,
//     the host end optionally enslaved to a bridge, the VPS end named and
//     addressed as the NetIf says.
//   - DNS: WriteResolvConf edits the VPS's etc/resolv.conf from outside.
//
// # How the routed gateway works
//
// Neither 169.254.0.1 nor proxy ARP is configured on the host. proxy_arp only
// answers while forwarding is on (arp_process() checks IN_DEV_FORWARD), and a
// host address 169.254.0.1 would also be answered for on the uplink
// (arp_ignore=0). Instead the VPS gets a permanent neighbour entry
// 169.254.0.1 -> MAC of the host end, so it never has to ask. For IPv6 the
// host end holds fe80::1/64 (link-local: it exists on that one link only),
// added with IFA_F_NODAD so that it is usable at once; the host needs a usable
// link-local address there anyway, because the kernel sends no neighbour
// solicitation from a link without one. The VPS also gets a permanent
// neighbour entry for fe80::1. The VPS answers ARP and NDP for its own
// addresses as any host does.
//
// Host to VPS and VPS to host traffic needs no forwarding. VPS to VPS traffic
// does, and for IPv4 the kernel decides it by the interface a packet arrives
// on: the routed host ends get net.ipv4.conf.vps<ID>.forwarding=1, so VPSs
// reach each other over IPv4 with the host-wide switch off (rp_filter=1 on
// the same ends, and the source filter, keep them from forging sources). IPv6
// forwarding stays the administrator's decision (host-wide, or
// net.ipv6.conf.vps<ID>.force_forwarding on Linux 6.17 and later). VPS to the
// world and LAN to VPS traffic comes back in through the uplink and needs the
// host-wide switches: this package never changes net.ipv4.ip_forward or
// net.ipv6.conf.all.forwarding, it reports them as warnings (Setup, Warnings,
// ForwardingEnabled). Turning on net.ipv6.conf.all.forwarding makes the kernel
// ignore router advertisements: an uplink configured by SLAAC then needs
// accept_ra=2.
//
// Proxy ARP/NDP entries go on a host interface only for VPS addresses inside
// a subnet directly configured on that interface (as vzctl did, so that the
// LAN finds them); no other address ever touches the uplink. The kernel
// answers for IPv6 proxy entries only when proxy_ndp is on for the interface;
// that is reported as a warning too.
//
// # Invariants
//
//   - Every host link this package creates is a veth carrying the alias
//     "vpsctl:<ID>:<name inside>" and a MAC address derived from the ID and
//     that name (set at creation, so it marks the link even if a crash came
//     before the alias); Teardown and DelNetIf delete only links so marked,
//     so a user-chosen host-ifname can never make them delete someone else's
//     interface.
//   - Host sysctls change only for links this package created and only before
//     they come up: accept_ra=0 and accept_redirects=0 on every host end (a
//     tenant must not steer the host's routing with router advertisements or
//     redirects), rp_filter=1 and forwarding=1 on the routed host end, so the
//     kernel forwards what a VPS sends to other VPSs but drops packets whose
//     source is not one of its routed IPv4 addresses, as venet did.
//   - Source addresses are validated by vpsctl's own nftables table ("inet
//     vpsctl", srcfilter.go), whatever the host's sysctls say: a packet that
//     arrives on vps<ID> from a source that is not one of VPS ID's routed
//     addresses (IPv4 or IPv6; link-local and unspecified sources excepted,
//     for neighbour discovery) is dropped. AddIPs widens the filter before the
//     address is routed, DelIPs narrows it before the route goes, Teardown
//     removes it. rp_filter alone does not suffice: IPv6 has none, and the
//     effective IPv4 value is the larger of the host's "all" and the
//     interface's. Bridged interfaces are not filtered: a VPS with one is
//     trusted with that L2 segment.
//   - Work inside a VPS goes through netlink handles bound to its namespace
//     (netlink.NewHandleAt), created on a thread that never returns to the
//     scheduler, and never through a thread switched with setns(2).
//   - Every multi-step change is undone step by step (undo) when a later step
//     fails, so a failed Setup, AddIPs or AddNetIf leaves nothing behind.
//   - Paths inside a VPS's root file system are resolved with openat2(2)
//     RESOLVE_IN_ROOT and replaced by rename, never opened with O_TRUNC
//     (CVE-2024-45310).
//
// The package configures the VPS from outside before its init runs; it does
// not write the guest distribution's own network configuration files.
package network
