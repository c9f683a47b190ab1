package criu

import (
	"context"
	"errors"
	"fmt"
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

// requireCRIU skips (or, with CI=true, fails) a test that needs root and a
// usable criu, and returns the binary's path.
func requireCRIU(t *testing.T) string {
	t.Helper()
	requireRoot(t)
	path, _, err := Find()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and no usable criu: %v", err)
		}
		t.Skipf("no usable criu (run scripts/install-criu.sh): %v", err)
	}
	return path
}

func TestFindHonoursEnv(t *testing.T) {
	dir := t.TempDir()
	fake := func(name, out string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\nprintf '"+out+"'\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	old, cur := fake("old", `Version: 3.17.1\n`), fake("new", `Version: 4.2.1\n`)

	t.Setenv(EnvCRIU, old)
	if p, v, err := Find(); !errors.Is(err, ErrTooOld) || p != old || v != (Version{3, 17, 1}) {
		t.Errorf("too-old criu: Find() = %q, %v, %v; want ErrTooOld", p, v, err)
	}
	t.Setenv(EnvCRIU, filepath.Join(dir, "missing"))
	if _, _, err := Find(); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing criu: Find() error = %v; want ErrNotFound", err)
	}
	t.Setenv(EnvCRIU, cur)
	if p, v, err := Find(); err != nil || p != cur || v != (Version{4, 2, 1}) {
		t.Errorf("Find() = %q, %v, %v; want %q 4.2.1", p, v, err, cur)
	}
}

func TestPreflight(t *testing.T) {
	path := requireCRIU(t)
	start := time.Now()
	c, err := Preflight(context.Background())
	elapsed := time.Since(start)
	if err != nil {
		t.Fatalf("Preflight: %v (check %+v)", err, c)
	}
	t.Logf("Preflight in %v: %+v", elapsed, c)
	// The documented bound, with slack for a loaded machine: not a speed test.
	if elapsed > PreflightTimeout+5*time.Second {
		t.Errorf("Preflight took %v, bound is %v", elapsed, PreflightTimeout)
	}
	if c.CRIU != path || c.Version.Less(MinVersion) || c.TooOld {
		t.Errorf("criu %q version %v TooOld=%v; want %q >= %v", c.CRIU, c.Version, c.TooOld, path, MinVersion)
	}
	if c.NeedsFaultWorkaround == c.BreakpointsWork {
		t.Errorf("NeedsFaultWorkaround=%v with BreakpointsWork=%v", c.NeedsFaultWorkaround, c.BreakpointsWork)
	}
	if len(c.Problems) != 0 || c.CRIU == "" || c.TooOld {
		t.Errorf("problems on a host with criu installed: %q", c.Problems)
	}
	// criu check --all's "Error" lines are about optional features: a note beside a clean
	// result says so, never a bare "Error".
	for _, n := range c.Notes {
		if strings.Contains(n, "Error (") && !strings.HasPrefix(n, "optional CRIU feature missing (criu check --all): Error (") {
			t.Errorf("note %q: criu's error line without saying it is an optional feature", n)
		}
	}
	// criu's own verdict on soft-dirty must agree with the pagemap probe.
	cmd := exec.Command(path, "check", "--feature", "mem_dirty_track")
	cmd.Env = criuEnv()
	if criuSD := cmd.Run() == nil; criuSD != c.SoftDirty {
		t.Errorf("SoftDirty=%v but criu check --feature mem_dirty_track says %v", c.SoftDirty, criuSD)
	}
}

func TestDumpErrorQuotesLog(t *testing.T) {
	requireCRIU(t)
	// A PID that just exited (and was reaped) names no process.
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := Dump(ctx, DumpOptions{Pid: gone.Process.Pid, Root: "/", ImagesDir: filepath.Join(dir, "img")})
	if !errors.Is(err, ErrCRIU) {
		t.Fatalf("Dump of a dead PID: %v; want ErrCRIU", err)
	}
	if !strings.Contains(err.Error(), DumpLog) || !strings.Contains(err.Error(), "Error") {
		t.Errorf("error does not quote dump.log: %v", err)
	}
}

