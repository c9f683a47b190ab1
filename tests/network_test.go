package tests

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The networking acceptance, end to end through the CLI. Test traffic goes only to addresses of
// VPSs these tests create, in 198.18.0.0/24 and fd42:1::/64; guard routes make every other
// address of those networks unreachable, so nothing can leave through the host's uplink.

var (
	netTest4 = netip.MustParsePrefix("198.18.0.0/24")
	netTest6 = netip.MustParsePrefix("fd42:1::/64")
)

// netStatus is the network part of `status --format json` / `list --format json`.
type netStatus struct {
	ID      uint32   `json:"id"`
	State   string   `json:"state"`
	InitPID int      `json:"init_pid"`
	IPs     []string `json:"ips"`
	NetIfs  []string `json:"netifs"`
}

func netStatusOf(t testing.TB, id string) netStatus {
	t.Helper()
	var s netStatus
	out := must(t, "status", id, "--format", "json")
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("status json %q: %v", out, err)
	}
	return s
}

// hasIP reports whether list (as in "ips": "ADDR" or "ADDR/PREFIX") holds address a.
func hasIP(list []string, a string) bool {
	want := netip.MustParseAddr(a)
	return slices.ContainsFunc(list, func(s string) bool {
		if p, err := netip.ParsePrefix(s); err == nil {
			return p.Addr() == want
		}
		b, err := netip.ParseAddr(s)
		return err == nil && b == want
	})
}

// netGuard routes the test networks to "unreachable" for the test's duration, with a metric
// distinctive of this test process, below the /32 and /128 routes of the VPSs: a test address no
// VPS holds then fails on the host instead of following the default route out of the uplink.
func netGuard(t *testing.T) {
	t.Helper()
	metric := 131_000_000 + os.Getpid()
	for _, p := range []netip.Prefix{netTest4, netTest6} {
		r := &netlink.Route{Dst: prefixNet(p), Type: unix.RTN_UNREACHABLE, Table: unix.RT_TABLE_MAIN, Priority: metric}
		if err := netlink.RouteAdd(r); err != nil {
			t.Fatalf("guard route unreachable %s metric %d: %v", p, metric, err)
		}
		t.Cleanup(func() {
			if err := netlink.RouteDel(r); err != nil {
				t.Errorf("delete guard route %s: %v", p, err)
			}
		})
	}
}

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// testLink reports whether l is a link tests may send through: a host end vpsctl made (its
// alias), a bridge of this test, or loopback.
func testLink(l netlink.Link, bridges []string) bool {
	a := l.Attrs()
	return strings.HasPrefix(a.Alias, "vpsctl:") || slices.Contains(bridges, a.Name) || a.Flags&net.FlagLoopback != 0
}

// checkDst refuses (fatally) to send to dst unless it is a test address whose route stays on
// test links; an unreachable destination is an error (the send would fail).
func checkDst(t testing.TB, dst netip.Addr, bridges ...string) error {
	t.Helper()
	if !netTest4.Contains(dst) && !netTest6.Contains(dst) {
		t.Fatalf("refusing to send to %s: not a test address", dst)
	}
	routes, err := netlink.RouteGet(net.IP(dst.AsSlice()))
	if err != nil {
		return fmt.Errorf("no route to %s: %w", dst, err)
	}
	for _, r := range routes {
		l, err := netlink.LinkByIndex(r.LinkIndex)
		if err != nil {
			return fmt.Errorf("route to %s: link %d: %w", dst, r.LinkIndex, err)
		}
		if !testLink(l, bridges) {
			t.Fatalf("refusing to send to %s: routed through %s, not a test link", dst, l.Attrs().Name)
		}
	}
	return nil
}

// runBounded runs a host command with a timeout.
func runBounded(timeout time.Duration, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if ctx.Err() != nil {
		err = fmt.Errorf("%s %v: timed out (%w)", name, args, ctx.Err())
	}
	return out, err
}

// hostPing sends one echo request from the host to dst (ping, or busybox's when iputils is
// missing) and waits at most two seconds for the answer.
func hostPing(t testing.TB, dst string, bridges ...string) error {
	t.Helper()
	a := netip.MustParseAddr(dst)
	if err := checkDst(t, a, bridges...); err != nil {
		return err
	}
	bin, args := "ping", []string{"-c1", "-W2"}
	if a.Is6() {
		args = append(args, "-6")
	}
	if _, err := exec.LookPath(bin); err != nil {
		bin, args = "/bin/busybox", []string{"ping", "-c1", "-W2"}
		if a.Is6() {
			args[0] = "ping6"
		}
	}
	out, err := runBounded(10*time.Second, bin, append(args, dst)...)
	if err != nil {
		return fmt.Errorf("ping %s: %v: %s", dst, err, out)
	}
	return nil
}

