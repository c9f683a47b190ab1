package runtime

import (
	"errors"
	"fmt"
	"log"
	"os"
	"slices"
	"time"

	"github.com/vpsctl/vpsctl/cgroup"
	"github.com/vpsctl/vpsctl/container"
	"github.com/vpsctl/vpsctl/internal/proc"
	"github.com/vpsctl/vpsctl/internal/spec"
	"github.com/vpsctl/vpsctl/lxcfs"
	"github.com/vpsctl/vpsctl/monitor"
	"github.com/vpsctl/vpsctl/network"
	"github.com/vpsctl/vpsctl/store"
)

// Status is what `vpsctl status` and `vpsctl list` report about a VPS.
type Status struct {
	ID         container.ID `json:"id"`
	Name       string       `json:"name"`
	State      string       `json:"state"` // "running", "stopped" or "deleted"
	Suspended  bool         `json:"suspended"`
	Hostname   string       `json:"hostname"`
	Domainname string       `json:"domainname,omitempty"`
	Template   string       `json:"template"`
	InitPID    int          `json:"init_pid"`
	MonitorPID int          `json:"monitor_pid,omitempty"`
	Boots      int          `json:"boots,omitempty"`
	// Backoff: the VPS reboots in a loop and its next boot is held back until BackoffUntil.
	Backoff      bool      `json:"backoff,omitempty"`
	BackoffUntil time.Time `json:"backoff_until,omitzero"`
	Namespaces   []string  `json:"namespaces,omitempty"`
	IDMap        string    `json:"idmap,omitempty"`
	IPs          []string  `json:"ips"`
	NetIfs       []string  `json:"netifs"`
	OnBoot       string    `json:"onboot,omitempty"`    // ONBOOT as saved: "yes", "no" or ""
	BootOrder    string    `json:"bootorder,omitempty"` // BOOTORDER as saved
	// LXCFS: whether a running VPS's /proc and /sys views of its own limits are served
	// (lxcfs.ViewLive, ViewDead, ViewNone), filled by CheckViews.
	LXCFS string `json:"lxcfs,omitempty"`
	// Incomplete: its clone, restore from a backup or migration is under way or was cut off.
	Incomplete bool `json:"incomplete,omitempty"`

	cfg *store.Config
	run *store.RunState
}

// Line is the one-line form for scripts: "VPS 101 exist running [suspended]", "VPS 101 exist
// stopped", "VPS 101 deleted".
func (s *Status) Line() string {
	if s.State == "deleted" {
		return fmt.Sprintf("VPS %d deleted", s.ID)
	}
	l := fmt.Sprintf("VPS %d exist %s", s.ID, s.State)
	if s.Suspended {
		l += " suspended"
	}
	if s.Incomplete {
		l += " incomplete"
	}
	if s.Backoff {
		l += " backoff"
	}
	return l
}

// Status reports VPS id's state; a VPS that does not exist is "deleted" (not an error).
func (r *Runtime) Status(id container.ID) (*Status, error) { return r.status(id, true) }

// status is Status; without frozen, a running VPS's Suspended is left false (its freezer is not
// read: that takes the cgroup hierarchies' lookup, which a stop does while its kill is under way).
func (r *Runtime) status(id container.ID, frozen bool) (*Status, error) {
	c, err := r.St.LoadConfig(id)
	if errors.Is(err, store.ErrNotExist) {
		return &Status{ID: id, State: "deleted", IPs: []string{}, NetIfs: []string{}}, nil
	}
	if err != nil {
		return nil, err
	}
	s := &Status{ID: c.ID, Name: c.Name, State: "stopped", Hostname: c.Hostname, Domainname: c.Domainname,
		Template: c.Template, Namespaces: c.Namespaces, IDMap: c.IDMap, IPs: nonNil(c.IPs), NetIfs: nonNil(c.NetIfs),
		OnBoot: c.OnBoot, BootOrder: c.BootOrder, cfg: c}
	if _, err := os.Stat(r.St.Path(c.ID, suspendedFile)); err == nil {
		s.Suspended = true // on disk; "running" below clears nothing: a running VPS is not on disk
	}
	if _, err := os.Stat(r.St.Path(c.ID, incompleteFile)); err == nil {
		s.Incomplete = true
	}
	if run, err := r.St.LoadRun(c.ID); err == nil {
		s.run = run
		if proc.Alive(run.InitPID, run.InitStart) {
			s.State, s.InitPID, s.Boots = "running", run.InitPID, run.Boots
			if proc.Alive(run.MonitorPID, run.MonitorStart) {
				s.MonitorPID = run.MonitorPID
			}
			if !frozen {
				s.Suspended = false
			} else if cg, err := cgroup.New(spec.CgroupPath(c.ID)); err == nil {
				s.Suspended, _ = cg.Frozen()
			}
		} else if (run.Phase == "rebooting" || run.Phase == "backoff") && proc.Alive(run.MonitorPID, run.MonitorStart) {
			// Between the old init's death and the new one's birth: the VPS exists and is
			// running, as vzctl says of a rebooting container; it has no init to join yet.
			// "backoff": the birth is held back (a reboot loop, see package monitor).
			s.State, s.MonitorPID, s.Boots = "running", run.MonitorPID, run.Boots
			s.Backoff, s.BackoffUntil = run.Phase == "backoff", run.BackoffUntil
		}
	}
	return s, nil
}