// TestDumpRestore checkpoints a tiny container (pid+mnt+uts+ipc namespaces,
// busybox root, init a session leader counting into /tmp/x), checks it is
// gone, restores it and checks it counts on from where it stopped.
func TestDumpRestore(t *testing.T) {
	requireCRIU(t)
	busybox := requireStaticBusybox(t)
	tmp := t.TempDir()
	// Mounts of this test's own directory only: other programs' under /tmp come and go.
	mountsBefore := mountsUnder(t, tmp)
	root := filepath.Join(tmp, "root")
	images := filepath.Join(tmp, "img")
	makeRootfs(t, root, busybox)
	counter := filepath.Join(root, "tmp", "x")

	launcher, launcherExited, initPid := startContainer(t, root, false)
	waitFor(t, 10*time.Second, "container counting", func() bool { return readCounter(counter) >= 3 })
	nsBefore, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", initPid))

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var log strings.Builder
	if err := Dump(ctx, DumpOptions{Pid: initPid, Root: root, ImagesDir: images, ManageCgroups: true, Log: &log}); err != nil {
		t.Fatalf("Dump: %v\ncriu output: %s", err, log.String())
	}
	if _, err := os.Stat(filepath.Join(images, DumpLog)); err != nil {
		t.Errorf("dump.log not kept in the images dir: %v", err)
	}
	// The tree is gone: its launcher (unshare) exits once its child is killed.
	select {
	case <-launcherExited:
	case <-time.After(10 * time.Second):
		t.Fatalf("launcher %d still running 10s after the dump", launcher.Process.Pid)
	}
	if err := unix.Kill(initPid, 0); !errors.Is(err, unix.ESRCH) {
		t.Fatalf("container init %d still exists after dump (kill 0: %v)", initPid, err)
	}
	dumped := readCounter(counter)
	time.Sleep(300 * time.Millisecond)
	if n := readCounter(counter); n != dumped {
		t.Fatalf("counter moved from %d to %d after the dump: something still runs", dumped, n)
	}

	pid, err := Restore(ctx, RestoreOptions{Root: root, ImagesDir: images, ManageCgroups: true, Log: &log})
	if err != nil {
		t.Fatalf("Restore: %v\ncriu output: %s", err, log.String())
	}
	t.Cleanup(func() { killAndReap(t, pid) })
	t.Logf("dumped init %d at count %d; restored as host PID %d", initPid, dumped, pid)

	// It counts on from where it was, never from 1.
	last := dumped
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("restored tree: %s\nrestore.log tail:\n%s", describeTree(pid), logTail(filepath.Join(images, RestoreLog), 15))
		}
	})
	waitFor(t, 10*time.Second, "restored container counting on", func() bool {
		n := readCounter(counter)
		if n > 0 && n < dumped {
			t.Fatalf("counter restarted: %d after dumping at %d", n, dumped)
		}
		last = n
		return n >= dumped+5
	})
	t.Logf("counter went on to %d", last)

	// Not Detached: the restored init is our child, its own session leader,
	// in a fresh pid namespace.
	st := procStat(t, pid)
	if st.ppid != os.Getpid() {
		t.Errorf("restored init's parent is %d, want us (%d)", st.ppid, os.Getpid())
	}
	if st.sid != pid {
		t.Errorf("restored init's session is %d, want itself (%d)", st.sid, pid)
	}
	if ns, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid)); ns == "" || ns == mustReadlink(t, "/proc/self/ns/pid") {
		t.Errorf("restored init is not in its own pid namespace (%q; before dump %q)", ns, nsBefore)
	}

	killAndReap(t, pid)
	if err := unix.Kill(pid, 0); !errors.Is(err, unix.ESRCH) {
		t.Errorf("restored init %d survived SIGKILL: %v", pid, err)
	}
	if after := mountsUnder(t, tmp); after != mountsBefore {
		t.Errorf("mounts under %s: %d before, %d after", tmp, mountsBefore, after)
	}
}