// vpsPing pings dst (an address of a VPS of the test) from inside VPS id.
func vpsPing(t testing.TB, id, dst string) result {
	t.Helper()
	a := netip.MustParseAddr(dst)
	if !netTest4.Contains(a) && !netTest6.Contains(a) {
		t.Fatalf("refusing to send to %s: not a test address", dst)
	}
	cmd := "ping"
	if a.Is6() {
		cmd = "ping6"
	}
	return vpsctl(t, "exec", id, "--", cmd, "-c1", "-W2", dst)
}

// hostObjects lists what the host holds for the given VPS addresses and host interface names:
// links of those names or carrying vpsctl's alias for the IDs, routes to the addresses (any
// table), and proxy ARP/NDP entries for them. Empty means nothing is left.
func hostObjects(t testing.TB, ids, addrs []string) []string {
	t.Helper()
	var out []string
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		for _, id := range ids {
			if l.Attrs().Name == "vps"+id || strings.HasPrefix(l.Attrs().Alias, "vpsctl:"+id+":") {
				out = append(out, fmt.Sprintf("link %s (alias %q)", l.Attrs().Name, l.Attrs().Alias))
			}
		}
	}
	want := map[netip.Addr]bool{}
	for _, a := range addrs {
		want[netip.MustParseAddr(a)] = true
	}
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		if r.Dst == nil {
			continue
		}
		ones, bits := r.Dst.Mask.Size()
		a, ok := netip.AddrFromSlice(r.Dst.IP)
		if ok && ones == bits && want[a.Unmap()] {
			out = append(out, fmt.Sprintf("route %s dev index %d table %d type %d", r.Dst, r.LinkIndex, r.Table, r.Type))
		}
	}
	proxies, err := netlink.NeighProxyList(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range proxies {
		if a, ok := netip.AddrFromSlice(n.IP); ok && want[a.Unmap()] {
			out = append(out, fmt.Sprintf("proxy entry %s dev index %d", n.IP, n.LinkIndex))
		}
	}
	return out
}

// vethLinks lists the host's veth links, as `ip -o link | grep veth` would count them.
func vethLinks(t testing.TB) []string {
	t.Helper()
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range links {
		if l.Type() == "veth" || strings.Contains(l.Attrs().Name, "veth") {
			out = append(out, l.Attrs().Name)
		}
	}
	slices.Sort(out)
	return out
}

// noUplinkNeighbours fails t if a host interface other than the test's has a neighbour entry
// for a test address: the sign of test traffic that went where it must not.
func noUplinkNeighbours(t *testing.T, bridges ...string) {
	t.Helper()
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		if testLink(l, bridges) {
			continue
		}
		neighs, _ := netlink.NeighList(l.Attrs().Index, 0)
		for _, n := range neighs {
			if a, ok := netip.AddrFromSlice(n.IP); ok && (netTest4.Contains(a.Unmap()) || netTest6.Contains(a)) {
				t.Errorf("neighbour entry for test address %s on %s", n.IP, l.Attrs().Name)
			}
		}
	}
}

// hostAddr puts a (a /32 or /128 of the test networks) on the host's loopback for the test's
// duration: an address held by the host.
func hostAddr(t *testing.T, a string) {
	t.Helper()
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	p := netip.MustParseAddr(a)
	addr := &netlink.Addr{IPNet: prefixNet(netip.PrefixFrom(p, p.BitLen()))}
	if err := netlink.AddrAdd(lo, addr); err != nil {
		t.Fatalf("add %s to lo: %v", a, err)
	}
	t.Cleanup(func() {
		if err := netlink.AddrDel(lo, addr); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			t.Errorf("delete %s from lo: %v", a, err)
		}
	})
}

