package runtime

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/vpsctl/vpsctl/container"
	"github.com/vpsctl/vpsctl/network"
	"github.com/vpsctl/vpsctl/registry"
	"github.com/vpsctl/vpsctl/store"
	"github.com/vpsctl/vpsctl/uid"
)

// The cluster registry (README, "Cluster"; docs/ARCHITECTURE.md has the key layout). With
// Runtime.Cluster set, create, set --name/--ipadd/--ipdel and destroy claim and release in
// etcd, through the host's agent, together with the local store:
//
//	create:  claim (with a pending marker) ─▶ local commit ─▶ settle (the marker goes)
//	set:     claim the new keys (marker)   ─▶ local save   ─▶ settle (the old keys go)
//	destroy: mark                          ─▶ local destroy ─▶ settle (every key goes)
//
// all under the state root's global lock. A command killed anywhere leaves a marker, and the
// next command that takes the global lock and asks the agent settles it from what the local
// store holds (clusterRepair): a VPS never exists here without its claim, and a claim is
// never left without its VPS for longer than until that command. VPSs of vpsctl's own making
// (IDs from store.TransientBase: a run without an ID, spares) are this host's alone and are
// not claimed.

// clustered reports whether VPS id's claims go to the cluster registry.
func (r *Runtime) clustered(id container.ID) bool {
	return r.Cluster != nil && id < store.TransientBase
}

// claimOf is what VPS config c holds in the cluster: its ID, name, addresses (routed and on
// its interfaces) and UID range.
func claimOf(c *store.Config) registry.Claim {
	cl := registry.Claim{ID: uint32(c.ID), Name: c.Name, UIDs: c.IDMap}
	for _, a := range configAddrs(c) {
		cl.Addrs = append(cl.Addrs, a.String())
	}
	return cl.Normalize()
}

// clusterPrepare asks the agent for this host's pending markers and the claimed UID ranges,
// and settles the markers from the local store. The caller holds the global lock: no change
// of this host's is under way, so every marker is one a command left unsettled.
func (r *Runtime) clusterPrepare(ctx context.Context) (*registry.Response, error) {
	resp, err := r.Cluster.Do(ctx, registry.Request{Op: registry.OpPrepare})
	if err != nil {
		return nil, err
	}
	for _, p := range resp.Pending {
		if err := r.settle(ctx, container.ID(p.ID)); err != nil {
			return nil, err
		}
	}
	return resp, nil
}

// settle settles VPS id's marker from the local store: the VPS's claim as its config has it,
// or none if it does not exist here.
func (r *Runtime) settle(ctx context.Context, id container.ID) error {
	req := registry.Request{Op: registry.OpSettle, ID: uint32(id)}
	c, err := r.St.LoadConfig(id)
	switch {
	case err == nil:
		cl := claimOf(c)
		req.Claim = &cl
	case !errors.Is(err, store.ErrNotExist):
		return fmt.Errorf("settle VPS %d in the cluster registry: %w", id, err)
	}
	_, err = r.Cluster.Do(ctx, req)
	return err
}

// settleLater sends the settling of VPS id's marker with claim final (nil: the VPS is gone)
// without waiting for it: nothing depends on it but tidiness, and if it is lost the next
// command does it (clusterRepair). A create's caller does not wait for the second etcd write.
func (r *Runtime) settleLater(ctx context.Context, id container.ID, final *registry.Claim) {
	call, err := r.Cluster.Go(ctx, registry.Request{Op: registry.OpSettle, ID: uint32(id), Claim: final})
	if err == nil {
		call.Abandon()
	}
}

// clusterError turns a claim refused by the registry into the sentinel of the same local
// refusal (exit codes 44 and 78 whichever host holds the key).
func clusterError(err error) error {
	var ce *registry.ConflictError
	if !errors.As(err, &ce) {
		return err
	}
	switch ce.What {
	case "id":
		return fmt.Errorf("%w: %w", ce, store.ErrExist)
	case "name":
		return fmt.Errorf("%w: %w", ce, store.ErrNameExist)
	case "uid":
		// Only a VPS from before its host joined can have one: it cannot join as it is.
		return fmt.Errorf("%w: %w", ce, uid.ErrBadRange)
	}
	return fmt.Errorf("%w: %w", ce, network.ErrIPInUse)
}

// ClusterRepair settles this host's pending markers (see clusterPrepare), taking the global
// lock only if there are any: what list --cluster and hosts do first.
func (r *Runtime) ClusterRepair(ctx context.Context) error {
	resp, err := r.Cluster.Do(ctx, registry.Request{Op: registry.OpPrepare})
	if err != nil || len(resp.Pending) == 0 {
		return err
	}
	gl, err := r.St.LockGlobal(ctx, "cluster repair")
	if err != nil {
		return err
	}
	defer gl.Unlock()
	_, err = r.clusterPrepare(ctx)
	return err
}

// ClusterVPS is one VPS of the cluster inventory.
type ClusterVPS struct {
	ID       container.ID `json:"id"`
	Name     string       `json:"name"`
	Host     string       `json:"host"`
	State    string       `json:"state"` // this host's: running, stopped; others': exist, or unknown when the host is down; creating, changing, destroying while a change is unsettled
	HostUp   bool         `json:"host_up"`
	Addrs    []string     `json:"addrs"`
	IDMap    string       `json:"idmap,omitempty"`
	Template string       `json:"template,omitempty"`
}

