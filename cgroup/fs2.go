package cgroup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vpsctl/vpsctl/internal/sysfile"
	"golang.org/x/sys/unix"
)

// fs2 is a group in a cgroup v2 (unified) tree.
type fs2 struct {
	root, rel, dir string
	disks          func() ([]string, error) // whole disks for io.max; tests replace it
	fresh          bool                     // Create made the group: see withoutDefaults
}

func newFS2(root, rel string) *fs2 {
	return &fs2{root: root, rel: rel, dir: filepath.Join(root, rel), disks: wholeDisks}
}

// fs2Controllers are the controllers a VPS group needs, in the order they
// are enabled.
var fs2Controllers = []string{"cpuset", "cpu", "io", "memory", "pids"}

// Spares: none; cgroup2 cannot rename a group (see spareSlots).
func (m *fs2) Spares() []string { return nil }

func (m *fs2) Path() string                  { return m.rel }
func (m *fs2) Paths() map[string]string      { return map[string]string{"": m.dir} }
func (m *fs2) Exists() bool                  { _, err := os.Stat(m.dir); return err == nil }
func (m *fs2) Apply(pid int) error           { return applyPid(m.dir, pid) }
func (m *fs2) Thaw() error                   { return writeFile(m.dir, "cgroup.freeze", "0") }
func (m *fs2) ThawFile() (string, string)    { return filepath.Join(m.dir, "cgroup.freeze"), "0" }
func (m *fs2) Destroy(t time.Duration) error { return removeTree(m.dir, t) }

func (m *fs2) Delegate(uid, gid int) error { return delegate(m.dir, true, uid, gid) }

func (m *fs2) Create() error {
	dir := m.root
	for part := range strings.SplitSeq(m.rel, "/") {
		// A controller is usable in a group only if its parent lists it in
		// cgroup.subtree_control, so each ancestor enables it for the next.
		if err := m.enable(dir); err != nil {
			return err
		}
		dir = filepath.Join(dir, part)
		made, err := mkdir(dir)
		if err != nil {
			return err
		}
		m.fresh = made
	}
	return nil
}

// enable adds the wanted controllers that dir offers and has not yet
// enabled, in one write: the kernel applies all or none.
func (m *fs2) enable(dir string) error {
	avail, err := readFile(dir, "cgroup.controllers")
	if err != nil {
		return err
	}
	on, err := readFile(dir, "cgroup.subtree_control")
	if err != nil {
		return err
	}
	var add []string
	for _, c := range fs2Controllers {
		if slices.Contains(strings.Fields(avail), c) && !slices.Contains(strings.Fields(on), c) {
			add = append(add, "+"+c)
		}
	}
	if len(add) == 0 {
		return nil
	}
	return writeFile(dir, "cgroup.subtree_control", strings.Join(add, " "))
}

func applyPid(dir string, pid int) error {
	if pid <= 0 {
		return fmt.Errorf("pid %d: %w", pid, ErrBadValue)
	}
	return writeFile(dir, "cgroup.procs", strconv.Itoa(pid))
}

func (m *fs2) Set(r *Resources) error {
	if err := validate(r); err != nil {
		return err
	}
	if m.fresh {
		// Only the first Set: it may change what a new group has.
		r, m.fresh = withoutDefaults(r), false
	}
	d := m.dir
	if r.MemoryBytes != nil {
		if err := writeFile(d, "memory.max", orUnlimited(r.MemoryBytes, "max")); err != nil {
			return err
		}
	}
	if r.SwapBytes != nil {
		if err := writeIfExists(d, "memory.swap.max", orUnlimited(r.SwapBytes, "max")); err != nil {
			return err
		}
	}
	if err := m.setCPU(r); err != nil {
		return err
	}
	if r.NumProc != nil {
		if err := writeFile(d, "pids.max", orUnlimited(r.NumProc, "max")); err != nil {
			return err
		}
	}
	if r.IOWeight != nil {
		if err := writeIfExists(d, "io.weight", fmt.Sprintf("default %d", *r.IOWeight)); err != nil {
			return err
		}
		if err := writeIfExists(d, "io.bfq.weight", strconv.Itoa(*r.IOWeight)); err != nil {
			return err
		}
	}
	if r.IOLimitBps != nil {
		disks, err := m.disks()
		if err != nil {
			return err
		}
		bps := "max"
		if *r.IOLimitBps > 0 {
			bps = strconv.FormatInt(*r.IOLimitBps, 10)
		}
		err = writeDevices(d, "io.max", disks, func(dev string) string {
			return fmt.Sprintf("%s rbps=%s wbps=%s", dev, bps, bps)
		})
		if err != nil {
			return err
		}
	}
	if r.Devices != nil {
		return setDevicesBPF(d, r.Devices)
	}
	return nil
}

