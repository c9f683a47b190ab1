// Package cluster is the cluster registry in etcd: the claims of VPS IDs, names, addresses and
// UID ranges across hosts, the hosts' registrations, and the agent (the vpsctl-cluster
// program) that holds one host's etcd connection and lease and answers its vpsctl commands
// (package registry is their side, and documents why the etcd client lives in a program of
// its own).
//
// The key layout is registry.Prefix's. Invariants:
//
//   - A key is claimed only by a transaction that compares its CreateRevision with 0: two
//     hosts racing for an ID, a name or an address cannot both win, whatever the timing
//     (etcd's transactions are serializable; no consensus of vpsctl's own).
//   - UID ranges are chosen from a snapshot of every claimed range, and claimed only if no
//     range key changed since that snapshot (a ModRevision compare over the whole uid/
//     prefix): overlapping ranges cannot both be claimed.
//   - Every claim transaction writes its host's pending marker for the VPS, naming every key
//     the change may leave behind; only settling the marker (a transaction conditional on the
//     marker's revision) deletes keys, so keys are released at most once and never another
//     VPS's.
//   - Only the agent of node N writes N's markers and its registration: the agent keeps them
//     in memory, loaded once from etcd.
//   - Every etcd call carries a deadline (Settings.Timeout); a majority that does not answer
//     is registry.ErrUnavailable, never a hang.
package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vpsctl/vpsctl/registry"
	"github.com/vpsctl/vpsctl/uid"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

type kvT = mvccpb.KeyValue

// Registry is one node's view of the cluster registry in etcd.
type Registry struct {
	// Version is what the node registers as its vpsctl version.
	Version string

	cli  *clientv3.Client
	s    registry.Settings
	node string

	mu      sync.Mutex // one change at a time; guards what follows
	loaded  bool       // pending and uids were read from etcd
	pending map[uint32]marker
	uids    []registry.UIDClaim
	uidRev  int64 // the revision uids are true at

	reg registration
}

// marker is a pending marker as written, with the record its change wrote and its revision.
type marker struct {
	registry.Pending
	record *registry.Record
	rev    int64
}

// pendingValue is what a marker key holds: the Pending, and the Record the change wrote.
type pendingValue struct {
	registry.Pending
	Record *registry.Record `json:"record,omitempty"`
}

// Open returns the registry of settings s. It does not wait for a connection: the first
// request does, within its deadline.
func Open(s registry.Settings) (*Registry, error) {
	cfg := clientv3.Config{
		Endpoints:   s.Endpoints,
		DialTimeout: s.Timeout,
		// A member that went away unannounced (power, network) is noticed within seconds,
		// and requests go to the others.
		DialKeepAliveTime:    2 * time.Second,
		DialKeepAliveTimeout: s.Timeout,
		Logger:               zap.NewNop(), // errors reach the caller; the agent logs them
	}
	tc, err := TLSConfig(s)
	if err != nil {
		return nil, err
	}
	cfg.TLS = tc
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("etcd %s: %v: %w", strings.Join(s.Endpoints, ","), err, registry.ErrUnavailable)
	}
	return &Registry{cli: cli, s: s, node: s.Node, pending: map[uint32]marker{}}, nil
}

// TLSConfig is the client TLS configuration of s: nil for plain http endpoints without
// certificates; otherwise the client certificate (if any) and the CA pool (if any; else the
// system's).
func TLSConfig(s registry.Settings) (*tls.Config, error) {
	secure := s.Cert != "" || s.CA != ""
	for _, e := range s.Endpoints {
		if strings.HasPrefix(e, "https://") {
			secure = true
		}
	}
	if !secure {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if s.Cert != "" {
		cert, err := tls.LoadX509KeyPair(s.Cert, s.Key)
		if err != nil {
			return nil, fmt.Errorf("CLUSTER_CERT %s, CLUSTER_KEY %s: %v: %w", s.Cert, s.Key, err, registry.ErrUnavailable)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	if s.CA != "" {
		pem, err := os.ReadFile(s.CA)
		if err != nil {
			return nil, fmt.Errorf("CLUSTER_CA: %v: %w", err, registry.ErrUnavailable)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CLUSTER_CA %s: no PEM certificate in it: %w", s.CA, registry.ErrUnavailable)
		}
		tc.RootCAs = pool
	}
	return tc, nil
}

// Close closes the connection.
func (g *Registry) Close() error { return g.cli.Close() }

// bounded is ctx with the registry's request timeout.
func (g *Registry) bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, g.s.Timeout)
}

// unavailable wraps an etcd error as registry.ErrUnavailable, saying what was asked.
func unavailable(what string, err error) error {
	// The client's deadline, or the server's own timeouts when it cannot reach a quorum.
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, rpctypes.ErrTimeout) || errors.Is(err, rpctypes.ErrNoLeader) ||
		errors.Is(err, rpctypes.ErrTimeoutDueToLeaderFail) || errors.Is(err, rpctypes.ErrTimeoutDueToConnectionLost) {
		return fmt.Errorf("etcd %s: no answer from a majority in time: %w", what, registry.ErrUnavailable)
	}
	return fmt.Errorf("etcd %s: %v: %w", what, err, registry.ErrUnavailable)
}

