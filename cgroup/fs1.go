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
	"sync"
	"time"

	"github.com/moby/sys/mountinfo"
	"github.com/vpsctl/vpsctl/internal/sysfile"
	"golang.org/x/sys/unix"
)

// fs1 is a group in every mounted cgroup v1 hierarchy.
type fs1 struct {
	rel   string
	hiers []hierarchy
	disks func() ([]string, error) // whole disks for blkio throttling; tests replace it
	fresh bool                     // Create made every directory of the group: see withoutDefaults
}

// hierarchy is one mounted v1 hierarchy and the controllers bound to it
// ("name=systemd" for a named hierarchy without controllers).
type hierarchy struct {
	mount string
	ctrls []string
	opts  string // its superblock's options but rw/ro: what mounting it again takes
}

// unifiedName is the key of a hybrid host's cgroup2 tree in Paths.
const unifiedName = "unified"

// v1Controllers are the controllers Linux knows; other mount options
// (rw, noprefix, release_agent=...) are not controllers.
var v1Controllers = []string{"blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "hugetlb",
	"memory", "misc", "net_cls", "net_prio", "perf_event", "pids", "rdma"}

// v1Hierarchies lists the mounted v1 hierarchies once per process: mounts
// of a hierarchy's root only (a bind mount of a subdirectory would put rel
// elsewhere), one mount per hierarchy.
var v1Hierarchies = sync.OnceValues(func() ([]hierarchy, error) {
	// One read of the mount table for both kinds (it is long on a host with many VPSs' mounts).
	mounts, err := sysfile.Mounts(0, func(mi *mountinfo.Info) (skip, stop bool) {
		return mi.FSType != "cgroup" && mi.FSType != "cgroup2", false
	})
	if err != nil {
		return nil, err
	}
	var hs []hierarchy
	seen := map[string]bool{}
	for _, mi := range mounts {
		if mi.FSType != "cgroup" {
			continue
		}
		var ctrls []string
		for o := range strings.SplitSeq(mi.VFSOptions, ",") {
			if slices.Contains(v1Controllers, o) || strings.HasPrefix(o, "name=") {
				ctrls = append(ctrls, o)
			}
		}
		key := strings.Join(ctrls, ",")
		if len(ctrls) == 0 || mi.Root != "/" || seen[key] {
			continue
		}
		seen[key] = true
		var opts []string
		for o := range strings.SplitSeq(mi.VFSOptions, ",") {
			if o != "rw" && o != "ro" && o != "" {
				opts = append(opts, o)
			}
		}
		hs = append(hs, hierarchy{mount: mi.Mountpoint, ctrls: ctrls, opts: strings.Join(opts, ",")})
	}
	// A hybrid host also mounts a cgroup2 tree (usually /sys/fs/cgroup/unified, no controllers).
	// The group gets a directory there too: otherwise its processes sit at that tree's root,
	// and a VPS's cgroup namespace would show it the host's whole cgroup2 tree.
	for _, mi := range mounts {
		if mi.FSType == "cgroup2" && mi.Root == "/" && !seen[unifiedName] {
			seen[unifiedName] = true
			hs = append(hs, hierarchy{mount: mi.Mountpoint, ctrls: []string{unifiedName}})
		}
	}
	slices.SortFunc(hs, func(a, b hierarchy) int { return strings.Compare(a.mount, b.mount) })
	return hs, nil
})

func newFS1(rel string) (*fs1, error) {
	hs, err := v1Hierarchies()
	if err != nil {
		return nil, err
	}
	if len(hs) == 0 {
		return nil, fmt.Errorf("no cgroup v1 hierarchy mounted: %w", ErrNotSupported)
	}
	return &fs1{rel: rel, hiers: hs, disks: wholeDisks}, nil
}

// dir returns the group's directory in the hierarchy holding ctrl.
func (m *fs1) dir(ctrl string) (string, error) {
	for _, h := range m.hiers {
		if slices.Contains(h.ctrls, ctrl) {
			return filepath.Join(h.mount, m.rel), nil
		}
	}
	return "", fmt.Errorf("cgroup v1 %s controller is not mounted: %w", ctrl, ErrNotSupported)
}

func (m *fs1) Path() string { return m.rel }

func (m *fs1) ThawFile() (string, string) {
	dir, err := m.dir("freezer")
	if err != nil {
		return "", ""
	}
	return filepath.Join(dir, "freezer.state"), "THAWED"
}

