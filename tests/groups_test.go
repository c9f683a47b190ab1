package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// cgroupV2 reports whether this host runs cgroup v2 only (cgroup2 at /sys/fs/cgroup).
func cgroupV2() bool {
	var st unix.Statfs_t
	return unix.Statfs("/sys/fs/cgroup", &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
}

// systemdHost reports whether PID 1 is systemd (sd_booted(3)'s test).
func systemdHost() bool {
	fi, err := os.Stat("/run/systemd/system")
	return err == nil && fi.IsDir()
}

// vmTier reports whether the suite runs in the VM tier (scripts/vm-test.sh), where the host is
// known to be Debian 12 with systemd and cgroup v2 only: tests of that setup fail there
// instead of skipping.
func vmTier() bool { return os.Getenv("VPSCTL_VM_TIER") != "" }

// groupDir is VPS id's group directory for v1 controller ctrl, or its one cgroup2 group (ctrl
// unused): at the hierarchy's root without systemd, in the VPS's delegated scope with it. The
// layout is spelled out here, not asked of package cgroup, so the tests check it.
func groupDir(ctrl, id string) string {
	switch {
	case !cgroupV2():
		return filepath.Join("/sys/fs/cgroup", ctrl, "vpsctl", id)
	case systemdHost():
		return filepath.Join("/sys/fs/cgroup/vpsctl.slice", "vpsctl-"+id+".scope", "vpsctl", id)
	}
	return filepath.Join("/sys/fs/cgroup/vpsctl", id)
}

// groupDirs lists VPS id's group directories that exist now, in every layout.
func groupDirs(id string) []string {
	a, _ := filepath.Glob("/sys/fs/cgroup/*/vpsctl/" + id)
	b, _ := filepath.Glob("/sys/fs/cgroup/vpsctl/" + id)
	c, _ := filepath.Glob("/sys/fs/cgroup/vpsctl.slice/vpsctl-" + id + ".scope/vpsctl/" + id)
	return append(append(a, b...), c...)
}

// TestSystemdPlacement: on a cgroup v2 host run by systemd, a VPS's groups are in a delegated
// transient scope, processes only in leaves: the init in the VPS's group, the monitor in the
// scope's supervisor leaf; nothing at the root of the hierarchy; a start right after a stop in
// a live scope; the scope goes with the VPS.
func TestSystemdPlacement(t *testing.T) {
	if !cgroupV2() || !systemdHost() {
		if vmTier() {
			t.Fatal("the VM tier runs on cgroup v2 with systemd as PID 1; this host is not")
		}
		t.Skip("needs cgroup v2 only and systemd as PID 1 (the VM tier: scripts/vm-test.sh)")
	}
	checkClean(t, "171")
	must(t, "create", "171", "--template", "busybox", "--memory", "64M")
	must(t, "start", "171")
	scope := "/sys/fs/cgroup/vpsctl.slice/vpsctl-171.scope"
	procGroup := func(pid int) string {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimPrefix(strings.TrimSpace(string(b)), "0::")
	}
	st := status(t, "171")
	if g := procGroup(st.InitPID); g != "/vpsctl.slice/vpsctl-171.scope/vpsctl/171" {
		t.Errorf("init's group %q, want the VPS's group in its scope", g)
	}
	mons := ourMonitors()
	if len(mons) != 1 {
		t.Fatalf("monitors: %v", mons)
	}
	if g := procGroup(mons[0]); g != "/vpsctl.slice/vpsctl-171.scope/supervisor" {
		t.Errorf("monitor's group %q, want the scope's supervisor leaf", g)
	}
	// Inner nodes hold no process: the kernel would refuse their controllers otherwise.
	for _, inner := range []string{scope, scope + "/vpsctl"} {
		if b, err := os.ReadFile(inner + "/cgroup.procs"); err != nil || len(b) != 0 {
			t.Errorf("%s/cgroup.procs: %q (%v)", inner, b, err)
		}
	}
	if b, err := os.ReadFile(scope + "/vpsctl/171/memory.max"); err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(64<<20) {
		t.Errorf("memory.max %q (%v)", b, err)
	}
	out, err := exec.Command("systemctl", "show", "-p", "Delegate", "-p", "Slice", "-p", "ActiveState", "vpsctl-171.scope").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Delegate=yes") || !strings.Contains(string(out), "Slice=vpsctl.slice") ||
		!strings.Contains(string(out), "ActiveState=active") {
		t.Errorf("systemctl show vpsctl-171.scope: %v\n%s", err, out)
	}
	if _, err := os.Stat("/sys/fs/cgroup/vpsctl"); err == nil {
		t.Error("a group was made at the root of the hierarchy, behind systemd's back")
	}
	// exec joins the VPS's group (a leaf), not the scope.
	if g := strings.TrimSpace(must(t, "exec", "171", "--", "cat", "/proc/self/cgroup")); g != "0::/" {
		t.Errorf("exec'd process sees its group as %q, want the root of its cgroup namespace", g)
	}
	// A start right after a stop finds the scope on its way out, or gone: either way the new
	// boot is in a scope systemd knows, active, never in a group of no unit.
	for i := 0; i < 3; i++ {
		must(t, "stop", "171")
		must(t, "start", "171")
		out, err := exec.Command("systemctl", "show", "-p", "ActiveState", "-p", "ControlGroup", "vpsctl-171.scope").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "ActiveState=active") ||
			!strings.Contains(string(out), "ControlGroup=/vpsctl.slice/vpsctl-171.scope") {
			t.Fatalf("restart %d: systemctl show vpsctl-171.scope: %v\n%s", i, err, out)
		}
		if g := procGroup(status(t, "171").InitPID); g != "/vpsctl.slice/vpsctl-171.scope/vpsctl/171" {
			t.Fatalf("restart %d: init's group %q", i, g)
		}
	}
	must(t, "stop", "171")
	waitFor(t, 10*time.Second, "the scope to go", func() bool { _, err := os.Stat(scope); return os.IsNotExist(err) })
}

