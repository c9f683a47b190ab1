package runtime

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/vpsctl/vpsctl/cgroup"
	"github.com/vpsctl/vpsctl/container"
	"github.com/vpsctl/vpsctl/disk"
	"github.com/vpsctl/vpsctl/eventlog"
	"github.com/vpsctl/vpsctl/fleet"
	"github.com/vpsctl/vpsctl/internal/fault"
	"github.com/vpsctl/vpsctl/internal/spec"
	"github.com/vpsctl/vpsctl/network"
	"github.com/vpsctl/vpsctl/registry"
	"github.com/vpsctl/vpsctl/store"
	"github.com/vpsctl/vpsctl/uts"
)

// SetOptions change a VPS's settings. On a running VPS, limits and addresses apply live and are
// saved only with Save (vzctl's rule); the hostname is always saved. On a stopped VPS
// everything is saved.
type SetOptions struct {
	Name         *string
	Hostname     *string
	Domainname   *string
	Limits       Limits
	Net          NetOptions
	Capabilities []string
	Devices      []string // extra device rules, replacing the saved ones (applies at next start)
	Features     []string // replacing the saved ones (nil: unchanged; next start)
	BindMountAdd []string // HOSTDIR:VPSDIR[:ro] (next start)
	BindMountDel []string // VPSDIR (next start)
	UserPasswd   []string // USER:PASSWORD, set inside the VPS (never saved)
	OnBoot       *string  // "yes" or "no" (saved, running or not)
	BootOrder    *string  // a number ("" unsets it)
	// DiskSpace is --diskspace SOFT[:HARD]: live on a running VPS (grow, or shrink if what it
	// uses fits), and always saved, as the image's size is; a stopped VPS without a disk image
	// gets one. DiskInodes (--diskinodes) is refused with a reason (see disk.Limits).
	DiskSpace  *string
	DiskInodes *string
	Save       bool
}