func TestNetworkRouted(t *testing.T) {
	checkClean(t, "131", "132", "133")
	netGuard(t)
	vethBefore := vethLinks(t)
	addrs := []string{"198.18.0.131", "198.18.0.132", "fd42:1::132", "198.18.0.111"}

	must(t, "create", "131", "--template", "busybox", "--ipadd", "198.18.0.131", "--nameserver", "198.18.0.1")
	started := vpsctl(t, "start", "131")
	if started.code != 0 {
		t.Fatalf("start 131: exit %d: %s", started.code, started.err)
	}
	// start tells the administrator which host switch limits the VPS (here and in monitor.log).
	if b, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); strings.TrimSpace(string(b)) == "0" &&
		!strings.Contains(started.err, "warning: VPS 131: net.ipv4.ip_forward is off: VPS 131 reaches this host and other VPSs") {
		t.Errorf("start 131 with ip_forward off: stderr %q lacks the forwarding warning", started.err)
	}
	must(t, "create", "132", "--template", "busybox", "--ipadd", "198.18.0.132", "--ipadd", "fd42:1::132")
	must(t, "start", "132")

	t.Run("status and list show the addresses", func(t *testing.T) {
		if s := netStatusOf(t, "131"); s.State != "running" || !hasIP(s.IPs, "198.18.0.131") || len(s.IPs) != 1 {
			t.Errorf("status 131 = %+v", s)
		}
		if s := netStatusOf(t, "132"); !hasIP(s.IPs, "198.18.0.132") || !hasIP(s.IPs, "fd42:1::132") || len(s.IPs) != 2 {
			t.Errorf("status 132 = %+v", s)
		}
		var list []netStatus
		out := must(t, "list", "--format", "json")
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			t.Fatalf("list json %q: %v", out, err)
		}
		seen := 0
		for _, s := range list {
			switch s.ID {
			case 131:
				seen++
				if !hasIP(s.IPs, "198.18.0.131") {
					t.Errorf("list: 131 = %+v", s)
				}
			case 132:
				seen++
				if !hasIP(s.IPs, "198.18.0.132") || !hasIP(s.IPs, "fd42:1::132") {
					t.Errorf("list: 132 = %+v", s)
				}
			}
		}
		if seen != 2 {
			t.Errorf("list shows %d of VPS 131, 132:\n%s", seen, out)
		}
	})
	t.Run("inside: venet0 with the addresses", func(t *testing.T) {
		out := must(t, "exec", "132", "--", "ip", "-o", "addr", "show", "dev", "venet0")
		for _, want := range []string{"198.18.0.132/32", "fd42:1::132/128"} {
			if !strings.Contains(out, want) {
				t.Errorf("venet0 of 132 lacks %s:\n%s", want, out)
			}
		}
	})
	t.Run("host to VPS", func(t *testing.T) {
		for _, a := range []string{"198.18.0.131", "198.18.0.132", "fd42:1::132"} {
			if err := hostPing(t, a); err != nil {
				t.Error(err)
			}
		}
	})
	t.Run("IPv6 inside", func(t *testing.T) {
		if r := vpsPing(t, "132", "fd42:1::132"); r.code != 0 {
			t.Errorf("exec 132 ping6 fd42:1::132: exit %d\n%s%s", r.code, r.out, r.err)
		}
	})
	t.Run("VPS to VPS", func(t *testing.T) {
		// IPv4 forwarding is switched on for the routed host ends only: VPSs reach each other
		// with net.ipv4.ip_forward off (as on this test host), which vpsctl never changes.
		// (Writing ip_forward resets every interface's forwarding, so the test does not.)
		for _, id := range []string{"131", "132"} {
			if b, err := os.ReadFile("/proc/sys/net/ipv4/conf/vps" + id + "/forwarding"); err != nil || strings.TrimSpace(string(b)) != "1" {
				t.Errorf("net.ipv4.conf.vps%s.forwarding = %q, %v; want 1", id, b, err)
			}
		}
		if b, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); strings.TrimSpace(string(b)) != "0" {
			t.Logf("net.ipv4.ip_forward is on here: this does not show that the per-interface switch suffices")
		}
		if r := vpsPing(t, "131", "198.18.0.132"); r.code != 0 {
			t.Errorf("exec 131 ping 198.18.0.132: exit %d\n%s%s", r.code, r.out, r.err)
		}
		if r := vpsPing(t, "132", "198.18.0.131"); r.code != 0 {
			t.Errorf("exec 132 ping 198.18.0.131: exit %d\n%s%s", r.code, r.out, r.err)
		}
	})
	t.Run("httpd in the VPS, client on the host", func(t *testing.T) {
		// httpd daemonizes keeping its stdio: detach it from exec's pipes, or the
		// harness would wait for them to close.
		must(t, "exec", "131", "--", "sh", "-c",
			"mkdir -p /www && echo hi > /www/index.html && httpd -p 8080 -h /www </dev/null >/dev/null 2>&1")
		if err := checkDst(t, netip.MustParseAddr("198.18.0.131")); err != nil {
			t.Fatal(err)
		}
		client := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
		var body string
		var lastErr error
		waitFor(t, 15*time.Second, "httpd to answer", func() bool {
			resp, err := client.Get("http://198.18.0.131:8080/")
			if err != nil {
				lastErr = err
				return false
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
			body, lastErr = string(b), err
			return err == nil && resp.StatusCode == http.StatusOK
		})
		if strings.TrimSpace(body) != "hi" {
			t.Errorf("GET http://198.18.0.131:8080/ = %q (%v), want hi", body, lastErr)
		}
	})
	t.Run("address of another VPS is refused", func(t *testing.T) {
		r := expectCode(t, 78, "create", "133", "--template", "busybox", "--ipadd", "198.18.0.131")
		if !strings.Contains(r.err, "198.18.0.131") {
			t.Errorf("error does not name the address: %q", r.err)
		}
		if s := netStatusOf(t, "133"); s.State != "deleted" {
			t.Errorf("refused create left VPS 133: %+v", s)
		}
		expectCode(t, 78, "set", "132", "--ipadd", "198.18.0.131")
		if out := must(t, "exec", "132", "--", "ip", "-o", "addr"); strings.Contains(out, "198.18.0.131") {
			t.Errorf("refused set added the address to 132:\n%s", out)
		}
	})
	t.Run("live ipadd and ipdel", func(t *testing.T) {
		must(t, "set", "131", "--ipadd", "198.18.0.111")
		if err := hostPing(t, "198.18.0.111"); err != nil {
			t.Errorf("after set --ipadd: %v", err)
		}
		if out := must(t, "exec", "131", "--", "ip", "-o", "addr", "show", "dev", "venet0"); !strings.Contains(out, "198.18.0.111/32") {
			t.Errorf("venet0 of 131 lacks 198.18.0.111:\n%s", out)
		}
		must(t, "set", "131", "--ipdel", "198.18.0.111")
		if err := hostPing(t, "198.18.0.111"); err == nil {
			t.Error("198.18.0.111 still answers after set --ipdel")
		}
		if left := hostObjects(t, nil, []string{"198.18.0.111"}); len(left) > 0 {
			t.Errorf("after set --ipdel the host still has: %q", left)
		}
		if out := must(t, "exec", "131", "--", "ip", "-o", "addr"); strings.Contains(out, "198.18.0.111") {
			t.Errorf("198.18.0.111 still inside 131:\n%s", out)
		}
		// The VPS's own address is untouched.
		if err := hostPing(t, "198.18.0.131"); err != nil {
			t.Errorf("after set --ipdel of another address: %v", err)
		}
	})
	t.Run("resolv.conf", func(t *testing.T) {
		out := must(t, "exec", "131", "--", "cat", "/etc/resolv.conf")
		if !slices.Contains(strings.Split(out, "\n"), "nameserver 198.18.0.1") {
			t.Errorf("/etc/resolv.conf of 131:\n%s", out)
		}
	})

	must(t, "stop", "131", "--timeout", "20s")
	must(t, "stop", "132", "--timeout", "20s")
	if left := hostObjects(t, []string{"131", "132"}, addrs); len(left) > 0 {
		t.Errorf("after stop the host still has: %q", left)
	}
	if after := vethLinks(t); !slices.Equal(after, vethBefore) {
		t.Errorf("veth links: before %q, after stop %q", vethBefore, after)
	}
	if err := hostPing(t, "198.18.0.131"); err == nil {
		t.Error("198.18.0.131 answers after stop")
	}
	noUplinkNeighbours(t)
	must(t, "destroy", "131")
	must(t, "destroy", "132")
}

