package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/vpsctl/vpsctl/registry"
	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sys/unix"
)

// LeaseTTL is how long a host stays up after its agent stopped renewing its lease (killed,
// its machine down, cut off from the majority).
const LeaseTTL = 10 * time.Second

// ErrNodeTaken: another live agent, on another machine or for another state root, holds this
// node name.
var ErrNodeTaken = errors.New("node name held by another live host")

// registration is the state of this node's registration.
type registration struct {
	mu    sync.Mutex
	err   error // why the node is not registered (nil: it is, or has not tried yet)
	lease clientv3.LeaseID
	host  registry.Host // as registered
}

// Register keeps this node registered until ctx ends: its Host record, and its Liveness under
// a lease kept alive. A lease lost (etcd unreachable for longer than LeaseTTL) is replaced by
// a new one as soon as etcd answers again. The first attempt's outcome is returned.
func (g *Registry) Register(ctx context.Context) error {
	first := make(chan error, 1)
	go func() {
		sent, logged := false, ""
		for ctx.Err() == nil {
			ch, err := g.register(ctx)
			g.reg.mu.Lock()
			g.reg.err = err
			g.reg.mu.Unlock()
			if !sent {
				first <- err
				sent = true
			}
			if err != nil {
				// Once per new reason: an outage of hours retried every second must not fill
				// the log.
				if msg := err.Error(); msg != logged {
					log.Printf("register %s: %v (retrying every second)", g.node, err)
					logged = msg
				}
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
				continue
			}
			logged = ""
			g.keepRegistered(ctx, ch)
			if ctx.Err() == nil {
				log.Printf("register %s: lease lost; registering again", g.node)
			}
		}
	}()
	select {
	case err := <-first:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// hostRefresh is how often the registration's VPS count is brought up to date.
var hostRefresh = 30 * time.Second

// keepRegistered drains the lease's renewals until the lease is lost, and keeps the host
// record's VPS count current meanwhile.
func (g *Registry) keepRegistered(ctx context.Context, renewals <-chan *clientv3.LeaseKeepAliveResponse) {
	tick := time.NewTicker(hostRefresh)
	defer tick.Stop()
	for {
		select {
		case _, ok := <-renewals:
			if !ok {
				return
			}
		case <-tick.C:
			g.reg.mu.Lock()
			h := g.reg.host
			g.reg.mu.Unlock()
			if n := countVPSs(g.s.Root); n != h.VPSs {
				h.VPSs = n
				b, _ := json.Marshal(h)
				tctx, cancel := g.bounded(ctx)
				if _, err := g.cli.Put(tctx, registry.HostsPrefix+g.node, string(b)); err == nil {
					g.reg.mu.Lock()
					g.reg.host = h
					g.reg.mu.Unlock()
				}
				cancel()
			}
		}
	}
}

// register grants a lease, writes the registration and starts keeping the lease alive.
func (g *Registry) register(ctx context.Context) (<-chan *clientv3.LeaseKeepAliveResponse, error) {
	tctx, cancel := g.bounded(ctx)
	defer cancel()
	lease, err := g.cli.Grant(tctx, int64(LeaseTTL/time.Second))
	if err != nil {
		return nil, unavailable("lease", err)
	}
	live := registry.Liveness{PID: os.Getpid(), Root: g.s.Root, Machine: machineID(), Lease: int64(lease.ID)}
	liveJSON, _ := json.Marshal(live)
	host := registry.Host{Name: g.node, Address: g.localAddress(), Version: g.Version, Root: g.s.Root,
		CPUs: runtime.NumCPU(), MemoryBytes: memTotal(), VPSs: countVPSs(g.s.Root), Registered: time.Now().UTC().Truncate(time.Second)}
	hostJSON, _ := json.Marshal(host)
	aliveKey, hostKey := registry.AlivePrefix+g.node, registry.HostsPrefix+g.node
	resp, err := g.cli.Txn(tctx).If(clientv3.Compare(clientv3.CreateRevision(aliveKey), "=", 0)).
		Then(clientv3.OpPut(aliveKey, string(liveJSON), clientv3.WithLease(lease.ID)), clientv3.OpPut(hostKey, string(hostJSON))).
		Else(clientv3.OpGet(aliveKey)).Commit()
	if err != nil {
		return nil, unavailable("register", err)
	}
	if !resp.Succeeded {
		var other registry.Liveness
		if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
			json.Unmarshal(kvs[0].Value, &other)
		}
		if other.Machine != live.Machine || other.Root != live.Root {
			g.cli.Revoke(tctx, lease.ID)
			return nil, fmt.Errorf("node %q: %w (machine %s, state root %s, PID %d): give each host its own NODE",
				g.node, ErrNodeTaken, other.Machine, other.Root, other.PID)
		}
		// This machine's and root's own registration, from an agent that died: taken over
		// (the old lease then expires without taking the key along).
		if _, err := g.cli.Txn(tctx).Then(clientv3.OpPut(aliveKey, string(liveJSON), clientv3.WithLease(lease.ID)),
			clientv3.OpPut(hostKey, string(hostJSON))).Commit(); err != nil {
			return nil, unavailable("register", err)
		}
		g.cli.Revoke(tctx, clientv3.LeaseID(other.Lease))
	}
	ch, err := g.cli.KeepAlive(ctx, lease.ID)
	if err != nil {
		return nil, unavailable("lease", err)
	}
	g.reg.mu.Lock()
	g.reg.lease, g.reg.host = lease.ID, host
	g.reg.mu.Unlock()
	return ch, nil
}

// Registered returns why this node is not registered, nil if it is (or is still trying).
func (g *Registry) Registered() error {
	g.reg.mu.Lock()
	defer g.reg.mu.Unlock()
	return g.reg.err
}

// Leave gives the lease up: the node shows as down at once (its record stays).
func (g *Registry) Leave(ctx context.Context) {
	g.reg.mu.Lock()
	lease := g.reg.lease
	g.reg.mu.Unlock()
	if lease == 0 {
		return
	}
	ctx, cancel := g.bounded(ctx)
	defer cancel()
	g.cli.Revoke(ctx, lease)
}

// localAddress is the address this host reaches the first endpoint from: what the other
// hosts know it by, as far as this host can tell (a UDP "connection" sends nothing).
func (g *Registry) localAddress() string {
	u, err := url.Parse(g.s.Endpoints[0])
	if err != nil {
		return ""
	}
	c, err := net.Dial("udp", u.Host)
	if err != nil {
		return ""
	}
	defer c.Close()
	if a, ok := c.LocalAddr().(*net.UDPAddr); ok {
		return a.IP.String()
	}
	return ""
}

func machineID() string {
	if b, err := os.ReadFile("/etc/machine-id"); err == nil && len(bytes.TrimSpace(b)) > 0 {
		return string(bytes.TrimSpace(b))
	}
	h, _ := os.Hostname()
	return h
}

func memTotal() uint64 {
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) != nil {
		return 0
	}
	return uint64(si.Totalram) * uint64(si.Unit)
}

// countVPSs is how many VPSs the state root holds (the capacity a host reports).
func countVPSs(root string) int {
	ents, _ := os.ReadDir(filepath.Join(root, "vps"))
	n := 0
	for _, e := range ents {
		if _, err := strconv.ParseUint(e.Name(), 10, 32); err == nil {
			n++
		}
	}
	return n
}
