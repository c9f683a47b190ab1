package cgroup

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/vpsctl/vpsctl/internal/sysfile"
	"golang.org/x/sys/unix"
)

// Errors callers branch on; they are always wrapped with context.
var (
	// ErrNotSupported: the host's cgroup setup lacks what was asked for
	// (a controller that is not mounted, a v2-only feature on v1).
	ErrNotSupported = errors.New("not supported by this cgroup setup")
	// ErrBadValue: a value or path was refused before reaching the kernel.
	ErrBadValue = errors.New("bad value")
	// ErrTimeout: a bounded wait ran out.
	ErrTimeout = errors.New("timed out")
	// ErrNoGroup: /proc/PID/cgroup has no line for the hierarchy asked about.
	ErrNoGroup = errors.New("no cgroup for this hierarchy")
)

// Unlimited is the Barrier/Limit of a [Counter] with no limit.
const Unlimited uint64 = math.MaxUint64

// Resources are limits; a nil field means "leave unchanged" and -1 means
// unlimited where it applies. Each Set computes the CPU quota from the
// fields it is given, so callers pass CPUs and CPULimitPct together.
type Resources struct {
	// MemoryBytes: v1 memory.limit_in_bytes, v2 memory.max.
	MemoryBytes *int64
	// SwapBytes is swap allowed in addition to memory: v1
	// memory.memsw.limit_in_bytes = memory+swap, v2 memory.swap.max.
	// Skipped quietly when the kernel does not account swap. When only
	// MemoryBytes is given on v1, the swap allowance already set is kept.
	SwapBytes *int64
	// CPUs caps the group at N CPUs' worth of time (vzctl --cpus): a CFS
	// quota of N periods. 0 = unlimited.
	CPUs *int
	// CPUSet pins the group to CPUs (a cpuset list, "0-1,3": v1 and v2 cpuset.cpus); "" = the
	// parent's (all). What the VPS's sched_getaffinity, and so nproc, reports.
	CPUSet *string
	// CPULimitPct: 100 = one full CPU (vzctl --cpulimit). 0 = unlimited.
	// With CPUs also set, the smaller quota wins.
	CPULimitPct *int
	// CPUUnits is vzctl's relative CPU weight, 8..500000, default 1000:
	// v1 cpu.shares = units*1024/1000 (2..262144), so 1000 is the kernel's
	// default 1024; v2 cpu.weight = units/10 (1..10000), so 1000 is the
	// default 100 and the ratio between VPSs is kept from 10 to 100000 units.
	CPUUnits *int
	// NumProc: pids.max (tasks, threads included, as OpenVZ's numproc).
	NumProc *int64
	// IOWeight 10..1000, written as is to every weight file the hierarchy
	// has (v1 blkio.weight, blkio.bfq.weight; v2 io.weight, io.bfq.weight),
	// whose ranges all contain it; absent files are skipped.
	IOWeight *int
	// IOLimitBps caps reads and, separately, writes in bytes/s on every
	// whole disk (/sys/block/*): v1 blkio.throttle.{read,write}_bps_device,
	// v2 io.max rbps/wbps. 0 = unlimited.
	IOLimitBps *int64
	// Devices, when non-nil, is the complete allowlist: v1 devices.deny "a"
	// then devices.allow per rule; v2 a BPF_CGROUP_DEVICE program.
	Devices []DeviceRule
}

// DeviceRule allows access to a device node class.
type DeviceRule struct {
	Type         rune   // 'c', 'b', or 'a' (all devices: only as "a *:* rwm")
	Major, Minor int64  // -1 = any
	Access       string // non-empty subset of "rwm"
}

// String formats r as the kernel's devices.list does: "c 1:3 rwm".
func (r DeviceRule) String() string {
	num := func(n int64) string {
		if n < 0 {
			return "*"
		}
		return fmt.Sprint(n)
	}
	return fmt.Sprintf("%c %s:%s %s", r.Type, num(r.Major), num(r.Minor), r.Access)
}

// Counter is one row of an OpenVZ-style beancounter table.
// Barrier and Limit are [Unlimited] when there is none.
type Counter struct {
	Resource                               string
	Held, MaxHeld, Barrier, Limit, Failcnt uint64
}

// Stats is a snapshot of a group's usage. Counters holds, in this order:
//
//   - numproc: tasks (pids.current), peak (pids.peak, else held), pids.max,
//     failcnt = forks refused (pids.events "max").
//   - physpages: memory in 4 KiB pages, peak, limit, failcnt = charges
//     refused at the limit (v2 memory.events "max"; "oom" is not added, as
//     every OOM in the group follows such a refusal. v1 memory.failcnt +
//     memory.memsw.failcnt: the kernel charges memory+swap first, so a
//     group without swap allowance that runs out of RAM counts in memsw).
//   - swappages: swap in 4 KiB pages, peak (v2 memory.swap.peak, else held),
//     limit, failcnt (v1 memory.memsw.failcnt, v2 memory.swap.events "max").
//   - cpu: held = CPU time used in ns (maxheld the same), barrier = limit =
//     the CFS quota as percent of one CPU, failcnt = periods throttled
//     (cpu.stat nr_throttled).
//
// Values the hierarchy does not account are 0 (limits: Unlimited).
type Stats struct {
	CPUUsageNs                             uint64
	MemoryBytes, MemoryMaxBytes, SwapBytes uint64
	Procs                                  uint64 // processes (tgids), subgroups included
	// OOMKills counts the processes the kernel's OOM killer killed in the group (v1
	// memory.oom_control oom_kill, v2 memory.events oom_kill; 0 where not accounted).
	OOMKills uint64
	Counters []Counter
}

