package tests

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The rows of issue 20 ("Hostile tenants") that hold with what the leaf packages do on their
// own: a template's device nodes dropped at import, forged source addresses dropped by the
// network package's nftables table, a FIFO planted at /etc/passwd. The rows that need the
// runtime's wiring (seccomp, nodev root, default limits, reboot back-off, escaped ps output,
// checkpoint modes) are listed in docs/SECURITY.md with how to test them.

// TestHostileDeviceTemplate: a template tree carrying dev/console (5:1, the host's console)
// and a disk node. Import drops both and says so; inside, root bind-mounts / elsewhere (where
// the template's /dev shows under the VPS's /dev tmpfs) and finds no console node to open.
func TestHostileDeviceTemplate(t *testing.T) {
	const id, tpl = "301", "devtpl301"
	checkClean(t, id)
	src := t.TempDir()
	if out, err := exec.Command("cp", "-a", filepath.Join(root, "templates", "busybox", "rootfs")+"/.", src+"/").CombinedOutput(); err != nil {
		t.Fatalf("copy the busybox tree: %v: %s", err, out)
	}
	for _, n := range []struct {
		path string
		mode uint32
		dev  uint64
	}{{"dev/console", unix.S_IFCHR | 0o666, unix.Mkdev(5, 1)}, {"dev/vda", unix.S_IFBLK | 0o666, unix.Mkdev(253, 0)}} {
		if err := unix.Mknod(filepath.Join(src, n.path), n.mode, int(n.dev)); err != nil {
			t.Fatalf("mknod %s: %v", n.path, err)
		}
	}
	out := must(t, "template", "import", tpl, src)
	t.Cleanup(func() { vpsctl(t, "template", "remove", tpl) })
	if !strings.Contains(out, "template "+tpl+": dropped 2 device nodes (dev/console, dev/vda)") {
		t.Errorf("import did not say what it dropped:\n%s", out)
	}
	must(t, "create", id, "--template", tpl)
	must(t, "start", id)
	r := vpsctl(t, "exec", id, "--", "sh", "-c",
		`mkdir -p /r && mount --bind / /r || exit 90
ls -l /r/dev/ 2>&1
for n in console vda; do
	if [ -c /r/dev/$n ] || [ -b /r/dev/$n ]; then
		echo "NODE PRESENT: $n"
		echo x > /r/dev/$n && echo "NODE WRITTEN: $n"
	fi
done
exit 0`)
	if r.code == 90 {
		t.Fatalf("the row could not bind-mount /: %s%s", r.out, r.err)
	}
	if strings.Contains(r.out, "NODE ") {
		t.Errorf("NOT BLOCKED: the template's console node is reachable:\n%s%s", r.out, r.err)
	}
	must(t, "stop", id)
	must(t, "destroy", id)
}

