package monitor

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vpsctl/vpsctl/cgroup"
	"github.com/vpsctl/vpsctl/container"
	"github.com/vpsctl/vpsctl/criu"
	"github.com/vpsctl/vpsctl/internal/fault"
	"github.com/vpsctl/vpsctl/internal/proc"
	"github.com/vpsctl/vpsctl/internal/revert"
	"github.com/vpsctl/vpsctl/internal/spec"
	"github.com/vpsctl/vpsctl/internal/sysfile"
	"github.com/vpsctl/vpsctl/network"
	"github.com/vpsctl/vpsctl/prestart"
	"github.com/vpsctl/vpsctl/store"
	"github.com/vpsctl/vpsctl/template"
	"github.com/vpsctl/vpsctl/uid"
	"github.com/vpsctl/vpsctl/uts"
	"golang.org/x/sys/unix"
)

// A process vpsctl started as one of the monitor's programs (the monitor, a restore's helpers)
// is that program, whatever else the binary is: the stage (prestart.StageEnv) is set by vpsctl
// only, and a program importing this package runs as itself without it. The stage is read here,
// in the package's initialisation, so that a program that imports the library needs no call of
// its own; it never returns.
func init() {
	var main func() int
	switch os.Getenv(modeEnv) {
	case "monitor":
		main = monitorMain
	case "criu-action":
		main = criuActionMain
	case "hold":
		main = holdMain
	default:
		return // none, or another package's (a spare keeper's)
	}
	os.Unsetenv(modeEnv)
	os.Exit(main())
}

// StopFile marks a stop in progress: when init exits while it exists, the monitor does not
// boot again even if the guest asked for a reboot.
const StopFile = "stop-requested"

type monitor struct {
	st *store.Store
	id container.ID
	// hostNS is an fd of the host's mount namespace (-1: none), where the monitor's own
	// private one cannot see mounts made after it (LXCFS started by this boot): see lxcfsViews.
	hostNS  int
	ready   *os.File
	run     store.RunState
	boots   int // the number of the boot under way (loop), the run state's once it runs
	console *consoleHub
	// consoleUp, if not nil, is closed once the console socket is listening (main makes it
	// while the first boot runs; awaitConsole waits for it).
	consoleUp chan struct{}
	// grouped, if not nil, is closed once the monitor is in its own cgroup (joinGroup).
	grouped chan struct{}
	oneshot []string // argv of a one-shot command run as the VPS's PID 1 (see RunOnce)
	// restoreDir: the first boot restores the VPS from this checkpoint (see restoreBoot);
	// restoreStopped leaves its processes stopped (see Continue).
	restoreDir     string
	restoreStopped bool
	// lock is the VPS's lock, inherited from `vpsctl start`, held until the first boot is done
	lock *os.File
	// stdio of a one-shot command (nil: the monitor's own).
	stdio []*os.File
	// reportFn, if set, receives the boot report instead of the ready pipe (a monitor running
	// inside the command that asked for the boot, see runHere).
	reportFn func(Report)
	// keep, if set, is given the VPS's groups and mount namespace once its init has exited,
	// instead of teardown removing them: a VPS destroyed next (run --rm) leaves them to the
	// remover of its files.
	keep func(Leftovers)
	// volatile: the VPS is destroyed after this boot (run --rm), so its overlay is mounted
	// "volatile": nothing syncs its upper layer, neither the guest's fsync() nor the overlay's
	// last unmount, which otherwise syncs the whole file system the private area is on.
	volatile bool
	// spare, if set, makes this boot a spare VPS's (spare.go): it blocks once the VPS is made,
	// before its init child gets its config, until a `vpsctl run` claims it (claimed, whose
	// command, host name and stdio the init child then gets) or the keeper stops (nil).
	spare   func() *Claim
	claimed *Claim
	// thread: the boot runs on a run's own OS thread (RunHere), whose mount namespace ends with
	// the thread, after the run has let go of the VPS's lock: its mounts of the VPS's root go
	// as soon as the init child has its clone (see prepareRootfs).
	thread bool
}

func monitorMain() int {
	fault.Mark("monitor-main")
	// exec of /proc/self/exe named the process "exe": ps and top show what it is (comm of the
	// thread-group leader, which /proc/self/comm names).
	sysfile.WriteFile("/proc/self/comm", []byte("vpsctl-monitor"), os.O_WRONLY, 0)
	if len(os.Args) < 2 {
		return 3
	}
	id, err := container.ParseID(os.Args[1])
	if err != nil {
		return 3
	}
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	log.SetPrefix(fmt.Sprintf("monitor %d: ", id))
	st, err := store.Open(os.Getenv("VPSCTL_ROOT"))
	if err != nil {
		log.Print(err)
		return 3
	}
	loadSettings(st.Root)
	if len(os.Args) == 6 && os.Args[2] == "--after" {
		// Back from the C reaper: init has exited (see reaper.go).
		m := &monitor{st: st, id: id, hostNS: inheritedFD(os.Args[5])}
		return m.after(os.Args[3], os.Args[4])
	}
	// The ready pipe, the VPS's lock and the host's mount namespace were inherited without
	// close-on-exec; no VPS process may inherit them.
	unix.CloseOnExec(3)
	m := &monitor{st: st, id: id, ready: os.NewFile(3, "ready"), hostNS: inheritedFD("5")}
	restore := (len(os.Args) == 4 || len(os.Args) == 5 && os.Args[4] == "--stopped") && os.Args[2] == "--restore"
	if len(os.Args) == 2 || restore {
		unix.CloseOnExec(4)
		m.lock = os.NewFile(4, "lock")
	}
	if len(os.Args) > 3 && os.Args[2] == "--" {
		m.oneshot = os.Args[3:]
		return m.runOnce()
	}
	if restore {
		m.restoreDir, m.restoreStopped = os.Args[3], len(os.Args) == 5
	}
	return m.main()
}

// inheritedFD is descriptor s, made close-on-exec, if it is one this process has; -1 if not.
func inheritedFD(s string) int {
	fd, err := strconv.Atoi(s)
	if err != nil || fd < 3 {
		return -1
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
		return -1
	}
	unix.CloseOnExec(fd)
	return fd
}

