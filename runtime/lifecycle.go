package runtime

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/vpsctl/vpsctl/cgroup"
	"github.com/vpsctl/vpsctl/container"
	"github.com/vpsctl/vpsctl/eventlog"
	"github.com/vpsctl/vpsctl/internal/fault"
	"github.com/vpsctl/vpsctl/internal/hostcheck"
	"github.com/vpsctl/vpsctl/internal/proc"
	"github.com/vpsctl/vpsctl/internal/spec"
	"github.com/vpsctl/vpsctl/monitor"
	"github.com/vpsctl/vpsctl/registry"
	"github.com/vpsctl/vpsctl/store"
	"github.com/vpsctl/vpsctl/template"
	"github.com/vpsctl/vpsctl/uid"
	"golang.org/x/sys/unix"
)

// StartOptions tune Start.
type StartOptions struct {
	// Caller, if not nil, makes this process the VPS's monitor instead of a spawned one: it is a
	// process that the vpsctl CLI forked before its Go runtime started, in a session and a
	// private mount namespace of its own, and Caller is the pipe to its parent, which waits for
	// the command's exit code (see BecomeMonitor).
	Caller *os.File
	// Cause is the started event's cause (docs/OPERATIONS.md, "Events"): the command that
	// asked, "vpsctl start" when empty.
	Cause string
	// CallerMountNS is the mount namespace the caller was in before the fork made a private
	// one (nil: unknown): the host's, where LXCFS is mounted.
	CallerMountNS *os.File
}

// Start boots VPS id: it spawns the VPS's monitor, which builds the VPS and stays with it after
// vpsctl exits. It returns the host PID of the VPS's init. A failed start leaves the VPS stopped
// with nothing mounted and no cgroups.
func (r *Runtime) Start(ctx context.Context, id container.ID, o StartOptions) (int, error) {
	lk, err := r.St.LockVPS(ctx, id, "start")
	if err != nil {
		return 0, err
	}
	defer lk.Unlock()
	c, err := r.St.LoadConfig(id)
	if err != nil {
		return 0, err
	}
	s, err := r.Status(id)
	if err != nil {
		return 0, err
	}
	if s.State == "running" {
		return 0, fmt.Errorf("VPS %d: %w", id, ErrRunning)
	}
	if err := r.checkComplete(id); err != nil {
		return 0, err
	}
	fault.Mark("start-checked")
	r.repair(id)
	fault.Mark("start-repaired")
	// A plain start boots afresh: a checkpoint left by suspend --to-disk is no longer resumed.
	os.Remove(r.St.Path(id, suspendedFile))
	if _, err := spec.Resources(c); err != nil {
		return 0, err
	}
	if _, err := template.Rootfs(r.St, c.Template); err != nil {
		return 0, err
	}
	// A kernel without what a boot needs is named before anything is made.
	var warnings []string
	if err := hostcheck.Check(); errors.Is(err, hostcheck.ErrUntested) {
		warnings = append(warnings, err.Error())
	} else if err != nil {
		return 0, fmt.Errorf("VPS %d: %w", id, err)
	}
	// The host's users are read while the VPS boots (four files: a fifth of a millisecond).
	conflicts := make(chan []string, 1)
	go func() { conflicts <- r.rangeConflicts(c) }()
	var pid int
	var w []string
	if o.Caller != nil && !monitor.Pending() {
		hostNS := -1
		if o.CallerMountNS != nil {
			hostNS = int(o.CallerMountNS.Fd())
		}
		pid, w, err = monitor.StartHere(ctx, r.St, id, int(o.Caller.Fd()), hostNS)
	} else {
		pid, w, err = monitor.Spawn(ctx, r.St, id, lk.File())
	}
	if err != nil {
		return 0, err
	}
	r.warn(id, append(append(warnings, w...), <-conflicts...))
	r.event(id, c.Name, eventlog.Started, cmp.Or(o.Cause, "vpsctl start"))
	return pid, nil
}

