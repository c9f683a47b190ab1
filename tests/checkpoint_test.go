package tests

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// readCount reads the counter the test's loop keeps in /count (replaced by rename, so never
// seen half-written).
func readCount(t *testing.T, id string) int {
	t.Helper()
	r := vpsctl(t, "exec", id, "--", "cat", "/count")
	if r.code != 0 {
		return -1 // the loop has not written it yet
	}
	n, err := strconv.Atoi(strings.TrimSpace(r.out))
	if err != nil {
		t.Fatalf("count %q: %v", r.out, err)
	}
	return n
}

// TestCheckpointRestore checkpoints a VPS with a user namespace, an idmapped overlay root, a
// cgroup with limits and a routed address, and restores it: the counter loop continues (not
// restarted), hostname, limit and address come back, and the restored VPS still reboots.
func TestCheckpointRestore(t *testing.T) {
	const id = "191"
	checkClean(t, id)
	must(t, "create", id, "--template", "busybox", "--hostname", "ck", "--ipadd", "198.18.0.191", "--memory", "128M")
	must(t, "start", id)
	must(t, "exec", id, "--", "sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /count.new; mv /count.new /count; sleep 0.1; done >/dev/null 2>&1 &")

	chk := must(t, "checkpoint", "--check", id)
	if !strings.Contains(chk, "blockers: none") || !strings.Contains(chk, "4.") {
		t.Fatalf("pre-flight:\n%s", chk)
	}
	waitFor(t, 10*time.Second, "the counter to run", func() bool { return readCount(t, id) > 5 })
	initVPSPids := must(t, "exec", id, "--", "sh", "-c", "ps -o pid,args | grep -v 'ps -o' | grep -v grep")

	must(t, "checkpoint", id)
	if s := status(t, id); s.State != "stopped" {
		t.Fatalf("after checkpoint: %+v", s)
	}
	b, err := os.ReadFile(filepath.Join(root, "vps", id, "private", "count"))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	time.Sleep(1500 * time.Millisecond)
	must(t, "restore", id)
	time.Sleep(time.Second)
	n := readCount(t, id)
	if n <= a || n > a+40 {
		t.Fatalf("count after restore = %d, dumped at %d: not continued", n, a)
	}
	// LXCFS's views, host mounts the dump leaves out, are bound again.
	if s := lxcfsState(t, id); s != "live" {
		t.Fatalf("after restore: lxcfs %q, want live", s)
	}
	if got := meminfoKB(t, id, "MemTotal"); got != 128*1024 {
		t.Fatalf("after restore: MemTotal %d kB, want the VPS's 128M", got)
	}
	if got := strings.TrimSpace(must(t, "exec", id, "--", "hostname")); got != "ck" {
		t.Fatalf("hostname = %q", got)
	}
	if got := must(t, "exec", id, "--", "sh", "-c", "ps -o pid,args | grep -v 'ps -o' | grep -v grep"); !samePIDs(initVPSPids, got) {
		t.Fatalf("VPS PIDs changed:\nbefore %s\nafter  %s", initVPSPids, got)
	}
	if got := stats(t, id).Beancounters["physpages"].Limit; got != 128<<20/4096 {
		t.Fatalf("memory limit after restore: %d pages", got)
	}
	if out := must(t, "exec", id, "--", "ip", "-o", "addr"); !strings.Contains(out, "198.18.0.191") {
		t.Fatalf("address after restore:\n%s", out)
	}
	if r := vpsctl(t, "exec", id, "--", "cat", "/proc/self/uid_map"); !strings.Contains(r.out, "1000000") && !strings.Contains(r.out, "10") {
		t.Fatalf("uid map after restore: %q", r.out)
	}

	// Errors: stopped → 31, over a running VPS → 32, a missing image → 21 and nothing changes.
	dir := filepath.Join(workDir, "ck-"+id)
	must(t, "checkpoint", "--leave-running", "--dir", dir, id)
	if s := status(t, id); s.State != "running" {
		t.Fatal("--leave-running stopped the VPS")
	}
	if s := lxcfsState(t, id); s != "live" {
		t.Fatalf("after checkpoint --leave-running: lxcfs %q, want live", s)
	}
	expectCode(t, 32, "restore", id, "--dir", dir)
	must(t, "stop", "--kill", id)
	expectCode(t, 31, "checkpoint", id)
	expectCode(t, 21, "restore", id, "--dir", filepath.Join(workDir, "nonexistent"))
	if s := status(t, id); s.State != "stopped" {
		t.Fatal("a failed restore changed the state")
	}
	var res struct {
		ID      uint32  `json:"id"`
		Dir     string  `json:"dir"`
		InitPID int     `json:"init_pid"`
		Bytes   int64   `json:"bytes"`
		Seconds float64 `json:"seconds"`
	}
	if err := json.Unmarshal([]byte(must(t, "restore", id, "--dir", dir, "--format", "json")), &res); err != nil {
		t.Fatalf("restore --format json: %v", err)
	}
	old := status(t, id).InitPID
	if res.Dir != dir || res.InitPID != old || res.Bytes <= 0 || res.Seconds <= 0 {
		t.Errorf("restore --format json = %+v; want dir %s, init PID %d, a size and a time", res, dir, old)
	}
	vpsctl(t, "exec", id, "--", "reboot")
	waitFor(t, 20*time.Second, "the restored VPS to reboot", func() bool {
		s := status(t, id)
		return s.State == "running" && s.InitPID != old && s.InitPID > 0
	})
	// suspend --to-disk / resume
	must(t, "suspend", "--to-disk", id)
	if got := strings.TrimSpace(must(t, "status", id)); got != "VPS "+id+" exist stopped suspended" {
		t.Fatalf("status after suspend --to-disk: %q", got)
	}
	must(t, "resume", id)
	if s := status(t, id); s.State != "running" {
		t.Fatalf("resume did not restore: %+v", s)
	}
	must(t, "stop", "--kill", id)
}

