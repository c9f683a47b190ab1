package container

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vpsctl/vpsctl/uts"
)

func TestNSString(t *testing.T) {
	for n, want := range map[NS]string{
		0:                        "",
		NSUTS | NSIPC | NSNet:    "uts,ipc,net",
		NSUser | NSUTS:           "uts,user",
		NSMnt | NSPid | NSCgroup: "mnt,pid,cgroup",
		NSUTS | NSIPC | NSNet | NSMnt | NSPid | NSCgroup | NSUser: "uts,ipc,net,mnt,pid,cgroup,user",
		NSNet | 1<<10: "net,0x400",
	} {
		if got := n.String(); got != want {
			t.Errorf("NS(%#x).String() = %q, want %q", int(n), got, want)
		}
	}
}

// effStartTarget starts args as a process in new namespaces (cloneflags) and kills it by PID
// when the test ends. No Pdeathsig: it fires when the creating THREAD exits, and these tests
// deliberately end threads (golang/go#27505).
func effStartTarget(t *testing.T, cloneflags uintptr, args ...string) int {
	t.Helper()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: cloneflags}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Errorf("target %d did not exit within 10s of SIGKILL", pid)
		}
	})
	return pid
}

// effThreadNS reads the namespaces of thread tid of this process, if it still exists.
func effThreadNS(tid int, name string) (uint64, bool) {
	var st unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/self/task/%d/ns/%s", tid, name), &st); err != nil {
		return 0, false
	}
	return st.Ino, true
}

// effCheckRestored checks that thread tid, if it still exists, is back in our namespaces.
func effCheckRestored(t *testing.T, tid int, host NSInodes) {
	t.Helper()
	for _, c := range []struct {
		ns   NS
		name string
	}{{NSUTS, "uts"}, {NSNet, "net"}, {NSIPC, "ipc"}, {NSPid, "pid_for_children"}} {
		if ino, ok := effThreadNS(tid, c.name); ok && ino != host[c.ns] {
			t.Errorf("thread %d still in %s namespace %d after RunIn (host: %d)", tid, c.name, ino, host[c.ns])
		}
	}
}

