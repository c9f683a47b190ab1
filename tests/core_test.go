package tests

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vpsctl/vpsctl/internal/fault"
)

type statusJSON struct {
	ID       uint32 `json:"id"`
	Name     string `json:"name"`
	State    string `json:"state"`
	Hostname string `json:"hostname"`
	InitPID  int    `json:"init_pid"`
	Template string `json:"template"`
	// MonitorPID and Boots: the host PID of the VPS's monitor, and its boot count.
	MonitorPID int `json:"monitor_pid"`
	Boots      int `json:"boots"`
}

func status(t testing.TB, id string) statusJSON {
	t.Helper()
	var s statusJSON
	out := must(t, "status", id, "--format", "json")
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("status json %q: %v", out, err)
	}
	return s
}

func TestCoreLifecycle(t *testing.T) {
	checkClean(t, "101")
	must(t, "create", "101", "--template", "busybox", "--hostname", "alpha", "--name", "web")
	if got := strings.TrimSpace(must(t, "status", "101")); got != "VPS 101 exist stopped" {
		t.Fatalf("status after create = %q", got)
	}
	must(t, "start", "101")
	if got := strings.TrimSpace(must(t, "exec", "web", "--", "hostname")); got != "alpha" {
		t.Fatalf("hostname inside = %q, want alpha", got)
	}
	// No addresses or interfaces configured: the init child brought the loopback up itself.
	if got := strings.TrimSpace(must(t, "exec", "101", "--", "cat", "/sys/class/net/lo/flags")); got != "0x9" {
		t.Fatalf("loopback flags %q, want 0x9 (up)", got)
	}
	host, _ := os.Hostname()
	if host == "alpha" {
		t.Fatal("host's hostname changed")
	}
	if r := vpsctl(t, "exec", "101", "--", "sh", "-c", "exit 7"); r.code != 7 {
		t.Fatalf("exec exit 7: got %d (%s)", r.code, r.err)
	}
	if got := strings.TrimSpace(must(t, "status", "101")); got != "VPS 101 exist running" {
		t.Fatalf("status = %q", got)
	}
	s1 := status(t, "web")
	if s1.State != "running" || s1.InitPID <= 0 || s1.Hostname != "alpha" || s1.Template != "busybox" || s1.Name != "web" {
		t.Fatalf("status json = %+v", s1)
	}

	t.Run("pid 1 is the template's init", func(t *testing.T) {
		got := strings.TrimSpace(must(t, "exec", "101", "--", "readlink", "/proc/1/exe"))
		if got != "/bin/busybox" {
			t.Fatalf("/proc/1/exe inside = %q", got)
		}
		if comm := strings.TrimSpace(must(t, "exec", "101", "--", "cat", "/proc/1/comm")); comm != "init" {
			t.Fatalf("/proc/1/comm = %q", comm)
		}
	})
	t.Run("ps shows only the VPS's processes", func(t *testing.T) {
		out := must(t, "exec", "101", "--", "ps", "-o", "pid,comm")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		// header, init, getty, ps (and rcS may be gone already)
		if len(lines) > 6 {
			t.Fatalf("ps inside shows %d lines:\n%s", len(lines), out)
		}
		if strings.Contains(out, "vpsctl") || strings.Contains(out, "go") && strings.Contains(out, "test") {
			t.Fatalf("host processes visible:\n%s", out)
		}
	})
	t.Run("network namespace has only lo", func(t *testing.T) {
		out := must(t, "exec", "101", "--", "ip", "-o", "link")
		if n := strings.Count(strings.TrimSpace(out), "\n") + 1; n != 1 || !strings.Contains(out, "lo:") {
			t.Fatalf("links inside:\n%s", out)
		}
	})
	t.Run("mount table hides the host's", func(t *testing.T) {
		out := must(t, "exec", "101", "--", "cat", "/proc/self/mountinfo")
		if strings.Contains(out, root) || strings.Contains(out, workDir) || strings.Contains(out, "/dev/vda") || strings.Contains(out, " ext4 ") {
			t.Fatalf("host mounts visible inside:\n%s", out)
		}
		mi, _ := os.ReadFile("/proc/self/mountinfo")
		if strings.Contains(string(mi), filepath.Join(root, "vps")) {
			t.Fatal("the VPS's mounts are visible in the host's mount namespace")
		}
	})
	t.Run("user namespace maps root to an unprivileged host uid", func(t *testing.T) {
		out := strings.Fields(must(t, "exec", "101", "--", "cat", "/proc/self/uid_map"))
		if len(out) != 3 || out[0] != "0" || out[1] == "0" {
			t.Fatalf("uid_map inside = %v", out)
		}
	})
	t.Run("duplicate create is refused", func(t *testing.T) {
		expectCode(t, 44, "create", "101", "--template", "busybox")
		expectCode(t, 44, "create", "109", "--template", "busybox", "--name", "web")
		expectCode(t, 43, "status", "web2")
	})
	t.Run("destroy of a running VPS is refused", func(t *testing.T) {
		expectCode(t, 32, "destroy", "101")
		expectCode(t, 32, "start", "101")
	})
	t.Run("in-VPS reboot restarts it with a new init", func(t *testing.T) {
		old := status(t, "101").InitPID
		vpsctl(t, "exec", "101", "--", "reboot")
		waitFor(t, 20*time.Second, "a new init", func() bool {
			s := status(t, "101")
			return s.State == "running" && s.InitPID != old && s.InitPID > 0
		})
		if got := strings.TrimSpace(must(t, "exec", "101", "--", "hostname")); got != "alpha" {
			t.Fatalf("hostname after reboot = %q", got)
		}
	})
	must(t, "stop", "101", "--timeout", "20s")
	if got := strings.TrimSpace(must(t, "status", "101")); got != "VPS 101 exist stopped" {
		t.Fatalf("status after stop = %q", got)
	}
	if s := status(t, "101"); s.InitPID != 0 {
		t.Fatalf("init_pid after stop = %d", s.InitPID)
	}
	expectCode(t, 31, "stop", "101")
	expectCode(t, 31, "exec", "101", "--", "true")
	must(t, "destroy", "101")
	if got := strings.TrimSpace(must(t, "status", "101")); got != "VPS 101 deleted" {
		t.Fatalf("status after destroy = %q", got)
	}
	expectCode(t, 43, "start", "web")
	if _, err := os.Stat(filepath.Join(root, "vps", "101")); !os.IsNotExist(err) {
		t.Fatalf("VPS directory left after destroy: %v", err)
	}
}