// Manager controls one group: in every v1 hierarchy, or in the v2 tree.
type Manager interface {
	// Create makes the group and its missing parents; idempotent. v2 enables
	// memory, pids, cpu, io and cpuset (those available) in every ancestor's
	// cgroup.subtree_control; v1 cpuset copies cpus/mems from the parent,
	// because an empty cpuset group refuses processes. On a cgroup v2 host
	// run by systemd the group lives in a delegated scope (see systemd.go),
	// and Create first moves the calling process, the group's supervisor,
	// into that scope's supervisor leaf (starting the scope if need be):
	// only the VPS's monitor calls it.
	Create() error
	// Apply moves process pid (all its threads) into the group.
	Apply(pid int) error
	// Set applies the non-nil limits of r. Values the kernel rejects come
	// back wrapped with the file name. The first Set after Create made the
	// group leaves out the values a new group has already (withoutDefaults).
	Set(r *Resources) error
	Stats() (*Stats, error)
	// Failures is Stats with only the failure counts filled in: OOMKills and the Failcnt of
	// numproc, physpages and swappages, in that order (the cpu counter's throttling is a rate,
	// not a refusal). Read from the few files that hold them: a stop's last reading.
	Failures() (*Stats, error)
	// Freeze stops every process and waits until the kernel reports the
	// group frozen; on timeout it thaws again and returns ErrTimeout.
	Freeze(timeout time.Duration) error
	Thaw() error
	Frozen() (bool, error)
	// Kill SIGKILLs every process in the group and its subgroups, including
	// ones forked meanwhile, then waits until the group is empty.
	Kill(timeout time.Duration) error
	// Pids lists every process (tgid) in the group and its subgroups.
	Pids() ([]int, error)
	// Populated reports whether any process is in the group or below.
	// A group that does not exist is not populated.
	Populated() (bool, error)
	WaitEmpty(timeout time.Duration) error
	// Destroy removes the group and its subgroups, deepest first, retrying
	// while the kernel says EBUSY until timeout; missing groups are fine.
	Destroy(timeout time.Duration) error
	// Exists reports whether any directory of the group exists.
	Exists() bool
	// CgroupFD opens the group's directory in the host's cgroup2 tree for clone3's
	// CLONE_INTO_CGROUP (SysProcAttr.CgroupFD); the caller closes it. v2: the group, made by
	// Create. A hybrid host: the group's directory in its unified tree, made here if missing
	// (a clone into it comes before the v1 hierarchies' groups are made, see TaskFiles).
	// Pure v1: -1, ErrNotSupported.
	CgroupFD() (int, error)
	// TaskFiles are the group's v1 "tasks" files (none on v2): a thread that writes "0" to
	// each has moved itself into the group. A thread moving itself takes no global lock; a
	// write of a PID to cgroup.procs (Apply) takes cgroup_threadgroup_rwsem for writing,
	// whose first taker after a quiet spell of some 10-30 ms waits for an RCU grace period
	// (2-14 ms here). A process that is one thread (a VPS's init child, before its exec) is
	// then wholly in the group; a process cloned into the cgroup2 part (CgroupFD) needs
	// nothing else.
	TaskFiles() []string
	// Delegate hands the group to uid:gid (a VPS's root), as the kernel's cgroup delegation
	// model has it: the directory (to make subgroups) and the files that move processes and,
	// on v2, enable controllers below; the group's own limits stay host-owned.
	Delegate(uid, gid int) error
	// Spares lists the directories where spare groups for groups beside this one may be made
	// (plain mkdir, by the background remover once this group is gone): Create renames one into
	// place instead of making a group. v1 only (cgroup2 cannot rename a group): nil on v2.
	Spares() []string
	// Paths maps controller names ("name=systemd" for named v1
	// hierarchies, "" on v2) to the group's absolute directories.
	Paths() map[string]string
	// Path is the relative group path given to New.
	Path() string
	// ThawFile names the file whose first line is thawed while the group is not frozen (v1
	// freezer.state THAWED, v2 cgroup.freeze 0); "" if the host has no freezer.
	ThawFile() (path, thawed string)
}

// JoinSelf moves this process (all its threads) into group path in every hierarchy, making
// the group where it is missing (a first use, or a hierarchy mounted since).
func JoinSelf(path string) error {
	cg, err := New(path)
	if err != nil {
		return err
	}
	if cg.Apply(os.Getpid()) == nil {
		return nil
	}
	if err := cg.Create(); err != nil {
		return err
	}
	return cg.Apply(os.Getpid())
}