// rangeConflicts names the host users and subordinate ranges that overlap VPS c's UID range,
// which was allocated before they appeared (a useradd since): they can signal the VPS's
// processes and own its files. Recreating the VPS gives it a free range; reserving the pool in
// /etc/subuid keeps useradd out of it.
func (r *Runtime) rangeConflicts(c *store.Config) []string {
	rg, err := uid.ParseRange(c.IDMap)
	if err != nil {
		return nil // no user namespace
	}
	res, err := uid.ReadHostReservations(r.HostEtc)
	if err != nil {
		return []string{fmt.Sprintf("cannot check its UID range %s against the host's users: %v", rg, err)}
	}
	var out []string
	for _, x := range uid.Conflicts(rg, res) {
		out = append(out, fmt.Sprintf("its UID range %s overlaps %s: that host user can signal its processes (recreate the VPS for a free range)", rg, x))
	}
	return out
}

// BecomeMonitor ends a command that started a VPS with StartOptions.Caller: the process lets
// its caller go with exit code code and stays as that VPS's monitor until the VPS halts (it
// then exits, never returning). Otherwise it returns at once.
func BecomeMonitor(code int) { monitor.Become(code) }

// StopOptions tune Stop.
type StopOptions struct {
	Timeout time.Duration // grace period for the guest's own poweroff
	Kill    bool          // skip the grace period
	// Cause is the stopped event's cause: the command that asked, "vpsctl stop" when empty;
	// ": killed" is added when the VPS did not power off by itself.
	Cause string
}

// Stop powers VPS id off: its init is asked to power off; after the timeout (or at once with
// Kill) every process in its cgroup is killed. Afterwards no process, mount or cgroup of it is
// left. If ctx ends during the grace period, Stop gives up there, the VPS still running (its
// guest was asked to power off and may yet do so), with an error matching ctx's: a caller
// that must have the VPS stopped then stops it with Kill.
func (r *Runtime) Stop(ctx context.Context, id container.ID, o StopOptions) error {
	lk, err := r.St.LockVPS(ctx, id, "stop")
	if err != nil {
		return err
	}
	defer lk.Unlock()
	var left monitor.Leftovers
	if err := r.stopLocked(ctx, id, o, &left); err != nil {
		return err
	}
	r.handOff(id, lk, left)
	return nil
}

// handOff has the background remover release a stopped VPS's mount namespace and remove its
// groups, holding the VPS's lock lk until both are done (a next boot needs its overlay
// unmounted), so that the stop returns without waiting for either; without a remover (or
// VPSCTL_SYNC_DESTROY) that is done here.
func (r *Runtime) handOff(id container.ID, lk *store.Lock, left monitor.Leftovers) {
	hold := left.Hold()
	handed := left.CG != nil && r.St.Reclaim != nil &&
		r.St.Reclaim(store.ReclaimJob{Hold: hold, Groups: left.Groups(), VPSLock: lk.File(), VPSLockPath: "",
			Spares: left.CG.Spares()}) == nil
	// The remover has its own copy of the namespace; without one, this close unmounts it.
	for _, f := range hold {
		f.Close()
	}
	if !handed && left.CG != nil {
		if err := monitor.RemoveGroups(left.CG); err != nil {
			log.Printf("VPS %d: cgroup: %v", id, err)
		}
	}
}

