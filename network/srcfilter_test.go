package network

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vpsctl/vpsctl/container"
	"golang.org/x/sys/unix"
)

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func TestSourceFilterScript(t *testing.T) {
	s, err := sourceFilterScript(303, addrs("fd42:1::33", "198.18.0.33", "::ffff:198.18.0.34", "198.18.0.33"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"add table inet vpsctl\n",
		"add chain inet vpsctl prerouting { type filter hook prerouting priority raw ; policy accept ; }\n",
		"flush chain inet vpsctl prerouting\n",
		"add rule inet vpsctl prerouting iifname vmap @srcguard\n",
		"flush chain inet vpsctl vps303\n",
		// Sorted, the IPv4-mapped one unmapped, the repeated one once.
		"add rule inet vpsctl vps303 ip saddr { 198.18.0.33, 198.18.0.34 } accept\n",
		"add rule inet vpsctl vps303 ip6 saddr { fd42:1::33 } accept\n",
		"add rule inet vpsctl vps303 ip6 saddr fe80::/10 accept\n",
		"add rule inet vpsctl vps303 counter drop\n",
		`add element inet vpsctl srcguard { "vps303" : jump vps303 }` + "\n",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("script lacks %q:\n%s", want, s)
		}
	}
	// The drop comes after every accept.
	if strings.Index(s, "counter drop") < strings.LastIndex(s, "accept\n") {
		t.Errorf("drop before an accept:\n%s", s)
	}
	// No addresses: no saddr sets (nft refuses an empty one), still the drop.
	s, err = sourceFilterScript(7, nil)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(s, "saddr {  }") || strings.Contains(s, "ip saddr {") || !strings.Contains(s, "vps7 counter drop") {
		t.Errorf("script for no addresses:\n%s", s)
	}
	for _, bad := range [][]netip.Addr{
		{{}},
		addrs("fe80::1%eth0"),
		addrs("0.0.0.0"),
		addrs("::"),
		addrs("224.0.0.1"),
		addrs("ff02::1"),
	} {
		if _, err := sourceFilterScript(1, bad); !errors.Is(err, ErrBadIP) {
			t.Errorf("%v: got %v, want ErrBadIP", bad, err)
		}
	}
	r := removeFilterScript(303)
	if !strings.HasSuffix(r, `delete element inet vpsctl srcguard { "vps303" }`+"\ndelete chain inet vpsctl vps303\n") {
		t.Errorf("remove script:\n%s", r)
	}
}

// sampleNftJSON is `nft -j list table inet vpsctl` of nft 1.0.6 with two VPSs.
const sampleNftJSON = `{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}},
{"table": {"family": "inet", "name": "vpsctl", "handle": 1}},
{"map": {"family": "inet", "name": "srcguard", "table": "vpsctl", "type": "ifname", "handle": 1, "map": "verdict", "elem": [["vps9", {"jump": {"target": "vps9"}}]]}},
{"chain": {"family": "inet", "table": "vpsctl", "name": "prerouting", "handle": 2, "type": "filter", "hook": "prerouting", "prio": -300, "policy": "accept"}},
{"chain": {"family": "inet", "table": "vpsctl", "name": "vps9", "handle": 3}},
{"chain": {"family": "inet", "table": "vpsctl", "name": "vps10", "handle": 9}},
{"rule": {"family": "inet", "table": "vpsctl", "chain": "prerouting", "handle": 4, "expr": [{"vmap": {"key": {"meta": {"key": "iifname"}}, "data": "@srcguard"}}]}},
{"rule": {"family": "inet", "table": "vpsctl", "chain": "vps9", "handle": 5, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": {"set": ["198.18.0.9", "198.18.0.10"]}}}, {"accept": null}]}},
{"rule": {"family": "inet", "table": "vpsctl", "chain": "vps9", "handle": 6, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip6", "field": "saddr"}}, "right": "fd42:1::9"}}, {"accept": null}]}},
{"rule": {"family": "inet", "table": "vpsctl", "chain": "vps9", "handle": 7, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip6", "field": "saddr"}}, "right": {"prefix": {"addr": "fe80::", "len": 10}}}}, {"accept": null}]}},
{"rule": {"family": "inet", "table": "vpsctl", "chain": "vps9", "handle": 8, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip6", "field": "saddr"}}, "right": "::"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "icmpv6", "field": "type"}}, "right": {"set": ["nd-neighbor-solicit"]}}}, {"accept": null}]}},
{"rule": {"family": "inet", "table": "vpsctl", "chain": "vps10", "handle": 10, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "198.18.0.11"}}, {"accept": null}]}},
{"rule": {"family": "inet", "table": "vpsctl", "chain": "vps9", "handle": 11, "expr": [{"counter": {"packets": 0, "bytes": 0}}, {"drop": null}]}}]}`

