package network

import (
	"errors"
	"math"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/vpsctl/vpsctl/container"
)

var parseIPCases = []struct {
	in   string
	want string // "" for ErrBadIP
}{
	{"198.18.0.1", "198.18.0.1/32"},
	{"198.18.0.1/24", "198.18.0.1/24"},
	{"198.18.0.1/32", "198.18.0.1/32"},
	{"fd42:1::2", "fd42:1::2/128"},
	{"fd42:1::2/64", "fd42:1::2/64"},
	{"FD42:1::2", "fd42:1::2/128"},
	{"192.0.2.50/24", "192.0.2.50/24"},
	{"", ""},
	{"198.18.0", ""},
	{"198.18.0.256", ""},
	{"198.18.0.1/33", ""},
	{"198.18.0.1/0", ""},
	{"198.18.0.1/", ""},
	{"198.18.0.1/-1", ""},
	{" 198.18.0.1", ""},
	{"198.18.0.01", ""},
	{"0.0.0.0", ""},
	{"0.1.2.3", ""},
	{"::", ""},
	{"127.0.0.1", ""},
	{"127.1.2.3/8", ""},
	{"::1", ""},
	{"224.0.0.1", ""},
	{"ff02::1", ""},
	{"255.255.255.255", ""},
	{"169.254.0.1", ""},
	{"fe80::1", ""},
	{"fe80::1%eth0", ""},
	{"fd42:1::2%eth0", ""},
	{"fd42:1::2%eth0/64", ""},
	{"::ffff:198.18.0.1", ""},
	{"::ffff:198.18.0.1/128", ""},
	{"fd42:1::2/129", ""},
	{"example.com", ""},
}

func TestParseIP(t *testing.T) {
	for _, c := range parseIPCases {
		p, err := ParseIP(c.in)
		if c.want == "" {
			if !errors.Is(err, ErrBadIP) {
				t.Errorf("ParseIP(%q) = %v, %v; want ErrBadIP", c.in, p, err)
			} else if !strings.Contains(err.Error(), c.in) {
				t.Errorf("ParseIP(%q) error %q does not name the input", c.in, err)
			}
			continue
		}
		if err != nil || p.String() != c.want {
			t.Errorf("ParseIP(%q) = %v, %v; want %s", c.in, p, err, c.want)
		}
	}
}

func FuzzParseIP(f *testing.F) {
	for _, c := range parseIPCases {
		f.Add(c.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseIP(s)
		if err != nil {
			if !errors.Is(err, ErrBadIP) {
				t.Fatalf("ParseIP(%q): error %v is not ErrBadIP", s, err)
			}
			return
		}
		a := p.Addr()
		if !p.IsValid() || p.Bits() == 0 || a.Zone() != "" || a.Is4In6() || a.IsUnspecified() ||
			a.IsLoopback() || a.IsMulticast() || a.IsLinkLocalUnicast() {
			t.Fatalf("ParseIP(%q) accepted %v", s, p)
		}
		q, err := ParseIP(p.String())
		if err != nil || q != p {
			t.Fatalf("ParseIP(%q) = %v, but its String %q parses as %v, %v", s, p, p.String(), q, err)
		}
	})
}