// load reads this node's markers and every UID claim, once. Caller holds g.mu.
func (g *Registry) load(ctx context.Context) error {
	if g.loaded {
		return nil
	}
	ctx, cancel := g.bounded(ctx)
	defer cancel()
	resp, err := g.cli.Txn(ctx).Then(
		clientv3.OpGet(registry.PendingPrefix+g.node+"/", clientv3.WithPrefix()),
		clientv3.OpGet(registry.UIDPrefix, clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return unavailable("read", err)
	}
	g.pending = map[uint32]marker{}
	for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
		var p pendingValue
		if json.Unmarshal(kv.Value, &p) == nil && p.ID != 0 {
			g.pending[p.ID] = marker{Pending: p.Pending, record: p.Record, rev: kv.ModRevision}
		}
	}
	g.setUIDs(resp.Responses[1].GetResponseRange().Kvs, resp.Header.Revision)
	g.loaded = true
	return nil
}

// refreshUIDs reads every UID claim again. Caller holds g.mu.
func (g *Registry) refreshUIDs(ctx context.Context) error {
	ctx, cancel := g.bounded(ctx)
	defer cancel()
	resp, err := g.cli.Get(ctx, registry.UIDPrefix, clientv3.WithPrefix())
	if err != nil {
		return unavailable("read", err)
	}
	g.setUIDs(resp.Kvs, resp.Header.Revision)
	return nil
}

// setUIDs replaces the UID claims with kvs, true at revision rev.
func (g *Registry) setUIDs(kvs []*kvT, rev int64) {
	g.uids = g.uids[:0]
	for _, kv := range kvs {
		if u, ok := parseUID(string(kv.Key), string(kv.Value)); ok {
			g.uids = append(g.uids, u)
		}
	}
	g.uidRev = rev
}

func parseUID(key, value string) (registry.UIDClaim, bool) {
	b, err := strconv.ParseUint(strings.TrimPrefix(key, registry.UIDPrefix), 10, 32)
	f := strings.Fields(value)
	if err != nil || len(f) != 2 {
		return registry.UIDClaim{}, false
	}
	size, err1 := strconv.ParseUint(f[0], 10, 32)
	id, err2 := strconv.ParseUint(f[1], 10, 32)
	if err1 != nil || err2 != nil {
		return registry.UIDClaim{}, false
	}
	return registry.UIDClaim{Base: uint32(b), Size: uint32(size), ID: uint32(id)}, true
}

// Prepare returns this node's pending markers and every claimed UID range (from memory once
// loaded: no etcd round trip on a create's path).
func (g *Registry) Prepare(ctx context.Context) ([]registry.Pending, []registry.UIDClaim, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.load(ctx); err != nil {
		return nil, nil, err
	}
	var ps []registry.Pending
	for _, id := range slices.Sorted(maps.Keys(g.pending)) {
		ps = append(ps, g.pending[id].Pending)
	}
	return ps, slices.Clone(g.uids), nil
}

