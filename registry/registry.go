// Package registry is vpsctl's side of the cluster registry: the few requests a command makes
// of its host's cluster agent (package cluster, the vpsctl-cluster program), and the names of
// the keys the agent keeps in etcd.
//
// Why an agent: the etcd client (gRPC and protobuf registrations) costs every process that links
// it about 7 ms before main on this kind of machine, against 1.4 ms for an empty Go program, and
// a dial costs 4 ms more. vpsctl links none of it. The agent, one per state root, holds the etcd
// connection and the host's lease (its registration), and answers on a unix socket in the state
// root (STATE/cluster/agent.sock, root only): a request costs the command one local round trip
// and the agent's etcd call. A command starts the agent when none answers (Client.Start).
//
// Invariants:
//
//   - Nothing here dials anything unless a command asks: a host without CLUSTER never builds a
//     Client.
//   - Every request is bounded: the socket's deadline is the agent's etcd timeout plus a
//     margin, so a command fails with ErrUnavailable in bounded time, never hangs.
//   - Claims are made before the local change they stand for and released after the local
//     change that ends them; a pending marker in etcd (made in the claim's own transaction)
//     names every key a change may leave behind, so that the next command on the host can set
//     etcd right from the local store (see runtime's cluster repair).
//   - One state root per NODE: the agent refuses to register a node name a live agent elsewhere
//     holds.
package registry

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Sentinels callers branch on (cmd/vpsctl maps them to exit codes).
var (
	// ErrUnavailable: the registry could not be asked or could not answer in time (the agent
	// did not start, etcd has lost its majority, a TLS or configuration problem). Nothing was
	// claimed for the command.
	ErrUnavailable = errors.New("cluster unavailable")
)

// Prefix is where vpsctl's keys live in etcd. The layout (docs/ARCHITECTURE.md, "Cluster"):
//
//	/vpsctl/vps/ID             placement and identity of VPS ID: a Record (JSON)
//	/vpsctl/name/NAME          "ID": the VPS holding name NAME
//	/vpsctl/ip/ADDR            "ID": the VPS holding address ADDR (routed or on an interface)
//	/vpsctl/uid/HOST           "SIZE ID": the UID range HOST..HOST+SIZE-1 of VPS ID
//	/vpsctl/pending/NODE/ID    a Pending marker: a change of VPS ID on NODE not yet settled
//	/vpsctl/hosts/NODE         a Host: what NODE registered (kept when it goes down)
//	/vpsctl/alive/NODE         Liveness, under NODE's lease: present while its agent runs
const Prefix = "/vpsctl/"

// Key prefixes (see Prefix).
const (
	VPSPrefix     = Prefix + "vps/"
	NamePrefix    = Prefix + "name/"
	IPPrefix      = Prefix + "ip/"
	UIDPrefix     = Prefix + "uid/"
	PendingPrefix = Prefix + "pending/"
	HostsPrefix   = Prefix + "hosts/"
	AlivePrefix   = Prefix + "alive/"
)

// VPSKey is the key of VPS id's Record.
func VPSKey(id uint32) string { return VPSPrefix + strconv.FormatUint(uint64(id), 10) }

// PendingKey is the key of node's pending marker for VPS id.
func PendingKey(node string, id uint32) string {
	return PendingPrefix + node + "/" + strconv.FormatUint(uint64(id), 10)
}

// UIDKey is the key of a UID range starting at host ID base, zero-padded so that the keys sort
// as the numbers do.
func UIDKey(base uint32) string { return fmt.Sprintf("%s%010d", UIDPrefix, base) }

// Claim is what a VPS holds in the cluster: its ID, name, addresses and UID range.
type Claim struct {
	ID    uint32   `json:"id"`
	Name  string   `json:"name,omitempty"`
	Addrs []string `json:"addrs,omitempty"` // netip.Addr strings, sorted
	UIDs  string   `json:"uids,omitempty"`  // "HOST:SIZE" (uid.Range), "" without a user namespace
}

// Keys lists the keys c holds, its Record's first.
func (c Claim) Keys() []string {
	out := []string{VPSKey(c.ID)}
	if c.Name != "" {
		out = append(out, NamePrefix+c.Name)
	}
	for _, a := range c.Addrs {
		out = append(out, IPPrefix+a)
	}
	if base, _, ok := c.uidRange(); ok {
		out = append(out, UIDKey(base))
	}
	return out
}

// uidRange is c.UIDs as numbers.
func (c Claim) uidRange() (base, size uint32, ok bool) {
	b, s, found := strings.Cut(c.UIDs, ":")
	if !found {
		return 0, 0, false
	}
	bn, err1 := strconv.ParseUint(b, 10, 32)
	sn, err2 := strconv.ParseUint(s, 10, 32)
	return uint32(bn), uint32(sn), err1 == nil && err2 == nil && sn > 0
}

// UIDValue is what the UID key of c holds: "SIZE ID".
func (c Claim) UIDValue() string {
	_, size, _ := c.uidRange()
	return fmt.Sprintf("%d %d", size, c.ID)
}

// Check refuses a claim whose parts would make malformed keys.
func (c Claim) Check() error {
	if c.ID == 0 {
		return fmt.Errorf("claim: VPS ID 0")
	}
	if strings.ContainsAny(c.Name, "/\x00") {
		return fmt.Errorf("claim: name %q", c.Name)
	}
	for _, a := range c.Addrs {
		if p, err := netip.ParseAddr(a); err != nil || p.String() != a {
			return fmt.Errorf("claim: address %q", a)
		}
	}
	if _, _, ok := c.uidRange(); c.UIDs != "" && !ok {
		return fmt.Errorf("claim: UID range %q", c.UIDs)
	}
	return nil
}

// Normalize sorts c's addresses and drops duplicates: equal claims compare equal.
func (c Claim) Normalize() Claim {
	c.Addrs = slices.Compact(slices.Sorted(slices.Values(c.Addrs)))
	if len(c.Addrs) == 0 {
		c.Addrs = nil
	}
	return c
}

// Record is /vpsctl/vps/ID: where VPS ID lives and what it holds.
type Record struct {
	Claim
	Host     string    `json:"host"`
	Template string    `json:"template,omitempty"`
	Created  time.Time `json:"created,omitzero"`
}

// Pending is a change of a VPS not yet settled: Keys are every key the change may have left
// holding the VPS (old and new), which the settling deletes unless the VPS's final claim has
// them.
type Pending struct {
	ID   uint32    `json:"id"`
	Node string    `json:"node"`
	Op   string    `json:"op"` // create, set, destroy
	Keys []string  `json:"keys"`
	PID  int       `json:"pid"` // the command that made it
	Time time.Time `json:"time"`
}

// Host is /vpsctl/hosts/NODE: what a host's agent registered.
type Host struct {
	Name        string    `json:"name"`
	Address     string    `json:"address"` // the host's address towards the cluster
	Version     string    `json:"version"` // vpsctl's
	Root        string    `json:"root"`    // its state root
	CPUs        int       `json:"cpus"`
	MemoryBytes uint64    `json:"memory_bytes"`
	VPSs        int       `json:"vpss"`
	Registered  time.Time `json:"registered"`
}

// Liveness is /vpsctl/alive/NODE, under the lease NODE's agent keeps alive.
type Liveness struct {
	PID     int    `json:"pid"`
	Root    string `json:"root"`
	Machine string `json:"machine"` // /etc/machine-id: which machine holds the name
	Lease   int64  `json:"lease"`
}

// UIDClaim is one claimed UID range.
type UIDClaim struct {
	Base, Size uint32
	ID         uint32
}