// Set applies o to VPS id. Every value is validated before anything changes.
func (r *Runtime) Set(ctx context.Context, id container.ID, o SetOptions) error {
	lk, err := r.St.LockVPS(ctx, id, "set")
	if err != nil {
		return err
	}
	defer lk.Unlock()
	s, err := r.Status(id)
	if err != nil {
		return err
	}
	if s.State == "deleted" {
		return fmt.Errorf("VPS %d: %w", id, store.ErrNotExist)
	}
	old := s.cfg
	next := *old
	if err := namespacesFor(old.Namespaces, len(o.Net.IPAdd) > 0 || len(o.Net.NetIfAdd) > 0, o.Hostname != nil || o.Domainname != nil); err != nil {
		return fmt.Errorf("VPS %d: %w", id, err)
	}
	if o.Name != nil && *o.Name != "" {
		if err := container.ValidateName(*o.Name); err != nil {
			return err
		}
		next.Name = *o.Name
	}
	if o.Hostname != nil {
		if err := uts.ValidateHostname(*o.Hostname); err != nil {
			return err
		}
		next.Hostname = *o.Hostname
	}
	if o.Domainname != nil {
		if err := uts.ValidateDomainname(*o.Domainname); err != nil {
			return err
		}
		next.Domainname = *o.Domainname
	}
	if o.Devices != nil {
		next.Devices = o.Devices
	}
	if o.Features != nil {
		f, err := spec.ParseFeatures(o.Features)
		if err != nil {
			return err
		}
		next.Features = f
	}
	if len(o.BindMountAdd) > 0 || len(o.BindMountDel) > 0 {
		b, err := r.bindMounts(next.BindMounts, o.BindMountAdd, o.BindMountDel)
		if err != nil {
			return err
		}
		next.BindMounts = b
	}
	if err := setBoot(&next, o.OnBoot, o.BootOrder); err != nil {
		return err
	}
	var dl disk.Limits
	if o.DiskSpace != nil || o.DiskInodes != nil {
		space, inodes := next.DiskSpace, ""
		if o.DiskSpace != nil {
			space = *o.DiskSpace
		}
		if o.DiskInodes != nil {
			inodes = *o.DiskInodes
		}
		if space == "" {
			return fmt.Errorf("--diskinodes on a VPS without --diskspace: %w", ErrBadValue)
		}
		if dl, err = diskLimits(space, inodes); err != nil {
			return err
		}
		next.DiskSpace = dl.Diskspace()
	}
	if err := o.Limits.apply(&next); err != nil {
		return err
	}
	if err := o.Net.validate(&next); err != nil {
		return err
	}
	if len(o.Net.IPAdd) > 0 {
		if err := network.CheckNftables(); err != nil { // as create: before anything changes
			return err
		}
	}
	for _, c := range o.Capabilities {
		cp, _, err := spec.ParseCapability(c)
		if err != nil {
			return err
		}
		next.Capabilities = slices.DeleteFunc(next.Capabilities, func(x string) bool {
			y, _, err := spec.ParseCapability(x)
			return err == nil && y == cp
		})
		next.Capabilities = append(next.Capabilities, c)
	}
	running := s.State == "running"
	if running && s.InitPID == 0 {
		return fmt.Errorf("VPS %d: rebooting, try again in a moment: %w", id, ErrNotRunning)
	}
	var users [][2]string
	for _, up := range o.UserPasswd {
		u, p, ok := strings.Cut(up, ":")
		if !ok || strings.ContainsAny(p, "\n\x00") {
			return fmt.Errorf("--userpasswd: want USER:PASSWORD: %w", ErrUserPasswd)
		}
		if !validUserName(u) {
			return fmt.Errorf("--userpasswd: user name %q: want 1..32 of [A-Za-z0-9._-], not starting with '-', '.' or a digit: %w", u, ErrUserPasswd)
		}
		if p == "" {
			return fmt.Errorf("--userpasswd %s: an empty password: %w", u, ErrUserPasswd)
		}
		users = append(users, [2]string{u, p})
	}
	if running && s.Suspended && (!o.Limits.Empty() || !o.Net.Empty() || o.Hostname != nil || o.Domainname != nil) {
		return fmt.Errorf("VPS %d: %w (resume it first)", id, ErrSuspended)
	}
	if next.DiskSpace != old.DiskSpace || (o.DiskSpace != nil && !r.hasImage(id)) {
		// First, and saved at once: what most often refuses (a size below the usage, which
		// changes nothing), and a change of the image that the config must not contradict.
		if err := r.setDisk(ctx, s, dl); err != nil {
			return err
		}
		withDisk := *old
		withDisk.DiskSpace = next.DiskSpace
		if err := r.St.SaveConfig(&withDisk); err != nil {
			return err
		}
	}
	gl, err := r.St.LockGlobal(ctx, fmt.Sprintf("set %d", id))
	if err != nil {
		return err
	}
	defer gl.Unlock()
	if len(o.Net.IPAdd) > 0 || len(o.Net.NetIfAdd) > 0 {
		others, err := r.St.Configs()
		if err != nil {
			return err
		}
		if err := r.checkAddrsFree(&next, others); err != nil {
			return err
		}
	}
	// In a cluster, the new name and addresses are claimed before anything changes here, and
	// the old ones released once the config is saved (cluster.go). Addresses added live only
	// (a running VPS, no --save) are claimed too: they are in use.
	oldClaim, newClaim := claimOf(old), claimOf(&next)
	if running && !o.Save {
		newClaim.Addrs = append(newClaim.Addrs, oldClaim.Addrs...)
		newClaim = newClaim.Normalize()
	}
	clustered := r.clustered(id) && !slices.Equal(oldClaim.Keys(), newClaim.Keys())
	settled := false
	if clustered {
		if _, err := r.clusterPrepare(ctx); err != nil {
			return err
		}
		if _, err := r.Cluster.Do(ctx, registry.Request{Op: registry.OpClaim, Claim: &newClaim, Old: &oldClaim, Template: old.Template}); err != nil {
			return clusterError(err)
		}
		defer func() {
			if !settled { // failed here: the local store still has the old config
				r.settleLater(ctx, id, &oldClaim)
			}
		}()
		fault.Point("set-claimed")
	}
	if next.Name != old.Name {
		if err := r.St.ClaimName(next.Name, next.ID); err != nil {
			return err
		}
	}

	if running {
		if err := r.applyLive(s, old, &next, o); err != nil {
			return err
		}
	}
	fault.Point("set-applied")
	// What is saved: everything when stopped; with --save or for identity (name, hostname)
	// when running.
	save := next
	if running && !o.Save {
		save = *old
		save.Name, save.Hostname, save.Domainname = next.Name, next.Hostname, next.Domainname
		save.Capabilities, save.Devices = next.Capabilities, next.Devices
		save.OnBoot, save.BootOrder = next.OnBoot, next.BootOrder
		save.DiskSpace = next.DiskSpace                                 // the image's size, changed already
		save.Features, save.BindMounts = next.Features, next.BindMounts // next start's, saved now
	}
	if err := r.St.SaveConfig(&save); err != nil {
		return err
	}
	fault.Point("set-saved")
	if clustered {
		// Waited for: once set returns, the old name and addresses are free for anyone.
		settled = true
		if _, err := r.Cluster.Do(ctx, registry.Request{Op: registry.OpSettle, ID: uint32(id), Claim: &newClaim}); err != nil {
			r.warn(id, []string{"changed; the release of its old name or addresses in the cluster registry is left to the next command: " + err.Error()})
		}
	}
	for _, up := range users {
		if err := r.setUserPassword(ctx, s, up[0], up[1]); err != nil {
			return err
		}
	}
	if next.Name != old.Name {
		r.St.ReleaseName(old.Name, old.ID)
	}
	keys := old.Changed(&next)
	if len(users) > 0 {
		keys = append(keys, "USERPASSWD") // which users, and their passwords, are not logged
	}
	r.emit(eventlog.Event{ID: uint32(id), Name: next.Name, Event: eventlog.Set, Keys: keys})
	return nil
}