// Claim claims c for this node with a pending marker, in one transaction. old is the VPS's
// current claim for a change (set), nil for a new VPS (create). c's UID range must have been
// chosen among the claims Prepare returned: a range that overlaps one this agent knows of, or
// one claimed elsewhere since, is registry.ErrUIDRace (the fresh claims are then Prepare's).
// A key held by another VPS is a *registry.ConflictError.
func (g *Registry) Claim(ctx context.Context, pid int, c registry.Claim, old *registry.Claim, template string) error {
	if err := c.Check(); err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.load(ctx); err != nil {
		return err
	}
	for round := 0; ; round++ {
		// A range claimed elsewhere since the agent last looked: g.uids is fresh now, and
		// the overlap check above tells a true conflict.
		if err := g.claim(ctx, pid, c, old, template); !errors.Is(err, registry.ErrUIDRace) || round == 16 {
			return err
		}
	}
}

// Create claims new VPS c for this node, in one transaction, with a UID range alloc asks for
// (nil: none) chosen here among alloc.Used and every range claimed in the cluster: a create
// costs its command one request. A range another host claimed meanwhile makes another
// round, here. While this node has unsettled markers nothing is claimed: they are returned
// (registry.ErrPending) for the command to settle first, under its global lock, since one
// may hold this very ID. It returns c as claimed.
func (g *Registry) Create(ctx context.Context, pid int, c registry.Claim, template string, alloc *registry.UIDAlloc) (registry.Claim, []registry.Pending, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.load(ctx); err != nil {
		return c, nil, err
	}
	if len(g.pending) > 0 {
		var ps []registry.Pending
		for _, id := range slices.Sorted(maps.Keys(g.pending)) {
			ps = append(ps, g.pending[id].Pending)
		}
		return c, ps, registry.ErrPending
	}
	refreshed := false
	for round := 0; ; round++ {
		if alloc != nil {
			used := slices.Clone(alloc.Used)
			for _, u := range g.uids {
				used = append(used, uid.Range{Host: uid.HostID(u.Base), Size: u.Size})
			}
			rg, err := uid.Allocate(uid.Pool{Base: uid.HostID(alloc.PoolBase), Size: alloc.PoolSize}, used, alloc.Size)
			if errors.Is(err, uid.ErrPoolFull) && !refreshed {
				// Other hosts' destroys free ranges this copy still holds: read them all again
				// once before giving up.
				refreshed = true
				if err := g.refreshUIDs(ctx); err != nil {
					return c, nil, err
				}
				continue
			}
			if err != nil {
				return c, nil, err
			}
			c.UIDs = rg.String()
		}
		if err := c.Check(); err != nil {
			return c, nil, err
		}
		err := g.claim(ctx, pid, c, nil, template)
		if errors.Is(err, registry.ErrUIDRace) && alloc != nil && round < 16 {
			continue // g.uids is fresh now
		}
		return c, nil, err
	}
}