func TestParseNft(t *testing.T) {
	chains, err := parseNftChains([]byte(sampleNftJSON))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"prerouting", "vps9", "vps10"}; !slices.Equal(chains, want) {
		t.Errorf("chains %v, want %v", chains, want)
	}
	got, found, err := parseNftSources([]byte(sampleNftJSON), "vps9")
	if err != nil || !found {
		t.Fatalf("vps9: %v %v", found, err)
	}
	if want := addrs("198.18.0.9", "198.18.0.10", "fd42:1::9"); !slices.Equal(got, want) {
		t.Errorf("vps9 sources %v, want %v", got, want)
	}
	if got, found, err := parseNftSources([]byte(sampleNftJSON), "vps11"); err != nil || found || got != nil {
		t.Errorf("vps11: %v %v %v", got, found, err)
	}
	for _, bad := range []string{"", "{", `{"nftables": 3}`, `[1]`} {
		if _, err := parseNftChains([]byte(bad)); err == nil {
			t.Errorf("parseNftChains(%q) accepted", bad)
		}
		if _, _, err := parseNftSources([]byte(bad), "vps9"); err == nil {
			t.Errorf("parseNftSources(%q) accepted", bad)
		}
	}
}

func FuzzParseNft(f *testing.F) {
	f.Add([]byte(sampleNftJSON), "vps9")
	f.Add([]byte(`{"nftables": [{"rule": {"chain": "x", "expr": [{"match": {"left": {"payload": {"field": "saddr"}}, "right": {"set": [1, "1.2.3.4", {}]}}}]}}]}`), "x")
	f.Add([]byte(`{"nftables": [{"chain": null}, {"rule": null}]}`), "")
	f.Fuzz(func(t *testing.T, data []byte, chain string) {
		chains, err := parseNftChains(data)
		if err == nil && chains == nil && strings.Contains(string(data), `"chain": {"name"`) {
			t.Errorf("no chain found in %q", data)
		}
		got, _, err := parseNftSources(data, chain)
		if err != nil {
			return
		}
		for _, a := range got {
			if !a.IsValid() || a.IsUnspecified() {
				t.Errorf("returned %v", a)
			}
		}
		if !slices.IsSortedFunc(got, func(a, b netip.Addr) int { return a.Compare(b) }) {
			t.Errorf("not sorted: %v", got)
		}
	})
}

func TestNoNftables(t *testing.T) {
	old := nftPath
	nftPath = func() (string, error) { return "", ErrNoNftables }
	t.Cleanup(func() { nftPath = old })
	if err := CheckNftables(); !errors.Is(err, ErrNoNftables) {
		t.Errorf("CheckNftables: %v", err)
	}
	if err := SetSourceFilter(1, addrs("198.18.0.1")); !errors.Is(err, ErrNoNftables) {
		t.Errorf("SetSourceFilter: %v, want ErrNoNftables", err)
	}
	if !strings.Contains(ErrNoNftables.Error(), "nftables package") {
		t.Errorf("the error does not name the package: %v", ErrNoNftables)
	}
}

// requireNft fails (does not skip) a root test when nft is missing: the scripts install it.
func requireNft(t *testing.T) {
	t.Helper()
	requireRoot(t)
	if err := CheckNftables(); err != nil {
		t.Fatal(err)
	}
}

