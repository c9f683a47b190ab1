package network

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vpsctl/vpsctl/container"
)

// Test traffic goes only to these, inside namespaces the tests make.
var (
	testNet4 = netip.MustParsePrefix("198.18.0.0/24")
	testNet6 = netip.MustParsePrefix("fd42:1::/64")
)

func inTestNets(a netip.Addr) bool { return testNet4.Contains(a) || testNet6.Contains(a) }

// testID is a VPS ID unique to this test process: 10 digits, so the long
// forms of the interface names are exercised too.
func testID(k container.ID) container.ID {
	return 4_000_000_000 + container.ID(os.Getpid())*10 + k
}

// testName names a test object after the test process.
func testName(kind string) string { return "vt" + kind + strconv.Itoa(os.Getpid()) }

func mustIP(t *testing.T, s string) netip.Prefix {
	t.Helper()
	p, err := ParseIP(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// fakeVPS starts a process in a new network namespace, standing in for a
// VPS's init, and returns its PID; cleanup kills it by PID.
func fakeVPS(t *testing.T) *os.Process {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
	})
	return cmd.Process
}

// guardTestNets routes the test networks to "unreachable" on the host for the
// test's duration, below the /32 and /128 routes of the fake VPSs: traffic to
// a test address no fake VPS holds then fails on the host instead of
// following the default route out of the uplink.
func guardTestNets(t *testing.T) {
	t.Helper()
	for _, p := range []netip.Prefix{testNet4, testNet6} {
		r := &netlink.Route{Dst: ipNet(p), Type: unix.RTN_UNREACHABLE, Table: unix.RT_TABLE_MAIN,
			Priority: 1_000_000 + os.Getpid()}
		if err := netlink.RouteAdd(r); err != nil {
			t.Fatalf("guard route %s: %v", p, err)
		}
		t.Cleanup(func() {
			if err := netlink.RouteDel(r); err != nil {
				t.Errorf("delete guard route %s: %v", p, err)
			}
		})
	}
}

