package prestart

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A spawner forked before the Go runtime exists only in a process the gate forked one for: a
// copy of this test binary started with the monitor's stage (prestart.c) runs the checks below
// and reports.
const childEnv = "_PRESTART_TEST_CHILD"

// dirEnv names the child's scratch directory.
const dirEnv = "_PRESTART_TEST_DIR"

func TestMain(m *testing.M) {
	switch mode := os.Getenv(childEnv); mode {
	case "":
		os.Exit(m.Run())
	case "clone", "preclone", "preclone-cgroup", "preclone-badmap", "preclone-unreachable", "goahead":
		os.Exit(report(spawnerClone(mode)))
	case "reclaim":
		if !haveSpawner() {
			os.Exit(report(errors.New("a `run` has no spawner")))
		}
		os.Exit(report(reclaimCheck(os.Getenv(dirEnv))))
	default:
		// Never the tests again: a child that ran them would start children of its own.
		os.Exit(report(fmt.Errorf("%s=%s: no such check", childEnv, mode)))
	}
}

func haveSpawner() bool {
	spawner.Lock()
	defer spawner.Unlock()
	return spawner.fd >= 0
}

func report(err error) int {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func runChild(t *testing.T, mode string) {
	t.Helper()
	requireRoot(t)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), StageEnv+"=monitor", childEnv+"="+mode, dirEnv+"="+t.TempDir())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", mode, err, out)
	}
}

// TestSpawnerClone: the spawner clones a child of this process into new namespaces, maps it,
// hands it exactly its stdio and init socket and makes it the namespace's root, then runs
// initchild.c; a refused clone or map is an error with no child left behind. The child it
// cloned in advance (other namespaces were asked for) is discarded and reaped.
func TestSpawnerClone(t *testing.T) { runChild(t, "clone") }

// TestSpawnerPreclone: the child the spawner cloned in advance (in new namespaces, ours, not
// mapped) becomes the init child when the boot asks for those namespaces, just as one cloned
// on request; with a refused map it is killed and reaped; for a working directory it could not
// walk into, or a boot into a cgroup2 group, a child is cloned on request instead.
func TestSpawnerPreclone(t *testing.T) {
	runChild(t, "preclone")
	runChild(t, "preclone-cgroup")
	runChild(t, "preclone-badmap")
	runChild(t, "preclone-unreachable")
}

// TestInitChildGoAhead: an init child given its config builds the VPS's special file systems
// and waits for the go-ahead; a go-ahead it cannot follow (tasks files other than it says, a
// key it does not know, a tasks file that refuses the write) ends it before the pivot, with the
// step and errno reported on its socket (initchild.c's join_groups) and nothing else done.
func TestInitChildGoAhead(t *testing.T) { runChild(t, "goahead") }

// TestSpawnerReclaim: the spawner, become the remover, closes the held files, removes the
// groups (subgroups included), the lock file and then the directory.
func TestSpawnerReclaim(t *testing.T) { runChild(t, "reclaim") }

// TestExecReclaim: the same job, done by an exec'd remover (this process has no spawner).
func TestExecReclaim(t *testing.T) {
	requireRoot(t)
	if haveSpawner() {
		t.Fatal("a test process has a spawner")
	}
	if err := reclaimCheck(t.TempDir()); err != nil {
		t.Fatal(err)
	}
}

// children lists this process's children.
func children() []string {
	var out []string
	tasks, _ := os.ReadDir("/proc/self/task")
	for _, task := range tasks {
		b, _ := os.ReadFile("/proc/self/task/" + task.Name() + "/children")
		out = append(out, strings.Fields(string(b))...)
	}
	return out
}

