package tests

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestHostReboot: the host reboots for real, with vpsctl installed as a provider installs it
// (docs/OPERATIONS.md, "Installing"; issue 25's acceptance on the Debian 12 VM). The VM tier
// (scripts/vm-guest.sh) runs this test twice in one state root kept on the VM's disk
// (VPSCTL_TEST_STATE): with VPSCTL_REBOOT_STAGE=before, then reboots the VM, then with
// VPSCTL_REBOOT_STAGE=after.
//
// Before: vpsctl in /usr/local/sbin, /etc/vpsctl/vpsctl.conf naming the state root, the
// shipped vpsctl.service installed, enabled and started (its start --all boots the onboot
// VPSs: 502, bootorder 20, then 501, bootorder 10); 503, not onboot, started by hand. Each
// one's busybox inittab has a shutdown action that writes the boot id into the VPS: busybox
// init runs it on its poweroff (or reboot) signal, never when it is killed.
//
// After (another boot): the unit started at boot again and brought back 501 and 502, in boot
// order, with their LXCFS views; 503 stays stopped, with nothing of the previous boot left;
// the shutdown before stopped all three through the unit's stop --all, gracefully: each wrote
// its mark of the previous boot, its console shows busybox's poweroff, its stopped event's
// cause is stop --all, not a kill. Then everything installed is removed again.
func TestHostReboot(t *testing.T) {
	stage := os.Getenv("VPSCTL_REBOOT_STAGE")
	if stage == "" || os.Getenv("VPSCTL_TEST_STATE") == "" {
		t.Skip("runs around a reboot of the VM tier's host (scripts/vm-test.sh)")
	}
	mark := filepath.Join(root, "reboot-test.boot-id")
	boot := bootID(t)
	switch stage {
	case "before":
		rebootBefore(t, boot)
		if err := os.WriteFile(mark, []byte(boot), 0o644); err != nil {
			t.Fatal(err)
		}
	case "after":
		t.Cleanup(uninstallService)
		prev, err := os.ReadFile(mark)
		if err != nil {
			t.Fatalf("the first half's mark: %v", err)
		}
		if strings.TrimSpace(string(prev)) == boot {
			t.Fatalf("boot id %s before and after: the host was not rebooted", boot)
		}
		rebootAfter(t, strings.TrimSpace(string(prev)))
		os.Remove(mark)
	default:
		t.Fatalf("VPSCTL_REBOOT_STAGE=%q: want before or after", stage)
	}
}

