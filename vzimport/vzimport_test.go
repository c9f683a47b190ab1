package vzimport

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
)

func fakeDev(path string) (Device, error) {
	if path == "/dev/net/tap" {
		return Device{Char: true, Major: 10, Minor: 201}, nil
	}
	return Device{}, errors.New(path + ": no such device")
}

// TestMapSample: the sample config (a real vzctl 4 config's keys) maps as documented, and
// every key is accounted for exactly once.
func TestMapSample(t *testing.T) {
	text, err := os.ReadFile("testdata/101.conf")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Map(keys, fakeDev)
	if err != nil {
		t.Fatal(err)
	}
	c := p.Create
	if c.Hostname != "ct101.example.com" || c.Name != "legacy" || *c.Limits.Memory != "256M" || *c.Limits.Swap != "524288K" ||
		*c.Limits.NumProc != "400" || *c.Limits.CPUUnits != "1000" || *c.Limits.CPULimit != "50" || *c.Limits.CPUs != "2" {
		t.Fatalf("create options: %+v %+v", c, c.Limits)
	}
	if !slices.Equal(c.Net.IPAdd, []string{"198.18.1.101", "198.18.2.101/24"}) || !slices.Equal(c.Net.Nameservers, []string{"198.18.0.53", "198.18.0.54"}) ||
		!slices.Equal(c.Net.SearchDomains, []string{"example.com"}) || !slices.Equal(c.Caps, []string{"SYS_TIME:off"}) || !slices.Equal(c.Devices, []string{"c:10:229:rw"}) {
		t.Fatalf("net, caps, devices: %+v %v %v", c.Net, c.Caps, c.Devices)
	}
	if p.OSTemplate != "centos-6-x86_64" || p.Layout != "simfs" {
		t.Fatalf("template %q layout %q", p.OSTemplate, p.Layout)
	}
	seen := map[string]int{}
	for _, o := range slices.Concat(p.Mapped, p.Noted, p.Unmapped) {
		seen[o.Key]++
	}
	for _, k := range keys {
		if seen[k.Name] != 1 {
			t.Errorf("%s accounted for %d times", k.Name, seen[k.Name])
		}
	}
	if p.Create.OnBoot != "yes" || !slices.ContainsFunc(p.Mapped, func(o Outcome) bool { return o.Key == "ONBOOT" }) {
		t.Errorf("ONBOOT=yes is not --onboot yes: %q", p.Create.OnBoot)
	}
	for _, k := range []string{"DISKINODES", "KMEMSIZE", "IOPRIO", "DESCRIPTION", "NETFILTER"} {
		if !slices.ContainsFunc(p.Unmapped, func(o Outcome) bool { return o.Key == k && o.Why != "" }) {
			t.Errorf("%s is not listed as not mapped, with why", k)
		}
	}
}