func (m *fs1) Paths() map[string]string {
	p := map[string]string{}
	for _, h := range m.hiers {
		for _, c := range h.ctrls {
			p[c] = filepath.Join(h.mount, m.rel)
		}
	}
	return p
}

func (m *fs1) Exists() bool {
	for _, h := range m.hiers {
		if _, err := os.Stat(filepath.Join(h.mount, m.rel)); err == nil {
			return true
		}
	}
	return false
}

func (m *fs1) CgroupFD() (int, error) {
	for _, h := range m.hiers {
		if h.ctrls[0] != unifiedName {
			continue
		}
		leaf := filepath.Join(h.mount, m.rel)
		if _, err := makeGroupDir(h, leaf, m.rel); err != nil {
			return -1, err
		}
		return openDir(leaf)
	}
	return -1, fmt.Errorf("cgroup fd (CLONE_INTO_CGROUP) needs a cgroup2 tree: %w", ErrNotSupported)
}

func (m *fs1) TaskFiles() []string {
	var fs []string
	for _, h := range m.hiers {
		if h.ctrls[0] != unifiedName {
			fs = append(fs, filepath.Join(h.mount, m.rel, "tasks"))
		}
	}
	return fs
}

func (m *fs1) Create() error {
	m.fresh = true
	for _, h := range m.hiers {
		made, err := makeGroupDir(h, filepath.Join(h.mount, m.rel), m.rel)
		if err != nil {
			return err
		}
		if h.ctrls[0] != unifiedName { // which has no limits to set, and may be made by CgroupFD
			m.fresh = m.fresh && made
		}
	}
	return nil
}

// makeGroupDir makes the group's directory leaf in h and reports whether it is new: a spare
// renamed into place, else a mkdir. A new cpuset group gets its parent's CPUs and memory nodes.
func makeGroupDir(h hierarchy, leaf, rel string) (bool, error) {
	made := takeSpare(h, leaf)
	if !made {
		var err error
		made, err = mkdir(leaf)
		if errors.Is(err, fs.ErrNotExist) {
			return makeGroupPath(h, rel)
		}
		if err != nil {
			return false, err
		}
	}
	if slices.Contains(h.ctrls, "cpuset") {
		if err := copyCpuset(filepath.Dir(leaf), leaf); err != nil {
			return false, err
		}
	}
	return made, nil
}

// makeGroupPath makes rel and its missing parents below h's mount (the parents, vpsctl/, exist
// but for the first group) and reports whether the leaf is new.
func makeGroupPath(h hierarchy, rel string) (made bool, err error) {
	cpuset := slices.Contains(h.ctrls, "cpuset")
	dir := h.mount
	for part := range strings.SplitSeq(rel, "/") {
		parent := dir
		dir = filepath.Join(dir, part)
		if made, err = mkdir(dir); err != nil {
			return false, err
		}
		if cpuset {
			if err := copyCpuset(parent, dir); err != nil {
				return false, err
			}
		}
	}
	return made, nil
}

// spareSlots name the spare groups beside a VPS's: empty groups made ahead of need by the
// background remover (from [Manager.Spares]) once it has removed a VPS's groups, which Create
// renames into place instead of making new ones. A v1 mkdir is what makes a controller's state
// for the group (memory's costs most: 0.1-0.4 ms here, on a boot's critical path); a rename
// within a parent costs next to nothing. A spare is never a used group: one that held processes
// keeps charges (page cache) and counters that must not pass to another VPS. Only v1 renames
// groups (cgroup2 has no rename), so only fs1 has spares; at most len(spareSlots) per parent.
var spareSlots = []string{".spare-0", ".spare-1"}

// takeSpare renames a spare group beside leaf to leaf, and reports whether it did (not when
// there is none, leaf exists already, or the hierarchy is cgroup2).
func takeSpare(h hierarchy, leaf string) bool {
	if h.ctrls[0] == unifiedName {
		return false
	}
	parent := filepath.Dir(leaf)
	for _, s := range spareSlots {
		// Plain rename(2): kernfs refuses renameat2's flags, and refuses to replace (EEXIST).
		if sysfile.Retry(func() error { return unix.Rename(filepath.Join(parent, s), leaf) }) == nil {
			return true
		}
	}
	return false
}

func (m *fs1) Spares() []string {
	var dirs []string
	for _, h := range m.hiers {
		if h.ctrls[0] == unifiedName {
			continue
		}
		parent := filepath.Dir(filepath.Join(h.mount, m.rel))
		for _, s := range spareSlots {
			dirs = append(dirs, filepath.Join(parent, s))
		}
	}
	return dirs
}