// TestRestorePdeathSig checks that a tree whose init had a parent-death
// signal is reported as ErrPdeathSig instead of as a restored VPS.
func TestRestorePdeathSig(t *testing.T) {
	requireCRIU(t)
	busybox := requireStaticBusybox(t)
	tmp := t.TempDir()
	root, images := filepath.Join(tmp, "root"), filepath.Join(tmp, "img")
	makeRootfs(t, root, busybox)
	_, exited, initPid := startContainer(t, root, true)
	waitFor(t, 10*time.Second, "container counting", func() bool { return readCounter(filepath.Join(root, "tmp", "x")) >= 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := Dump(ctx, DumpOptions{Pid: initPid, Root: root, ImagesDir: images}); err != nil {
		t.Fatalf("Dump: %v", err)
	}
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("launcher still running 10s after the dump")
	}
	pid, err := Restore(ctx, RestoreOptions{Root: root, ImagesDir: images})
	if pid > 0 {
		t.Cleanup(func() { killAndReap(t, pid) })
	}
	if !errors.Is(err, ErrPdeathSig) {
		t.Fatalf("Restore of an init with a parent-death signal: pid %d, %v; want ErrPdeathSig", pid, err)
	}
}

func requireStaticBusybox(t *testing.T) string {
	t.Helper()
	const busybox = "/bin/busybox"
	if out, err := exec.Command("ldd", busybox).CombinedOutput(); err == nil || !strings.Contains(string(out), "not a dynamic") {
		t.Skipf("needs a static %s (apt-get install busybox-static)", busybox)
	}
	return busybox
}

// makeRootfs builds a minimal busybox root: applets as symlinks, and empty
// mount points.
func makeRootfs(t *testing.T, root, busybox string) {
	t.Helper()
	for _, d := range []string{"bin", "proc", "dev", "tmp", ".old"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin", "busybox"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"sh", "sleep", "setsid", "umount", "cat"} {
		if err := os.Symlink("busybox", filepath.Join(root, "bin", a)); err != nil {
			t.Fatal(err)
		}
	}
}

// startContainer starts, through unshare(1), a pid+mnt+uts+ipc container on
// root and returns the launcher and the container init's host PID. As CRIU
// needs (and runc does): the init is its own session leader, and it holds no
// fd from the host — stdio is reopened on the container's own /dev/null and
// no fd above 2 is inherited.
//
// killChild adds unshare's --kill-child, which gives the init a parent-death
// signal (PR_SET_PDEATHSIG): a real launcher's habit that breaks restore.
func startContainer(t *testing.T, root string, killChild bool) (launcher *exec.Cmd, exited <-chan struct{}, initPid int) {
	t.Helper()
	const loop = `i=0; while :; do i=$((i+1)); echo $i > /tmp/x; sleep 0.1; done`
	inner := `umount -l /.old && exec </dev/null >/dev/null 2>&1 && exec setsid /bin/sh -c '` + loop + `'`
	script := `set -e
R="$1"
mount --bind "$R" "$R"
mount -t proc proc "$R/proc"
mount -t tmpfs -o mode=755,size=1m tmpfs "$R/dev"
mknod -m 666 "$R/dev/null" c 1 3
cd "$R"
pivot_root . .old
exec /bin/busybox sh -c "$2"`
	markAllCloexec(t)
	// Without --kill-child, the cleanup below kills the init by PID.
	args := []string{"--fork", "--pid", "--mount", "--uts", "--ipc", "--propagation", "private"}
	if killChild {
		args = append(args, "--kill-child")
	}
	cmd := exec.Command("unshare", append(args, "/bin/sh", "-c", script, "launcher", root, inner)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		if initPid > 0 {
			_ = unix.Kill(initPid, unix.SIGKILL) // no-op once dumped (the PID is gone)
		}
		_ = cmd.Process.Kill()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Errorf("launcher %d did not exit", cmd.Process.Pid)
		}
	})

	waitFor(t, 10*time.Second, "container init to be a session leader", func() bool {
		select {
		case <-done:
			t.Fatalf("launcher exited early: %s", stderr.String())
		default:
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", cmd.Process.Pid, cmd.Process.Pid))
		if err != nil {
			return false
		}
		f := strings.Fields(string(b))
		if len(f) != 1 {
			return false
		}
		initPid, _ = strconv.Atoi(f[0])
		return initPid > 0 && procStat(t, initPid).sid == initPid
	})
	return cmd, done, initPid
}

// markAllCloexec sets FD_CLOEXEC on every fd above 2 of this process, so
// nothing the test harness inherited leaks into the container (CRIU cannot
// dump an fd on a mount outside the container: "Can't lookup mount").
func markAllCloexec(t *testing.T) {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			unix.CloseOnExec(fd)
		}
	}
}

type stat struct{ ppid, sid int }

// procStat parses ppid and session from /proc/PID/stat (fields 4 and 6,
// counted after the parenthesised comm, which may contain spaces).
func procStat(t *testing.T, pid int) stat {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return stat{}
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 4 {
		t.Fatalf("short /proc/%d/stat: %q", pid, s)
	}
	ppid, _ := strconv.Atoi(f[1])
	sid, _ := strconv.Atoi(f[3])
	return stat{ppid, sid}
}

func readCounter(p string) int {
	b, err := os.ReadFile(p)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// killAndReap SIGKILLs pid (a pid namespace's init: the kernel kills the
// rest of the namespace) and reaps it if it is our child; bounded.
func killAndReap(t *testing.T, pid int) {
	t.Helper()
	if err := unix.Kill(pid, unix.SIGKILL); errors.Is(err, unix.ESRCH) {
		return
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var ws unix.WaitStatus
		got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		if got == pid || errors.Is(err, unix.ECHILD) {
			if unix.Kill(pid, 0) != nil {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("process %d did not die within 10s of SIGKILL", pid)
}

// mountsUnder counts this mount namespace's mounts under dir.
func mountsUnder(t *testing.T, dir string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && strings.HasPrefix(f[4], dir) {
			n++
		}
	}
	return n
}

func mustReadlink(t *testing.T, p string) string {
	t.Helper()
	s, err := os.Readlink(p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// describeTree is a failure diagnostic: state, wchan and children of pid,
// recursively.
func describeTree(pid int) string {
	var b strings.Builder
	var walk func(pid, depth int)
	walk = func(pid, depth int) {
		status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		state := ""
		for _, l := range strings.Split(string(status), "\n") {
			if strings.HasPrefix(l, "State:") {
				state = strings.TrimSpace(l[6:])
			}
		}
		wchan, _ := os.ReadFile(fmt.Sprintf("/proc/%d/wchan", pid))
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		fmt.Fprintf(&b, "\n%s%d [%s] wchan=%s %s", strings.Repeat("  ", depth), pid, state, wchan,
			strings.ReplaceAll(string(cmd), "\x00", " "))
		kids, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
		for _, k := range strings.Fields(string(kids)) {
			if n, err := strconv.Atoi(k); err == nil && depth < 5 {
				walk(n, depth+1)
			}
		}
	}
	walk(pid, 0)
	return b.String()
}
