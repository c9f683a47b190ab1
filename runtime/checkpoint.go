package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/vpsctl/vpsctl/cgroup"
	"github.com/vpsctl/vpsctl/container"
	"github.com/vpsctl/vpsctl/criu"
	"github.com/vpsctl/vpsctl/eventlog"
	"github.com/vpsctl/vpsctl/internal/proc"
	"github.com/vpsctl/vpsctl/internal/spec"
	"github.com/vpsctl/vpsctl/internal/sysfile"
	"github.com/vpsctl/vpsctl/monitor"
	"github.com/vpsctl/vpsctl/network"
	"github.com/vpsctl/vpsctl/pidns"
	"github.com/vpsctl/vpsctl/store"
	"golang.org/x/sys/unix"
)

// Checkpoints (CRIU). What a dump holds and how a restore rebuilds the rest:
//
//   - every process, their namespaces (user, pid, mnt, uts, ipc, cgroup), the cgroup groups and
//     limits of the VPS's whole subtree (--manage-cgroups, --cgroup-root at the VPS's group, so
//     that the empty groups systemd watches come back too), the mount tree over the VPS's root;
//   - not the network namespace's devices (--empty-ns net): the host end of a veth cannot be
//     created from inside the VPS's user namespace, so on restore vpsctl's own network setup
//     runs as criu's "setup-namespaces" action, from the VPS's config, while the tasks are
//     still frozen; established TCP connections are dumped with --tcp-established and come
//     back onto those addresses;
//   - the console is external: the host pty behind /dev/console is replaced by a new one.
//
// inotify watches: criu finds a watched inode's path from its file handle, which the VPS's
// overlay cannot decode (no nfs_export, which would tie the private area to one lower file
// system); it then searches the directories it is told (--irmap-scan-path), which are where
// daemons watch.
//
// The restored init becomes the monitor's child (the monitor is a child subreaper), so in-VPS
// reboot and poweroff behave as after a normal start.

// ErrCheckpointBlocked: the VPS holds something a dump would fail on (checkpoint --check lists
// it); nothing was dumped.
var ErrCheckpointBlocked = errors.New("checkpoint blocked")

// irmapScanPaths are where daemons keep the directories they watch with inotify (systemd,
// dbus, cron, nginx, sshd's privilege separation): /etc is searched by criu itself.
var irmapScanPaths = []string{"/usr", "/var", "/run"}

// CheckpointOptions tune a checkpoint.
type CheckpointOptions struct {
	Dir            string // image directory; "" = STATE/vps/ID/checkpoint
	LeaveRunning   bool   // keep the VPS running after the dump
	TCPEstablished bool   // dump established TCP connections (and restore them)
	// Progress receives one line per step (nil: none).
	Progress io.Writer
}

// CheckpointResult reports a dump.
type CheckpointResult struct {
	ID          container.ID `json:"id"`
	Dir         string       `json:"dir"`
	Bytes       int64        `json:"bytes"`
	Seconds     float64      `json:"seconds"`
	LeftRunning bool         `json:"left_running"`
}

// DefaultCheckpointDir is where a VPS's checkpoint goes unless --dir says otherwise.
func (r *Runtime) DefaultCheckpointDir(id container.ID) string {
	return r.St.Path(id, "checkpoint")
}

// Checkpoint dumps running VPS id with CRIU and, unless o.LeaveRunning, stops it. A failed dump
// leaves the VPS running, any earlier image untouched and criu's log at the path the error
// names.
func (r *Runtime) Checkpoint(ctx context.Context, id container.ID, o CheckpointOptions) (*CheckpointResult, error) {
	lk, err := r.St.LockVPS(ctx, id, "checkpoint")
	if err != nil {
		return nil, err
	}
	defer lk.Unlock()
	s, err := r.running(id, true)
	if err != nil {
		return nil, err
	}
	dir := o.Dir
	if dir == "" {
		dir = r.DefaultCheckpointDir(id)
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, err
	}
	if err := replaceableDir(dir); err != nil {
		return nil, err
	}
	if s.Suspended {
		if cg, err := cgroup.New(spec.CgroupPath(s.ID)); err == nil {
			cg.Thaw() // criu freezes the tree itself
		}
	}
	return r.dump(ctx, s, dir, dumpSpec{leaveRunning: o.LeaveRunning, tcp: o.TCPEstablished}, progressOr(o.Progress))
}