func TestNetworkRefusals(t *testing.T) {
	checkClean(t, "134", "139")
	netGuard(t)
	for _, bad := range [][]string{
		{"--ipadd", "999.1.1.1"},
		{"--ipadd", "198.18.0.134/33"},
		{"--ipadd", "fd42:1::zz"},
		{"--netif-add", "eth0,ip=999.1.1.1"},
	} {
		r := expectCode(t, 71, append([]string{"create", "134", "--template", "busybox"}, bad...)...)
		if !strings.Contains(r.err, strings.TrimPrefix(bad[1], "eth0,ip=")) {
			t.Errorf("create 134 %v: error does not name the value: %q", bad, r.err)
		}
		if s := netStatusOf(t, "134"); s.State != "deleted" {
			t.Fatalf("refused create left VPS 134: %+v", s)
		}
	}

	// Loopback addresses are never a VPS's: refused as malformed or as in use.
	for _, a := range []string{"127.0.0.1", "::1"} {
		if r := vpsctl(t, "create", "134", "--template", "busybox", "--ipadd", a); r.code != 71 && r.code != 78 {
			t.Errorf("create 134 --ipadd %s: exit %d, want 78 or 71\n%s", a, r.code, r.err)
		}
	}

	// An address the host holds (here on lo) is in use, at create and at start.
	must(t, "create", "139", "--template", "busybox", "--ipadd", "198.18.0.139")
	hostAddr(t, "198.18.0.134")
	hostAddr(t, "198.18.0.139")
	r := expectCode(t, 78, "create", "134", "--template", "busybox", "--ipadd", "198.18.0.134")
	if !strings.Contains(r.err, "198.18.0.134") {
		t.Errorf("error does not name the address: %q", r.err)
	}
	if s := netStatusOf(t, "134"); s.State != "deleted" {
		t.Errorf("refused create left VPS 134: %+v", s)
	}
	expectCode(t, 78, "start", "139")
	if s := netStatusOf(t, "139"); s.State != "stopped" {
		t.Errorf("VPS 139 after refused start: %+v", s)
	}
	if left := hostObjects(t, []string{"139"}, nil); len(left) > 0 {
		t.Errorf("refused start left: %q", left)
	}
	// The lo address keeps its host route (local table): only the VPS's routes count here.
	links, _ := netlink.LinkList()
	for _, l := range links {
		if l.Attrs().Name == "vps139" {
			t.Errorf("refused start left link %s", l.Attrs().Name)
		}
	}

	// An interface the host cannot give at start (its bridge is not there, or not a bridge) is
	// a bad interface (71) naming it, and the start leaves nothing.
	for _, bridge := range []string{"nosuchbr0", "lo"} {
		vpsctl(t, "destroy", "134")
		must(t, "create", "134", "--template", "busybox", "--netif-add", "eth0,bridge="+bridge)
		if r := expectCode(t, 71, "start", "134"); !strings.Contains(r.err, bridge) {
			t.Errorf("start with bridge=%s: error does not name it: %q", bridge, r.err)
		}
		if s := netStatusOf(t, "134"); s.State != "stopped" {
			t.Errorf("VPS 134 after refused start: %+v", s)
		}
		if left := hostObjects(t, []string{"134"}, nil); len(left) > 0 {
			t.Errorf("refused start left: %q", left)
		}
	}
}