// claim is Claim with g.mu held and the markers loaded.
func (g *Registry) claim(ctx context.Context, pid int, c registry.Claim, old *registry.Claim, template string) error {
	rec := registry.Record{Claim: c, Host: g.node, Template: template, Created: time.Now().UTC().Truncate(time.Second)}
	var cmps []clientv3.Cmp
	newKeys := c.Keys()
	allKeys := newKeys
	op := "create"
	if old != nil {
		op = "set"
		cur, rev, err := g.record(ctx, c.ID)
		if err != nil {
			return err
		}
		afterRead()
		switch {
		case cur == nil:
			// Claimed nowhere (made before the host joined the cluster): claimed whole now.
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(registry.VPSKey(c.ID)), "=", 0))
		case cur.Host != g.node:
			return &registry.ConflictError{Conflict: registry.Conflict{What: "id", Key: strconv.Itoa(int(c.ID)), ID: c.ID, Host: cur.Host}}
		default:
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(registry.VPSKey(c.ID)), "=", rev))
			rec.Template, rec.Created = cur.Template, cur.Created
			held := cur.Keys()
			newKeys = slices.DeleteFunc(slices.Clone(newKeys), func(k string) bool { return slices.Contains(held, k) })
			allKeys = union(held, c.Keys())
		}
		// Not old's keys: the command's view of them is its local config, and a key it
		// names that the record does not hold is not this VPS's to release (a VPS of the host's
		// from before it joined may have an address another host claimed since).
	}
	for _, k := range newKeys {
		if k == registry.VPSKey(c.ID) && old != nil {
			continue // compared above
		}
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(k), "=", 0))
	}
	uidKey := ""
	for _, k := range newKeys {
		if strings.HasPrefix(k, registry.UIDPrefix) {
			uidKey = k
			// The range must overlap none of the claims known (complete as of g.uidRev), and
			// no range key may have changed since.
			base, size := mustRange(c)
			for _, u := range g.uids {
				if u.ID != c.ID && uint64(base) < uint64(u.Base)+uint64(u.Size) && uint64(u.Base) < uint64(base)+uint64(size) {
					if old == nil {
						return registry.ErrUIDRace // a new VPS's range: chosen again
					}
					// An existing VPS's range (one from before its host joined): it cannot be
					// this VPS's in the cluster as it is.
					cf := registry.Conflict{What: "uid", Key: c.UIDs, ID: u.ID}
					if rec, _, err := g.record(ctx, u.ID); err == nil && rec != nil {
						cf.Host = rec.Host
					}
					return &registry.ConflictError{Conflict: cf}
				}
			}
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(registry.UIDPrefix), "<", g.uidRev+1).WithPrefix())
		}
	}
	if m, ok := g.pending[c.ID]; ok {
		allKeys = union(allKeys, m.Keys) // an unsettled change before this one: its keys too
	}
	pend := pendingValue{Pending: registry.Pending{ID: c.ID, Node: g.node, Op: op, Keys: allKeys, PID: pid, Time: time.Now().UTC()}, Record: &rec}
	recJSON, _ := json.Marshal(rec)
	pendJSON, _ := json.Marshal(pend)
	ops := []clientv3.Op{clientv3.OpPut(registry.VPSKey(c.ID), string(recJSON)), clientv3.OpPut(registry.PendingKey(g.node, c.ID), string(pendJSON))}
	for _, k := range newKeys {
		switch {
		case k == registry.VPSKey(c.ID):
		case k == uidKey:
			ops = append(ops, clientv3.OpPut(k, c.UIDValue()))
		default:
			ops = append(ops, clientv3.OpPut(k, strconv.FormatUint(uint64(c.ID), 10)))
		}
	}
	var elses []clientv3.Op
	for _, k := range newKeys {
		elses = append(elses, clientv3.OpGet(k))
	}
	elses = append(elses, clientv3.OpGet(registry.UIDPrefix, clientv3.WithPrefix()))
	tctx, cancel := g.bounded(ctx)
	defer cancel()
	resp, err := g.cli.Txn(tctx).If(cmps...).Then(ops...).Else(elses...).Commit()
	if err != nil {
		g.loaded = false // it may yet be applied: read the markers again next time
		return unavailable("claim", err)
	}
	if resp.Succeeded {
		g.pending[c.ID] = marker{Pending: pend.Pending, record: &rec, rev: resp.Header.Revision}
		if uidKey != "" {
			// Nothing under uid/ changed since uidRev but this claim: the snapshot plus it
			// is true at this revision.
			base, size := mustRange(c)
			g.uids = append(g.uids, registry.UIDClaim{Base: base, Size: size, ID: c.ID})
			g.uidRev = resp.Header.Revision
		}
		return nil
	}
	// Who holds what: the first key another VPS holds, in the order ID, name, addresses.
	for i, k := range newKeys {
		kvs := resp.Responses[i].GetResponseRange().Kvs
		if len(kvs) == 0 || strings.HasPrefix(k, registry.UIDPrefix) {
			continue
		}
		return g.conflict(ctx, k, kvs[0].Value)
	}
	g.setUIDs(resp.Responses[len(newKeys)].GetResponseRange().Kvs, resp.Header.Revision)
	if uidKey != "" {
		return registry.ErrUIDRace
	}
	// The record changed under a set (another command of this node settled it meanwhile).
	return fmt.Errorf("VPS %d: its registry record changed meanwhile, try again: %w", c.ID, registry.ErrUnavailable)
}

func mustRange(c registry.Claim) (uint32, uint32) {
	b, s, _ := strings.Cut(c.UIDs, ":")
	bn, _ := strconv.ParseUint(b, 10, 32)
	sn, _ := strconv.ParseUint(s, 10, 32)
	return uint32(bn), uint32(sn)
}