// CheckViews fills in s.LXCFS for a running VPS. It asks LXCFS (a FUSE round trip), which
// Status, used on every command's path, does not.
func (s *Status) CheckViews() {
	if s.State == "running" && s.InitPID > 0 {
		s.LXCFS = lxcfs.ViewState(fmt.Sprintf("/proc/%d/root/proc/meminfo", s.InitPID))
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// running returns the status of VPS id and fails unless it is running (and not suspended,
// unless allowSuspended).
func (r *Runtime) running(id container.ID, allowSuspended bool) (*Status, error) {
	s, err := r.Status(id)
	return mustRun(id, s, err, allowSuspended)
}

// mustRun is running's check of a status already read (s, err from Status).
func mustRun(id container.ID, s *Status, err error, allowSuspended bool) (*Status, error) {
	if err != nil {
		return nil, err
	}
	if s.State == "deleted" {
		return nil, fmt.Errorf("VPS %d: %w", id, store.ErrNotExist)
	}
	if s.State != "running" || s.InitPID == 0 {
		return nil, fmt.Errorf("VPS %d: %w", id, ErrNotRunning)
	}
	if s.Suspended && !allowSuspended {
		return nil, fmt.Errorf("VPS %d: %w (resume it first)", id, ErrSuspended)
	}
	return s, nil
}

// List returns the status of every VPS (all, or only running ones).
func (r *Runtime) List(all bool) ([]*Status, error) {
	ids, err := r.St.IDs()
	if err != nil {
		return nil, err
	}
	out := make([]*Status, 0, len(ids))
	for _, id := range ids {
		if r.St.IsSpare(id) {
			continue // a keeper's, until a run claims it (spare.go)
		}
		s, err := r.Status(id)
		if err != nil || s.State == "deleted" {
			continue
		}
		if all || s.State == "running" {
			out = append(out, s)
		}
	}
	return out, nil
}

// repair removes the host-side monitor.Leftovers of a VPS whose init and monitor are both gone (the
// monitor was killed, or the host rebooted). The caller holds the VPS's lock.
func (r *Runtime) repair(id container.ID) {
	run, err := r.St.LoadRun(id)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			r.St.ClearRun(id)
		}
		r.cleanHost(id)
		return
	}
	if proc.Alive(run.InitPID, run.InitStart) {
		return
	}
	if proc.Alive(run.MonitorPID, run.MonitorStart) {
		// The monitor is cleaning up after init; give it a moment.
		deadline := time.Now().Add(10 * time.Second)
		for proc.Alive(run.MonitorPID, run.MonitorStart) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if !proc.Alive(run.MonitorPID, run.MonitorStart) {
			if _, err := r.St.LoadRun(id); errors.Is(err, os.ErrNotExist) {
				return
			}
		}
	}
	r.cleanHost(id)
	r.St.ClearRun(id)
}

// cleanHost removes a stopped VPS's cgroups and host network objects, if any are left.
func (r *Runtime) cleanHost(id container.ID) {
	// The group is made first and removed last by a boot: if it is gone and no run state is
	// left, the previous boot cleaned up after itself and there is nothing to look for (the
	// network teardown's netlink scans are the costly part of a start's or stop's repair).
	_, runErr := r.St.LoadRun(id)
	dirty := runErr == nil
	if cg, err := cgroup.New(spec.CgroupPath(id)); err == nil && cg.Exists() {
		dirty = true
		if err := monitor.RemoveGroups(cg); err != nil {
			log.Printf("VPS %d: cgroup: %v", id, err)
		}
	}
	if dirty {
		r.teardownNet(id, true)
	}
	os.Remove(r.St.Path(id, monitor.StopFile))
}

// teardownNet removes what a stopped VPS's network left on the host (its host interfaces and
// proxy entries; the VPS's side died with its network namespace). After a clean stop (scan
// false) a VPS with no addresses and no interfaces is skipped: its boot set nothing up
// (bootRest), and set takes them away live, so the netlink scan (and with it the netpoller's
// set-up in this process) would find nothing. A repair scans anyway, for what a command killed
// half-way left.
func (r *Runtime) teardownNet(id container.ID, scan bool) {
	c, err := r.St.LoadConfig(id)
	if err != nil || !slices.Contains(c.Namespaces, "net") {
		return
	}
	if nc, err := spec.Net(c); err == nil && (scan || !nc.Empty()) {
		network.Teardown(id, nc)
	}
}