// stopLocked stops VPS id, whose lock the caller holds. left, if not nil, may be given the
// VPS's groups and mount namespace instead of their removal (see monitor.Leftovers); it is cleared first.
func (r *Runtime) stopLocked(ctx context.Context, id container.ID, o StopOptions, left *monitor.Leftovers) error {
	if left != nil {
		*left = monitor.Leftovers{}
	}
	stopF := r.St.Path(id, monitor.StopFile)
	s, err := r.status(id, false) // its freezer is read below
	if err == nil && s.State == "running" && s.InitPID == 0 && s.MonitorPID > 0 {
		// Rebooting: ask the monitor not to boot again, and wait for it to finish. A monitor
		// holding a reboot loop back waits for a SIGTERM (its stop request) to end the wait.
		if err := store.WriteFileVolatile(stopF, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
			return err
		}
		defer os.Remove(stopF)
		if fd, err := unix.PidfdOpen(s.MonitorPID, 0); err == nil {
			if s.Backoff {
				unix.PidfdSendSignal(fd, unix.SIGTERM, nil, 0)
			}
			proc.WaitPidfd(ctx, fd, 15*time.Second)
			unix.Close(fd)
		}
		if s, err = r.Status(id); err == nil && s.State != "running" {
			r.repair(id)
			r.event(id, s.Name, eventlog.Stopped, cmp.Or(o.Cause, "vpsctl stop")+" (while rebooting)")
			return nil
		}
	}
	if s, err = mustRun(id, s, err, true); err != nil {
		return err
	}
	if err := store.WriteFileVolatile(stopF, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		return err
	}
	defer os.Remove(stopF)
	fault.Point("stop-requested")
	initfd, err := unix.PidfdOpen(s.InitPID, 0)
	if err == nil {
		defer unix.Close(initfd)
	}
	exited := initfd < 0
	// The mount namespaces held while the VPS's processes and its monitor exit (as a `run`
	// holds its VPS's, bootState.setInit): the namespace's end would unmount everything in it
	// inside the init's exit, or the monitor's, which the stop waits for, and wait there for
	// an RCU grace period. They are released below, while the groups are removed, or by the
	// remover; on an error, here.
	held, monNS := -1, -1
	defer func() {
		for _, fd := range []int{held, monNS} {
			if fd >= 0 {
				unix.Close(fd)
			}
		}
	}()
	var monfd int = -1
	if s.MonitorPID > 0 {
		if fd, err := unix.PidfdOpen(s.MonitorPID, 0); err == nil {
			monfd = fd
			defer unix.Close(fd)
			monNS = proc.HoldMountNS(fd, s.MonitorPID)
		}
	}
	if !exited && slices.Contains(s.Namespaces, "mnt") {
		held = proc.HoldMountNS(initfd, s.InitPID)
	}
	// A kill is sent first: the group is looked up (a read of the mount table) and a suspended
	// VPS thawed while the kernel kills (a frozen process dies of its SIGKILL once thawed).
	pidns := slices.Contains(s.Namespaces, "pid")
	killed := o.Kill && !exited && pidns
	if killed {
		unix.PidfdSendSignal(initfd, unix.SIGKILL, nil, 0)
	}
	cg, err := cgroup.New(spec.CgroupPath(id))
	if err != nil {
		return err
	}
	if frozen, _ := cg.Frozen(); frozen {
		cg.Thaw()
	}
	if !o.Kill && !exited {
		unix.PidfdSendSignal(initfd, spec.PoweroffSignal(s.InitPID), nil, 0)
		fault.Point("stop-signalled")
		exited = proc.WaitPidfd(ctx, initfd, o.Timeout)
		if !exited && ctx.Err() != nil {
			return fmt.Errorf("VPS %d: stop: %w", id, ctx.Err())
		}
	}
	cause := cmp.Or(o.Cause, "vpsctl stop")
	if !exited {
		cause += ": killed"
	}
	if !exited && initfd >= 0 && pidns {
		// SIGKILL to the init of a PID namespace kills every process in it, and its pidfd
		// turns readable only once they are all gone (zap_pid_ns_processes): no freeze is
		// needed, and no race with a guest that forks while being killed.
		if !killed {
			unix.PidfdSendSignal(initfd, unix.SIGKILL, nil, 0)
		}
		exited = proc.WaitPidfd(ctx, initfd, 5*time.Second)
		fault.Point("stop-killed")
	}
	if !exited {
		// No PID namespace of its own, or the init would not die: kill the whole group.
		if err := cg.Kill(10 * time.Second); err != nil {
			return fmt.Errorf("VPS %d: kill: %w", id, err)
		}
		fault.Point("stop-killed")
	}
	// The monitor removes the cgroup and network after init; wait for it, bounded.
	if monfd >= 0 && !proc.WaitPidfd(ctx, monfd, 15*time.Second) {
		return fmt.Errorf("VPS %d: monitor (PID %d) did not finish cleaning up", id, s.MonitorPID)
	}
	fault.Mark("stop-monitor-gone")
	// The groups are still there (their removal is next): their counters' last rises.
	if cs, err := cg.Failures(); err == nil {
		r.logLastCounters(id, s.Name, cs)
	}
	r.event(id, s.Name, eventlog.Stopped, cause)
	if left != nil && r.St.Reclaim != nil {
		// Every process of the VPS is gone (its init and monitor have exited): what is left on
		// the host but its groups and mounts goes now, then its run state, as repair would.
		r.teardownNet(id, false)
		r.St.ClearRun(id)
		// Killed here, the stop leaves groups the next start removes (repair); the mount
		// namespace dies with this process.
		fault.Point("stop-cleared")
		left.CG, left.MntNS = cg, monitor.HeldNS(held, monNS)
		held, monNS = -1, -1
		fault.Mark("stop-repaired")
		return nil
	}
	released, monReleased := proc.ReleaseMountNS(held), proc.ReleaseMountNS(monNS)
	held, monNS = -1, -1
	r.repair(id)
	<-released
	<-monReleased
	fault.Mark("stop-repaired")
	return nil
}