// conflict describes key k, held with value v, as a *registry.ConflictError.
func (g *Registry) conflict(ctx context.Context, k string, v []byte) error {
	c := registry.Conflict{}
	switch {
	case strings.HasPrefix(k, registry.VPSPrefix):
		var rec registry.Record
		json.Unmarshal(v, &rec)
		c.What, c.Key, c.ID, c.Host = "id", strings.TrimPrefix(k, registry.VPSPrefix), rec.ID, rec.Host
		return &registry.ConflictError{Conflict: c}
	case strings.HasPrefix(k, registry.NamePrefix):
		c.What, c.Key = "name", strings.TrimPrefix(k, registry.NamePrefix)
	default:
		c.What, c.Key = "ip", strings.TrimPrefix(k, registry.IPPrefix)
	}
	id, _ := strconv.ParseUint(string(v), 10, 32)
	c.ID = uint32(id)
	if rec, _, err := g.record(ctx, c.ID); err == nil && rec != nil {
		c.Host = rec.Host
	}
	return &registry.ConflictError{Conflict: c}
}

// afterRead runs between a change's read of a record and its transaction (tests put a
// concurrent change there).
var afterRead = func() {}

// record reads VPS id's Record and its revision (nil if none).
func (g *Registry) record(ctx context.Context, id uint32) (*registry.Record, int64, error) {
	ctx, cancel := g.bounded(ctx)
	defer cancel()
	resp, err := g.cli.Get(ctx, registry.VPSKey(id))
	if err != nil {
		return nil, 0, unavailable("read", err)
	}
	if len(resp.Kvs) == 0 {
		return nil, 0, nil
	}
	var rec registry.Record
	if err := json.Unmarshal(resp.Kvs[0].Value, &rec); err != nil {
		return nil, 0, fmt.Errorf("%s: %v", registry.VPSKey(id), err)
	}
	return &rec, resp.Kvs[0].ModRevision, nil
}

// Mark writes a pending marker for destroying VPS id before the local destroy: the marker
// names the keys the VPS holds, so that the release can be finished by whoever comes next.
// A VPS the registry does not place on this node gets no marker (its keys are not this
// node's to release); ok reports whether one was written.
func (g *Registry) Mark(ctx context.Context, pid int, id uint32) (ok bool, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.load(ctx); err != nil {
		return false, err
	}
	rec, rev, err := g.record(ctx, id)
	if err != nil || rec == nil || rec.Host != g.node {
		return false, err
	}
	afterRead()
	keys := rec.Keys()
	if m, ok := g.pending[id]; ok {
		keys = union(keys, m.Keys)
	}
	pend := pendingValue{Pending: registry.Pending{ID: id, Node: g.node, Op: "destroy", Keys: keys, PID: pid, Time: time.Now().UTC()}, Record: rec}
	b, _ := json.Marshal(pend)
	ctx, cancel := g.bounded(ctx)
	defer cancel()
	resp, err := g.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(registry.VPSKey(id)), "=", rev)).
		Then(clientv3.OpPut(registry.PendingKey(g.node, id), string(b))).Commit()
	if err != nil {
		g.loaded = false // it may yet be applied: read the markers again next time
		return false, unavailable("mark", err)
	}
	if !resp.Succeeded {
		return false, fmt.Errorf("VPS %d: its registry record changed meanwhile, try again: %w", id, registry.ErrUnavailable)
	}
	g.pending[id] = marker{Pending: pend.Pending, record: rec, rev: resp.Header.Revision}
	return true, nil
}

