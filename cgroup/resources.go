package cgroup

import (
	"fmt"
	"math"
	"strings"
)

// validate refuses values no kernel would accept or that would overflow
// below, so Set fails before it writes anything.
func validate(r *Resources) error {
	bad := func(field string, v any, want string) error {
		return fmt.Errorf("%s %v: want %s: %w", field, v, want, ErrBadValue)
	}
	if p := r.MemoryBytes; p != nil && (*p == 0 || *p < -1) {
		return bad("memory", *p, "bytes > 0 or -1 (unlimited)")
	}
	if p := r.SwapBytes; p != nil && *p < -1 {
		return bad("swap", *p, "bytes >= 0 or -1 (unlimited)")
	}
	// v1 writes memory+swap into one file and the kernel refuses a sum past 63 bits; v2's two
	// files would take each part. Refused on both, so a config starts on both or neither.
	if m, s := r.MemoryBytes, r.SwapBytes; m != nil && s != nil && *m > 0 && *s > 0 && *m > math.MaxInt64-*s {
		return bad("memory+swap", fmt.Sprintf("%d+%d", *m, *s), "a sum below 2^63 bytes")
	}
	if p := r.CPUs; p != nil && (*p < 0 || *p > 1<<20) {
		return bad("cpus", *p, "0 (unlimited) to 1048576")
	}
	if p := r.CPULimitPct; p != nil && (*p < 0 || *p > 100<<20) {
		return bad("cpulimit", *p, "percent >= 0 (0 = unlimited)")
	}
	if p := r.CPUUnits; p != nil && (*p < 8 || *p > 500000) {
		return bad("cpuunits", *p, "8..500000")
	}
	if p := r.NumProc; p != nil && *p < -1 {
		return bad("numproc", *p, ">= 0 or -1 (unlimited)")
	}
	if p := r.IOWeight; p != nil && (*p < 10 || *p > 1000) {
		return bad("ioweight", *p, "10..1000")
	}
	if p := r.IOLimitBps; p != nil && *p < 0 {
		return bad("iolimit", *p, "bytes/s >= 0 (0 = unlimited)")
	}
	for _, d := range r.Devices {
		if err := d.validate(); err != nil {
			return err
		}
	}
	return nil
}

func (r DeviceRule) validate() error {
	ok := (r.Type == 'b' || r.Type == 'c') && r.Major >= -1 && r.Minor >= -1 &&
		r.Major <= 0xfff && r.Minor <= 0xfffff && r.Access != ""
	// v1 reads a rule of type 'a' as "allow everything", whatever follows,
	// so only that meaning is accepted, for both versions to agree.
	ok = ok || r.Type == 'a' && r.Major == -1 && r.Minor == -1 && len(r.Access) == 3
	seen := ""
	for _, c := range r.Access {
		ok = ok && strings.ContainsRune("rwm", c) && !strings.ContainsRune(seen, c)
		seen += string(c)
	}
	if !ok {
		return fmt.Errorf("device rule %q: want \"a *:* rwm\", or type b or c, major/minor -1 or a device number, access from \"rwm\": %w", r.String(), ErrBadValue)
	}
	return nil
}

// withoutDefaults returns a copy of r without the values every new group already has, v1 and
// v2 alike: a Set right after Create made the group then writes only the limits that differ
// (each write is a few syscalls on a boot's critical path; a VPS's defaults are all of these).
// Unlimited memory with unlimited or unspecified swap, 1000 CPU units (v1 1024 shares, v2
// weight 100), no CPU quota, unlimited numproc, no I/O limit. Devices are always written.
func withoutDefaults(r *Resources) *Resources {
	c := *r
	unlimited := func(p *int64) bool { return p == nil || *p == -1 }
	if c.MemoryBytes != nil && unlimited(c.MemoryBytes) && unlimited(c.SwapBytes) {
		c.MemoryBytes, c.SwapBytes = nil, nil
	}
	if c.CPUUnits != nil && *c.CPUUnits == 1000 {
		c.CPUUnits = nil
	}
	if q, set := cfsQuota(&c, 100000); set && q < 0 {
		c.CPUs, c.CPULimitPct = nil, nil
	}
	if c.NumProc != nil && *c.NumProc == -1 {
		c.NumProc = nil
	}
	if c.IOLimitBps != nil && *c.IOLimitBps == 0 {
		c.IOLimitBps = nil
	}
	if c.CPUSet != nil && *c.CPUSet == "" {
		c.CPUSet = nil // a new group's cpuset is its parent's (v1: Create copies it)
	}
	return &c
}

// cfsQuota returns the CFS quota in µs for the given period (-1 for none),
// and whether r sets one at all. CPUs and CPULimitPct both cap the quota;
// the smaller cap wins.
func cfsQuota(r *Resources, period int64) (int64, bool) {
	if r.CPUs == nil && r.CPULimitPct == nil {
		return 0, false
	}
	quota := int64(-1)
	if p := r.CPULimitPct; p != nil && *p > 0 {
		quota = int64(*p) * period / 100
	}
	if p := r.CPUs; p != nil && *p > 0 {
		if q := int64(*p) * period; quota < 0 || q < quota {
			quota = q
		}
	}
	// The kernel refuses quotas below 1ms (sched/core.c min_cfs_quota_period).
	if quota >= 0 && quota < 1000 {
		quota = 1000
	}
	return quota, true
}

// cpuShares maps vzctl cpuunits to v1 cpu.shares: 1000 units = 1024 shares,
// the kernel default, clamped to the kernel's 2..262144.
func cpuShares(units int) uint64 {
	return uint64(min(max(int64(units)*1024/1000, 2), 262144))
}

// cpuWeight maps vzctl cpuunits to v2 cpu.weight: 1000 units = weight 100,
// the kernel default, clamped to the kernel's 1..10000.
func cpuWeight(units int) uint64 {
	return uint64(min(max(units/10, 1), 10000))
}

// quotaPct is a CFS quota as percent of one CPU, for the "cpu" counter.
func quotaPct(quota, period int64) uint64 {
	if quota < 0 || period <= 0 {
		return Unlimited
	}
	return uint64(quota * 100 / period)
}

// pages converts bytes to 4 KiB beancounter pages, keeping Unlimited.
func pages(b uint64) uint64 {
	if b == Unlimited {
		return b
	}
	return b / 4096
}

func orUnlimited(n *int64, unlimited string) string {
	if *n < 0 {
		return unlimited
	}
	return fmt.Sprint(*n)
}
