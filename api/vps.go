package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/vpsctl/vpsctl/container"
	"github.com/vpsctl/vpsctl/fleet"
	"github.com/vpsctl/vpsctl/hostconf"
	"github.com/vpsctl/vpsctl/internal/spec"
	"github.com/vpsctl/vpsctl/runtime"
)

// limitValue is a limit as the CLI takes it ("256M", "unlimited", "100"), or a JSON integer.
type limitValue string

func (l *limitValue) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*l = limitValue(s)
		return nil
	}
	var n uint64
	if err := json.Unmarshal(b, &n); err != nil {
		return errors.New("a limit: want a string (256M, unlimited) or a non-negative integer")
	}
	*l = limitValue(strconv.FormatUint(n, 10))
	return nil
}

// limitFields are the limits of a create or a set, named as the CLI's flags.
type limitFields struct {
	Memory   *limitValue `json:"memory,omitempty"`
	Swap     *limitValue `json:"swap,omitempty"`
	CPUs     *limitValue `json:"cpus,omitempty"`
	CPULimit *limitValue `json:"cpulimit,omitempty"`
	CPUUnits *limitValue `json:"cpuunits,omitempty"`
	NumProc  *limitValue `json:"numproc,omitempty"`
	IOLimit  *limitValue `json:"iolimit,omitempty"`
	IOWeight *limitValue `json:"ioweight,omitempty"`
}

func (l limitFields) runtime() runtime.Limits {
	str := func(v *limitValue) *string {
		if v == nil {
			return nil
		}
		s := string(*v)
		return &s
	}
	return runtime.Limits{Memory: str(l.Memory), Swap: str(l.Swap), CPUs: str(l.CPUs), CPULimit: str(l.CPULimit),
		CPUUnits: str(l.CPUUnits), NumProc: str(l.NumProc), IOLimit: str(l.IOLimit), IOWeight: str(l.IOWeight)}
}

type createRequest struct {
	ID           *uint32  `json:"id"`
	Template     string   `json:"template,omitempty"` // "": the host's DEFAULT_TEMPLATE
	Plan         string   `json:"plan,omitempty"`
	Name         string   `json:"name,omitempty"`
	Hostname     string   `json:"hostname,omitempty"`
	Domainname   string   `json:"domainname,omitempty"`
	Namespaces   []string `json:"namespaces,omitempty"`
	IDMapSize    uint32   `json:"idmap_size,omitempty"`
	IPAdd        []string `json:"ipadd,omitempty"`
	NetIfAdd     []string `json:"netif_add,omitempty"`
	Nameserver   []string `json:"nameserver,omitempty"`
	Searchdomain []string `json:"searchdomain,omitempty"`
	Devices      []string `json:"devices,omitempty"`
	Features     []string `json:"features,omitempty"`
	BindMount    []string `json:"bindmount,omitempty"`
	Capability   []string `json:"capability,omitempty"`
	OnBoot       string   `json:"onboot,omitempty"`
	BootOrder    string   `json:"bootorder,omitempty"`
	DiskSpace    string   `json:"diskspace,omitempty"`
	DiskInodes   string   `json:"diskinodes,omitempty"`
	limitFields
}

type setRequest struct {
	Name         *string  `json:"name,omitempty"`
	Hostname     *string  `json:"hostname,omitempty"`
	Domainname   *string  `json:"domainname,omitempty"`
	IPAdd        []string `json:"ipadd,omitempty"`
	IPDel        []string `json:"ipdel,omitempty"`
	NetIfAdd     []string `json:"netif_add,omitempty"`
	NetIfDel     []string `json:"netif_del,omitempty"`
	Nameserver   []string `json:"nameserver,omitempty"`
	Searchdomain []string `json:"searchdomain,omitempty"`
	Capability   []string `json:"capability,omitempty"`
	Devices      []string `json:"devices,omitempty"`
	Features     []string `json:"features,omitempty"`
	BindMountAdd []string `json:"bindmount_add,omitempty"`
	BindMountDel []string `json:"bindmount_del,omitempty"`
	UserPasswd   []string `json:"userpasswd,omitempty"`
	OnBoot       *string  `json:"onboot,omitempty"`
	BootOrder    *string  `json:"bootorder,omitempty"`
	DiskSpace    *string  `json:"diskspace,omitempty"`
	DiskInodes   *string  `json:"diskinodes,omitempty"`
	Save         bool     `json:"save,omitempty"`
	Plan         string   `json:"plan,omitempty"`
	limitFields
}

