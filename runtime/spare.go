package runtime

// Spare VPSs: a pool of VPSs of one template booted in advance, for `vpsctl run --rm`, the way
// Kata Containers' VM cache keeps VMs booted for the next container. A keeper process (this
// file's spareMain, a hidden mode) keeps --count of them, each booted by a worker goroutine as
// far as a run --rm's boot goes before its command is known: created, its groups made and
// limited, its init child cloned into its namespaces and groups, its root file system mounted
// (runHere, with monitor.spare set). There the boot waits for a claim on the keeper's socket:
//
//	vpsctl run --rm --template T [--hostname H] -- CMD...   (C, before the Go runtime:
//	                                                          nsenter/spareclaim.c)
//	   ──SOCK_SEQPACKET STATE/spare/T.sock──▶ keeper: one parked worker accepts
//	   claim: "VSPR" v1, hostname\0, argv\0..., fds [stdin, stdout, stderr]
//	                                             worker: /etc/hostname, the init child's config
//	                                             with the caller's stdio; the init child mounts
//	                                             /proc, /dev..., pivots, execs CMD as PID 1
//	   ◀── started                               (or fallback: the caller runs as without spares)
//	   signal number ──▶                          the init is killed (as a run's SIGINT/SIGTERM)
//	   ◀── exited, status                         the caller exits with it; the worker destroys
//	                                             the VPS as run --rm does and boots the next spare
//
// Invariants: a spare is a transient VPS (ID from transientBase) with a "spare" file naming its
// template in its directory, locked by its worker from its create to its destroy; `list` does
// not show it until it is claimed. Nothing a claim sends is trusted beyond what a run's command
// line is: the socket is root's (0600 in a 0700 directory, and the peer's credentials are
// checked), and the host name is validated as create validates it. Whatever a worker cannot
// serve (a bad host name, a boot that fails) it answers with fallback before the command has
// run, and the caller does the whole run itself, with a run's errors. The keeper holds
// STATE/spare/T.lock (flock) while it lives, its PID inside; a keeper killed outright leaves
// its spares unlocked, and the next keeper of the template destroys them.

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vpsctl/vpsctl/container"
	"github.com/vpsctl/vpsctl/internal/fault"
	"github.com/vpsctl/vpsctl/internal/sysfile"
	"github.com/vpsctl/vpsctl/internal/timerslack"
	"github.com/vpsctl/vpsctl/store"
	"github.com/vpsctl/vpsctl/template"
	"github.com/vpsctl/vpsctl/uid"
	"github.com/vpsctl/vpsctl/uts"
	"golang.org/x/sys/unix"
)

// The claim protocol: keep in step with nsenter/spareclaim.c.
const (
	claimMagic   = 0x52505356 // "VSPR" on a little-endian host; both ends use native order
	claimVersion = 1

	claimStarted  = 1 // the command runs as the VPS's PID 1
	claimExited   = 2 // with the status in code
	claimFallback = 3 // not served: nothing ran; the caller runs the command itself
)

// spareMarker is the file in a spare VPS's directory that names its template; claimedMarker
// its name once a run has claimed the spare.
const (
	spareMarker   = "spare"
	claimedMarker = "spare-claimed"
)

// MaxSpares bounds --count: each spare is a booted VPS (a UID range, groups, mounts, a
// parked init) that serves nothing until claimed.
const MaxSpares = 16

var errUnclaimed = errors.New("spare not claimed: the keeper stops")

// SpareOptions describe a keeper of spare VPSs.
type SpareOptions struct {
	Template string
	Count    int           // spares kept booted (1..MaxSpares)
	Idle     time.Duration // the keeper stops after this long without a claim (0: never)
}

// SpareKeeper describes a running keeper (`vpsctl spare list`).
type SpareKeeper struct {
	Template string `json:"template"`
	PID      int    `json:"pid"`
	Count    int    `json:"count"`
	Ready    int    `json:"ready"`  // spares booted and waiting for a claim
	Served   int64  `json:"served"` // runs whose command ran in a spare
}

func (r *Runtime) spareDir() string { return filepath.Join(r.St.Root, "spare") }

func (r *Runtime) sparePath(tpl, ext string) string {
	return filepath.Join(r.spareDir(), tpl+ext)
}

