package container

// Owning vs effective VPS (the seed's master_container vs container, set_current_container).
//
// A process's owning VPS is where the kernel put it (its cgroup and PID namespace); vpsctl itself
// is always owned by the host. To act inside a VPS (set its hostname, configure its network,
// read its files), the host switches the EFFECTIVE VPS of one OS thread: setns(2) into the VPS's
// namespaces, run a function, switch back. Namespaces belong to threads, not processes, and the
// Go scheduler moves goroutines between threads, so RunIn does this on a dedicated goroutine
// locked to its thread, and other goroutines never run on that thread while it is switched.
//
// Invariants:
//   - A thread is handed back to the Go scheduler only after every namespace was restored and
//     /proc/thread-self/ns/* was checked to match what it was before. Otherwise (restore failed,
//     the mount namespace was joined, fn called runtime.Goexit) the goroutine exits still
//     locked and the Go runtime terminates the thread (vishvananda/netns#17 and
//     containernetworking/plugins#455 are what happens when such a thread is reused).
//   - The user namespace is never joined: the kernel refuses setns(CLONE_NEWUSER) in a
//     multithreaded process (EINVAL), and every Go program is multithreaded. Commands that must
//     run as the VPS's users go through a pre-runtime (cgo constructor) join instead.

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// NS is a set of namespace types.
type NS int

// Namespace types, in the order RunIn joins them (mnt last: after it, paths resolve in the VPS).
const (
	NSUTS NS = 1 << iota
	NSIPC
	NSNet
	NSMnt
	NSPid
	NSCgroup
	NSUser
)

// ErrUserNS reports an attempt to switch a thread's user namespace, which the kernel refuses
// in a multithreaded process such as any Go program.
var ErrUserNS = errors.New("cannot join a user namespace from a running Go program")

// effNSKind describes a namespace type: its /proc/PID/ns file name, clone flag, and the
// /proc/thread-self/ns file that holds what setns changes for this thread (for pid that is
// pid_for_children: setns(CLONE_NEWPID) moves only the thread's future children).
type effNSKind struct {
	ns         NS
	name       string
	flag       int
	threadFile string
}

// effNSTable lists the namespace types in the order RunIn joins them.
var effNSTable = []effNSKind{
	{NSUTS, "uts", unix.CLONE_NEWUTS, "uts"},
	{NSIPC, "ipc", unix.CLONE_NEWIPC, "ipc"},
	{NSNet, "net", unix.CLONE_NEWNET, "net"},
	{NSCgroup, "cgroup", unix.CLONE_NEWCGROUP, "cgroup"},
	{NSPid, "pid", unix.CLONE_NEWPID, "pid_for_children"},
	{NSMnt, "mnt", unix.CLONE_NEWNS, "mnt"},
	{NSUser, "user", unix.CLONE_NEWUSER, "user"},
}

const effAllNS = NSUTS | NSIPC | NSNet | NSMnt | NSPid | NSCgroup | NSUser

// String lists the set's names in constant order, comma-separated ("uts,ipc,net"); unknown bits
// are shown in hex. The empty set is "".
func (n NS) String() string {
	var names []string
	for b := NSUTS; b <= NSUser; b <<= 1 {
		if n&b == 0 {
			continue
		}
		for _, e := range effNSTable {
			if e.ns == b {
				names = append(names, e.name)
			}
		}
	}
	if rest := n &^ effAllNS; rest != 0 {
		names = append(names, "0x"+strconv.FormatUint(uint64(uint(rest)), 16))
	}
	return strings.Join(names, ",")
}

