package tests

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Issue 21 ("the guest sees its own machine") on busybox VPSs: LXCFS views of the VPS's own
// limits, live after set and across restart, a boot without LXCFS, devices and features, bind
// mounts, start --wait, and the bad input each refuses. The Debian guest's side (free, ip
// tuntap, systemd's boot) is TestDebianGuestViews.

// lxcfsState is status --format json's "lxcfs" of VPS id.
func lxcfsState(t *testing.T, id string) string {
	t.Helper()
	var s struct {
		LXCFS string `json:"lxcfs"`
	}
	if err := json.Unmarshal([]byte(must(t, "status", "--format", "json", id)), &s); err != nil {
		t.Fatal(err)
	}
	return s.LXCFS
}

// meminfoKB is the value of key in VPS id's /proc/meminfo, in kB.
func meminfoKB(t *testing.T, id, key string) int64 {
	t.Helper()
	for _, l := range strings.Split(must(t, "exec", id, "--", "cat", "/proc/meminfo"), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == key+":" {
			n, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no %s in VPS %s's /proc/meminfo", key, id)
	return 0
}

// lxcfsService reports whether the VPSs' LXCFS is the host's service, not vpsctl's own.
func lxcfsService(t *testing.T) bool {
	t.Helper()
	var in struct {
		Service bool `json:"service"`
	}
	if err := json.Unmarshal([]byte(must(t, "lxcfs", "status", "--format", "json")), &in); err != nil {
		t.Fatal(err)
	}
	return in.Service
}

func uptimeOf(t *testing.T, text string) float64 {
	t.Helper()
	f := strings.Fields(text)
	if len(f) == 0 {
		t.Fatalf("uptime %q", text)
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestGuestViews: memory, CPUs and uptime are the VPS's own, follow a live set, and stay live
// across a restart.
func TestGuestViews(t *testing.T) {
	const id = "401"
	checkClean(t, id)
	must(t, "create", id, "--template", "busybox", "--memory", "512M", "--swap", "256M", "--cpus", "1")
	t0 := time.Now()
	if out := must(t, "start", "--wait", id); !strings.Contains(out, "VPS "+id+" booted (busybox: sysinit done") {
		t.Fatalf("start --wait said %q", out)
	}
	if got := meminfoKB(t, id, "MemTotal"); got != 512*1024 {
		t.Fatalf("MemTotal %d kB, want %d", got, 512*1024)
	}
	// Swap: what the VPS may swap, as far as the host has swap to give.
	hostSwap := int64(0)
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "SwapTotal:" {
				hostSwap, _ = strconv.ParseInt(f[1], 10, 64)
			}
		}
	}
	if got, want := meminfoKB(t, id, "SwapTotal"), min(256*1024, hostSwap); got != want {
		t.Fatalf("SwapTotal %d kB, want %d (host swap %d kB)", got, want, hostSwap)
	}
	if got := strings.TrimSpace(must(t, "exec", id, "--", "nproc")); got != "1" {
		t.Fatalf("nproc %q, want 1", got)
	}
	// One CPU online: vpsctl's own LXCFS (--enable-cfs) counts the CPU quota's CPUs from 0;
	// the host's lxcfs.service (Debian runs it without) shows the CPU --cpus pinned.
	want := "0"
	if lxcfsService(t) {
		b, err := os.ReadFile(filepath.Join(groupDir("cpuset", id), "cpuset.cpus"))
		if err != nil {
			t.Fatal(err)
		}
		want = strings.TrimSpace(string(b))
	}
	if got := strings.TrimSpace(must(t, "exec", id, "--", "cat", "/sys/devices/system/cpu/online")); got != want {
		t.Fatalf("cpu/online %q, want %s", got, want)
	}
	if got := strings.Count(must(t, "exec", id, "--", "cat", "/proc/cpuinfo"), "processor"); got != 1 {
		t.Fatalf("%d processors in cpuinfo, want 1", got)
	}
	up := uptimeOf(t, must(t, "exec", id, "--", "cat", "/proc/uptime"))
	if lim := time.Since(t0).Seconds() + 2; up > lim {
		t.Fatalf("uptime %.2f s, more than the %.2f s since start", up, lim)
	}
	if b, err := os.ReadFile("/proc/uptime"); err == nil {
		if host := uptimeOf(t, string(b)); host-up < 5 && host > 30 {
			t.Fatalf("the VPS's uptime %.2f s is the host's %.2f s", up, host)
		}
	}
	if s := lxcfsState(t, id); s != "live" {
		t.Fatalf("status says lxcfs %q, want live", s)
	}
	must(t, "set", id, "--memory", "256M")
	if got := meminfoKB(t, id, "MemTotal"); got != 256*1024 {
		t.Fatalf("after set --memory 256M: MemTotal %d kB", got)
	}
	must(t, "restart", id)
	if s := lxcfsState(t, id); s != "live" {
		t.Fatalf("after restart, lxcfs %q", s)
	}
	if got := meminfoKB(t, id, "MemTotal"); got != 512*1024 {
		t.Fatalf("after restart (set without --save): MemTotal %d kB, want the saved 512M", got)
	}
}

// TestGuestViewsWithoutLXCFS: when LXCFS stops or dies, running VPSs see the host's numbers
// (not read errors) and their own again once it is back, without a restart; a VPS boots when
// LXCFS cannot run, with a warning and the host's numbers.
func TestGuestViewsWithoutLXCFS(t *testing.T) {
	const id = "402"
	checkClean(t, id)
	if lxcfsService(t) {
		t.Skip("the host's lxcfs.service serves the VPSs here: stopping it is the host's business")
	}
	dir := filepath.Join(root, "lxcfs")
	t.Cleanup(func() {
		os.Remove(dir)
		os.Mkdir(dir, 0o755)
		if r := vpsctl(t, "lxcfs", "start"); r.code != 0 {
			t.Errorf("lxcfs start: %s%s", r.out, r.err)
		}
	})
	must(t, "create", id, "--template", "busybox", "--memory", "300M")
	must(t, "start", id)
	if s := lxcfsState(t, id); s != "live" {
		t.Fatalf("lxcfs %q, want live", s)
	}
	if out := must(t, "lxcfs", "stop"); !strings.Contains(out, "lxcfs stopped") {
		t.Fatalf("lxcfs stop: %q", out)
	}
	if s := lxcfsState(t, id); s != "none" {
		t.Fatalf("after lxcfs stop: lxcfs %q, want none", s)
	}
	if got := meminfoKB(t, id, "MemTotal"); got == 300*1024 {
		t.Fatal("after lxcfs stop, MemTotal is still the limit")
	}
	if out := must(t, "lxcfs", "start"); !strings.Contains(out, "lxcfs live at") {
		t.Fatalf("lxcfs start: %q", out)
	}
	if s := lxcfsState(t, id); s != "live" {
		t.Fatalf("after lxcfs start: lxcfs %q, want live", s)
	}
	if got := meminfoKB(t, id, "MemTotal"); got != 300*1024 {
		t.Fatalf("after lxcfs start: MemTotal %d kB", got)
	}
	// LXCFS killed: its supervisor detaches the dead views, starts it again and binds anew.
	pid := pidFile(t, "lxcfs.pid")
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Reads fail only until the supervisor has seen it die (a moment), never after.
	var failed []string
	waitFor(t, 10*time.Second, "the views back after LXCFS was killed", func() bool {
		r := vpsctl(t, "exec", id, "--", "head", "-1", "/proc/meminfo")
		if r.code != 0 {
			failed = append(failed, r.err)
		}
		return strings.Contains(r.out, strconv.Itoa(300*1024)+" kB")
	})
	if len(failed) > 2 {
		t.Fatalf("%d reads of /proc/meminfo failed while LXCFS was down: %q", len(failed), failed)
	}
	// The supervisor and LXCFS both killed (an OOM kill, a kill -9 of both): the dead mount
	// stays behind (reads fail). The next start detaches it and serves again.
	sup, pid := pidFile(t, "lxcfs.lock"), pidFile(t, "lxcfs.pid")
	syscall.Kill(sup, syscall.SIGKILL)
	syscall.Kill(pid, syscall.SIGKILL)
	waitFor(t, 10*time.Second, "LXCFS and its supervisor gone", func() bool { return gone(sup)() && gone(pid)() })
	// ENOTCONN, or ECONNABORTED while the kernel is still tearing the connection down.
	if _, err := os.Stat(filepath.Join(dir, "proc", "meminfo")); !errors.Is(err, syscall.ENOTCONN) && !errors.Is(err, syscall.ECONNABORTED) {
		t.Fatalf("no dead mount to start over: %v", err)
	}
	if out := must(t, "lxcfs", "start"); !strings.Contains(out, "lxcfs live at") {
		t.Fatalf("lxcfs start over a dead mount: %q", out)
	}
	waitFor(t, 10*time.Second, "the views bound to the new LXCFS", func() bool {
		return strings.Contains(vpsctl(t, "exec", id, "--", "head", "-1", "/proc/meminfo").out, strconv.Itoa(300*1024)+" kB")
	})
	// LXCFS cannot mount: its mount point is a file.
	must(t, "lxcfs", "stop")
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	r := expectCode(t, 0, "restart", id)
	if !strings.Contains(r.err, "no LXCFS views") {
		t.Fatalf("no warning on stderr: %q", r.err)
	}
	if s := lxcfsState(t, id); s != "none" {
		t.Fatalf("booted without LXCFS: lxcfs %q, want none", s)
	}
	if got := meminfoKB(t, id, "MemTotal"); got == 300*1024 {
		t.Fatal("MemTotal is the limit without LXCFS")
	}
	st := expectCode(t, 3, "lxcfs", "start")
	if !strings.Contains(st.err, "lxcfs did not come up") {
		t.Fatalf("lxcfs start's error: %q", st.err)
	}
}

// TestGuestDevices: --features and --devices make nodes a VPS's root can open, kept across a
// restart; set replaces them for the next start.
func TestGuestDevices(t *testing.T) {
	const id = "403"
	checkClean(t, id)
	must(t, "create", id, "--template", "busybox", "--features", "tun,fuse", "--devices", "c:108:0:rw")
	must(t, "start", id)
	check := func(want map[string]string) {
		t.Helper()
		for node, mm := range want {
			out := must(t, "exec", id, "--", "stat", "-c", "%F %t:%T", node)
			if strings.TrimSpace(out) != "character special file "+mm {
				t.Fatalf("%s: %q, want a character device %s", node, out, mm)
			}
		}
	}
	// A rule's node has the host's name for it, else /dev/char/MAJ:MIN as udev's links do.
	ppp := "/dev/char/108:0"
	if _, err := os.Stat("/dev/ppp"); err == nil {
		ppp = "/dev/ppp"
	}
	check(map[string]string{"/dev/net/tun": "a:c8", "/dev/fuse": "a:e5", ppp: "6c:0"})
	must(t, "exec", id, "--", "sh", "-c", "exec 3<>/dev/net/tun && exec 4<>/dev/fuse")
	must(t, "restart", id)
	check(map[string]string{"/dev/net/tun": "a:c8"})
	must(t, "set", id, "--features", "fuse", "--devices", "")
	must(t, "restart", id)
	if r := vpsctl(t, "exec", id, "--", "sh", "-c", "exec 3<>/dev/net/tun"); r.code == 0 {
		t.Fatal("tun opens after set --features fuse")
	}
	must(t, "exec", id, "--", "sh", "-c", "exec 4<>/dev/fuse")
}

// TestGuestBindMount: a host directory shown inside with the VPS's own IDs, read-only or not,
// kept across restart, removed by --bindmount-del at the next start.
func TestGuestBindMount(t *testing.T) {
	const id = "404"
	checkClean(t, id)
	ro, rw := t.TempDir(), t.TempDir()
	for _, d := range []string{ro, rw} {
		os.Chmod(d, 0o755)
	}
	if err := os.WriteFile(filepath.Join(ro, "hello"), []byte("from the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	must(t, "create", id, "--template", "busybox", "--bindmount", ro+":/mnt/share:ro", "--bindmount", rw+":/srv/data")
	must(t, "start", id)
	if got := must(t, "exec", id, "--", "cat", "/mnt/share/hello"); got != "from the host\n" {
		t.Fatalf("read %q", got)
	}
	if got := strings.TrimSpace(must(t, "exec", id, "--", "stat", "-c", "%u:%g", "/mnt/share/hello")); got != "0:0" {
		t.Fatalf("the host's root file shows inside as %s, want 0:0 (the VPS's root)", got)
	}
	if r := vpsctl(t, "exec", id, "--", "sh", "-c", "echo x > /mnt/share/new"); r.code == 0 {
		t.Fatal("wrote into a read-only bind mount")
	}
	must(t, "exec", id, "--", "sh", "-c", "echo y > /srv/data/made && chown 1000:1000 /srv/data/made")
	fi, err := os.Stat(filepath.Join(rw, "made"))
	if err != nil {
		t.Fatal(err)
	}
	if uid := fi.Sys().(*syscall.Stat_t).Uid; uid != 1000 {
		t.Fatalf("a file the VPS's uid 1000 owns is host uid %d, want 1000 (idmapped)", uid)
	}
	must(t, "restart", id)
	must(t, "exec", id, "--", "test", "-f", "/mnt/share/hello")
	must(t, "set", id, "--bindmount-del", "/mnt/share")
	must(t, "restart", id)
	if r := vpsctl(t, "exec", id, "--", "test", "-f", "/mnt/share/hello"); r.code == 0 {
		t.Fatal("the bind mount is there after --bindmount-del and a restart")
	}
	must(t, "exec", id, "--", "test", "-f", "/srv/data/made")
}

// TestGuestBadInput: each bad value is one line naming it, exit 21, and changes nothing.
func TestGuestBadInput(t *testing.T) {
	const id, made = "405", "406"
	checkClean(t, id, made)
	link := filepath.Join(t.TempDir(), "proc")
	if err := os.Symlink("/proc", link); err != nil {
		t.Fatal(err)
	}
	bad := [][]string{
		{"--features", "bogus"},
		{"--devices", "c:x:1:rw"},
		{"--devices", "c:1:1"},
		{"--devices", "q:1:1:rw"},
		{"--bindmount", "/nonexistent-405:/mnt"},
		{"--bindmount", "/proc:/mnt"},
		{"--bindmount", "/sys/kernel:/mnt"},
		{"--bindmount", "/dev:/mnt"},
		{"--bindmount", root + "/vps:/mnt"},
		{"--bindmount", link + ":/mnt"},
		{"--bindmount", "/tmp:mnt"},
		{"--bindmount", "/tmp:/mnt:rx"},
	}
	// A bad device rule is vzctl's VZ_SET_DEVICES (86); the rest, bad values (21).
	codeOf := func(args []string) int {
		if args[0] == "--devices" {
			return 86
		}
		return 21
	}
	for _, args := range bad {
		r := expectCode(t, codeOf(args), append([]string{"create", id, "--template", "busybox"}, args...)...)
		if strings.Count(strings.TrimSpace(r.err), "\n") != 0 || !strings.Contains(r.err, args[0]) {
			t.Errorf("create %v: the error is not one line naming %s: %q", args, args[0], r.err)
		}
		if st := status(t, id); st.State != "deleted" {
			t.Fatalf("create %v failed and left VPS %s %s", args, id, st.State)
		}
	}
	must(t, "create", made, "--template", "busybox", "--features", "tun")
	conf, err := os.ReadFile(filepath.Join(root, "vps", made, "vps.conf"))
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range bad {
		expectCode(t, codeOf(args), append([]string{"set", made}, args...)...)
	}
	expectCode(t, 21, "set", made, "--bindmount-del", "/not/bound")
	if now, _ := os.ReadFile(filepath.Join(root, "vps", made, "vps.conf")); string(now) != string(conf) {
		t.Fatalf("failed sets changed vps.conf:\nbefore %s\nafter %s", conf, now)
	}
}

// TestStartWaitTimeout: a busybox guest whose sysinit never ends is not booted: start --wait
// exits 133 (vzctl's VZ_WAIT_FAILED) after its timeout, naming what still runs, and leaves the VPS running.
func TestStartWaitTimeout(t *testing.T) {
	const id, tpl = "407", "slowboot407"
	checkClean(t, id)
	src := t.TempDir()
	if out, err := exec.Command("cp", "-a", filepath.Join(root, "templates", "busybox", "rootfs")+"/.", src+"/").CombinedOutput(); err != nil {
		t.Fatalf("copy the busybox tree: %v: %s", err, out)
	}
	inittab := "::sysinit:/bin/sleep 1000\n::respawn:/bin/sleep 1000000\n"
	if err := os.WriteFile(filepath.Join(src, "etc", "inittab"), []byte(inittab), 0o644); err != nil {
		t.Fatal(err)
	}
	must(t, "template", "import", tpl, src)
	t.Cleanup(func() { vpsctl(t, "template", "remove", tpl) })
	must(t, "create", id, "--template", tpl)
	r := expectCode(t, 133, "start", "--wait", "--timeout", "2s", id)
	if !strings.Contains(r.err, "did not finish booting in 2s (busybox: running /bin/sleep)") {
		t.Fatalf("start --wait's error: %q", r.err)
	}
	if st := status(t, id); st.State != "running" {
		t.Fatalf("VPS %s is %s after a boot timeout, want running", id, st.State)
	}
	expectCode(t, 20, "start", "--wait", "--timeout", "bogus", id)
}

// pidFile reads the PID that the state root's file name holds (a supervisor's lock note, LXCFS's
// pid file), failing the test unless it is one above 1.
func pidFile(t *testing.T, name string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, name))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		t.Fatalf("%s: %q holds no PID", name, b)
	}
	return pid
}