func (m *fs1) Delegate(uid, gid int) error {
	for _, h := range m.hiers {
		if err := delegate(filepath.Join(h.mount, m.rel), h.ctrls[0] == unifiedName, uid, gid); err != nil {
			return err
		}
	}
	return nil
}

// copyCpuset gives a new cpuset group its parent's CPUs and memory nodes:
// v1 creates it with both empty, and an empty cpuset refuses tasks (ENOSPC).
func copyCpuset(parent, dir string) error {
	for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
		cur, err := readFile(dir, f)
		if err != nil || cur != "" {
			return err
		}
		v, err := readFile(parent, f)
		if err != nil {
			return err
		}
		if err := writeFile(dir, f, v); err != nil {
			return err
		}
	}
	return nil
}

func (m *fs1) Apply(pid int) error {
	for _, h := range m.hiers {
		if err := applyPid(filepath.Join(h.mount, m.rel), pid); err != nil {
			return err
		}
	}
	return nil
}

func (m *fs1) Set(r *Resources) error {
	if err := validate(r); err != nil {
		return err
	}
	if m.fresh {
		// Only the first Set: it may change what a new group has.
		r, m.fresh = withoutDefaults(r), false
	}
	for _, set := range []func(*Resources) error{m.setMemory, m.setCPU, m.setPids, m.setBlkio, m.setDevices} {
		if err := set(r); err != nil {
			return err
		}
	}
	return nil
}

// v1Limit reads a v1 byte limit as int64, -1 for unlimited: v1 reports "no
// limit" as the largest page-aligned value (9223372036854771712 on 4K pages).
func v1Limit(dir, name string) (int64, error) {
	v, err := readUint(dir, name)
	if err != nil || v >= 1<<62 {
		return -1, err
	}
	return int64(v), nil
}

func (m *fs1) setMemory(r *Resources) error {
	if r.MemoryBytes == nil && r.SwapBytes == nil {
		return nil
	}
	dir, err := m.dir("memory")
	if err != nil {
		return err
	}
	const memFile, swFile = "memory.limit_in_bytes", "memory.memsw.limit_in_bytes"
	if !exists(dir, swFile) {
		// No swap accounting (swapaccount=0): memory only, swap skipped.
		if r.MemoryBytes == nil {
			return nil
		}
		return writeFile(dir, memFile, strconv.FormatInt(*r.MemoryBytes, 10))
	}
	curMem, err := v1Limit(dir, memFile)
	if err != nil {
		return err
	}
	curSw, err := v1Limit(dir, swFile)
	if err != nil {
		return err
	}
	mem := curMem
	if r.MemoryBytes != nil {
		mem = *r.MemoryBytes
	}
	// Swap in addition to memory: the given allowance, else the current one.
	swap := int64(-1)
	switch {
	case r.SwapBytes != nil:
		swap = *r.SwapBytes
	case curSw >= 0 && curMem >= 0:
		swap = curSw - curMem
	}
	sw := int64(-1)
	if mem >= 0 && swap >= 0 {
		if mem > 1<<62-swap {
			return fmt.Errorf("memory %d + swap %d: %w", mem, swap, ErrBadValue)
		}
		sw = mem + swap
	}
	// The kernel keeps limit <= memsw.limit after every write (EINVAL
	// otherwise), so memsw grows first and shrinks last.
	order := [][2]string{{memFile, strconv.FormatInt(mem, 10)}, {swFile, strconv.FormatInt(sw, 10)}}
	if sw < 0 && curSw >= 0 || sw >= 0 && curSw >= 0 && sw > curSw {
		order[0], order[1] = order[1], order[0]
	}
	for _, w := range order {
		if err := writeFile(dir, w[0], w[1]); err != nil {
			return err
		}
	}
	return nil
}