// nftState is what a test could leave behind in nftables: vpsctl's table's chains, or none.
func nftState(t *testing.T) string {
	t.Helper()
	out, err := nftOutput("-j", "list", "table", "inet", "vpsctl")
	if errors.Is(err, errNoTable) {
		return "no table"
	}
	if err != nil {
		t.Fatal(err)
	}
	chains, err := parseNftChains(out)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(chains)
	return strings.Join(chains, " ")
}

func TestSourceFilterLifecycle(t *testing.T) {
	requireNft(t)
	id := testID(7)
	before := nftState(t)
	t.Cleanup(func() {
		if err := RemoveSourceFilter(id); err != nil {
			t.Error(err)
		}
		if after := nftState(t); after != before {
			t.Errorf("nftables before %q, after %q", before, after)
		}
	})
	want := addrs("198.18.0.61", "fd42:1::61")
	for range 2 { // idempotent
		if err := SetSourceFilter(id, want); err != nil {
			t.Fatal(err)
		}
	}
	got, found, err := SourceFilter(id)
	if err != nil || !found || !slices.Equal(got, want) {
		t.Fatalf("SourceFilter = %v %v %v, want %v", got, found, err, want)
	}
	// Replacing, not adding.
	if err := SetSourceFilter(id, addrs("198.18.0.62")); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := SourceFilter(id); !slices.Equal(got, addrs("198.18.0.62")) {
		t.Errorf("after replacing: %v", got)
	}
	for range 2 {
		if err := RemoveSourceFilter(id); err != nil {
			t.Fatal(err)
		}
	}
	if _, found, err := SourceFilter(id); err != nil || found {
		t.Errorf("after remove: found %v, %v", found, err)
	}
}

// icmpInEchos reads the echo requests the network namespace of pid has received, IPv4 and
// IPv6 (/proc/PID/net/snmp and snmp6 are per namespace).
func icmpInEchos(t *testing.T, pid int) (v4, v6 int) {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/net/snmp")
	if err != nil {
		t.Fatal(err)
	}
	var head []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || f[0] != "Icmp:" {
			continue
		}
		if head == nil {
			head = f
			continue
		}
		if i := slices.Index(head, "InEchos"); i > 0 && i < len(f) {
			v4, _ = strconv.Atoi(f[i])
		}
	}
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/net/snmp6")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if kv := strings.Fields(sc.Text()); len(kv) == 2 && kv[0] == "Icmp6InEchos" {
			v6, _ = strconv.Atoi(kv[1])
		}
	}
	return v4, v6
}