// cgroupRoot is where the host mounts its cgroup filesystems.
const cgroupRoot = "/sys/fs/cgroup"

// unified reports whether the host runs cgroup v2 only. A tmpfs at
// /sys/fs/cgroup holds v1 mounts (legacy or hybrid); hybrid counts as v1
// because its controllers live in the v1 hierarchies.
var unified = sync.OnceValues(func() (bool, error) {
	var st unix.Statfs_t
	if err := sysfile.Retry(func() error { return unix.Statfs(cgroupRoot, &st) }); err != nil {
		return false, &os.PathError{Op: "statfs", Path: cgroupRoot, Err: err}
	}
	switch st.Type {
	case unix.CGROUP2_SUPER_MAGIC:
		return true, nil
	case unix.TMPFS_MAGIC:
		return false, nil
	}
	return false, fmt.Errorf("%s: filesystem type %#x is neither cgroup2 nor tmpfs: %w", cgroupRoot, st.Type, ErrNotSupported)
})

// FS is one cgroup file system of the host, as a VPS's init mounts it again inside its cgroup
// namespace (where its root is the VPS's own group).
type FS struct {
	Type    string // "cgroup" (a v1 hierarchy) or "cgroup2"
	Mount   string // where the host mounts it, e.g. /sys/fs/cgroup/cpu,cpuacct
	Options string // the superblock's options but rw/ro: a v1 hierarchy's controllers or name=
}

// Filesystems lists the host's cgroup file systems: the one cgroup2 tree of a pure v2 host, or
// each v1 hierarchy and a hybrid host's cgroup2 tree, sorted by mount point.
func Filesystems() ([]FS, error) {
	v2, err := unified()
	if err != nil {
		return nil, err
	}
	if v2 {
		return []FS{{Type: "cgroup2", Mount: cgroupRoot}}, nil
	}
	hs, err := v1Hierarchies()
	if err != nil {
		return nil, err
	}
	out := make([]FS, 0, len(hs))
	for _, h := range hs {
		if len(h.ctrls) == 1 && h.ctrls[0] == unifiedName {
			out = append(out, FS{Type: "cgroup2", Mount: h.mount})
			continue
		}
		out = append(out, FS{Type: "cgroup", Mount: h.mount, Options: h.opts})
	}
	return out, nil
}

// New returns the Manager for group rel (relative to the hierarchy roots,
// e.g. "vpsctl/101") on this host. It does not create anything. Where rel
// lives is decided here only: at the roots of the v1 hierarchies or of the
// cgroup2 tree, or, on a cgroup2 host whose PID 1 is systemd, below its
// delegated scope (systemd.go).
func New(rel string) (Manager, error) {
	if err := checkRel(rel); err != nil {
		return nil, err
	}
	v2, err := unified()
	if err != nil {
		return nil, err
	}
	if v2 && underSystemd() {
		return newSystemdScope(cgroupRoot, rel), nil
	}
	if v2 {
		return newFS2(cgroupRoot, rel), nil
	}
	return newFS1(rel)
}

// checkRel accepts only clean, relative, non-root paths, so that joining rel
// to a hierarchy root can never leave it.
func checkRel(rel string) error {
	if rel == "" || rel == "." || path.IsAbs(rel) || path.Clean(rel) != rel || rel == ".." || strings.HasPrefix(rel, "../") {
		return fmt.Errorf("cgroup path %q: must be clean, relative and below the root: %w", rel, ErrBadValue)
	}
	return nil
}

// IsDescendant reports whether group child is parent or lies below it
// (the seed's container_is_descendant, which is true for the group itself).
// It compares whole path components: "vpsctl/10" is not an ancestor of
// "vpsctl/101". "" and "/" are the root, the ancestor of every group.
func IsDescendant(parent, child string) bool {
	p := path.Clean("/" + parent)
	c := path.Clean("/" + child)
	return p == "/" || c == p || strings.HasPrefix(c, p+"/")
}

// Cgroup2Dir is m's directory in the host's cgroup2 tree (a hybrid host's unified tree, or the
// v2 group), the directory a process is cloned into with CLONE_INTO_CGROUP; "" on a host with
// no cgroup2 tree. With TaskFiles it is where a process places itself without a move by PID.
func Cgroup2Dir(m Manager) string {
	p := m.Paths()
	if d, ok := p[""]; ok {
		return d
	}
	return p[unifiedName]
}

// Contains reports whether process pid is in m's group in every hierarchy of m's (its
// /proc/PID/cgroup): a process that placed itself there needs no move.
func Contains(m Manager, pid int) (bool, error) {
	lines, err := readProcCgroup(pid)
	if err != nil {
		return false, err
	}
	for ctrl := range m.Paths() {
		if ctrl == unifiedName {
			ctrl = ""
		}
		if g, err := groupIn(lines, ctrl); err != nil || g != m.Path() {
			return false, nil
		}
	}
	return true, nil
}