// TestHostileForgedSource: VPS 303 takes VPS 304's addresses and pings VPS 305 from them,
// with net.ipv4.conf.all.rp_filter=2 for the test and IPv6 forwarding on for the three host
// ends. 305 must receive no echo request from the forged sources, over IPv4 and IPv6, while
// 303's own addresses reach it.
func TestHostileForgedSource(t *testing.T) {
	ids := []string{"303", "304", "305"}
	checkClean(t, ids...)
	for _, id := range ids {
		n := id[2:] // 303: 198.18.0.43 and fd42:1::43
		must(t, "create", id, "--template", "busybox", "--ipadd", "198.18.0.4"+n, "--ipadd", "fd42:1::4"+n)
		must(t, "start", id)
	}
	hostSysctlForTest(t, "net.ipv4.conf.all.rp_filter", "2")
	for _, id := range ids {
		hostSysctlForTest(t, "net.ipv6.conf.vps"+id+".force_forwarding", "1")
	}
	if out, err := execCmd("nft", "list", "chain", "inet", "vpsctl", "vps303"); err != nil ||
		!strings.Contains(string(out), "198.18.0.43") || !strings.Contains(string(out), "fd42:1::43") {
		t.Fatalf("no source filter for VPS 303: %v\n%s", err, out)
	}
	echos := func() (v4, v6 int) {
		out := must(t, "exec", "305", "--", "cat", "/proc/net/snmp", "/proc/net/snmp6")
		return icmpEchos(t, out)
	}
	// 303's own addresses reach 305.
	for _, dst := range []string{"198.18.0.45", "fd42:1::45"} {
		if r := vpsPing(t, "303", dst); r.code != 0 {
			t.Fatalf("303 cannot reach %s from its own address: %s%s", dst, r.out, r.err)
		}
	}
	// busybox ip has no nodad: wait out duplicate address detection (one second) so that
	// ping can bind the forged IPv6 address.
	must(t, "exec", "303", "--", "sh", "-c", `ip addr add 198.18.0.44/32 dev venet0 &&
ip -6 addr add fd42:1::44/128 dev venet0 || exit 1
for i in 1 2 3 4 5 6 7 8; do ip -6 addr show dev venet0 | grep -q tentative || exit 0; sleep 1; done
exit 1`)
	forge := func() (d4, d6 int) {
		v4, v6 := echos()
		vpsctl(t, "exec", "303", "--", "ping", "-c1", "-W1", "-I", "198.18.0.44", "198.18.0.45")
		vpsctl(t, "exec", "303", "--", "ping6", "-c1", "-W1", "-I", "fd42:1::44", "fd42:1::45")
		n4, n6 := echos()
		return n4 - v4, n6 - v6
	}
	if d4, d6 := forge(); d4 != 0 || d6 != 0 {
		t.Errorf("NOT BLOCKED: 305 received %d IPv4 and %d IPv6 echo requests from 303 forging 304's addresses", d4, d6)
	}
	// The control, so that this row can fail: with 303's chain unhooked and the kernel's
	// IPv4 check off (with rp_filter=2 it drops the IPv4 forgery itself, as the host end has
	// no IPv4 address), the same forgeries arrive. Destroy removes the chain.
	hostSysctlForTest(t, "net.ipv4.conf.all.rp_filter", "0")
	hostSysctlForTest(t, "net.ipv4.conf.vps303.rp_filter", "0")
	if out, err := execCmd("nft", "delete", "element", "inet", "vpsctl", "srcguard", `{ "vps303" }`); err != nil {
		t.Fatalf("unhook 303's chain: %v: %s", err, out)
	}
	if d4, d6 := forge(); d4 == 0 || d6 == 0 {
		t.Errorf("without the filter 305 received %d IPv4 and %d IPv6 forged echo requests: this row no longer measures anything", d4, d6)
	}
	for _, id := range ids {
		must(t, "destroy", "--force", id)
	}
	if out, err := execCmd("nft", "list", "table", "inet", "vpsctl"); err == nil {
		for _, id := range ids {
			if strings.Contains(string(out), "chain vps"+id+" ") {
				t.Errorf("destroy left VPS %s's source filter:\n%s", id, out)
			}
		}
	}
}

// icmpEchos reads Icmp InEchos from /proc/net/snmp text and Icmp6InEchos from snmp6 text.
func icmpEchos(t *testing.T, text string) (v4, v6 int) {
	t.Helper()
	var head []string
	found := 0
	for _, l := range strings.Split(text, "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) > 1 && f[0] == "Icmp:" && head == nil:
			head = f
		case len(f) > 1 && f[0] == "Icmp:":
			if i := slices.Index(head, "InEchos"); i > 0 && i < len(f) {
				v4, _ = strconv.Atoi(f[i])
				found++
			}
		case len(f) == 2 && f[0] == "Icmp6InEchos":
			v6, _ = strconv.Atoi(f[1])
			found++
		}
	}
	if found != 2 {
		t.Fatalf("no echo counters in:\n%s", text)
	}
	return v4, v6
}

// hostSysctlForTest sets a host sysctl (dotted name) and restores it when the test ends (an
// interface's that is gone by then has nothing to restore).
func hostSysctlForTest(t *testing.T, key, val string) {
	t.Helper()
	p := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
	old, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("sysctl %s: %v", key, err)
	}
	if err := os.WriteFile(p, []byte(val), 0o644); err != nil {
		t.Fatalf("sysctl %s=%s: %v", key, val, err)
	}
	t.Cleanup(func() {
		if err := os.WriteFile(p, old, 0o644); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Errorf("restore %s: %v", key, err)
		}
	})
}

// TestHostileFIFOPasswd: the tenant replaces /etc/passwd and /etc/group with FIFOs nobody
// writes; `vpsctl uid` reads them from the host and must neither hang nor fail the table.
func TestHostileFIFOPasswd(t *testing.T) {
	const id = "306"
	checkClean(t, id)
	must(t, "create", id, "--template", "busybox")
	must(t, "start", id)
	must(t, "exec", id, "--", "sh", "-c", "rm -f /etc/passwd /etc/group && mkfifo /etc/passwd /etc/group")
	start := time.Now()
	r := vpsctlTimeout(t, 20*time.Second, nil, "uid", id, "--groups")
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("NOT BLOCKED: uid took %v on a FIFO /etc/passwd", d)
	}
	if r.code != 0 {
		t.Errorf("uid with FIFOs at /etc/passwd and /etc/group: exit %d: %s", r.code, r.err)
	}
	must(t, "destroy", "--force", id)
}