func (m *fs2) setCPU(r *Resources) error {
	if r.CPUSet != nil {
		// "" is the parent's effective set: an empty cpuset.cpus means that on v2.
		if err := writeFile(m.dir, "cpuset.cpus", *r.CPUSet); err != nil {
			return err
		}
	}
	if r.CPUUnits != nil {
		if err := writeFile(m.dir, "cpu.weight", strconv.FormatUint(cpuWeight(*r.CPUUnits), 10)); err != nil {
			return err
		}
	}
	if r.CPUs == nil && r.CPULimitPct == nil {
		return nil
	}
	_, period, err := m.cpuMax()
	if err != nil {
		return err
	}
	quota, _ := cfsQuota(r, period)
	return writeFile(m.dir, "cpu.max", fmt.Sprintf("%s %d", orUnlimited(&quota, "max"), period))
}

// cpuMax reads cpu.max ("max 100000" or "50000 100000"); quota -1 = none.
func (m *fs2) cpuMax() (quota, period int64, err error) {
	s, err := readFile(m.dir, "cpu.max")
	if err != nil {
		return 0, 0, err
	}
	q, p, _ := strings.Cut(s, " ")
	period, err = strconv.ParseInt(p, 10, 64)
	if q == "max" {
		quota = -1
	} else if err == nil {
		quota, err = strconv.ParseInt(q, 10, 64)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("%s/cpu.max %q: %w", m.dir, s, ErrBadValue)
	}
	return quota, period, nil
}

func (m *fs2) Stats() (*Stats, error) {
	d := m.dir
	var (
		st  Stats
		r   statReader
		err error
	)
	limit := func(name string) uint64 {
		if !exists(d, name) {
			return Unlimited // not accounted here: no limit
		}
		return r.get(d, name)
	}
	peak := func(name string, held uint64) uint64 {
		if !exists(d, name) {
			return held // older kernels keep no peak
		}
		return r.get(d, name)
	}

	cpu := r.keyed(d, "cpu.stat")
	st.CPUUsageNs = cpu["usage_usec"] * 1000
	st.MemoryBytes = r.get(d, "memory.current")
	st.MemoryMaxBytes = peak("memory.peak", st.MemoryBytes)
	st.SwapBytes = r.get(d, "memory.swap.current")
	pids, err := m.Pids()
	r.errs = append(r.errs, err)
	st.Procs = uint64(len(pids))

	tasks := r.get(d, "pids.current")
	pl := limit("pids.max")
	ml := limit("memory.max")
	sl := limit("memory.swap.max")
	quota, period := int64(-1), int64(0)
	if exists(d, "cpu.max") {
		quota, period, err = m.cpuMax()
		r.errs = append(r.errs, err)
	}
	cq := quotaPct(quota, period)
	f := m.failures(&r)
	st.OOMKills = f.oomKills
	st.Counters = []Counter{
		{"numproc", tasks, peak("pids.peak", tasks), pl, pl, f.numproc},
		{"physpages", pages(st.MemoryBytes), pages(st.MemoryMaxBytes), pages(ml), pages(ml), f.physpages},
		{"swappages", pages(st.SwapBytes), pages(peak("memory.swap.peak", st.SwapBytes)), pages(sl), pages(sl), f.swappages},
		{"cpu", st.CPUUsageNs, st.CPUUsageNs, cq, cq, cpu["nr_throttled"]},
	}
	if err := r.err(); err != nil {
		return nil, err
	}
	return &st, nil
}

