package runtime

import (
	"slices"
	"strconv"

	"github.com/vpsctl/vpsctl/cgroup"
	"github.com/vpsctl/vpsctl/internal/spec"
	"github.com/vpsctl/vpsctl/internal/sysfile"
	"github.com/vpsctl/vpsctl/metrics"
)

// Metrics returns a sample of every VPS but spares for `vpsctl metrics` (package metrics
// writes them): its state and, for a running one, what its groups account (as Stats does:
// CPU, memory, swap, processes, OOM kills, beancounter failcnts, and the limits) and what its
// interfaces carried, as its init's network namespace counts it (/proc/INIT/net/dev, read from
// the host). What cannot be read (a VPS that stops meanwhile, one rebooting) is left out of its
// sample rather than failing the whole: a scrape shows every VPS it can. Reading the counters
// logs their rises, as stats does.
func (r *Runtime) Metrics() ([]metrics.Sample, error) {
	ss, err := r.List(true)
	if err != nil {
		return nil, err
	}
	out := make([]metrics.Sample, 0, len(ss))
	for _, s := range ss {
		smp := metrics.Sample{ID: uint32(s.ID), Name: s.Name, State: metrics.Stopped}
		if s.State == "running" {
			smp.State = metrics.Running
			if s.Suspended {
				smp.State = metrics.Suspended
			}
			if s.InitPID > 0 {
				smp.Usage = r.usage(s)
			}
		}
		out = append(out, smp)
	}
	return out, nil
}

// usage reads running VPS s's usage; nil if its groups cannot be read.
func (r *Runtime) usage(s *Status) *metrics.Usage {
	cg, err := cgroup.New(spec.CgroupPath(s.ID))
	if err != nil {
		return nil
	}
	cs, err := cg.Stats()
	if err != nil {
		return nil
	}
	r.logCounters(s.ID, s.Name, cs)
	u := &metrics.Usage{CPUSeconds: float64(cs.CPUUsageNs) / 1e9, MemoryBytes: cs.MemoryBytes, SwapBytes: cs.SwapBytes,
		MemoryLimit: metrics.Unlimited, SwapLimit: metrics.Unlimited, ProcessLimit: metrics.Unlimited,
		OOMKills: cs.OOMKills, Failcnt: make(map[string]uint64, len(cs.Counters))}
	bytes := func(pages uint64) metrics.Limit {
		if pages == cgroup.Unlimited {
			return metrics.Unlimited
		}
		return metrics.Limit(pages * 4096)
	}
	for _, c := range cs.Counters {
		u.Failcnt[c.Resource] = c.Failcnt
		switch c.Resource {
		case "numproc":
			u.Processes, u.ProcessLimit = c.Held, metrics.Limit(c.Limit)
		case "physpages":
			u.MemoryLimit = bytes(c.Limit)
		case "swappages":
			u.SwapLimit = bytes(c.Limit)
		}
	}
	// A VPS with --diskspace: its image's file system, as df shows it inside, and its hard
	// limit. Without one, its files are the host's file system's and not measured.
	if du, err := r.diskUsage(s, false); err == nil && du != nil {
		u.Disk = &metrics.Disk{UsedBytes: du.UsedBytes, Limit: metrics.Limit(du.HardBytes)}
	}
	if slices.Contains(s.Namespaces, "net") {
		// The init's view is its network namespace's: the VPS's interfaces, lo left out.
		if b, err := sysfile.ReadFile("/proc/" + strconv.Itoa(s.InitPID) + "/net/dev"); err == nil {
			if n, err := metrics.ParseNetDev(b); err == nil {
				u.Net = &n
			}
		}
	}
	return u
}
