package spare

// The spare keeper process (see spare.go): its workers, each keeping one spare booted, the
// claims its socket takes, and their hand-over to a parked spare.

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vpsctl/vpsctl/hostconf"
	"github.com/vpsctl/vpsctl/internal/fault"
	"github.com/vpsctl/vpsctl/internal/sysfile"
	"github.com/vpsctl/vpsctl/monitor"
	"github.com/vpsctl/vpsctl/prestart"
	"github.com/vpsctl/vpsctl/runtime"
	"github.com/vpsctl/vpsctl/store"
	"github.com/vpsctl/vpsctl/uts"
	"golang.org/x/sys/unix"
)

// keeper is the spare keeper process's state.
type keeper struct {
	r        *runtime.Runtime
	tpl      string
	count    int
	l        *net.UnixListener
	stopping atomic.Bool
	done     chan struct{}       // closed by stop
	claims   chan *monitor.Claim // to a parked spare
	serving  atomic.Int32        // spares whose claimed command runs
	// stateDirty asks stateLoop for a write of the counts (saveState).
	stateDirty chan struct{}
	ready      atomic.Int32
	served     atomic.Int64
	seq        atomic.Int64 // spares made: where the next one's ID is looked for
	lastUse    atomic.Int64 // unix nanoseconds of the last claim (or the start)
	first      chan error   // the first spare's outcome: nil parked, else why it failed
	firstOne   sync.Once
}

func (k *keeper) stop() {
	if k.stopping.CompareAndSwap(false, true) {
		close(k.done)
		k.l.Close()
	}
}

func (k *keeper) firstDone(err error) {
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
		b, _ := json.Marshal(Keeper{Template: k.tpl, PID: os.Getpid(), Count: k.count, Ready: int(k.ready.Load()), Served: k.served.Load()})
		store.WriteFileVolatile(k.r.St.SparePath(k.tpl, ".state"), b, 0o600)
	}
}

