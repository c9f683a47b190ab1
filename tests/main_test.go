// Package tests holds vpsctl's root-only integration tests: they build the vpsctl binary, create
// real VPSs (real namespaces, cgroups, mounts, veths) in a private state root, and check after
// every test that nothing was left behind on the host.
package tests

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vpsctl/vpsctl/store"
	"golang.org/x/sys/unix"
)

var (
	bin     string // the vpsctl binary under test
	root    string // the state root of this test run
	workDir string
)

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			fmt.Fprintln(os.Stderr, "tests: integration tests need root (CI=true: failing, not skipping)")
			os.Exit(1)
		}
		fmt.Fprintln(os.Stderr, "tests: skipping integration tests: not root")
		os.Exit(0)
	}
	var err error
	workDir, err = os.MkdirTemp("", "vpsctl-it-")
	if err != nil {
		panic(err)
	}
	bin = filepath.Join(workDir, "vpsctl")
	if prebuilt := os.Getenv("VPSCTL_TEST_BIN"); prebuilt != "" {
		// The VM tier (scripts/vm-test.sh) compiles nothing in the guest: it brings vpsctl
		// built on the host. Copied, so that the run's workDir holds all it uses.
		if out, err := exec.Command("cp", prebuilt, bin).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "VPSCTL_TEST_BIN: %v\n%s", err, out)
			os.Exit(1)
		}
		// With the API program built beside it (scripts/build.sh), which `vpsctl serve` runs.
		if api := filepath.Join(filepath.Dir(prebuilt), "vpsctl-api"); fileExists(api) {
			if out, err := exec.Command("cp", api, filepath.Join(workDir, "vpsctl-api")).CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "VPSCTL_TEST_BIN: %v\n%s", err, out)
				os.Exit(1)
			}
		}
	} else if out, err := exec.Command("bash", "../scripts/build.sh", bin).CombinedOutput(); err != nil { // VPSCTL_LIBC picks the C library
		fmt.Fprintf(os.Stderr, "build vpsctl: %v\n%s", err, out)
		os.Exit(1)
	}
	root = filepath.Join(workDir, "state")
	// VPSCTL_TEST_STATE: a state root that outlives the run (the VM tier's reboot test runs
	// twice, before and after a reboot): its template is built once, its VPSs are left.
	kept := os.Getenv("VPSCTL_TEST_STATE")
	if kept != "" {
		root = kept
	}
	out, err := exec.Command(bin, "--root", root, "template", "build", "busybox").CombinedOutput()
	if exit, ok := err.(*exec.ExitError); err != nil && (kept == "" || !ok || exit.ExitCode() != 211) { // 211: already built
		fmt.Fprintf(os.Stderr, "template build: %v\n%s", err, out)
		os.Exit(1)
	}
	// The run's LXCFS up front, as a host has it: a mount no test's before/after compares.
	if out, err := exec.Command(bin, "--root", root, "lxcfs", "start").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "lxcfs start: %v\n%s", err, out)
		os.Exit(1)
	}
	klog, err := openKernelLog() // for the tests without checkClean's own
	if err != nil {
		fmt.Fprintf(os.Stderr, "tests: %v: the overlay checks cannot be made\n", err)
		if os.Getenv("CI") == "true" {
			os.Exit(1) // a check that cannot fail is no check
		}
	}
	code := m.Run()
	if bad := klog.overlaysShared(); len(bad) > 0 {
		fmt.Fprintf(os.Stderr, "tests: the kernel warned of overlays sharing an upper directory:\n%s\n", strings.Join(bad, "\n"))
		code = 1
	}
	klog.close()
	// Last resort: never leave VPSs of this run behind, even after a failed test.
	if kept == "" {
		ids, _ := os.ReadDir(filepath.Join(root, "vps"))
		for _, e := range ids {
			exec.Command(bin, "--root", root, "destroy", "--force", e.Name()).Run()
		}
	}
	if out, err := exec.Command(bin, "--root", root, "lxcfs", "stop").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "lxcfs stop: %v\n%s", err, out)
		code = 1
	}
	os.RemoveAll(workDir)
	os.Exit(code)
}

// result is one vpsctl invocation.
type result struct {
	out, err string
	code     int
}

// vpsctl runs the binary with this run's state root, bounded by a timeout.
func vpsctl(t testing.TB, args ...string) result {
	t.Helper()
	return vpsctlEnv(t, nil, args...)
}

func vpsctlEnv(t testing.TB, env []string, args ...string) result {
	t.Helper()
	return vpsctlTimeout(t, 120*time.Second, env, args...)
}