// RunIn runs fn on a dedicated OS thread whose namespaces listed in ns are those of process
// pid, and returns fn's error. The calling goroutine and every other goroutine keep their
// namespaces throughout.
//
//   - NSUser is refused with ErrUserNS (see the invariants above); unknown bits with EINVAL.
//   - NSPid changes only the namespace of children fn starts (setns(2) moves a thread's
//     pid_for_children, never the thread itself): fn's own getpid() stays a host PID.
//   - NSMnt first unshares the thread's filesystem attributes (CLONE_FS: the kernel refuses a
//     mount namespace switch to a thread sharing its root and cwd with others), and cannot be
//     undone cleanly, so that thread is never reused: it is terminated after fn. RunIn never
//     switches the process's main thread, which Go would park forever instead of ending and
//     whose namespaces the kernel reports as the whole process's.
//   - Namespaces are restored even when fn fails or panics. A panic is re-raised in the caller's
//     goroutine with the same value once the thread is restored (or left to die), so callers see
//     an ordinary panic; the stack trace is then RunIn's, not fn's.
//
// fn runs on the locked thread; goroutines it starts do NOT run in the VPS's namespaces.
// Children fn starts with a Pdeathsig are signalled when that thread exits (NSMnt), not when
// vpsctl does.
func RunIn(pid int, ns NS, fn func() error) error {
	if ns&NSUser != 0 {
		return fmt.Errorf("join namespaces %s of process %d: %w", ns, pid, ErrUserNS)
	}
	if ns&^effAllNS != 0 {
		return fmt.Errorf("join namespaces %s of process %d: unknown namespace type: %w", ns, pid, unix.EINVAL)
	}
	out := make(chan effResult, 1)
	go effRunLocked(pid, ns, fn, out)
	r := <-out
	if r.panicked {
		panic(r.panicValue)
	}
	return r.err
}

type effResult struct {
	err        error
	panicked   bool
	panicValue any
}

// errEffGoexit is returned when fn ends its goroutine with runtime.Goexit.
var errEffGoexit = errors.New("function run in a VPS's namespaces called runtime.Goexit")

type effNSFile struct {
	ns   NS
	flag int
	fd   int
	path string
}

// effRunLocked is RunIn's worker goroutine: it locks its thread, switches, runs fn, restores,
// and sends the outcome on out. It unlocks the thread only when handing it back is safe.
func effRunLocked(pid int, ns NS, fn func() error, out chan<- effResult) {
	runtime.LockOSThread()
	if unix.Gettid() == unix.Getpid() {
		// This is the main thread, the one thread that must never be left switched: Go parks
		// it forever instead of ending it, and the kernel shows the main thread's namespaces
		// as the whole process's (/proc/self/ns/*, /proc/self/mountinfo), so every later
		// reader would take the VPS for the host. Keep it locked, hence busy, while another
		// goroutine (necessarily on another thread) does the work.
		done := make(chan struct{})
		go func() {
			defer close(done)
			effRunLocked(pid, ns, fn, out)
		}()
		<-done
		runtime.UnlockOSThread() // never switched
		return
	}
	res := effResult{err: errEffGoexit}
	handBack := false // only set once the thread is provably back where it was
	var fds []effNSFile
	defer func() {
		for _, f := range fds {
			unix.Close(f.fd)
		}
		if handBack {
			runtime.UnlockOSThread()
		} // else: the goroutine ends locked and the runtime terminates the thread.
		out <- res
	}()

	// Open everything before joining anything: after setns(CLONE_NEWNS), paths resolve in the
	// VPS's tree. The VPS's fds come through one /proc/PID directory so they all belong to
	// the same process even if pid is reused meanwhile.
	var target, saved []effNSFile
	dir, err := effOpenProcDir(strconv.Itoa(pid))
	if err != nil {
		res.err = err
		handBack = true // nothing switched yet
		return
	}
	for _, e := range effNSTable {
		if ns&e.ns == 0 {
			continue
		}
		t, err := effOpenNS(dir, "/proc/"+strconv.Itoa(pid), "ns/"+e.name, e)
		if err == nil {
			fds = append(fds, t)
			target = append(target, t)
			var s effNSFile
			s, err = effOpenNS(unix.AT_FDCWD, "", "/proc/thread-self/ns/"+e.threadFile, e)
			if err == nil {
				fds = append(fds, s)
				saved = append(saved, s)
			}
		}
		if err != nil {
			unix.Close(dir)
			res.err = err
			handBack = true
			return
		}
	}
	unix.Close(dir)
	before, err := effInodes(saved)
	if err != nil {
		res.err = err
		handBack = true
		return
	}

	if ns&NSMnt != 0 {
		// From here on the thread has its own root and cwd: never hand it back.
		if err := effRetry(func() error { return unix.Unshare(unix.CLONE_FS) }); err != nil {
			res.err = os.NewSyscallError("unshare CLONE_FS", err)
			return
		}
	}
	joined := 0
	for _, t := range target {
		if err := effRetry(func() error { return unix.Setns(t.fd, t.flag) }); err != nil {
			res.err = &os.PathError{Op: "setns", Path: t.path, Err: err}
			break
		}
		joined++
	}
	if joined == len(target) {
		res.err = effCall(fn, &res)
	}
	if ns&NSMnt != 0 {
		return // the thread dies with the goroutine; restoring the others would change nothing
	}
	for i := joined - 1; i >= 0; i-- {
		s := saved[i]
		if err := effRetry(func() error { return unix.Setns(s.fd, s.flag) }); err != nil {
			if res.err == nil && !res.panicked {
				res.err = fmt.Errorf("restore namespace: %w", &os.PathError{Op: "setns", Path: s.path, Err: err})
			}
			return
		}
	}
	// Trust but verify: a thread is handed back only if it is exactly where it was.
	now, err := effThreadInodes(ns)
	if err != nil || len(now) != len(before) {
		return
	}
	for k, v := range before {
		if now[k] != v {
			return
		}
	}
	handBack = true
}