// snapshot lists the host objects a VPS's network could leave behind: links
// made for the test IDs, routes, addresses, proxy and neighbour entries
// touching the test networks or 169.254.0.0/16, and default routes.
func snapshot(t *testing.T, ids ...container.ID) string {
	t.Helper()
	relevant := func(ip net.IP) bool {
		a, ok := toAddr(ip)
		return ok && (inTestNets(a) || netip.MustParsePrefix("169.254.0.0/16").Contains(a))
	}
	var lines []string
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	names := map[int]string{}
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
		for _, id := range ids {
			if strings.HasPrefix(l.Attrs().Alias, linkAlias(id, "")) || l.Attrs().Name == HostIfName(id) {
				lines = append(lines, fmt.Sprintf("link %s alias %q", l.Attrs().Name, l.Attrs().Alias))
			}
		}
	}
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil {
		t.Fatal(err)
	}
	// Another VPS's host end (another test run's, on a shared machine) is not this test's.
	others := func(index int) bool {
		name := names[index]
		if !strings.HasPrefix(name, "vps") {
			return false
		}
		for _, id := range ids {
			if name == HostIfName(id) {
				return false
			}
		}
		return true
	}
	for _, r := range routes {
		if others(r.LinkIndex) {
			continue
		}
		if r.Dst == nil || isDefault(r) || relevant(r.Dst.IP) {
			lines = append(lines, fmt.Sprintf("route %v dev %s gw %v table %d type %d prio %d", r.Dst, names[r.LinkIndex], r.Gw, r.Table, r.Type, r.Priority))
		}
	}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if relevant(a.IP) && !others(a.LinkIndex) {
			lines = append(lines, fmt.Sprintf("addr %s dev %s", a.IPNet, names[a.LinkIndex]))
		}
	}
	proxies, err := netlink.NeighProxyList(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range proxies {
		if relevant(n.IP) && !others(n.LinkIndex) {
			lines = append(lines, fmt.Sprintf("proxy %s dev %s", n.IP, names[n.LinkIndex]))
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

func checkSnapshot(t *testing.T, what, before string, ids ...container.ID) {
	t.Helper()
	if after := snapshot(t, ids...); after != before {
		t.Errorf("%s left things behind:\nbefore:\n%s\nafter:\n%s", what, before, after)
	}
}

// noUplinkNeighbours fails t if the host has neighbour entries for test
// addresses on an interface the test did not make: the sign of test traffic
// that went somewhere it must not.
func noUplinkNeighbours(t *testing.T, testLinks ...string) {
	t.Helper()
	links, _ := netlink.LinkList()
	for _, l := range links {
		if strings.HasPrefix(l.Attrs().Alias, aliasPrefix) || slices.Contains(testLinks, l.Attrs().Name) {
			continue
		}
		neighs, _ := netlink.NeighList(l.Attrs().Index, 0)
		for _, n := range neighs {
			if a, ok := toAddr(n.IP); ok && inTestNets(a) {
				t.Errorf("neighbour entry for test address %s on %s", a, l.Attrs().Name)
			}
		}
	}
}

// ping sends one echo request to dst, a test address, from the host (pid 0)
// or from the network namespace of pid.
func ping(t *testing.T, pid int, dst netip.Addr) error {
	t.Helper()
	if !inTestNets(dst) {
		t.Fatalf("refusing to ping %s: not a test address", dst)
	}
	args := []string{"-c1", "-W2"}
	if dst.Is6() {
		args = append(args, "-6")
	}
	args = append(args, dst.String())
	bin := "ping"
	if _, err := exec.LookPath(bin); err != nil {
		bin, args = "busybox", append([]string{"ping"}, args...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	if pid == 0 {
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	}
	errc := make(chan error, 1)
	go func() {
		// This thread enters the VPS's namespace and is never unlocked,
		// so it dies with the goroutine instead of serving others. The
		// child is forked from it and starts in that namespace.
		runtime.LockOSThread()
		fd, err := unix.Open("/proc/"+strconv.Itoa(pid)+"/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		err = unix.Setns(fd, unix.CLONE_NEWNET)
		unix.Close(fd)
		if err != nil {
			errc <- err
			return
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			err = fmt.Errorf("%v: %s", err, out)
		}
		errc <- err
	}()
	return <-errc
}

// setSysctl sets a host sysctl for the test's duration.
func setSysctl(t *testing.T, key, val string) {
	t.Helper()
	old, err := hostSysctl(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := setHostSysctl(key, val); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := setHostSysctl(key, old); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Errorf("restore %s=%s: %v", key, old, err)
		}
	})
}

func insideLink(t *testing.T, pid int, name string) (*vpsNetns, netlink.Link) {
	t.Helper()
	v, err := openNetns(pid)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	l, err := v.h.LinkByName(name)
	if err != nil {
		t.Fatalf("%s inside: %v", name, err)
	}
	return v, l
}

func addrsOf(t *testing.T, h *netlink.Handle, l netlink.Link) []string {
	t.Helper()
	addrs, err := h.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range addrs {
		out = append(out, a.IPNet.String())
	}
	return out
}

func defaultRoute(t *testing.T, h *netlink.Handle, fam int) *netlink.Route {
	t.Helper()
	routes, err := h.RouteListFiltered(fam, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		if isDefault(r) {
			return &r
		}
	}
	return nil
}

func TestHostAddrInUse(t *testing.T) {
	requireRoot(t)
	if in, err := HostAddrInUse(netip.MustParseAddr("127.0.0.1")); err != nil || !in {
		t.Errorf("HostAddrInUse(127.0.0.1) = %v, %v", in, err)
	}
	if in, err := HostAddrInUse(netip.MustParseAddr("::1")); err != nil || !in {
		t.Errorf("HostAddrInUse(::1) = %v, %v", in, err)
	}
	if in, err := HostAddrInUse(netip.MustParseAddr("198.18.0.99")); err != nil || in {
		t.Errorf("HostAddrInUse(198.18.0.99) = %v, %v", in, err)
	}
}

func TestSetupRefusesHostNetns(t *testing.T) {
	requireRoot(t)
	before := snapshot(t, testID(9))
	_, err := Setup(testID(9), os.Getpid(), Config{IPs: []netip.Prefix{mustIP(t, "198.18.0.29")}})
	if !errors.Is(err, errHostNetns) {
		t.Errorf("Setup in the host's namespace: %v", err)
	}
	checkSnapshot(t, "refused Setup", before, testID(9))
}

func TestRouted(t *testing.T) {
	requireRoot(t)
	guardTestNets(t)
	id := testID(1)
	vps := fakeVPS(t)
	before := snapshot(t, id, testID(2))
	a4, a6 := mustIP(t, "198.18.0.21/24"), mustIP(t, "fd42:1::21/64")
	cfg := Config{IPs: []netip.Prefix{a4, a6}}
	warnings, err := Setup(id, vps.Pid, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Teardown(id, cfg) })
	t.Logf("warnings: %q", warnings)
	if v4, _ := ForwardingEnabled(); !v4 && !slices.ContainsFunc(warnings, func(w string) bool { return strings.Contains(w, "net.ipv4.ip_forward") }) {
		t.Errorf("no ip_forward warning: %q", warnings)
	}

	// Inside.
	v, venet := insideLink(t, vps.Pid, venetName)
	if venet.Attrs().Flags&net.FlagUp == 0 {
		t.Error("venet0 is down")
	}
	if lo, _ := v.h.LinkByName("lo"); lo == nil || lo.Attrs().Flags&net.FlagUp == 0 {
		t.Error("lo is down")
	}
	got := addrsOf(t, v.h, venet)
	for _, want := range []string{"198.18.0.21/32", "fd42:1::21/128"} {
		if !slices.Contains(got, want) {
			t.Errorf("venet0 has %v, want %s", got, want)
		}
	}
	if r := defaultRoute(t, v.h, netlink.FAMILY_V4); r == nil || !r.Gw.Equal(net.ParseIP("169.254.0.1")) ||
		r.LinkIndex != venet.Attrs().Index || r.Flags&int(netlink.FLAG_ONLINK) == 0 {
		t.Errorf("IPv4 default route %v, want via 169.254.0.1 dev venet0 onlink", r)
	}
	if r := defaultRoute(t, v.h, netlink.FAMILY_V6); r == nil || !r.Gw.Equal(net.ParseIP("fe80::1")) || r.LinkIndex != venet.Attrs().Index {
		t.Errorf("IPv6 default route %v, want via fe80::1 dev venet0", r)
	}

	// Host.
	host, err := netlink.LinkByName(HostIfName(id))
	if err != nil {
		t.Fatal(err)
	}
	if owner, found, _ := routeOwner(a4.Addr()); !found || owner != host.Attrs().Index {
		t.Errorf("host route to %s: found %v via index %d, want %s", a4.Addr(), found, owner, HostIfName(id))
	}
	for key, want := range map[string]string{
		"net/ipv4/conf/" + HostIfName(id) + "/rp_filter": "1",
		"net/ipv6/conf/" + HostIfName(id) + "/accept_ra": "0",
	} {
		if got, _ := hostSysctl(key); got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
	if in, _ := HostAddrInUse(a4.Addr()); in {
		t.Error("the host holds the VPS's address")
	}

	links, err := Links(vps.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if len(links) != 1 || links[0].Name != venetName || links[0].HostName != HostIfName(id) ||
		!slices.Contains(links[0].Addrs, "198.18.0.21/32") || links[0].MAC != vpsMAC(id, venetName).String() {
		t.Errorf("Links = %+v", links)
	}

	for _, a := range []netip.Addr{a4.Addr(), a6.Addr()} {
		if err := ping(t, 0, a); err != nil {
			t.Errorf("ping %s from the host: %v", a, err)
		}
	}

	// Another VPS may not take the addresses.
	vps2 := fakeVPS(t)
	if _, err := Setup(testID(2), vps2.Pid, Config{IPs: []netip.Prefix{mustIP(t, "198.18.0.22"), a4}}); !errors.Is(err, ErrIPInUse) {
		t.Errorf("second VPS with %s: %v, want ErrIPInUse", a4, err)
	}
	if _, err := Setup(testID(2), vps2.Pid, Config{IPs: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}); !errors.Is(err, ErrBadIP) {
		t.Errorf("VPS with 127.0.0.1: %v, want ErrBadIP", err)
	}

	if err := Teardown(id, cfg); err != nil {
		t.Fatal(err)
	}
	checkSnapshot(t, "Teardown", before, id, testID(2))
	if err := Teardown(id, cfg); err != nil {
		t.Errorf("second Teardown: %v", err)
	}
	noUplinkNeighbours(t)
}

func TestLiveIPs(t *testing.T) {
	requireRoot(t)
	guardTestNets(t)
	id := testID(3)
	vps := fakeVPS(t)
	before := snapshot(t, id)
	if _, err := Setup(id, vps.Pid, Config{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Teardown(id, Config{}) })
	a4, a6 := mustIP(t, "198.18.0.23"), mustIP(t, "fd42:1::23")
	if err := DelIPs(id, vps.Pid, []netip.Prefix{a4}); !errors.Is(err, ErrNotFound) {
		t.Errorf("DelIPs without venet: %v", err)
	}
	if err := AddIPs(id, vps.Pid, []netip.Prefix{a4, a6}); err != nil {
		t.Fatal(err)
	}
	cfg := Config{IPs: []netip.Prefix{a4, a6}}
	t.Cleanup(func() { Teardown(id, cfg) })
	if err := AddIPs(id, vps.Pid, []netip.Prefix{a4}); err != nil {
		t.Errorf("adding an address twice: %v", err)
	}
	for _, a := range []netip.Addr{a4.Addr(), a6.Addr()} {
		if err := ping(t, 0, a); err != nil {
			t.Errorf("ping %s after AddIPs: %v", a, err)
		}
	}

	if err := DelIPs(id, vps.Pid, []netip.Prefix{a4}); err != nil {
		t.Fatal(err)
	}
	// The guard route makes this fail on the host, not on the uplink.
	if err := ping(t, 0, a4.Addr()); err == nil {
		t.Errorf("ping %s works after DelIPs", a4.Addr())
	}
	if err := ping(t, 0, a6.Addr()); err != nil {
		t.Errorf("ping %s after deleting %s: %v", a6.Addr(), a4.Addr(), err)
	}
	v, venet := insideLink(t, vps.Pid, venetName)
	if r := defaultRoute(t, v.h, netlink.FAMILY_V4); r != nil {
		t.Errorf("IPv4 default route %v left without IPv4 addresses", r)
	}
	if err := DelIPs(id, vps.Pid, []netip.Prefix{a4}); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleting %s twice: %v, want ErrNotFound", a4, err)
	}
	if err := AddIPs(id, vps.Pid, []netip.Prefix{a4}); err != nil {
		t.Fatal(err)
	}
	if err := ping(t, 0, a4.Addr()); err != nil {
		t.Errorf("ping %s after adding it back: %v", a4.Addr(), err)
	}
	if err := DelIPs(id, vps.Pid, []netip.Prefix{a4, a6}); err != nil {
		t.Fatal(err)
	}
	if got := addrsOf(t, v.h, venet); slices.ContainsFunc(got, func(s string) bool { return !strings.HasPrefix(s, "fe80:") }) {
		t.Errorf("venet0 still has %v", got)
	}
	if r := defaultRoute(t, v.h, netlink.FAMILY_V6); r != nil {
		t.Errorf("IPv6 default route %v left without IPv6 addresses", r)
	}
	if err := Teardown(id, cfg); err != nil {
		t.Fatal(err)
	}
	checkSnapshot(t, "Teardown", before, id)
	noUplinkNeighbours(t)
}

func TestVPSToVPS(t *testing.T) {
	requireRoot(t)
	guardTestNets(t)
	idA, idB := testID(4), testID(5)
	vpsA, vpsB := fakeVPS(t), fakeVPS(t)
	before := snapshot(t, idA, idB)
	cfgA := Config{IPs: []netip.Prefix{mustIP(t, "198.18.0.24"), mustIP(t, "fd42:1::24")}}
	cfgB := Config{IPs: []netip.Prefix{mustIP(t, "198.18.0.25"), mustIP(t, "fd42:1::25")}}
	for _, s := range []struct {
		id  container.ID
		pid int
		cfg Config
	}{{idA, vpsA.Pid, cfgA}, {idB, vpsB.Pid, cfgB}} {
		if _, err := Setup(s.id, s.pid, s.cfg); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { Teardown(s.id, s.cfg) })
	}
	// IPv4: the routed host ends forward what their VPS sends (net.ipv4.ip_forward stays as it
	// is; writing it would reset every interface's forwarding).
	for _, id := range []container.ID{idA, idB} {
		if v4, _ := vpsForwarding(id); !v4 {
			t.Errorf("net.ipv4.conf.%s.forwarding is off", HostIfName(id))
		}
	}
	if err := ping(t, vpsA.Pid, cfgB.IPs[0].Addr()); err != nil {
		t.Errorf("VPS A to B over IPv4: %v", err)
	}
	if err := ping(t, vpsB.Pid, cfgA.IPs[0].Addr()); err != nil {
		t.Errorf("VPS B to A over IPv4: %v", err)
	}
	// IPv6 forwarding per interface: turning on net.ipv6.conf.all.forwarding
	// would make the host join the all-routers group on the uplink too (an
	// MLD report out of eth0), which a test must not cause.
	fwd := "net/ipv6/conf/" + HostIfName(idA) + "/force_forwarding"
	if _, err := hostSysctl(fwd); err != nil {
		t.Logf("no per-interface IPv6 forwarding in this kernel (%v): IPv6 VPS to VPS not tested", err)
	} else {
		if _, v6 := ForwardingEnabled(); !v6 {
			// No rp_filter for IPv6: its forwarding stays the administrator's switch.
			if err := ping(t, vpsA.Pid, cfgB.IPs[1].Addr()); err == nil {
				t.Error("VPS to VPS over IPv6 works with forwarding off")
			}
		}
		setSysctl(t, fwd, "1")
		setSysctl(t, "net/ipv6/conf/"+HostIfName(idB)+"/force_forwarding", "1")
		if err := ping(t, vpsA.Pid, cfgB.IPs[1].Addr()); err != nil {
			t.Errorf("VPS A to B over IPv6: %v", err)
		}
	}
	for _, s := range []struct {
		id  container.ID
		cfg Config
	}{{idA, cfgA}, {idB, cfgB}} {
		if err := Teardown(s.id, s.cfg); err != nil {
			t.Error(err)
		}
	}
	checkSnapshot(t, "Teardown", before, idA, idB)
	noUplinkNeighbours(t)
}

// testBridge makes a bridge holding 198.18.0.129/25: a stand-in for a LAN
// interface of the host.
func testBridge(t *testing.T, kind string) netlink.Link {
	t.Helper()
	attrs := netlink.NewLinkAttrs()
	attrs.Name = testName(kind)
	br := &netlink.Bridge{LinkAttrs: attrs}
	if err := netlink.LinkAdd(br); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := netlink.LinkDel(br); err != nil {
			t.Errorf("delete bridge: %v", err)
		}
	})
	if err := netlink.AddrAdd(br, &netlink.Addr{IPNet: ipNet(netip.MustParsePrefix("198.18.0.129/25"))}); err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetUp(br); err != nil {
		t.Fatal(err)
	}
	return br
}

func hasProxy(t *testing.T, link int, a netip.Addr) bool {
	t.Helper()
	entries, err := netlink.NeighProxyList(link, family(a))
	if err != nil {
		t.Fatal(err)
	}
	return slices.ContainsFunc(entries, func(n netlink.Neigh) bool { b, _ := toAddr(n.IP); return b == a })
}

func TestBridged(t *testing.T) {
	requireRoot(t)
	guardTestNets(t)
	br := testBridge(t, "br")
	id := testID(6)
	vps := fakeVPS(t)
	before := snapshot(t, id)
	routed := mustIP(t, "198.18.0.140")
	n, err := ParseNetIf("eth0,bridge=" + br.Attrs().Name + ",ip=198.18.0.130/25,ip=fd42:1::130/64,gw=198.18.0.129")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{IPs: []netip.Prefix{routed}, NetIfs: []NetIf{n}}
	if _, err := Setup(id, vps.Pid, cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Teardown(id, cfg) })

	v, eth0 := insideLink(t, vps.Pid, "eth0")
	if eth0.Attrs().HardwareAddr.String() != vpsMAC(id, "eth0").String() {
		t.Errorf("eth0 MAC %s, want the derived %s", eth0.Attrs().HardwareAddr, vpsMAC(id, "eth0"))
	}
	if got := addrsOf(t, v.h, eth0); !slices.Contains(got, "198.18.0.130/25") || !slices.Contains(got, "fd42:1::130/64") {
		t.Errorf("eth0 has %v", got)
	}
	if r := defaultRoute(t, v.h, netlink.FAMILY_V4); r == nil || !r.Gw.Equal(net.ParseIP("198.18.0.129")) || r.LinkIndex != eth0.Attrs().Index {
		t.Errorf("IPv4 default route %v, want the bridged interface's gateway", r)
	}
	hostEnd, err := netlink.LinkByName(vethHostName(id, "eth0"))
	if err != nil {
		t.Fatal(err)
	}
	if hostEnd.Attrs().MasterIndex != br.Attrs().Index {
		t.Errorf("%s is not enslaved to %s", hostEnd.Attrs().Name, br.Attrs().Name)
	}
	// 198.18.0.140 lies in the bridge's subnet: the LAN there must find it.
	if !hasProxy(t, br.Attrs().Index, routed.Addr()) {
		t.Errorf("no proxy ARP entry for %s on %s", routed.Addr(), br.Attrs().Name)
	}
	for _, a := range []netip.Addr{netip.MustParseAddr("198.18.0.130"), routed.Addr()} {
		if err := ping(t, 0, a); err != nil {
			t.Errorf("ping %s: %v", a, err)
		}
	}

	// Live: a second interface without a bridge, with a chosen host name.
	eth1 := NetIf{Name: "eth1", HostName: testName("x"), MAC: net.HardwareAddr{0x02, 0, 0, 0, 0x42, 0x01}}
	if err := AddNetIf(id, vps.Pid, eth1); err != nil {
		t.Fatal(err)
	}
	if err := AddNetIf(id, vps.Pid, eth1); !errors.Is(err, ErrExists) {
		t.Errorf("adding eth1 twice: %v, want ErrExists", err)
	}
	links, err := Links(vps.Pid)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range links {
		names = append(names, l.Name+"/"+l.HostName+"/"+l.MAC)
	}
	want := []string{
		"eth0/" + vethHostName(id, "eth0") + "/" + vpsMAC(id, "eth0").String(),
		"eth1/" + testName("x") + "/02:00:00:00:42:01",
		"venet0/" + HostIfName(id) + "/" + vpsMAC(id, venetName).String(),
	}
	if !slices.Equal(names, want) {
		t.Errorf("Links: %q, want %q", names, want)
	}
	if err := DelNetIf(id, vps.Pid, "eth1"); err != nil {
		t.Fatal(err)
	}
	if _, err := v.h.LinkByName("eth1"); err == nil {
		t.Error("eth1 still there after DelNetIf")
	}
	if err := DelNetIf(id, vps.Pid, "eth1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("DelNetIf twice: %v, want ErrNotFound", err)
	}

	if err := Teardown(id, cfg); err != nil {
		t.Fatal(err)
	}
	checkSnapshot(t, "Teardown", before, id)
	noUplinkNeighbours(t, br.Attrs().Name)
}