func TestPoweroffFromInside(t *testing.T) {
	checkClean(t, "102")
	must(t, "create", "102", "--template", "busybox")
	must(t, "start", "102")
	vpsctl(t, "exec", "102", "--", "poweroff")
	waitFor(t, 20*time.Second, "the VPS to stop", func() bool { return status(t, "102").State == "stopped" })
	// The monitor cleans up without any vpsctl command: no monitor, no cgroup.
	waitFor(t, 10*time.Second, "the monitor to exit", func() bool { return len(ourMonitors()) == 0 })
	must(t, "destroy", "102")
}

func TestSurvivesCLIAndKill(t *testing.T) {
	checkClean(t, "103")
	must(t, "create", "103", "--template", "busybox")
	must(t, "start", "103")
	// Every vpsctl above has exited: the VPS runs on.
	time.Sleep(200 * time.Millisecond)
	s := status(t, "103")
	if s.State != "running" {
		t.Fatalf("not running after the CLI exited: %+v", s)
	}
	must(t, "stop", "--kill", "103")
	if status(t, "103").State != "stopped" {
		t.Fatal("stop --kill did not stop")
	}
}

func TestExecCommandErrors(t *testing.T) {
	checkClean(t, "104")
	must(t, "create", "104", "--template", "busybox")
	must(t, "start", "104")
	r := expectCode(t, 127, "exec", "104", "--", "/no/such/cmd")
	if !strings.Contains(r.err, "/no/such/cmd") {
		t.Fatalf("error does not name the command: %q", r.err)
	}
	if r := vpsctl(t, "exec", "104", "--", "sh", "-c", "kill -9 $$"); r.code != 137 {
		t.Fatalf("killed command: exit %d, want 137", r.code)
	}
	// The C fast path (plain exec) and the Go path (VPSCTL_NO_FASTPATH) join the same way.
	probe := []string{"exec", "104", "--", "sh", "-c", "cat /proc/self/uid_map /proc/self/cgroup; grep CapBnd /proc/self/status; hostname; env | sort; ls /proc/self/fd | wc -l"}
	fast := must(t, probe...)
	slow := vpsctlEnv(t, []string{"VPSCTL_NO_FASTPATH=1"}, probe...)
	if slow.code != 0 || fast != slow.out {
		t.Fatalf("fast and Go exec paths differ:\nfast: %s\nGo:   %s (%s)", fast, slow.out, slow.err)
	}
	// stdin passes through
	r2 := vpsctl(t, "exec", "104", "--", "cat")
	if r2.code != 0 {
		t.Fatalf("cat: %+v", r2)
	}
	must(t, "stop", "--kill", "104")
}

