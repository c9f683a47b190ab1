package runtime

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/vpsctl/vpsctl/cgroup"
	"github.com/vpsctl/vpsctl/container"
	"github.com/vpsctl/vpsctl/eventlog"
	"github.com/vpsctl/vpsctl/internal/spec"
	"github.com/vpsctl/vpsctl/store"
)

// Beancounter is one row of `vpsctl stats`, like a line of OpenVZ's /proc/user_beancounters.
type Beancounter struct {
	Resource string `json:"-"`
	Held     uint64 `json:"held"`
	MaxHeld  uint64 `json:"maxheld"`
	Barrier  Limit  `json:"barrier"`
	Limit    Limit  `json:"limit"`
	Failcnt  uint64 `json:"failcnt"`
}

// Limit is a barrier or limit; Unlimited is none. In JSON it is a number, or null for no
// limit: 2^64-1 is past what JavaScript's numbers (and so jq) hold exactly, and would be read
// as a slightly different, finite number.
type Limit uint64

// Unlimited is the Limit of a resource without one (cgroup.Unlimited).
const Unlimited = Limit(cgroup.Unlimited)

// MarshalJSON writes l as a number, or null if unlimited.
func (l Limit) MarshalJSON() ([]byte, error) {
	if l == Unlimited {
		return []byte("null"), nil
	}
	return strconv.AppendUint(nil, uint64(l), 10), nil
}

// String is l in decimal, or "unlimited".
func (l Limit) String() string {
	if l == Unlimited {
		return "unlimited"
	}
	return strconv.FormatUint(uint64(l), 10)
}

// Stats is a VPS's resource usage.
type Stats struct {
	ID           container.ID           `json:"id"`
	CPUUsageNs   uint64                 `json:"cpu_usage_ns"`
	MemoryBytes  uint64                 `json:"memory_bytes"`
	MemoryMax    Limit                  `json:"memory_max_bytes"`
	SwapBytes    uint64                 `json:"swap_bytes"`
	Processes    uint64                 `json:"processes"`
	Beancounters map[string]Beancounter `json:"beancounters"`
	Order        []string               `json:"-"`
	Disk         *DiskUsage             `json:"disk,omitempty"` // with a disk limit (--diskspace)
}

// Stats reads VPS id's usage and limits from its cgroup.
func (r *Runtime) Stats(id container.ID) (*Stats, error) {
	s, err := r.running(id, true)
	if err != nil {
		return nil, err
	}
	return r.statsFor(s)
}

// statsFor reads the usage of the running VPS whose status is s.
func (r *Runtime) statsFor(s *Status) (*Stats, error) {
	cg, err := cgroup.New(spec.CgroupPath(s.ID))
	if err != nil {
		return nil, err
	}
	cs, err := cg.Stats()
	if err != nil {
		return nil, err
	}
	r.logCounters(s.ID, s.Name, cs)
	out := &Stats{ID: s.ID, CPUUsageNs: cs.CPUUsageNs, MemoryBytes: cs.MemoryBytes, MemoryMax: Limit(cs.MemoryMaxBytes),
		SwapBytes: cs.SwapBytes, Processes: cs.Procs, Beancounters: map[string]Beancounter{}}
	for _, c := range cs.Counters {
		out.Beancounters[c.Resource] = Beancounter{Resource: c.Resource, Held: c.Held, MaxHeld: c.MaxHeld, Barrier: Limit(c.Barrier), Limit: Limit(c.Limit), Failcnt: c.Failcnt}
		out.Order = append(out.Order, c.Resource)
	}
	if out.Disk, err = r.diskUsage(s, false); err != nil {
		return nil, err
	}
	return out, nil
}

// FreezeTimeout bounds how long suspend waits for every process to freeze.
var FreezeTimeout = 10 * time.Second

// Suspend freezes every process of VPS id (cgroup freezer), waiting until they are frozen.
func (r *Runtime) Suspend(ctx context.Context, id container.ID) error {
	lk, err := r.St.LockVPS(ctx, id, "suspend")
	if err != nil {
		return err
	}
	defer lk.Unlock()
	s, err := r.running(id, true)
	if err != nil {
		return err
	}
	if s.Suspended {
		return fmt.Errorf("VPS %d: %w", id, ErrSuspended)
	}
	cg, err := cgroup.New(spec.CgroupPath(s.ID))
	if err != nil {
		return err
	}
	if err := cg.Freeze(FreezeTimeout); err != nil {
		return fmt.Errorf("VPS %d: freeze: %w", id, err)
	}
	r.event(id, s.Name, eventlog.Suspended, "")
	return nil
}

// suspendedFile marks a VPS suspended to disk: resume restores its checkpoint.
const suspendedFile = "suspended-to-disk"

// SuspendToDisk checkpoints VPS id and stops it (vzctl chkpnt); Resume restores it.
func (r *Runtime) SuspendToDisk(ctx context.Context, id container.ID, progress io.Writer) error {
	if _, err := r.Checkpoint(ctx, id, CheckpointOptions{Progress: progress}); err != nil {
		return err
	}
	if err := store.WriteFileAtomic(r.St.Path(id, suspendedFile), []byte(r.DefaultCheckpointDir(id)+"\n"), 0o600); err != nil {
		return err
	}
	r.event(id, r.nameOf(id), eventlog.Suspended, "to disk")
	return nil
}

// Resume thaws a suspended VPS, or restores one suspended to disk.
func (r *Runtime) Resume(ctx context.Context, id container.ID) error {
	if _, err := os.Stat(r.St.Path(id, suspendedFile)); err == nil {
		if s, err := r.Status(id); err == nil && s.State == "stopped" {
			if _, err := r.Restore(ctx, id, RestoreOptions{}); err != nil {
				return err
			}
			os.Remove(r.St.Path(id, suspendedFile))
			r.event(id, s.Name, eventlog.Resumed, "from disk")
			return nil
		}
		os.Remove(r.St.Path(id, suspendedFile))
	}
	lk, err := r.St.LockVPS(ctx, id, "resume")
	if err != nil {
		return err
	}
	defer lk.Unlock()
	s, err := r.running(id, true)
	if err != nil {
		return err
	}
	if !s.Suspended {
		return fmt.Errorf("VPS %d: %w: not suspended", id, ErrNotSuspended)
	}
	cg, err := cgroup.New(spec.CgroupPath(s.ID))
	if err != nil {
		return err
	}
	if err := cg.Thaw(); err != nil {
		return err
	}
	r.event(id, s.Name, eventlog.Resumed, "")
	return nil
}
