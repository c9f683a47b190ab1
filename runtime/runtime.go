// Package runtime is vpsctl's lifecycle: create, start, exec, enter, set, stop, destroy, status.
// It is the only package that knows the order of the steps; the leaf packages (store, template,
// cgroup, network, uid, pidns, uts, container) each do one thing.
//
// Processes (see protocol.go for the wire formats):
//
//	vpsctl start ──spawn──> monitor (one per running VPS, own mount namespace, setsid)
//	                          ├─ cgroup, rootfs (idmapped template + overlay), console pty, network
//	                          └─ clone ──> init child (C, new namespaces) ── pivot_root ── exec /sbin/init
//	                        monitor execs into the C reaper (reaper.go), which waits for init:
//	                        SIGHUP death = in-VPS reboot (back to Go: clean up, boot again),
//	                        anything else = halt (clean up, exit)
//
// Invariants: a VPS is running iff its init process (PID and start time recorded in run.json)
// is alive. Host-side objects of a VPS (cgroups, veths, routes) are removed by the monitor when
// the init dies, or, if the monitor itself was killed, by the next command that takes the VPS's
// lock. Mounts of a VPS live only in the monitor's and the VPS's own mount namespaces, so they
// vanish with them and never leak into the host's. The private area is removed only by Destroy.
package runtime

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/vpsctl/vpsctl/container"
	"github.com/vpsctl/vpsctl/eventlog"
	"github.com/vpsctl/vpsctl/hostconf"
	"github.com/vpsctl/vpsctl/internal/spec"
	"github.com/vpsctl/vpsctl/monitor"
	"github.com/vpsctl/vpsctl/prestart"
	"github.com/vpsctl/vpsctl/registry"
	"github.com/vpsctl/vpsctl/store"
	"github.com/vpsctl/vpsctl/uid"
)

// Sentinels callers branch on (cmd/vpsctl maps them, and the leaf packages' ones, to exit codes).
var (
	ErrRunning      = errors.New("VPS is running")
	ErrNotRunning   = errors.New("VPS is not running")
	ErrBadValue     = spec.ErrBadValue
	ErrUsage        = errors.New("bad usage")
	ErrTemplateUse  = errors.New("template in use")
	ErrSuspended    = errors.New("VPS is suspended")
	ErrNotSuspended = errors.New("VPS is not suspended")
	// ErrUserPasswd: a password could not be set (a malformed USER:PASSWORD, or the VPS's
	// tools failed), vzctl's "error changing password".
	ErrUserPasswd = errors.New("cannot set password")
	// ErrCheckpoint and ErrRestore: CRIU failed to dump or to restore a VPS, or no usable
	// CRIU was found for it (vzctl's checkpoint and restore errors).
	ErrCheckpoint = errors.New("checkpoint failed")
	ErrRestore    = errors.New("restore failed")
)

// Runtime operates on one state root.
type Runtime struct {
	St *store.Store
	// Defaults are the limits a VPS created without them gets (see spec.Defaults, which Open
	// sets here).
	Defaults spec.DefaultLimits
	// Pool is the host IDs VPSs' ranges are allocated from when CreateOptions name none
	// (uid.DefaultPool unless the host's configuration says otherwise: OpenConfig), and
	// IDMapSize a range's width when they name none (0: DefaultIDMapSize).
	Pool      uid.Pool
	IDMapSize uint32
	// HostEtc is the directory of the host's account files (/etc), whose users' IDs and
	// subordinate ranges no VPS range may overlap.
	HostEtc string
	// Cluster is the host's cluster registry (nil: the host is on its own). With it, IDs,
	// names, addresses and UID ranges are claimed across hosts (cluster.go).
	Cluster *registry.Client
	// Events is the host's events log (docs/OPERATIONS.md, "Events"): what happens to each VPS
	// is appended to it. nil: nothing is logged. OpenConfig sets it.
	Events *eventlog.Log
	// Host is the host configuration OpenConfig ran the runtime with (nil after Open: the
	// built-in defaults). CreateDefaults and StopTimeout read it, so that every caller
	// (the CLI, the API) gives a request the same host defaults.
	Host *hostconf.Config
	// Warn receives warnings about host settings that keep a VPS from working fully (one
	// line each); nil discards them. They are also in the VPS's monitor.log.
	Warn io.Writer
	// held are what VPSs this process ran and is about to destroy (run --rm) left: their
	// groups and mount namespaces, which the destroy hands to the background remover with the
	// files (see monitor.Leftovers), so that the command waits for neither the unmounting of the
	// VPS's ~45 mounts and its overlay nor the groups' removal.
	held   map[container.ID]monitor.Leftovers
	heldMu sync.Mutex // a spare keeper's workers (spare.go) share one Runtime
}

func (r *Runtime) hold(id container.ID, left monitor.Leftovers) {
	r.heldMu.Lock()
	defer r.heldMu.Unlock()
	if r.held == nil {
		r.held = map[container.ID]monitor.Leftovers{}
	}
	r.held[id] = left
}

// takeHeld returns (and forgets) what hold kept of VPS id: no monitor.Leftovers if nothing.
func (r *Runtime) takeHeld(id container.ID) (monitor.Leftovers, bool) {
	r.heldMu.Lock()
	defer r.heldMu.Unlock()
	left, ok := r.held[id]
	delete(r.held, id)
	return left, ok
}

func (r *Runtime) warn(id container.ID, msgs []string) {
	if r.Warn == nil {
		return
	}
	for _, m := range msgs {
		fmt.Fprintf(r.Warn, "vpsctl: warning: VPS %d: %s\n", id, m)
	}
}

// Open opens the state root (see store.Open) and sweeps monitor.Leftovers of killed commands.
func Open(root string) (*Runtime, error) {
	if root == "" {
		root = os.Getenv("VPSCTL_ROOT")
	}
	st, err := store.Open(root)
	if err != nil {
		return nil, err
	}
	st.Sweep()
	st.Reclaim = func(j store.ReclaimJob) error {
		return prestart.Remove(prestart.RemoveJob{Dir: j.Dir, DirLock: j.DirLock, Groups: j.Groups,
			VPSLock: j.VPSLock, VPSLockPath: j.VPSLockPath, Spares: j.Spares, Hold: j.Hold})
	}
	return &Runtime{St: st, Defaults: spec.Defaults, Pool: uid.DefaultPool, HostEtc: "/etc"}, nil
}

// Resolve turns an ID or a name into an existing VPS's ID.
func (r *Runtime) Resolve(ref string) (container.ID, error) {
	if container.LooksNumeric(ref) {
		id, err := container.ParseID(ref)
		if err != nil {
			return 0, err
		}
		if !r.St.Exists(id) {
			return 0, fmt.Errorf("VPS %d: %w", id, store.ErrNotExist)
		}
		return id, nil
	}
	if ref == "" || ref[0] == '-' {
		return 0, fmt.Errorf("%w %q", container.ErrBadID, ref)
	}
	if err := container.ValidateName(ref); err != nil {
		return 0, err
	}
	id, err := r.St.LookupName(ref)
	if err != nil {
		return 0, err
	}
	return id, nil
}