func TestNetworkCrash(t *testing.T) {
	checkClean(t, "135")
	netGuard(t)
	addrs := []string{"198.18.0.135", "fd42:1::135"}
	must(t, "create", "135", "--template", "busybox", "--ipadd", addrs[0], "--ipadd", addrs[1])
	must(t, "start", "135")
	for _, a := range addrs {
		if err := hostPing(t, a); err != nil {
			t.Error(err)
		}
	}
	if len(hostObjects(t, []string{"135"}, addrs)) == 0 {
		t.Fatal("running VPS 135 has no host link or routes")
	}
	pid := netStatusOf(t, "135").InitPID
	if pid <= 1 {
		t.Fatalf("init pid %d", pid)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %d: %v", pid, err)
	}
	waitFor(t, 20*time.Second, "host network objects of crashed VPS 135 to go", func() bool {
		return len(hostObjects(t, []string{"135"}, addrs)) == 0
	})
	waitFor(t, 20*time.Second, "VPS 135 to be stopped", func() bool { return netStatusOf(t, "135").State == "stopped" })

	// Nothing of the crashed boot stands in the way of the next.
	must(t, "start", "135")
	for _, a := range addrs {
		if err := hostPing(t, a); err != nil {
			t.Errorf("after restart: %v", err)
		}
	}
	must(t, "destroy", "--force", "135")
	if left := hostObjects(t, []string{"135"}, addrs); len(left) > 0 {
		t.Errorf("after destroy the host still has: %q", left)
	}
	if s := netStatusOf(t, "135"); s.State != "deleted" {
		t.Errorf("after destroy: %+v", s)
	}
	noUplinkNeighbours(t)
}

