package runtime

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/vpsctl/vpsctl/container"
	"github.com/vpsctl/vpsctl/internal/fstree"
	"github.com/vpsctl/vpsctl/internal/idshift"
	"github.com/vpsctl/vpsctl/internal/spec"
	"github.com/vpsctl/vpsctl/internal/sysfile"
	"github.com/vpsctl/vpsctl/monitor"
	"github.com/vpsctl/vpsctl/network"
	"github.com/vpsctl/vpsctl/store"
	"github.com/vpsctl/vpsctl/template"
	"github.com/vpsctl/vpsctl/uid"
	"github.com/vpsctl/vpsctl/uts"
)

// A VPS made from another's files (a clone, a backup restored, a migration received) is
// claimed first, as create claims a new one: under the global lock its ID, name, UID range and
// addresses become its own, and it exists from then on, marked incomplete (incompleteFile).
// Its files arrive while its lock is held; only then is the mark removed. A start refuses an
// incomplete VPS (ErrIncomplete), so one whose copy was cut off (the command killed) can only
// be destroyed.

// incompleteFile marks a VPS whose files are still arriving; it names what makes it.
const incompleteFile = "incomplete"

// ErrIncomplete: the VPS's clone, restore from a backup or migration did not finish.
var ErrIncomplete = errors.New("VPS is incomplete (its clone, restore from a backup or migration did not finish: destroy it)")

// incoming is a claimed VPS whose files are arriving.
type incoming struct {
	r     *Runtime
	c     *store.Config // its config, with its own UID range
	lk    *store.Lock
	shift idshift.Shift // from the range its files are owned by to its own
	done  bool
	// source is the cluster host a migration of it comes from, whose registry record of the
	// VPS moves here at the commit (see incoming_cluster.go); "" otherwise.
	source string
}

// claimIncoming claims VPS c.ID with config c, whose files are owned by the UID range c.IDMap
// names (none: no user namespace). With keepRange that range stays the VPS's if it is free on
// this host (and, in a cluster, in the cluster); otherwise (or without keepRange) the VPS gets
// a free range and the files are shifted into it as they arrive. what says, in the mark and
// the lock, what makes the VPS; source is the cluster host a migration of it comes from ("":
// none; see incoming_cluster.go).
func (r *Runtime) claimIncoming(ctx context.Context, c *store.Config, keepRange bool, what, source string) (*incoming, error) {
	if c.ID == container.HostID {
		return nil, fmt.Errorf("%w: 0 is the host", container.ErrBadID)
	}
	if c.Name != "" {
		if err := container.ValidateName(c.Name); err != nil {
			return nil, err
		}
	}
	if err := uts.ValidateHostname(c.Hostname); err != nil {
		return nil, err
	}
	if _, err := spec.ParseNamespaces(c.Namespaces); err != nil {
		return nil, err
	}
	if _, err := spec.Resources(c); err != nil {
		return nil, err
	}
	if _, err := template.Rootfs(r.St, c.Template); err != nil {
		return nil, err
	}
	from, userns := uid.Range{}, slices.Contains(c.Namespaces, "user")
	if userns {
		var err error
		if from, err = uid.ParseRange(c.IDMap); err != nil {
			return nil, fmt.Errorf("config IDMAP: %w", err)
		}
	}
	lk, err := r.St.LockNewVPS(ctx, c.ID, what)
	if err != nil {
		return nil, err
	}
	in := &incoming{r: r, c: c, lk: lk}
	if err := in.claim(ctx, from, userns, keepRange, what, source); err != nil {
		if !r.St.Exists(c.ID) {
			lk.RemoveFile()
		}
		lk.Unlock()
		return nil, err
	}
	return in, nil
}