// Destroy removes VPS id: its private area, config and state. A running VPS is refused
// (ErrRunning) unless force, which stops it first. In a cluster, nothing changes unless the
// registry can be told first (a pending marker), and the VPS's claims are released after.
func (r *Runtime) Destroy(ctx context.Context, id container.ID, force bool) error {
	lk, err := r.St.LockVPS(ctx, id, "destroy")
	if err != nil {
		return err
	}
	defer lk.Unlock()
	s, err := r.Status(id)
	if err != nil {
		return err
	}
	// What a run --rm of this process left (see Runtime.held), or a stop below leaves.
	left, _ := r.takeHeld(id)
	switch s.State {
	case "deleted":
		return fmt.Errorf("VPS %d: %w", id, store.ErrNotExist)
	case "running":
		if !force {
			return fmt.Errorf("VPS %d: %w (stop it first, or --force)", id, ErrRunning)
		}
	}
	// An incomplete migration's copy goes back to its source host in the registry first
	// (as migrate-abort's does): else the destroy would release the claims of the VPS that
	// runs there.
	if s.Incomplete {
		if err := r.moveBack(ctx, id); err != nil {
			return err
		}
	}
	var gl *store.Lock
	marked := false
	if r.clustered(id) {
		if gl, err = r.St.LockGlobal(ctx, fmt.Sprintf("destroy %d", id)); err != nil {
			return err
		}
		defer gl.Unlock()
		if marked, err = r.clusterMark(ctx, id); err != nil {
			return err
		}
		fault.Point("destroy-marked")
	}
	if s.State == "running" {
		if err := r.stopLocked(ctx, id, StopOptions{Kill: true, Cause: "destroy --force"}, &left); err != nil && !errors.Is(err, ErrNotRunning) {
			return err
		}
	}
	if left.CG == nil {
		r.repair(id)
	}
	fault.Point("destroy-stopped")
	if err := r.destroyLocked(ctx, id, lk, s.Name, left, gl, marked); err != nil {
		return err
	}
	r.event(id, s.Name, eventlog.Destroyed, "")
	return nil
}