func TestNetworkBridged(t *testing.T) {
	checkClean(t, "137", "138")
	netGuard(t)
	// After checkClean: cleanups run in reverse, so the bridge is gone before the host is compared.
	brName := "vtnbr" + strconv.Itoa(os.Getpid())
	attrs := netlink.NewLinkAttrs()
	attrs.Name = brName
	br := &netlink.Bridge{LinkAttrs: attrs}
	if err := netlink.LinkAdd(br); err != nil {
		t.Fatalf("create bridge %s: %v", brName, err)
	}
	t.Cleanup(func() {
		if err := netlink.LinkDel(br); err != nil {
			t.Errorf("delete bridge %s: %v", brName, err)
		}
	})
	// The host's side of the "LAN": 198.18.0.136/30 (the VPS is .138).
	if err := netlink.AddrAdd(br, &netlink.Addr{IPNet: prefixNet(netip.MustParsePrefix("198.18.0.137/30"))}); err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetUp(br); err != nil {
		t.Fatal(err)
	}
	brLink, err := netlink.LinkByName(brName)
	if err != nil {
		t.Fatal(err)
	}

	must(t, "create", "138", "--template", "busybox", "--netif-add", "eth0,bridge="+brName+",ip=198.18.0.138/30,gw=198.18.0.137")
	must(t, "start", "138")

	if s := netStatusOf(t, "138"); len(s.NetIfs) != 1 || !strings.HasPrefix(s.NetIfs[0], "eth0,") || !strings.Contains(s.NetIfs[0], "bridge="+brName) {
		t.Errorf("status 138 netifs = %q", s.NetIfs)
	}
	out := must(t, "exec", "138", "--", "ip", "-o", "addr", "show", "dev", "eth0")
	if !strings.Contains(out, "198.18.0.138/30") {
		t.Errorf("eth0 inside 138:\n%s", out)
	}
	if out := must(t, "exec", "138", "--", "ip", "-o", "link", "show", "dev", "eth0"); !strings.Contains(out, "UP") {
		t.Errorf("eth0 inside 138 is not up:\n%s", out)
	}
	var hostEnd netlink.Link
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		if l.Attrs().Alias == "vpsctl:138:eth0" {
			hostEnd = l
		}
	}
	if hostEnd == nil {
		t.Fatal("no host end with alias vpsctl:138:eth0")
	}
	if hostEnd.Attrs().MasterIndex != brLink.Attrs().Index {
		t.Errorf("host end %s has master index %d, want the bridge %s (%d)", hostEnd.Attrs().Name,
			hostEnd.Attrs().MasterIndex, brName, brLink.Attrs().Index)
	}
	if hostEnd.Attrs().OperState != netlink.OperUp && hostEnd.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("host end %s is down", hostEnd.Attrs().Name)
	}
	if err := hostPing(t, "198.18.0.138", brName); err != nil {
		t.Errorf("host to bridged VPS: %v", err)
	}

	t.Run("address of a bridged interface is in use", func(t *testing.T) {
		r := vpsctl(t, "create", "137", "--template", "busybox", "--ipadd", "198.18.0.138")
		if r.code != 78 {
			t.Errorf("create 137 --ipadd 198.18.0.138 (held by eth0 of VPS 138): exit %d, want 78\n%s%s", r.code, r.out, r.err)
			vpsctl(t, "destroy", "--force", "137")
		}
	})

	must(t, "stop", "138", "--timeout", "20s")
	if left := hostObjects(t, []string{"138"}, nil); len(left) > 0 {
		t.Errorf("after stop the host still has: %q", left)
	}
	links, err = netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		if l.Attrs().MasterIndex == brLink.Attrs().Index {
			t.Errorf("after stop %s is still a port of %s", l.Attrs().Name, brName)
		}
	}
	if _, err := netlink.LinkByName(brName); err != nil {
		t.Errorf("the test's bridge went with the VPS: %v", err)
	}
	must(t, "destroy", "138")
	noUplinkNeighbours(t, brName)
}