// keeperPID returns the PID of the keeper of tpl, 0 if none runs: the keeper holds a flock on
// its lock file, in which it wrote its PID.
func (r *Runtime) keeperPID(tpl string) int {
	fd, err := unix.Open(r.sparePath(tpl, ".lock"), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0
	}
	defer unix.Close(fd)
	if unix.Flock(fd, unix.LOCK_SH|unix.LOCK_NB) == nil {
		return 0 // nobody holds it
	}
	var b [32]byte
	n, _ := unix.Pread(fd, b[:], 0)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b[:max(n, 0)])))
	return pid
}

// StartSpares starts a keeper of o.Count spare VPSs of o.Template and returns once the first
// is booted, with the keeper's PID; already: a keeper of the template runs (its PID), nothing
// was started.
func (r *Runtime) StartSpares(o SpareOptions) (pid int, already bool, err error) {
	if err := template.ValidateName(o.Template); err != nil {
		return 0, false, err
	}
	if _, err := template.Rootfs(r.St, o.Template); err != nil {
		return 0, false, err
	}
	if o.Count < 1 || o.Count > MaxSpares {
		return 0, false, fmt.Errorf("--count %d: want 1 to %d: %w", o.Count, MaxSpares, ErrBadValue)
	}
	if o.Idle < 0 {
		return 0, false, fmt.Errorf("--idle %v: must not be negative: %w", o.Idle, ErrBadValue)
	}
	if err := os.MkdirAll(r.spareDir(), 0o700); err != nil {
		return 0, false, err
	}
	if pid := r.keeperPID(o.Template); pid > 0 {
		return pid, true, nil
	}
	// The log is the running keeper's (its failures and its start and end): a keeper started
	// anew starts it anew.
	logf, err := sysfile.OpenFile(r.sparePath(o.Template, ".log"), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, false, err
	}
	defer logf.Close()
	null, err := sysfile.OpenFile(os.DevNull, os.O_RDONLY, 0)
	if err != nil {
		return 0, false, err
	}
	defer null.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		return 0, false, err
	}
	defer pr.Close()
	cmd := exec.Command("/proc/self/exe", o.Template, strconv.Itoa(o.Count), o.Idle.String())
	cmd.Args[0] = "vpsctl-spare"
	cmd.Env = append([]string{modeEnv + "=spare", "VPSCTL_ROOT=" + r.St.Root}, timerslack.Env()...)
	// What the tests and benchmarks turn off reaches the keeper's boots too.
	for _, k := range []string{fault.TraceEnv, "VPSCTL_SYNC_DESTROY", "VPSCTL_NO_SPAWNER", "VPSCTL_NO_PRECLONE"} {
		if v := os.Getenv(k); v != "" {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = null, logf, logf
	cmd.ExtraFiles = []*os.File{pw}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		pw.Close()
		return 0, false, err
	}
	pw.Close()
	pid = cmd.Process.Pid
	b, _ := io.ReadAll(pr) // until the keeper has a spare booted, or has failed
	var msg readyMsg
	if json.Unmarshal(b, &msg) != nil || msg.InitPID == 0 && msg.Error == "" {
		// Died without a word: its log says why.
		cmd.Wait()
		return 0, false, fmt.Errorf("spare keeper of template %q exited (%v); see %s", o.Template, cmd.ProcessState, r.sparePath(o.Template, ".log"))
	}
	if msg.Error == "" {
		cmd.Process.Release() // it lives on, in a session of its own
	} else {
		cmd.Wait() // it stops: a start right after finds no keeper
	}
	if msg.Error != "" {
		if s, ok := startSentinels[msg.Kind]; ok {
			return 0, false, fmt.Errorf("spare VPS of template %q: %s: %w", o.Template, msg.Error, s)
		}
		return 0, false, fmt.Errorf("spare VPS of template %q: %s", o.Template, msg.Error)
	}
	return pid, false, nil
}