// replaceableDir checks that checkpoint directory dir may be replaced by a new image: it does
// not exist, is empty, or holds a vpsctl checkpoint. Anything else (a file, someone's data, a
// VPS's private area) is refused: a checkpoint replaces its directory whole.
func replaceableDir(dir string) error {
	fi, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		if ents, err := os.ReadDir(dir); err == nil && len(ents) == 0 {
			return nil
		}
		if _, err := os.Lstat(filepath.Join(dir, monitor.MetaFile)); err == nil {
			return nil
		}
	}
	return fmt.Errorf("--dir %s: exists and is not a vpsctl checkpoint (a checkpoint replaces its directory whole): %w", dir, ErrBadValue)
}

// dumpSpec is how dump runs.
type dumpSpec struct {
	leaveRunning bool
	tcp          bool
	// frozen: the caller froze the VPS's groups; it stays frozen after the dump (which implies
	// leaveRunning), so the caller can copy files that match the images.
	frozen bool
}

// dump checkpoints running VPS s (its lock held) into dir, replacing an earlier image only
// once the new one is complete. Unless the VPS is left running, its monitor is told to clean
// up instead of rebooting, and dump waits for that.
func (r *Runtime) dump(ctx context.Context, s *Status, dir string, d dumpSpec, progress io.Writer) (*CheckpointResult, error) {
	if b := vpsBlockers(s.InitPID, d.tcp); len(b) > 0 {
		return nil, &BlockedError{ID: s.ID, Blockers: b}
	}
	path, v, err := criu.Find()
	if err != nil {
		return nil, fmt.Errorf("VPS %d: %w: %w", s.ID, ErrCheckpoint, err)
	}
	ttyKey, err := consoleKey(s.InitPID)
	if err != nil {
		return nil, err
	}
	stopped := stoppedProcs(s.InitPID)
	extMounts, externals := r.externals(s)
	stage := dir + ".new-" + strconv.Itoa(os.Getpid())
	os.RemoveAll(stage)
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return nil, err
	}
	leave := d.leaveRunning || d.frozen
	if !leave {
		// The monitor sees init die: this tells it to clean up instead of rebooting.
		store.WriteFileVolatile(r.St.Path(s.ID, monitor.StopFile), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600)
		defer os.Remove(r.St.Path(s.ID, monitor.StopFile))
	}
	fmt.Fprintf(progress, "checkpointing VPS %d (criu %s at %s) to %s\n", s.ID, v, path, dir)
	o := criu.DumpOptions{Pid: s.InitPID, Root: r.St.Path(s.ID, "root"), ImagesDir: stage,
		LeaveRunning: leave, ManageCgroups: true, CgroupRoot: "/" + spec.CgroupPath(s.ID),
		External:    append([]string{ttyKey, "mnt[/dev/console]:console", "mnt[]"}, extMounts...),
		NetworkLock: "nftables", TCPEstablished: d.tcp, IrmapScanPaths: irmapScanPaths, FileLocks: true,
		ExtraArgs: []string{"--empty-ns", "net"}}
	if d.frozen {
		cg, err := cgroup.New(spec.CgroupPath(s.ID))
		if err != nil {
			return nil, err
		}
		f, _ := cg.ThawFile()
		o.FreezeCgroup = filepath.Dir(f)
	}
	t0 := time.Now()
	dctx, cancel := context.WithTimeout(context.Background(), monitor.CheckpointTimeout)
	defer cancel()
	if err := criu.Dump(dctx, o); err != nil {
		err = r.keepLog(s.ID, err)
		os.RemoveAll(stage)
		return nil, fmt.Errorf("VPS %d: %w: %w", s.ID, ErrCheckpoint, err)
	}
	res := &CheckpointResult{ID: s.ID, Dir: dir, Bytes: dirSize(stage), Seconds: time.Since(t0).Seconds(), LeftRunning: leave}
	meta := monitor.CheckpointMeta{ID: s.ID, Time: time.Now().UTC(), TTY: ttyKey, Hostname: s.Hostname, IDMap: s.IDMap,
		Bytes: res.Bytes, Seconds: res.Seconds, Running: leave, CRIU: v.String(), InitVPSID: 1,
		TCPEstablished: d.tcp, Stopped: stopped, CgroupRoot: o.CgroupRoot, Externals: externals}
	if err := meta.Write(stage); err != nil {
		os.RemoveAll(stage)
		return nil, err
	}
	if cfg, err := os.ReadFile(r.St.Path(s.ID, "vps.conf")); err == nil {
		os.WriteFile(filepath.Join(stage, "vps.conf"), cfg, 0o600)
	}
	// Replace an earlier image only now that the new one is complete.
	old := dir + ".old-" + strconv.Itoa(os.Getpid())
	if err := os.Rename(dir, old); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err := os.Rename(stage, dir); err != nil {
		return nil, err
	}
	os.RemoveAll(old)
	fmt.Fprintf(progress, "wrote %.1f MiB in %.2f s\n", float64(res.Bytes)/(1<<20), res.Seconds)
	if !leave {
		if s.MonitorPID > 0 {
			if fd, err := unix.PidfdOpen(s.MonitorPID, 0); err == nil {
				proc.WaitPidfd(ctx, fd, 15*time.Second)
				unix.Close(fd)
			}
		}
		r.repair(s.ID)
	}
	r.event(s.ID, s.Name, eventlog.Checkpointed, "")
	if !leave {
		r.event(s.ID, s.Name, eventlog.Stopped, "checkpoint")
	}
	return res, nil
}