// clusterMark settles this host's pending markers and writes one for destroying VPS id;
// false if the registry does not place the VPS here (made before the host joined the
// cluster, or moved away): its keys are not this host's to release. The caller holds the
// global lock.
func (r *Runtime) clusterMark(ctx context.Context, id container.ID) (bool, error) {
	if _, err := r.clusterPrepare(ctx); err != nil {
		return false, err
	}
	_, err := r.Cluster.Do(ctx, registry.Request{Op: registry.OpMark, ID: uint32(id)})
	if errors.Is(err, registry.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// destroyLocked removes stopped VPS id, named name, with its lock lk held: it commits by a
// rename, and the files go to the background remover, and with them left (a stop's or run's
// groups and mount namespace), which the remover removes first while it holds the VPS's lock,
// and then the lock file. Without a remover all is done here. gl is the global lock if the
// caller holds it (and then marked says whether it wrote the registry's marker), nil if not.
func (r *Runtime) destroyLocked(ctx context.Context, id container.ID, lk *store.Lock, name string, left monitor.Leftovers, gl *store.Lock, marked bool) error {
	defer fault.Mark("destroy-done")
	if gl == nil {
		var err error
		gl, err = r.St.LockGlobal(ctx, fmt.Sprintf("destroy %d", id))
		if err != nil {
			r.handOff(id, lk, left)
			return err
		}
		defer gl.Unlock()
		if r.clustered(id) {
			if marked, err = r.clusterMark(ctx, id); err != nil {
				r.handOff(id, lk, left)
				return err
			}
		}
	}
	job := store.ReclaimJob{Hold: left.Hold()}
	if left.CG != nil {
		job.Groups, job.VPSLock, job.VPSLockPath, job.Spares = left.Groups(), lk.File(), lk.Path(), left.CG.Spares()
	}
	handed, err := r.St.RemoveJob(id, job)
	if !handed && left.CG != nil {
		if err := monitor.RemoveGroups(left.CG); err != nil {
			log.Printf("VPS %d: cgroup: %v", id, err)
		}
	}
	if err != nil {
		return err
	}
	r.St.ReleaseName(name, id)
	if !handed || job.VPSLock == nil {
		lk.RemoveFile()
	}
	if marked {
		// The VPS is gone here: its claims go (the next command finishes this if it fails).
		if _, err := r.Cluster.Do(ctx, registry.Request{Op: registry.OpSettle, ID: uint32(id)}); err != nil {
			r.warn(id, []string{"destroyed; its release in the cluster registry is left to the next command: " + err.Error()})
		}
	}
	return nil
}

// CheckTemplateReplace refuses the rebuild of template name (ErrTemplateUse) while a running
// VPS or a keeper's spares use it: a rebuild deletes the old tree, which is what their root file
// systems are made of (stopped VPSs boot on the new one). A VPS started during a long rebuild
// is not caught: build under a new name, or stop starts, when VPSs may come up meanwhile.
func (r *Runtime) CheckTemplateReplace(name string) error {
	if err := template.ValidateName(name); err != nil {
		return err
	}
	if _, err := template.Rootfs(r.St, name); err != nil {
		return nil // nothing to replace
	}
	if pid := r.St.KeeperPID(name); pid > 0 {
		return fmt.Errorf("template %q: %w by its spare VPSs (vpsctl spare stop %s)", name, ErrTemplateUse, name)
	}
	ss, err := r.List(false)
	if err != nil {
		return err
	}
	var running []container.ID
	for _, s := range ss {
		if s.Template == name {
			running = append(running, s.ID)
		}
	}
	if len(running) > 0 {
		return fmt.Errorf("template %q: %w by running VPS %v: a rebuild would delete their root file systems' lower layer (stop them first)", name, ErrTemplateUse, running)
	}
	return nil
}

// RemoveTemplate deletes a template no VPS uses.
func (r *Runtime) RemoveTemplate(ctx context.Context, name string) error {
	gl, err := r.St.LockGlobal(ctx, "template remove "+name)
	if err != nil {
		return err
	}
	defer gl.Unlock()
	if _, err := template.Rootfs(r.St, name); err != nil {
		return err
	}
	cs, err := r.St.Configs()
	if err != nil {
		return err
	}
	var users []container.ID
	spares := 0
	for _, c := range cs {
		if c.Template == name {
			if r.St.IsSpare(c.ID) {
				spares++
				continue
			}
			users = append(users, c.ID)
		}
	}
	if len(users) == 0 && spares > 0 {
		return fmt.Errorf("template %q: %w by its spare VPSs (vpsctl spare stop %s)", name, ErrTemplateUse, name)
	}
	if len(users) > 0 {
		return fmt.Errorf("template %q: %w by VPS %v", name, ErrTemplateUse, users)
	}
	return template.Remove(r.St, name)
}