// awaitConsole waits until the console socket main makes is listening (or failed).
func (m *monitor) awaitConsole() {
	if m.consoleUp != nil {
		<-m.consoleUp
		m.consoleUp = nil
	}
}

func (m *monitor) report(msg Report) {
	m.awaitConsole()
	m.awaitGroup()
	if m.lock != nil {
		// Before the report: the command that spawned us may go on at once.
		m.lock.Close()
		m.lock = nil
	}
	if m.reportFn != nil {
		m.reportFn(msg)
		m.reportFn = nil
		return
	}
	if m.ready == nil {
		return
	}
	b, _ := json.Marshal(msg)
	m.ready.Write(b)
	m.ready.Close()
	m.ready = nil
}

func (m *monitor) main() int {
	m.joinGroup()
	// We were cloned into a mount namespace of our own: keep our mounts (the VPS's rootfs) from
	// propagating to the host, so a killed monitor can never leak a mount there.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		m.report(Report{Error: "monitor: make mounts private: " + err.Error()})
		return 3
	}
	m.console = newConsoleHub()
	// The socket is made while the VPS boots (net.Listen's set-up was 0.1 ms of a start), and
	// is there before the start is reported (report waits for it): `vpsctl start && vpsctl
	// console` must find it.
	m.consoleUp = make(chan struct{})
	go func() {
		defer close(m.consoleUp)
		if err := m.console.listen(m.st.Path(m.id, "console.sock")); err != nil {
			log.Printf("console socket: %v (vpsctl console will not work)", err)
		}
	}()
	m.run = store.RunState{MonitorPID: os.Getpid(), MonitorStart: proc.Start(os.Getpid()), Phase: "starting", Started: time.Now()}
	return m.loop(1)
}

// loop boots the VPS (boot number boot onwards) until it halts. Between boots the monitor is
// the C reaper (see reaper.go); the loop goes on in Go only if that could not start.
func (m *monitor) loop(boot int) int {
	signal.Ignore(syscall.SIGHUP, syscall.SIGINT, syscall.SIGPIPE)
	term := make(chan os.Signal, 1)
	notified := notifyAsync(term, syscall.SIGTERM)
	defer func() {
		m.awaitConsole()
		m.console.close()
	}()
	for ; ; boot++ {
		if boot > 1 && !m.holdBack(term) {
			break // stopped while held back
		}
		m.rotateLog()
		c, err := m.st.LoadConfig(m.id)
		if err != nil {
			m.fail(err)
			return 1
		}
		var b *bootState
		m.boots = boot
		if boot == 1 && m.restoreDir != "" {
			b, err = m.restoreBoot(c, m.restoreDir)
		} else {
			b, err = m.boot(c)
		}
		if err != nil {
			log.Printf("boot %d failed: %v", boot, err)
			m.dropRootfs()
			m.fail(err)
			m.st.ClearRun(m.id)
			return 1
		}
		m.saveRun(c, b)
		m.report(Report{InitPID: b.pid, Warnings: b.warnings})
		m.booted(boot)
		fault.Point("monitor-running")
		log.Printf("boot %d: init is host PID %d", boot, b.pid)

		<-notified
		select {
		case <-term:
			m.requestStop(b) // a SIGTERM during the boot
		default:
		}
		if err := m.becomeReaper(b); err != nil {
			log.Printf("%v: waiting in Go", err)
		}
		if b.pumpConsole != nil {
			b.pumpConsole()
		}
		st := b.wait(term, func() { m.requestStop(b) })
		m.dropRootfs()
		if _, err := m.ownRun(); err != nil {
			// As the reaper's hand-back does (after): the next command repairs.
			log.Printf("init exited (%v), but %v: leaving the VPS as it is", describeWait(st), err)
			return 0
		}
		if !m.ended(st, b.teardown) {
			break
		}
	}
	m.st.ClearRun(m.id)
	os.Remove(m.st.Path(m.id, StopFile))
	return 0
}

// running makes the run state boot b's (number m.boots), with the init running, and returns
// how to join the VPS (see joinConfig), for `vpsctl exec`'s front door: without the record,
// exec takes the Go path. Once per boot: a second call (a staged state that could not be put
// in place, written again) returns the first's record and counts the boot once.
func (m *monitor) running(c *store.Config, b *bootState) ([]byte, error) {
	if b.join == nil && b.joinErr == nil {
		m.run.InitPID, m.run.InitStart, m.run.Boots, m.run.Phase = b.pid, proc.Start(b.pid), m.boots, "running"
		m.run.RecentBoots = append(m.run.RecentBoots, time.Now())
		if n := len(m.run.RecentBoots); n > loopBoots {
			m.run.RecentBoots = m.run.RecentBoots[n-loopBoots:]
		}
		path, thawed := b.cg.ThawFile()
		b.join, b.joinErr = prestart.JoinRecord(spec.Join(c, b.pid, b.cg), m.run.InitStart, path, thawed)
	}
	return b.join, b.joinErr
}

// stageRun writes boot b's run state and join record beside their files while the init child
// finishes (after the go-ahead), for saveRun to put in place with two renames once it runs.
func (m *monitor) stageRun(c *store.Config, b *bootState) {
	rec, err := m.running(c, b)
	if err != nil {
		log.Printf("join record: %v", err)
		rec = nil
	}
	if err := m.st.StageRun(m.id, &m.run, rec); err != nil {
		log.Printf("stage run state: %v", err)
		return
	}
	b.staged = true
}

// saveRun records that boot b's init runs: the run state, then the join record; staged
// (stageRun) or written now.
func (m *monitor) saveRun(c *store.Config, b *bootState) {
	if b.staged {
		err := m.st.CommitRun(m.id)
		if err == nil {
			return
		}
		log.Printf("commit run state: %v", err)
	}
	rec, err := m.running(c, b)
	if serr := m.st.SaveRun(m.id, &m.run); serr != nil {
		log.Printf("save run state: %v", serr)
	}
	if err == nil {
		err = m.st.SaveJoin(m.id, rec)
	}
	if err != nil {
		log.Printf("save join record: %v", err)
	}
}