func bootID(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// The reboot test's VPSs: the onboot ones with their boot orders (the higher boots first), and
// one that is running at the reboot but not onboot.
var (
	rebootOnboot = []struct{ id, order string }{{"501", "10"}, {"502", "20"}}
	rebootOff    = "503"
	rebootAll    = []string{"501", "502", "503"}
)

// Where the test installs vpsctl, as docs/OPERATIONS.md has a provider do it.
const (
	installedBin  = "/usr/local/sbin/vpsctl"
	installedUnit = "/etc/systemd/system/vpsctl.service"
	installedConf = "/etc/vpsctl/vpsctl.conf"
	// poweroffMark is written inside each VPS by its inittab's shutdown action.
	poweroffMark = "root/poweroff-mark"
)

// shippedUnit finds contrib/systemd/vpsctl.service: in the source tree, or beside the test
// binary where the VM tier puts it (nothing of the tree but the binaries is in the VM).
func shippedUnit(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"../contrib/systemd/vpsctl.service", "vpsctl.service"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatal("contrib/systemd/vpsctl.service not found (the VM tier copies it beside the test binary)")
	return ""
}

// systemctl runs systemctl, bounded; the test fails on a non-zero exit.
func systemctl(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("systemctl", args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if err := waitCmd(t, cmd, 5*time.Minute); err != nil {
		t.Fatalf("systemctl %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// unitProp is one property of vpsctl.service as systemctl show gives it.
func unitProp(t *testing.T, prop string) string {
	t.Helper()
	return strings.TrimSpace(systemctl(t, "show", "--value", "-p", prop, "vpsctl.service"))
}

func rebootBefore(t *testing.T, boot string) {
	for _, p := range []string{installedBin, installedUnit, installedConf} {
		if _, err := os.Stat(p); err == nil {
			t.Fatalf("%s exists already: this test installs vpsctl on a host that has none", p)
		}
	}
	// vpsctl, its host configuration (the state root), the unit: docs/OPERATIONS.md's steps.
	if out, err := execCmd("install", "-m", "0755", bin, installedBin); err != nil {
		t.Fatalf("install vpsctl: %v\n%s", err, out)
	}
	if err := os.MkdirAll(filepath.Dir(installedConf), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(installedConf, []byte("# the VM tier's reboot test\nROOT=\""+root+"\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := execCmd("install", "-m", "0644", shippedUnit(t), installedUnit); err != nil {
		t.Fatalf("install the unit: %v\n%s", err, out)
	}
	if out, err := execCmd("systemd-analyze", "verify", installedUnit); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify %s: %v\n%s", installedUnit, err, out)
	}
	systemctl(t, "daemon-reload")
	systemctl(t, "enable", "vpsctl.service")

	for _, v := range rebootOnboot {
		must(t, "create", v.id, "--template", "busybox", "--hostname", "reboot"+v.id, "--onboot", "yes", "--bootorder", v.order)
	}
	must(t, "create", rebootOff, "--template", "busybox", "--hostname", "reboot"+rebootOff)
	// busybox init runs its shutdown actions on its poweroff, halt or reboot signal, before it
	// signals the rest of the VPS: the mark holds the boot id of the host it was written on.
	inittab := "::sysinit:/etc/init.d/rcS\n" +
		"::shutdown:cat /proc/sys/kernel/random/boot_id >/" + poweroffMark + "\n" +
		"::shutdown:/bin/sync\n"
	for _, id := range rebootAll {
		etc := filepath.Join(root, "vps", id, "private", "etc")
		if err := os.MkdirAll(etc, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(etc, "inittab"), []byte(inittab), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// The unit's start is start --all: the onboot VPSs, and only those.
	t0 := time.Now()
	systemctl(t, "start", "vpsctl.service")
	if s := unitProp(t, "ActiveState"); s != "active" {
		t.Fatalf("vpsctl.service after its start: %s", s)
	}
	if got := eventIDs(eventsSince(t, t0), "started"); !slices.Equal(got, []uint32{502, 501}) {
		t.Fatalf("the unit's start --all started %v, want 502 then 501", got)
	}
	if st := status(t, rebootOff); st.State != "stopped" {
		t.Fatalf("VPS %s, not onboot, after the unit's start: %s", rebootOff, st.State)
	}
	must(t, "start", rebootOff)
	// Nothing of a VPS stays in the unit's group (its stop and restart signal that group).
	if procs := unitProcs(t); len(procs) > 0 {
		t.Fatalf("processes left in vpsctl.service's group after its start: %v", procs)
	}
	for _, id := range rebootAll {
		must(t, "exec", id, "--", "sh", "-c", "echo kept > /root/before-reboot")
		if _, err := os.Stat(filepath.Join(root, "vps", id, "private", poweroffMark)); err == nil {
			t.Fatalf("VPS %s: a shutdown mark before the shutdown", id)
		}
	}
}

// unitProcs lists the processes in vpsctl.service's cgroup.
func unitProcs(t *testing.T) []string {
	t.Helper()
	cg := unitProp(t, "ControlGroup")
	if cg == "" {
		return nil
	}
	b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", cg, "cgroup.procs"))
	if os.IsNotExist(err) {
		return nil
	} else if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(b))
}

// initStart is the start time of VPS id's init, in clock ticks since the host's boot.
func initStart(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command's closing parenthesis: state is field 3, starttime field 22.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	n, err := strconv.ParseInt(f[19], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func rebootAfter(t *testing.T, prevBoot string) {
	// The unit ran at boot (multi-user.target waits for it; the bound is for a unit that
	// hangs): its start --all has finished.
	waitFor(t, 60*time.Second, "vpsctl.service active", func() bool {
		return unitProp(t, "ActiveState") == "active"
	})
	if r := unitProp(t, "Result"); r != "success" {
		t.Errorf("vpsctl.service's result: %s", r)
	}

	// The onboot VPSs run again, booted in boot order, with their /proc views (LXCFS was up
	// before the unit started them).
	var starts []int64
	monitors := map[int]bool{}
	for _, v := range rebootOnboot {
		s := status(t, v.id)
		if s.State != "running" || s.InitPID == 0 {
			t.Fatalf("VPS %s after the reboot: %+v, want running", v.id, s)
		}
		starts = append(starts, initStart(t, s.InitPID))
		monitors[s.MonitorPID] = true
		if l := lxcfsState(t, v.id); l != "live" {
			t.Errorf("VPS %s after the reboot: lxcfs %q, want live", v.id, l)
		}
		if got := strings.TrimSpace(must(t, "exec", v.id, "--", "cat", "/root/before-reboot")); got != "kept" {
			t.Errorf("VPS %s: a file written before the reboot reads %q", v.id, got)
		}
		if got := strings.TrimSpace(must(t, "exec", v.id, "--", "hostname")); got != "reboot"+v.id {
			t.Errorf("VPS %s: hostname %q", v.id, got)
		}
	}
	if starts[1] >= starts[0] {
		t.Errorf("inits started at ticks %v (501, 502): want 502 (bootorder 20) first", starts)
	}
	// The one that is not onboot stays down, with nothing of the previous boot left.
	if s := status(t, rebootOff); s.State != "stopped" {
		t.Errorf("VPS %s (not onboot) after the reboot: %+v, want stopped", rebootOff, s)
	}
	if dirs := groupDirs(rebootOff); len(dirs) > 0 {
		t.Errorf("VPS %s: groups of the previous boot: %v", rebootOff, dirs)
	}
	for _, pid := range ourMonitors() {
		if !monitors[pid] {
			t.Errorf("monitor %d is not 501's or 502's", pid)
		}
	}
	if mi, _ := os.ReadFile("/proc/self/mountinfo"); bytes.Contains(mi, []byte(filepath.Join(root, "vps", rebootOff))) {
		t.Errorf("mounts of VPS %s after the reboot:\n%s", rebootOff, mi)
	}

	// The shutdown stopped all three through the unit, gracefully: each init got its poweroff
	// signal and ran its shutdown actions on the previous boot.
	es := eventsSince(t, time.Now().Add(-24*time.Hour))
	var stopped, startedAfter []uint32
	for _, e := range es {
		switch {
		case e.Event == "stopped":
			if e.Cause != "stop --all" {
				t.Errorf("VPS %d stopped with cause %q, want stop --all (not a kill)", e.ID, e.Cause)
			}
			stopped = append(stopped, e.ID)
		case e.Event == "started" && len(stopped) > 0:
			if e.Cause != "start --all" {
				t.Errorf("VPS %d started after the reboot with cause %q", e.ID, e.Cause)
			}
			startedAfter = append(startedAfter, e.ID)
		}
	}
	slices.Sort(stopped)
	if !slices.Equal(stopped, []uint32{501, 502, 503}) {
		t.Errorf("stopped events %v, want one each of 501, 502, 503: %+v", stopped, es)
	}
	if !slices.Equal(startedAfter, []uint32{502, 501}) {
		t.Errorf("started after the shutdown: %v, want 502 then 501: %+v", startedAfter, es)
	}
	for _, id := range rebootAll {
		b, err := os.ReadFile(filepath.Join(root, "vps", id, "private", poweroffMark))
		if err != nil || strings.TrimSpace(string(b)) != prevBoot {
			t.Errorf("VPS %s: shutdown mark %q (%v), want the previous boot's id %s: its init did not shut down", id, b, err, prevBoot)
		}
		con, _ := os.ReadFile(filepath.Join(root, "vps", id, "console.log"))
		if !bytes.Contains(con, []byte("Requesting system poweroff")) {
			t.Errorf("VPS %s: no poweroff on its console:\n%s", id, con)
		}
	}

	// 503 boots again by hand, with what it wrote before the reboot.
	must(t, "start", rebootOff)
	if got := strings.TrimSpace(must(t, "exec", rebootOff, "--", "cat", "/root/before-reboot")); got != "kept" {
		t.Errorf("VPS %s: a file written before the reboot reads %q", rebootOff, got)
	}
}

// uninstallService undoes rebootBefore's installation: the unit's stop (stop --all), the VPSs,
// the files. It runs whatever the after stage found, so that the VM is left as it was.
func uninstallService() {
	run := func(name string, args ...string) {
		cmd := exec.Command(name, args...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "cleanup: %s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
	}
	run("systemctl", "disable", "--now", "vpsctl.service")
	for _, id := range rebootAll {
		exec.Command(bin, "--root", root, "destroy", "--force", id).Run()
	}
	os.Remove(installedUnit)
	run("systemctl", "daemon-reload")
	os.Remove(installedConf)
	os.Remove(filepath.Dir(installedConf))
	os.Remove(installedBin)
}