// Inventory is what list --cluster shows: every VPS of every host, and the hosts.
type Inventory struct {
	VPSs  []ClusterVPS         `json:"vpss"`
	Hosts []registry.HostState `json:"hosts"`
}

// ClusterInventory reads the cluster's inventory from etcd in one round trip (after settling
// this host's pending markers), with this host's VPSs' running state from the local store.
func (r *Runtime) ClusterInventory(ctx context.Context) (*Inventory, error) {
	if err := r.ClusterRepair(ctx); err != nil {
		return nil, err
	}
	resp, err := r.Cluster.Do(ctx, registry.Request{Op: registry.OpInventory})
	if err != nil {
		return nil, err
	}
	up := map[string]bool{}
	for _, h := range resp.Hosts {
		up[h.Name] = h.Up
	}
	pending := map[string]string{}
	for _, p := range resp.Pending {
		pending[fmt.Sprintf("%s/%d", p.Node, p.ID)] = map[string]string{"create": "creating", "set": "changing", "destroy": "destroying"}[p.Op]
	}
	inv := &Inventory{VPSs: []ClusterVPS{}, Hosts: resp.Hosts}
	if inv.Hosts == nil {
		inv.Hosts = []registry.HostState{}
	}
	me := r.Cluster.Settings.Node
	for _, rec := range resp.Records {
		v := ClusterVPS{ID: container.ID(rec.ID), Name: rec.Name, Host: rec.Host, HostUp: up[rec.Host],
			Addrs: slices.Clip(append([]string{}, rec.Addrs...)), IDMap: rec.UIDs, Template: rec.Template, State: "exist"}
		switch {
		case pending[fmt.Sprintf("%s/%d", rec.Host, rec.ID)] != "":
			v.State = pending[fmt.Sprintf("%s/%d", rec.Host, rec.ID)]
		case rec.Host == me:
			if s, err := r.Status(v.ID); err == nil && s.State != "deleted" {
				v.State = s.State
			}
		case !v.HostUp:
			v.State = "unknown" // never assumed gone: its host may come back with it
		}
		inv.VPSs = append(inv.VPSs, v)
	}
	return inv, nil
}

// ClusterHosts lists the registered hosts and whether each is up (its lease alive).
func (r *Runtime) ClusterHosts(ctx context.Context) ([]registry.HostState, error) {
	resp, err := r.Cluster.Do(ctx, registry.Request{Op: registry.OpHosts})
	if err != nil {
		return nil, err
	}
	return resp.Hosts, nil
}

// ClusterLookup finds where the VPS ref (an ID or a name) lives in the cluster; an error
// wrapping store.ErrNotExist if the registry has none.
func (r *Runtime) ClusterLookup(ctx context.Context, ref string) (*registry.Record, error) {
	req := registry.Request{Op: registry.OpLookup}
	if container.LooksNumeric(ref) {
		id, err := container.ParseID(ref)
		if err != nil {
			return nil, err
		}
		req.ID = uint32(id)
	} else {
		if err := container.ValidateName(ref); err != nil {
			return nil, err
		}
		req.Name = ref
	}
	resp, err := r.Cluster.Do(ctx, req)
	if errors.Is(err, registry.ErrNotFound) {
		return nil, fmt.Errorf("VPS %s: %w", ref, store.ErrNotExist)
	}
	if err != nil {
		return nil, err
	}
	return resp.Record, nil
}

// JoinResult is what ClusterJoin did with one VPS: claimed it (Err nil) or not, and why.
type JoinResult struct {
	ID  container.ID
	Err error
}

// ClusterJoin claims every VPS of this host in the cluster registry (what a host that had VPSs
// before it joined a cluster needs: a VPS is never without its claim). One already claimed by
// this host is claimed again as its config is now; one whose ID, name or address another host
// holds is reported (the results are in ID order) and left unclaimed.
func (r *Runtime) ClusterJoin(ctx context.Context) ([]JoinResult, error) {
	gl, err := r.St.LockGlobal(ctx, "cluster join")
	if err != nil {
		return nil, err
	}
	defer gl.Unlock()
	if _, err := r.clusterPrepare(ctx); err != nil {
		return nil, err
	}
	cs, err := r.St.Configs()
	if err != nil {
		return nil, err
	}
	var out []JoinResult
	for _, c := range cs {
		if !r.clustered(c.ID) {
			continue
		}
		cl := claimOf(c)
		_, err := r.Cluster.Do(ctx, registry.Request{Op: registry.OpClaim, Claim: &cl, Old: &cl, Template: c.Template})
		if err == nil {
			_, err = r.Cluster.Do(ctx, registry.Request{Op: registry.OpSettle, ID: uint32(c.ID), Claim: &cl})
		}
		if errors.Is(err, registry.ErrUnavailable) {
			return out, err
		}
		out = append(out, JoinResult{ID: c.ID, Err: clusterError(err)})
	}
	return out, nil
}