// spawnerClone checks the spawner's clones: mode "clone" one cloned on request (other flags
// than those of the child it cloned in advance, which it then discards), "preclone" that child,
// "preclone-badmap" that child refused its map.
func spawnerClone(mode string) error {
	if !haveSpawner() {
		return errors.New("a `run` has no spawner")
	}
	runtime.LockOSThread()
	ns, err := unix.Open("/proc/thread-self/ns/mnt", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	cwd, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	ours, theirs := os.NewFile(uintptr(fds[0]), "ours"), os.NewFile(uintptr(fds[1]), "theirs")
	const host = 3000000000
	req := CloneRequest{Flags: unix.CLONE_NEWUSER | unix.CLONE_NEWNS | unix.CLONE_NEWPID, MapHost: host, MapSize: 65536,
		MountNS: ns, Cwd: cwd, CwdPath: "/", Stdin: null, Stdout: null, Stderr: null, Sock: theirs, CgroupFD: -1}
	spawnerOnly := fmt.Sprint([]string{strconv.Itoa(spawner.pid)})

	// The child cloned in advance (while this process started): ours too, in namespaces of its
	// own, not mapped yet.
	pre := ""
	for deadline := time.Now().Add(5 * time.Second); pre == "" && time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		for _, c := range children() {
			if c != strconv.Itoa(spawner.pid) {
				pre = c
			}
		}
	}
	if len(children()) != 2 || pre == "" {
		return fmt.Errorf("children %v: want the spawner %d and a child cloned in advance", children(), spawner.pid)
	}
	if m, err := os.ReadFile("/proc/" + pre + "/uid_map"); err != nil || len(m) != 0 {
		return fmt.Errorf("the child cloned in advance has uid_map %q (%v), want none yet", m, err)
	}
	if a, _ := os.Readlink("/proc/" + pre + "/ns/net"); a == "" || a == must(os.Readlink("/proc/self/ns/net")) {
		return fmt.Errorf("the child cloned in advance shares our network namespace (%s)", a)
	}

	switch mode {
	case "goahead":
		return goAheadRefused(req, host)
	case "preclone-badmap":
		bad := req
		bad.Flags = precloneFlags
		bad.MapHost = 1<<32 - 100 // past the end of the ID space: the kernel refuses the map
		if _, err := CloneInit(bad); !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("the child cloned in advance with a refused map: %v, want EINVAL", err)
		}
		if now := fmt.Sprint(children()); now != spawnerOnly {
			return fmt.Errorf("children after a refused map: %s, want the spawner only", now)
		}
		CloseSpawner()
		return nil
	case "preclone-unreachable":
		// A working directory the child cloned in advance could not walk into (below a
		// directory only another user may search): a child is cloned on request instead, and
		// the one cloned in advance is discarded and reaped.
		base := filepath.Join(os.Getenv(dirEnv), "alice")
		dir := filepath.Join(base, "state", "root")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := os.Chown(base, 12345, 12345); err != nil {
			return err
		}
		if err := os.Chmod(base, 0o700); err != nil {
			return err
		}
		cwd2, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		req.Flags, req.Cwd, req.CwdPath = precloneFlags, cwd2, dir
		pid, err := CloneInit(req)
		unix.Close(cwd2)
		if err != nil {
			return fmt.Errorf("clone: %w", err)
		}
		if strconv.Itoa(pid) == pre {
			return fmt.Errorf("the child cloned in advance (%s) was used for a directory it cannot reach", pre)
		}
		if kids := children(); len(kids) != 2 || !slices.Contains(kids, strconv.Itoa(pid)) {
			return fmt.Errorf("children %v: want the spawner and the new child %d (the other reaped)", kids, pid)
		}
		theirs.Close()
		return checkInitChild(pid, ours, host)
	case "preclone":
		req.Flags = precloneFlags
		pid, err := CloneInit(req)
		if err != nil {
			return fmt.Errorf("clone: %w", err)
		}
		if strconv.Itoa(pid) != pre {
			return fmt.Errorf("the clone is %d, not the child cloned in advance %s", pid, pre)
		}
		theirs.Close()
		return checkInitChild(pid, ours, host)
	case "preclone-cgroup":
		// Into a cgroup2 group (a hybrid host's unified tree, or a pure v2 host's): a child is
		// cloned into it (CLONE_INTO_CGROUP), not the one cloned in advance moved there (a
		// move by PID waits for a grace period), which is discarded and reaped.
		req.Flags = precloneFlags
		v2 := "/sys/fs/cgroup/unified"
		if _, err := os.Stat(v2 + "/cgroup.procs"); err != nil {
			v2 = "/sys/fs/cgroup"
		}
		group := fmt.Sprintf("vpsctl-test-preclone-%d", os.Getpid())
		if err := os.Mkdir(filepath.Join(v2, group), 0o755); err != nil {
			return err
		}
		defer os.Remove(filepath.Join(v2, group))
		cg, err := unix.Open(filepath.Join(v2, group), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		req.CgroupFD = cg
		pid, err := CloneInit(req)
		unix.Close(cg)
		if err != nil {
			return fmt.Errorf("clone: %w", err)
		}
		if strconv.Itoa(pid) == pre {
			return fmt.Errorf("the child cloned in advance (%s) was moved into the group", pre)
		}
		if kids := children(); len(kids) != 2 || !slices.Contains(kids, strconv.Itoa(pid)) {
			return fmt.Errorf("children %v: want the spawner and the new child %d (the other reaped)", kids, pid)
		}
		if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid)); !strings.Contains(string(b), "0::/"+group+"\n") {
			return fmt.Errorf("the child's cgroups:\n%s\nwant 0::/%s", b, group)
		}
		theirs.Close()
		return checkInitChild(pid, ours, host)
	}

	bad := req
	bad.MountNS = int(null.Fd()) // not a namespace: setns refuses, nothing is cloned
	if _, err := CloneInit(bad); !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("clone from a non-namespace: %v, want EINVAL", err)
	}
	// Other flags than the child cloned in advance has: it is discarded (and reaped).
	if now := fmt.Sprint(children()); now != spawnerOnly {
		return fmt.Errorf("children after a refused clone: %s, want the spawner only", now)
	}
	bad = req
	bad.MapHost = 1<<32 - 100
	if _, err := CloneInit(bad); !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("clone with a refused map: %v, want EINVAL", err)
	}
	if now := fmt.Sprint(children()); now != spawnerOnly {
		return fmt.Errorf("children after refused clones: %s, want the spawner only", now)
	}
	pid, err := CloneInit(req)
	if err != nil {
		return fmt.Errorf("clone: %w", err)
	}
	theirs.Close()
	return checkInitChild(pid, ours, host)
}

