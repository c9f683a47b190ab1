package runtime

import (
	"net/netip"
	"testing"
)

func TestUnitOf(t *testing.T) {
	cases := map[string]string{
		// hybrid host: the name=systemd hierarchy names the unit
		"13:name=systemd:/vpsctl/601/system.slice/systemd-logind.service\n0::/vpsctl/601/system.slice/systemd-logind.service\n": "systemd-logind.service",
		// cgroup2 only
		"0::/vpsctl/601/system.slice/ssh.service\n":                "ssh.service",
		"0::/vpsctl/601/init.scope\n":                              "init.scope",
		"0::/vpsctl/601/user.slice/user-0.slice/session-3.scope\n": "session-3.scope",
		// a service's own subgroup: the unit is the nearest unit above it
		"0::/vpsctl/601/system.slice/foo.service/payload\n": "foo.service",
		"0::/vpsctl/601\n": "",
		"":                 "",
		"garbage":          "",
	}
	for in, want := range cases {
		if got := UnitOf(in); got != want {
			t.Errorf("UnitOf(%q) = %q, want %q", in, got, want)
		}
	}
}

const tcpTable = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1783729 1 0000000000000000 100 0 0 10 0
   1: 3D0012C6:0016 010012C6:B8F2 01 00000000:00000000 02:0009F1C3 00000000     0        0 1790123 2 0000000000000000 20 4 30 10 -1
   2: broken line
`

const tcp6Table = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0000000000000000FFFF00003D0012C6:0016 0000000000000000FFFF0000010012C6:D431 01 00000000:00000000 00:00000000 00000000     0        0 555 1 0000000000000000 20 4 30 10 -1
   1: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 556 1 0000000000000000 100 0 0 10 0
`

func TestParseTCPTable(t *testing.T) {
	got := ParseTCPTable(tcpTable)
	if len(got) != 2 {
		t.Fatalf("ParseTCPTable: %d connections, want 2: %+v", len(got), got)
	}
	want := TCPConn{Local: netip.MustParseAddrPort("198.18.0.61:22"), Remote: netip.MustParseAddrPort("198.18.0.1:47346"),
		State: tcpEstablished, Inode: 1790123}
	if got[1] != want {
		t.Errorf("established line = %+v, want %+v", got[1], want)
	}
	if got[0].State != 0x0a || got[0].Local.Port() != 22 {
		t.Errorf("listening line = %+v", got[0])
	}
	six := ParseTCPTable(tcp6Table)
	if len(six) != 2 || six[0].Local != netip.MustParseAddrPort("198.18.0.61:22") || six[0].Inode != 555 ||
		six[1].Local != netip.MustParseAddrPort("[::1]:8080") {
		t.Errorf("tcp6 = %+v", six)
	}
}

func FuzzParseTCPTable(f *testing.F) {
	f.Add(tcpTable)
	f.Add(tcp6Table)
	f.Fuzz(func(t *testing.T, s string) { ParseTCPTable(s) })
}

func TestUndumpableFile(t *testing.T) {
	for link, bad := range map[string]bool{
		"anon_inode:[io_uring]": true, "anon_inode:[userfaultfd]": true, "anon_inode:bpf-prog": true,
		"anon_inode:[perf_event]": true, "anon_inode:inotify": false, "anon_inode:[eventpoll]": false,
		"anon_inode:[pidfd]": false, "anon_inode:[timerfd]": false, "/var/log/syslog": false, "/dev/null": false,
		"/dev/pts/3": false, "pipe:[1234]": false,
	} {
		if got := undumpableFile(link, "/nonexistent") != ""; got != bad {
			t.Errorf("undumpableFile(%q) blocks = %v, want %v", link, got, bad)
		}
	}
	if n, ok := socketInode("socket:[1790123]"); !ok || n != 1790123 {
		t.Errorf("socketInode = %d, %v", n, ok)
	}
	if _, ok := socketInode("pipe:[12]"); ok {
		t.Error("socketInode took a pipe")
	}
}