func (m *fs1) setCPU(r *Resources) error {
	if r.CPUSet != nil {
		dir, err := m.dir("cpuset")
		if err != nil {
			return err
		}
		v := *r.CPUSet
		if v == "" {
			if v, err = readFile(filepath.Dir(dir), "cpuset.cpus"); err != nil {
				return err
			}
		}
		if err := writeFile(dir, "cpuset.cpus", v); err != nil {
			return err
		}
	}
	_, hasQuota := cfsQuota(r, 100000)
	if r.CPUUnits == nil && !hasQuota {
		return nil
	}
	dir, err := m.dir("cpu")
	if err != nil {
		return err
	}
	if r.CPUUnits != nil {
		if err := writeFile(dir, "cpu.shares", strconv.FormatUint(cpuShares(*r.CPUUnits), 10)); err != nil {
			return err
		}
	}
	if !hasQuota {
		return nil
	}
	period, err := readUint(dir, "cpu.cfs_period_us")
	if err != nil {
		return err
	}
	quota, _ := cfsQuota(r, int64(period))
	return writeFile(dir, "cpu.cfs_quota_us", strconv.FormatInt(quota, 10))
}

func (m *fs1) setPids(r *Resources) error {
	if r.NumProc == nil {
		return nil
	}
	dir, err := m.dir("pids")
	if err != nil {
		return err
	}
	return writeFile(dir, "pids.max", orUnlimited(r.NumProc, "max"))
}

func (m *fs1) setBlkio(r *Resources) error {
	if r.IOWeight == nil && r.IOLimitBps == nil {
		return nil
	}
	dir, err := m.dir("blkio")
	if err != nil {
		return err
	}
	if r.IOWeight != nil {
		// blkio.weight belonged to CFQ (gone since 5.0); BFQ has its own.
		for _, f := range []string{"blkio.weight", "blkio.bfq.weight"} {
			if err := writeIfExists(dir, f, strconv.Itoa(*r.IOWeight)); err != nil {
				return err
			}
		}
	}
	if r.IOLimitBps == nil {
		return nil
	}
	disks, err := m.disks()
	if err != nil {
		return err
	}
	for _, f := range []string{"blkio.throttle.read_bps_device", "blkio.throttle.write_bps_device"} {
		// A rate of 0 removes the device's rule: unlimited.
		err := writeDevices(dir, f, disks, func(dev string) string { return fmt.Sprintf("%s %d", dev, *r.IOLimitBps) })
		if err != nil {
			return err
		}
	}
	return nil
}

func (m *fs1) setDevices(r *Resources) error {
	if r.Devices == nil {
		return nil
	}
	dir, err := m.dir("devices")
	if err != nil {
		return err
	}
	// Deny everything, then allow the list: the result is exactly the list.
	if err := writeFile(dir, "devices.deny", "a"); err != nil {
		return err
	}
	for _, d := range r.Devices {
		if err := writeFile(dir, "devices.allow", d.String()); err != nil {
			return err
		}
	}
	return nil
}

func (m *fs1) Stats() (*Stats, error) {
	var r statReader
	limit := func(d, name string) uint64 {
		if d == "" {
			return Unlimited
		}
		v, err := optional(v1Limit(d, name))
		r.errs = append(r.errs, err)
		if v < 0 {
			return Unlimited
		}
		return uint64(v)
	}
	var st Stats
	st.CPUUsageNs = r.get(m.dirOf("cpuacct"), "cpuacct.usage")

	mem := m.dirOf("memory")
	st.MemoryBytes = r.get(mem, "memory.usage_in_bytes")
	st.MemoryMaxBytes = r.get(mem, "memory.max_usage_in_bytes")
	memsw := r.get(mem, "memory.memsw.usage_in_bytes")
	st.SwapBytes = memsw - min(memsw, st.MemoryBytes)
	ml, swl := limit(mem, "memory.limit_in_bytes"), Unlimited
	if l := limit(mem, "memory.memsw.limit_in_bytes"); l != Unlimited && ml != Unlimited {
		swl = l - min(l, ml)
	}

	pids := m.dirOf("pids")
	tasks := r.get(pids, "pids.current")
	peak := tasks
	if exists(pids, "pids.peak") {
		peak = r.get(pids, "pids.peak")
	}
	pl := limit(pids, "pids.max")

	cq := Unlimited
	cpu := m.dirOf("cpu")
	if cpu != "" {
		s, err := optional(readFile(cpu, "cpu.cfs_quota_us"))
		quota, perr := strconv.ParseInt(s, 10, 64)
		if err == nil && perr == nil {
			cq = quotaPct(quota, int64(r.get(cpu, "cpu.cfs_period_us")))
		}
		r.errs = append(r.errs, err)
	}
	// The count walks one hierarchy's tree, not every one's as Pids does (ten walks, most of
	// a metrics scrape's cost): each process of the group is in it in every hierarchy (the
	// group's owner moves its processes among its own subgroups only).
	one := map[int]struct{}{}
	count := pids
	if count == "" {
		count = filepath.Join(m.hiers[0].mount, m.rel)
	}
	r.errs = append(r.errs, treePids(count, one))
	st.Procs = uint64(len(one))

	f := m.failures(&r)
	st.OOMKills = f.oomKills
	st.Counters = []Counter{
		{"numproc", tasks, peak, pl, pl, f.numproc},
		{"physpages", pages(st.MemoryBytes), pages(st.MemoryMaxBytes), pages(ml), pages(ml), f.physpages},
		{"swappages", pages(st.SwapBytes), pages(st.SwapBytes), pages(swl), pages(swl), f.swappages},
		{"cpu", st.CPUUsageNs, st.CPUUsageNs, cq, cq, r.keyed(cpu, "cpu.stat")["nr_throttled"]},
	}
	if err := r.err(); err != nil {
		return nil, err
	}
	return &st, nil
}

