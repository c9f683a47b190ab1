package cluster

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vpsctl/vpsctl/registry"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Ports of this package's etcd members (the integration tests use 23791.. and 23801..).
const (
	clientBase = 23794
	peerBase   = 23804
)

func settings(t testing.TB, eps []string, node string) registry.Settings {
	return registry.Settings{Root: t.TempDir(), Endpoints: eps, Timeout: 2 * time.Second, Node: node}
}

func open(t testing.TB, s registry.Settings) *Registry {
	t.Helper()
	g, err := Open(s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

// keys lists every key under registry.Prefix.
func keys(t testing.TB, eps []string) []string {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, registry.Prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, kv := range resp.Kvs {
		out = append(out, string(kv.Key))
	}
	return out
}

func wantConflict(t *testing.T, err error, what string, id uint32, host string) {
	t.Helper()
	var ce *registry.ConflictError
	if !errors.As(err, &ce) || ce.What != what || ce.ID != id || ce.Host != host {
		t.Fatalf("err %v; want a %s conflict with VPS %d on host %s", err, what, id, host)
	}
}

// TestRegistry runs claims, conflicts, races, changes, settling, destroys, moves, the
// inventory and host registration against a real three-member etcd.
func TestRegistry(t *testing.T) {
	e := startEtcd(t, 3, clientBase, peerBase, "http")
	ctx := context.Background()
	sa, sb := settings(t, e.Endpoints, "A"), settings(t, e.Endpoints, "B")
	a, b := open(t, sa), open(t, sb)
	if _, _, err := b.Prepare(ctx); err != nil { // b's UID snapshot: before a's claim
		t.Fatal(err)
	}
	web := registry.Claim{ID: 701, Name: "web", Addrs: []string{"198.18.0.71"}, UIDs: "1000000:65536"}
	if err := a.Claim(ctx, 1, web, nil, "busybox"); err != nil {
		t.Fatal(err)
	}
	ps, uids, err := a.Prepare(ctx)
	if err != nil || len(ps) != 1 || ps[0].ID != 701 || ps[0].Op != "create" || len(uids) != 1 {
		t.Fatalf("pending %+v uids %+v %v", ps, uids, err)
	}
	wantConflict(t, b.Claim(ctx, 2, registry.Claim{ID: 701}, nil, ""), "id", 701, "A")
	wantConflict(t, b.Claim(ctx, 2, registry.Claim{ID: 702, Name: "web"}, nil, ""), "name", 701, "A")
	err = b.Claim(ctx, 2, registry.Claim{ID: 702, Addrs: []string{"198.18.0.72", "198.18.0.71"}}, nil, "")
	wantConflict(t, err, "ip", 701, "A")
	if !strings.Contains(err.Error(), "198.18.0.71 in use on host A (VPS 701)") {
		t.Fatalf("message %q", err)
	}
	// b chose a range from its old snapshot, and a range overlapping a's at another base.
	for _, r := range []string{"1000000:65536", "1030000:65536"} {
		if err := b.Claim(ctx, 2, registry.Claim{ID: 702, UIDs: r}, nil, ""); !errors.Is(err, registry.ErrUIDRace) {
			t.Fatalf("%s: %v; want ErrUIDRace", r, err)
		}
	}
	if _, uids, _ := b.Prepare(ctx); len(uids) != 1 || uids[0].Base != 1000000 || uids[0].ID != 701 {
		t.Fatalf("b's fresh UID claims %+v", uids)
	}
	b702 := registry.Claim{ID: 702, Addrs: []string{"198.18.0.72"}, UIDs: "1065536:65536"}
	if err := b.Claim(ctx, 2, b702, nil, "busybox"); err != nil {
		t.Fatal(err)
	}
	// Create chooses the range itself, past both hosts' claims, even from a stale snapshot.
	a.uids = nil
	got, _, err := a.Create(ctx, 1, registry.Claim{ID: 704}, "", &registry.UIDAlloc{PoolBase: 1000000, PoolSize: 1 << 20, Size: 65536})
	if !errors.Is(err, registry.ErrPending) {
		t.Fatalf("create with 701 unsettled: %v", err)
	}
	a.Settle(ctx, 701, &web)
	got, _, err = a.Create(ctx, 1, registry.Claim{ID: 704}, "", &registry.UIDAlloc{PoolBase: 1000000, PoolSize: 1 << 20, Size: 65536})
	if err != nil || got.UIDs != "1131072:65536" {
		t.Fatalf("create: %+v %v", got, err)
	}
	if err := a.Settle(ctx, 704, nil); err != nil {
		t.Fatal(err)
	}
	// A range this agent released is its to choose again; ranges it wrongly thinks taken (a
	// copy older than other hosts' destroys) are read again before the pool counts as full.
	pool := &registry.UIDAlloc{PoolBase: 1000000, PoolSize: 4 * 65536, Size: 65536}
	got, _, err = a.Create(ctx, 1, registry.Claim{ID: 704}, "", pool)
	if err != nil || got.UIDs != "1131072:65536" {
		t.Fatalf("create after a release: %+v %v", got, err)
	}
	if err := a.Settle(ctx, 704, nil); err != nil {
		t.Fatal(err)
	}
	a.uids = append(a.uids, registry.UIDClaim{Base: 1131072, Size: 65536, ID: 799}, registry.UIDClaim{Base: 1196608, Size: 65536, ID: 798})
	got, _, err = a.Create(ctx, 1, registry.Claim{ID: 704}, "", pool)
	if err != nil || got.UIDs != "1131072:65536" {
		t.Fatalf("create with a stale copy of the ranges: %+v %v", got, err)
	}
	if err := a.Settle(ctx, 704, nil); err != nil {
		t.Fatal(err)
	}
	// Nothing a refused claim names was written.
	for _, k := range keys(t, e.Endpoints) {
		if strings.HasSuffix(k, "/name/") || k == registry.UIDKey(1030000) {
			t.Fatalf("refused claim left %s", k)
		}
	}
	if err := a.Settle(ctx, 701, &web); err != nil {
		t.Fatal(err)
	}
	if err := b.Settle(ctx, 702, &b702); err != nil {
		t.Fatal(err)
	}
	if ps, _, _ := a.Prepare(ctx); len(ps) != 0 {
		t.Fatalf("settled, still pending: %+v", ps)
	}

	// A change: new name and address claimed, old ones released once settled.
	www := registry.Claim{ID: 701, Name: "www", Addrs: []string{"198.18.0.75"}, UIDs: web.UIDs}
	if err := a.Claim(ctx, 1, www, &web, ""); err != nil {
		t.Fatal(err)
	}
	wantConflict(t, b.Claim(ctx, 2, registry.Claim{ID: 703, Name: "web"}, nil, ""), "name", 701, "A") // held until settled
	if err := a.Settle(ctx, 701, &www); err != nil {
		t.Fatal(err)
	}
	ks := keys(t, e.Endpoints)
	if slices.Contains(ks, registry.NamePrefix+"web") || slices.Contains(ks, registry.IPPrefix+"198.18.0.71") ||
		!slices.Contains(ks, registry.NamePrefix+"www") || !slices.Contains(ks, registry.IPPrefix+"198.18.0.75") {
		t.Fatalf("after the change: %v", ks)
	}
	if rec, err := a.Lookup(ctx, 0, "www"); err != nil || rec.ID != 701 || rec.Host != "A" || rec.Template != "busybox" || !slices.Equal(rec.Addrs, www.Addrs) {
		t.Fatalf("lookup www: %+v %v", rec, err)
	}
	// A change undone (the local save failed): settled with the old claim.
	x := registry.Claim{ID: 701, Name: "x", Addrs: www.Addrs, UIDs: www.UIDs}
	if err := a.Claim(ctx, 1, x, &www, ""); err != nil {
		t.Fatal(err)
	}
	if err := a.Settle(ctx, 701, &www); err != nil {
		t.Fatal(err)
	}
	if rec, err := a.Lookup(ctx, 701, ""); err != nil || rec.Name != "www" || slices.Contains(keys(t, e.Endpoints), registry.NamePrefix+"x") {
		t.Fatalf("undone change: %+v %v", rec, err)
	}
	// b may not change or destroy a's VPS.
	wantConflict(t, b.Claim(ctx, 2, registry.Claim{ID: 701, Name: "y"}, &www, ""), "id", 701, "A")
	if ok, err := b.Mark(ctx, 2, 701); ok || err != nil {
		t.Fatalf("b marked a's VPS: %v %v", ok, err)
	}

	// Settling twice releases nothing twice: a key released and claimed by another VPS since
	// stays that VPS's.
	n1 := registry.Claim{ID: 705, Name: "n1"}
	if err := a.Claim(ctx, 1, n1, nil, ""); err != nil {
		t.Fatal(err)
	}
	stale := a.pending[705]
	if err := a.Settle(ctx, 705, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Claim(ctx, 2, registry.Claim{ID: 706, Name: "n1"}, nil, ""); err != nil {
		t.Fatal(err)
	}
	a.pending[705] = stale // as if the first settling's outcome had been lost
	if err := a.Settle(ctx, 705, nil); err != nil {
		t.Fatal(err)
	}
	if rec, err := b.Lookup(ctx, 0, "n1"); err != nil || rec.ID != 706 {
		t.Fatalf("n1 after a second settling: %+v %v", rec, err)
	}
	// A marker naming keys another VPS holds (whatever put them there) releases none of them.
	if err := a.Claim(ctx, 1, registry.Claim{ID: 707}, nil, ""); err != nil {
		t.Fatal(err)
	}
	m := a.pending[707]
	m.Keys = append(m.Keys, registry.NamePrefix+"n1", registry.IPPrefix+"198.18.0.72", registry.UIDKey(1065536))
	m.record = &registry.Record{Claim: registry.Claim{ID: 707, UIDs: "1065536:65536"}}
	a.pending[707] = m
	if err := a.Settle(ctx, 707, nil); err != nil {
		t.Fatal(err)
	}
	ks = keys(t, e.Endpoints)
	for _, k := range []string{registry.NamePrefix + "n1", registry.IPPrefix + "198.18.0.72", registry.UIDKey(1065536)} {
		if !slices.Contains(ks, k) {
			t.Fatalf("another VPS's %s released", k)
		}
	}
	if slices.Contains(ks, registry.VPSKey(707)) {
		t.Fatal("707 not released")
	}

	// Destroy: marked, then every key goes.
	if ok, err := a.Mark(ctx, 1, 701); !ok || err != nil {
		t.Fatalf("mark: %v %v", ok, err)
	}
	inv, _, pend, err := a.Inventory(ctx)
	if err != nil || len(inv) != 3 || !slices.ContainsFunc(pend, func(p registry.Pending) bool { return p.ID == 701 && p.Op == "destroy" }) {
		t.Fatalf("inventory %+v pending %+v %v", inv, pend, err)
	}
	if err := a.Settle(ctx, 701, nil); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys(t, e.Endpoints) {
		if strings.HasSuffix(k, "/701") || strings.Contains(k, "www") || strings.Contains(k, "198.18.0.75") || k == registry.UIDKey(1000000) {
			t.Fatalf("destroyed VPS left %s", k)
		}
	}
	if _, err := a.Lookup(ctx, 701, ""); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("lookup of a destroyed VPS: %v", err)
	}

	// Migration: only the owner moves a VPS, in one transaction.
	wantConflict(t, a.Move(ctx, 702, "A", ""), "id", 702, "B")
	if err := b.Move(ctx, 702, "A", ""); err != nil {
		t.Fatal(err)
	}
	if rec, err := a.Lookup(ctx, 702, ""); err != nil || rec.Host != "A" || rec.UIDs != "1065536:65536" {
		t.Fatalf("moved: %+v %v", rec, err)
	}
	if err := a.Move(ctx, 799, "B", ""); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("move of nothing: %v", err)
	}
	// Moved back with the range its new host gave it: the old range goes, the new is claimed;
	// one overlapping another VPS's is refused.
	a.Prepare(ctx)
	a.uids = append(a.uids, registry.UIDClaim{Base: 1200000, Size: 65536, ID: 706})
	wantConflict(t, a.Move(ctx, 702, "B", "1210000:65536"), "uid", 706, "")
	if err := a.Move(ctx, 702, "B", "1900000:65536"); err != nil {
		t.Fatal(err)
	}
	ks = keys(t, e.Endpoints)
	if rec, err := a.Lookup(ctx, 702, ""); err != nil || rec.Host != "B" || rec.UIDs != "1900000:65536" ||
		slices.Contains(ks, registry.UIDKey(1065536)) || !slices.Contains(ks, registry.UIDKey(1900000)) {
		t.Fatalf("moved with a new range: %+v %v %v", rec, err, ks)
	}
}

// TestHosts: a host is up while its lease is kept alive, down (and still listed) once given
// up; a node name is one host's; an agent of the same machine and root takes its own over.
func TestHosts(t *testing.T) {
	e := startEtcd(t, 1, clientBase, peerBase, "http")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sa := settings(t, e.Endpoints, "A")
	os.MkdirAll(sa.Root+"/vps/701", 0o700)
	a := open(t, sa)
	a.Version = "test"
	hostRefresh = 50 * time.Millisecond
	defer func() { hostRefresh = 30 * time.Second }()
	if err := a.Register(ctx); err != nil {
		t.Fatal(err)
	}
	hs, err := a.Hosts(ctx)
	if err != nil || len(hs) != 1 || !hs[0].Up || hs[0].Name != "A" || hs[0].Address != "127.0.0.1" || hs[0].VPSs != 1 ||
		hs[0].CPUs == 0 || hs[0].MemoryBytes == 0 || hs[0].Version != "test" || hs[0].Root != sa.Root {
		t.Fatalf("hosts %+v %v", hs, err)
	}
	// The VPS count follows the state root.
	os.MkdirAll(sa.Root+"/vps/702", 0o700)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if hs, err = a.Hosts(ctx); err == nil && len(hs) == 1 && hs[0].VPSs == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("VPS count not refreshed: %+v %v", hs, err)
		}
	}
	other := sa
	other.Root = t.TempDir()
	if err := open(t, other).Register(ctx); !errors.Is(err, ErrNodeTaken) {
		t.Fatalf("second root with node A: %v", err)
	}
	again := open(t, sa) // the same root's next agent (the first one killed)
	if err := again.Register(ctx); err != nil {
		t.Fatalf("takeover: %v", err)
	}
	again.Leave(ctx)
	hs, err = a.Hosts(ctx)
	if err != nil || len(hs) != 1 || hs[0].Up {
		t.Fatalf("after leaving: %+v %v", hs, err)
	}
}