func (in *incoming) claim(ctx context.Context, from uid.Range, userns, keepRange bool, what, source string) error {
	r, c := in.r, in.c
	gl, err := r.St.LockGlobal(ctx, fmt.Sprintf("%s %d", what, c.ID))
	if err != nil {
		return err
	}
	defer gl.Unlock()
	if r.St.Exists(c.ID) {
		return fmt.Errorf("VPS %d: %w", c.ID, store.ErrExist)
	}
	others, err := r.St.Configs()
	if err != nil {
		return err
	}
	if c.Name != "" {
		if id, err := r.St.LookupName(c.Name); err == nil {
			return fmt.Errorf("name %q: VPS %d: %w", c.Name, id, store.ErrNameExist)
		}
	}
	if err := r.checkAddrsFree(c, others); err != nil {
		return err
	}
	var place clusterPlace
	if r.clustered(c.ID) {
		if place, err = r.incomingPlace(ctx, c.ID, source); err != nil {
			return err
		}
	}
	committed := false
	if place.fresh {
		defer func() {
			if !committed {
				// The claim may have been made: settled from the local store, where the VPS
				// is not.
				r.settleLater(ctx, c.ID, nil)
			}
		}()
	}
	var rootUID uid.HostID
	if userns {
		var used []uid.Range
		for _, oc := range others {
			if rg, err := uid.ParseRange(oc.IDMap); err == nil {
				used = append(used, rg)
			}
		}
		res, err := uid.ReadHostReservations(r.HostEtc)
		if err != nil {
			return err
		}
		used = append(append(used, uid.Reserved(res)...), place.others...)
		free := !slices.ContainsFunc(used, from.Overlaps)
		to := from
		switch {
		case place.fresh:
			keep := uid.Range{}
			if keepRange && free {
				keep = from
			}
			if to, err = r.claimNew(ctx, c, true, keep, from.Size, used); err != nil {
				return err
			}
		case !keepRange || !free:
			if to, err = uid.Allocate(r.Pool, used, from.Size); err != nil {
				return err
			}
		}
		in.shift, _ = idshift.New(from, to)
		c.IDMap, rootUID = to.String(), to.Host
	} else if place.fresh {
		if _, err := r.claimNew(ctx, c, false, uid.Range{}, 0, nil); err != nil {
			return err
		}
	}
	stage, err := r.St.StageDir("incoming")
	if err != nil {
		return err
	}
	defer func() {
		if !committed {
			os.RemoveAll(stage)
		}
	}()
	if err := sysfile.WriteFile(filepath.Join(stage, "vps.conf"), c.Format(), os.O_CREATE|os.O_TRUNC, 0o600); err != nil {
		return err
	}
	mark := fmt.Sprintf("%s (vpsctl PID %d)\n", what, os.Getpid())
	if place.source != "" {
		in.source = place.source
		mark += sourceNodeKey + place.source + "\n"
		if userns {
			mark += sourceUIDsKey + from.String() + "\n"
		}
	}
	if err := sysfile.WriteFile(filepath.Join(stage, incompleteFile), []byte(mark), os.O_CREATE|os.O_TRUNC, 0o600); err != nil {
		return err
	}
	priv := filepath.Join(stage, "private")
	if err := os.Mkdir(priv, 0o755); err != nil {
		return err
	}
	if err := os.Chown(priv, int(rootUID), int(rootUID)); err != nil {
		return err
	}
	for _, d := range []string{"work", "root", "lower"} {
		if err := os.Mkdir(filepath.Join(stage, d), 0o700); err != nil {
			return err
		}
	}
	if c.Name != "" {
		if err := r.St.ClaimName(c.Name, c.ID); err != nil {
			return err
		}
	}
	if err := r.St.Commit(stage, c.ID); err != nil {
		r.St.ReleaseName(c.Name, c.ID)
		return err
	}
	committed = true
	if place.fresh {
		final := claimOf(c)
		r.settleLater(ctx, c.ID, &final)
	}
	return nil
}

// dir is the VPS's directory (STATE/vps/ID), where its files are extracted.
func (in *incoming) dir() string { return in.r.St.VPSDir(in.c.ID) }

// extract reads a tar stream of the VPS's files (names relative to its directory: private/...)
// into it, shifting owners into its range.
func (in *incoming) extract(tr *tar.Reader) error {
	return extractInto(tr, in.dir(), in.shift)
}

// extractInto extracts every entry of tr into dir, shifting owners by shift.
func extractInto(tr *tar.Reader, dir string, shift idshift.Shift) error {
	x, err := fstree.NewExtractor(dir, shift)
	if err != nil {
		return err
	}
	if err := eachEntry(tr, func(hdr *tar.Header) error { return x.Entry(hdr, tr) }); err != nil {
		x.Close()
		return err
	}
	return x.Close()
}