// goAheadRefused clones an init child per bad go-ahead (req as spawnerClone made it, the flags of
// the child cloned in advance), sends it a config with a root of its own (a directory the
// VPS's root user owns, detached) and the go-ahead, and checks the child's report and exit.
func goAheadRefused(req CloneRequest, host int) error {
	root := filepath.Join(os.Getenv(dirEnv), "root")
	for _, d := range []string{root, filepath.Join(root, "proc"), filepath.Join(root, "sys"), filepath.Join(root, "dev"), filepath.Join(root, "run")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
		if err := os.Chown(d, host, host); err != nil {
			return err
		}
	}
	cases := []struct {
		name    string
		goAhead *Msg
		file    string // sent with the go-ahead ("": none)
		stage   string
		errno   unix.Errno
	}{
		{"count", (&Msg{}).AddInt("tasks", 2), os.DevNull, "go-ahead: 1 tasks files for 2", unix.EBADF},
		{"key", (&Msg{}).AddInt("tasks", 0).Add("later", "1"), "", "go-ahead key later", 0},
		{"write", (&Msg{}).AddInt("tasks", 1), "/dev/full", "join cgroup", unix.ENOSPC},
	}
	for _, c := range cases {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		ours, theirs := os.NewFile(uintptr(fds[0]), "ours"), os.NewFile(uintptr(fds[1]), "theirs")
		r := req
		r.Flags, r.Sock = precloneFlags, theirs
		pid, err := CloneInit(r)
		theirs.Close()
		if err != nil {
			ours.Close()
			return fmt.Errorf("%s: clone: %w", c.name, err)
		}
		report, err := refusedGoAhead(ours, root, c.goAhead, c.file)
		ours.Close()
		var ws unix.WaitStatus
		if got, werr := unix.Wait4(pid, &ws, 0, nil); got != pid {
			return fmt.Errorf("%s: wait for the child %d: %v", c.name, pid, werr)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		errno := unix.Errno(binary.NativeEndian.Uint32(report))
		stage, _, _ := strings.Cut(string(report[4:]), "\x00")
		if stage != c.stage || (c.errno != 0 && errno != c.errno) {
			return fmt.Errorf("%s: the child reported %q (%v), want %q (%v)", c.name, stage, errno, c.stage, c.errno)
		}
		if !ws.Exited() || ws.ExitStatus() != 1 {
			return fmt.Errorf("%s: the child ended %v, want exit 1", c.name, ws)
		}
	}
	CloseSpawner()
	return nil
}

// refusedGoAhead sends an init child its config (a detached mount of root as its root, nothing
// else mounted, no cgroup view) and, once it has built its special file systems, goAhead with
// file, if any; it returns the child's report (struct init_error).
func refusedGoAhead(sock *os.File, root string, goAhead *Msg, file string) ([]byte, error) {
	tree, err := unix.OpenTree(unix.AT_FDCWD, root, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("open_tree: %w", err)
	}
	defer unix.Close(tree)
	cfg, err := (&Msg{}).AddInt("ns", precloneFlags).Add("console", os.DevNull).Add("runsize", "1m").Add("shmsize", "1m").
		Add("arg", "/bin/true").Bytes()
	if err != nil {
		return nil, err
	}
	fd := int(sock.Fd())
	if err := unix.Sendmsg(fd, cfg, unix.UnixRights(tree), nil, 0); err != nil {
		return nil, fmt.Errorf("send the config: %w", err)
	}
	b, err := goAhead.Bytes()
	if err != nil {
		return nil, err
	}
	var rights []byte
	if file != "" {
		f, err := os.OpenFile(file, os.O_WRONLY, 0)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		rights = unix.UnixRights(int(f.Fd()))
	}
	if err := unix.Sendmsg(fd, b, rights, nil, 0); err != nil {
		return nil, fmt.Errorf("send the go-ahead: %w", err)
	}
	// The report, or EOF if the child went on (it would exec /bin/true, which the root lacks:
	// a report too, of another step).
	tv := unix.Timeval{Sec: 5}
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	report := make([]byte, 256)
	n, err := unix.Read(fd, report)
	if err != nil || n != len(report) {
		return nil, fmt.Errorf("the child's report: %d bytes, %v; want struct init_error", n, err)
	}
	return report, nil
}

// precloneFlags are spawner.c's PRECLONE_FLAGS.
const precloneFlags = unix.CLONE_NEWUSER | unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWNET | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC

func must(s string, _ error) string { return s }

// checkInitChild: the clone pid runs initchild.c, waiting for its config on ours, as root of its
// user namespace (host ID host), PID 1 of its own PID namespace, with fds 0-3 only; it is our
// child, and the spawner leaves when closed.
func checkInitChild(pid int, ours *os.File, host int) error {
	proc := "/proc/" + strconv.Itoa(pid)
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, _ := os.ReadFile(proc + "/status")
		if strings.Contains(string(st), fmt.Sprintf("\nUid:\t%d\t%d\t%d\t%d\n", host, host, host, host)) {
			if !strings.Contains(string(st), fmt.Sprintf("\nNSpid:\t%d\t1\n", pid)) {
				return fmt.Errorf("the child is not PID 1 of a namespace of its own:\n%s", st)
			}
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the child never became its namespace's root:\n%s", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if m, _ := os.ReadFile(proc + "/uid_map"); strings.Join(strings.Fields(string(m)), " ") != fmt.Sprintf("0 %d 65536", host) {
		return fmt.Errorf("uid_map %q", m)
	}
	if ents, _ := os.ReadDir(proc + "/fd"); len(ents) != 4 {
		var names []string
		for _, e := range ents {
			l, _ := os.Readlink(proc + "/fd/" + e.Name())
			names = append(names, e.Name()+"="+l)
		}
		return fmt.Errorf("the child holds %v, want fds 0-3 only", names)
	}
	// Without its config it reports the failure on its socket and exits; it is our child
	// (CLONE_PARENT), reaped here.
	unix.Shutdown(int(ours.Fd()), unix.SHUT_WR)
	buf := make([]byte, 256)
	n, _ := ours.Read(buf)
	if !strings.Contains(string(buf[:min(n, len(buf))]), "monitor went away") {
		return fmt.Errorf("the child's report: %q, want initchild.c's 'monitor went away'", buf[:max(n, 0)])
	}
	var ws unix.WaitStatus
	if got, err := unix.Wait4(pid, &ws, 0, nil); got != pid {
		return fmt.Errorf("wait for the child %d: %v (not our child?)", pid, err)
	}

	CloseSpawner()
	// The spawner exits at EOF and is reaped in the background.
	for deadline := time.Now().Add(5 * time.Second); len(children()) != 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if haveSpawner() || len(children()) != 0 {
		return fmt.Errorf("after CloseSpawner: children %v", children())
	}
	if _, err := CloneInit(CloneRequest{}); !errors.Is(err, ErrNoSpawner) {
		return fmt.Errorf("clone without a spawner: %v, want ErrNoSpawner", err)
	}
	return nil
}

// reclaimCheck hands Remove a destroyed VPS's directory, two groups, the VPS's lock and a
// held file, and checks the documented order. The second group stays busy (a file in it,
// which no rmdir removes, as tasks keep a cgroup busy), so the remover retries it for 2 s:
// meanwhile the held file must be closed, the first group (with its subgroups) gone, and the
// VPS's lock file and the directory (still locked) still there, and no spare group made yet;
// after it gives up, the lock file goes, the missing spare groups are made (a full slot and a
// then the directory goes, and the busy group stays for the
// next start's repair. A spare slot whose parent is missing is skipped.
func reclaimCheck(root string) error {
	stage := filepath.Join(root, "tmp", "destroy-1-x")
	group := filepath.Join(root, "cgroup", "vpsctl", "7")
	busy := filepath.Join(root, "cgroup2", "vpsctl", "7")
	lockPath := filepath.Join(root, "locks", "7.lock")
	spare, full := filepath.Join(root, "cgroup", "vpsctl", ".spare-0"), filepath.Join(root, "cgroup", "vpsctl", ".spare-1")
	// A slot whose parent is gone (a hierarchy's vpsctl/ removed meanwhile): skipped, the rest
	// of the job goes on.
	orphan := filepath.Join(root, "cgroup3", "vpsctl", ".spare-0")
	for _, d := range []string{filepath.Join(stage, "vps", "private", "etc"), filepath.Join(group, "sub", "deeper"), busy, filepath.Dir(lockPath),
		full} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	for _, f := range []string{filepath.Join(stage, "vps", "private", "etc", "f"), filepath.Join(busy, "task"), filepath.Join(full, "kept")} {
		if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
			return err
		}
	}
	lock, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	dirLock, err := os.Open(stage)
	if err != nil {
		return err
	}
	for _, f := range []*os.File{lock, dirLock} {
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
			return err
		}
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	start := time.Now()
	job := RemoveJob{Dir: stage, DirLock: dirLock, Groups: []string{group, busy}, VPSLock: lock, VPSLockPath: lockPath,
		Spares: []string{orphan, spare, full}, Hold: []*os.File{pw}}
	if err := Remove(job); err != nil {
		return fmt.Errorf("Remove: %w", err)
	}
	for _, f := range []*os.File{lock, dirLock, pw} {
		f.Close()
	}
	exists := func(p string) bool { _, err := os.Stat(p); return err == nil }

	// While the busy group is retried.
	rfd := int(pr.Fd()) // once: Fd() puts the file back in blocking mode
	unix.SetNonblock(rfd, true)
	for {
		if n, err := unix.Read(rfd, make([]byte, 1)); n == 0 && err == nil {
			break // the held file is closed
		}
		if time.Since(start) > time.Second {
			return errors.New("the held file is not closed a second after the hand-over")
		}
		time.Sleep(5 * time.Millisecond)
	}
	for exists(group) && time.Since(start) < time.Second {
		time.Sleep(5 * time.Millisecond)
	}
	switch {
	case exists(group):
		return errors.New("the group (with subgroups) is not removed a second after the hand-over")
	case time.Since(start) > 1500*time.Millisecond:
		return fmt.Errorf("too slow to check the order (the busy group is retried for 2 s): %v", time.Since(start))
	case !exists(lockPath):
		return errors.New("the lock file went before the groups were done")
	case !exists(stage):
		return errors.New("the directory went before the groups were done")
	case exists(spare):
		return errors.New("a spare group was made before the VPS's lock was let go of")
	}
	if f, err := os.Open(stage); err == nil {
		locked := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == unix.EWOULDBLOCK
		f.Close()
		if !locked {
			return errors.New("the directory is not locked while the remover works")
		}
	}

	// After it gave up on the busy group.
	for exists(stage) {
		if time.Since(start) > 10*time.Second {
			return fmt.Errorf("%s not removed within 10s", stage)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if exists(lockPath) {
		return errors.New("the directory went, the lock file did not")
	}
	switch {
	case !exists(spare):
		return errors.New("the missing spare group was not made")
	case !exists(filepath.Join(full, "kept")):
		return errors.New("a spare slot already full was touched")
	case exists(orphan):
		return errors.New("a spare was made with its parents")
	}
	if !exists(busy) {
		return errors.New("the busy group was removed (rmdir of a non-empty directory?)")
	}
	return nil
}