// TestDeviceFilter: a VPS's group lets its processes open the device nodes on its allowlist
// and no other, whatever their privileges (v1 devices cgroup, v2 eBPF program): a host root
// process moved into the group is refused a device the host opens (its disk, or /dev/kmsg),
// and allowed it once --devices says so.
func TestDeviceFilter(t *testing.T) {
	disk := ""
	for _, d := range []string{"/dev/vda", "/dev/sda", "/dev/nvme0n1", "/dev/xvda", "/dev/kmsg"} {
		if exec.Command("dd", "if="+d, "of=/dev/null", "count=0").Run() == nil {
			disk = d
			break
		}
	}
	if disk == "" {
		t.Skip("no device outside the VPS allowlist that host root may open here")
	}
	var st syscall.Stat_t
	if err := syscall.Stat(disk, &st); err != nil {
		t.Fatal(err)
	}
	typ := "c"
	if st.Mode&syscall.S_IFMT == syscall.S_IFBLK {
		typ = "b"
	}
	rule := typ + ":" + strconv.Itoa(int(unix.Major(st.Rdev))) + ":" + strconv.Itoa(int(unix.Minor(st.Rdev))) + ":r"
	checkClean(t, "172")
	must(t, "create", "172", "--template", "busybox")
	must(t, "start", "172")
	// open runs dd in the VPS's group (devices hierarchy on v1) as host root: "ok" or dd's error.
	open := func(dev string) string {
		g := groupDir("devices", "172")
		out, _ := exec.Command("sh", "-c", `echo $$ > "$1/cgroup.procs" && dd if="$2" of=/dev/null count=0 2>&1 && echo ok`,
			"sh", g, dev).CombinedOutput()
		return strings.TrimSpace(string(out))
	}
	if got := open("/dev/null"); !strings.HasSuffix(got, "ok") {
		t.Errorf("/dev/null in the VPS's group: %q", got)
	}
	if got := open(disk); strings.HasSuffix(got, "ok") || !strings.Contains(got, "not permitted") {
		t.Errorf("%s in the VPS's group: %q, want refused", disk, got)
	}
	must(t, "set", "172", "--devices", rule)
	must(t, "restart", "172", "--timeout", "10s")
	if got := open(disk); !strings.HasSuffix(got, "ok") {
		t.Errorf("%s with --devices %s: %q", disk, rule, got)
	}
	must(t, "stop", "172")
}