// externals names the mounts of running VPS s that come from the host, for criu to leave out
// of the dump under keys of ours (--external mnt[MOUNTPOINT]:KEY) and for the restore to mount
// again from the host it runs on: LXCFS's views, --bindmount directories and device nodes.
func (r *Runtime) externals(s *Status) ([]string, map[string]monitor.External) {
	mounts, err := sysfile.Mounts(s.InitPID, nil)
	if err != nil {
		return nil, nil
	}
	mounted := map[string]string{}
	for _, m := range mounts {
		mounted[m.Mountpoint] = m.FSType
	}
	var args []string
	ext := map[string]monitor.External{}
	add := func(mp string, x monitor.External) {
		key := fmt.Sprintf("vpsctl-ext-%d", len(ext))
		ext[key] = x
		args = append(args, "mnt["+mp+"]:"+key)
	}
	for _, m := range mounts {
		if m.FSType == "fuse.lxcfs" {
			add(m.Mountpoint, monitor.External{LXCFS: strings.TrimPrefix(m.Mountpoint, "/")})
		}
	}
	if s.cfg != nil {
		for _, b := range s.cfg.BindMounts {
			if bm, err := spec.ParseBindMount(b, r.St.Root); err == nil {
				if _, ok := mounted[bm.VPS]; ok {
					add(bm.VPS, monitor.External{Bind: b})
				}
			}
		}
		devs, _ := monitor.DeviceTargets(s.cfg)
		for _, d := range devs {
			if _, ok := mounted[d]; ok {
				add(d, monitor.External{Device: d})
			}
		}
	}
	if len(ext) == 0 {
		return nil, nil
	}
	return args, ext
}

// keepLog moves the log of a failed dump out of the image directory that is about to be
// removed, next to the VPS's config, and names it in the error.
func (r *Runtime) keepLog(id container.ID, err error) error {
	var ce *criu.Error
	if !errors.As(err, &ce) || ce.Log == "" {
		return err
	}
	kept := r.St.Path(id, "criu-"+filepath.Base(ce.Log))
	if os.Rename(ce.Log, kept) == nil {
		ce.Log = kept
		return err
	}
	// Another file system (--dir elsewhere): a copy.
	if b, rerr := os.ReadFile(ce.Log); rerr == nil && os.WriteFile(kept, b, 0o600) == nil {
		ce.Log = kept
	}
	return err
}

// BlockedError lists what keeps a VPS from being checkpointed; it wraps ErrCheckpointBlocked.
type BlockedError struct {
	ID       container.ID
	Blockers []string
}

func (e *BlockedError) Error() string {
	msg := fmt.Sprintf("VPS %d: %v (nothing was dumped):", e.ID, ErrCheckpointBlocked)
	for _, b := range e.Blockers {
		msg += "\n  - " + b
	}
	return msg
}

func (e *BlockedError) Unwrap() error { return ErrCheckpointBlocked }

// stoppedProcs lists the VPS PIDs of the VPS's processes stopped by a signal (state T): a
// restore that leaves every task stopped must leave these stopped when it lets the others go.
func stoppedProcs(init int) []int {
	procs, _ := pidns.List(pidns.HostPID(init))
	var out []int
	for _, p := range procs {
		if p.Status.State == "T" {
			out = append(out, int(p.VPS))
		}
	}
	return out
}

