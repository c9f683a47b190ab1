package cgroup

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestNewRefusesBadPaths(t *testing.T) {
	for _, rel := range []string{"", "/abs", "../up", "a/../../b"} {
		if _, err := New(rel); !errors.Is(err, ErrBadValue) {
			t.Errorf("New(%q): %v, want ErrBadValue", rel, err)
		}
		if _, err := newV2At("/sys/fs/cgroup", rel); !errors.Is(err, ErrBadValue) {
			t.Errorf("newV2At(%q): %v, want ErrBadValue", rel, err)
		}
	}
}

func TestFS1Lifecycle(t *testing.T) {
	m := newGroup(t, "g1", New)
	m1 := asFS1(t, m)
	rel := testParent + "/g1"
	if m.Path() != rel || !m.Exists() {
		t.Fatalf("Path %q, Exists %v", m.Path(), m.Exists())
	}
	paths := m.Paths()
	for _, c := range []string{"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "name=systemd"} {
		if _, err := m1.dir(c); err != nil {
			continue // not mounted on this host
		}
		if fi, err := os.Stat(paths[c]); err != nil || !fi.IsDir() || !strings.HasSuffix(paths[c], "/"+rel) {
			t.Errorf("Paths()[%q] = %q: %v", c, paths[c], err)
		}
	}
	if err := m.Create(); err != nil {
		t.Fatalf("second Create: %v", err)
	}
	if dir, err := m1.dir("cpuset"); err == nil {
		if read(t, dir, "cpuset.cpus") == "" || read(t, dir, "cpuset.mems") == "" {
			t.Fatal("cpuset.cpus/mems left empty: the group would refuse tasks")
		}
	}
	if dir, hybrid := paths[unifiedName]; hybrid {
		fd, err := m.CgroupFD()
		if err != nil {
			t.Fatalf("CgroupFD on a hybrid host: %v", err)
		}
		var a, b unix.Stat_t
		unix.Fstat(fd, &a)
		unix.Close(fd)
		if err := unix.Stat(dir, &b); err != nil || a.Ino != b.Ino || a.Dev != b.Dev {
			t.Errorf("CgroupFD: not the group's unified directory %s (%v)", dir, err)
		}
	} else if _, err := m.CgroupFD(); !errors.Is(err, ErrNotSupported) {
		t.Errorf("CgroupFD on pure v1: %v, want ErrNotSupported", err)
	}
	for dir := range uniqueDirs(paths) {
		if s, _ := readFile(dir, "notify_on_release"); s == "1" {
			t.Errorf("%s/notify_on_release is 1", dir)
		}
	}

	if p, err := m.Populated(); err != nil || p {
		t.Fatalf("empty group: Populated %v, %v", p, err)
	}
	cmd := start(t, m, "exec sleep 30")
	pid := cmd.Process.Pid
	if g, err := ProcGroup(pid); err != nil || g != rel {
		t.Errorf("ProcGroup(%d) = %q, %v; want %q", pid, g, err, rel)
	}
	for c, dir := range paths {
		if !slices.Contains(strings.Fields(read(t, dir, "cgroup.procs")), fmt.Sprint(pid)) {
			t.Errorf("%s: pid %d not in %s/cgroup.procs", c, pid, dir)
		}
	}
	if pids, err := m.Pids(); err != nil || !slices.Equal(pids, []int{pid}) {
		t.Errorf("Pids = %v, %v; want [%d]", pids, err, pid)
	}
	if p, err := m.Populated(); err != nil || !p {
		t.Errorf("Populated = %v, %v", p, err)
	}

	if err := m.Freeze(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if f, err := m.Frozen(); err != nil || !f {
		t.Errorf("Frozen = %v, %v after Freeze", f, err)
	}
	// Since Linux 6.1 a task frozen while asleep keeps its wchan (it is only moved to
	// TASK_FROZEN, which /proc reports as D); a running one parks in the freezer.
	// A task that was running when the freeze began may still be on its way in: look,
	// bounded, until it is parked.
	var w, st string
	parked := func() bool {
		w, st = wchan(pid), procState(pid)
		return strings.Contains(w, "refrigerator") || strings.Contains(w, "freez") || st == "D"
	}
	if poll(2*time.Second, func() (bool, error) { return parked(), nil }) != nil {
		t.Errorf("frozen task sleeps in %q in state %q, want the freezer or D", w, st)
	}
	if err := m.Thaw(); err != nil {
		t.Fatal(err)
	}
	if f, err := m.Frozen(); err != nil || f {
		t.Errorf("Frozen = %v, %v after Thaw", f, err)
	}
	waitFor(t, 5*time.Second, "thawed task leaves the freezer", func() bool { return !strings.Contains(wchan(pid), "refrigerator") })

	if err := m.WaitEmpty(50 * time.Millisecond); !errors.Is(err, ErrTimeout) {
		t.Errorf("WaitEmpty with a live task: %v, want ErrTimeout", err)
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
	if m.Exists() {
		t.Error("Exists after Destroy")
	}
	if err := m.Destroy(time.Second); err != nil {
		t.Errorf("Destroy is not idempotent: %v", err)
	}
}

func uniqueDirs(m map[string]string) map[string]bool {
	out := map[string]bool{}
	for _, v := range m {
		out[v] = true
	}
	return out
}

func TestFS1SetReadBack(t *testing.T) {
	m := newGroup(t, "set", New)
	m1 := asFS1(t, m)
	// The throttle files list every whole disk.
	disks, err := wholeDisks()
	if err != nil || len(disks) == 0 {
		t.Fatalf("wholeDisks = %v, %v", disks, err)
	}
	var throttled []string
	for _, d := range disks {
		throttled = append(throttled, d+" 1048576")
	}
	slices.Sort(throttled)
	r := &Resources{
		MemoryBytes: ptr[int64](64 << 20), SwapBytes: ptr[int64](32 << 20),
		CPUs: ptr(1), CPULimitPct: ptr(50), CPUUnits: ptr(500),
		NumProc: ptr[int64](100), IOWeight: ptr(300), IOLimitBps: ptr[int64](1 << 20),
		Devices: []DeviceRule{{'c', 1, 3, "rwm"}, {'c', 5, -1, "rw"}},
	}
	if err := m.Set(r); err != nil {
		t.Fatal(err)
	}
	dir := func(c string) string { d, _ := m1.dir(c); return d }
	want := []struct{ ctrl, file, val string }{
		{"memory", "memory.limit_in_bytes", fmt.Sprint(64 << 20)},
		{"cpu", "cpu.cfs_quota_us", "50000"},
		{"cpu", "cpu.shares", "512"},
		{"pids", "pids.max", "100"},
		{"devices", "devices.list", "c 1:3 rwm\nc 5:* rw"},
	}
	if _, err := os.Stat(filepath.Join(dir("memory"), "memory.memsw.limit_in_bytes")); err == nil {
		want = append(want, struct{ ctrl, file, val string }{"memory", "memory.memsw.limit_in_bytes", fmt.Sprint(96 << 20)})
	}
	if _, err := os.Stat(filepath.Join(dir("blkio"), "blkio.bfq.weight")); err == nil {
		want = append(want, struct{ ctrl, file, val string }{"blkio", "blkio.bfq.weight", "300"})
	}
	check := func() {
		t.Helper()
		for _, w := range want {
			if got := read(t, dir(w.ctrl), w.file); got != w.val {
				t.Errorf("%s = %q, want %q", w.file, got, w.val)
			}
		}
	}
	check()
	for _, f := range []string{"blkio.throttle.read_bps_device", "blkio.throttle.write_bps_device"} {
		got := strings.Split(read(t, dir("blkio"), f), "\n")
		if slices.Sort(got); !slices.Equal(got, throttled) {
			t.Errorf("%s = %q, want %q", f, got, throttled)
		}
	}

	// Memory alone keeps the swap allowance, growing (memsw first) and
	// shrinking (limit first).
	for _, mb := range []int64{128, 16} {
		if err := m.Set(&Resources{MemoryBytes: ptr(mb << 20)}); err != nil {
			t.Fatal(err)
		}
		want = append(want[:0], struct{ ctrl, file, val string }{"memory", "memory.limit_in_bytes", fmt.Sprint(mb << 20)})
		if _, err := os.Stat(filepath.Join(dir("memory"), "memory.memsw.limit_in_bytes")); err == nil {
			want = append(want, struct{ ctrl, file, val string }{"memory", "memory.memsw.limit_in_bytes", fmt.Sprint((mb + 32) << 20)})
		}
		check()
	}
	// Unlimited everything.
	err = m.Set(&Resources{MemoryBytes: ptr[int64](-1), SwapBytes: ptr[int64](-1), CPUs: ptr(0), CPULimitPct: ptr(0),
		NumProc: ptr[int64](-1), IOLimitBps: ptr[int64](0), Devices: []DeviceRule{{'a', -1, -1, "rwm"}}})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := v1Limit(dir("memory"), "memory.limit_in_bytes"); err != nil || v != -1 {
		t.Errorf("memory limit %d, %v; want unlimited", v, err)
	}
	want = []struct{ ctrl, file, val string }{
		{"cpu", "cpu.cfs_quota_us", "-1"},
		{"pids", "pids.max", "max"},
		{"blkio", "blkio.throttle.read_bps_device", ""},
		{"devices", "devices.list", "a *:* rwm"},
	}
	check()

	// Values the kernel refuses come back naming the file: pids.max stops
	// at PID_MAX_LIMIT.
	err = m.Set(&Resources{NumProc: ptr[int64](1 << 40)})
	if !errors.Is(err, unix.EINVAL) || !strings.Contains(err.Error(), "pids.max") {
		t.Errorf("pids.max 2^40: %v, want EINVAL naming pids.max", err)
	}
	if err := m.Set(&Resources{CPUUnits: ptr(1)}); !errors.Is(err, ErrBadValue) {
		t.Errorf("cpuunits 1: %v, want ErrBadValue", err)
	}
}

func TestFS1Devices(t *testing.T) {
	m := newGroup(t, "dev", New)
	asFS1(t, m)
	if err := m.Set(&Resources{Devices: deviceRules}); err != nil {
		t.Fatal(err)
	}
	if err := waitCmd(t, start(t, m, deviceScript), 10*time.Second); err != nil {
		t.Fatalf("device allowlist not enforced as expected: %v", err)
	}
}

func TestFS1Stats(t *testing.T) {
	m := newGroup(t, "stats", New)
	asFS1(t, m)
	if err := m.Set(&Resources{NumProc: ptr[int64](50), MemoryBytes: ptr[int64](256 << 20)}); err != nil {
		t.Fatal(err)
	}
	// Burn some CPU, then hold ~8 MiB in tail's buffer (no newline in /dev/zero).
	start(t, m, "dd if=/dev/zero of=/dev/null bs=64k count=2000 2>/dev/null; head -c 8M /dev/zero | tail | sleep 30")
	var st *Stats
	waitFor(t, 10*time.Second, "tail holds 8 MiB", func() bool {
		var err error
		st, err = m.Stats()
		if err != nil {
			t.Fatal(err)
		}
		return st.MemoryBytes >= 8<<20 && st.Procs >= 3 // sh, tail, sleep (head may be gone)
	})
	if st.CPUUsageNs == 0 || st.MemoryMaxBytes < st.MemoryBytes {
		t.Errorf("stats %+v", st)
	}
	names := []string{}
	for _, c := range st.Counters {
		names = append(names, c.Resource)
	}
	if !slices.Equal(names, []string{"numproc", "physpages", "swappages", "cpu"}) {
		t.Fatalf("counters %v", names)
	}
	np, pp, cpu := st.Counters[0], st.Counters[1], st.Counters[3]
	if np.Held < 3 || np.MaxHeld < np.Held || np.Limit != 50 || np.Barrier != 50 || np.Failcnt != 0 {
		t.Errorf("numproc %+v", np)
	}
	if pp.Held < 2048 || pp.Limit != 65536 || pp.MaxHeld < pp.Held {
		t.Errorf("physpages %+v", pp)
	}
	if cpu.Held != st.CPUUsageNs || cpu.Limit != Unlimited {
		t.Errorf("cpu %+v", cpu)
	}
}

func TestFS1KillDoubleFork(t *testing.T) {
	m := newGroup(t, "kill", New)
	asFS1(t, m)
	// Orphans left by exited subshells (reparented away from the test),
	// and a loop that keeps forking while Kill runs.
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
	if f, err := m.Frozen(); err != nil || f {
		t.Errorf("group left frozen after Kill: %v, %v", f, err)
	}
}

func TestFS1ForkBomb(t *testing.T) {
	m := newGroup(t, "bomb", New)
	m1 := asFS1(t, m)
	const limit = 20
	if err := m.Set(&Resources{NumProc: ptr[int64](limit)}); err != nil {
		t.Fatal(err)
	}
	start(t, m, "b() { b & b & wait; }; b 2>/dev/null")
	pdir, _ := m1.dir("pids")
	waitFor(t, 20*time.Second, "pids.events max > 0", func() bool {
		ev, err := readKeyed(pdir, "pids.events")
		return err == nil && ev["max"] > 0
	})
	st, err := m.Stats()
	if err != nil {
		t.Fatal(err)
	}
	np := st.Counters[0]
	if np.Failcnt == 0 || np.Held > limit || np.MaxHeld > limit {
		t.Errorf("bomb not contained: numproc %+v, procs %d", np, st.Procs)
	}
	// The process count is a union over every hierarchy's cgroup.procs, which can list a
	// task that is exiting (a shell whose fork failed) a moment after the pids controller
	// released it: it must come back within the limit, bounded.
	waitFor(t, 5*time.Second, "procs within the limit", func() bool {
		st, err := m.Stats()
		return err == nil && st.Procs <= limit
	})
	// The host can still fork.
	if out, err := exec.Command("/bin/true").CombinedOutput(); err != nil {
		t.Fatalf("host fork: %v %s", err, out)
	}
	if err := m.Kill(10 * time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestFS1MemoryLimit(t *testing.T) {
	m := newGroup(t, "mem", New)
	m1 := asFS1(t, m)
	// Swap is left unlimited: memory+swap is charged first, and this kernel
	// keeps no failcnt for it, so a memsw limit would hide the hits.
	if err := m.Set(&Resources{MemoryBytes: ptr[int64](32 << 20), SwapBytes: ptr[int64](-1)}); err != nil {
		t.Fatal(err)
	}
	// tail keeps the whole newline-free input: 100 MiB against a 32 MiB
	// limit. Without swap it is OOM-killed (137); with swap it may finish.
	cmd := start(t, m, "head -c 100M /dev/zero | tail >/dev/null; exit $?")
	err := waitCmd(t, cmd, 60*time.Second)
	// The OOM killer picks tail (the shell exits 137) or, now and then, the shell itself.
	var ee *exec.ExitError
	if err != nil && !killedBy(err, syscall.SIGKILL) && (!errors.As(err, &ee) || ee.ExitCode() != 128+int(syscall.SIGKILL)) {
		t.Errorf("tail under a 32M limit: %v, want success or an OOM kill", err)
	}
	st, err := m.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if pp := st.Counters[1]; pp.Failcnt == 0 || pp.MaxHeld > 8192 || pp.Limit != 8192 {
		t.Errorf("physpages %+v: want failcnt > 0, peak and limit 32M", pp)
	}
	mdir, _ := m1.dir("memory")
	if n, _ := readUint(mdir, "memory.failcnt"); n == 0 {
		t.Error("memory.failcnt is 0")
	}
	checkFailures(t, m, st)
}

func TestFS1Nested(t *testing.T) {
	m := newGroup(t, "outer", New)
	asFS1(t, m)
	inner, err := New(m.Path() + "/inner/deep")
	if err != nil {
		t.Fatal(err)
	}
	if err := inner.Create(); err != nil {
		t.Fatal(err)
	}
	cmd := start(t, inner, "exec sleep 30")
	if !IsDescendant(m.Path(), inner.Path()) || IsDescendant(inner.Path(), m.Path()) {
		t.Error("IsDescendant disagrees with the layout")
	}
	if g, _ := ProcGroup(cmd.Process.Pid); !IsDescendant(m.Path(), g) {
		t.Errorf("process in %q, not below %q", g, m.Path())
	}
	if pids, err := m.Pids(); err != nil || !slices.Contains(pids, cmd.Process.Pid) {
		t.Errorf("outer Pids %v, %v: want the inner process", pids, err)
	}
	if err := m.Kill(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	_ = waitCmd(t, cmd, 5*time.Second)
	if err := m.Destroy(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if inner.Exists() || m.Exists() {
		t.Error("Destroy left subgroups")
	}
}

// TestFilesystems: what a VPS's init mounts again is each cgroup file system this host mounts at
// its root, read here from /proc/self/mounts on its own: a v1 hierarchy with its controllers or
// name=, a cgroup2 tree with none; mount points in order and with no space (the init child's
// format).
func TestFilesystems(t *testing.T) {
	fss, err := Filesystems()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{} // mount point -> type
	for l := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 3 && (f[2] == "cgroup" || f[2] == "cgroup2") && strings.HasPrefix(f[1], "/sys/fs/cgroup") {
			want[f[1]] = f[2]
		}
	}
	if len(fss) == 0 || len(fss) != len(want) {
		t.Fatalf("Filesystems = %+v, the mount table has %v", fss, want)
	}
	for i, fs := range fss {
		if want[fs.Mount] != fs.Type || strings.Contains(fs.Mount, " ") {
			t.Errorf("%+v: the mount table says %q", fs, want[fs.Mount])
		}
		if i > 0 && fss[i-1].Mount >= fs.Mount {
			t.Errorf("not in order: %s before %s", fss[i-1].Mount, fs.Mount)
		}
		if fs.Type == "cgroup" && !strings.Contains(fs.Options, filepath.Base(fs.Mount)) && !strings.Contains(fs.Options, "name=") {
			t.Errorf("%+v: options name none of its controllers", fs)
		}
		if fs.Type == "cgroup2" && fs.Options != "" {
			t.Errorf("%+v: a cgroup2 tree is mounted again without options", fs)
		}
	}
}

// TestFS1TaskFiles: a process of one thread that writes "0" to each of TaskFiles, cloned into
// CgroupFD's directory where the host has a unified tree, is in the group in every hierarchy
// (how a VPS's init child joins its groups, monitor.bootRest); the unified tree is not among
// the files (its cgroup.threads would refuse a move across domains).
func TestFS1TaskFiles(t *testing.T) {
	m := newGroup(t, "selfjoin", New)
	asFS1(t, m)
	rel := testParent + "/selfjoin"
	files := m.TaskFiles()
	if len(files) == 0 {
		t.Fatal("no task files on a v1 host")
	}
	for _, f := range files {
		if filepath.Base(f) != "tasks" || !strings.Contains(f, "/"+rel+"/") || strings.Contains(f, "/"+unifiedName+"/") {
			t.Errorf("task file %s", f)
		}
	}
	cmd := exec.Command("/bin/sh", append([]string{"-c", `for f; do echo 0 > "$f" || exit 1; done; exec sleep 30`, "sh"}, files...)...)
	if fd, err := m.CgroupFD(); err == nil {
		defer unix.Close(fd)
		cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	} else if !errors.Is(err, ErrNotSupported) {
		t.Fatal(err)
	}
	startKilled(t, cmd)
	pid := cmd.Process.Pid
	waitFor(t, 5*time.Second, "the shell in every hierarchy's group", func() bool {
		for _, dir := range m.Paths() {
			if !slices.Contains(strings.Fields(read(t, dir, "cgroup.procs")), fmt.Sprint(pid)) {
				return false
			}
		}
		return true
	})
}