// effCall runs fn, turning a panic into res.panicked so that restoring still happens.
func effCall(fn func() error, res *effResult) (err error) {
	defer func() {
		if v := recover(); v != nil { // panic(nil) arrives as *runtime.PanicNilError, not nil
			res.panicked, res.panicValue = true, v
			err = nil
		}
	}()
	return fn()
}

func effOpenProcDir(pid string) (int, error) {
	path := "/proc/" + pid
	var fd int
	err := effRetry(func() (err error) {
		fd, err = unix.Open(path, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return fd, nil
}

// effOpenNS opens namespace file name relative to dir (whose path is dirPath, for errors).
func effOpenNS(dir int, dirPath, name string, e effNSKind) (effNSFile, error) {
	path := name
	if dirPath != "" {
		path = dirPath + "/" + name
	}
	var fd int
	err := effRetry(func() (err error) {
		fd, err = unix.Openat(dir, name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		return err
	})
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			err = fmt.Errorf("%w: %w", err, os.ErrNotExist) // the process exited meanwhile
		}
		return effNSFile{}, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return effNSFile{ns: e.ns, flag: e.flag, fd: fd, path: path}, nil
}

func effInodes(files []effNSFile) (NSInodes, error) {
	m := make(NSInodes, len(files))
	for _, f := range files {
		var st unix.Stat_t
		if err := effRetry(func() error { return unix.Fstat(f.fd, &st) }); err != nil {
			return nil, &os.PathError{Op: "fstat", Path: f.path, Err: err}
		}
		m[f.ns] = st.Ino
	}
	return m, nil
}

// NSInodes maps namespace types to the inode numbers of a process's or thread's namespaces
// (what readlink /proc/PID/ns/NAME shows as NAME:[INODE]): two equal numbers mean the same
// namespace.
type NSInodes map[NS]uint64

// ReadNSInodes returns the namespaces of process pid, all seven types; for NSPid, the
// namespace the process itself is in (/proc/PID/ns/pid). Types the kernel lacks are left out.
// A process that does not exist gives an error wrapping os.ErrNotExist.
func ReadNSInodes(pid int) (NSInodes, error) {
	dir, err := effOpenProcDir(strconv.Itoa(pid))
	if err != nil {
		return nil, err
	}
	defer unix.Close(dir)
	m := make(NSInodes, len(effNSTable))
	for _, e := range effNSTable {
		var st unix.Stat_t
		err := effRetry(func() error { return unix.Fstatat(dir, "ns/"+e.name, &st, 0) })
		if errors.Is(err, unix.ENOENT) {
			continue
		}
		if err != nil {
			if errors.Is(err, unix.ESRCH) {
				err = fmt.Errorf("%w: %w", err, os.ErrNotExist)
			}
			return nil, &os.PathError{Op: "stat", Path: "/proc/" + strconv.Itoa(pid) + "/ns/" + e.name, Err: err}
		}
		m[e.ns] = st.Ino
	}
	return m, nil
}

func effThreadInodes(ns NS) (NSInodes, error) {
	runtime.LockOSThread() // nests with a caller's lock
	defer runtime.UnlockOSThread()
	m := make(NSInodes, len(effNSTable))
	for _, e := range effNSTable {
		if ns&e.ns == 0 {
			continue
		}
		path := "/proc/thread-self/ns/" + e.threadFile
		var st unix.Stat_t
		err := effRetry(func() error { return unix.Stat(path, &st) })
		if errors.Is(err, unix.ENOENT) {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "stat", Path: path, Err: err}
		}
		m[e.ns] = st.Ino
	}
	return m, nil
}

// effRetry runs a system call wrapper until it fails with something other than EINTR.
func effRetry(f func() error) error {
	for {
		if err := f(); !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}