// TestMajority: with one member of three down everything works; with two down, claims fail
// within the timeout as ErrUnavailable; such a claim may yet be applied once the majority is
// back (the member that took it keeps it in its log), and then its marker is known again, so
// that settling it releases it.
func TestMajority(t *testing.T) {
	e := startEtcd(t, 3, clientBase, peerBase, "http")
	ctx := context.Background()
	s := settings(t, e.Endpoints, "A")
	a := open(t, s)
	if err := a.Claim(ctx, 1, registry.Claim{ID: 710}, nil, ""); err != nil {
		t.Fatal(err)
	}
	e.Stop(0)
	if err := a.Claim(ctx, 1, registry.Claim{ID: 711}, nil, ""); err != nil {
		t.Fatalf("one member down: %v", err)
	}
	fresh := open(t, s) // a new agent whose first endpoint is the one down
	if _, _, err := fresh.Prepare(ctx); err != nil {
		t.Fatalf("one member down, fresh client: %v", err)
	}
	e.Stop(1)
	t0 := time.Now()
	err := a.Claim(ctx, 1, registry.Claim{ID: 712}, nil, "")
	if !errors.Is(err, registry.ErrUnavailable) || time.Since(t0) > s.Timeout+2*time.Second {
		t.Fatalf("majority down: %v after %v", err, time.Since(t0))
	}
	if _, _, _, err := a.Inventory(ctx); !errors.Is(err, registry.ErrUnavailable) {
		t.Fatalf("inventory, majority down: %v", err)
	}
	e.start(1)
	e.waitHealthy(e.Endpoints[1:2], 30*time.Second)
	var ps []registry.Pending
	for deadline := time.Now().Add(20 * time.Second); ; {
		if ps, _, err = a.Prepare(ctx); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("majority back: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	marked := slices.ContainsFunc(ps, func(p registry.Pending) bool { return p.ID == 712 })
	if held := slices.Contains(keys(t, e.Endpoints), registry.VPSKey(712)); held != marked {
		t.Fatalf("712 in etcd: %v, marker known: %v (%+v)", held, marked, ps)
	}
	if err := a.Settle(ctx, 712, nil); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(keys(t, e.Endpoints), registry.VPSKey(712)) {
		t.Fatal("712 still claimed after settling")
	}
}

// TestUnavailable: no etcd at all is ErrUnavailable within the timeout, for every request.
func TestUnavailable(t *testing.T) {
	s := settings(t, []string{"http://127.0.0.1:1"}, "A")
	s.Timeout = 300 * time.Millisecond
	g := open(t, s)
	ctx := context.Background()
	t0 := time.Now()
	_, _, err1 := g.Prepare(ctx)
	err2 := g.Claim(ctx, 1, registry.Claim{ID: 701}, nil, "")
	_, err3 := g.Mark(ctx, 1, 701)
	_, _, _, err4 := g.Inventory(ctx)
	_, err5 := g.Hosts(ctx)
	_, err6 := g.Lookup(ctx, 701, "")
	err7 := g.Move(ctx, 701, "B", "")
	err8 := g.Register(ctx)
	for i, err := range []error{err1, err2, err3, err4, err5, err6, err7, err8} {
		if !errors.Is(err, registry.ErrUnavailable) {
			t.Errorf("request %d: %v; want ErrUnavailable", i+1, err)
		}
	}
	if d := time.Since(t0); d > 8*s.Timeout+2*time.Second {
		t.Fatalf("eight requests took %v", d)
	}
	if err := g.Claim(ctx, 1, registry.Claim{ID: 701, Addrs: []string{"not-an-address"}}, nil, ""); err == nil || errors.Is(err, registry.ErrUnavailable) {
		t.Fatalf("malformed claim: %v", err)
	}
}

// TestRecordChanged: a set, a destroy's mark or a move whose record changes between its read
// and its transaction changes nothing and says so (ErrUnavailable: try again).
func TestRecordChanged(t *testing.T) {
	e := startEtcd(t, 1, clientBase, peerBase, "http")
	ctx := context.Background()
	a := open(t, settings(t, e.Endpoints, "A"))
	v := registry.Claim{ID: 760, Name: "v"}
	if err := a.Claim(ctx, 1, v, nil, ""); err != nil {
		t.Fatal(err)
	}
	if err := a.Settle(ctx, 760, &v); err != nil {
		t.Fatal(err)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: e.Endpoints, DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	afterRead = func() { // another writer touches the record (its content unchanged)
		resp, err := cli.Get(ctx, registry.VPSKey(760))
		if err != nil || len(resp.Kvs) == 0 {
			t.Fatal(err)
		}
		cli.Put(ctx, registry.VPSKey(760), string(resp.Kvs[0].Value))
	}
	defer func() { afterRead = func() {} }()
	before := keys(t, e.Endpoints)
	w := registry.Claim{ID: 760, Name: "w"}
	if err := a.Claim(ctx, 1, w, &v, ""); !errors.Is(err, registry.ErrUnavailable) || !strings.Contains(err.Error(), "changed meanwhile") {
		t.Fatalf("set: %v", err)
	}
	if _, err := a.Mark(ctx, 1, 760); !errors.Is(err, registry.ErrUnavailable) {
		t.Fatalf("mark: %v", err)
	}
	if err := a.Move(ctx, 760, "B", ""); !errors.Is(err, registry.ErrUnavailable) {
		t.Fatalf("move: %v", err)
	}
	if after := keys(t, e.Endpoints); !slices.Equal(before, after) {
		t.Fatalf("keys changed: %v -> %v", before, after)
	}
	if ps, _, _ := a.Prepare(ctx); len(ps) != 0 {
		t.Fatalf("markers: %+v", ps)
	}
}