// A reboot loop (an init that reboots itself at once, again and again: a broken guest, or one
// made to) is held back, so that it costs the host neither a core nor an unbounded log: after
// loopBoots boots within loopWindow, the next boot waits, 10 s the first time, twice as long each
// time the loop goes on, up to 5 minutes. A loop that ends (a boot that lasts) starts afresh.
const (
	loopBoots    = 5
	loopWindow   = 60 * time.Second
	firstBackoff = 10 * time.Second
	maxBackoff   = 5 * time.Minute
)

// backoff is how long the next boot of a VPS whose recent boots were at boots waits (0: none),
// given that n boots before it were held back in a row.
func backoff(boots []time.Time, n int, now time.Time) time.Duration {
	if len(boots) < loopBoots || now.Sub(boots[len(boots)-loopBoots]) > loopWindow {
		return 0
	}
	d := firstBackoff << min(n, 10)
	return min(d, maxBackoff)
}

// holdBack waits before a reboot when the VPS reboots in a loop (see backoff), with the run
// state saying so ("backoff" and until when, for status); false if a stop request (SIGTERM on
// term, or the stop file) ended the wait.
func (m *monitor) holdBack(term <-chan os.Signal) bool {
	d := backoff(m.run.RecentBoots, m.run.Backoffs, time.Now())
	if d == 0 {
		m.run.Backoffs = 0
		return true
	}
	m.run.Backoffs++
	m.run.Phase, m.run.BackoffUntil = "backoff", time.Now().Add(d)
	m.st.SaveRun(m.id, &m.run)
	log.Printf("reboot loop: %d boots within %v: waiting %v before the next", loopBoots, loopWindow, d)
	defer func() { m.run.BackoffUntil = time.Time{} }()
	select {
	case <-term:
		return false
	case <-time.After(d):
		return !m.stopRequested()
	}
}

// maxMonitorLog bounds monitor.log: it is rotated to monitor.log.1 at a boot once past it.
const maxMonitorLog = 1 << 20

// rotateLog rotates monitor.log, this process's stdout and stderr (and the C reaper's), once it
// is past maxMonitorLog, so a VPS's log is bounded whatever its boots and reboots write.
func (m *monitor) rotateLog() {
	path := m.st.Path(m.id, "monitor.log")
	var st unix.Stat_t
	if unix.Fstat(2, &st) != nil || st.Size <= maxMonitorLog {
		return
	}
	var own unix.Stat_t
	if unix.Stat(path, &own) != nil || own.Ino != st.Ino || own.Dev != st.Dev {
		return // our stderr is not the VPS's log (a test's, a run's terminal)
	}
	if err := os.Rename(path, path+".1"); err != nil {
		log.Printf("rotate log: %v", err)
		return
	}
	fd, err := sysfile.Open(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		log.Printf("rotate log: %v", err)
		return
	}
	unix.Dup2(fd, 1)
	unix.Dup2(fd, 2)
	unix.Close(fd)
}

// ended handles the exit of a boot's init: it tears the boot down and reports whether the VPS
// boots again (an in-VPS reboot, with no stop requested).
func (m *monitor) ended(st syscall.WaitStatus, teardown func()) (reboot bool) {
	reboot = st.Signaled() && st.Signal() == syscall.SIGHUP && !m.stopRequested()
	log.Printf("init exited (%v); reboot=%v", describeWait(st), reboot)
	m.run.Phase = "stopping"
	if reboot {
		m.run.Phase = "rebooting"
	}
	m.st.SaveRun(m.id, &m.run)
	m.initEnded(st, reboot)
	teardown()
	return reboot && !m.stopRequested()
}

// runOnce boots the VPS once with the one-shot command as its PID 1, its stdio being ours (the
// caller's), and returns the command's status. No network, no console, no run state: the
// caller holds the VPS's lock throughout.
func (m *monitor) runOnce() int {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		m.report(Report{Error: "monitor: make mounts private: " + err.Error()})
		return 3
	}
	signal.Ignore(syscall.SIGHUP, syscall.SIGPIPE)
	sigs := make(chan os.Signal, 1)
	var notified <-chan struct{}
	if m.spare == nil {
		notified = notifyAsync(sigs, syscall.SIGINT, syscall.SIGTERM)
	}
	c, err := m.st.LoadConfig(m.id)
	if err != nil {
		m.fail(err)
		return 3
	}
	b, err := m.boot(c)
	if err != nil {
		if m.claimed != nil {
			// The claim's command never ran: its `vpsctl run` boots a VPS of its own, which
			// reports the failure the way a run does.
			m.claimed.Reply(ClaimFallback, 0)
			m.claimed.Close()
		}
		m.fail(err)
		return 3
	}
	m.report(Report{InitPID: b.pid})
	var term <-chan os.Signal = sigs
	if m.claimed != nil {
		m.claimed.Reply(ClaimStarted, 0)
		term = m.claimed.Term
	} else {
		<-notified
	}
	st := b.wait(term, func() { unix.Kill(b.pid, unix.SIGKILL) })
	fault.Mark("monitor-init-exited")
	code := st.ExitStatus()
	if st.Signaled() {
		code = 128 + int(st.Signal())
	}
	if m.claimed != nil {
		// The claim's `vpsctl run` exits now; the teardown is the keeper's.
		m.claimed.Reply(ClaimExited, code)
		m.claimed.Close()
	}
	b.teardown()
	fault.Mark("monitor-torn-down")
	return code
}

// tmpfsSizes are the sizes of the VPS's /run and /dev/shm: tmpfs is memory, and the VPS's memory
// limit is what it may use, not the host's RAM, which tmpfs's default (half of it) is sized from.
// /run gets a fifth of the limit, /dev/shm half (the default's share); an unlimited VPS, the
// host's defaults' shares.
func tmpfsSizes(res *cgroup.Resources) (run, shm string) {
	if res.MemoryBytes == nil || *res.MemoryBytes < 0 {
		return "20%", "50%"
	}
	m := *res.MemoryBytes
	return strconv.FormatInt(max(m/5, 1<<20), 10), strconv.FormatInt(max(m/2, 1<<20), 10)
}