// StopSpares stops the keeper of tpl, which destroys its spares, and waits (at most timeout)
// until it has; false: none was running.
func (r *Runtime) StopSpares(tpl string, timeout time.Duration) (bool, error) {
	if err := template.ValidateName(tpl); err != nil {
		return false, err
	}
	pid := r.keeperPID(tpl)
	if pid <= 0 {
		r.destroyOrphanSpares(tpl) // of a keeper killed outright
		return false, nil
	}
	if err := unix.Kill(pid, unix.SIGTERM); err != nil && err != unix.ESRCH {
		return false, os.NewSyscallError("kill", err)
	}
	// The keeper lets go of its lock as its last act: wait for that.
	deadline := time.Now().Add(timeout)
	for wait := time.Millisecond; r.keeperPID(tpl) > 0; wait = min(2*wait, 50*time.Millisecond) {
		if time.Now().After(deadline) {
			return true, fmt.Errorf("spare keeper of template %q (PID %d) still running after %v", tpl, pid, timeout)
		}
		time.Sleep(wait)
	}
	return true, nil
}

// ListSpares lists the running keepers.
func (r *Runtime) ListSpares() ([]SpareKeeper, error) {
	ents, err := os.ReadDir(r.spareDir())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []SpareKeeper
	for _, e := range ents {
		tpl, ok := strings.CutSuffix(e.Name(), ".lock")
		if !ok {
			continue
		}
		pid := r.keeperPID(tpl)
		if pid <= 0 {
			continue
		}
		k := SpareKeeper{Template: tpl, PID: pid}
		if b, err := os.ReadFile(r.sparePath(tpl, ".state")); err == nil {
			json.Unmarshal(b, &k)
		}
		k.Template, k.PID = tpl, pid
		out = append(out, k)
	}
	return out, nil
}

// isSpare: VPS id is an unclaimed spare of a living keeper (list leaves it out). One whose
// keeper died is listed, stopped, for anyone to destroy (the next keeper of its template, or
// `spare stop`, does).
func (r *Runtime) isSpare(id uint32) bool {
	if id < transientBase {
		return false
	}
	if _, err := os.Lstat(r.St.Path(id, spareMarker)); err != nil {
		return false
	}
	return r.St.VPSLocked(id)
}

// claim is one `vpsctl run` served by a spare.
type claim struct {
	args     []string
	hostname string
	stdio    []*os.File
	conn     *net.UnixConn
	// term gets a signal when the caller forwards one or goes away: the VPS's init is killed.
	term chan os.Signal
	once sync.Once
	// ended, if set, runs at close: the command has exited (or never ran).
	ended func()
}

func (cl *claim) reply(kind, code int) {
	var b [8]byte
	binary.NativeEndian.PutUint32(b[0:], uint32(kind))
	binary.NativeEndian.PutUint32(b[4:], uint32(int32(code)))
	cl.conn.Write(b[:])
}

func (cl *claim) closeStdio() {
	for _, f := range cl.stdio {
		f.Close()
	}
	cl.stdio = nil
}

func (cl *claim) close() {
	cl.once.Do(func() {
		cl.closeStdio()
		cl.conn.Close()
		if cl.ended != nil {
			cl.ended()
		}
	})
}

// watch turns anything the caller sends after its claim, or its going away, into a
// termination of the claim's VPS.
func (cl *claim) watch() {
	var b [64]byte
	cl.conn.Read(b[:])
	select {
	case cl.term <- syscall.SIGKILL:
	default:
	}
}

// keeper is the spare keeper process's state.
type keeper struct {
	r        *Runtime
	tpl      string
	count    int
	l        *net.UnixListener
	stopping atomic.Bool
	done     chan struct{} // closed by stop
	claims   chan *claim   // to a parked spare
	serving  atomic.Int32  // spares whose claimed command runs
	// stateDirty asks stateLoop for a write of the counts (saveState).
	stateDirty chan struct{}
	ready      atomic.Int32
	served     atomic.Int64
	seq        atomic.Int64 // spares made: where the next one's ID is looked for
	lastUse    atomic.Int64 // unix nanoseconds of the last claim (or the start)
	first      chan string  // the first spare's outcome: "" parked, else the error
	firstOne   sync.Once
}

func (k *keeper) stop() {
	if k.stopping.CompareAndSwap(false, true) {
		close(k.done)
		k.l.Close()
	}
}

func (k *keeper) firstDone(err string) {
	k.firstOne.Do(func() { k.first <- err })
}

// saveState has the keeper's counts written for `spare list`, by stateLoop: a boot that parks
// or is claimed does not wait for a file's write.
func (k *keeper) saveState() {
	select {
	case k.stateDirty <- struct{}{}:
	default: // a write is due anyway
	}
}