// consoleKey is criu's --external key of the VPS's console: the host pty bound onto its
// /dev/console (its init's stdio need not be the console: systemd's is /dev/null).
func consoleKey(initPID int) (string, error) {
	var st unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/%d/root/dev/console", initPID), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR {
		if err := unix.Stat(fmt.Sprintf("/proc/%d/fd/0", initPID), &st); err != nil {
			return "", fmt.Errorf("checkpoint: console of init: %w", err)
		}
	}
	return fmt.Sprintf("tty[%x:%x]", st.Rdev, st.Dev), nil
}

func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

func progressOr(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// RestoreOptions tune a restore.
type RestoreOptions struct {
	Dir      string    // image directory; "" = STATE/vps/ID/checkpoint
	Progress io.Writer // one line per step (nil: none)
}

// Restore brings VPS id back from a checkpoint: same ID, VPS PIDs, hostname, UID map, limits,
// addresses and (if dumped) TCP connections; host PIDs differ. The VPS must exist (with its
// private area) and be stopped. A failed restore leaves it stopped, with nothing left behind.
func (r *Runtime) Restore(ctx context.Context, id container.ID, o RestoreOptions) (*RestoreResult, error) {
	lk, err := r.St.LockVPS(ctx, id, "restore")
	if err != nil {
		return nil, err
	}
	defer lk.Unlock()
	dir := o.Dir
	if dir == "" {
		dir = r.DefaultCheckpointDir(id)
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, err
	}
	return r.restore(ctx, lk, id, dir, restoreSpec{}, progressOr(o.Progress))
}

// restoreSpec is how restore runs.
type restoreSpec struct {
	stopped  bool // every restored process is left stopped (SIGSTOP) until continueRestored
	incoming bool // the VPS's files just arrived (an incoming VPS, which is otherwise refused)
}

// restore restores VPS id (its lock lk held) from dir.
func (r *Runtime) restore(ctx context.Context, lk *store.Lock, id container.ID, dir string, rs restoreSpec, progress io.Writer) (*RestoreResult, error) {
	s, err := r.Status(id)
	if err != nil {
		return nil, err
	}
	switch s.State {
	case "deleted":
		return nil, fmt.Errorf("VPS %d: %w", id, store.ErrNotExist)
	case "running":
		return nil, fmt.Errorf("VPS %d: %w", id, ErrRunning)
	}
	if !rs.incoming {
		if err := r.checkComplete(id); err != nil {
			return nil, err
		}
	}
	meta, err := monitor.ReadCheckpointMeta(dir)
	if err != nil {
		return nil, err
	}
	if meta.IDMap != s.IDMap {
		return nil, fmt.Errorf("VPS %d: checkpoint was taken with UID map %q, the VPS has %q: %w", id, meta.IDMap, s.IDMap, monitor.ErrNoCheckpoint)
	}
	if _, _, err := criu.Find(); err != nil {
		return nil, fmt.Errorf("VPS %d: %w: %w", id, ErrRestore, err)
	}
	r.repair(id)
	res := &RestoreResult{ID: id, Dir: dir, Bytes: dirSize(dir)}
	fmt.Fprintf(progress, "restoring VPS %d from %s (%.1f MiB, taken %s)\n", id, dir, float64(res.Bytes)/(1<<20),
		meta.Time.Format(time.RFC3339))
	t0 := time.Now()
	args := []string{"--restore", dir}
	if rs.stopped {
		args = append(args, "--stopped")
	}
	pid, warnings, err := monitor.Spawn(ctx, r.St, id, lk.File(), args...)
	if errors.Is(err, criu.ErrCRIU) {
		return nil, fmt.Errorf("VPS %d: %w: %w", id, ErrRestore, err)
	}
	if err != nil {
		return nil, err
	}
	r.warn(id, warnings)
	res.InitPID, res.Seconds = pid, time.Since(t0).Seconds()
	r.event(id, s.Name, eventlog.Restored, "")
	fmt.Fprintf(progress, "read %.1f MiB in %.2f s\n", float64(res.Bytes)/(1<<20), res.Seconds)
	return res, nil
}

// RestoreResult is what a restore did (`vpsctl restore --format json`).
type RestoreResult struct {
	ID      container.ID `json:"id"`
	Dir     string       `json:"dir"`
	InitPID int          `json:"init_pid"` // host PID of the restored init
	Bytes   int64        `json:"bytes"`    // size of the image directory
	Seconds float64      `json:"seconds"`
}

// CheckpointReport is the pre-flight of `vpsctl checkpoint --check`.
type CheckpointReport struct {
	ID              container.ID `json:"id"`
	CRIU            string       `json:"criu"`
	Version         string       `json:"version"`
	TooOld          bool         `json:"too_old"`
	BreakpointsWork bool         `json:"breakpoints_work"`
	FaultWorkaround bool         `json:"fault_workaround"`
	SoftDirty       bool         `json:"soft_dirty"`
	Running         bool         `json:"running"` // false: "VPS is not running" is among the blockers
	Blockers        []string     `json:"blockers"`
	Notes           []string     `json:"notes"`
}

// CheckpointCheck reports, before trying, what would block a dump of VPS id (with tcp, one
// that keeps established TCP connections).
func (r *Runtime) CheckpointCheck(id container.ID, tcp bool) (*CheckpointReport, error) {
	s, err := r.Status(id)
	if err != nil {
		return nil, err
	}
	if s.State == "deleted" {
		return nil, fmt.Errorf("VPS %d: %w", id, store.ErrNotExist)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	chk, _ := criu.Preflight(ctx)
	rep := &CheckpointReport{ID: s.ID, Blockers: []string{}, Notes: []string{}}
	if chk != nil {
		rep.CRIU, rep.Version, rep.TooOld = chk.CRIU, chk.Version.String(), chk.TooOld
		rep.BreakpointsWork, rep.FaultWorkaround, rep.SoftDirty = chk.BreakpointsWork, chk.NeedsFaultWorkaround, chk.SoftDirty
		rep.Blockers = append(rep.Blockers, chk.Problems...)
		rep.Notes = append(rep.Notes, chk.Notes...)
	}
	if rep.CRIU == "" {
		rep.Blockers = append(rep.Blockers, "no criu found (run scripts/install-criu.sh, or set VPSCTL_CRIU)")
	}
	if !rep.BreakpointsWork {
		rep.Notes = append(rep.Notes, "hardware breakpoints do not fire here: vpsctl runs criu with CRIU_FAULT=130 (no-breakpoint mode), otherwise it would hang")
	}
	if s.State != "running" {
		rep.Blockers = append(rep.Blockers, "VPS is not running")
		return rep, nil
	}
	rep.Running = true
	rep.Blockers = append(rep.Blockers, r.externalResources(s)...)
	rep.Blockers = append(rep.Blockers, vpsBlockers(s.InitPID, tcp)...)
	for _, n := range s.NetIfs {
		if ni, err := network.ParseNetIf(n); err == nil && ni.Bridge != "" {
			rep.Notes = append(rep.Notes, fmt.Sprintf("interface %s is re-created on restore (bridge %s must exist then)", ni.Name, ni.Bridge))
		}
	}
	if tcp {
		rep.Notes = append(rep.Notes, "network addresses are re-created from the config on restore; established TCP connections are dumped and restored")
	} else {
		rep.Notes = append(rep.Notes, "network addresses are re-created from the config on restore; established TCP connections need --tcp-established")
	}
	return rep, nil
}

// externalResources lists what a dump of the running VPS could not carry: mounts of host file
// systems other than vpsctl's own (its --bindmount directories and device nodes, which a
// restore mounts again).
func (r *Runtime) externalResources(s *Status) []string {
	binds := map[string]bool{}
	if s.cfg != nil {
		for _, b := range s.cfg.BindMounts {
			if bm, err := spec.ParseBindMount(b, r.St.Root); err == nil {
				binds[bm.VPS] = true
			}
		}
		devs, _ := monitor.DeviceTargets(s.cfg)
		for _, d := range devs {
			binds[d] = true
		}
	}
	var out []string
	mounts, err := sysfile.Mounts(s.InitPID, nil)
	if err != nil {
		return nil
	}
	for _, m := range mounts {
		if binds[m.Mountpoint] {
			continue
		}
		switch m.FSType {
		case "ext4", "xfs", "btrfs", "nfs", "nfs4", "fuse", "vfat":
			out = append(out, fmt.Sprintf("host filesystem mounted at %s (%s %s): bind mounts of the host are not dumped", m.Mountpoint, m.FSType, m.Source))
		}
	}
	return out
}
