package runtime

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vpsctl/vpsctl/container"
	"github.com/vpsctl/vpsctl/disk"
	"github.com/vpsctl/vpsctl/eventlog"
	"github.com/vpsctl/vpsctl/internal/fault"
	"github.com/vpsctl/vpsctl/internal/spec"
	"github.com/vpsctl/vpsctl/internal/sysfile"
	"github.com/vpsctl/vpsctl/monitor"
	"github.com/vpsctl/vpsctl/network"
	"github.com/vpsctl/vpsctl/registry"
	"github.com/vpsctl/vpsctl/store"
	"github.com/vpsctl/vpsctl/template"
	"github.com/vpsctl/vpsctl/uid"
	"github.com/vpsctl/vpsctl/uts"
)

// DefaultIDMapSize is the width of a VPS's host ID range: the 16-bit ID space of a classic system.
const DefaultIDMapSize = 65536

// CreateOptions are the settings of a new VPS.
type CreateOptions struct {
	ID         container.ID
	Name       string
	Template   string
	Hostname   string
	Domainname string
	Namespaces []string
	IDMapSize  uint32
	Pool       uid.Pool
	Limits     Limits
	Net        NetOptions
	Devices    []string // extra device rules (see ParseDevice)
	Features   []string // vzctl's --features: tun, fuse, ppp
	BindMounts []string // HOSTDIR:VPSDIR[:ro]
	DiskSpace  string   // vzctl's --diskspace SOFT[:HARD]: the VPS's files in a disk image of that size
	DiskInodes string   // vzctl's --diskinodes: refused (disk.ErrInodeLimit), parsed for a clear error
	Caps       []string // NAME:on|off bounding-set changes
	OnBoot     string   // "yes": start --all starts it ("" or "no": not)
	BootOrder  string   // start --all's order: higher first ("": 0)
}

// Create records a new VPS's config and prepares its private area. It does not start it.
// Either the VPS exists completely afterwards or nothing at all was changed.
func (r *Runtime) Create(ctx context.Context, o CreateOptions) error {
	if o.ID == container.HostID {
		return fmt.Errorf("%w: 0 is the host", container.ErrBadID)
	}
	c := &store.Config{ID: o.ID, Name: o.Name, Template: o.Template, Hostname: o.Hostname, Domainname: o.Domainname}
	if o.Name != "" {
		if err := container.ValidateName(o.Name); err != nil {
			return err
		}
	}
	if c.Hostname == "" {
		c.Hostname = fmt.Sprintf("vps%d", o.ID)
		if o.Name != "" {
			c.Hostname = o.Name
		}
	}
	if err := uts.ValidateHostname(c.Hostname); err != nil {
		return err
	}
	if err := uts.ValidateDomainname(c.Domainname); err != nil {
		return err
	}
	ns, err := spec.ParseNamespaces(o.Namespaces)
	if err != nil {
		return err
	}
	c.Namespaces = ns
	if err := namespacesFor(ns, len(o.Net.IPAdd) > 0 || len(o.Net.NetIfAdd) > 0, o.Hostname != "" || o.Domainname != ""); err != nil {
		return err
	}
	if o.IDMapSize == 0 && slices.Contains(ns, "user") {
		o.IDMapSize = r.IDMapSize // the host's; 0 too: DefaultIDMapSize
	}
	c.Devices = o.Devices
	if c.Features, err = spec.ParseFeatures(o.Features); err != nil {
		return err
	}
	if c.BindMounts, err = r.bindMounts(nil, o.BindMounts, nil); err != nil {
		return err
	}
	for _, cp := range o.Caps {
		if _, _, err := spec.ParseCapability(cp); err != nil {
			return err
		}
	}
	c.Capabilities = o.Caps
	if err := setBoot(c, &o.OnBoot, &o.BootOrder); err != nil {
		return err
	}
	var dl disk.Limits
	if o.DiskSpace != "" || o.DiskInodes != "" {
		if o.DiskSpace == "" {
			return fmt.Errorf("--diskinodes without --diskspace: %w", ErrBadValue)
		}
		if dl, err = diskLimits(o.DiskSpace, o.DiskInodes); err != nil {
			return err
		}
		c.DiskSpace = dl.Diskspace()
	}
	if err := o.Limits.apply(c); err != nil {
		return err
	}
	r.Defaults.Fill(c)
	if _, err := spec.Resources(c); err != nil { // the defaults too
		return err
	}
	if err := o.Net.validate(c); err != nil {
		return err
	}
	if len(c.IPs) > 0 {
		// Routed addresses are guarded by vpsctl's nftables table (network.SetSourceFilter):
		// refused here, not at the first start, on a host without nft.
		if err := network.CheckNftables(); err != nil {
			return err
		}
	}
	if err := template.ValidateName(o.Template); err != nil {
		return err
	}
	if _, err := template.Rootfs(r.St, o.Template); err != nil {
		return err
	}
	size := o.IDMapSize
	if size == 0 {
		size = DefaultIDMapSize
	}
	if !slices.Contains(ns, "user") && o.IDMapSize != 0 {
		return fmt.Errorf("--idmap-size needs a user namespace: %w", ErrBadValue)
	}
	if slices.Contains(ns, "user") && size < DefaultIDMapSize {
		// Below that, the guest's own system IDs (tty's group, nobody's 65534) are unmapped and
		// its boot fails half-way.
		return fmt.Errorf("--idmap-size %d: a VPS needs at least %d IDs: %w", size, DefaultIDMapSize, ErrBadValue)
	}
	pool := o.Pool
	if pool.Size == 0 {
		pool = r.Pool
	}

	// The global lock makes the ID, the name, the UID range and the addresses one atomic claim.
	fault.Mark("create-validated")
	gl, err := r.St.LockGlobal(ctx, fmt.Sprintf("create %d", o.ID))
	if err != nil {
		return err
	}
	defer gl.Unlock()
	if r.St.Exists(o.ID) {
		return fmt.Errorf("VPS %d: %w", o.ID, store.ErrExist)
	}
	others, err := r.St.Configs()
	if err != nil {
		return err
	}
	clustered := r.clustered(o.ID)
	if !clustered {
		if err := r.checkAddrsFree(c, others); err != nil {
			return err
		}
	}
	var used []uid.Range
	user := slices.Contains(ns, "user")
	if user {
		for _, oc := range others {
			if rg, err := uid.ParseRange(oc.IDMap); err == nil {
				used = append(used, rg)
			}
		}
		// Host users' IDs and subordinate ranges are no VPS's: a host user inside a VPS's range
		// could signal its processes and own its files.
		res, err := uid.ReadHostReservations(r.HostEtc)
		if err != nil {
			return err
		}
		used = append(used, uid.Reserved(res)...)
	}
	if clustered {
		return r.createClustered(ctx, o, c, others, user, pool, size, used, dl)
	}
	var rootUID uid.HostID
	if user {
		rg, err := uid.Allocate(pool, used, size)
		if err != nil {
			return err
		}
		c.IDMap = rg.String()
		rootUID = rg.Host
	}
	stage, err := r.St.StageDir("create")
	if err != nil {
		return err
	}
	committed := false
	defer func() {
		if !committed {
			os.RemoveAll(stage)
		}
	}()
	if err := r.stageDirs(stage); err != nil {
		return err
	}
	if err := r.stageFiles(stage, c, rootUID); err != nil {
		return err
	}
	if err := r.stageDisk(ctx, stage, c, dl); err != nil {
		return err
	}
	if err := r.commitCreate(stage, o.ID, o.Name); err != nil {
		return err
	}
	committed = true
	return nil
}