// openTaskFiles opens the v1 groups' tasks files for the init child to write itself into (see
// goAhead); on error none stays open.
func openTaskFiles(files []string) ([]int, error) {
	fds := make([]int, 0, len(files))
	for _, f := range files {
		var fd int
		err := sysfile.Retry(func() (err error) {
			fd, err = unix.Open(f, unix.O_WRONLY|unix.O_CLOEXEC, 0)
			return err
		})
		if err != nil {
			closeFDs(fds)
			return nil, fmt.Errorf("cgroup: %w", &os.PathError{Op: "open", Path: f, Err: err})
		}
		fds = append(fds, fd)
	}
	return fds, nil
}

func closeFDs(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// goBeside runs f on a goroutine meant to run beside the caller, on the other CPU, at once. A
// go statement puts its goroutine in its P's runnext slot, which another P steals from only
// after a pause (runtime.runqgrab's usleep(3), which the raised timer slack stretches to 0.2
// ms), and wakes one idle P only if no M is spinning already. The empty goroutine started next
// moves f's out of runnext into the run queue, stolen at once, and asks for an idle P again, so
// that f (the v1 groups) runs beside the caller's work (the root file system) on the other CPU.
func goBeside(f func()) {
	go f()
	go func() {}()
}

// notifyAsync relays sigs to c like signal.Notify, which it runs on a goroutine of its own: the
// first Notify of a process starts os/signal's goroutines and a thread locked to its mask
// updates, a round trip of 0.17 ms here, which a boot does meanwhile. The returned channel is
// closed once the relay is in place; a signal before that has its default action, as one
// before any of the monitor's code ran would (the next command repairs what is left).
func notifyAsync(c chan<- os.Signal, sigs ...os.Signal) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		signal.Notify(c, sigs...)
		close(done)
	}()
	return done
}

func (m *monitor) fail(err error) {
	m.report(ErrorReport(err))
}

