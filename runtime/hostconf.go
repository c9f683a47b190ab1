package runtime

import (
	"github.com/vpsctl/vpsctl/eventlog"
	"github.com/vpsctl/vpsctl/hostconf"
	"github.com/vpsctl/vpsctl/internal/spec"
	"github.com/vpsctl/vpsctl/monitor"
	"github.com/vpsctl/vpsctl/registry"
	"github.com/vpsctl/vpsctl/store"
	"github.com/vpsctl/vpsctl/uid"
)

// OpenConfig opens the state root of host configuration cfg (hostconf) and runs it as cfg
// says: the limits, UID pool and range width of new VPSs, the events log and its caps, and
// with CLUSTER the cluster registry (a client of the host's agent: nothing is dialled until a
// change or a cluster read needs it). The
// waits and timeouts it sets are process-wide (store.LockWait, monitor.StartTimeout,
// monitor.CheckpointTimeout, and the events log of this process's monitors): a process runs
// one host's configuration.
func OpenConfig(cfg *hostconf.Config) (*Runtime, error) {
	r, err := Open(cfg.Root)
	if err != nil {
		return nil, err
	}
	l := cfg.Limits
	r.Defaults = spec.DefaultLimits{Memory: l.Memory, Swap: l.Swap, CPUs: l.CPUs, CPULimit: l.CPULimit,
		CPUUnits: l.CPUUnits, NumProc: l.NumProc, IOLimit: l.IOLimit, IOWeight: l.IOWeight}
	r.Pool = uid.Pool{Base: uid.HostID(cfg.UIDPoolStart), Size: cfg.UIDPoolSize}
	r.IDMapSize = cfg.UIDRangeSize
	r.Events = eventlog.Events(r.St.Root, cfg.EventsLogMax, cfg.LogKeep)
	store.LockWait = cfg.LockWait
	monitor.StartTimeout = cfg.StartTimeout
	monitor.CheckpointTimeout = cfg.CheckpointTimeout
	monitor.Events = r.Events
	if len(cfg.Cluster) > 0 {
		r.Cluster = registry.New(registry.Settings{Root: r.St.Root, Endpoints: cfg.Cluster, Cert: cfg.ClusterCert,
			Key: cfg.ClusterKey, CA: cfg.ClusterCA, Timeout: cfg.ClusterTimeout, Node: cfg.NodeName()})
	}
	return r, nil
}
