package tests

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

type beancounter struct {
	Held, MaxHeld, Barrier, Limit, Failcnt uint64
}

type statsJSON struct {
	Processes    uint64                 `json:"processes"`
	MemoryBytes  uint64                 `json:"memory_bytes"`
	Beancounters map[string]beancounter `json:"beancounters"`
}

func stats(t *testing.T, id string) statsJSON {
	t.Helper()
	var s statsJSON
	if err := json.Unmarshal([]byte(must(t, "stats", id, "--format", "json")), &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func cgroupFile(t *testing.T, ctrl, id, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(groupDir(ctrl, id), file))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestCgroupLimits(t *testing.T) {
	checkClean(t, "121")
	must(t, "create", "121", "--template", "busybox", "--memory", "64M", "--numproc", "40", "--cpulimit", "50", "--cpuunits", "500")
	must(t, "start", "121")
	s := stats(t, "121")
	if s.Beancounters["numproc"].Limit != 40 || s.Beancounters["physpages"].Limit != 64<<20/4096 || s.Beancounters["cpu"].Limit != 50 {
		t.Fatalf("limits: %+v", s.Beancounters)
	}
	if s.Processes < 1 || s.Processes > 10 || s.MemoryBytes == 0 {
		t.Fatalf("held values: %+v", s)
	}
	if cgroupV2() {
		if got := cgroupFile(t, "", "121", "cpu.weight"); got != "50" {
			t.Fatalf("cpu.weight = %s, want 50 for cpuunits 500", got)
		}
		if got := cgroupFile(t, "", "121", "memory.max"); got != strconv.Itoa(64<<20) {
			t.Fatalf("memory.max = %s, want 64M", got)
		}
	} else if got := cgroupFile(t, "cpu", "121", "cpu.shares"); got != "512" {
		t.Fatalf("cpu.shares = %s, want 512 for cpuunits 500", got)
	}

	t.Run("fork bomb is contained by numproc", func(t *testing.T) {
		r := vpsctl(t, "exec", "121", "--", "sh", "-c", "i=0; while [ $i -lt 100 ]; do sleep 60 >/dev/null 2>&1 & i=$((i+1)); done; wait")
		if r.code == 0 {
			t.Fatal("100 forks succeeded under numproc 40")
		}
		if f := stats(t, "121").Beancounters["numproc"].Failcnt; f == 0 {
			t.Fatal("numproc failcnt is 0")
		}
		// The host still forks fine; the VPS's sleepers are ended by killing them inside.
		must(t, "exec", "121", "--", "true")
		vpsctl(t, "exec", "121", "--", "killall", "sleep")
		waitFor(t, 10*time.Second, "the sleepers to end", func() bool { return stats(t, "121").Beancounters["numproc"].Held < 10 })
		// vzlist-style columns show the same counters.
		out := must(t, "list", "-o", "id,numproc.l,numproc.f,physpages.l")
		var row []string
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) == 4 && f[0] == "121" {
				row = f
			}
		}
		if row == nil || row[1] != "40" || row[2] == "0" || row[3] != strconv.Itoa(64<<20/4096) {
			t.Errorf("list -o id,numproc.l,numproc.f,physpages.l:\n%s", out)
		}
		expectCode(t, 20, "list", "-o", "id,nosuchfield")
	})

	t.Run("memory hog is killed inside the VPS", func(t *testing.T) {
		r := vpsctl(t, "exec", "121", "--", "sh", "-c", `x=$(head -c 314572800 /dev/zero | tr "\0" a); echo survived`)
		if r.code == 0 || strings.Contains(r.out, "survived") {
			t.Fatalf("300M in a 64M VPS: exit %d, %q", r.code, r.out)
		}
		if f := stats(t, "121").Beancounters["physpages"].Failcnt; f == 0 {
			t.Fatal("physpages failcnt is 0")
		}
		if status(t, "121").State != "running" {
			t.Fatal("the VPS died with its memory hog")
		}
	})

	t.Run("set applies live, saves only with --save", func(t *testing.T) {
		must(t, "set", "121", "--numproc", "100")
		if got := cgroupFile(t, "pids", "121", "pids.max"); got != "100" {
			t.Fatalf("pids.max = %s, want 100 live", got)
		}
		must(t, "set", "121", "--cpulimit", "25", "--save")
		expectCode(t, 21, "set", "121", "--memory", "lots")
		if got := cgroupFile(t, "pids", "121", "pids.max"); got != "100" {
			t.Fatalf("a refused set changed pids.max to %s", got)
		}
		must(t, "restart", "121", "--timeout", "10s")
		if got := cgroupFile(t, "pids", "121", "pids.max"); got != "40" {
			t.Fatalf("pids.max after restart = %s, want the saved 40", got)
		}
		if cgroupV2() {
			if got := cgroupFile(t, "", "121", "cpu.max"); got != "25000 100000" {
				t.Fatalf("cpu.max after restart = %s, want the saved 25%%", got)
			}
		} else if got := cgroupFile(t, "cpu", "121", "cpu.cfs_quota_us"); got != "25000" {
			t.Fatalf("cfs quota after restart = %s, want the saved 25%%", got)
		}
	})

	t.Run("suspend and resume", func(t *testing.T) {
		must(t, "suspend", "121")
		if got := strings.TrimSpace(must(t, "status", "121")); got != "VPS 121 exist running suspended" {
			t.Fatalf("status = %q", got)
		}
		if cgroupV2() {
			if got := cgroupFile(t, "", "121", "cgroup.freeze"); got != "1" {
				t.Fatalf("cgroup.freeze = %s", got)
			}
		} else if got := cgroupFile(t, "freezer", "121", "freezer.state"); got != "FROZEN" {
			t.Fatalf("freezer.state = %s", got)
		}
		// v1 freezes tasks in uninterruptible sleep (D); v2 traps them like a stop signal
		// (S), and the group's cgroup.events says when every one is.
		if cgroupV2() {
			if ev := cgroupFile(t, "", "121", "cgroup.events"); !strings.Contains(ev, "frozen 1") {
				t.Fatalf("cgroup.events: %q, want frozen 1", ev)
			}
		} else if b, _ := os.ReadFile("/proc/" + strconv.Itoa(status(t, "121").InitPID) + "/status"); !strings.Contains(string(b), "State:\tD") {
			t.Fatalf("init not frozen:\n%s", b)
		}
		r := expectCode(t, 31, "exec", "121", "--", "true")
		if !strings.Contains(r.err, "suspended") {
			t.Fatalf("message does not say suspended: %s", r.err)
		}
		expectCode(t, 31, "suspend", "121")
		must(t, "resume", "121")
		expectCode(t, 31, "resume", "121")
		must(t, "exec", "121", "--", "true")
	})

	t.Run("init killed from the host: cleaned up without vpsctl", func(t *testing.T) {
		syscall.Kill(status(t, "121").InitPID, syscall.SIGKILL)
		waitFor(t, 10*time.Second, "status stopped", func() bool { return status(t, "121").State == "stopped" })
		waitFor(t, 10*time.Second, "the group to go", func() bool {
			_, err := os.Stat(groupDir("pids", "121"))
			return os.IsNotExist(err) && len(ourMonitors()) == 0
		})
	})
}