// park is a spare's monitor.spare: it counts the spare ready and waits for a claim.
func (k *keeper) park() *monitor.Claim {
	fault.Mark("spare-parked")
	k.ready.Add(1)
	k.saveState()
	k.firstDone(nil)
	defer func() { k.ready.Add(-1); k.saveState() }()
	select {
	case cl := <-k.claims:
		k.lastUse.Store(time.Now().UnixNano())
		k.serving.Add(1)
		cl.Ended = func() { k.serving.Add(-1) }
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
	cl.Reply(monitor.ClaimFallback, 0)
	cl.Close()
}

// accept reads a claim from conn: nil if it is not one a spare serves (answered, closed).
func (k *keeper) accept(conn *net.UnixConn) *monitor.Claim {
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
	cl := &monitor.Claim{Conn: conn, Term: make(chan os.Signal, 1)}
	for _, fd := range fds {
		unix.CloseOnExec(fd)
		cl.Stdio = append(cl.Stdio, os.NewFile(uintptr(fd), "claim-stdio"))
	}
	refuse := func(why string) *monitor.Claim {
		log.Printf("claim refused: %s", why)
		cl.Reply(monitor.ClaimFallback, 0)
		cl.Close()
		return nil
	}
	if err != nil {
		return refuse(err.Error())
	}
	if uid, err := peerUID(conn); err != nil || uid != 0 {
		// Not root's: no answer at all (the socket's mode already keeps others out).
		log.Printf("claim from UID %d refused (%v)", uid, err)
		cl.Close()
		return nil
	}
	kvs, perr := prestart.ParseMsg(buf[:n])
	if flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 || len(fds) != 3 || perr != nil {
		return refuse("malformed claim")
	}
	for _, kv := range kvs {
		switch kv.Key {
		case "hostname":
			cl.Hostname = kv.Value
		case "arg":
			cl.Args = append(cl.Args, kv.Value)
		default:
			return refuse("unknown claim key " + kv.Key)
		}
	}
	if len(cl.Args) == 0 {
		return refuse("malformed claim: no command")
	}
	if cl.Hostname != "" && uts.ValidateHostname(cl.Hostname) != nil {
		return refuse("bad host name") // the caller's own run reports it
	}
	go cl.Watch()
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

// cycle makes one spare, serves the claim it gets and destroys it, as run --rm does. false:
// the keeper stops.
func (k *keeper) cycle() (bool, error) {
	r := k.r
	null, err := sysfile.OpenFile(os.DevNull, os.O_RDWR, 0) // its init's stdio until claimed
	if err != nil {
		return false, err
	}
	defer null.Close()
	id, err := r.CreateTransient(context.Background(), runtime.CreateOptions{Template: k.tpl}, int(k.seq.Add(1)%4096))
	if err != nil {
		return false, err
	}
	if err := store.WriteFileVolatile(r.St.Path(id, store.SpareMarker), []byte(k.tpl+"\n"), 0o600); err != nil {
		r.Destroy(context.Background(), id, true)
		return false, err
	}
	var claimed, parked atomic.Bool
	recorded := make(chan struct{}) // closed once park's bookkeeping is done
	park := func() *monitor.Claim {
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
			os.Rename(r.St.Path(id, store.SpareMarker), r.St.Path(id, store.ClaimedMarker))
			if cl.Hostname == "" {
				return
			}
			if c, err := r.St.LoadConfig(id); err == nil && c.Hostname != cl.Hostname {
				c.Hostname = cl.Hostname
				// Not synced: the VPS is destroyed after its command.
				store.WriteFileVolatile(r.St.Path(id, "vps.conf"), c.Format(), 0o600)
			}
		}()
		return cl
	}
	_, err = r.RunSpare(context.Background(), id, "spare VPS of template "+k.tpl, null, park)
	if parked.Load() {
		<-recorded
	}
	switch {
	case claimed.Load() && err == nil:
		// Not logged: a busy keeper serves thousands an hour (spare list counts them).
		k.served.Add(1)
		k.saveState()
	case claimed.Load():
		log.Printf("VPS %d: claim not served (the caller runs it): %v", id, err)
	case err != nil && !k.stopping.Load():
		return false, err
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
			k.firstDone(err)
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

// The keeper is a process vpsctl starts with the keeper's stage (prestart.StageEnv): it is
// that program whatever else the binary is (a program importing the library included).
func init() {
	if os.Getenv(prestart.StageEnv) == "keeper" {
		os.Unsetenv(prestart.StageEnv)
		os.Exit(keeperMain())
	}
}

// keeperMain is the keeper process: os.Args is [vpsctl-spare TEMPLATE COUNT IDLE], fd 3 the
// pipe StartSpares reads its first outcome from.
func keeperMain() int {
	sysfile.WriteFile("/proc/self/comm", []byte("vpsctl-spare"), os.O_WRONLY, 0)
	unix.CloseOnExec(3)
	ready := os.NewFile(3, "ready")
	// StartSpares reads the first spare's outcome as a start reads its monitor's report.
	report := func(msg monitor.Report) {
		b, _ := json.Marshal(msg)
		ready.Write(b)
		ready.Close()
	}
	fail := func(err error) int {
		report(monitor.ErrorReport(err))
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
	// The host configuration as `spare start` read it a moment ago (its environment names the
	// file and the state root): the spares' limits, UID pool and timeouts are the host's.
	cfg, err := hostconf.LoadDefault(os.Getenv)
	if err != nil {
		return fail(err)
	}
	r, err := runtime.OpenConfig(cfg)
	if err != nil {
		return fail(err)
	}
	// Out of `spare start`'s cgroup, as a monitor: the keeper outlives it.
	if err := monitor.JoinGroup(); err != nil {
		log.Printf("staying in the caller's cgroup: %v", err)
	}
	lockFd, err := unix.Open(r.St.SparePath(tpl, ".lock"), unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fail(os.NewSyscallError("open keeper lock", err))
	}
	if err := unix.Flock(lockFd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return fail(fmt.Errorf("template %q: %w: another keeper runs", tpl, store.ErrLocked))
	}
	unix.Ftruncate(lockFd, 0)
	unix.Pwrite(lockFd, []byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	unix.Ftruncate(1, 0) // our log (stdout and stderr), which an earlier keeper wrote: ours now
	// Spares of an earlier keeper of this template killed outright: nobody holds their locks.
	if n := destroyOrphanSpares(r, tpl); n > 0 {
		log.Printf("destroyed %d spare VPSs of a keeper that was killed", n)
	}

	sock := r.St.SparePath(tpl, ".sock")
	os.Remove(sock)
	l, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: sock, Net: "unixpacket"})
	if err != nil {
		return fail(err)
	}
	os.Chmod(sock, 0o600)
	k := &keeper{r: r, tpl: tpl, count: count, l: l, first: make(chan error, 1), done: make(chan struct{}), claims: make(chan *monitor.Claim),
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
	if first != nil {
		report(monitor.ErrorReport(first))
		k.stop()
	} else {
		report(monitor.Report{InitPID: os.Getpid()})
	}
	wg.Wait()
	l.Close()
	close(k.stateDirty) // the workers, its only writers, are done
	<-stateDone
	os.Remove(r.St.SparePath(tpl, ".state"))
	log.Printf("stopped: %d served", k.served.Load())
	unix.Close(lockFd) // last: StopSpares waits for it
	if first != nil {
		return 3
	}
	return 0
}
