package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/vpsctl/vpsctl/container"
	"github.com/vpsctl/vpsctl/registry"
	"github.com/vpsctl/vpsctl/store"
	"github.com/vpsctl/vpsctl/uid"
)

// A VPS made from another's files on a host in a cluster (cluster.go) is claimed in the
// registry as a create claims one (a pending marker, settled after the local commit), unless
// it is a migration from another host of the same cluster: the VPS keeps its claims, and the
// registry's record of it moves from the source host to this one at the migration's commit
// (registry.OpMove, made by the source's agent, the record's owner until then), and back if
// this host then abandons the VPS (moveBack), so that the destroy of either copy releases
// nothing of the one that runs on.

// clusterPlace is how an incoming VPS stands in the cluster registry.
type clusterPlace struct {
	fresh bool // claimed here as a new VPS
	// source is the host a migration of the VPS comes from, whose record of it moves here;
	// others are the UID ranges claimed in the cluster by other VPSs.
	source string
	others []uid.Range
}

// incomingPlace finds how incoming VPS id stands in the registry (see clusterPlace); source is
// the cluster host a migration says it comes from ("": not a migration, or from no host of a
// cluster). The caller holds the global lock.
func (r *Runtime) incomingPlace(ctx context.Context, id container.ID, source string) (clusterPlace, error) {
	if source == "" {
		return clusterPlace{fresh: true}, nil
	}
	resp, err := r.Cluster.Do(ctx, registry.Request{Op: registry.OpLookup, ID: uint32(id)})
	if errors.Is(err, registry.ErrNotFound) {
		// Never claimed (a VPS from before its host joined): claimed here as new.
		return clusterPlace{fresh: true}, nil
	}
	if err != nil {
		return clusterPlace{}, err
	}
	if host := resp.Record.Host; host != source || source == r.Cluster.Settings.Node {
		return clusterPlace{}, fmt.Errorf("VPS %d exists on host %s: %w", id, host, store.ErrExist)
	}
	prep, err := r.clusterPrepare(ctx)
	if err != nil {
		return clusterPlace{}, err
	}
	p := clusterPlace{source: source}
	for _, u := range prep.UIDs {
		if u.ID != uint32(id) {
			p.others = append(p.others, uid.Range{Host: uid.HostID(u.Base), Size: u.Size})
		}
	}
	return p, nil
}

// claimNew claims incoming VPS c in the registry as a new VPS (see createClustered): with UID
// range keep if its Size is not 0 and no other VPS of the cluster overlaps it, else (userns)
// with one of size IDs the agent chooses beside used. It returns the range claimed.
func (r *Runtime) claimNew(ctx context.Context, c *store.Config, userns bool, keep uid.Range, size uint32, used []uid.Range) (uid.Range, error) {
	cl := claimOf(c)
	cl.UIDs = ""
	req := registry.Request{Op: registry.OpCreate, Template: c.Template, Claim: &cl}
	alloc := func() {
		cl.UIDs = ""
		req.Alloc = &registry.UIDAlloc{PoolBase: uint32(r.Pool.Base), PoolSize: r.Pool.Size, Size: size, Used: used}
	}
	if userns {
		if keep.Size > 0 {
			cl.UIDs = keep.String()
		} else {
			alloc()
		}
	}
	resp, err := r.settledClaim(ctx, req)
	if errors.Is(err, registry.ErrUIDRace) && keep.Size > 0 {
		alloc() // another VPS's range overlaps it somewhere in the cluster
		resp, err = r.settledClaim(ctx, req)
	}
	if err != nil || !userns {
		return uid.Range{}, err
	}
	rg, err := uid.ParseRange(resp.Claim.UIDs)
	if err != nil {
		return uid.Range{}, fmt.Errorf("cluster agent: UID range %q: %w", resp.Claim.UIDs, err)
	}
	return rg, nil
}

// settledClaim asks the agent for claim req; while it answers that this host left changes
// unsettled (one may hold this very ID), they are settled first and the claim asked again.
// A refusal is the local refusal's sentinel (clusterError). The caller holds the global lock.
func (r *Runtime) settledClaim(ctx context.Context, req registry.Request) (*registry.Response, error) {
	resp, err := r.Cluster.Do(ctx, req)
	return r.afterPending(ctx, req, resp, err)
}

// afterPending is settledClaim for a claim already asked (resp, err its answer).
func (r *Runtime) afterPending(ctx context.Context, req registry.Request, resp *registry.Response, err error) (*registry.Response, error) {
	for round := 0; errors.Is(err, registry.ErrPending) && round < 3; round++ {
		for _, p := range resp.Pending {
			if err := r.settle(ctx, container.ID(p.ID)); err != nil {
				return nil, err
			}
		}
		resp, err = r.Cluster.Do(ctx, req)
	}
	if err != nil {
		return nil, clusterError(err)
	}
	return resp, nil
}

// The incomplete mark of a migration from a host of this cluster names that host and the
// VPS's UID range there, for moveBack: "source-node=NODE" and "source-uids=HOST:SIZE" lines
// after the mark's first.
const (
	sourceNodeKey = "source-node="
	sourceUIDsKey = "source-uids="
)

// incomingSource reads the source host and range from VPS id's incomplete mark ("" if none).
func (r *Runtime) incomingSource(id container.ID) (node, uids string) {
	b, err := os.ReadFile(filepath.Join(r.St.VPSDir(id), incompleteFile))
	if err != nil {
		return "", ""
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, sourceNodeKey); ok {
			node = v
		} else if v, ok := strings.CutPrefix(l, sourceUIDsKey); ok {
			uids = v
		}
	}
	return node, uids
}

// moveBack gives incomplete VPS id, a migration from another host of the cluster, back to
// that host in the registry if the migration's commit had moved its record here: the destroy
// of the copy here then releases nothing of the VPS, which runs on there. If the registry
// cannot say or refuses, the copy must stay (an error): its destroy would release the claims
// of the VPS that runs there.
func (r *Runtime) moveBack(ctx context.Context, id container.ID) error {
	node, uids := r.incomingSource(id)
	if r.Cluster == nil || node == "" {
		return nil
	}
	resp, err := r.Cluster.Do(ctx, registry.Request{Op: registry.OpLookup, ID: uint32(id)})
	if errors.Is(err, registry.ErrNotFound) {
		return nil
	}
	if err == nil && resp.Record.Host != r.Cluster.Settings.Node {
		return nil
	}
	if err == nil {
		_, err = r.Cluster.Do(ctx, registry.Request{Op: registry.OpMove, ID: uint32(id), To: node, Claim: &registry.Claim{ID: uint32(id), UIDs: uids}})
	}
	if err != nil {
		return fmt.Errorf("VPS %d came from host %s, and the cluster registry may place it here: it is kept here, incomplete, until it can be given back (`vpsctl destroy %d` again once the registry answers): %w", id, node, id, err)
	}
	return nil
}