// threads returns the number of threads of process pid (0 if it is gone).
func threads(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Threads:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}

// TestMonitorRests checks the monitor's resting state: while the VPS runs, its monitor is the
// single-threaded C reaper (no Go runtime); it hands an attached console over to the Go
// monitor and back across an in-VPS reboot, and SIGTERM to it stops the VPS cleanly.
func TestMonitorRests(t *testing.T) {
	const id = "112"
	checkClean(t, id)
	must(t, "create", id, "--template", "busybox", "--hostname", "resting")
	must(t, "start", id)
	mon := status(t, id).MonitorPID
	for deadline := time.Now().Add(10 * time.Second); threads(mon) != 1; {
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(root, "vps", id, "monitor.log"))
			comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", mon))
			t.Fatalf("monitor %d (%s) still has %d threads after 10s, not the C reaper; monitor.log:\n%s", mon, strings.TrimSpace(string(comm)), threads(mon), log)
		}
		time.Sleep(50 * time.Millisecond)
	}

	c, err := net.Dial("unix", filepath.Join(root, "vps", id, "console.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var mu sync.Mutex
	var seen bytes.Buffer
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			mu.Lock()
			seen.Write(buf[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	old := status(t, id).InitPID
	vpsctl(t, "exec", id, "--", "reboot")
	waitFor(t, 20*time.Second, "a fresh boot", func() bool {
		s := status(t, id)
		return s.State == "running" && s.InitPID != old && s.InitPID > 0
	})
	if s := status(t, id); s.MonitorPID != mon || s.Boots != 2 {
		t.Fatalf("after the reboot: monitor %d boots %d, want monitor %d, boot 2", s.MonitorPID, s.Boots, mon)
	}
	// The monitor keeps its mounts of the VPS's root for a boot (unmounting them waited for RCU
	// grace periods): the reboot replaced the first boot's, it did not stack a second pair.
	for _, d := range []string{"root", "lower"} {
		if n := mountsAt(t, mon, filepath.Join(root, "vps", id, d)); n != 1 {
			t.Errorf("after the reboot, the monitor's namespace has %d mounts at the VPS's %s, want 1", n, d)
		}
	}
	waitFor(t, 5*time.Second, "the monitor to rest in C again", func() bool { return threads(mon) == 1 })
	// The console connection made before the reboot shows the second boot's messages.
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		got := seen.String()
		mu.Unlock()
		if strings.Count(got, "busybox VPS resting booted") > 0 {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(root, "vps", id, "console.log"))
			mlog, _ := os.ReadFile(filepath.Join(root, "vps", id, "monitor.log"))
			t.Fatalf("the console client did not see the second boot:\n%q\nconsole.log:\n%s\nmonitor.log:\n%s", got, log, mlog)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := c.Write([]byte("\r")); err != nil {
		t.Fatalf("console connection lost across the reboot: %v", err)
	}

	if err := syscall.Kill(mon, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "SIGTERM to the monitor to stop the VPS", func() bool { return status(t, id).State == "stopped" })
	waitFor(t, 10*time.Second, "the monitor to exit", func() bool { return threads(mon) == 0 })
	if _, err := os.Stat(filepath.Join(root, "vps", id, "run.json")); !os.IsNotExist(err) {
		t.Fatalf("run.json left after the monitor's own stop: %v", err)
	}
}

// mountsAt counts the mounts at mount point dir in process pid's mount namespace.
func mountsAt(t *testing.T, pid int, dir string) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && f[4] == dir {
			n++
		}
	}
	return n
}

// TestDestroyReclaims: destroy commits by a rename and returns; a background process deletes
// the files. The VPS is gone at once for every command, its files soon after; the remover acts
// only on a message vpsctl wrote; one killed half-way leaves a directory the next command sweeps.
func TestDestroyReclaims(t *testing.T) {
	const id = "113"
	checkClean(t, id)
	must(t, "create", id, "--template", "busybox")
	must(t, "start", id)
	must(t, "exec", id, "--", "/bin/sh", "-c", "mkdir -p /data && for i in 1 2 3 4 5 6 7 8; do echo $i > /data/f$i; done")
	must(t, "destroy", "--force", id)
	if s := status(t, id); s.State != "deleted" {
		t.Fatalf("state after destroy = %q, want deleted", s.State)
	}
	if _, err := os.Stat(filepath.Join(root, "vps", id)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("vps/%s after destroy: %v", id, err)
	}
	waitTmpEmpty(t, 10*time.Second)

	// The remover acts on vpsctl's stage and message only: a stray variable is no stage (the
	// CLI runs, here printing its help), a relative directory is refused before anything.
	keep := t.TempDir()
	if err := os.WriteFile(filepath.Join(keep, "precious"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	stray := exec.Command(bin)
	stray.Env = []string{"_VPSCTL_RMTREE=" + keep, "_VPSCTL_REMOVER=" + keep}
	if out, err := stray.CombinedOutput(); err != nil || !strings.Contains(string(out), "USAGE") {
		t.Fatalf("vpsctl with stray variables: %v\n%s", err, out)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	pw.Write([]byte("dir=" + strings.TrimPrefix(keep, "/") + "\x00\x00"))
	pw.Close()
	rel := exec.Command(bin)
	rel.Dir = "/"
	rel.Env = []string{"_VPSCTL_STAGE=remover:3"}
	rel.ExtraFiles = []*os.File{pr}
	err = rel.Run()
	pr.Close()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("remover with a relative directory: %v, want exit 2", err)
	}
	if _, err := os.Stat(filepath.Join(keep, "precious")); err != nil {
		t.Fatalf("the remover touched a directory it was not given plainly: %v", err)
	}

	// A remover killed half-way: its directory names a dead process; any command sweeps it.
	dead := filepath.Join(root, "tmp", "destroy-999999999-1", "vps", "private")
	if err := os.MkdirAll(dead, 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dead, "f"), []byte("x"), 0o600)
	must(t, "list")
	if ents, _ := os.ReadDir(filepath.Join(root, "tmp")); len(ents) != 0 {
		t.Fatalf("abandoned reclaim not swept: %v", ents)
	}
}

// vpsDirs lists the state root's VPS directories.
func vpsDirs(t testing.TB) []string {
	t.Helper()
	ents, _ := os.ReadDir(filepath.Join(root, "vps"))
	var ids []string
	for _, e := range ents {
		ids = append(ids, e.Name())
	}
	return ids
}

// TestRun: `vpsctl run` boots a fresh VPS with the command as its PID 1 on the caller's stdio
// and exits with its status; --rm leaves nothing behind, on success and on every failure.
func TestRun(t *testing.T) {
	checkClean(t, "190")
	beforeDirs := vpsDirs(t)
	before := fmt.Sprint(beforeDirs)
	locks := func() int { // VPSs' lock files (the state root's own, .global, stays)
		m, _ := filepath.Glob(filepath.Join(root, "locks", "*.lock"))
		return len(m)
	}
	locksBefore := locks()

	// Its own network namespace, with only the loopback, up (flags IFF_UP|IFF_LOOPBACK).
	cmd := exec.Command(bin, "--root", root, "run", "--rm", "--template", "busybox", "--hostname", "h1", "--",
		"/bin/sh", "-c", `hostname; echo pid=$$; cat; id -u; ls /sys/class/net; cat /sys/class/net/lo/flags; exit 7`)
	cmd.Stdin = strings.NewReader("from-stdin\n")
	out, err := cmd.Output()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 7 {
		t.Fatalf("run: %v (want exit 7); out %q", err, out)
	}
	if want := "h1\npid=1\nfrom-stdin\n0\nlo\n0x9\n"; string(out) != want {
		t.Fatalf("run output %q, want %q", out, want)
	}
	if after := fmt.Sprint(vpsDirs(t)); after != before {
		t.Fatalf("run --rm left a VPS: %s -> %s", before, after)
	}
	// Not on the host: the VPS's mounts were made in a mount namespace of the boot's own.
	if mi, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mi), filepath.Join(root, "vps")) {
		t.Fatalf("a VPS mount in the host's mount table:\n%s", mi)
	}

	// A VPS run with --rm is mounted volatile (no sync of its upper layer: its files are
	// deleted next; the option reads "volatile" before Linux 6.6, "fsync=volatile" since), one
	// kept is not; the --rm one's mount namespace and files go with the
	// background remover, which leaves nothing.
	if out := strings.TrimSpace(must(t, "run", "--rm", "--template", "busybox", "--", "/bin/sh", "-c", "grep -cE '(fsync=|,)volatile[, ]' /proc/mounts")); out != "1" {
		t.Fatalf("run --rm: overlay mounted volatile %q times, want 1", out)
	}
	waitTmpEmpty(t, 10*time.Second)

	// The command returns once its VPS's init is gone; the remover then removes the VPS's
	// groups, subgroups the VPS made itself included, before its files (waited for above).
	groups := func() string {
		g, _ := filepath.Glob("/sys/fs/cgroup/*/vpsctl/*/")
		v2, _ := filepath.Glob("/sys/fs/cgroup/vpsctl/*/")
		scopes, _ := filepath.Glob("/sys/fs/cgroup/vpsctl.slice/*/") // systemd's placement
		g = append(append(g, v2...), scopes...)
		// Spare groups are a cache the remover refills (TestSpareGroups), not the run's; the
		// monitors' group stays (TestMonitorGroup).
		g = slices.DeleteFunc(g, func(d string) bool { return strings.Contains(d, "/.spare-") || strings.Contains(d, ".monitor") })
		return fmt.Sprint(g)
	}
	groupsBefore := groups()
	// The VPS's own view: its pids hierarchy on v1, the one tree on v2.
	if out := must(t, "run", "--rm", "--template", "busybox", "--", "/bin/sh", "-c",
		"d=/sys/fs/cgroup/pids; [ -d $d ] || d=/sys/fs/cgroup; mkdir $d/sub $d/sub/deeper && echo made"); strings.TrimSpace(out) != "made" {
		t.Fatalf("run --rm: a subgroup of the VPS's own: %q", out)
	}
	waitTmpEmpty(t, 10*time.Second)
	// Under systemd, the scope goes once systemd has seen its last process go.
	waitFor(t, 5*time.Second, "run --rm's groups to go", func() bool { return groups() == groupsBefore })

	// Failures: nothing is created (bad template) or all is removed (command not found).
	if r := vpsctl(t, "run", "--rm", "--template", "no-such-template", "--", "/bin/true"); r.code != 91 {
		t.Fatalf("run with a missing template: code %d (%s), want 91", r.code, r.err)
	}
	r := vpsctl(t, "run", "--rm", "--template", "busybox", "--", "/no/such/command")
	if r.code == 0 || !strings.Contains(r.err, "/no/such/command") {
		t.Fatalf("run of a missing command: code %d, stderr %q", r.code, r.err)
	}
	if after := fmt.Sprint(vpsDirs(t)); after != before {
		t.Fatalf("failed runs left a VPS: %s -> %s", before, after)
	}
	// Nor a lock file: a destroy removes its VPS's, and no lock file is made for a VPS that
	// does not exist.
	expectCode(t, 43, "destroy", "654321")
	if n := locks(); n != locksBefore {
		t.Fatalf("lock files: %d before the runs, %d after", locksBefore, n)
	}

	// Without --rm the VPS stays, stopped, with what the command wrote (and durably: not
	// volatile).
	if r := vpsctl(t, "run", "190", "--template", "busybox", "--", "/bin/sh", "-c", "echo kept > /root/f; grep -cE '(fsync=|,)volatile[, ]' /proc/mounts"); r.code != 1 || strings.TrimSpace(r.out) != "0" {
		t.Fatalf("run 190: code %d (want 1: grep found no volatile mount), out %q, err %s", r.code, r.out, r.err)
	}
	if s := status(t, "190"); s.State != "stopped" {
		t.Fatalf("after run without --rm: state %q, want stopped", s.State)
	}
	if b, err := os.ReadFile(filepath.Join(root, "vps", "190", "private", "root", "f")); err != nil || string(b) != "kept\n" {
		t.Fatalf("file written by the run: %q %v", b, err)
	}
	if r := vpsctl(t, "run", "190", "--template", "busybox", "--", "/bin/true"); r.code != 44 {
		t.Fatalf("run on an existing ID: code %d, want 44", r.code)
	}
	must(t, "destroy", "190")

	// SIGINT to vpsctl ends the command and, with --rm, removes the VPS.
	cmd = exec.Command(bin, "--root", root, "run", "--rm", "--template", "busybox", "--", "/bin/sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the run's VPS to exist", func() bool { return len(vpsDirs(t)) > len(beforeDirs) })
	time.Sleep(200 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGINT)
	if err := waitCmd(t, cmd, 20*time.Second); !errors.As(err, &ee) || ee.ExitCode() != 128+int(syscall.SIGKILL) {
		t.Fatalf("run after SIGINT: %v, want exit %d", err, 128+int(syscall.SIGKILL))
	}
	if after := fmt.Sprint(vpsDirs(t)); after != before {
		t.Fatalf("interrupted run --rm left a VPS: %s -> %s", before, after)
	}
	waitTmpEmpty(t, 10*time.Second)
}