// stopRequested reports a stop in progress: the stop file names the process that asked (a
// `vpsctl stop`, or this monitor on SIGTERM). A file whose writer died is stale (that stop was
// killed half-way) and must not turn a later in-VPS reboot into a halt.
func (m *monitor) stopRequested() bool {
	b, err := sysfile.ReadFile(m.st.Path(m.id, StopFile))
	if err != nil {
		return false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err == nil && (pid == os.Getpid() || unix.Kill(pid, 0) == nil) {
		return true
	}
	os.Remove(m.st.Path(m.id, StopFile))
	return false
}

// requestStop is SIGTERM to the monitor: the same as `vpsctl stop` without the wait.
func (m *monitor) requestStop(b *bootState) {
	store.WriteFileVolatile(m.st.Path(m.id, StopFile), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600)
	unix.Kill(b.pid, spec.PoweroffSignal(b.pid))
}

func describeWait(st syscall.WaitStatus) string {
	if st.Signaled() {
		return "killed by " + st.Signal().String()
	}
	return "exit status " + strconv.Itoa(st.ExitStatus())
}

// bootState is one boot of the VPS: what the monitor made for it and must remove after it.
type bootState struct {
	pid     int                // host PID of the VPS's init
	exited  chan struct{}      // closed when init has exited (not yet reaped: see reap)
	status  syscall.WaitStatus // its wait status, valid once reaped
	reaped  sync.Once
	cg      cgroup.Manager
	net     network.Config
	logDone chan struct{}
	logStop chan struct{}
	undo    revert.Steps
	// warnings for the CLI that started this boot (Report.Warnings)
	warnings []string
	master   *os.File // the console pty's master (nil for a one-shot boot)
	// pumpConsole starts copying the console to console.log and `vpsctl console` clients in Go
	pumpConsole func()
	// groups waits until the boot's cgroups are made, limited and delegated (see boot);
	// startGroups starts making them, if groups has not already.
	groups      func() error
	startGroups func()
	// mntns holds the VPS's mount namespace (-1: none held): see setInit and releaseNS;
	// keep is the monitor's (see there), kept tells the undo that it took the groups.
	mntns atomic.Int32
	keep  func(Leftovers)
	kept  bool
	// staged: the boot's run state and join record wait beside their files (stageRun);
	// join and joinErr are its join record, made once (running).
	staged  bool
	join    []byte
	joinErr error
}

// boot starts one boot of the VPS. On error everything made so far is removed again.
func (m *monitor) boot(c *store.Config) (*bootState, error) {
	res, err := spec.Resources(c)
	if err != nil {
		return nil, err
	}
	b, idmap, userns, tpl, err := m.prepare(c)
	if err != nil {
		return nil, err
	}
	fault.Mark("monitor-prepared")
	lx := startLXCFSClones(m.st.Root, m.hostNS)
	defer lx.close()
	ok := false
	defer func() {
		if !ok {
			b.teardown()
		}
	}()
	makeGroups := func() error {
		if err := b.cg.Create(); err != nil {
			return fmt.Errorf("cgroup: %w", err)
		}
		fault.Mark("monitor-groups-made")
		if err := b.cg.Set(res); err != nil {
			return fmt.Errorf("cgroup limits: %w", err)
		}
		if userns {
			if err := spec.Delegate(b.cg, idmap); err != nil {
				return fmt.Errorf("cgroup delegation: %w", err)
			}
		}
		fault.Point("monitor-cgroup")
		return nil
	}
	if len(b.cg.TaskFiles()) > 0 {
		// cgroup v1: the init child moves itself into its v1 groups at the go-ahead, so the
		// groups (ten hierarchies: about a millisecond) are made once it is cloned (bootRest
		// calls startGroups), while the root file system and the network are made; a hybrid
		// host's unified directory, which the child is cloned into, is made before the clone
		// (CgroupFD). Not during the clone: on two CPUs the clone's child, the clone and the
		// groups' work then compete, and the clone takes three times as long. Any undo waits
		// for them first (added after the group's removal, so it runs before it).
		made := make(chan error, 1)
		b.startGroups = sync.OnceFunc(func() { goBeside(func() { made <- makeGroups() }) })
		b.groups = sync.OnceValue(func() error { b.startGroups(); return <-made })
		b.undo.Add(func() { b.groups() })
	} else {
		// cgroup v2 clones the init straight into its group, which must exist by then.
		if err := makeGroups(); err != nil {
			return nil, err
		}
		b.groups = func() error { return nil }
		b.startGroups = func() {}
	}

	// The console: a pty whose slave is the init's stdio and /dev/console; we log its output.
	// A one-shot command uses our stdio instead and has /dev/null as its console.
	if m.oneshot != nil {
		stdio := m.stdio
		if len(stdio) != 3 {
			stdio = []*os.File{os.Stdin, os.Stdout, os.Stderr}
		}
		return m.bootRest(c, b, res, tpl, idmap, userns, "/dev/null", stdio[0], stdio[1], stdio[2], lx, &ok)
	}
	slave, consolePath, err := m.newConsole(b, idmap, userns)
	if err != nil {
		return nil, err
	}
	defer slave.Close()
	return m.bootRest(c, b, res, tpl, idmap, userns, consolePath, slave, slave, slave, lx, &ok)
}

// bootRest is the part of boot after the console: clone the init child, its rootfs and
// network, and hand over.
func (m *monitor) bootRest(c *store.Config, b *bootState, res *cgroup.Resources, tpl string, idmap uid.Range, userns bool,
	consolePath string, stdin, stdout, stderr *os.File, lx *lxcfsClones, ok *bool) (*bootState, error) {
	var err error

	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("socketpair", err)
	}
	sock := os.NewFile(uintptr(fds[0]), "init-sock")
	childSock := os.NewFile(uintptr(fds[1]), "init-sock-child")
	defer sock.Close()

	req := prestart.CloneRequest{
		// The cgroup namespace is unshared by the child once it is in its group (v1 can only
		// move it there after clone).
		Flags: uintptr(spec.CloneFlags(c.Namespaces) &^ unix.CLONE_NEWCGROUP),
		Stdin: stdin, Stdout: stdout, Stderr: stderr, Sock: childSock, CgroupFD: -1,
	}
	if m.oneshot != nil && m.reportFn != nil {
		// A `run` booting its VPS in its own process, on a thread that lives until the VPS is
		// torn down (runHere): if the command is killed, so is the VPS's init, and with it
		// every process of the VPS. (Never for a monitor: its exec into the reaper ends the
		// cloning thread.)
		req.Pdeathsig = syscall.SIGKILL
	}
	if userns {
		// The spawner writes the maps; the child then becomes the VPS's root (it still has
		// host root's IDs after the clone, which the map does not cover).
		req.MapHost, req.MapSize = uint32(idmap.Host), idmap.Size
	}
	if fd, err := b.cg.CgroupFD(); err == nil {
		// clone3(CLONE_INTO_CGROUP) puts the child in its cgroup2 group as it is born: no move,
		// which would take the global lock a move by PID takes (cgroup.Manager.TaskFiles).
		req.CgroupFD = fd
		defer unix.Close(fd)
	} else if !errors.Is(err, cgroup.ErrNotSupported) {
		childSock.Close()
		return nil, fmt.Errorf("cgroup: %w", err)
	}
	// The child inherits this working directory, translated into its new mount namespace: it
	// is where the child attaches the VPS's root (see setupInit).
	if err := os.Chdir(m.st.Path(m.id, "root")); err != nil {
		childSock.Close()
		return nil, err
	}
	fault.Mark("monitor-clone")
	pid, err := m.cloneInit(req)
	childSock.Close()
	if err != nil {
		return nil, fmt.Errorf("clone init: %w", err)
	}
	b.setInit(pid)
	b.startGroups()
	fault.Point("monitor-cloned")
	// cgroup v1: once its groups are made, their tasks files are opened for the child, which
	// moves itself at the go-ahead (see goAhead).
	type opened struct {
		fds []int
		err error
	}
	tasks := make(chan opened, 1)
	if files := b.cg.TaskFiles(); len(files) == 0 {
		tasks <- opened{}
	} else {
		go func() {
			if err := b.groups(); err != nil {
				tasks <- opened{err: err}
				return
			}
			fds, err := openTaskFiles(files)
			tasks <- opened{fds, err}
		}()
	}
	// On an early return the groups are waited for (the undo removes them, which must not
	// race with their making) and the files closed.
	taskFiles := sync.OnceValues(func() ([]int, error) { t := <-tasks; return t.fds, t.err })
	defer func() {
		fds, _ := taskFiles()
		closeFDs(fds)
	}()

	rootFd, err := m.prepareRootfs(c, tpl, pid, userns)
	if err != nil {
		return nil, err
	}
	defer unix.Close(rootFd)
	fault.Mark("monitor-guest-mounts")
	extra, warnings, err := m.guestMounts(c, pid, userns, int(idmap.Host), lx)
	if err != nil {
		return nil, err
	}
	defer closeMounts(extra)
	b.warnings = append(b.warnings, warnings...)
	fault.Point("monitor-rootfs")
	// The config goes now: the child builds the VPS's /proc, /sys and /dev while its groups
	// and network are finished here, and waits for the go-ahead before its cgroup namespace.
	env := []string{"container=vpsctl", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=/root", "TERM=linux"}
	msg := initMsg{NSFlags: spec.CloneFlags(c.Namespaces), Hostname: c.Hostname, Domainname: c.Domainname,
		Console: consolePath, CapDrop: spec.CapMask(c), Init: initArgv(m.oneshot), Trace: fault.Tracing(),
		Env: env, Park: m.spare != nil}
	msg.RunSize, msg.ShmSize = tmpfsSizes(res)
	if slices.Contains(c.Namespaces, "cgroup") {
		if msg.Cgroups, err = cgroup.Filesystems(); err != nil {
			return nil, fmt.Errorf("cgroup file systems: %w", err)
		}
	}
	give := []int{rootFd}
	for _, x := range extra {
		msg.Mounts = append(msg.Mounts, x.path)
		give = append(give, x.fd)
	}
	body, err := msg.encode()
	if err != nil {
		return nil, err
	}
	if err := unix.Sendmsg(fds[0], body, unix.UnixRights(give...), nil, 0); err != nil {
		return nil, fmt.Errorf("send init config: %w", os.NewSyscallError("sendmsg", err))
	}

	// The init child brings the loopback up itself; the monitor has work here only for a VPS
	// with addresses or interfaces (a boot saves the netlink round trips in its namespace).
	if slices.Contains(c.Namespaces, "net") && m.oneshot == nil && !b.net.Empty() {
		warnings, err := network.Setup(m.id, pid, b.net)
		if err != nil {
			return nil, fmt.Errorf("network: %w", err)
		}
		b.undo.Add(func() {
			if err := network.Teardown(m.id, b.net); err != nil {
				log.Printf("network teardown: %v", err)
			}
		})
		for _, w := range warnings {
			log.Printf("network: %s", w)
		}
		b.warnings = warnings
	}

	taskFDs, err := taskFiles()
	if err != nil {
		return nil, err
	}
	fault.Point("monitor-network")
	buf := make([]byte, 2*initErrorSize)
	goMsg, err := goAhead(len(taskFDs))
	if err != nil {
		return nil, err
	}
	var rights []byte
	if len(taskFDs) > 0 {
		rights = unix.UnixRights(taskFDs...)
	}
	if err := unix.Sendmsg(fds[0], goMsg, rights, nil, 0); err != nil {
		// The child failed before (its end is closed): its report says why.
		n, _ := readInit(sock, buf)
		if ierr := initFailed(buf[:n]); ierr != nil {
			return nil, ierr
		}
		return nil, fmt.Errorf("init child: go-ahead: %w", os.NewSyscallError("sendmsg", err))
	}
	if m.spare != nil {
		if err := m.parkSpare(sock, fds[0], buf, c, pid, env); err != nil {
			return nil, err
		}
	} else {
		m.stageRun(c, b)
	}
	// The child's end closes on exec: EOF means the VPS's init runs; a message is a failure.
	n, err := readInit(sock, buf)
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("init child: %w", err)
	}
	if n > 0 {
		if err := initFailed(buf[:n]); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("start: init child: %q", buf[:n])
	}
	*ok = true
	return b, nil
}