// createClustered is Create's commit in a cluster (cluster.go): the agent chooses the UID
// range (user: the VPS has a user namespace) among used and the cluster's, and claims
// everything in one etcd transaction while the addresses are checked against the host and
// the other VPSs here (others) and the directory is staged (the caller waits for the longer
// of the two, not for both); the local commit follows, and the settling is sent without
// waiting. The caller holds the global lock.
func (r *Runtime) createClustered(ctx context.Context, o CreateOptions, c *store.Config, others []*store.Config, user bool, pool uid.Pool, size uint32, used []uid.Range, dl disk.Limits) error {
	req := registry.Request{Op: registry.OpCreate, Template: c.Template}
	cl := claimOf(c)
	req.Claim = &cl
	if user {
		req.Alloc = &registry.UIDAlloc{PoolBase: uint32(pool.Base), PoolSize: pool.Size, Size: size, Used: used}
	}
	call, err := r.Cluster.Go(ctx, req)
	if err != nil {
		return err
	}
	fault.Point("create-claiming")
	stage := ""
	err = r.checkAddrsFree(c, others)
	if err == nil {
		if stage, err = r.St.StageDir("create"); err == nil {
			if err = r.stageDirs(stage); err == nil {
				err = r.stageDisk(ctx, stage, c, dl)
			}
		}
	}
	committed := false
	defer func() {
		if !committed {
			if stage != "" {
				os.RemoveAll(stage)
			}
			// The claim may have been made (an answer lost, a failure after it): settled
			// from the local store, where the VPS is not.
			r.settleLater(ctx, o.ID, nil)
		}
	}()
	if err != nil {
		call.Abandon()
		return err
	}
	resp, err := call.Wait()
	if resp, err = r.afterPending(ctx, req, resp, err); err != nil {
		return err
	}
	fault.Point("create-claimed")
	var rootUID uid.HostID
	if user {
		rg, err := uid.ParseRange(resp.Claim.UIDs)
		if err != nil {
			return fmt.Errorf("cluster agent: UID range %q: %w", resp.Claim.UIDs, err)
		}
		c.IDMap, rootUID = rg.String(), rg.Host
	}
	if err := r.stageFiles(stage, c, rootUID); err != nil {
		return err
	}
	if err := r.commitCreate(stage, o.ID, o.Name); err != nil {
		return err
	}
	committed = true
	final := claimOf(c)
	r.settleLater(ctx, o.ID, &final)
	fault.Point("create-settled")
	return nil
}