// slow scales the harness's bounded waits: VPSCTL_TEST_SLOW=N where everything runs N times
// slower than on the machines the bounds were set on (the VM tier's software emulation).
func slow(d time.Duration) time.Duration {
	if n, err := strconv.Atoi(os.Getenv("VPSCTL_TEST_SLOW")); err == nil && n > 1 {
		return d * time.Duration(n)
	}
	return d
}

// vpsctlTimeout is vpsctlEnv with its own bound (template builds take minutes).
func vpsctlTimeout(t testing.TB, timeout time.Duration, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"--root", root}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Start(); err != nil {
		t.Fatalf("vpsctl %v: %v", args, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(slow(timeout)):
		cmd.Process.Kill()
		<-done
		t.Fatalf("vpsctl %v: timed out", args)
	}
	return result{out: o.String(), err: e.String(), code: cmd.ProcessState.ExitCode()}
}

// must runs vpsctl and fails the test unless it exits 0.
func must(t testing.TB, args ...string) string {
	t.Helper()
	r := vpsctl(t, args...)
	if r.code != 0 {
		t.Fatalf("vpsctl %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.out, r.err)
	}
	return r.out
}

// expectCode runs vpsctl and checks its exit code and that stderr names the problem.
func expectCode(t testing.TB, code int, args ...string) result {
	t.Helper()
	r := vpsctl(t, args...)
	if r.code != code {
		t.Fatalf("vpsctl %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, code, r.out, r.err)
	}
	if code != 0 && code < 100 && strings.TrimSpace(r.err) == "" {
		t.Fatalf("vpsctl %s: exit %d with no error message", strings.Join(args, " "), code)
	}
	return r
}

// hostState is what a test must leave as it found it.
type hostState struct {
	mounts   int
	cgroups  []string
	links    []string
	monitors []int
	// self lists the groups of vpsctl's that a thread of this test process is in: none,
	// unless a command moved a process it should not have (every command this process starts
	// is born in its forking thread's groups).
	self []string
}

func snapshot(t testing.TB) hostState {
	t.Helper()
	var s hostState
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	// The run's LXCFS (STATE/lxcfs) is the host's, not a test's.
	s.mounts = strings.Count(string(mi), root) - strings.Count(string(mi), filepath.Join(root, "lxcfs")+" ")
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*/vpsctl/*")
	dirs2, _ := filepath.Glob("/sys/fs/cgroup/vpsctl/*")
	// Where PID 1 is systemd (cgroup v2), each VPS's groups are in a scope of vpsctl.slice.
	scopes, _ := filepath.Glob("/sys/fs/cgroup/vpsctl.slice/*.scope")
	dirs = append(append(dirs, dirs2...), scopes...)
	for _, d := range dirs {
		// Spare groups (empty, never used, at most two per hierarchy) are a cache the
		// background remover refills: TestSpareGroups checks them. The monitors' group is
		// made once and never removed (TestMonitorGroup).
		if strings.HasPrefix(filepath.Base(d), ".spare-") || filepath.Base(d) == ".monitor" {
			continue
		}
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			s.cgroups = append(s.cgroups, d)
		}
	}
	sort.Strings(s.cgroups)
	tasks, _ := filepath.Glob("/proc/self/task/*/cgroup")
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, ":/vpsctl") && !slices.Contains(s.self, l) {
				s.self = append(s.self, l)
			}
		}
	}
	sort.Strings(s.self)
	out, _ := exec.Command("ip", "-o", "link", "show").Output()
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) > 1 {
			s.links = append(s.links, strings.TrimSuffix(strings.SplitN(f[1], "@", 2)[0], ":"))
		}
	}
	sort.Strings(s.links)
	s.monitors = ourMonitors()
	return s
}

// processes lists the PIDs of the processes whose command line match accepts (given the
// process's /proc directory, for what else it must read).
func processes(match func(cmdline []byte, dir string) bool) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		dir := "/proc/" + e.Name()
		if cl, err := os.ReadFile(dir + "/cmdline"); err == nil && match(cl, dir) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// ourMonitors lists monitor processes (and keepers of spare VPSs) of this run's state root.
func ourMonitors() []int {
	return processes(func(cl []byte, dir string) bool {
		if !bytes.HasPrefix(cl, []byte("vpsctl-monitor")) && !bytes.HasPrefix(cl, []byte("vpsctl-spare")) {
			return false
		}
		env, _ := os.ReadFile(dir + "/environ")
		return bytes.Contains(env, []byte("VPSCTL_ROOT="+root+"\x00"))
	})
}