// initFailed is the boot's error for the init child's failure report in b; nil if b is not one.
func initFailed(b []byte) error {
	if ie, ok := parseInitError(b); ok {
		return fmt.Errorf("start: %w", ie)
	}
	return nil
}

// readInit reads the init child's next message. A child that failed and exited before it read
// the go-ahead left it unread, for which the kernel marks our end ECONNRESET, reported once,
// before the messages still queued (the child's init_error): read again past it.
func readInit(sock *os.File, buf []byte) (int, error) {
	n, err := sock.Read(buf)
	if errors.Is(err, syscall.ECONNRESET) {
		n, err = sock.Read(buf)
	}
	return n, err
}

// parkSpare is a spare's boot from the parked init child's report to its claim's config (see
// monitor.spare): the init child has its root and waits; once a `vpsctl run` claims the spare,
// the child gets the claim's host name, command and stdio. ErrUnclaimed: the keeper stops.
func (m *monitor) parkSpare(sock *os.File, fd int, buf []byte, c *store.Config, pid int, env []string) error {
	n, err := readInit(sock, buf)
	if string(buf[:n]) != initParked {
		if err := initFailed(buf[:n]); err != nil {
			return err
		}
		return fmt.Errorf("start: init child did not park: %q (%v)", buf[:n], err)
	}
	fault.Mark("monitor-parked")
	cl := m.spare()
	if cl == nil {
		return ErrUnclaimed
	}
	m.claimed = cl
	if cl.Hostname != "" && cl.Hostname != c.Hostname {
		c.Hostname = cl.Hostname
		// The root is the parked child's now (our child: its PID is not reused).
		if err := uts.WriteEtcHostname(fmt.Sprintf("/proc/%d/root", pid), c.Hostname); err != nil {
			log.Printf("write /etc/hostname: %v", err)
		}
	}
	m.oneshot = cl.Args
	give := make([]int, 0, len(cl.Stdio))
	for _, f := range cl.Stdio {
		give = append(give, int(f.Fd()))
	}
	body, err := claimMsg(c.Hostname, c.Domainname, initArgv(cl.Args), env)
	if err == nil {
		err = unix.Sendmsg(fd, body, unix.UnixRights(give...), nil, 0)
	}
	// The init child has its own copies now: ours would keep the caller's pipes open.
	cl.CloseStdio()
	if err != nil {
		return fmt.Errorf("send claim: %w", os.NewSyscallError("sendmsg", err))
	}
	return nil
}

// cloneInit has the spawner clone the init child req describes (in this thread's mount
// namespace and working directory: a run's boot has them to itself, see runHere) and returns its
// PID. A monitor's spawner has no more to do.
func (m *monitor) cloneInit(req prestart.CloneRequest) (int, error) {
	defer func() {
		if m.oneshot == nil {
			prestart.CloseSpawner()
		}
	}()
	ns, err := unix.Open("/proc/thread-self/ns/mnt", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, os.NewSyscallError("open own mount namespace", err)
	}
	defer unix.Close(ns)
	cwd, err := unix.Open(".", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, os.NewSyscallError("open working directory", err)
	}
	defer unix.Close(cwd)
	req.MountNS, req.Cwd, req.CwdPath = ns, cwd, m.st.Path(m.id, "root")
	return prestart.CloneInit(req)
}