// After the VPS died its veth pairs go with its namespace, but proxy entries
// stay on the host until Teardown.
func TestTeardownAfterDeath(t *testing.T) {
	requireRoot(t)
	guardTestNets(t)
	br := testBridge(t, "bk")
	id := testID(7)
	vps := fakeVPS(t)
	before := snapshot(t, id)
	cfg := Config{
		IPs:    []netip.Prefix{mustIP(t, "198.18.0.141"), mustIP(t, "fd42:1::141")},
		NetIfs: []NetIf{{Name: "eth0", Bridge: br.Attrs().Name}},
	}
	if _, err := Setup(id, vps.Pid, cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Teardown(id, cfg) })
	if !hasProxy(t, br.Attrs().Index, cfg.IPs[0].Addr()) {
		t.Fatal("no proxy entry to leave behind")
	}
	if err := vps.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if _, err := vps.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := Teardown(id, cfg); err != nil {
		t.Fatal(err)
	}
	checkSnapshot(t, "Teardown after the VPS died", before, id)
}

func TestSetupFailureLeavesNothing(t *testing.T) {
	requireRoot(t)
	guardTestNets(t)
	id := testID(8)
	vps := fakeVPS(t)
	before := snapshot(t, id)
	ips := []netip.Prefix{mustIP(t, "198.18.0.26"), mustIP(t, "fd42:1::26")}
	for _, c := range []struct {
		netif NetIf
		err   error
	}{
		{NetIf{Name: "eth0", Bridge: testName("nb")}, ErrNotFound}, // no such bridge
		{NetIf{Name: "eth0", Bridge: "lo"}, ErrBadNetIf},           // not a bridge
		{NetIf{Name: "eth0", HostName: "lo"}, ErrExists},           // host name taken
	} {
		cfg := Config{IPs: ips, NetIfs: []NetIf{{Name: "eth1"}, c.netif}}
		_, err := Setup(id, vps.Pid, cfg)
		if !errors.Is(err, c.err) {
			t.Errorf("Setup with %v: %v, want %v", c.netif, err, c.err)
		}
		if err == nil {
			Teardown(id, cfg)
		}
		checkSnapshot(t, "failed Setup", before, id)
		v, err := openNetns(vps.Pid)
		if err != nil {
			t.Fatal(err)
		}
		if links, _ := v.h.LinkList(); len(links) != 1 {
			t.Errorf("the VPS has %d interfaces after a failed Setup, want lo alone", len(links))
		}
		v.Close()
	}
	// The lo host name test above must not have touched lo.
	if lo, err := netlink.LinkByName("lo"); err != nil || lo.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("host lo: %v", err)
	}
}
