package monitor

import (
	"fmt"
	"log"
	"os"

	"github.com/vpsctl/vpsctl/cgroup"
	"github.com/vpsctl/vpsctl/container"
	"github.com/vpsctl/vpsctl/internal/fault"
	"github.com/vpsctl/vpsctl/prestart"
)

// Group is the cgroup of every VPS's monitor and of the keepers of spare VPSs: a group of
// vpsctl's own beside the VPSs' (docs/OPERATIONS.md, "Where VPS processes and monitors live").
// A monitor left in its caller's group would die with it (a login session's scope at logout,
// vpsctl.service's group when systemd stops the unit) and be charged to it. Beside, not above,
// the VPSs' groups: a VPS's limits never throttle or OOM-kill the monitor that must tear it
// down, and its cgroup.kill never reaches it. One group for all, made once and never removed:
// a boot writes a cgroup.procs per hierarchy and makes no directory. The leading dot keeps it
// out of the vpsctl/ID rule (container.OwnerOfGroup: a monitor is the host's) and apart from
// the kernel's interface files. vpsctl's LXCFS lives there too.
const Group = container.ServiceGroup

// JoinGroup moves this process (all its threads) and its spawner, if it has one (what it
// clones is born in its group), into Group, in every hierarchy (cgroup.New's: on v1 the named
// and unified ones too, which systemd goes by to decide which unit a process is in), making
// the group the first time. A move by PID waits for an RCU grace period after a quiet spell
// (cgroup.Manager.TaskFiles): a monitor that `vpsctl start` forked is placed before its Go
// runtime starts instead (placementRecord), and moves only if that failed (joinGroup).
func JoinGroup() error {
	if err := cgroup.JoinSelf(Group); err != nil {
		return fmt.Errorf("cgroup %s: %w", Group, err)
	}
	if sp := prestart.SpawnerPID(); sp > 0 {
		cg, err := cgroup.New(Group)
		if err == nil {
			err = cg.Apply(sp)
		}
		if err != nil {
			return fmt.Errorf("cgroup %s: %w", Group, err)
		}
	}
	return nil
}

// joinGroup makes sure, beside the monitor's first boot, that the monitor is in Group, and
// has its report wait for it: by the time the command that started the VPS returns, nothing of
// the VPS is in the caller's group. A monitor the front door placed there already (see
// placementRecord) is left as it is; another one moves, and the record is written for the next
// start. A move that fails is logged, and the VPS boots all the same from where the monitor is.
func (m *monitor) joinGroup() {
	if cgroup.SystemdScopes() {
		// Under systemd the VPS's scope is the monitor's home: its group's Create moves it
		// into the scope's supervisor leaf, a unit of its own that no login session or
		// service stop takes along (package cgroup, "Placement under systemd").
		m.st.SavePlacement(placementRecord(nil))
		return
	}
	m.grouped = make(chan struct{})
	goBeside(func() {
		defer close(m.grouped)
		cg, err := cgroup.New(Group)
		if err == nil {
			if in, _ := cgroup.Contains(cg, os.Getpid()); in {
				return
			}
			err = JoinGroup()
		}
		if err != nil {
			log.Printf("staying in the caller's cgroup: %v", err)
			return
		}
		fault.Mark("monitor-group-moved")
		m.st.SavePlacement(placementRecord(cg))
	})
}

// placementRecord is the state root's record (Store.SavePlacement) of where `vpsctl start`'s
// monitor places itself before its Go runtime starts, placing it in group cg (nil: nowhere,
// under systemd's scopes): the CLI's front door (cmd/vpsctl/frontdoor.c) forks the
// monitor into Group's cgroup2 directory with clone3(CLONE_INTO_CGROUP), and the child writes 0
// to Group's v1 tasks files, moves that take no global lock (a move by PID waits for an RCU
// grace period: milliseconds of every start). A monitor writes it whenever what it says has
// changed; the front door treats a missing or stale one as nothing to do, and
// joinGroup then moves the monitor. Keys: cgroup2 (the directory to clone into, if the host
// has a cgroup2 tree), tasks (repeated: the v1 tasks files), preclone (1: a boot here uses an
// init child cloned in advance, 0: it clones its init into a cgroup2 group, with
// CLONE_INTO_CGROUP, so one cloned in advance would be thrown away).
func placementRecord(cg cgroup.Manager) []byte {
	msg := &prestart.Msg{}
	preclone := 0 // systemd's scopes: a cgroup v2 host
	if cg != nil {
		preclone = 1
		if dir := cgroup.Cgroup2Dir(cg); dir != "" {
			msg.Add("cgroup2", dir)
			preclone = 0
		}
		msg.AddAll("tasks", cg.TaskFiles())
	}
	b, err := msg.AddInt("preclone", preclone).Bytes()
	if err != nil {
		return nil
	}
	return b
}

// awaitGroup waits until joinGroup's move is done.
func (m *monitor) awaitGroup() {
	if m.grouped != nil {
		<-m.grouped
		m.grouped = nil
	}
}