// Settle ends VPS id's pending change: final is the VPS's claim as the local store has it
// now, nil if the VPS is gone. Keys of the marker that final does not hold are deleted (the
// record too if final is nil), the record is made final's, and the marker goes, in one
// transaction conditional on the marker: settling twice releases nothing twice.
func (g *Registry) Settle(ctx context.Context, id uint32, final *registry.Claim) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.load(ctx); err != nil {
		return err
	}
	m, ok := g.pending[id]
	if !ok {
		return nil
	}
	key := registry.PendingKey(g.node, id)
	ops := []clientv3.Op{clientv3.OpDelete(key)}
	var keep []string
	if final != nil {
		keep = final.Keys()
		rec := registry.Record{Claim: final.Normalize(), Host: g.node}
		if m.record != nil {
			rec.Template, rec.Created = m.record.Template, m.record.Created
		}
		b, _ := json.Marshal(rec)
		ops = append(ops, clientv3.OpPut(registry.VPSKey(id), string(b)))
	}
	for _, k := range m.Keys {
		if slices.Contains(keep, k) {
			continue
		}
		// A name, address or range key goes only while it still holds this VPS (a nested
		// transaction): whatever a marker says, another VPS's key is never deleted.
		if want, ok := heldValue(k, id, m.record); ok {
			ops = append(ops, clientv3.OpTxn([]clientv3.Cmp{clientv3.Compare(clientv3.Value(k), "=", want)}, []clientv3.Op{clientv3.OpDelete(k)}, nil))
			continue
		}
		ops = append(ops, clientv3.OpDelete(k))
	}
	ctx, cancel := g.bounded(ctx)
	defer cancel()
	// Not Succeeded: the marker was settled already (only this node's agent writes it).
	resp, err := g.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", m.rev)).Then(ops...).Commit()
	if err != nil {
		g.loaded = false // it may yet be applied: read the markers again next time
		return unavailable("settle", err)
	}
	if resp.Succeeded && final == nil {
		// Its range is free again for this agent's next choice. (The copy stays true as of
		// its revision: a range claimed at the same place since would fail the next claim's
		// compare, which reads them all again.)
		g.uids = slices.DeleteFunc(g.uids, func(u registry.UIDClaim) bool {
			return u.ID == id && slices.Contains(m.Keys, registry.UIDKey(u.Base))
		})
	}
	delete(g.pending, id)
	return nil
}

// heldValue is what key k holds while VPS id holds it (rec: the VPS's record as the marker's
// change wrote it, for a range's size); false for the VPS's own record key, or a range whose
// size is unknown.
func heldValue(k string, id uint32, rec *registry.Record) (string, bool) {
	switch {
	case strings.HasPrefix(k, registry.NamePrefix), strings.HasPrefix(k, registry.IPPrefix):
		return strconv.FormatUint(uint64(id), 10), true
	case strings.HasPrefix(k, registry.UIDPrefix) && rec != nil && rec.UIDs != "":
		c := registry.Claim{ID: id, UIDs: rec.UIDs}
		if base, _ := mustRange(c); registry.UIDKey(base) == k {
			return c.UIDValue(), true
		}
	}
	return "", false
}

// Inventory reads every VPS record, host and pending marker in one round trip.
func (g *Registry) Inventory(ctx context.Context) ([]registry.Record, []registry.HostState, []registry.Pending, error) {
	ctx, cancel := g.bounded(ctx)
	defer cancel()
	resp, err := g.cli.Txn(ctx).Then(
		clientv3.OpGet(registry.VPSPrefix, clientv3.WithPrefix()),
		clientv3.OpGet(registry.HostsPrefix, clientv3.WithPrefix()),
		clientv3.OpGet(registry.AlivePrefix, clientv3.WithPrefix()),
		clientv3.OpGet(registry.PendingPrefix, clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return nil, nil, nil, unavailable("inventory", err)
	}
	var recs []registry.Record
	for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
		var r registry.Record
		if json.Unmarshal(kv.Value, &r) == nil {
			recs = append(recs, r)
		}
	}
	slices.SortFunc(recs, func(a, b registry.Record) int { return int(a.ID) - int(b.ID) })
	hosts := hostStates(resp.Responses[1].GetResponseRange().Kvs, resp.Responses[2].GetResponseRange().Kvs)
	var ps []registry.Pending
	for _, kv := range resp.Responses[3].GetResponseRange().Kvs {
		var p pendingValue
		if json.Unmarshal(kv.Value, &p) == nil {
			ps = append(ps, p.Pending)
		}
	}
	return recs, hosts, ps, nil
}