// TestSpareGroups: after a VPS's groups are removed, the background remover leaves spare groups
// beside them (cgroup v1: at most two per hierarchy, none in a hybrid host's cgroup2 tree),
// empty; the next boot takes one (the same group, renamed) instead of making its own.
func TestSpareGroups(t *testing.T) {
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		t.Skip("cgroup v2 host: no spare groups (cgroup2 cannot rename a group)")
	}
	checkClean(t)
	slot := func(i int) string { return "/sys/fs/cgroup/pids/vpsctl/.spare-" + strconv.Itoa(i) }
	ino := func(p string) uint64 {
		var st syscall.Stat_t
		if syscall.Stat(p, &st) != nil {
			return 0
		}
		return st.Ino
	}
	must(t, "run", "--rm", "--template", "busybox", "--", "/bin/true")
	deadline := time.Now().Add(10 * time.Second)
	for ino(slot(0)) == 0 || ino(slot(1)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no spare groups 10 s after a run")
		}
		time.Sleep(10 * time.Millisecond)
	}
	spares := map[string]bool{strconv.FormatUint(ino(slot(0)), 10): true, strconv.FormatUint(ino(slot(1)), 10): true}
	out := strings.TrimSpace(must(t, "run", "--rm", "--template", "busybox", "--", "/bin/stat", "-c", "%i", "/sys/fs/cgroup/pids"))
	if !spares[out] {
		t.Fatalf("the VPS's pids group is inode %s, not one of the spares %v", out, spares)
	}
	waitTmpEmpty(t, 10*time.Second)

	perHierarchy := map[string]int{}
	all, _ := filepath.Glob("/sys/fs/cgroup/*/vpsctl/.spare-*")
	for _, s := range all {
		h := filepath.Base(filepath.Dir(filepath.Dir(s)))
		perHierarchy[h]++
		if procs, err := os.ReadFile(filepath.Join(s, "cgroup.procs")); err != nil || len(procs) != 0 {
			t.Errorf("spare %s: processes %q (%v)", s, procs, err)
		}
		if sub, _ := filepath.Glob(filepath.Join(s, "*", "cgroup.procs")); len(sub) != 0 {
			t.Errorf("spare %s has subgroups %v", s, sub)
		}
	}
	for h, n := range perHierarchy {
		if n > 2 || h == "unified" {
			t.Errorf("%s: %d spare groups", h, n)
		}
	}
	if perHierarchy["memory"] == 0 || perHierarchy["pids"] == 0 {
		t.Errorf("spares per hierarchy: %v", perHierarchy)
	}
}