func (m *fs2) Failures() (*Stats, error) { return readFailures(m.failures) }

func (m *fs2) failures(r *statReader) failCounts {
	memEvents := r.keyed(m.dir, "memory.events")
	return failCounts{oomKills: memEvents["oom_kill"], numproc: r.keyed(m.dir, "pids.events")["max"],
		physpages: memEvents["max"], swappages: r.keyed(m.dir, "memory.swap.events")["max"]}
}

func (m *fs2) Freeze(timeout time.Duration) error {
	if err := writeFile(m.dir, "cgroup.freeze", "1"); err != nil {
		return err
	}
	if err := waitEvent(m.dir, "frozen", 1, timeout); err != nil {
		// Do not leave a half-frozen group behind a failed Freeze.
		_ = m.Thaw()
		return fmt.Errorf("freeze %s: %w", m.dir, err)
	}
	return nil
}

func (m *fs2) Frozen() (bool, error) {
	ev, err := readKeyed(m.dir, "cgroup.events")
	if err != nil {
		return false, err
	}
	return ev["frozen"] == 1, nil
}

func (m *fs2) Kill(timeout time.Duration) error {
	// cgroup.kill (Linux 5.14) SIGKILLs the whole subtree and, unlike any
	// walk of cgroup.procs, also catches tasks forking while it runs.
	err := writeFile(m.dir, "cgroup.kill", "1")
	switch {
	case errors.Is(err, fs.ErrNotExist) && m.Exists():
		member := memberFunc(m.rel, func(l ProcCgroupLine) bool { return l.ID == 0 })
		return freezeKill(m, member, timeout)
	case errors.Is(err, fs.ErrNotExist):
		return nil // no group, nothing to kill
	case err != nil:
		return err
	}
	return m.WaitEmpty(timeout)
}

func (m *fs2) Pids() ([]int, error) {
	set := map[int]struct{}{}
	if err := treePids(m.dir, set); err != nil {
		return nil, err
	}
	return sortedKeys(set), nil
}

func (m *fs2) Populated() (bool, error) {
	ev, err := readKeyed(m.dir, "cgroup.events")
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return ev["populated"] == 1, nil
}

func (m *fs2) WaitEmpty(timeout time.Duration) error {
	return waitEvent(m.dir, "populated", 0, timeout)
}

func (m *fs2) TaskFiles() []string { return nil }

func (m *fs2) CgroupFD() (int, error) { return openDir(m.dir) }

// waitEvent waits until key in dir/cgroup.events has value want. The kernel
// signals every change of cgroup.events as a modification (cgroup-v2.rst),
// so inotify wakes us instead of polling. A group that is removed counts
// as "populated 0".
func waitEvent(dir, key string, want uint64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	file := filepath.Join(dir, "cgroup.events")
	var fd int
	err := sysfile.Retry(func() (err error) { fd, err = unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK); return err })
	if err != nil {
		return os.NewSyscallError("inotify_init1", err)
	}
	defer unix.Close(fd)
	// Watch before the first read, so no change between the two is missed.
	err = sysfile.Retry(func() error { _, err := unix.InotifyAddWatch(fd, file, unix.IN_MODIFY); return err })
	if err != nil && err != unix.ENOENT {
		return &os.PathError{Op: "inotify_add_watch", Path: file, Err: err}
	}
	buf := make([]byte, 4096)
	for {
		ev, err := readKeyed(dir, "cgroup.events")
		if errors.Is(err, fs.ErrNotExist) && key == "populated" && want == 0 {
			return nil
		}
		if err != nil {
			return err
		}
		if ev[key] == want {
			return nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("%s: waiting for %q %d: %w", file, key, want, ErrTimeout)
		}
		// Cap each sleep at a second, so a lost event delays, never hangs.
		ms := int(min(left, time.Second)/time.Millisecond) + 1
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		if _, err := unix.Poll(pfd, ms); err != nil && err != unix.EINTR {
			return os.NewSyscallError("poll", err)
		}
		for { // drain; the event itself carries nothing we need
			n, err := unix.Read(fd, buf)
			if err != unix.EINTR && (err != nil || n <= 0) {
				break
			}
		}
	}
}