// eachEntry calls f with every entry of tr in turn (its content is tr's to read), until the
// end of the stream or f's first error.
func eachEntry(tr *tar.Reader, f func(*tar.Header) error) error {
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := f(hdr); err != nil {
			return err
		}
	}
}

// complete removes the mark: the VPS is whole; its lock is let go.
func (in *incoming) complete() error {
	if err := os.Remove(filepath.Join(in.dir(), incompleteFile)); err != nil {
		return err
	}
	if err := syncDir(in.dir()); err != nil {
		return err
	}
	in.done = true
	in.lk.Unlock()
	return nil
}

// abandon destroys the VPS unless it was completed; it is deferred by every user.
func (in *incoming) abandon() {
	if in.done {
		return
	}
	in.done = true
	if err := in.r.removeIncoming(context.Background(), in.c, in.lk); err != nil {
		in.r.warn(in.c.ID, []string{"removing the incomplete VPS: " + err.Error()})
	}
	in.lk.Unlock()
}

// removeIncoming destroys incomplete VPS c (its lock lk held). A migration's VPS restored
// but never let go on holds its processes' TCP connections: it is cut from the network
// before it is killed, so that their peers get no reset from it (they are talking to the
// source's copy, which goes on).
func (r *Runtime) removeIncoming(ctx context.Context, c *store.Config, lk *store.Lock) error {
	if err := r.moveBack(ctx, c.ID); err != nil {
		return err
	}
	left := monitor.Leftovers{}
	if s, err := r.Status(c.ID); err == nil && s.State == "running" {
		if nc, err := spec.Net(c); err == nil {
			if err := network.Teardown(c.ID, nc); err != nil {
				r.warn(c.ID, []string{"network teardown: " + err.Error()})
			}
		}
		if err := r.stopLocked(ctx, c.ID, StopOptions{Kill: true}, &left); err != nil {
			return fmt.Errorf("kill: %w", err)
		}
	}
	if left.CG == nil {
		r.repair(c.ID)
	}
	return r.destroyLocked(ctx, c.ID, lk, c.Name, left, nil, false)
}

// AbortIncoming removes VPS id if it is incomplete (its clone, restore from a backup or
// migration cut off: `vpsctl migrate-abort`, which a migration's source runs at a destination
// that died before it could undo its copy), quietly as removeIncoming does. A complete VPS is
// refused (ErrBadValue).
func (r *Runtime) AbortIncoming(ctx context.Context, id container.ID) error {
	lk, err := r.St.LockVPS(ctx, id, "migrate-abort")
	if err != nil {
		return err
	}
	defer lk.Unlock()
	if r.checkComplete(id) == nil {
		return fmt.Errorf("VPS %d is complete: %w", id, ErrBadValue)
	}
	c, err := r.St.LoadConfig(id)
	if err != nil {
		return err
	}
	return r.removeIncoming(ctx, c, lk)
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// intoImage gives the VPS the disk image its config's limit (DISKSPACE) calls for, once its
// files have arrived in its private directory: they move into the image as `set --diskspace`
// moves a stopped VPS's (imageFromPrivate). Files that do not fit the limit are refused
// (disk.ErrTooSmall), and the VPS, still incomplete, is abandoned.
func (in *incoming) intoImage(ctx context.Context) error {
	if in.c.DiskSpace == "" {
		return nil
	}
	l, err := savedLimits(in.c)
	if err != nil {
		return fmt.Errorf("config DISKSPACE: %w", err)
	}
	return in.r.imageFromPrivate(ctx, in.c.ID, l)
}

// checkComplete refuses VPS id if its files are still arriving (or never all arrived).
func (r *Runtime) checkComplete(id container.ID) error {
	b, err := os.ReadFile(r.St.Path(id, incompleteFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	what := string(b)
	if n := len(what); n > 0 && what[n-1] == '\n' {
		what = what[:n-1]
	}
	return fmt.Errorf("VPS %d (%s): %w", id, what, ErrIncomplete)
}

// itoa formats an ID for messages and names.
func itoa(id container.ID) string { return strconv.FormatUint(uint64(id), 10) }