func (k *keeper) stateLoop() {
	for range k.stateDirty {
		b, _ := json.Marshal(SpareKeeper{Template: k.tpl, PID: os.Getpid(), Count: k.count, Ready: int(k.ready.Load()), Served: k.served.Load()})
		store.WriteFileVolatile(k.r.sparePath(k.tpl, ".state"), b, 0o600)
	}
}

// park is a spare's monitor.spare: it counts the spare ready and waits for a claim.
func (k *keeper) park() *claim {
	fault.Mark("spare-parked")
	k.ready.Add(1)
	k.saveState()
	k.firstDone("")
	defer func() { k.ready.Add(-1); k.saveState() }()
	select {
	case cl := <-k.claims:
		k.lastUse.Store(time.Now().UnixNano())
		k.serving.Add(1)
		cl.ended = func() { k.serving.Add(-1) }
		fault.Mark("spare-claimed")
		return cl
	case <-k.done:
		return nil
	}
}

// acceptLoop takes the claims on the keeper's socket until it stops.
func (k *keeper) acceptLoop() {
	for {
		conn, err := k.l.AcceptUnix()
		if err != nil {
			if !k.stopping.Load() {
				log.Printf("accept: %v", err)
				k.stop()
			}
			return
		}
		go k.dispatch(conn)
	}
}

// claimWait bounds how long a claim waits for a spare being booted: the caller then boots a
// VPS of its own.
const claimWait = 5 * time.Second

// dispatch hands the claim on conn to a parked spare. With none parked, it waits for one being
// booted; if every spare is serving a command (which may run for hours), it answers fallback at
// once: the caller boots a VPS of its own.
func (k *keeper) dispatch(conn *net.UnixConn) {
	cl := k.accept(conn)
	if cl == nil {
		return
	}
	select {
	case k.claims <- cl:
		return
	default:
	}
	if k.serving.Load() < int32(k.count) {
		select {
		case k.claims <- cl:
			return
		case <-time.After(claimWait):
		case <-k.done:
		}
	}
	cl.reply(claimFallback, 0)
	cl.close()
}

// accept reads a claim from conn: nil if it is not one a spare serves (answered, closed).
func (k *keeper) accept(conn *net.UnixConn) *claim {
	buf := make([]byte, 1<<16)
	oob := make([]byte, unix.CmsgSpace(4*4))
	n, oobn, flags, _, err := conn.ReadMsgUnix(buf, oob)
	var fds []int
	if err == nil && oobn > 0 {
		if msgs, perr := unix.ParseSocketControlMessage(oob[:oobn]); perr == nil {
			for i := range msgs {
				if f, perr := unix.ParseUnixRights(&msgs[i]); perr == nil {
					fds = append(fds, f...)
				}
			}
		}
	}
	cl := &claim{conn: conn, term: make(chan os.Signal, 1)}
	for _, fd := range fds {
		unix.CloseOnExec(fd)
		cl.stdio = append(cl.stdio, os.NewFile(uintptr(fd), "claim-stdio"))
	}
	refuse := func(why string) *claim {
		log.Printf("claim refused: %s", why)
		cl.reply(claimFallback, 0)
		cl.close()
		return nil
	}
	if err != nil {
		return refuse(err.Error())
	}
	if uid, err := peerUID(conn); err != nil || uid != 0 {
		// Not root's: no answer at all (the socket's mode already keeps others out).
		log.Printf("claim from UID %d refused (%v)", uid, err)
		cl.close()
		return nil
	}
	if flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 || len(fds) != 3 || n < 8 ||
		binary.NativeEndian.Uint32(buf[0:]) != claimMagic || binary.NativeEndian.Uint32(buf[4:]) != claimVersion {
		return refuse("malformed claim")
	}
	strs := strings.Split(string(buf[8:n]), "\x00")
	if len(strs) < 3 || strs[len(strs)-1] != "" {
		return refuse("malformed claim")
	}
	cl.hostname, cl.args = strs[0], strs[1:len(strs)-1]
	if cl.hostname != "" && uts.ValidateHostname(cl.hostname) != nil {
		return refuse("bad host name") // the caller's own run reports it
	}
	go cl.watch()
	return cl
}

