package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// waitUnlocked waits, bounded, until VPS id's lock is free: a stop's background remover holds
// it until the VPS's groups and mounts are gone.
func waitUnlocked(t *testing.T, id string) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(root, "locks", id+".lock"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	waitFor(t, 10*time.Second, "VPS "+id+"'s lock", func() bool {
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
			return false
		}
		unix.Flock(int(f.Fd()), unix.LOCK_UN)
		return true
	})
}

// holdLockNoted takes the state root's lock file name (locks/NAME) as another vpsctl would,
// with its note; the returned function lets go of it.
func holdLockNoted(t *testing.T, name string) func() {
	t.Helper()
	lk, err := os.OpenFile(filepath.Join(root, "locks", name), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(lk.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	lk.Truncate(0)
	lk.WriteAt([]byte("pid 1: vpsctl test-holder\n"), 0)
	return func() { lk.Truncate(0); lk.Close() }
}

// immutable sets the immutable flag (FS_IMMUTABLE_FL, chattr +i) on dir, where even root can
// make or rename nothing; the returned function clears it.
func immutable(t *testing.T, dir string) func() {
	t.Helper()
	const fsImmutable = 0x10 // linux/fs.h FS_IMMUTABLE_FL
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	set := func(v int) error { return unix.IoctlSetPointerInt(int(f.Fd()), unix.FS_IOC_SETFLAGS, v) }
	old, err := unix.IoctlGetInt(int(f.Fd()), unix.FS_IOC_GETFLAGS)
	if err == nil {
		err = set(old | fsImmutable)
	}
	if err != nil {
		f.Close()
		if os.Getenv("CI") == "true" {
			t.Fatalf("no immutable flag on %s: %v", dir, err)
		}
		t.Skipf("no immutable flag on %s: %v", dir, err)
	}
	undo := func() { set(old); f.Close() }
	t.Cleanup(undo)
	return undo
}

// vpsGroups lists VPS id's cgroup directories on the host.
func vpsGroups(id string) []string {
	return groupDirs(id)
}

// TestStopKill: `stop --kill ID` returns once every process of the VPS is gone and its run
// state cleared; nothing of the VPS is left once its lock is free (the background remover's
// part); its errors name the problem and change nothing.
func TestStopKill(t *testing.T) {
	const id, other = "185", "186"
	checkClean(t, id, other)
	must(t, "create", id, "--template", "busybox", "--name", "fast")

	for _, ref := range []string{id, "fast"} {
		must(t, "start", id)
		s := status(t, id)
		r := vpsctl(t, "stop", "--kill", ref)
		env := ref
		if r.code != 0 || r.out != "VPS "+id+" stopped\n" {
			t.Fatalf("stop --kill %s: exit %d\nstdout: %q\nstderr: %s", ref, r.code, r.out, r.err)
		}
		// At return: the init and the monitor have exited (a zombie monitor waits for its
		// parent, not for the stop), and so are the run state and the request.
		if !gone(s.InitPID)() || !gone(s.MonitorPID)() {
			t.Fatalf("%v: init %d or monitor %d still there after the stop", env, s.InitPID, s.MonitorPID)
		}
		for _, f := range []string{"run.json", "join", "stop-requested"} {
			if _, err := os.Stat(filepath.Join(root, "vps", id, f)); !os.IsNotExist(err) {
				t.Fatalf("%v: %s left after the stop: %v", env, f, err)
			}
		}
		if st := status(t, id).State; st != "stopped" {
			t.Fatalf("%v: state %s after the stop", env, st)
		}
		// Once the remover lets go of the lock, the groups are gone too.
		waitUnlocked(t, id)
		if g := vpsGroups(id); len(g) > 0 {
			t.Fatalf("%v: groups left once the lock is free: %v", env, g)
		}
		if _, err := os.Stat(filepath.Join(root, "vps", id, "private")); err != nil {
			t.Fatalf("%v: private area: %v", env, err)
		}
	}

	expectCode(t, 31, "stop", "--kill", id) // not running
	expectCode(t, 43, "stop", "--kill", other)
	if _, err := os.Stat(filepath.Join(root, "locks", other+".lock")); !os.IsNotExist(err) {
		t.Fatalf("a stop of a VPS that does not exist left its lock file: %v", err)
	}
	expectCode(t, 21, "stop", "--kill", "0")

	// The lock held by another command: the stop waits, then names the holder.
	must(t, "start", id)
	release := holdLockNoted(t, id+".lock")
	if r := expectCode(t, 9, "stop", "--kill", id); !strings.Contains(r.err, "(pid 1: vpsctl test-holder)") {
		t.Fatalf("stop --kill with the lock held: %s", r.err)
	}
	release()
	// Held by a process that leaves no note (flock(1), for 8 s): named from /proc/locks.
	flockPID := holdLock(t, id)
	if r := expectCode(t, 9, "stop", "--kill", id); !strings.Contains(r.err, fmt.Sprintf("(pid %d: flock)", flockPID)) {
		t.Fatalf("stop --kill with the lock held by flock(1): %s", r.err)
	}
	syscall.Kill(-flockPID, syscall.SIGKILL)
	waitUnlocked(t, id)
	if st := status(t, id).State; st != "running" {
		t.Fatalf("a stop that could not lock changed the VPS: %s", st)
	}

	// Suspended: thawed and killed.
	must(t, "suspend", id)
	if r := vpsctl(t, "stop", "--kill", id); r.code != 0 {
		t.Fatalf("stop --kill of a suspended VPS: exit %d: %s", r.code, r.err)
	}
	if st := status(t, id).State; st != "stopped" {
		t.Fatalf("suspended: state %s after the stop", st)
	}
	must(t, "start", id)

	// A monitor that does not finish: the stop waits 15 s for it, then
	// reports it (exit 3) and leaves the rest to the monitor once it goes on.
	s := status(t, id)
	if err := syscall.Kill(s.MonitorPID, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	r := vpsctl(t, "stop", "--kill", id)
	syscall.Kill(s.MonitorPID, syscall.SIGCONT)
	if r.code != 3 || !strings.Contains(r.err, "did not finish cleaning up") {
		t.Fatalf("stop --kill with a stuck monitor: exit %d: %s", r.code, r.err)
	}
	waitFor(t, 15*time.Second, "the monitor to finish the stop", func() bool { return status(t, id).State == "stopped" && gone(s.MonitorPID)() })
	if _, err := os.Stat(filepath.Join(root, "vps", id, "stop-requested")); !os.IsNotExist(err) {
		t.Fatalf("the stop request stayed: %v", err)
	}

	// A VPS with an address: its host side is torn down too.
	must(t, "create", other, "--template", "busybox", "--ipadd", "198.18.0.186")
	must(t, "start", other)
	if r := vpsctl(t, "stop", "--kill", other); r.code != 0 {
		t.Fatalf("stop --kill of a VPS with an address: exit %d: %s", r.code, r.err)
	}
	if out, _ := execCmd("ip", "-o", "link", "show", "vps"+other); len(out) > 0 && !strings.Contains(string(out), "does not exist") {
		t.Fatalf("the VPS's host interface is left after the stop: %s", out)
	}
	must(t, "destroy", other)
	must(t, "destroy", id)
}

// TestDestroy: destroy leaves nothing of the VPS (directory, name, lock file, files reclaimed,
// groups, mounts below it detached, not deleted into), repairs what a killed command left, and
// its errors name the problem and change nothing.
func TestDestroy(t *testing.T) {
	const id = "187"
	checkClean(t, id)
	destroyed := func(what string, r result) {
		t.Helper()
		if r.code != 0 || r.out != "VPS "+id+" destroyed\n" {
			t.Fatalf("%s: exit %d\nstdout: %q\nstderr: %s", what, r.code, r.out, r.err)
		}
		if st := status(t, id).State; st != "deleted" {
			t.Fatalf("%s: state %s", what, st)
		}
		for _, p := range []string{filepath.Join("vps", id), filepath.Join("names", "fastd")} {
			if _, err := os.Lstat(filepath.Join(root, p)); !os.IsNotExist(err) {
				t.Fatalf("%s: %s left: %v", what, p, err)
			}
		}
		// A remover handed a stop's leftovers (a running VPS destroyed) holds the lock until
		// they are gone, and then removes its file; the groups go before the files.
		lock := filepath.Join(root, "locks", id+".lock")
		waitFor(t, 10*time.Second, "the lock file's removal", func() bool {
			_, err := os.Lstat(lock)
			return os.IsNotExist(err)
		})
		waitTmpEmpty(t, 10*time.Second)
		if g := vpsGroups(id); len(g) > 0 {
			t.Fatalf("%s: groups left: %v", what, g)
		}
	}
	must(t, "create", id, "--template", "busybox", "--name", "fastd")
	must(t, "start", id)
	must(t, "stop", "--kill", id)
	destroyed("stopped", vpsctl(t, "destroy", id))
	// --force on a running VPS: stopped first, as stop --kill does, in the same process.
	must(t, "create", id, "--template", "busybox", "--name", "fastd")
	must(t, "start", id)
	s := status(t, id)
	destroyed("--force running", vpsctl(t, "destroy", "--force", id))
	if !gone(s.InitPID)() || !gone(s.MonitorPID)() {
		t.Fatalf("init %d or monitor %d still there after destroy --force", s.InitPID, s.MonitorPID)
	}
	// Never started, -f, the alias.
	for _, args := range [][]string{{"destroy", "-f", id}, {"delete", id, "--force"}} {
		must(t, "create", id, "--template", "busybox", "--name", "fastd")
		destroyed(fmt.Sprint(args), vpsctl(t, args...))
	}

	expectCode(t, 43, "destroy", id)
	if _, err := os.Stat(filepath.Join(root, "locks", id+".lock")); !os.IsNotExist(err) {
		t.Fatalf("a destroy of a VPS that does not exist left its lock file: %v", err)
	}
	must(t, "create", id, "--template", "busybox", "--name", "fastd")
	must(t, "start", id)
	expectCode(t, 32, "destroy", id) // running
	must(t, "stop", "--kill", id)
	waitUnlocked(t, id)

	// Either lock held: the destroy waits, names the holder and changes nothing.
	for _, l := range []string{id + ".lock", ".global"} {
		release := holdLockNoted(t, l)
		if r := expectCode(t, 9, "destroy", id); !strings.Contains(r.err, "(pid 1: vpsctl test-holder)") {
			t.Fatalf("destroy with %s held: %s", l, r.err)
		}
		release()
		if st := status(t, id).State; st != "stopped" {
			t.Fatalf("a destroy that could not lock %s changed the VPS: %s", l, st)
		}
	}

	// A config that cannot be parsed: a clear error, nothing removed.
	conf := filepath.Join(root, "vps", id, "vps.conf")
	good, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{string(good) + "not a line\n", strings.Replace(string(good), `ID="`+id+`"`, `ID="1`+id+`"`, 1)} {
		if err := os.WriteFile(conf, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		expectCode(t, 21, "destroy", id)
		os.WriteFile(conf, good, 0o600)
		must(t, "start", id)
		os.WriteFile(conf, []byte(bad), 0o600)
		expectCode(t, 21, "stop", "--kill", id)
		os.WriteFile(conf, good, 0o600)
		must(t, "stop", "--kill", id)
		waitUnlocked(t, id)
	}

	// What a killed command left is repaired first: a group left, a stale run state. Where
	// systemd places the groups, a stopped VPS has none to leave: its scope went, groups and
	// all, with the scope's last process.
	if g := groupDir("pids", id); !(cgroupV2() && systemdHost()) {
		if err := os.Mkdir(g, 0o755); err != nil {
			t.Fatal(err)
		}
		destroyed("a group left", vpsctl(t, "destroy", id))
		if _, err := os.Stat(g); !os.IsNotExist(err) {
			t.Fatalf("the group a repair should have removed is there: %v", err)
		}
	} else {
		must(t, "destroy", id)
		waitTmpEmpty(t, 10*time.Second)
	}
	must(t, "create", id, "--template", "busybox", "--name", "fastd")
	if err := os.WriteFile(filepath.Join(root, "vps", id, "run.json"), []byte(`{"monitor_pid":999999,"init_pid":999998,"phase":"running"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	destroyed("a stale run state", vpsctl(t, "destroy", id))

	// destroy --force of a running VPS with the global lock held: it stops it, then names the
	// holder (exit 9); the VPS is left stopped, its groups gone once the lock is free.
	must(t, "create", id, "--template", "busybox", "--name", "fastd")
	must(t, "start", id)
	release := holdLockNoted(t, ".global")
	r := vpsctl(t, "destroy", "--force", id)
	release()
	if r.code != 9 || !strings.Contains(r.err, "state root: locked by another vpsctl (pid 1: vpsctl test-holder)") {
		t.Fatalf("destroy --force with the global lock held: exit %d: %s", r.code, r.err)
	}
	if st := status(t, id).State; st != "stopped" {
		t.Fatalf("after a destroy --force that could not lock the state root: %s", st)
	}
	waitUnlocked(t, id)
	if g := vpsGroups(id); len(g) > 0 {
		t.Fatalf("groups left once the lock is free: %v", g)
	}
	must(t, "destroy", id)
	waitTmpEmpty(t, 10*time.Second)

	// The commit's two steps failing (no staging directory; the rename refused): the error,
	// the VPS untouched, nothing left in tmp/.
	must(t, "create", id, "--template", "busybox", "--name", "fastd")
	for _, dir := range []string{"tmp", "vps"} {
		undo := immutable(t, filepath.Join(root, dir))
		r := vpsctl(t, "destroy", id)
		undo()
		if r.code != 3 || !strings.Contains(r.err, "operation not permitted") {
			t.Fatalf("destroy with %s/ immutable: exit %d: %s", dir, r.code, r.err)
		}
		if st := status(t, id).State; st != "stopped" {
			t.Fatalf("destroy with %s/ immutable changed the VPS: %s", dir, st)
		}
		if ents, _ := os.ReadDir(filepath.Join(root, "tmp")); len(ents) > 0 {
			t.Fatalf("destroy with %s/ immutable left %v in tmp/", dir, ents)
		}
	}
	must(t, "destroy", id)
	waitTmpEmpty(t, 10*time.Second)

	// A mount a killed command left below the VPS's directory is detached, not deleted into.
	must(t, "create", id, "--template", "busybox", "--name", "fastd")
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "keep"), []byte("host data"), 0o644); err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(root, "vps", id, "stray mount")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(outside, mnt, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	destroyed("a mount below", vpsctl(t, "destroy", id))
	if b, err := os.ReadFile(filepath.Join(outside, "keep")); err != nil || string(b) != "host data" {
		t.Fatalf("the destroy deleted through a mount: %q %v", b, err)
	}
	if mi, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mi), "stray\\040mount") {
		t.Fatal("the mount below the VPS's directory is still there")
	}
}