func effHostNS(t *testing.T) NSInodes {
	t.Helper()
	host, err := ReadNSInodes(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	return host
}

func TestRunInHostname(t *testing.T) {
	requireRoot(t)
	target := effStartTarget(t, syscall.CLONE_NEWUTS|syscall.CLONE_NEWNET|syscall.CLONE_NEWIPC, "sleep", "30")
	hostBefore, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	name := "vpsctl-effective-test-" + strconv.Itoa(os.Getpid())
	if err := RunIn(target, NSUTS, func() error { return uts.Apply(name, "test.invalid") }); err != nil {
		t.Fatal(err)
	}
	var node, domain string
	err = RunIn(target, NSUTS, func() error {
		var u unix.Utsname
		if err := unix.Uname(&u); err != nil {
			return err
		}
		node, domain = unix.ByteSliceToString(u.Nodename[:]), unix.ByteSliceToString(u.Domainname[:])
		return nil
	})
	if err != nil || node != name || domain != "test.invalid" {
		t.Fatalf("target's names %q %q, %v; want %q", node, domain, err, name)
	}
	if h, _ := os.Hostname(); h != hostBefore {
		t.Fatalf("host's hostname changed from %q to %q", hostBefore, h)
	}
}

func TestRunInRestoresThread(t *testing.T) {
	requireRoot(t)
	target := effStartTarget(t, syscall.CLONE_NEWUTS|syscall.CLONE_NEWNET|syscall.CLONE_NEWIPC, "sleep", "30")
	want, err := ReadNSInodes(target)
	if err != nil {
		t.Fatal(err)
	}
	host := effHostNS(t)
	for _, ns := range []NS{NSUTS, NSNet, NSIPC} {
		if want[ns] == host[ns] {
			t.Fatalf("target shares the host's %s namespace", ns)
		}
	}

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	before, err := threadNSInodes()
	if err != nil {
		t.Fatal(err)
	}
	var inside NSInodes
	tid := 0
	err = RunIn(target, NSUTS|NSNet|NSIPC, func() error {
		tid = unix.Gettid()
		var err error
		inside, err = threadNSInodes()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if tid == unix.Gettid() || tid == os.Getpid() {
		t.Error("fn ran on the caller's or the main thread, not a dedicated one")
	}
	for _, ns := range []NS{NSUTS, NSNet, NSIPC} {
		if inside[ns] != want[ns] {
			t.Errorf("inside fn: %s namespace %d, want the target's %d", ns, inside[ns], want[ns])
		}
	}
	for _, ns := range []NS{NSMnt, NSPid, NSCgroup, NSUser} {
		if inside[ns] != host[ns] {
			t.Errorf("inside fn: %s namespace switched although not asked", ns)
		}
	}
	after, err := threadNSInodes()
	if err != nil {
		t.Fatal(err)
	}
	for ns, v := range before {
		if after[ns] != v {
			t.Errorf("caller's thread: %s namespace %d -> %d", ns, v, after[ns])
		}
	}
	effCheckRestored(t, tid, host)
}

// TestRunInIsolation runs many RunIn calls while other goroutines, locked and unlocked, keep
// reading their thread's namespaces: none ever sees the target's.
func TestRunInIsolation(t *testing.T) {
	requireRoot(t)
	target := effStartTarget(t, syscall.CLONE_NEWUTS|syscall.CLONE_NEWNET|syscall.CLONE_NEWIPC, "sleep", "30")
	want, err := ReadNSInodes(target)
	if err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var seen, reads atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func(locked bool) {
			defer wg.Done()
			if locked {
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
			}
			for n := 0; n < 100000 && !stop.Load(); n++ {
				m, err := threadNSInodes()
				if err != nil {
					t.Error(err)
					return
				}
				reads.Add(1)
				if m[NSNet] == want[NSNet] || m[NSUTS] == want[NSUTS] || m[NSIPC] == want[NSIPC] {
					seen.Add(1)
				}
				runtime.Gosched()
			}
		}(i%2 == 0)
	}
	var inFn atomic.Int64
	for i := 0; i < 300; i++ {
		err := RunIn(target, NSUTS|NSNet|NSIPC, func() error {
			m, err := threadNSInodes()
			if err == nil && m[NSNet] == want[NSNet] {
				inFn.Add(1)
			}
			runtime.Gosched() // give the scheduler every chance to misplace a goroutine
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	if inFn.Load() != 300 {
		t.Errorf("fn saw the target's net namespace %d times of 300", inFn.Load())
	}
	if seen.Load() != 0 {
		t.Errorf("other goroutines saw the target's namespaces %d times (of %d reads)", seen.Load(), reads.Load())
	}
	t.Logf("%d reads by other goroutines", reads.Load())
}

func TestRunInErrorAndPanicRestore(t *testing.T) {
	requireRoot(t)
	target := effStartTarget(t, syscall.CLONE_NEWUTS|syscall.CLONE_NEWNET|syscall.CLONE_NEWIPC, "sleep", "30")
	host := effHostNS(t)

	errFn := errors.New("fn failed")
	tid := 0
	err := RunIn(target, NSUTS|NSNet|NSIPC, func() error {
		tid = unix.Gettid()
		return fmt.Errorf("wrapped: %w", errFn)
	})
	if !errors.Is(err, errFn) {
		t.Errorf("RunIn = %v; want fn's error", err)
	}
	effCheckRestored(t, tid, host)

	type boom struct{ n int }
	var got any
	func() {
		defer func() { got = recover() }()
		_ = RunIn(target, NSUTS|NSNet|NSIPC, func() error {
			tid = unix.Gettid()
			panic(boom{42})
		})
	}()
	if got != (boom{42}) {
		t.Errorf("recovered %v; want the panic value of fn", got)
	}
	effCheckRestored(t, tid, host)

	// Goexit inside fn: an error, and the thread is not handed back.
	err = RunIn(target, NSUTS|NSNet, func() error {
		tid = unix.Gettid()
		runtime.Goexit()
		return nil
	})
	if err == nil {
		t.Error("RunIn with runtime.Goexit returned nil")
	}
	effWaitThreadGone(t, tid) // not restored: it may linger a moment in the target's namespaces, then ends

	// Still usable afterwards.
	if err := RunIn(target, NSUTS, func() error { return nil }); err != nil {
		t.Fatal(err)
	}
}

func TestRunInRefusals(t *testing.T) {
	called := false
	fn := func() error { called = true; return nil }
	if err := RunIn(os.Getpid(), NSUTS|NSUser, fn); !errors.Is(err, ErrUserNS) {
		t.Errorf("user namespace: %v", err)
	}
	if err := RunIn(os.Getpid(), NSUTS|1<<12, fn); !errors.Is(err, unix.EINVAL) {
		t.Errorf("unknown bit: %v", err)
	}
	if called {
		t.Error("fn called despite the refusal")
	}
	// PID_MAX_LIMIT is 4194304: no such process.
	if err := RunIn(5000000, NSUTS, fn); !errors.Is(err, os.ErrNotExist) || called {
		t.Errorf("missing process: %v (called %v)", err, called)
	}
	if _, err := ReadNSInodes(5000000); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadNSInodes(missing) = %v", err)
	}
}

func TestReadNSInodesSelf(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	proc, err := ReadNSInodes(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	thread, err := threadNSInodes()
	if err != nil {
		t.Fatal(err)
	}
	if len(proc) != 7 || len(thread) != 7 {
		t.Fatalf("process %v, thread %v", proc, thread)
	}
	for ns, v := range proc {
		if thread[ns] != v {
			t.Errorf("%s: process %d, thread %d", ns, v, thread[ns])
		}
	}
	link, _ := os.Readlink("/proc/self/ns/net")
	if link != fmt.Sprintf("net:[%d]", proc[NSNet]) {
		t.Errorf("net inode %d, link %q", proc[NSNet], link)
	}
}

func TestRunInPid(t *testing.T) {
	requireRoot(t)
	target := effStartTarget(t, syscall.CLONE_NEWPID, "sleep", "30")
	host := effHostNS(t)
	var out []byte
	var child, self, tid int
	err := RunIn(target, NSPid, func() error {
		tid = unix.Gettid()
		self = os.Getpid()
		cmd := exec.Command("sh", "-c", "echo $$")
		var err error
		out, err = cmd.Output()
		child = cmd.Process.Pid
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	inner, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	if inner <= 1 || inner == child || inner > 100 {
		t.Errorf("child's PID inside %d (host PID %d): not in the target's PID namespace", inner, child)
	}
	if self != os.Getpid() {
		t.Errorf("fn's own PID changed: %d", self)
	}
	effCheckRestored(t, tid, host)
}

func TestRunInMount(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	tag := "vpsctl-effective-test-" + strconv.Itoa(os.Getpid())
	// unshare(1) makes the new mount namespace's propagation private, so the tmpfs never
	// shows up on the host.
	target := effStartTarget(t, 0, "unshare", "--mount", "--propagation", "private", "sh", "-c",
		"mount -t tmpfs "+tag+" "+dir+" && echo inside > "+dir+"/probe && exec sleep 30")
	probe := filepath.Join(dir, "probe")
	deadline := time.Now().Add(10 * time.Second)
	for {
		// Readiness only, through the target's root: RunIn is what is under test.
		if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/root%s", target, probe)); string(b) == "inside\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("target did not mount its tmpfs within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	want, err := ReadNSInodes(target)
	if err != nil {
		t.Fatal(err)
	}
	host := effHostNS(t)
	if want[NSMnt] == host[NSMnt] {
		t.Fatal("target shares the host's mount namespace")
	}

	var content []byte
	var mnt uint64
	tid := 0
	err = RunIn(target, NSMnt, func() error {
		tid = unix.Gettid()
		m, err := threadNSInodes()
		mnt = m[NSMnt]
		if err != nil {
			return err
		}
		content, err = os.ReadFile(probe)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if string(content) != "inside\n" || mnt != want[NSMnt] {
		t.Errorf("inside: %q in mount namespace %d; want %q in %d", content, mnt, "inside\n", want[NSMnt])
	}
	if _, err := os.Stat(probe); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the target's tmpfs is visible on the host: %v", err)
	}
	effWaitThreadGone(t, tid)
}

// effWaitThreadGone waits (bounded) until thread tid, which must not be reused, has ended.
func effWaitThreadGone(t *testing.T, tid int) {
	t.Helper()
	if tid == os.Getpid() {
		t.Fatal("fn ran on the main thread")
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		if _, ok := effThreadNS(tid, "mnt"); !ok {
			return
		}
		if time.Now().After(deadline) {
			ino, _ := effThreadNS(tid, "mnt")
			t.Fatalf("thread %d still exists 10s after its goroutine ended locked (mount namespace %d)", tid, ino)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// effMainThreadEnv makes a re-executed test binary run effMainThreadChild from init, where the
// main goroutine is locked to the main thread: the one place a goroutine is certain to be on it.
const effMainThreadEnv = "VPSCTL_TEST_EFFECTIVE_MAIN_THREAD_TARGET"

func init() {
	if v := os.Getenv(effMainThreadEnv); v != "" {
		effMainThreadChild(v)
	}
}

// effMainThreadChild drives the RunIn worker from the main thread, with an fn that leaves its
// thread to die, and reports on stdout what happened. It never returns.
func effMainThreadChild(targetPID string) {
	target, err := strconv.Atoi(targetPID)
	if err != nil {
		fmt.Println("bad target:", err)
		os.Exit(2)
	}
	before, err := ReadNSInodes(os.Getpid())
	if err != nil {
		fmt.Println(err)
		os.Exit(2)
	}
	tid := 0
	out := make(chan effResult, 1)
	effRunLocked(target, NSUTS|NSNet, func() error {
		tid = unix.Gettid()
		runtime.Goexit() // the worker's thread is not handed back
		return nil
	}, out)
	res := <-out
	gone := false
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if _, ok := effThreadNS(tid, "net"); !ok {
			gone = true
			break
		}
	}
	after, err := ReadNSInodes(os.Getpid())
	if err != nil {
		fmt.Println(err)
		os.Exit(2)
	}
	fmt.Printf("main=%v goexit=%v gone=%v same=%v\n", tid == os.Getpid(), errors.Is(res.err, errEffGoexit),
		gone, after[NSNet] == before[NSNet] && after[NSUTS] == before[NSUTS])
	os.Exit(0)
}

// TestRunInNeverSwitchesMainThread: when RunIn's worker starts on the main thread, the work
// moves to another thread, and the process's namespaces (the main thread's, for /proc/self/ns
// and /proc/self/mountinfo) do not change even when that thread is left to die.
func TestRunInNeverSwitchesMainThread(t *testing.T) {
	requireRoot(t)
	target := effStartTarget(t, syscall.CLONE_NEWUTS|syscall.CLONE_NEWNET, "sleep", "30")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), effMainThreadEnv+"="+strconv.Itoa(target))
	cmd.WaitDelay = 5 * time.Second
	done := make(chan struct{})
	timer := time.AfterFunc(30*time.Second, func() {
		if cmd.Process != nil {
			_ = cmd.Process.Kill()
		}
		close(done)
	})
	out, err := cmd.CombinedOutput()
	if !timer.Stop() {
		<-done
		t.Fatalf("child did not finish within 30s: %s", out)
	}
	if err != nil {
		t.Fatalf("child: %v: %s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != "main=false goexit=true gone=true same=true" {
		t.Fatalf("child reports %q", got)
	}
}

// threadNSInodes returns the namespaces of the calling OS thread (/proc/thread-self/ns), all
// seven types. For NSPid it reports pid_for_children, the one setns(2) switches and RunIn
// restores. The answer is about the thread the goroutine runs on now: only meaningful on a
// goroutine that holds runtime.LockOSThread (it locks for its own duration, so all entries
// come from one thread).
func threadNSInodes() (NSInodes, error) {
	return effThreadInodes(effAllNS)
}