// TestExecGuestInLeaf: exec into a guest whose init behaves as systemd does on cgroup v2: at
// boot it moves itself into a leaf of its own (/init.scope, as seen in its cgroup namespace)
// and enables a controller in the VPS's group, whose cgroup.procs then refuses every process
// (EBUSY: no process in an inner node that has controllers enabled for its children). exec
// still works, through the front door's record made at boot and through the Go path alike,
// and what it runs is inside the VPS's group: in the init's leaf.
func TestExecGuestInLeaf(t *testing.T) {
	if !cgroupV2() {
		if vmTier() {
			t.Fatal("the VM tier runs on cgroup v2 only; this host is not")
		}
		t.Skip("needs cgroup v2 as the only hierarchy: a guest manages its group only there (the VM tier: scripts/vm-test.sh)")
	}
	const id = "173"
	checkClean(t, id)
	must(t, "create", id, "--template", "busybox")
	// The guest's cgroup namespace is rooted at the VPS's group, mounted at /sys/fs/cgroup: the
	// sysinit script moves the init and itself into init.scope before it enables pids below the
	// group's root (systemd does the same in that order).
	etc := filepath.Join(root, "vps", id, "private", "etc")
	if err := os.MkdirAll(filepath.Join(etc, "init.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"inittab": "::sysinit:/etc/init.d/cgleaf\n::shutdown:/bin/sync\n",
		"init.d/cgleaf": "#!/bin/sh\nset -e\nc=/sys/fs/cgroup\nmkdir $c/init.scope\n" +
			"echo 1 > $c/init.scope/cgroup.procs\necho $$ > $c/init.scope/cgroup.procs\n" +
			"echo +pids > $c/cgroup.subtree_control\necho leaf-ready > /run/cgleaf\n",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(etc, name), []byte(text), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	must(t, "start", "--wait", id)
	if got := strings.TrimSpace(must(t, "exec", id, "--", "cat", "/run/cgleaf")); got != "leaf-ready" {
		t.Fatalf("the guest's sysinit did not finish: %q", got)
	}
	group := groupDir("", id)
	if b, err := os.ReadFile(filepath.Join(group, "cgroup.subtree_control")); err != nil || !strings.Contains(string(b), "pids") {
		t.Fatalf("the VPS's group's subtree_control %q (%v): want pids, as the guest enabled it", b, err)
	}
	// The group itself refuses a process now: the state exec must cope with.
	sh := exec.Command("sh", "-c", `echo $$ > "$1/cgroup.procs"`, "sh", group)
	if out, err := sh.CombinedOutput(); err == nil {
		t.Fatalf("the VPS's group took a process with pids enabled below it: %s", out)
	}

	// Plain exec (the front door's record) and one with options (the Go path).
	for _, args := range [][]string{
		{"exec", id, "--", "cat", "/proc/self/cgroup"},
		{"exec", "--env", "X=1", id, "--", "cat", "/proc/self/cgroup"},
	} {
		if got := strings.TrimSpace(must(t, args...)); got != "0::/init.scope" {
			t.Errorf("vpsctl %v: the exec'd process is in %q, want the init's leaf 0::/init.scope", args, got)
		}
	}
	// Seen from the host: a process exec'd into the VPS is in its group, in the init's leaf.
	bg := exec.Command(bin, "--root", root, "exec", id, "--", "sleep", "1000")
	if err := bg.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		bg.Process.Kill()
		bg.Wait()
	}()
	leaf := filepath.Join(group, "init.scope", "cgroup.procs")
	waitFor(t, 10*time.Second, "the exec'd sleep in "+leaf, func() bool {
		b, _ := os.ReadFile(leaf)
		for _, p := range strings.Fields(string(b)) {
			if c, _ := os.ReadFile("/proc/" + p + "/comm"); strings.TrimSpace(string(c)) == "sleep" {
				return true
			}
		}
		return false
	})
	must(t, "stop", id)
}

// TestExecGroups: a command exec'd into a running VPS is in the VPS's group in every hierarchy,
// seen from the host, whichever path runs it: the front door's (from the join record, the
// joiner cloned into the cgroup2 group and writing itself into the v1 groups' tasks files),
// Go's (VPSCTL_NO_FASTPATH), and Go's again when the record is one the joiner refuses (a key it
// does not know, as an older vpsctl's record of a VPS still running would have).
func TestExecGroups(t *testing.T) {
	const id = "174"
	checkClean(t, id)
	must(t, "create", id, "--template", "busybox")
	defer vpsctl(t, "destroy", "-f", id)
	must(t, "start", id)
	record := filepath.Join(root, "vps", id, "join")
	good, err := os.ReadFile(record)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.TrimPrefix(groupDir("", id), "/sys/fs/cgroup")
	if !cgroupV2() {
		want = "/vpsctl/" + id
	}
	for _, c := range []struct {
		what   string
		env    []string
		record []byte
	}{
		{"front door", nil, good},
		{"Go", []string{"VPSCTL_NO_FASTPATH=1"}, good},
		{"refused record", nil, append(good[:len(good)-1:len(good)-1], []byte("cgroup=/sys/fs/cgroup/x/cgroup.procs\x00\x00")...)},
	} {
		if err := os.WriteFile(record, c.record, 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "--root", root, "exec", id, "--", "sleep", "1000")
		cmd.Env = append(os.Environ(), c.env...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var sleeper int
		waitFor(t, 10*time.Second, c.what+": the exec'd sleep", func() bool {
			sleeper = descendantNamed(cmd.Process.Pid, "sleep")
			return sleeper > 0
		})
		b, err := os.ReadFile("/proc/" + strconv.Itoa(sleeper) + "/cgroup")
		cmd.Process.Kill()
		cmd.Wait()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if _, g, _ := strings.Cut(l[strings.IndexByte(l, ':')+1:], ":"); g != want {
				t.Errorf("%s: the exec'd command is in %s, want %s in every hierarchy", c.what, l, want)
			}
		}
	}
	must(t, "stop", "--kill", id)
}

// descendantNamed is a process below pid (children, grandchildren) whose command is name, 0 if
// none.
func descendantNamed(pid int, name string) int {
	kids := func(p int) []int {
		var out []int
		tasks, _ := os.ReadDir("/proc/" + strconv.Itoa(p) + "/task")
		for _, task := range tasks {
			b, _ := os.ReadFile("/proc/" + strconv.Itoa(p) + "/task/" + task.Name() + "/children")
			for _, f := range strings.Fields(string(b)) {
				if n, err := strconv.Atoi(f); err == nil {
					out = append(out, n)
				}
			}
		}
		return out
	}
	queue := kids(pid)
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if b, _ := os.ReadFile("/proc/" + strconv.Itoa(p) + "/comm"); strings.TrimSpace(string(b)) == name {
			return p
		}
		queue = append(queue, kids(p)...)
	}
	return 0
}