// stageDirs makes a new VPS's private area (owned by root until stageFiles gives it to the
// VPS's root), work and mount directories in staging directory stage.
func (r *Runtime) stageDirs(stage string) error {
	if err := os.Mkdir(filepath.Join(stage, "private"), 0o755); err != nil {
		return err
	}
	for _, d := range []string{"work", "root", "lower"} {
		if err := os.Mkdir(filepath.Join(stage, d), 0o700); err != nil {
			return err
		}
	}
	return nil
}

// stageDisk builds new VPS c's disk image (--diskspace) in staging directory stage: the VPS
// appears with its image or not at all.
func (r *Runtime) stageDisk(ctx context.Context, stage string, c *store.Config, dl disk.Limits) error {
	if c.DiskSpace == "" {
		return nil
	}
	return disk.Create(ctx, filepath.Join(stage, monitor.DiskImage), dl)
}

// stageFiles writes new VPS c's config into staging directory stage, and gives its private
// area to the VPS's root (host ID rootUID): the private area is the overlay's upper layer,
// whose root directory is the VPS's "/".
func (r *Runtime) stageFiles(stage string, c *store.Config, rootUID uid.HostID) error {
	if err := sysfile.WriteFile(filepath.Join(stage, "vps.conf"), c.Format(), os.O_CREATE|os.O_TRUNC, 0o600); err != nil {
		return err
	}
	return os.Chown(filepath.Join(stage, "private"), int(rootUID), int(rootUID))
}

// bindMounts is the BINDMOUNT list cur with add (HOSTDIR:VPSDIR[:ro], each checked: see
// spec.ParseBindMount; its host directory must exist) put in, replacing one at the same VPS
// path, and the VPS paths in del taken out (each must be there).
func (r *Runtime) bindMounts(cur, add, del []string) ([]string, error) {
	out := slices.Clone(cur)
	vpsPath := func(s string) string {
		b, err := spec.ParseBindMount(s, "")
		if err != nil {
			return s
		}
		return b.VPS
	}
	for _, d := range del {
		i := slices.IndexFunc(out, func(s string) bool { return vpsPath(s) == d })
		if i < 0 {
			return nil, fmt.Errorf("--bindmount-del %s: no bind mount there: %w", d, ErrBadValue)
		}
		out = slices.Delete(out, i, i+1)
	}
	for _, a := range add {
		b, err := spec.ParseBindMount(a, r.St.Root)
		if err != nil {
			return nil, err
		}
		if fi, err := os.Stat(b.Host); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("--bindmount %s: %s is not a directory on the host: %w", a, b.Host, ErrBadValue)
		}
		// What is bound is where the path leads: a link into /proc or the state root is
		// refused as the path itself would be, and the saved path is the link's target.
		real, err := filepath.EvalSymlinks(b.Host)
		if err != nil {
			return nil, fmt.Errorf("--bindmount %s: %w", a, err)
		}
		if real != b.Host {
			rb := b
			rb.Host = real
			if b, err = spec.ParseBindMount(rb.String(), r.St.Root); err != nil {
				return nil, fmt.Errorf("--bindmount %s leads to %s: %w", a, real, err)
			}
		}
		out = slices.DeleteFunc(out, func(s string) bool { return vpsPath(s) == b.VPS })
		out = append(out, b.String())
	}
	return out, nil
}

// commitCreate makes the staged directory stage VPS id, named name ("": none): the name is
// claimed, then the directory renamed into place (the commit), and the creation logged. On an
// error nothing of it is left but the staged directory, the caller's to remove.
func (r *Runtime) commitCreate(stage string, id container.ID, name string) error {
	fault.Point("create-staged")
	if name != "" {
		if err := r.St.ClaimName(name, id); err != nil {
			return err
		}
	}
	fault.Point("create-named")
	if err := r.St.Commit(stage, id); err != nil {
		r.St.ReleaseName(name, id)
		return err
	}
	fault.Point("create-committed")
	r.event(id, name, eventlog.Created, "")
	return nil
}

// namespacesFor refuses settings that a VPS with namespaces ns would never apply: addresses
// or interfaces (net) without a network namespace, a host or domain name (uts) without a UTS
// namespace. Recorded, they would show in list and status as if they held.
func namespacesFor(ns []string, net, uts bool) error {
	if net && !slices.Contains(ns, "net") {
		return fmt.Errorf("addresses and interfaces need the VPS's own network namespace (net, not in --namespaces %s): %w", strings.Join(ns, ","), ErrBadValue)
	}
	if uts && !slices.Contains(ns, "uts") {
		return fmt.Errorf("a host or domain name needs the VPS's own UTS namespace (uts, not in --namespaces %s): %w", strings.Join(ns, ","), ErrBadValue)
	}
	return nil
}
