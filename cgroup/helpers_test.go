package cgroup

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// testParent is the parent group of every group this test binary makes;
// the PID keeps parallel runs apart.
var testParent = fmt.Sprintf("vpsctl-test-%d", os.Getpid())

// listing returns the top-level entries of every hierarchy under
// /sys/fs/cgroup, leaving out other test runs' parents.
func listing(t testing.TB) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	hs, err := os.ReadDir(cgroupRoot)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hs {
		dir := filepath.Join(cgroupRoot, h.Name())
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue // a file, or a controller symlink's target read twice
		}
		var names []string
		for _, e := range ents {
			if e.IsDir() && (!strings.HasPrefix(e.Name(), "vpsctl-test-") || e.Name() == testParent) {
				names = append(names, e.Name())
			}
		}
		out[dir] = names
	}
	return out
}

// checkNothingLeft registers a cleanup, run after every later one, that
// fails t if any hierarchy's top level differs from now.
func checkNothingLeft(t testing.TB) {
	t.Helper()
	before := listing(t)
	t.Cleanup(func() {
		after := listing(t)
		for dir, names := range after {
			if !slices.Equal(names, before[dir]) {
				t.Errorf("%s: entries before %v, after %v", dir, before[dir], names)
			}
		}
	})
}

// newGroup returns the Manager of testParent/name, created, and removes it
// (killing what is left in it) and testParent when t ends.
func newGroup(t testing.TB, name string, newm func(rel string) (Manager, error)) Manager {
	t.Helper()
	requireRoot(t)
	checkNothingLeft(t)
	m, err := newm(testParent + "/" + name)
	if err != nil {
		t.Fatal(err)
	}
	parent, err := newm(testParent)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := parent.Kill(5 * time.Second); err != nil {
			t.Errorf("cleanup kill: %v", err)
		}
		if err := parent.Destroy(5 * time.Second); err != nil {
			t.Errorf("cleanup destroy: %v", err)
		}
		if m.Exists() || parent.Exists() {
			t.Errorf("cleanup: group still exists")
		}
	})
	if err := m.Create(); err != nil {
		t.Fatal(err)
	}
	return m
}

// start runs script under sh in group m: the shell waits on stdin until it
// has been moved, so everything the script forks starts inside the group.
// The shell is killed by PID and reaped when t ends.
func start(t *testing.T, m Manager, script string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", "read _; "+script)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	startKilled(t, cmd)
	if err := m.Apply(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(in, "\n"); err != nil {
		t.Fatal(err)
	}
	return cmd
}

// startKilled starts cmd, which the test's cleanup kills and reaps.
func startKilled(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
}

// waitFor polls cond, bounded, failing t with what when it never holds.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if err := poll(timeout, func() (bool, error) { return cond(), nil }); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func read(t *testing.T, dir, name string) string {
	t.Helper()
	s, err := readFile(dir, name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// wchan is where the kernel has pid asleep: frozen tasks wait in the
// freezer (__refrigerator on v1, do_freezer_trap on v2).
func wchan(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/wchan", pid))
	return string(b)
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] != 'Z' && s[i+2] != 'X'
}

// killedBy reports whether err is cmd's exit by signal sig.
func killedBy(err error, sig syscall.Signal) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == sig
}

// v2Mount is a real cgroup2 mount to test fs2 against: the unified tree of
// a hybrid host, or the root of a v2 host.
func v2Mount(t *testing.T) string {
	t.Helper()
	for _, dir := range []string{cgroupRoot + "/unified", cgroupRoot} {
		var st unix.Statfs_t
		if unix.Statfs(dir, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
			return dir
		}
	}
	t.Skip("no cgroup2 mounted")
	return ""
}

// asFS1 skips tests of v1 files on hosts that are not v1.
func asFS1(t *testing.T, m Manager) *fs1 {
	t.Helper()
	m1, ok := m.(*fs1)
	if !ok {
		t.Skip("host runs cgroup v2 only")
	}
	return m1
}

// procState is the one-letter state of pid from /proc/PID/stat.
func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 || i+2 >= len(b) {
		return ""
	}
	return string(b[i+2])
}

// newV2At returns the v2 Manager for rel in the cgroup2 tree mounted at
// mountpoint (the hybrid host's /sys/fs/cgroup/unified, or a directory
// standing in for one in tests).
func newV2At(mountpoint, rel string) (Manager, error) {
	if err := checkRel(rel); err != nil {
		return nil, err
	}
	if !path.IsAbs(mountpoint) {
		return nil, fmt.Errorf("cgroup2 mountpoint %q is not absolute: %w", mountpoint, ErrBadValue)
	}
	return newFS2(path.Clean(mountpoint), rel), nil
}

// checkFailures fails t unless m's Failures are st's failure counts (st: m's Stats, read when
// nothing in the group could change them).
func checkFailures(t *testing.T, m Manager, st *Stats) {
	t.Helper()
	f, err := m.Failures()
	if err != nil {
		t.Fatal(err)
	}
	want := &Stats{OOMKills: st.OOMKills}
	for _, c := range st.Counters[:3] {
		want.Counters = append(want.Counters, Counter{Resource: c.Resource, Failcnt: c.Failcnt})
	}
	if f.OOMKills != want.OOMKills || !slices.Equal(f.Counters, want.Counters) {
		t.Errorf("Failures %+v, want %+v (from Stats)", f, want)
	}
}

// BenchmarkStats and BenchmarkFailures: a group's whole reading (list, stats, metrics) against
// the failure counts alone, which a stop reads last (Manager.Failures).
func BenchmarkStats(b *testing.B)    { benchmarkReading(b, Manager.Stats) }
func BenchmarkFailures(b *testing.B) { benchmarkReading(b, Manager.Failures) }

func benchmarkReading(b *testing.B, read func(Manager) (*Stats, error)) {
	m := newGroup(b, "bench", New)
	for b.Loop() {
		if _, err := read(m); err != nil {
			b.Fatal(err)
		}
	}
}