func peerUID(conn *net.UnixConn) (int, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return -1, err
	}
	uid := -1
	var gerr error
	err = rc.Control(func(fd uintptr) {
		var cr *unix.Ucred
		if cr, gerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); gerr == nil {
			uid = int(cr.Uid)
		}
	})
	if err == nil {
		err = gerr
	}
	return uid, err
}

// cycle makes one spare, serves the claim it gets and destroys it, as run --rm would. false:
// the keeper stops.
func (k *keeper) cycle() (bool, error) {
	r := k.r
	var id container.ID
	var err error
	for range 10 {
		id = r.transientIDFrom(int(k.seq.Add(1) % 4096))
		if err = r.Create(CreateOptions{ID: id, Template: k.tpl, Pool: uid.DefaultPool}); !errors.Is(err, store.ErrExist) {
			break
		}
	}
	if err != nil {
		return false, err
	}
	destroy := func() {
		if err := r.Destroy(id, true); err != nil {
			log.Printf("destroy spare %d: %v", id, err)
		}
	}
	if err := store.WriteFileVolatile(r.St.Path(uint32(id), spareMarker), []byte(k.tpl+"\n"), 0o600); err != nil {
		destroy()
		return false, err
	}
	lk, err := r.St.LockVPS(uint32(id), "spare VPS of template "+k.tpl)
	if err != nil {
		destroy()
		return false, err
	}
	r.cleanHost(id)
	null, err := sysfile.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		lk.Unlock()
		destroy()
		return false, err
	}
	var claimed, parked atomic.Bool
	recorded := make(chan struct{}) // closed once park's bookkeeping is done
	park := func() *claim {
		parked.Store(true)
		cl := k.park()
		if cl == nil {
			close(recorded)
			return nil
		}
		claimed.Store(true)
		// A claimed spare is the run's VPS: list shows it from here on (with the claim's host
		// name), and the next keeper still destroys it if this one dies before it could.
		// Off the claim's path: the command runs meanwhile.
		go func() {
			defer close(recorded)
			os.Rename(r.St.Path(uint32(id), spareMarker), r.St.Path(uint32(id), claimedMarker))
			if cl.hostname == "" {
				return
			}
			if c, err := r.St.LoadConfig(uint32(id)); err == nil && c.Hostname != cl.hostname {
				c.Hostname = cl.hostname
				// Not synced: the VPS is destroyed after its command.
				store.WriteFileVolatile(r.St.Path(uint32(id), "vps.conf"), c.Format(), 0o600)
			}
		}()
		return cl
	}
	_, err = r.runHere(id, []string{"/bin/true"}, null, null, null, true, park)
	null.Close()
	if parked.Load() {
		<-recorded
	}
	if err != nil && !claimed.Load() && !k.stopping.Load() {
		lk.Unlock()
		destroy()
		return false, err
	}
	switch {
	case claimed.Load() && err == nil:
		// Not logged: a busy keeper serves thousands an hour (spare list counts them).
		k.served.Add(1)
		k.saveState()
	case claimed.Load():
		log.Printf("VPS %d: claim not served (the caller runs it): %v", id, err)
	}
	if !r.destroyRan(id, lk) {
		lk.Unlock()
		destroy()
	}
	return !k.stopping.Load(), nil
}

// worker keeps one spare booted until the keeper stops.
func (k *keeper) worker() {
	failures := 0
	for {
		more, err := k.cycle()
		if err != nil {
			log.Printf("spare: %v", err)
			b, _ := json.Marshal(readyMsg{Kind: sentinelName(err), Error: err.Error()})
			k.firstDone(string(b))
			if failures++; failures >= 3 {
				log.Printf("three spares in a row failed: stopping")
				k.stop()
				return
			}
			time.Sleep(time.Duration(failures) * 100 * time.Millisecond)
			continue
		}
		failures = 0
		if !more {
			return
		}
	}
}