// pingFrom sends one echo request from src to dst, both test addresses, inside the network
// namespace of pid. Its answer goes to whoever holds src, so only the count at dst tells.
func pingFrom(t *testing.T, pid int, src, dst netip.Addr) {
	t.Helper()
	if !inTestNets(src) || !inTestNets(dst) {
		t.Fatalf("refusing to ping %s from %s: not test addresses", dst, src)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	args := []string{"-c1", "-W1", "-I", src.String(), dst.String()}
	if dst.Is6() {
		args = append([]string{"-6"}, args...)
	}
	cmd := exec.CommandContext(ctx, "ping", args...)
	done := make(chan error, 1)
	go func() {
		// Never unlocked: the thread dies with the goroutine instead of going back to
		// the scheduler in the VPS's namespace. The child is forked from it.
		runtime.LockOSThread()
		fd, err := unix.Open("/proc/"+strconv.Itoa(pid)+"/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err == nil {
			err = unix.Setns(fd, unix.CLONE_NEWNET)
			unix.Close(fd)
		}
		if err == nil {
			_ = cmd.Run() // a lost reply is expected: it goes to the holder of src
		}
		done <- err
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestForgedSource: with net.ipv4.conf.all.rp_filter=2 (loose), then with the kernel's IPv4
// check off, VPS A adds VPS B's addresses and pings VPS C from them. C must receive nothing,
// over IPv4 and IPv6; A's own addresses still reach C. Without A's chain the same forged pings
// do reach C: the table, not the host's sysctls, is what stops them.
func TestForgedSource(t *testing.T) {
	requireNft(t)
	guardTestNets(t)
	nftBefore := nftState(t)
	ids := []container.ID{testID(7), testID(8), testID(9)}
	procs := []*os.Process{fakeVPS(t), fakeVPS(t), fakeVPS(t)}
	before := snapshot(t, ids...)
	var cfgs []Config
	for i, n := range []string{"61", "62", "63"} {
		cfg := Config{IPs: []netip.Prefix{mustIP(t, "198.18.0."+n), mustIP(t, "fd42:1::"+n)}}
		cfgs = append(cfgs, cfg)
		if _, err := Setup(ids[i], procs[i].Pid, cfg); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { Teardown(ids[i], cfg) })
	}
	setSysctl(t, "net/ipv4/conf/all/rp_filter", "2")
	fwd := "net/ipv6/conf/" + HostIfName(ids[0]) + "/force_forwarding"
	if _, err := hostSysctl(fwd); err != nil {
		t.Fatalf("this test needs per-interface IPv6 forwarding (Linux 6.17): %v", err)
	}
	for _, id := range ids {
		setSysctl(t, "net/ipv6/conf/"+HostIfName(id)+"/force_forwarding", "1")
	}
	a, b, c := procs[0].Pid, cfgs[1], cfgs[2]
	for i := range 2 {
		if got, found, err := SourceFilter(ids[i]); err != nil || !found || len(got) != 2 {
			t.Fatalf("VPS %d's filter: %v %v %v", ids[i], got, found, err)
		}
	}

	// reaches pings from src (held by A) to dst and reports whether C received it.
	reaches := func(src, dst netip.Addr) bool {
		v4, v6 := icmpInEchos(t, procs[2].Pid)
		pingFrom(t, a, src, dst)
		n4, n6 := icmpInEchos(t, procs[2].Pid)
		return n4 > v4 || n6 > v6
	}
	for _, p := range cfgs[0].IPs {
		if !reaches(p.Addr(), c.IPs[slices.IndexFunc(c.IPs, func(q netip.Prefix) bool { return q.Addr().Is4() == p.Addr().Is4() })].Addr()) {
			t.Errorf("A's own address %s does not reach C", p.Addr())
		}
	}
	// The tenant of A takes B's addresses.
	v, venet := insideLink(t, a, venetName)
	for _, p := range b.IPs {
		addr := &netlink.Addr{IPNet: ipNet(hostPrefix(p.Addr())), Flags: unix.IFA_F_NODAD}
		if err := v.h.AddrAdd(venet, addr); err != nil {
			t.Fatal(err)
		}
	}
	forged := func() (reached []string) {
		for i, p := range b.IPs {
			if reaches(p.Addr(), c.IPs[i].Addr()) {
				reached = append(reached, fmt.Sprintf("%s -> %s", p.Addr(), c.IPs[i].Addr()))
			}
		}
		return reached
	}
	if r := forged(); r != nil {
		t.Errorf("rp_filter=2: forged sources reached C: %v", r)
	}
	// The kernel's IPv4 check off altogether (the effective rp_filter is the larger of
	// "all" and the interface's): the filter alone must hold. (With rp_filter=2 the kernel
	// happens to drop the IPv4 forgery too, since the host end has no IPv4 address and
	// loose mode then falls back to a reject.)
	setSysctl(t, "net/ipv4/conf/all/rp_filter", "0")
	setSysctl(t, "net/ipv4/conf/"+HostIfName(ids[0])+"/rp_filter", "0")
	if r := forged(); r != nil {
		t.Errorf("rp_filter=0: forged sources reached C: %v", r)
	}
	// The control: the same without A's chain.
	if err := RemoveSourceFilter(ids[0]); err != nil {
		t.Fatal(err)
	}
	if r := forged(); len(r) != 2 {
		t.Errorf("without the filter only %v reached C: the test no longer shows what the filter blocks", r)
	}
	if err := SetSourceFilter(ids[0], []netip.Addr{cfgs[0].IPs[0].Addr(), cfgs[0].IPs[1].Addr()}); err != nil {
		t.Fatal(err)
	}
	if r := forged(); r != nil {
		t.Errorf("forged sources reached C after the filter came back: %v", r)
	}

	for i, id := range ids {
		if err := Teardown(id, cfgs[i]); err != nil {
			t.Error(err)
		}
	}
	checkSnapshot(t, "Teardown", before, ids...)
	if after := nftState(t); after != nftBefore {
		t.Errorf("nftables before %q, after Teardown %q", nftBefore, after)
	}
	noUplinkNeighbours(t)
}

// TestLiveIPsFilter: AddIPs widens the filter before the address works, DelIPs narrows it.
func TestLiveIPsFilter(t *testing.T) {
	requireNft(t)
	guardTestNets(t)
	id := testID(7)
	p := fakeVPS(t)
	cfg := Config{IPs: []netip.Prefix{mustIP(t, "198.18.0.61")}}
	if _, err := Setup(id, p.Pid, cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Teardown(id, cfg) })
	if err := AddIPs(id, p.Pid, []netip.Prefix{mustIP(t, "fd42:1::61"), mustIP(t, "198.18.0.62")}); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := SourceFilter(id); !slices.Equal(got, addrs("198.18.0.61", "198.18.0.62", "fd42:1::61")) {
		t.Errorf("after AddIPs: %v", got)
	}
	if err := DelIPs(id, p.Pid, []netip.Prefix{mustIP(t, "198.18.0.61")}); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := SourceFilter(id); !slices.Equal(got, addrs("198.18.0.62", "fd42:1::61")) {
		t.Errorf("after DelIPs: %v", got)
	}
	if err := Teardown(id, Config{IPs: []netip.Prefix{mustIP(t, "198.18.0.62")}}); err != nil {
		t.Fatal(err)
	}
	if _, found, _ := SourceFilter(id); found {
		t.Error("Teardown left the chain")
	}
}

// SourceFilter returns the sources VPS id's chain accepts besides link-local
// and unspecified ones, and whether it has a chain; for the tests.
func SourceFilter(id container.ID) (addrs []netip.Addr, found bool, err error) {
	out, err := nftOutput("-j", "list", "table", "inet", "vpsctl")
	if err != nil {
		if errors.Is(err, errNoTable) {
			return nil, false, nil
		}
		return nil, false, err
	}
	return parseNftSources(out, chainName(id))
}

// parseNftSources returns the addresses of the "ip saddr { ... } accept" and
// "ip6 saddr { ... } accept" rules of chain in `nft -j list table` output,
// and whether the chain exists. Prefixes (fe80::/10) and anything else are
// not addresses and are left out.
func parseNftSources(data []byte, chain string) ([]netip.Addr, bool, error) {
	var j nftJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return nil, false, err
	}
	found := false
	var out []netip.Addr
	for _, o := range j.Nftables {
		if o.Chain != nil && o.Chain.Name == chain {
			found = true
		}
		if o.Rule == nil || o.Rule.Chain != chain {
			continue
		}
		for _, e := range o.Rule.Expr {
			var m struct {
				Match *struct {
					Left struct {
						Payload *struct {
							Field string `json:"field"`
						} `json:"payload"`
					} `json:"left"`
					Right json.RawMessage `json:"right"`
				} `json:"match"`
			}
			if json.Unmarshal(e, &m) != nil || m.Match == nil || m.Match.Left.Payload == nil || m.Match.Left.Payload.Field != "saddr" {
				continue
			}
			// The right side is {"set": [addr, ...]} for several, a plain string for one.
			var set struct {
				Set []json.RawMessage `json:"set"`
			}
			items := []json.RawMessage{m.Match.Right}
			if json.Unmarshal(m.Match.Right, &set) == nil && set.Set != nil {
				items = set.Set
			}
			for _, it := range items {
				var s string
				if json.Unmarshal(it, &s) != nil {
					continue
				}
				if a, err := netip.ParseAddr(s); err == nil && !a.IsUnspecified() {
					out = append(out, a)
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b netip.Addr) int { return a.Compare(b) })
	return out, found, nil
}