func (m *fs1) Failures() (*Stats, error) { return readFailures(m.failures) }

func (m *fs1) failures(r *statReader) failCounts {
	mem := m.dirOf("memory")
	// Each failed charge counts once, in memsw's failcnt if memory+swap was
	// full (the kernel tries memsw first), else in memory's: with no swap
	// allowance a group out of RAM shows up in memsw only. (Linux 6.18
	// leaves memsw's failcnt at 0, so such hits are not counted there.)
	memFail, swFail := r.get(mem, "memory.failcnt"), r.get(mem, "memory.memsw.failcnt")
	return failCounts{oomKills: r.keyed(mem, "memory.oom_control")["oom_kill"],
		numproc: r.keyed(m.dirOf("pids"), "pids.events")["max"], physpages: memFail + swFail, swappages: swFail}
}

// dirOf is the group's directory in the hierarchy holding ctrl, "" if none is mounted (nothing
// accounted, no limit).
func (m *fs1) dirOf(ctrl string) string {
	d, _ := m.dir(ctrl)
	return d
}

func (m *fs1) Freeze(timeout time.Duration) error {
	dir, err := m.dir("freezer")
	if err != nil {
		return err
	}
	err = poll(timeout, func() (bool, error) {
		// Writing FROZEN again makes the kernel retry tasks it could not
		// freeze yet (the state stays FREEZING until all are frozen).
		if err := writeFile(dir, "freezer.state", "FROZEN"); err != nil {
			return false, err
		}
		s, err := readFile(dir, "freezer.state")
		return s == "FROZEN", err
	})
	if err != nil {
		_ = m.Thaw() // never leave a half-frozen group behind a failed Freeze
		return fmt.Errorf("freeze %s: %w", dir, err)
	}
	return nil
}

func (m *fs1) Thaw() error {
	dir, err := m.dir("freezer")
	if err != nil {
		return err
	}
	return writeFile(dir, "freezer.state", "THAWED")
}

func (m *fs1) Frozen() (bool, error) {
	dir, err := m.dir("freezer")
	if err != nil {
		return false, err
	}
	s, err := readFile(dir, "freezer.state")
	return s == "FROZEN", err
}

func (m *fs1) Kill(timeout time.Duration) error {
	member := memberFunc(m.rel, func(l ProcCgroupLine) bool { return l.ID != 0 })
	return freezeKill(m, member, timeout)
}

// Pids is the union over all hierarchies: a process moved in some of them
// only (by hand, or by a crash during Apply) is still the VPS's.
func (m *fs1) Pids() ([]int, error) {
	set := map[int]struct{}{}
	for _, h := range m.hiers {
		if err := treePids(filepath.Join(h.mount, m.rel), set); err != nil {
			return nil, err
		}
	}
	return sortedKeys(set), nil
}

func (m *fs1) Populated() (bool, error) {
	p, err := m.Pids()
	return len(p) > 0, err
}

// WaitEmpty polls: v1 reports emptiness only through the release agent,
// which this package never uses (CVE-2022-0492).
func (m *fs1) WaitEmpty(timeout time.Duration) error {
	err := poll(timeout, func() (bool, error) {
		p, err := m.Populated()
		return !p, err
	})
	if err != nil {
		return fmt.Errorf("wait for %s to empty: %w", m.rel, err)
	}
	return nil
}

func (m *fs1) Destroy(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var errs []error
	for _, h := range m.hiers {
		errs = append(errs, removeTree(filepath.Join(h.mount, m.rel), time.Until(deadline)))
	}
	return errors.Join(errs...)
}