// resolve turns the path's {ref} (an ID or a name) into an existing VPS's ID.
func (s *Server) resolve(r *http.Request) (container.ID, error) {
	return s.rt.Resolve(r.PathValue("ref"))
}

func (s *Server) listVPS(w http.ResponseWriter, r *http.Request) error {
	q, err := newQuery(r, "state")
	if err != nil {
		return err
	}
	state := q.str("state")
	if state != "" && state != "running" && state != "stopped" {
		return badf("query parameter state=%q: want running or stopped", state)
	}
	ss, err := s.rt.List(state != "running")
	if err != nil {
		return err
	}
	out := make([]*runtime.Status, 0, len(ss))
	for _, st := range ss {
		if state == "" || st.State == state {
			out = append(out, st)
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// status is VPS id's status for an answer: a VPS that vanished meanwhile is not found.
func (s *Server) status(id container.ID) (*runtime.Status, error) {
	st, err := s.rt.Status(id)
	if err != nil {
		return nil, err
	}
	if st.State == "deleted" {
		_, err := s.rt.Resolve(strconv.FormatUint(uint64(id), 10))
		return nil, err
	}
	return st, nil
}

func (s *Server) getVPS(w http.ResponseWriter, r *http.Request) error {
	if _, err := newQuery(r); err != nil {
		return err
	}
	id, err := s.resolve(r)
	if err != nil {
		return err
	}
	st, err := s.status(id)
	if err != nil {
		return err
	}
	st.CheckViews()
	writeJSON(w, http.StatusOK, st)
	return nil
}

func (s *Server) createVPS(w http.ResponseWriter, r *http.Request) error {
	q, err := newQuery(r, "async")
	if err != nil {
		return err
	}
	var req createRequest
	if err := decode(r, &req, false); err != nil {
		return err
	}
	if req.ID == nil {
		return badf("body: id is required")
	}
	plan, err := s.plan(req.Plan)
	if err != nil {
		return err
	}
	id := container.ID(*req.ID)
	if _, err := container.ParseID(strconv.FormatUint(uint64(id), 10)); err != nil {
		return err
	}
	var ns []string
	if req.Namespaces != nil {
		ns = []string{joinComma(req.Namespaces)}
	}
	// What Create would refuse in the document's enums is refused before an operation starts
	// (an async request's 202 promises a request the API takes), with Create's own checks.
	if _, err := fleet.ParseOnBoot(req.OnBoot); err != nil {
		return err
	}
	if ns != nil {
		if _, err := spec.ParseNamespaces(ns); err != nil {
			return err
		}
	}
	o := runtime.CreateOptions{ID: id, Name: req.Name, Template: req.Template, Hostname: req.Hostname,
		Domainname: req.Domainname, Namespaces: ns, IDMapSize: req.IDMapSize, Limits: req.limitFields.runtime(),
		Net: runtime.NetOptions{IPAdd: req.IPAdd, NetIfAdd: req.NetIfAdd, Nameservers: req.Nameserver,
			SearchDomains: req.Searchdomain},
		Devices: req.Devices, Features: req.Features, BindMounts: req.BindMount, Caps: req.Capability,
		OnBoot: req.OnBoot, BootOrder: req.BootOrder, DiskSpace: req.DiskSpace, DiskInodes: req.DiskInodes}
	s.rt.CreateDefaults(&o, plan)
	if o.Template == "" {
		return badf("body: template is required (the host configuration has no DEFAULT_TEMPLATE)")
	}
	return s.start(w, r, q, &Operation{Action: "create", VPS: uint32(id)}, http.StatusCreated, func(ctx context.Context) (any, error) {
		if err := s.rt.Create(ctx, o); err != nil {
			return nil, err
		}
		return s.status(id)
	})
}

// plan is the host's plan name ("": none), as create's and set's --plan read it.
func (s *Server) plan(name string) (*hostconf.Plan, error) {
	if name == "" {
		return nil, nil
	}
	return s.rt.HostConfig().Plan(name)
}

func joinComma(ss []string) string {
	out := ""
	for i, s := range ss {
		if i > 0 {
			out += ","
		}
		out += s
	}
	return out
}

func (s *Server) setVPS(w http.ResponseWriter, r *http.Request) error {
	q, err := newQuery(r, "async")
	if err != nil {
		return err
	}
	var req setRequest
	if err := decode(r, &req, false); err != nil {
		return err
	}
	if req.OnBoot != nil {
		if _, err := fleet.ParseOnBoot(*req.OnBoot); err != nil {
			return err
		}
	}
	plan, err := s.plan(req.Plan)
	if err != nil {
		return err
	}
	id, err := s.resolve(r)
	if err != nil {
		return err
	}
	o := runtime.SetOptions{Name: req.Name, Hostname: req.Hostname, Domainname: req.Domainname, Limits: req.limitFields.runtime().WithPlan(plan),
		Net: runtime.NetOptions{IPAdd: req.IPAdd, IPDel: req.IPDel, NetIfAdd: req.NetIfAdd, NetIfDel: req.NetIfDel,
			Nameservers: req.Nameserver, SearchDomains: req.Searchdomain},
		Capabilities: req.Capability, Devices: req.Devices, Features: req.Features, BindMountAdd: req.BindMountAdd,
		BindMountDel: req.BindMountDel, UserPasswd: req.UserPasswd, Save: req.Save,
		OnBoot: req.OnBoot, BootOrder: req.BootOrder, DiskSpace: req.DiskSpace, DiskInodes: req.DiskInodes}
	return s.start(w, r, q, &Operation{Action: "set", VPS: uint32(id)}, http.StatusOK, func(ctx context.Context) (any, error) {
		if err := s.rt.Set(ctx, id, o); err != nil {
			return nil, err
		}
		return s.status(id)
	})
}

func (s *Server) destroyVPS(w http.ResponseWriter, r *http.Request) error {
	q, err := newQuery(r, "async", "force")
	if err != nil {
		return err
	}
	force, err := q.bool("force", false)
	if err != nil {
		return err
	}
	id, err := s.resolve(r)
	if err != nil {
		return err
	}
	return s.start(w, r, q, &Operation{Action: "destroy", VPS: uint32(id)}, http.StatusOK, func(ctx context.Context) (any, error) {
		return nil, s.rt.Destroy(ctx, id, force)
	})
}

func (s *Server) statsVPS(w http.ResponseWriter, r *http.Request) error {
	if _, err := newQuery(r); err != nil {
		return err
	}
	id, err := s.resolve(r)
	if err != nil {
		return err
	}
	st, err := s.rt.Stats(id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

// startRequest is the body of start: wait for the guest to finish booting (start --wait).
type startRequest struct {
	Wait    bool     `json:"wait,omitempty"`
	Timeout *float64 `json:"timeout,omitempty"` // seconds to wait for the boot (default 120)
}

func (req *startRequest) validate() error {
	_, err := seconds("timeout", req.Timeout, 0, maxStopTimeout)
	return err
}

// stopRequest is the body of stop and restart.
type stopRequest struct {
	Timeout *float64 `json:"timeout,omitempty"` // seconds of grace before the kill (default: the host's STOP_TIMEOUT)
	Kill    bool     `json:"kill,omitempty"`    // stop only: kill at once
}

func (req *stopRequest) validate() error {
	_, err := seconds("timeout", req.Timeout, 0, maxStopTimeout)
	return err
}

type suspendRequest struct {
	ToDisk bool `json:"to_disk,omitempty"`
}

type checkpointRequest struct {
	Dir            string `json:"dir,omitempty"`
	LeaveRunning   bool   `json:"leave_running,omitempty"`
	TCPEstablished bool   `json:"tcp_established,omitempty"`
}

type restoreRequest struct {
	Dir string `json:"dir,omitempty"`
}

// maxStopTimeout bounds a stop's grace period, as the CLI's flag is not: an API request's
// operation should end within the hour.
const maxStopTimeout = time.Hour

// action is a POST /v1/vps/{ref}/NAME: its body (a pointer to a new value, nil: none) and
// what it does once the body is read and the VPS resolved.
type action struct {
	name string
	body func() any
	run  func(s *Server, ctx context.Context, id container.ID, body any) (any, error)
}

var actions = []action{
	{name: "start", body: func() any { return new(startRequest) }, run: func(s *Server, ctx context.Context, id container.ID, b any) (any, error) {
		req := b.(*startRequest)
		if _, err := s.rt.Start(ctx, id, runtime.StartOptions{}); err != nil {
			return nil, err
		}
		if req.Wait {
			timeout, _ := seconds("timeout", req.Timeout, 120*time.Second, maxStopTimeout)
			if _, err := s.rt.WaitBooted(ctx, id, timeout); err != nil {
				return nil, err
			}
		}
		return s.status(id)
	}},
	{name: "stop", body: func() any { return new(stopRequest) }, run: func(s *Server, ctx context.Context, id container.ID, b any) (any, error) {
		req := b.(*stopRequest)
		timeout, err := seconds("timeout", req.Timeout, s.rt.StopTimeout(), maxStopTimeout)
		if err != nil {
			return nil, err
		}
		if err := s.rt.Stop(ctx, id, runtime.StopOptions{Timeout: timeout, Kill: req.Kill}); err != nil {
			return nil, err
		}
		return s.status(id)
	}},
	{name: "restart", body: func() any { return new(stopRequest) }, run: func(s *Server, ctx context.Context, id container.ID, b any) (any, error) {
		req := b.(*stopRequest)
		timeout, err := seconds("timeout", req.Timeout, s.rt.StopTimeout(), maxStopTimeout)
		if err != nil {
			return nil, err
		}
		err = s.rt.Stop(ctx, id, runtime.StopOptions{Timeout: timeout, Kill: req.Kill})
		if err != nil && !errors.Is(err, runtime.ErrNotRunning) {
			return nil, err
		}
		if _, err := s.rt.Start(ctx, id, runtime.StartOptions{}); err != nil {
			return nil, err
		}
		return s.status(id)
	}},
	{name: "suspend", body: func() any { return new(suspendRequest) }, run: func(s *Server, ctx context.Context, id container.ID, b any) (any, error) {
		var err error
		if b.(*suspendRequest).ToDisk {
			err = s.rt.SuspendToDisk(ctx, id, io.Discard)
		} else {
			err = s.rt.Suspend(ctx, id)
		}
		if err != nil {
			return nil, err
		}
		return s.status(id)
	}},
	{name: "resume", run: func(s *Server, ctx context.Context, id container.ID, _ any) (any, error) {
		if err := s.rt.Resume(ctx, id); err != nil {
			return nil, err
		}
		return s.status(id)
	}},
	{name: "checkpoint", body: func() any { return new(checkpointRequest) }, run: func(s *Server, ctx context.Context, id container.ID, b any) (any, error) {
		req := b.(*checkpointRequest)
		return s.rt.Checkpoint(ctx, id, runtime.CheckpointOptions{Dir: req.Dir, LeaveRunning: req.LeaveRunning, TCPEstablished: req.TCPEstablished})
	}},
	{name: "restore", body: func() any { return new(restoreRequest) }, run: func(s *Server, ctx context.Context, id container.ID, b any) (any, error) {
		return s.rt.Restore(ctx, id, runtime.RestoreOptions{Dir: b.(*restoreRequest).Dir})
	}},
}

// handler is the route of action a: the body read (optional: every field has a default),
// the VPS resolved, then the operation.
func (a action) handler() func(*Server, http.ResponseWriter, *http.Request) error {
	return func(s *Server, w http.ResponseWriter, r *http.Request) error {
		q, err := newQuery(r, "async")
		if err != nil {
			return err
		}
		var body any
		if a.body != nil {
			body = a.body()
		} else {
			body = &struct{}{}
		}
		if err := decode(r, body, true); err != nil {
			return err
		}
		if v, ok := body.(interface{ validate() error }); ok {
			if err := v.validate(); err != nil {
				return err
			}
		}
		id, err := s.resolve(r)
		if err != nil {
			return err
		}
		return s.start(w, r, q, &Operation{Action: a.name, VPS: uint32(id)}, http.StatusOK, func(ctx context.Context) (any, error) {
			return a.run(s, ctx, id, body)
		})
	}
}
