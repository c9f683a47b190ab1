package runtime

import (
	"time"

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
	r.Host = cfg
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

// HostConfig is r's host configuration (Host), the built-in one without.
func (r *Runtime) HostConfig() *hostconf.Config {
	if r.Host == nil {
		return hostconf.Defaults()
	}
	return r.Host
}

// CreateDefaults fills in what create options o leave to the host: the template
// (DEFAULT_TEMPLATE), the nameservers and search domains, and the limits, o's over plan p's
// (nil: none) over the host's.
func (r *Runtime) CreateDefaults(o *CreateOptions, p *hostconf.Plan) {
	h := r.HostConfig()
	if o.Template == "" {
		o.Template = h.DefaultTemplate
	}
	if o.Net.Nameservers == nil {
		o.Net.Nameservers = h.Nameservers
	}
	if o.Net.SearchDomains == nil {
		o.Net.SearchDomains = h.SearchDomains
	}
	o.Limits = limitsOf(h.CreateLimits(p, o.Limits.hostconf()))
}

// StopTimeout is the host's grace period of a stop that names none (STOP_TIMEOUT).
func (r *Runtime) StopTimeout() time.Duration { return r.HostConfig().StopTimeout }

// WithPlan returns l over plan p's limits (nil: l): what set --plan applies.
func (l Limits) WithPlan(p *hostconf.Plan) Limits {
	if p == nil {
		return l
	}
	return limitsOf(l.hostconf().Over(p.Limits))
}

// hostconf is l in the host configuration's form: "" is not set.
func (l Limits) hostconf() hostconf.Limits {
	s := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	return hostconf.Limits{Memory: s(l.Memory), Swap: s(l.Swap), CPUs: s(l.CPUs), CPULimit: s(l.CPULimit),
		CPUUnits: s(l.CPUUnits), NumProc: s(l.NumProc), IOLimit: s(l.IOLimit), IOWeight: s(l.IOWeight)}
}

// limitsOf is l in the runtime's form.
func limitsOf(l hostconf.Limits) Limits {
	p := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	return Limits{Memory: p(l.Memory), Swap: p(l.Swap), CPUs: p(l.CPUs), CPULimit: p(l.CPULimit),
		CPUUnits: p(l.CPUUnits), NumProc: p(l.NumProc), IOLimit: p(l.IOLimit), IOWeight: p(l.IOWeight)}
}