var parseNetIfCases = []struct {
	in  string
	ok  bool
	out string // String() of the result when different from in
}{
	{"eth0", true, ""},
	{"eth0,mac=02:00:00:00:00:01", true, ""},
	{"eth0,mac=02-00-00-00-00-0A", true, "eth0,mac=02:00:00:00:00:0a"},
	{"eth0,host-ifname=veth101.0,bridge=br0", true, ""},
	{"eth1,bridge=vmbr0,ip=198.18.0.130/25,gw=198.18.0.129", true, ""},
	{"eth1,gw=198.18.0.129,ip=198.18.0.130/25", true, "eth1,ip=198.18.0.130/25,gw=198.18.0.129"},
	{"eth1,ip=198.18.0.130/25,ip=fd42:1::30/64,gw=198.18.0.129,gw6=fe80::1", true, ""},
	{"eth1,ip=fd42:1::30/64,gw=fd42:1::1", true, ""},
	{"eth1,ip=fd42:1::30,gw=fe80::1", true, "eth1,ip=fd42:1::30/128,gw=fe80::1"},
	{"eth1,ip=198.18.0.130", true, "eth1,ip=198.18.0.130/32"},
	{"", false, ""},
	{",mac=02:00:00:00:00:01", false, ""},
	{"lo", false, ""},
	{"venet0", false, ""},
	{"eth0,", false, ""},
	{"eth0,mac", false, ""},
	{"eth0,mac=", false, ""},
	{"eth0,color=red", false, ""},
	{"eth0,mac=01:00:00:00:00:01", false, ""},
	{"eth0,mac=00:00:00:00:00:00", false, ""},
	{"eth0,mac=00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01", false, ""},
	{"eth0,mac=02:00:00:00:00:01,mac=02:00:00:00:00:02", false, ""},
	{"eth0,host-ifname=a-name-far-too-long", false, ""},
	{"eth0,host-ifname=a/b", false, ""},
	{"eth0,bridge=..", false, ""},
	{"eth 0", false, ""},
	{"eth0:1", false, ""},
	{"eth0,ip=198.18.0.130/25,ip=198.18.0.130/24", false, ""},
	{"eth0,ip=127.0.0.1", false, ""},
	{"eth0,ip=fe80::1%x", false, ""},
	{"eth0,ip=198.18.0.130/25,gw=198.18.1.1", false, ""},
	{"eth0,gw=198.18.0.1", false, ""},
	{"eth0,ip=198.18.0.130/25,gw=198.18.0.130", false, ""},
	{"eth0,ip=198.18.0.130/25,gw=224.0.0.1", false, ""},
	{"eth0,ip=fd42:1::30/64,gw=fe80::1%eth0", false, ""},
	{"eth0,ip=fd42:1::30/64,gw6=fe80::1,gw=fe80::2", false, ""},
	{"eth0,ip=198.18.0.130/25,gw6=198.18.0.129", false, ""},
	{"eth0,ip=198.18.0.130/25,gw=198.18.0.129,gw=198.18.0.129", false, ""},
}