// TestCheckpointMove moves a VPS between two state roots (two hosts): checkpoint on one, copy
// the private area and the image, restore on the other.
func TestCheckpointMove(t *testing.T) {
	const id = "192"
	checkClean(t, id)
	must(t, "create", id, "--template", "busybox", "--hostname", "mover")
	must(t, "start", id)
	must(t, "exec", id, "--", "sh", "-c", "echo moved > /marker; sleep 1000 >/dev/null 2>&1 &")
	must(t, "checkpoint", id)
	// The second "host": its own state root with the same template and the same VPS config.
	root2 := filepath.Join(workDir, "state2")
	v2 := func(args ...string) result {
		return vpsctlEnv(t, nil, append([]string{"--root", root2}, args...)...)
	}
	t.Cleanup(func() { v2("destroy", "--force", id); v2("lxcfs", "stop") })
	if r := v2("template", "build", "busybox"); r.code != 0 {
		t.Fatalf("template on the second root: %+v", r)
	}
	if r := v2("create", id, "--template", "busybox", "--hostname", "mover"); r.code != 0 {
		t.Fatalf("create on the second root: %+v", r)
	}
	for _, d := range []string{"private", "checkpoint"} {
		os.RemoveAll(filepath.Join(root2, "vps", id, d))
		if out, err := execCmd("cp", "-a", filepath.Join(root, "vps", id, d), filepath.Join(root2, "vps", id, d)); err != nil {
			t.Fatalf("copy %s: %v %s", d, err, out)
		}
	}
	must(t, "destroy", id) // gone from the first host
	if r := v2("restore", id); r.code != 0 {
		t.Fatalf("restore on the second root: %+v", r)
	}
	if r := v2("exec", id, "--", "cat", "/marker"); strings.TrimSpace(r.out) != "moved" {
		t.Fatalf("marker on the second root: %+v", r)
	}
	if r := v2("exec", id, "--", "pidof", "sleep"); r.code != 0 {
		t.Fatalf("the sleeping process did not move: %+v", r)
	}
	if r := v2("destroy", "--force", id); r.code != 0 {
		t.Fatalf("destroy on the second root: %+v", r)
	}
}

// samePIDs checks that init and the counter loop have the same VPS PIDs in two ps outputs.
func samePIDs(a, b string) bool {
	pidOf := func(s, marker string) string {
		for _, l := range strings.Split(s, "\n") {
			if f := strings.Fields(l); len(f) > 1 && strings.Contains(l, marker) && !strings.Contains(l, "grep") {
				return f[0]
			}
		}
		return ""
	}
	for _, m := range []string{" init", "i=$((i+1))"} {
		if pa := pidOf(a, m); pa == "" || pa != pidOf(b, m) {
			return false
		}
	}
	return true
}
