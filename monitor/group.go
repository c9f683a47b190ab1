package monitor

import (
	"fmt"
	"log"

	"github.com/vpsctl/vpsctl/cgroup"
	"github.com/vpsctl/vpsctl/container"
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
// the group the first time. On cgroup v1 the first move after a quiet spell waits for an RCU
// grace period (see cgroup.Prewarm): a monitor runs it beside its boot (joinGroup).
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

// joinGroup starts the monitor's move into Group beside its first boot (the move's wait for a
// grace period then overlaps the boot's work, and warms the kernel for the init's move into its
// own groups), and has its report wait for it: by the time the command that started the VPS
// returns, nothing of the VPS is in the caller's group. A move that fails is logged, and the
// VPS boots all the same from where the monitor is.
func (m *monitor) joinGroup() {
	if cgroup.SystemdScopes() {
		// Under systemd the VPS's scope is the monitor's home: its group's Create moves it
		// into the scope's supervisor leaf, a unit of its own that no login session or
		// service stop takes along (package cgroup, "Placement under systemd").
		return
	}
	m.grouped = make(chan struct{})
	goBeside(func() {
		defer close(m.grouped)
		if err := JoinGroup(); err != nil {
			log.Printf("staying in the caller's cgroup: %v", err)
		}
	})
}

// awaitGroup waits until joinGroup's move is done.
func (m *monitor) awaitGroup() {
	if m.grouped != nil {
		<-m.grouped
		m.grouped = nil
	}
}