// checkClean registers a cleanup that destroys the given VPSs and then fails the test if
// mounts, cgroups, links or monitor processes differ from before.
func checkClean(t *testing.T, ids ...string) {
	t.Helper()
	requireRoot(t)
	// An earlier test's background removers may still hold groups they are about to remove:
	// they are not this test's, so the "before" is taken once they are done.
	settleRemovers(t)
	before := snapshot(t)
	klog, err := openKernelLog()
	if err != nil {
		t.Logf("%v: no overlay check (TestMain said so)", err)
	}
	t.Cleanup(func() {
		defer klog.close()
		for _, id := range ids {
			vpsctl(t, "destroy", "--force", id)
		}
		for _, m := range klog.overlaysShared() {
			t.Errorf("kernel: %s", m)
		}
		var after hostState
		// The monitor finishes its cleanup asynchronously after an in-VPS poweroff; allow it
		// a bounded moment.
		for deadline := time.Now().Add(slow(5 * time.Second)); time.Now().Before(deadline); {
			after = snapshot(t)
			if fmt.Sprint(after) == fmt.Sprint(before) {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Errorf("host not left as found:\nbefore: %+v\nafter:  %+v", before, after)
	})
}

// kernelLog reads the kernel's log from where it ended when it was opened (/dev/kmsg).
type kernelLog struct{ fd int }

// openKernelLog opens the kernel's log at its end. On error the log it returns reads as empty.
func openKernelLog() (kernelLog, error) {
	fd, err := unix.Open("/dev/kmsg", unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return kernelLog{-1}, fmt.Errorf("kernel log: %w", os.NewSyscallError("open /dev/kmsg", err))
	}
	if _, err := unix.Seek(fd, 0, io.SeekEnd); err != nil {
		unix.Close(fd)
		return kernelLog{-1}, fmt.Errorf("kernel log: %w", os.NewSyscallError("seek /dev/kmsg", err))
	}
	return kernelLog{fd}, nil
}

func (k kernelLog) close() {
	if k.fd >= 0 {
		unix.Close(k.fd)
	}
}

// overlaysShared are the kernel's warnings, since the last read, of two overlays on one upper
// directory at once (a boot's while an ended boot's was still mounted somewhere), which must
// never happen.
func (k kernelLog) overlaysShared() []string { return sharedUpper(k.read()) }

// sharedUpper picks overlayfs's "upperdir is in-use as upperdir/workdir of another mount"
// warnings out of msgs.
func sharedUpper(msgs []string) []string {
	var bad []string
	for _, m := range msgs {
		if strings.Contains(m, "in-use as upperdir/workdir") {
			bad = append(bad, m)
		}
	}
	return bad
}

// read returns the messages logged since the last read: each record is one message
// ("PRIORITY,SEQUENCE,TIME,FLAGS;TEXT"), EAGAIN once none is left, EPIPE for records
// overwritten before they were read (skipped).
func (k kernelLog) read() []string {
	if k.fd < 0 {
		return nil
	}
	var msgs []string
	buf := make([]byte, 8192)
	for i := 0; i < 100000; i++ {
		n, err := unix.Read(k.fd, buf)
		if err == unix.EPIPE || err == unix.EINTR {
			continue
		}
		if err != nil || n <= 0 {
			break
		}
		rec := string(buf[:n])
		if semi := strings.IndexByte(rec, ';'); semi >= 0 {
			rec = rec[semi+1:]
		}
		msgs = append(msgs, strings.TrimRight(rec, "\n"))
	}
	return msgs
}

// settleRemovers waits, bounded and without failing, until no VPS lock of the state root is
// held (the background removers hold theirs until the groups and mounts they were handed are
// gone) and tmp/ is empty.
func settleRemovers(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(slow(10 * time.Second))
	busy := func() bool {
		if ents, _ := os.ReadDir(filepath.Join(root, "tmp")); len(ents) > 0 {
			return true
		}
		locks, _ := filepath.Glob(filepath.Join(root, "locks", "*.lock"))
		for _, l := range locks {
			if held, _ := store.LockHeld(l); held {
				return true
			}
		}
		return false
	}
	for busy() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
}

// waitFor polls cond every 50ms until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(slow(timeout))
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func execCmd(name string, args ...string) ([]byte, error) {
	return exec.Command(name, args...).CombinedOutput()
}

// waitTmpEmpty waits, bounded, for the state root's tmp/ to empty: destroy reclaims a VPS's
// files in a background process after it returns.
func waitTmpEmpty(t testing.TB, timeout time.Duration) {
	t.Helper()
	var ents []os.DirEntry
	deadline := time.Now().Add(slow(timeout))
	for {
		ents, _ = os.ReadDir(filepath.Join(root, "tmp"))
		if len(ents) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("tmp/ not emptied within %v: %v", timeout, ents)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