func TestParseNetIf(t *testing.T) {
	for _, c := range parseNetIfCases {
		n, err := ParseNetIf(c.in)
		if !c.ok {
			if !errors.Is(err, ErrBadNetIf) {
				t.Errorf("ParseNetIf(%q) = %+v, %v; want an error", c.in, n, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseNetIf(%q): %v", c.in, err)
			continue
		}
		want := c.out
		if want == "" {
			want = c.in
		}
		if got := n.String(); got != want {
			t.Errorf("ParseNetIf(%q).String() = %q; want %q", c.in, got, want)
		}
	}
	if _, err := ParseNetIf("eth0,ip=127.0.0.1"); !errors.Is(err, ErrBadIP) {
		t.Errorf("bad ip=: %v, want ErrBadIP as well", err)
	}
	n, err := ParseNetIf("eth1,bridge=vmbr0,ip=198.18.0.130/25,gw=198.18.0.129")
	if err != nil {
		t.Fatal(err)
	}
	want := NetIf{Name: "eth1", Bridge: "vmbr0", Addrs: []netip.Prefix{netip.MustParsePrefix("198.18.0.130/25")},
		GW: netip.MustParseAddr("198.18.0.129")}
	if !reflect.DeepEqual(n, want) {
		t.Errorf("got %+v, want %+v", n, want)
	}
}

func FuzzParseNetIf(f *testing.F) {
	for _, c := range parseNetIfCases {
		f.Add(c.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseNetIf(s)
		if err != nil {
			if !errors.Is(err, ErrBadNetIf) {
				t.Fatalf("ParseNetIf(%q): error %v is not ErrBadNetIf", s, err)
			}
			return
		}
		if err := n.Validate(); err != nil {
			t.Fatalf("ParseNetIf(%q) = %+v, which is invalid: %v", s, n, err)
		}
		m, err := ParseNetIf(n.String())
		if err != nil || !reflect.DeepEqual(m, n) {
			t.Fatalf("ParseNetIf(%q) = %+v; its String %q parses as %+v, %v", s, n, n.String(), m, err)
		}
	})
}

func TestNames(t *testing.T) {
	for _, id := range []container.ID{0, 101, 99999, math.MaxUint32} {
		if h := HostIfName(id); len(h) > maxIfName || !validIfName(h) {
			t.Errorf("HostIfName(%d) = %q", id, h)
		}
		seen := map[string]string{HostIfName(id): venetName}
		for _, name := range []string{"eth0", "eth1", "eth10", "eth01", "1", "10", "wan", "eth", "ethx", "a-long-name-15c"} {
			h := vethHostName(id, name)
			if len(h) > maxIfName || !validIfName(h) {
				t.Errorf("vethHostName(%d, %q) = %q: not a valid name", id, name, h)
			}
			if other, dup := seen[h]; dup {
				t.Errorf("vethHostName(%d, %q) = %q, as for %q", id, name, h, other)
			}
			seen[h] = name
			if h != vethHostName(id, name) {
				t.Errorf("vethHostName(%d, %q) is not stable", id, name)
			}
			mac := vpsMAC(id, name)
			if mac[0]&0x03 != 0x02 || mac.String() != vpsMAC(id, name).String() {
				t.Errorf("vpsMAC(%d, %q) = %s: not stable, unicast and locally administered", id, name, mac)
			}
			if hm := hostMAC(id, name); hm[0] != 0xfe {
				t.Errorf("hostMAC(%d, %q) = %s", id, name, hm)
			}
		}
	}
	if got := vethHostName(101, "eth0"); got != "veth101.0" {
		t.Errorf("vethHostName(101, eth0) = %q; want veth101.0 (vzctl's name)", got)
	}
	if vpsMAC(101, "eth0").String() == vpsMAC(102, "eth0").String() {
		t.Error("vpsMAC does not depend on the VPS ID")
	}
}

func TestConfigValidate(t *testing.T) {
	p := netip.MustParsePrefix
	for _, c := range []struct {
		cfg Config
		err error
	}{
		{Config{}, nil},
		{Config{IPs: []netip.Prefix{p("198.18.0.1/24"), p("fd42:1::1/64")}}, nil},
		{Config{IPs: []netip.Prefix{p("198.18.0.1/24"), p("198.18.0.1/32")}}, ErrBadIP},
		{Config{IPs: []netip.Prefix{p("127.0.0.1/8")}}, ErrBadIP},
		{Config{IPs: []netip.Prefix{{}}}, ErrBadIP},
		{Config{NetIfs: []NetIf{{Name: "eth0"}, {Name: "eth0"}}}, ErrBadNetIf},
		{Config{NetIfs: []NetIf{{Name: "venet0"}}}, ErrBadNetIf},
		{Config{IPs: []netip.Prefix{p("198.18.0.1/32")}, NetIfs: []NetIf{{Name: "eth0", Addrs: []netip.Prefix{p("198.18.0.1/24")}}}}, ErrBadIP},
	} {
		if err := c.cfg.Validate(); !errors.Is(err, c.err) || (c.err == nil) != (err == nil) {
			t.Errorf("%+v.Validate() = %v; want %v", c.cfg, err, c.err)
		}
	}
	if err := checkHostNames(7, []NetIf{{Name: "eth0", HostName: "vps7"}}); !errors.Is(err, ErrBadNetIf) {
		t.Errorf("host-ifname equal to the venet host end: %v", err)
	}
}

func TestProxyTargets(t *testing.T) {
	subnets := []subnet{
		{prefix: netip.MustParsePrefix("192.0.2.2/24"), link: 4, name: "eth0"},
		{prefix: netip.MustParsePrefix("192.0.2.3/25"), link: 4, name: "eth0"},
		{prefix: netip.MustParsePrefix("fd00::2/64"), link: 4, name: "eth0"},
		{prefix: netip.MustParsePrefix("10.1.0.1/16"), link: 9, name: "br0"},
	}
	for _, c := range []struct {
		a     string
		links []int
	}{
		{"192.0.2.50", []int{4}}, // once, though in two of eth0's subnets
		{"fd00::50", []int{4}},
		{"10.1.2.3", []int{9}},
		{"198.18.0.21", nil}, // in no host subnet: nothing on the uplink
		{"fd42:1::21", nil},
		{"192.0.3.1", nil},
	} {
		var got []int
		for _, s := range proxyTargets(netip.MustParseAddr(c.a), subnets) {
			got = append(got, s.link)
		}
		if !reflect.DeepEqual(got, c.links) {
			t.Errorf("proxyTargets(%s) = %v; want %v", c.a, got, c.links)
		}
	}
}

// TestConfigEmpty: only a config with neither addresses nor interfaces has nothing on the host.
func TestConfigEmpty(t *testing.T) {
	if !(Config{}).Empty() {
		t.Error("a config with nothing is not Empty")
	}
	if (Config{IPs: []netip.Prefix{netip.MustParsePrefix("198.18.0.5/32")}}).Empty() {
		t.Error("a config with an address is Empty")
	}
	if (Config{NetIfs: []NetIf{{Name: "eth0"}}}).Empty() {
		t.Error("a config with an interface is Empty")
	}
}