// spareMain is the keeper process: os.Args is [vpsctl-spare TEMPLATE COUNT IDLE], fd 3 the
// pipe StartSpares reads its first outcome from.
func spareMain() int {
	sysfile.WriteFile("/proc/self/comm", []byte("vpsctl-spare"), os.O_WRONLY, 0)
	unix.CloseOnExec(3)
	ready := os.NewFile(3, "ready")
	fail := func(err error) int {
		b, _ := json.Marshal(readyMsg{Kind: sentinelName(err), Error: err.Error()})
		ready.Write(b)
		ready.Close()
		log.Print(err)
		return 3
	}
	if len(os.Args) != 4 {
		return fail(fmt.Errorf("spare keeper: bad arguments %q", os.Args))
	}
	tpl := os.Args[1]
	count, err1 := strconv.Atoi(os.Args[2])
	idle, err2 := time.ParseDuration(os.Args[3])
	if err1 != nil || err2 != nil || count < 1 || count > MaxSpares {
		return fail(fmt.Errorf("spare keeper: bad arguments %q", os.Args))
	}
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	log.SetPrefix(fmt.Sprintf("spare %s [%d]: ", tpl, os.Getpid()))
	r, err := Open(os.Getenv("VPSCTL_ROOT"))
	if err != nil {
		return fail(err)
	}
	lockFd, err := unix.Open(r.sparePath(tpl, ".lock"), unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fail(os.NewSyscallError("open keeper lock", err))
	}
	if err := unix.Flock(lockFd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return fail(fmt.Errorf("template %q: %w: another keeper runs", tpl, store.ErrLocked))
	}
	unix.Ftruncate(lockFd, 0)
	unix.Pwrite(lockFd, []byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	// Spares of an earlier keeper of this template killed outright: nobody holds their locks.
	if n := r.destroyOrphanSpares(tpl); n > 0 {
		log.Printf("destroyed %d spare VPSs of a keeper that was killed", n)
	}

	sock := r.sparePath(tpl, ".sock")
	os.Remove(sock)
	l, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: sock, Net: "unixpacket"})
	if err != nil {
		return fail(err)
	}
	os.Chmod(sock, 0o600)
	k := &keeper{r: r, tpl: tpl, count: count, l: l, first: make(chan string, 1), done: make(chan struct{}), claims: make(chan *claim),
		stateDirty: make(chan struct{}, 1)}
	stateDone := make(chan struct{})
	go func() { k.stateLoop(); close(stateDone) }()
	k.lastUse.Store(time.Now().UnixNano())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT) // SIGHUP is ignored (runOnce), as a daemon's
	go func() {
		s := <-sigs
		log.Printf("%v: stopping", s)
		k.stop()
	}()
	if idle > 0 {
		go func() {
			for !k.stopping.Load() {
				left := idle - time.Since(time.Unix(0, k.lastUse.Load()))
				if left <= 0 && k.ready.Load() == int32(k.count) {
					log.Printf("no claim for %v: stopping", idle)
					k.stop()
					return
				}
				time.Sleep(max(left, 100*time.Millisecond))
			}
		}()
	}
	go k.acceptLoop()
	var wg sync.WaitGroup
	for range count {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k.worker()
		}()
	}
	log.Printf("keeping %d spare VPSs", count)
	first := <-k.first
	if first != "" {
		ready.Write([]byte(first))
		k.stop()
	} else {
		b, _ := json.Marshal(readyMsg{InitPID: os.Getpid()})
		ready.Write(b)
	}
	ready.Close()
	wg.Wait()
	l.Close()
	close(k.stateDirty) // the workers, its only writers, are done
	<-stateDone
	os.Remove(r.sparePath(tpl, ".state"))
	log.Printf("stopped: %d served", k.served.Load())
	unix.Close(lockFd) // last: StopSpares waits for it
	if first != "" {
		return 3
	}
	return 0
}

// destroyOrphanSpares destroys the spares of tpl whose keeper is gone, claimed or not, and
// returns how many: their locks are free (Destroy takes them; a VPS another command holds is
// left).
func (r *Runtime) destroyOrphanSpares(tpl string) int {
	ids, err := r.St.IDs()
	if err != nil {
		return 0
	}
	n := 0
	for _, id := range ids {
		if id < transientBase {
			continue
		}
		b, err := os.ReadFile(r.St.Path(id, spareMarker))
		if err != nil {
			b, err = os.ReadFile(r.St.Path(id, claimedMarker))
		}
		if err != nil || strings.TrimSpace(string(b)) != tpl {
			continue
		}
		if err := r.Destroy(container.ID(id), true); err == nil {
			n++
		}
	}
	return n
}