// TestKillAndStartAgain: stop --kill returns only once the VPS's mounts are gone. Its mount
// namespace is held through the kill (so that the init's death does not wait for the
// unmounting) and released by the stop itself, never handed on: were the old overlay still
// alive, the start right after would mount the private area again under it, which the kernel
// reports ("upperdir is in-use").
func TestKillAndStartAgain(t *testing.T) {
	checkClean(t, "191")
	inUse := func() int {
		out, _ := exec.Command("dmesg").Output()
		return strings.Count(string(out), "is in-use as upperdir/workdir")
	}
	before := inUse()
	must(t, "create", "191", "--template", "busybox")
	defer vpsctl(t, "destroy", "--force", "191")
	for i := 0; i < 5; i++ {
		must(t, "start", "191")
		must(t, "stop", "--kill", "191")
	}
	must(t, "start", "191")
	must(t, "stop", "191")
	if n := inUse() - before; n != 0 {
		t.Fatalf("%d overlay in-use reports: a start mounted the private area while the stopped boot's overlay was still there", n)
	}
	must(t, "destroy", "191")
}

// TestStartPaths: `vpsctl start` forks before its Go runtime starts and the child, which boots
// the VPS, stays as its monitor; a restart (and any library caller) spawns a monitor instead.
// Either way the command returns once the VPS runs, with nothing of the caller's held open
// (its output pipe reaches EOF), and the monitor is in a session of its own. A start that dies
// mid-boot is reported by the command's exit status.
func TestStartPaths(t *testing.T) {
	const id = "114"
	checkClean(t, id)
	must(t, "create", id, "--template", "busybox")
	for _, env := range []string{"start", "restart"} {
		r := vpsctlTimeout(t, 30*time.Second, nil, env, id)
		if r.code != 0 || !strings.HasPrefix(r.out, "VPS "+id+" "+env+"ed (init PID ") {
			t.Fatalf("%v start: %+v", env, r)
		}
		s := status(t, id)
		if s.State != "running" || s.MonitorPID <= 0 {
			t.Fatalf("%v: status after start: %+v", env, s)
		}
		stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.MonitorPID))
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+2:]))
		if len(f) < 4 || f[3] != strconv.Itoa(s.MonitorPID) {
			t.Fatalf("%v: monitor %d is not a session leader: %s", env, s.MonitorPID, stat)
		}
		if out := must(t, "exec", id, "--", "hostname"); strings.TrimSpace(out) != "vps"+id {
			t.Fatalf("%v: hostname %q", env, out)
		}
		must(t, "stop", "--kill", id)
	}
	// A boot killed half-way: the command fails with the dead process's signal (the forked
	// start) and the next start repairs and boots.
	r := vpsctlEnv(t, []string{fault.Env + "=monitor-rootfs"}, "start", id)
	if r.code != -1 { // ProcessState.ExitCode: -1 when ended by a signal
		t.Fatalf("start killed at monitor-rootfs: code %d, want death by the signal (%s)", r.code, r.err)
	}
	must(t, "start", id)
	must(t, "stop", "--kill", id)
}