// setBoot sets c's ONBOOT and BOOTORDER to onboot and bootorder where they are not nil, once
// both are checked (fleet's rules, vzctl's values).
func setBoot(c *store.Config, onboot, bootorder *string) error {
	if onboot != nil {
		if _, err := fleet.ParseOnBoot(*onboot); err != nil {
			return err
		}
	}
	if bootorder != nil {
		if _, err := fleet.ParseBootOrder(*bootorder); err != nil {
			return err
		}
	}
	if onboot != nil {
		c.OnBoot = *onboot
	}
	if bootorder != nil {
		c.BootOrder = *bootorder
	}
	return nil
}

func (r *Runtime) applyLive(s *Status, old, next *store.Config, o SetOptions) error {
	if o.Hostname != nil || o.Domainname != nil {
		if slices.Contains(next.Namespaces, "uts") {
			err := container.RunIn(s.InitPID, container.NSUTS, func() error {
				return uts.Apply(next.Hostname, next.Domainname)
			})
			if err != nil {
				return fmt.Errorf("set hostname: %w", err)
			}
		}
		if err := uts.WriteEtcHostname(fmt.Sprintf("/proc/%d/root", s.InitPID), next.Hostname); err != nil {
			return fmt.Errorf("write /etc/hostname: %w", err)
		}
	}
	if !o.Limits.Empty() {
		res, err := spec.Resources(next)
		if err != nil {
			return err
		}
		// Only what this command changes: a running VPS may carry live, unsaved limits from an
		// earlier set, which must stay. CPUs and CPU limit make one quota, so they go together.
		l := o.Limits
		if l.Memory == nil {
			res.MemoryBytes = nil
		}
		if l.Swap == nil {
			res.SwapBytes = nil
		}
		if l.CPUs == nil && l.CPULimit == nil {
			res.CPUs, res.CPULimitPct = nil, nil
		}
		if l.CPUUnits == nil {
			res.CPUUnits = nil
		}
		if l.NumProc == nil {
			res.NumProc = nil
		}
		if l.IOLimit == nil {
			res.IOLimitBps = nil
		}
		if l.IOWeight == nil {
			res.IOWeight = nil
		}
		res.Devices = nil // the allowlist changes at the next start
		cg, err := cgroup.New(spec.CgroupPath(next.ID))
		if err != nil {
			return err
		}
		if err := cg.Set(res); err != nil {
			return fmt.Errorf("apply limits: %w", err)
		}
	}
	if !o.Net.Empty() && slices.Contains(next.Namespaces, "net") {
		// The live addresses are the base, not the saved ones: earlier unsaved changes count.
		live, err := liveIPs(s.InitPID)
		if err != nil {
			return err
		}
		want := slices.Clone(live)
		for _, d := range o.Net.IPDel {
			if d == "all" {
				want = nil
				continue
			}
			if p, err := network.ParseIP(d); err == nil {
				want = slices.DeleteFunc(want, func(q netip.Prefix) bool { return q.Addr() == p.Addr() })
			}
		}
		for _, a := range o.Net.IPAdd {
			if p, err := network.ParseIP(a); err == nil && !slices.ContainsFunc(want, func(q netip.Prefix) bool { return q.Addr() == p.Addr() }) {
				want = append(want, p)
			}
		}
		var add, del []netip.Prefix
		for _, p := range want {
			if !slices.ContainsFunc(live, func(q netip.Prefix) bool { return q.Addr() == p.Addr() }) {
				add = append(add, p)
			}
		}
		for _, p := range live {
			if !slices.ContainsFunc(want, func(q netip.Prefix) bool { return q.Addr() == p.Addr() }) {
				del = append(del, p)
			}
		}
		if len(del) > 0 {
			if err := network.DelIPs(next.ID, s.InitPID, del); err != nil {
				return err
			}
		}
		if len(add) > 0 {
			if err := network.AddIPs(next.ID, s.InitPID, add); err != nil {
				return err
			}
			if nc, err := spec.Net(next); err == nil {
				r.warn(next.ID, network.Warnings(next.ID, nc))
			}
		}
		for _, n := range o.Net.NetIfDel {
			if err := network.DelNetIf(next.ID, s.InitPID, n); err != nil {
				return err
			}
		}
		for _, a := range o.Net.NetIfAdd {
			ni, err := network.ParseNetIf(a)
			if err != nil {
				return err
			}
			if err := network.AddNetIf(next.ID, s.InitPID, ni); err != nil {
				return err
			}
		}
		if o.Net.Nameservers != nil || o.Net.SearchDomains != nil {
			if err := network.WriteResolvConf(fmt.Sprintf("/proc/%d/root", s.InitPID), next.Nameservers, next.SearchDomains); err != nil {
				return err
			}
		}
	}
	return nil
}

// liveIPs returns the routed addresses a running VPS holds now (on its venet0).
func liveIPs(initPID int) ([]netip.Prefix, error) {
	links, err := network.Links(initPID)
	if err != nil {
		return nil, err
	}
	var out []netip.Prefix
	for _, l := range links {
		if l.Name != "venet0" {
			continue
		}
		for _, a := range l.Addrs {
			if p, err := netip.ParsePrefix(a); err == nil {
				out = append(out, p)
			}
		}
	}
	return out, nil
}

// validUserName reports whether u is a user name the guest's tools take everywhere (useradd's
// portable set): 1..32 of [A-Za-z0-9._-], not starting with '-', '.' or a digit.
func validUserName(u string) bool {
	if u == "" || len(u) > 32 || u[0] == '-' || u[0] == '.' || u[0] >= '0' && u[0] <= '9' {
		return false
	}
	for i := 0; i < len(u); i++ {
		c := u[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