func TestParse(t *testing.T) {
	keys, err := Parse([]byte("# c\nA=\"x y\"\nB='q'\nC=plain\nD=\"v\" # trailing\nA=\"second\"\r\n\nE=\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []Key{{"A", "second", 6}, {"B", "q", 3}, {"C", "plain", 4}, {"D", "v", 5}, {"E", "", 8}}
	if !slices.Equal(keys, want) {
		t.Fatalf("Parse: %+v", keys)
	}
	for _, bad := range []string{"A", "1A=x", "A=\"open", "A=x y", "A=\"x\" y", "-=1"} {
		if _, err := Parse([]byte(bad)); !errors.Is(err, ErrBadConfig) {
			t.Errorf("Parse(%q): %v, want ErrBadConfig", bad, err)
		}
	}
}

func TestMapValues(t *testing.T) {
	for _, tc := range []struct {
		conf  string
		check func(p *Plan) bool
	}{
		{`PHYSPAGES="65536"`, func(p *Plan) bool { return *p.Create.Limits.Memory == "262144K" }},
		{`PHYSPAGES="0:unlimited"`, func(p *Plan) bool { return *p.Create.Limits.Memory == "unlimited" }},
		{`SWAPPAGES="0:1G"`, func(p *Plan) bool { return *p.Create.Limits.Swap == "1G" }},
		{`SWAPPAGES="1p"`, func(p *Plan) bool { return *p.Create.Limits.Swap == "1024T" }},
		{`NUMPROC="9223372036854775807:9223372036854775807"`, func(p *Plan) bool { return *p.Create.Limits.NumProc == "unlimited" }},
		{`NETIF="ifname=eth0,mac=00:18:51:AA:BB:CC,host_ifname=veth101.0,host_mac=00:18:51:00:00:01,bridge=vmbr0;ifname=eth1"`, func(p *Plan) bool {
			return slices.Equal(p.Create.Net.NetIfAdd, []string{"eth0,mac=00:18:51:AA:BB:CC,host-ifname=veth101.0,bridge=vmbr0", "eth1"}) &&
				strings.Contains(p.Mapped[0].To, "host_mac")
		}},
		{`DEVNODES="net/tun:rw"`, func(p *Plan) bool { return slices.Equal(p.Create.Features, []string{"tun"}) && p.Create.Devices == nil }},
		{`DEVNODES="net/tap:rw"`, func(p *Plan) bool { return slices.Equal(p.Create.Devices, []string{"c:10:201:rw"}) }},
		{`FEATURES="ppp:on nfs:on sysfs:off"`, func(p *Plan) bool {
			return slices.Equal(p.Create.Features, []string{"ppp"}) && strings.Contains(p.Mapped[0].To, "nfs")
		}},
		{`DEVICES="c:1:all:rwq b:8:0:none"`, func(p *Plan) bool { return slices.Equal(p.Create.Devices, []string{"c:1:*:rw"}) }},
		{`CPULIMIT="2000m"`, func(p *Plan) bool { return p.Create.Limits.CPULimit == nil && len(p.Unmapped) == 1 }},
		{`CPUS="unlimited"`, func(p *Plan) bool { return p.Create.Limits.CPUs == nil && len(p.Unmapped) == 1 }},
		{`IOLIMIT="0"`, func(p *Plan) bool { return p.Create.Limits.IOLimit == nil }},
		{`IOLIMIT="10M"`, func(p *Plan) bool { return *p.Create.Limits.IOLimit == "10M" }},
		{`VEID="205"`, func(p *Plan) bool { return p.CTID == "205" }},
		{`VE_LAYOUT="ploop:expanded"`, func(p *Plan) bool { return p.Layout == "ploop" }},
		{`FROBNICATE="1"`, func(p *Plan) bool { return p.Unmapped[0].Why == "not a key vpsctl knows" }},
	} {
		keys, err := Parse([]byte(tc.conf))
		if err != nil {
			t.Fatal(err)
		}
		p, err := Map(keys, fakeDev)
		if err != nil || !tc.check(p) {
			t.Errorf("%s: %+v %v", tc.conf, p, err)
		}
	}
	for _, bad := range []string{`PHYSPAGES="lots"`, `NUMPROC="x"`, `IP_ADDRESS="1.2.3"`, `IP_ADDRESS="1.2.3.4/255.0.255.0"`,
		`IP_ADDRESS="1.2.3.4/33"`, `NETIF="mac=1"`, `NETIF="ifname=eth0,foo=1"`, `DEVICES="x:1:2:rw"`, `DEVICES="c:1:2:rx"`,
		`DEVNODES="sda:rw"`, `DEVNODES="../x:rw"`, `CPUUNITS="many"`, `VE_LAYOUT="zfs"`} {
		keys, _ := Parse([]byte(bad))
		if _, err := Map(keys, fakeDev); !errors.Is(err, ErrBadConfig) {
			t.Errorf("Map(%s): %v, want ErrBadConfig", bad, err)
		}
	}
}

// FuzzParseMap: no config text makes Parse or Map panic, and a key Map reads is accounted
// for once.
func FuzzParseMap(f *testing.F) {
	if b, err := os.ReadFile("testdata/101.conf"); err == nil {
		f.Add(b)
	}
	f.Add([]byte(`NETIF="ifname=eth0;;ifname=eth1,bridge=br0"` + "\nIP_ADDRESS=\"::1/64 10.0.0.1/255.255.255.255\""))
	f.Add([]byte("PHYSPAGES=\"1:\"\nSWAPPAGES=\":K\""))
	f.Fuzz(func(t *testing.T, b []byte) {
		keys, err := Parse(b)
		if err != nil {
			return
		}
		p, err := Map(keys, fakeDev)
		if err != nil {
			return
		}
		if n := len(p.Mapped) + len(p.Noted) + len(p.Unmapped); n != len(keys) {
			t.Fatalf("%d keys, %d outcomes", len(keys), n)
		}
	})
}