// TestRunRmKilled: a `run ID --rm` killed before it could destroy its VPS leaves the VPS
// stopped, its private area marked by the volatile overlay it ran on (which overlayfs would
// refuse to mount again). The VPS still boots, and destroys cleanly.
func TestRunRmKilled(t *testing.T) {
	checkClean(t, "193")
	cmd := exec.Command(bin, "--root", root, "run", "193", "--rm", "--template", "busybox", "--", "/bin/sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	mark := filepath.Join(root, "vps", "193", "work", "work", "incompat", "volatile")
	waitFor(t, 10*time.Second, "the run's volatile overlay", func() bool { _, err := os.Stat(mark); return err == nil })
	var pids []string
	waitFor(t, 10*time.Second, "the run's sleep in the VPS's cgroup", func() bool {
		pids = cgroupProcs(t, "193")
		return len(pids) > 0
	})
	cmd.Process.Kill()
	cmd.Wait()
	// The killed run's VPS dies with it: its init had the run's death as its own.
	waitFor(t, 10*time.Second, "the killed run's VPS to die", func() bool {
		for _, p := range pids {
			if _, err := os.Stat("/proc/" + p); err == nil {
				return false
			}
		}
		return true
	})
	if _, err := os.Stat(mark); err != nil {
		t.Fatalf("the volatile mark is gone already (%v): this test no longer tests anything", err)
	}
	must(t, "start", "193")
	if out := strings.TrimSpace(must(t, "exec", "193", "--", "sh", "-c", "grep -c fsync=volatile /proc/mounts || true")); out != "0" {
		t.Fatalf("the VPS booted on a volatile overlay again: %q", out)
	}
	must(t, "stop", "--kill", "193")
	must(t, "destroy", "193")
}

// cgroupProcs lists the processes in VPS id's group (its pids hierarchy on cgroup v1, its one
// group on v2), including those of its subgroups.
func cgroupProcs(t testing.TB, id string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(groupDir("pids", id), func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Name() == "cgroup.procs" {
			if b, err := os.ReadFile(p); err == nil {
				out = append(out, strings.Fields(string(b))...)
			}
		}
		return nil
	})
	return out
}

