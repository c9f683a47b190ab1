package cgroup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// newV2 returns a fs2 group below testParent in the real cgroup2 tree.
func newV2(t *testing.T, name string) Manager {
	mount := v2Mount(t)
	return newGroup(t, name, func(rel string) (Manager, error) { return newV2At(mount, rel) })
}

func TestFS2Lifecycle(t *testing.T) {
	m := newV2(t, "g2")
	rel := testParent + "/g2"
	if m.Path() != rel || !m.Exists() || m.Paths()[""] != filepath.Join(v2Mount(t), rel) {
		t.Fatalf("Path %q, Paths %v, Exists %v", m.Path(), m.Paths(), m.Exists())
	}
	if err := m.Create(); err != nil {
		t.Fatalf("second Create: %v", err)
	}
	if p, err := m.Populated(); err != nil || p {
		t.Fatalf("empty group: Populated %v, %v", p, err)
	}

	// Start a process directly inside through clone3(CLONE_INTO_CGROUP).
	fd, err := m.CgroupFD()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sleep", "30")
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	err = cmd.Start()
	syscall.Close(fd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	pid := cmd.Process.Pid
	lines, err := readProcCgroup(pid)
	if err != nil {
		t.Fatal(err)
	}
	if g, err := groupIn(lines, ""); err != nil || g != rel {
		t.Errorf("cgroup2 group of %d = %q, %v; want %q", pid, g, err, rel)
	}

	// A second process through Apply, in a subgroup.
	sub, err := newV2At(v2Mount(t), rel+"/sub")
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Create(); err != nil {
		t.Fatal(err)
	}
	cmd2 := start(t, sub, "exec sleep 30")
	if pids, err := m.Pids(); err != nil || !slices.Equal(pids, []int{pid, cmd2.Process.Pid}) && !slices.Equal(pids, []int{cmd2.Process.Pid, pid}) {
		t.Errorf("Pids = %v, %v; want %d and %d", pids, err, pid, cmd2.Process.Pid)
	}
	if p, err := m.Populated(); err != nil || !p {
		t.Errorf("Populated = %v, %v", p, err)
	}
	if st, err := m.Stats(); err != nil || st.Procs != 2 || st.Counters[0].Limit != Unlimited {
		t.Errorf("Stats = %+v, %v", st, err)
	}

	if err := m.Freeze(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if f, err := m.Frozen(); err != nil || !f {
		t.Errorf("Frozen = %v, %v after Freeze", f, err)
	}
	for _, p := range []int{pid, cmd2.Process.Pid} {
		// v2 parks frozen tasks in do_freezer_trap, inlined in get_signal. cgroup.events
		// says frozen as soon as a task has counted itself in, a moment before it goes to
		// sleep (its wchan reads "0" while it is still on a CPU), so look until it is parked.
		var w string
		parked := func() bool { w = wchan(p); return strings.Contains(w, "freez") || w == "get_signal" }
		if poll(2*time.Second, func() (bool, error) { return parked(), nil }) != nil {
			t.Errorf("frozen task %d sleeps in %q, want the freezer", p, w)
		}
	}
	if err := m.Thaw(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "thaw", func() bool { f, _ := m.Frozen(); return !f })

	if err := m.WaitEmpty(50 * time.Millisecond); !errors.Is(err, ErrTimeout) {
		t.Errorf("WaitEmpty with live tasks: %v, want ErrTimeout", err)
	}
	if err := m.Destroy(100 * time.Millisecond); !errors.Is(err, ErrTimeout) {
		t.Errorf("Destroy of a busy group: %v, want ErrTimeout", err)
	}
	if err := m.Kill(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := waitCmd(t, cmd, 5*time.Second); !killedBy(err, syscall.SIGKILL) {
		t.Errorf("sleep exited with %v, want SIGKILL", err)
	}
	if err := m.Destroy(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if m.Exists() || sub.Exists() {
		t.Error("Exists after Destroy")
	}
	if err := m.WaitEmpty(time.Second); err != nil {
		t.Errorf("WaitEmpty on a removed group: %v", err)
	}
}

func TestFS2WaitEmptyInotify(t *testing.T) {
	m := newV2(t, "wait")
	cmd := start(t, m, "exec sleep 0.3")
	t0 := time.Now()
	if err := m.WaitEmpty(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if p, _ := m.Populated(); p {
		t.Error("WaitEmpty returned while populated")
	}
	t.Logf("emptied after %v", time.Since(t0))
	_ = waitCmd(t, cmd, 5*time.Second)
}

func TestFS2KillDoubleFork(t *testing.T) {
	m := newV2(t, "kill")
	cmd := start(t, m, "sh -c 'sleep 60 & sleep 60 &'; (sh -c 'sleep 60 &' &); "+
		"sh -c 'while :; do sleep 60 & sleep 0.01; done' & sleep 60")
	waitFor(t, 10*time.Second, "orphans running", func() bool { p, _ := m.Pids(); return len(p) >= 6 })
	pids, _ := m.Pids()
	if err := m.Kill(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if p, err := m.Populated(); err != nil || p {
		t.Fatalf("after Kill: Populated %v, %v", p, err)
	}
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("pid %d survived Kill", pid)
		}
	}
	_ = waitCmd(t, cmd, 5*time.Second)
}

// TestFS2KillWithoutCgroupKill runs the freezer fallback used on kernels
// older than 5.14, by giving fs2 a group whose cgroup.kill it cannot find.
func TestFS2FreezeKillFallback(t *testing.T) {
	m := newV2(t, "fallback")
	cmd := start(t, m, "sh -c 'sleep 60 &'; while :; do sleep 60 & sleep 0.01; done")
	waitFor(t, 10*time.Second, "children running", func() bool { p, _ := m.Pids(); return len(p) >= 4 })
	m2 := m.(*fs2)
	member := memberFunc(m2.rel, func(l ProcCgroupLine) bool { return l.ID == 0 })
	if member(os.Getpid()) {
		t.Fatal("the test process counts as a member")
	}
	if err := freezeKill(m2, member, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if p, err := m.Populated(); err != nil || p {
		t.Fatalf("after freezeKill: Populated %v, %v", p, err)
	}
	if err := waitCmd(t, cmd, 5*time.Second); !killedBy(err, syscall.SIGKILL) {
		t.Errorf("shell exited with %v, want SIGKILL", err)
	}
}

// fakeV2 builds a directory standing in for a cgroup2 hierarchy, with the
// files the kernel would provide for root, "vpsctl" and "vpsctl/101".
func fakeV2(t *testing.T) (root string, m *fs2) {
	root = t.TempDir()
	files := map[string]string{
		"cgroup.controllers":                "cpuset cpu io memory hugetlb pids rdma misc",
		"cgroup.subtree_control":            "",
		"vpsctl/cgroup.controllers":         "cpu io memory pids",
		"vpsctl/cgroup.subtree_control":     "memory io",
		"vpsctl/101/cgroup.controllers":     "cpu io memory pids",
		"vpsctl/101/cgroup.subtree_control": "",
		"vpsctl/101/cgroup.procs":           "",
		"vpsctl/101/cgroup.events":          "populated 0\nfrozen 0\n",
		"vpsctl/101/memory.max":             "max",
		"vpsctl/101/memory.swap.max":        "max",
		"vpsctl/101/memory.current":         "8192000",
		"vpsctl/101/memory.peak":            "16384000",
		"vpsctl/101/memory.swap.current":    "4096",
		"vpsctl/101/memory.events":          "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n",
		"vpsctl/101/memory.swap.events":     "high 0\nmax 2\nfail 0\n",
		"vpsctl/101/cpu.max":                "max 100000",
		"vpsctl/101/cpu.weight":             "100",
		"vpsctl/101/cpu.stat":               "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 10\nnr_throttled 4\nthrottled_usec 7\n",
		"vpsctl/101/pids.max":               "max",
		"vpsctl/101/pids.current":           "5",
		"vpsctl/101/pids.peak":              "9",
		"vpsctl/101/pids.events":            "max 2\n",
		"vpsctl/101/io.max":                 "",
		"vpsctl/101/io.weight":              "default 100",
		"vpsctl/101/io.bfq.weight":          "default 100",
		"vpsctl/101/sub/cgroup.procs":       "",
		"vpsctl/101/sub/cgroup.events":      "populated 0\nfrozen 0\n",
	}
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mg, err := newV2At(root, "vpsctl/101")
	if err != nil {
		t.Fatal(err)
	}
	m = mg.(*fs2)
	m.disks = func() ([]string, error) { return []string{"8:0"}, nil }
	return root, m
}

func TestFS2LimitFiles(t *testing.T) {
	root, m := fakeV2(t)
	if err := m.Create(); err != nil {
		t.Fatal(err)
	}
	for dir, want := range map[string]string{root: "+cpuset +cpu +io +memory +pids", root + "/vpsctl": "+cpu +pids"} {
		if got := read(t, dir, "cgroup.subtree_control"); got != want {
			t.Errorf("%s/cgroup.subtree_control = %q, want %q", dir, got, want)
		}
	}
	err := m.Set(&Resources{
		MemoryBytes: ptr[int64](512 << 20), SwapBytes: ptr[int64](256 << 20),
		CPUs: ptr(2), CPULimitPct: ptr(150), CPUUnits: ptr(2000),
		NumProc: ptr[int64](300), IOWeight: ptr(500), IOLimitBps: ptr[int64](10 << 20),
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"memory.max":      fmt.Sprint(512 << 20),
		"memory.swap.max": fmt.Sprint(256 << 20),
		"cpu.max":         "150000 100000",
		"cpu.weight":      "200",
		"pids.max":        "300",
		"io.weight":       "default 500",
		"io.bfq.weight":   "500",
		"io.max":          "8:0 rbps=10485760 wbps=10485760",
	}
	check := func() {
		t.Helper()
		for f, v := range want {
			if got := read(t, m.dir, f); got != v {
				t.Errorf("%s = %q, want %q", f, got, v)
			}
		}
	}
	check()

	st, err := m.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.CPUUsageNs != 1500000 || st.MemoryBytes != 8192000 || st.MemoryMaxBytes != 16384000 || st.SwapBytes != 4096 {
		t.Errorf("stats %+v", st)
	}
	wantC := []Counter{
		{"numproc", 5, 9, 300, 300, 2},
		{"physpages", 2000, 4000, 131072, 131072, 3},
		{"swappages", 1, 1, 65536, 65536, 2},
		{"cpu", 1500000, 1500000, 150, 150, 4},
	}
	if !slices.Equal(st.Counters, wantC) {
		t.Errorf("counters\n got %+v\nwant %+v", st.Counters, wantC)
	}
	checkFailures(t, m, st)

	// Unlimited; files a hierarchy lacks are skipped where documented.
	for _, f := range []string{"memory.swap.max", "io.bfq.weight", "io.weight"} {
		if err := os.Remove(filepath.Join(m.dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	err = m.Set(&Resources{MemoryBytes: ptr[int64](-1), SwapBytes: ptr[int64](-1), CPUs: ptr(0), CPULimitPct: ptr(0),
		NumProc: ptr[int64](-1), IOWeight: ptr(100), IOLimitBps: ptr[int64](0)})
	if err != nil {
		t.Fatal(err)
	}
	want = map[string]string{"memory.max": "max", "cpu.max": "max 100000", "pids.max": "max", "io.max": "8:0 rbps=max wbps=max"}
	check()
	if st, err := m.Stats(); err != nil || st.Counters[2].Limit != Unlimited || st.Counters[3].Limit != Unlimited {
		t.Errorf("stats without swap file: %+v, %v", st, err)
	}

	// A missing controller file is an error naming it.
	if err := os.Remove(filepath.Join(m.dir, "pids.max")); err != nil {
		t.Fatal(err)
	}
	err = m.Set(&Resources{NumProc: ptr[int64](5)})
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "pids.max") {
		t.Errorf("Set without pids.max: %v", err)
	}
	if err := m.Set(&Resources{IOWeight: ptr(2000)}); !errors.Is(err, ErrBadValue) {
		t.Errorf("ioweight 2000: %v, want ErrBadValue", err)
	}
}

// deviceScript exits 0 only if the rules {c 1:3 rwm, c 1:5 r} hold:
// /dev/null usable, /dev/zero readable but not writable, /dev/urandom denied.
const deviceScript = "echo x >/dev/null || exit 2; head -c1 /dev/zero >/dev/null || exit 3; " +
	"(echo x >/dev/zero) 2>/dev/null && exit 4; head -c1 /dev/urandom >/dev/null 2>&1 && exit 5; exit 0"

var deviceRules = []DeviceRule{{'c', 1, 3, "rwm"}, {'c', 1, 5, "r"}}

func TestFS2DevicesBPF(t *testing.T) {
	m := newV2(t, "dev")
	for round := range 2 { // the second Set replaces the first program
		if err := m.Set(&Resources{Devices: deviceRules}); err != nil {
			t.Fatal(err)
		}
		cmd := start(t, m, deviceScript)
		if err := waitCmd(t, cmd, 10*time.Second); err != nil {
			t.Fatalf("round %d: device filter not enforced as expected: %v", round, err)
		}
	}
	if n := attachedDevicePrograms(t, m.Paths()[""]); n != 1 {
		t.Errorf("%d device programs attached, want 1 (the old one detached)", n)
	}
	// Allow all again: /dev/urandom opens.
	if err := m.Set(&Resources{Devices: []DeviceRule{{'a', -1, -1, "rwm"}}}); err != nil {
		t.Fatal(err)
	}
	if err := waitCmd(t, start(t, m, "head -c1 /dev/urandom >/dev/null"), 10*time.Second); err != nil {
		t.Fatalf("allow-all filter: %v", err)
	}
}

func attachedDevicePrograms(t *testing.T, dir string) int {
	t.Helper()
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	q, err := link.QueryPrograms(link.QueryOptions{Target: int(f.Fd()), Attach: ebpf.AttachCGroupDevice})
	if err != nil {
		t.Fatal(err)
	}
	return len(q.Programs)
}
