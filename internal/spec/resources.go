package spec

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"github.com/vpsctl/vpsctl/cgroup"
	"github.com/vpsctl/vpsctl/container"
	"github.com/vpsctl/vpsctl/internal/sysfile"
	"github.com/vpsctl/vpsctl/store"
)

// Defaults are the limits a VPS gets when it is created without them, so that no VPS is
// unbounded (a hostile tenant's would otherwise take the host's memory and process table, as
// vzctl's sample configs prevented): a memory limit, a swap allowance beside it, a process limit
// and the default CPU weight. They are the built-in defaults of the host configuration
// (package hostconf takes them from here: one place), which may change them; a VPS keeps the
// values it was created with (they are written into its config).
var Defaults = DefaultLimits{Memory: "1G", Swap: "512M", NumProc: "4096", CPUUnits: "1000"}

// DefaultLimits are default limit values, as vps.conf spells them; "" leaves a limit unset.
type DefaultLimits struct {
	Memory, Swap, CPUs, CPULimit, CPUUnits, NumProc, IOLimit, IOWeight string
}

// Fill sets c's unset limits to d's values.
func (d DefaultLimits) Fill(c *store.Config) {
	for _, f := range []struct {
		dst *string
		def string
	}{
		{&c.Memory, d.Memory}, {&c.Swap, d.Swap}, {&c.CPUs, d.CPUs}, {&c.CPULimit, d.CPULimit},
		{&c.CPUUnits, d.CPUUnits}, {&c.NumProc, d.NumProc}, {&c.IOLimit, d.IOLimit}, {&c.IOWeight, d.IOWeight},
	} {
		if *f.dst == "" {
			*f.dst = f.def
		}
	}
}

// maxNumProc is the most pids.max takes: the kernel's PID_MAX_LIMIT on 64-bit.
const maxNumProc = 4 << 20

// Resources turns a config's limits into cgroup resources. Unset limits become "unlimited" (or
// the default weight), so that a limit removed from the config is lifted when applied.
func Resources(c *store.Config) (*cgroup.Resources, error) {
	size := func(name, s string) (*int64, error) {
		v := int64(-1)
		if s != "" {
			var err error
			if v, err = cgroup.ParseSize(s); err != nil {
				return nil, fmt.Errorf("--%s: %w", name, err)
			}
		}
		return &v, nil
	}
	intIn := func(name, s string, def, lo, hi int) (*int, error) {
		v := def
		if s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < lo || n > hi {
				return nil, fmt.Errorf("--%s %q: want an integer in %d..%d: %w", name, s, lo, hi, ErrBadValue)
			}
			v = n
		}
		return &v, nil
	}
	var r cgroup.Resources
	var err error
	if r.MemoryBytes, err = size("memory", c.Memory); err != nil {
		return nil, err
	}
	if *r.MemoryBytes >= 0 && *r.MemoryBytes < 4<<20 {
		return nil, fmt.Errorf("--memory %q: at least 4M: %w", c.Memory, ErrBadValue)
	}
	if c.Swap != "" {
		if r.SwapBytes, err = size("swap", c.Swap); err != nil {
			return nil, err
		}
	}
	if r.CPUs, err = intIn("cpus", c.CPUs, 0, 0, 4096); err != nil {
		return nil, err
	}
	r.CPUSet = cpuSet(c.ID, *r.CPUs)
	if r.CPULimitPct, err = intIn("cpulimit", c.CPULimit, 0, 0, 409600); err != nil {
		return nil, err
	}
	if r.CPUUnits, err = intIn("cpuunits", c.CPUUnits, 1000, 8, 500000); err != nil {
		return nil, err
	}
	if r.NumProc, err = size("numproc", c.NumProc); err != nil {
		return nil, err
	}
	if *r.NumProc == 0 {
		return nil, fmt.Errorf("--numproc 0: a VPS needs at least its init: %w", ErrBadValue)
	}
	if *r.NumProc > maxNumProc {
		return nil, fmt.Errorf("--numproc %d: at most %d (the kernel's PID limit), or unlimited: %w", *r.NumProc, maxNumProc, ErrBadValue)
	}
	if c.IOLimit != "" {
		v, err := cgroup.ParseSize(c.IOLimit)
		if err != nil {
			return nil, fmt.Errorf("--iolimit: %w", err)
		}
		if v < 0 {
			v = 0
		}
		r.IOLimitBps = &v
	}
	if c.IOWeight != "" {
		if r.IOWeight, err = intIn("ioweight", c.IOWeight, 500, 10, 1000); err != nil {
			return nil, err
		}
	}
	if r.Devices, err = DeviceRules(c); err != nil {
		return nil, err
	}
	return &r, nil
}

// hostCPUs are the CPUs the host has online, once per process.
var hostCPUs = sync.OnceValue(func() int {
	b, err := sysfile.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return runtime.NumCPU()
	}
	n := 0
	for _, r := range strings.Split(strings.TrimSpace(string(b)), ",") {
		lo, hi, ok := strings.Cut(r, "-")
		a, err1 := strconv.Atoi(lo)
		z, err2 := a, error(nil)
		if ok {
			z, err2 = strconv.Atoi(hi)
		}
		if err1 != nil || err2 != nil || z < a {
			return runtime.NumCPU()
		}
		n += z - a + 1
	}
	return n
})

// cpuSet is the cpuset of VPS id limited to n CPUs (vzctl's --cpus): n CPUs of the host's,
// consecutive from a start that spreads VPSs over them (by ID), so that inside nproc and
// sched_getaffinity say n, as LXCFS's cpuinfo does. "" (all of the parent's) for 0 or for as
// many as the host has.
func cpuSet(id container.ID, n int) *string {
	s := ""
	total := hostCPUs()
	if n > 0 && n < total {
		start := int(uint64(id)*uint64(n)) % total
		var cpus []string
		for i := range n {
			cpus = append(cpus, strconv.Itoa((start+i)%total))
		}
		s = strings.Join(cpus, ",")
	}
	return &s
}