// Hosts reads every registered host and whether it is up, in one round trip.
func (g *Registry) Hosts(ctx context.Context) ([]registry.HostState, error) {
	ctx, cancel := g.bounded(ctx)
	defer cancel()
	resp, err := g.cli.Txn(ctx).Then(
		clientv3.OpGet(registry.HostsPrefix, clientv3.WithPrefix()),
		clientv3.OpGet(registry.AlivePrefix, clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return nil, unavailable("hosts", err)
	}
	return hostStates(resp.Responses[0].GetResponseRange().Kvs, resp.Responses[1].GetResponseRange().Kvs), nil
}

func hostStates(hosts, alive []*kvT) []registry.HostState {
	up := map[string]bool{}
	for _, kv := range alive {
		up[strings.TrimPrefix(string(kv.Key), registry.AlivePrefix)] = true
	}
	var out []registry.HostState
	for _, kv := range hosts {
		var h registry.Host
		if json.Unmarshal(kv.Value, &h) == nil {
			out = append(out, registry.HostState{Host: h, Up: up[h.Name]})
		}
	}
	return out
}

// Lookup reads the Record of VPS id, or (id 0) of the VPS named name; registry.ErrNotFound
// if the registry has none.
func (g *Registry) Lookup(ctx context.Context, id uint32, name string) (*registry.Record, error) {
	if id == 0 {
		ctx2, cancel := g.bounded(ctx)
		resp, err := g.cli.Get(ctx2, registry.NamePrefix+name)
		cancel()
		if err != nil {
			return nil, unavailable("lookup", err)
		}
		if len(resp.Kvs) == 0 {
			return nil, fmt.Errorf("VPS %q: %w", name, registry.ErrNotFound)
		}
		n, _ := strconv.ParseUint(string(resp.Kvs[0].Value), 10, 32)
		id = uint32(n)
	}
	rec, _, err := g.record(ctx, id)
	if err != nil {
		return nil, err
	}
	if rec == nil {
		return nil, fmt.Errorf("VPS %d: %w", id, registry.ErrNotFound)
	}
	return rec, nil
}

// Move makes host to the owner of VPS id (migration): one transaction, conditional on the
// record being the one read, that rewrites its host. Only the VPS's current host may move it.
// uids, if not "", is the range the VPS has on its new host (a migration that had to remap
// it): the same transaction claims it (compared free, and overlapping no range this agent
// knows of) and releases the old one.
func (g *Registry) Move(ctx context.Context, id uint32, to, uids string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.load(ctx); err != nil {
		return err
	}
	rec, rev, err := g.record(ctx, id)
	if err != nil {
		return err
	}
	if rec == nil {
		return fmt.Errorf("VPS %d: %w", id, registry.ErrNotFound)
	}
	if rec.Host != g.node {
		return &registry.ConflictError{Conflict: registry.Conflict{What: "id", Key: strconv.Itoa(int(id)), ID: id, Host: rec.Host}}
	}
	afterRead()
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(registry.VPSKey(id)), "=", rev)}
	var ops []clientv3.Op
	if uids != "" && uids != rec.UIDs {
		next := registry.Claim{ID: id, UIDs: uids}
		if err := next.Check(); err != nil {
			return err
		}
		base, size := mustRange(next)
		for _, u := range g.uids {
			if u.ID != id && uint64(base) < uint64(u.Base)+uint64(u.Size) && uint64(u.Base) < uint64(base)+uint64(size) {
				return &registry.ConflictError{Conflict: registry.Conflict{What: "uid", Key: uids, ID: u.ID}}
			}
		}
		newKey := registry.UIDKey(base)
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(newKey), "=", 0),
			clientv3.Compare(clientv3.ModRevision(registry.UIDPrefix), "<", g.uidRev+1).WithPrefix())
		if rec.UIDs != "" {
			old := registry.Claim{ID: id, UIDs: rec.UIDs}
			oldBase, _ := mustRange(old)
			ops = append(ops, clientv3.OpTxn([]clientv3.Cmp{clientv3.Compare(clientv3.Value(registry.UIDKey(oldBase)), "=", old.UIDValue())},
				[]clientv3.Op{clientv3.OpDelete(registry.UIDKey(oldBase))}, nil))
		}
		ops = append(ops, clientv3.OpPut(newKey, next.UIDValue()))
		rec.UIDs = uids
	}
	rec.Host = to
	b, _ := json.Marshal(rec)
	ops = append(ops, clientv3.OpPut(registry.VPSKey(id), string(b)))
	tctx, cancel := g.bounded(ctx)
	defer cancel()
	resp, err := g.cli.Txn(tctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		return unavailable("move", err)
	}
	if !resp.Succeeded {
		g.refreshUIDs(ctx)
		return fmt.Errorf("VPS %d: its registry record or the UID ranges changed meanwhile, try again: %w", id, registry.ErrUnavailable)
	}
	return nil
}

func union(a, b []string) []string {
	out := slices.Clone(a)
	for _, k := range b {
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out
}
