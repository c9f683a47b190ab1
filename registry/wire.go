package registry

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/vpsctl/vpsctl/uid"
)

// The agent's protocol: one request per connection on STATE/cluster/agent.sock, a JSON Request
// from the command, a JSON Response from the agent, each one line. A command that does not need
// the answer (a settling that a later command would redo anyway) writes its request and
// closes; the agent carries it out all the same.

// Ops of a Request.
const (
	OpPrepare   = "prepare"   // the node's pending markers and the UID claims, from the agent's memory
	OpCreate    = "create"    // claim new VPS Claim with a pending marker, its UID range as Alloc asks
	OpClaim     = "claim"     // claim Claim of a changed VPS (Old: its current claim) with a pending marker
	OpSettle    = "settle"    // settle VPS ID's pending marker: Claim is its final claim, nil if gone
	OpMark      = "mark"      // a pending marker for destroying VPS ID (before the local destroy)
	OpInventory = "inventory" // every Record, host and marker: one etcd round trip
	OpHosts     = "hosts"     // every host and whether it is up
	OpLookup    = "lookup"    // the Record of VPS ID, or of the VPS named Name
	OpMove      = "move"      // make host To the owner of VPS ID (migration); Claim.UIDs: its range there, if remapped
	OpStop      = "stop"      // the agent gives up its lease and exits
)

// Request is a command's request to the agent.
type Request struct {
	Op       string    `json:"op"`
	Settings string    `json:"settings"` // Settings.Digest of the command's configuration
	PID      int       `json:"pid,omitempty"`
	Claim    *Claim    `json:"claim,omitempty"`
	Old      *Claim    `json:"old,omitempty"`
	Alloc    *UIDAlloc `json:"alloc,omitempty"`
	Template string    `json:"template,omitempty"`
	ID       uint32    `json:"id,omitempty"`
	Name     string    `json:"name,omitempty"`
	To       string    `json:"to,omitempty"`
}

// Kinds of a failed Response.
const (
	KindUnavailable = "unavailable" // etcd did not answer in time, or refused the agent
	KindConflict    = "conflict"    // Conflict says what another VPS holds
	KindUIDRace     = "uid-race"    // another host claimed a UID range meanwhile: UIDs are fresh
	KindPoolFull    = "pool-full"   // create: no free UID range (uid.ErrPoolFull)
	KindPending     = "pending"     // create: this node has unsettled markers (Pending); nothing claimed
	KindStale       = "stale-agent" // the agent runs other settings: it exits; start another
	KindNotFound    = "not-found"
	KindBad         = "bad" // a malformed request, or one the agent's node may not make
)

// Response is the agent's answer.
type Response struct {
	Kind     string      `json:"kind,omitempty"` // "" when it worked
	Error    string      `json:"error,omitempty"`
	Conflict *Conflict   `json:"conflict,omitempty"`
	Pending  []Pending   `json:"pending,omitempty"`
	UIDs     []UIDClaim  `json:"uids,omitempty"`
	Records  []Record    `json:"records,omitempty"`
	Hosts    []HostState `json:"hosts,omitempty"`
	Record   *Record     `json:"record,omitempty"`
	Claim    *Claim      `json:"claim,omitempty"` // create: what was claimed (its UID range)
}

// UIDAlloc asks the agent to choose a new VPS's UID range: Size IDs from the pool at PoolBase
// (PoolSize IDs), first fit, overlapping none of Used (this host's reservations and its VPSs'
// ranges) nor any range claimed in the cluster.
type UIDAlloc struct {
	PoolBase uint32      `json:"pool_base"`
	PoolSize uint32      `json:"pool_size"`
	Size     uint32      `json:"size"`
	Used     []uid.Range `json:"used,omitempty"`
}

// Conflict is a key another VPS holds.
type Conflict struct {
	What string `json:"what"` // id, name, ip, uid
	Key  string `json:"key"`  // the ID, name or address
	ID   uint32 `json:"id"`   // the VPS holding it
	Host string `json:"host"` // where that VPS lives ("" if unknown)
}

// ConflictError is a claim refused because another VPS holds part of it.
type ConflictError struct{ Conflict }

func (e *ConflictError) Error() string {
	where := "on host " + e.Host
	if e.Host == "" {
		where = "in the cluster"
	}
	switch e.What {
	case "id":
		return fmt.Sprintf("VPS %d exists %s", e.ID, where)
	case "name":
		return fmt.Sprintf("name %q is held by VPS %d %s", e.Key, e.ID, where)
	case "uid":
		return fmt.Sprintf("UID range %s overlaps VPS %d's %s", e.Key, e.ID, where)
	}
	return fmt.Sprintf("%s in use on host %s (VPS %d)", e.Key, strings.TrimPrefix(where, "on host "), e.ID)
}

// HostState is a registered host and whether its lease is alive.
type HostState struct {
	Host
	Up bool `json:"up"`
}

// Settings are what a host's agent runs with: its state root and the host configuration's
// cluster settings (hostconf: CLUSTER, CLUSTER_CERT, CLUSTER_KEY, CLUSTER_CA,
// CLUSTER_TIMEOUT, NODE). The agent registers its own build's version, which scripts/build.sh
// makes vpsctl's.
type Settings struct {
	Root      string
	Endpoints []string
	Cert      string
	Key       string
	CA        string
	Timeout   time.Duration
	Node      string
}

// Digest names s: an agent answers only commands whose settings have its digest (a changed
// configuration gets a new agent).
func (s Settings) Digest() string {
	h := sha256.New()
	fmt.Fprintf(h, "%q %q %q %q %q %v %q", s.Root, strings.Join(s.Endpoints, ","), s.Cert, s.Key, s.CA, s.Timeout, s.Node)
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// Args is the agent's command line for s (after the program name); ParseArgs reads it back.
func (s Settings) Args() []string {
	return []string{"agent", "--root", s.Root, "--endpoints", strings.Join(s.Endpoints, ","), "--cert", s.Cert,
		"--key", s.Key, "--ca", s.CA, "--timeout", s.Timeout.String(), "--node", s.Node}
}

// ParseArgs reads an agent's command line (Args, without the leading "agent").
func ParseArgs(args []string) (Settings, error) {
	var s Settings
	if len(args)%2 != 0 {
		return s, fmt.Errorf("agent: odd argument count")
	}
	for i := 0; i < len(args); i += 2 {
		v := args[i+1]
		switch args[i] {
		case "--root":
			s.Root = v
		case "--endpoints":
			if v != "" {
				s.Endpoints = strings.Split(v, ",")
			}
		case "--cert":
			s.Cert = v
		case "--key":
			s.Key = v
		case "--ca":
			s.CA = v
		case "--timeout":
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return s, fmt.Errorf("agent: --timeout %q", v)
			}
			s.Timeout = d
		case "--node":
			s.Node = v
		default:
			return s, fmt.Errorf("agent: unknown argument %q", args[i])
		}
	}
	if s.Root == "" || len(s.Endpoints) == 0 || s.Node == "" || s.Timeout == 0 {
		return s, fmt.Errorf("agent: --root, --endpoints, --node and --timeout are required")
	}
	return s, nil
}