// prepareRootfs mounts the VPS's root (see mountRootfs) and returns a detached clone of it for
// the init child to attach in its own mount namespace. A monitor's own mounts stay, private to
// its mount namespace, while the VPS runs: an unmount that frees mounts waits for an RCU grace
// period (namespace_unlock's synchronize_rcu_expedited: 0.1-0.4 ms each while the other CPU is
// busy, two per boot on the start's critical path). They go when the boot has ended
// (dropRootfs), before the VPS is seen stopped or boots again, or with the monitor's mount
// namespace, which a stop holds and its remover closes before the VPS's lock is let go of: a
// next boot mounts an overlay on the same upper directory, which no other may still use.
func (m *monitor) prepareRootfs(c *store.Config, tpl string, pid int, userns bool) (int, error) {
	m.dropRootfs() // none, unless a boot that failed before its end was noticed left them
	if err := m.mountRootfs(c, tpl, pid, userns); err != nil {
		return -1, err
	}
	rfd, err := unix.OpenTree(unix.AT_FDCWD, m.st.Path(m.id, "root"), unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
	if err != nil || m.thread {
		m.dropRootfs()
	}
	if err != nil {
		return -1, fmt.Errorf("clone rootfs mount: %w", os.NewSyscallError("open_tree", err))
	}
	return rfd, nil
}

// dropRootfs detaches the monitor's own mounts of the VPS's root (see mountRootfs), if any.
func (m *monitor) dropRootfs() {
	for _, d := range []string{"root", "lower"} {
		unix.Unmount(m.st.Path(m.id, d), unix.MNT_DETACH) // EINVAL: nothing mounted there
	}
}

// mountRootfs mounts the VPS's root at STATE/vps/ID/root in the monitor's mount namespace: the
// template, idmapped to the VPS's range through the user namespace of process pid, under an
// overlay whose upper layer is the private area. dropRootfs removes it again.
func (m *monitor) mountRootfs(c *store.Config, tpl string, pid int, userns bool) error {
	lower, root := m.st.Path(m.id, "lower"), m.st.Path(m.id, "root")
	tfd, err := unix.OpenTree(unix.AT_FDCWD, tpl, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
	if err != nil {
		return fmt.Errorf("template %s: %w", tpl, os.NewSyscallError("open_tree", err))
	}
	defer unix.Close(tfd)
	attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
	if userns {
		// An idmapped mount shows the template's host-root-owned files as owned by the VPS's
		// root, with no copy and no chown: create stays O(1) and templates stay shared.
		nsf, err := sysfile.Open(fmt.Sprintf("/proc/%d/ns/user", pid), os.O_RDONLY, 0)
		if err != nil {
			return err
		}
		defer unix.Close(nsf)
		attr.Attr_set |= unix.MOUNT_ATTR_IDMAP
		attr.Userns_fd = uint64(nsf)
	}
	if err := unix.MountSetattr(tfd, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, attr); err != nil {
		return fmt.Errorf("idmap template: %w", os.NewSyscallError("mount_setattr", err))
	}
	if err := unix.MoveMount(tfd, "", unix.AT_FDCWD, lower, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("attach template: %w", os.NewSyscallError("move_mount", err))
	}
	// Relative layer paths (from the VPS's directory): overlayfs shows them in the VPS's own
	// mountinfo, which must not reveal the host's directory layout.
	if err := os.Chdir(m.st.VPSDir(m.id)); err != nil {
		m.dropRootfs()
		return err
	}
	upper, work, err := m.mountDisk(c)
	if err != nil {
		m.dropRootfs()
		return err
	}
	opts := "lowerdir=lower,upperdir=" + upper + ",workdir=" + work
	if !m.volatile {
		// A `run --rm` killed before its destroy leaves its VPS with the work directory's
		// mark of a volatile mount, and overlayfs refuses every later mount while it is there
		// (its upper layer may have lost writes in a host crash). That VPS was to be deleted;
		// it boots with its files as the run left them.
		mark := filepath.Join(m.st.VPSDir(m.id), work, "work", "incompat", "volatile")
		if _, err := os.Lstat(mark); err == nil {
			log.Printf("private area was last mounted volatile (a run --rm that did not finish): booting it as it is")
			os.RemoveAll(mark)
		}
	}
	// nodev: a device node in the template or the private area (a tarball's dev/console, one
	// a template build missed) opens nothing; the VPS's /dev is vpsctl's own tmpfs, with the
	// host's nodes it allows bind-mounted in. The flag is locked for the VPS (its mounts are
	// copies into a less privileged mount namespace), so no bind of / it makes can clear it.
	const flags = unix.MS_NODEV
	err = unix.EINVAL
	if m.volatile {
		err = unix.Mount("overlay", root, "overlay", flags, opts+",volatile") // EINVAL before Linux 5.10
	}
	if err != nil {
		err = unix.Mount("overlay", root, "overlay", flags, opts)
	}
	if err != nil {
		m.dropRootfs()
		return fmt.Errorf("overlay %s: %w", root, &os.PathError{Op: "mount", Path: root, Err: err})
	}
	// Files the host writes for the VPS, through its root and safely (no tenant symlink is
	// followed out of it, nothing is truncated in place).
	if err := uts.WriteEtcHostname(root, c.Hostname); err != nil {
		log.Printf("write /etc/hostname: %v", err)
	}
	if len(c.Nameservers) > 0 || len(c.SearchDomains) > 0 {
		if err := network.WriteResolvConf(root, c.Nameservers, c.SearchDomains); err != nil {
			log.Printf("write /etc/resolv.conf: %v", err)
		}
	}
	return nil
}

// wait waits for init to exit, turning SIGTERM to the monitor into a stop request.
func (b *bootState) wait(term <-chan os.Signal, onTerm func()) syscall.WaitStatus {
	for {
		select {
		case <-b.exited:
			return b.reap()
		case <-term:
			onTerm()
		}
	}
}

// releaseNS lets go of the VPS's mount namespace, if this boot still holds it. The close of
// the last reference unmounts everything in it, in the closing thread.
func (b *bootState) releaseNS() {
	if fd := b.mntns.Swap(-1); fd >= 0 {
		unix.Close(int(fd))
	}
}

// teardown removes what this boot made. The VPS's mounts go with its mount namespace, which
// is released (and so unmounted) on another thread while the rest is undone.
func (b *bootState) teardown() {
	if b.hasExited() {
		fd := int(b.mntns.Swap(-1))
		if b.keep != nil {
			// Every process of the VPS died with its init (the PID namespace's): its groups
			// are empty, and its mounts are in no one's way.
			b.keep(Leftovers{CG: b.cg, MntNS: HeldNS(fd)})
			b.kept = true
		} else {
			released := proc.ReleaseMountNS(fd)
			defer func() { <-released }()
		}
	}
	// Drain the console first: its last lines (often why init died) are still in the pty.
	// The read ends with EIO once no VPS process holds the console any more.
	if b.logDone != nil && b.hasExited() {
		close(b.logStop)
		select {
		case <-b.logDone:
		case <-time.After(2 * time.Second):
		}
	}
	b.undo.Run()
}

// openPty opens a new pty pair on the host's devpts.
func openPty() (master, slave *os.File, err error) {
	mfd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, &os.PathError{Op: "open", Path: "/dev/ptmx", Err: err}
	}
	if err := unix.IoctlSetPointerInt(mfd, unix.TIOCSPTLCK, 0); err != nil {
		unix.Close(mfd)
		return nil, nil, os.NewSyscallError("TIOCSPTLCK", err)
	}
	sfd, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(mfd), unix.TIOCGPTPEER, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC)
	if errno != 0 {
		unix.Close(mfd)
		return nil, nil, os.NewSyscallError("TIOCGPTPEER", errno)
	}
	return os.NewFile(uintptr(mfd), "console-master"), os.NewFile(sfd, "console-slave"), nil
}