// TestMonitorLeavesTakenOverVPS: a monitor whose VPS's init has died cleans up only if the
// run state is still its own. Were it not (a command took the VPS over meanwhile, and may
// have booted it again), removing "its" groups would kill the new boot. Here the run state is
// made to name another monitor and the init is killed behind vpsctl's back: the monitor must
// exit leaving the groups and the run state alone; the next command repairs.
func TestMonitorLeavesTakenOverVPS(t *testing.T) {
	const id = "194"
	checkClean(t, id)
	must(t, "create", id, "--template", "busybox")
	defer vpsctl(t, "destroy", "--force", id)
	must(t, "start", id)
	s := status(t, id)
	runFile := filepath.Join(root, "vps", id, "run.json")
	b, err := os.ReadFile(runFile)
	if err != nil {
		t.Fatal(err)
	}
	foreign := strings.Replace(string(b), fmt.Sprintf(`"monitor_pid":%d`, s.MonitorPID), `"monitor_pid":1`, 1)
	if foreign == string(b) {
		t.Fatalf("run.json does not name monitor %d: %s", s.MonitorPID, b)
	}
	if err := os.WriteFile(runFile, []byte(foreign), 0o600); err != nil {
		t.Fatal(err)
	}
	syscall.Kill(s.InitPID, syscall.SIGKILL)
	waitFor(t, 10*time.Second, "the monitor to exit", func() bool { return syscall.Kill(s.MonitorPID, 0) != nil })
	if got, _ := os.ReadFile(runFile); string(got) != foreign {
		t.Fatalf("the monitor rewrote or removed a run state that was not its own: %q", got)
	}
	// Where systemd places the groups, they go with their scope once no process is left in it
	// (systemd's doing: a new boot would have its monitor and init there).
	if len(groupDirs(id)) == 0 && !(cgroupV2() && systemdHost()) {
		t.Fatal("the monitor removed the groups of a VPS whose run state was not its own")
	}
	// The next command repairs: the VPS is stopped, its groups gone, and it boots again.
	must(t, "start", id)
	must(t, "stop", "--kill", id)
	must(t, "destroy", id)
}