// sentinelName names the sentinel err wraps, for the CLI to re-wrap (Report.Kind).
func sentinelName(err error) string {
	for name, s := range startSentinels {
		if errors.Is(err, s) {
			return name
		}
	}
	return ""
}

var startSentinels = map[string]error{
	"ip_in_use": network.ErrIPInUse, "bad_ip": network.ErrBadIP, "bad_netif": network.ErrBadNetIf, "bad_value": spec.ErrBadValue,
	"cgroup_bad_value": cgroup.ErrBadValue, "no_template": store.ErrNoTemplate, "not_exist": store.ErrNotExist,
	"criu": criu.ErrCRIU, "no_checkpoint": ErrNoCheckpoint, "locked": store.ErrLocked,
}

func initArgv(oneshot []string) []string {
	if oneshot != nil {
		return oneshot
	}
	return []string{"/sbin/init"}
}

// setInit records the VPS's init (a child of ours) and starts watching for its exit; if the
// boot fails, the undo kills it and reaps it.
func (b *bootState) setInit(pid int) {
	b.pid, b.exited = pid, make(chan struct{})
	// Hold the VPS's mount namespace (the clone made it; the init is still blocked in its
	// set-up here, so the PID is its own). When the init exits, the kernel then does not tear
	// its ~45 mounts down inside the init's exit, which the end of a stop or a `run` waits for
	// (~1 ms here); teardown lets go of it while it does its other work (releaseMountNS).
	b.mntns.Store(-1)
	if fd, err := unix.Open("/proc/"+strconv.Itoa(pid)+"/ns/mnt", unix.O_RDONLY|unix.O_CLOEXEC, 0); err == nil {
		b.mntns.Store(int32(fd))
	}
	b.undo.Add(b.releaseNS) // after the kill and reap below: undo runs last-added first
	go func() {
		// Only watch (WNOWAIT): the zombie is reaped by reap, on the goroutine that wants the
		// status, never behind the back of becomeReaper, after whose exec the C reaper must
		// still find it.
		var info unix.Siginfo
		for unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil) == unix.EINTR {
		}
		close(b.exited)
	}()
	b.undo.Add(func() {
		if !b.hasExited() {
			unix.Kill(pid, unix.SIGKILL)
			<-b.exited
		}
		b.reap()
	})
}

// reap collects the exited init's wait status (once).
func (b *bootState) reap() syscall.WaitStatus {
	b.reaped.Do(func() { b.status = wait4(b.pid) })
	return b.status
}

func (b *bootState) hasExited() bool {
	if b.exited == nil {
		return false
	}
	select {
	case <-b.exited:
		return true
	default:
		return false
	}
}

// wait4 reaps pid, a child of ours (directly, or adopted as its subreaper).
func wait4(pid int) syscall.WaitStatus {
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, 0, nil)
		if err != unix.EINTR {
			return syscall.WaitStatus(ws)
		}
	}
}

// prepare is what every boot (and a restore) starts with: the VPS's directories, its UID range,
// network config, template and cgroup manager. The returned bootState destroys the cgroup on
// teardown.
func (m *monitor) prepare(c *store.Config) (b *bootState, idmap uid.Range, userns bool, tpl string, err error) {
	b = &bootState{keep: m.keep}
	for _, d := range []string{"lower", "root"} {
		if err = os.MkdirAll(m.st.Path(m.id, d), 0o700); err != nil {
			return nil, idmap, false, "", err
		}
	}
	if userns = slices.Contains(c.Namespaces, "user"); userns {
		if idmap, err = uid.ParseRange(c.IDMap); err != nil {
			return nil, idmap, false, "", fmt.Errorf("config IDMAP: %w", err)
		}
	}
	if b.net, err = spec.Net(c); err != nil {
		return nil, idmap, false, "", err
	}
	if tpl, err = template.Rootfs(m.st, c.Template); err != nil {
		return nil, idmap, false, "", err
	}
	if b.cg, err = cgroup.New(spec.CgroupPath(m.id)); err != nil {
		return nil, idmap, false, "", err
	}
	b.undo.Add(func() {
		if b.kept {
			return
		}
		if err := RemoveGroups(b.cg); err != nil {
			log.Printf("cgroup: %v", err)
		}
	})
	return b, idmap, userns, tpl, nil
}

// removeGroups removes a VPS's groups, killing what is left in them. Removing succeeds only
// where no task is left (rmdir refuses a populated group), so empty groups, the usual case at a
// teardown, need no listing and no kill first.
func RemoveGroups(cg cgroup.Manager) error {
	if cg.Destroy(0) == nil {
		return nil
	}
	cg.Kill(5 * time.Second)
	return cg.Destroy(5 * time.Second)
}

// newConsole makes this boot's console: a host pty whose slave (returned, for the init's stdio
// and /dev/console) belongs to the VPS's root, and whose output the console hub logs and
// serves.
func (m *monitor) newConsole(b *bootState, idmap uid.Range, userns bool) (*os.File, string, error) {
	master, slave, err := openPty()
	if err != nil {
		return nil, "", fmt.Errorf("console pty: %w", err)
	}
	ptn, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err == nil && userns {
		// The VPS's root must own its console; host root is unmapped (nobody) inside.
		err = slave.Chown(int(idmap.Host), int(idmap.Host)+5)
	}
	if err != nil {
		master.Close()
		slave.Close()
		return nil, "", fmt.Errorf("console pty: %w", err)
	}
	b.master = master
	b.undo.Add(func() { master.Close() })
	// The console is pumped by the C reaper once the boot is done (see loop); only a monitor
	// that stays in Go pumps it itself (pumpConsole). Until then the guest's output waits in
	// the pty: nothing read here can be lost in the exec to the reaper.
	b.pumpConsole = func() {
		b.logDone, b.logStop = make(chan struct{}), make(chan struct{})
		go m.console.serve(master, m.st.Path(m.id, "console.log"), b.logDone, b.logStop)
	}
	return slave, "/dev/pts/" + strconv.Itoa(ptn), nil
}
