package runtime

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vpsctl/vpsctl/cgroup"
	"github.com/vpsctl/vpsctl/container"
	"github.com/vpsctl/vpsctl/criu"
	"github.com/vpsctl/vpsctl/disk"
	"github.com/vpsctl/vpsctl/internal/fault"
	"github.com/vpsctl/vpsctl/internal/fstree"
	"github.com/vpsctl/vpsctl/internal/idshift"
	"github.com/vpsctl/vpsctl/internal/spec"
	"github.com/vpsctl/vpsctl/monitor"
	"github.com/vpsctl/vpsctl/network"
	"github.com/vpsctl/vpsctl/pidns"
	"github.com/vpsctl/vpsctl/registry"
	"github.com/vpsctl/vpsctl/store"
	"github.com/vpsctl/vpsctl/template"
	"github.com/vpsctl/vpsctl/uid"
	"golang.org/x/sys/unix"
)

var (
	// ErrMigrate: a migration failed; the VPS is on the source (running if it ran), as the
	// message says.
	ErrMigrate = errors.New("migration failed")
	// ErrMigrateUnknown: the destination was told to run the VPS and did not say whether it
	// does; the VPS is stopped on the source, its checkpoint kept there (the message says
	// where, and how to look at the destination).
	ErrMigrateUnknown = errors.New("migration's end unknown")
)

// MigrateOptions describe a migration.
type MigrateOptions struct {
	Dest       Dest
	DestRoot   string   // the destination's state root ("" = its default)
	DestVPSCTL string   // the vpsctl program there ("" = vpsctl on its PATH; local: this program)
	SSHOptions []string // passed to ssh as -o OPTION
	Progress   io.Writer
	// Meter, if a terminal, shows the bytes sent and the rate.
	Meter *os.File
}

// MigrateResult is what a migration did.
type MigrateResult struct {
	ID           container.ID `json:"id"`
	Dest         string       `json:"dest"`
	Live         bool         `json:"live"` // the VPS ran, and runs on there
	IDMap        string       `json:"idmap,omitempty"`
	Template     string       `json:"template"`      // its name there
	TemplateSent bool         `json:"template_sent"` // the destination lacked it
	Bytes        int64        `json:"bytes"`         // sent
	Seconds      float64      `json:"seconds"`
	// Downtime is from the freeze of the checkpoint to the processes running there; its parts:
	// the dump, the copy of the last changes and the images, the restore.
	Downtime       float64 `json:"downtime,omitempty"`
	DumpSeconds    float64 `json:"dump_seconds,omitempty"`
	CopySeconds    float64 `json:"copy_seconds,omitempty"`
	RestoreSeconds float64 `json:"restore_seconds,omitempty"`
	InitPID        int     `json:"init_pid,omitempty"` // there
}

// Migrate moves VPS id to another host (or state root): offline for a stopped VPS; for a
// running one, its files are copied while it runs, then it is checkpointed (with its TCP
// connections), what changed since and the images are copied, and it is restored there. The
// destination gets the VPS's template if it lacks it, keeps the VPS's UID range if it is free
// there (else the files and images are shifted into a free one), and checks the addresses
// before the VPS stops here. On success the VPS is gone here; on failure it is here (running
// if it ran) or, if the destination's last answer was lost, the error says so (ErrMigrateUnknown).
func (r *Runtime) Migrate(ctx context.Context, id container.ID, o MigrateOptions) (*MigrateResult, error) {
	lk, err := r.St.LockVPS(ctx, id, "migrate")
	if err != nil {
		return nil, err
	}
	defer lk.Unlock()
	if err := r.checkComplete(id); err != nil {
		return nil, err
	}
	s, err := r.Status(id)
	if err != nil {
		return nil, err
	}
	live := s.State == "running"
	if live {
		if b := vpsBlockers(s.InitPID, true); len(b) > 0 {
			return nil, &BlockedError{ID: id, Blockers: b}
		}
	}
	conf, err := os.ReadFile(r.St.Path(id, "vps.conf"))
	if err != nil {
		return nil, err
	}
	fp, err := template.Fingerprint(r.St, s.Template)
	if err != nil {
		return nil, err
	}
	progress := progressOr(o.Progress)
	m := &migration{r: r, id: id, lk: lk, o: o, progress: progress, res: &MigrateResult{ID: id, Dest: o.Dest.String(), Live: live}}
	t0 := time.Now()
	if err := m.dial(ctx); err != nil {
		return nil, m.failed(err, "")
	}
	defer m.hangUp()
	stillHere := "not moved"
	if live {
		stillHere = "still running here, not moved"
	}
	hello := wireMsg{Op: "hello", Version: migrateVersion, ID: uint32(id), Config: string(conf), Template: s.Template,
		TemplateFP: fp, TemplateSource: template.Source(r.St, s.Template), Live: live}
	if r.clustered(id) {
		hello.Node = r.Cluster.Settings.Node
	}
	if err := m.c.send(hello); err != nil {
		return nil, m.failed(err, stillHere)
	}
	ready, err := m.c.recv("ready")
	if err != nil {
		return nil, m.failed(err, stillHere)
	}
	m.res.Template = ready.TemplateAs
	if ready.NeedTemplate {
		fmt.Fprintf(progress, "sending template %s to %s (as %s)\n", s.Template, o.Dest, ready.TemplateAs)
		rootfs, err := template.Rootfs(r.St, s.Template)
		if err == nil {
			err = m.c.send(wireMsg{Op: "template"})
		}
		if err == nil {
			err = m.sendTree(rootfs, fstree.WriteOptions{})
		}
		if err != nil {
			return nil, m.failed(err, stillHere)
		}
		m.res.TemplateSent = true
	}
	claimed, err := m.c.recv("claimed")
	if err != nil {
		return nil, m.failed(err, stillHere)
	}
	m.res.IDMap = claimed.IDMap
	m.claimed = claimed
	if claimed.IDMap != s.IDMap {
		fmt.Fprintf(progress, "UID range %s is taken there: VPS %d gets %s (files shifted)\n", s.IDMap, id, claimed.IDMap)
	}
	// A live migration reads the files again after the dump: they are held until then.
	priv, done, err := r.privateTree(s)
	if err != nil {
		return nil, m.failed(err, stillHere)
	}
	release := sync.OnceFunc(done)
	defer release()
	inv := fstree.Inventory{}
	fmt.Fprintf(progress, "copying VPS %d's files to %s\n", id, o.Dest)
	err = m.c.send(wireMsg{Op: "files"})
	if err == nil {
		err = m.sendTree(priv, fstree.WriteOptions{Prefix: "private", Record: inv})
	}
	if err == nil {
		_, err = m.c.recv("ok")
	}
	if err != nil {
		return nil, m.failed(err, stillHere)
	}
	if !live {
		release()
		if err := m.moveRecord(ctx); err != nil {
			return nil, m.failed(err, stillHere)
		}
		if err := m.c.send(wireMsg{Op: "commit"}); err != nil {
			return nil, m.failed(err, stillHere)
		}
		if _, err := m.c.recv("done"); err != nil {
			// Whether the commit landed is unknown: ask.
			if st := m.destState(ctx); st != "stopped" {
				return nil, fmt.Errorf("VPS %d: %w: it is stopped here; on %s it is %s (%v): destroy the one not wanted",
					id, ErrMigrateUnknown, o.Dest, st, err)
			}
		}
		m.res.Seconds = time.Since(t0).Seconds()
		return m.res, m.removeHere(ctx)
	}
	return m.res, m.live(ctx, s, priv, release, inv, t0)
}

// live is the rest of a running VPS's migration, once its files are there: priv is where they
// are read again after the dump (see privateTree), release lets go of it.
func (m *migration) live(ctx context.Context, s *Status, priv string, release func(), inv fstree.Inventory, t0 time.Time) error {
	r, id, o := m.r, m.id, m.o
	if s.Suspended {
		if cg, err := cgroup.New(spec.CgroupPath(id)); err == nil {
			cg.Thaw() // criu freezes the tree itself
		}
	}
	images := r.St.Path(id, "migrate-"+strconv.Itoa(os.Getpid()))
	tFreeze := time.Now()
	if _, err := r.dump(ctx, s, images, dumpSpec{tcp: true}, m.progress); err != nil {
		return m.failed(err, "still running here, not moved")
	}
	// From here the VPS is stopped here: every failure restores it here, unless it may run
	// there.
	m.images = images
	m.res.DumpSeconds = time.Since(tFreeze).Seconds()
	tCopy := time.Now()
	now := fstree.Inventory{}
	err := m.sendFinal(priv, images, inv, now)
	// Before anything can restore the VPS here: a disk image held here could not be mounted.
	release()
	m.res.CopySeconds = time.Since(tCopy).Seconds()
	if err != nil {
		return m.back(ctx, err)
	}
	tRestore := time.Now()
	restored, err := m.c.recv("restored")
	if err != nil {
		return m.back(ctx, err)
	}
	if err := m.moveRecord(ctx); err != nil {
		return m.back(ctx, err)
	}
	if m.moved {
		fault.Point("migrate-moved")
	}
	if err := m.c.send(wireMsg{Op: "go"}); err != nil {
		return m.back(ctx, err)
	}
	m.wentThere = true
	running, err := m.c.recv("running")
	if err != nil {
		// The answer is lost: the destination may have let the VPS run, or died before.
		switch st := m.destState(ctx); st {
		case "running":
			running.InitPID = restored.InitPID
		case "stopped", "deleted", "stopped incomplete":
			return m.back(ctx, err)
		default:
			return fmt.Errorf("VPS %d: %w: it is stopped here (its checkpoint kept in %s); on %s it is %s (%v): if it runs there, destroy it here; else destroy it there and `vpsctl restore %d --dir %s` here",
				id, ErrMigrateUnknown, images, o.Dest, st, err, id, images)
		}
	}
	tRun := time.Now()
	m.res.RestoreSeconds = tRun.Sub(tRestore).Seconds()
	m.res.Downtime = tRun.Sub(tFreeze).Seconds()
	m.res.InitPID = running.InitPID
	m.res.Seconds = tRun.Sub(t0).Seconds()
	return m.removeHere(ctx)
}

// migration is the source's side of one migration.
type migration struct {
	r        *Runtime
	id       container.ID
	lk       *store.Lock
	o        MigrateOptions
	progress io.Writer
	res      *MigrateResult
	cmd      *exec.Cmd
	c        *conn
	sent     *countWriter
	stderr   *tailWriter
	meter    *progressMeter
	// images is the checkpoint taken here (a live migration past its dump); wentThere: the
	// destination was told to let the VPS run.
	images    string
	wentThere bool
	// claimed is the destination's claim of the VPS; moved: the registry's record of it was
	// moved there (moveRecord).
	claimed wireMsg
	moved   bool
}

// moveRecord moves the cluster registry's record of the VPS to the destination, if that is a
// host of the same cluster which claimed the VPS expecting it (see incoming_cluster.go): the
// commit, just before the destination is told to keep the VPS. Until then a failure leaves
// the record here; after it, a destination that abandons its copy moves the record back.
func (m *migration) moveRecord(ctx context.Context) error {
	if m.claimed.Node == "" || !m.r.clustered(m.id) {
		return nil
	}
	req := registry.Request{Op: registry.OpMove, ID: uint32(m.id), To: m.claimed.Node, Claim: &registry.Claim{ID: uint32(m.id), UIDs: m.claimed.IDMap}}
	if _, err := m.r.Cluster.Do(ctx, req); err != nil {
		return fmt.Errorf("moving its record in the cluster registry to host %s: %w", m.claimed.Node, err)
	}
	m.moved = true
	return nil
}

// destCommand is the command line that runs vpsctl on the destination with args.
func (m *migration) destCommand(ctx context.Context, args ...string) (*exec.Cmd, error) {
	prog := m.o.DestVPSCTL
	if m.o.DestRoot != "" {
		args = append([]string{"--root", m.o.DestRoot}, args...)
	}
	if m.o.Dest.Local {
		if prog == "" {
			self, err := os.Executable()
			if err != nil {
				return nil, err
			}
			prog = self
		}
		return exec.CommandContext(ctx, prog, args...), nil
	}
	if prog == "" {
		prog = "vpsctl"
	}
	sshArgs := []string{"-T", "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=6"}
	for _, opt := range m.o.SSHOptions {
		sshArgs = append(sshArgs, "-o", opt)
	}
	if m.o.Dest.Port != 0 {
		sshArgs = append(sshArgs, "-p", strconv.Itoa(m.o.Dest.Port))
	}
	if m.o.Dest.User != "" {
		sshArgs = append(sshArgs, "-l", m.o.Dest.User)
	}
	line := []string{shellQuote(prog)}
	for _, a := range args {
		line = append(line, shellQuote(a))
	}
	sshArgs = append(sshArgs, m.o.Dest.Host, "--", strings.Join(line, " "))
	return exec.CommandContext(ctx, "ssh", sshArgs...), nil
}

// dial starts migrate-receive on the destination.
func (m *migration) dial(ctx context.Context) error {
	cmd, err := m.destCommand(context.WithoutCancel(ctx), "migrate-receive")
	if err != nil {
		return err
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	m.stderr = &tailWriter{max: 4096}
	cmd.Stderr = m.stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: %w", cmd.Path, err)
	}
	m.cmd = cmd
	m.sent = &countWriter{w: in}
	m.c = newConn(out, m.sent)
	m.meter = startProgress(m.o.Meter, "migration of VPS "+itoa(m.id)+" to "+m.o.Dest.String(), m.sent.n.Load)
	return nil
}

// hangUp ends the connection: the destination undoes what was not committed.
func (m *migration) hangUp() {
	m.meter.end()
	if m.cmd == nil {
		return
	}
	if w, ok := m.sent.w.(io.Closer); ok { // the destination's input ends
		w.Close()
	}
	done := make(chan struct{})
	go func() { m.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second): // its undo of a restored VPS is bounded well below
		m.cmd.Process.Kill()
		<-done
	}
	m.cmd = nil
	m.res.Bytes = m.sent.n.Load()
}

// sendTree sends the tree at root as a data stream.
func (m *migration) sendTree(root string, o fstree.WriteOptions) error {
	sw := streamWriter{c: m.c}
	tw := tar.NewWriter(sw)
	if err := fstree.Write(tw, root, o); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return sw.Close()
}

// sendFinal sends what changed in the private area since inv (recording now) and the images.
func (m *migration) sendFinal(priv, images string, inv, now fstree.Inventory) error {
	// Walk first to know what is gone; the walk's writes go to the stream at once after.
	sw := streamWriter{c: m.c}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := fstree.Write(tw, priv, fstree.WriteOptions{Prefix: "private", Since: inv, Record: now}); err != nil {
		return err
	}
	var removed []string
	for rel := range inv {
		if _, ok := now[rel]; !ok {
			removed = append(removed, rel)
		}
	}
	slices.Sort(removed)
	if err := m.c.send(wireMsg{Op: "final", Removed: removed}); err != nil {
		return err
	}
	if _, err := sw.Write(buf.Bytes()); err != nil {
		return err
	}
	tw = tar.NewWriter(sw)
	if err := fstree.Write(tw, images, fstree.WriteOptions{Prefix: "checkpoint"}); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return sw.Close()
}

// failed is a failure while the VPS is still as it was here (where says so).
func (m *migration) failed(err error, where string) error {
	msg := fmt.Sprintf("VPS %d: %v", m.id, m.withRemote(err))
	if where != "" {
		msg = fmt.Sprintf("VPS %d %s: %v", m.id, where, m.withRemote(err))
	}
	return &migrateError{msg: msg, errs: []error{ErrMigrate, err}}
}

// back restores the VPS here from its checkpoint after the destination failed (and undid its
// part) before it let the VPS run.
func (m *migration) back(ctx context.Context, cause error) error {
	m.hangUp() // the destination kills and removes its copy
	if st := m.destState(ctx); strings.HasSuffix(st, " incomplete") {
		// The destination died before it could undo its copy, which was never let go on (no
		// go was sent, or it was lost unanswered with the copy still incomplete there): it is
		// removed there before the VPS runs here again.
		if cmd, err := m.destCommand(ctx, "migrate-abort", itoa(m.id)); err == nil {
			if out, err := cmd.CombinedOutput(); err != nil {
				fmt.Fprintf(m.progress, "removing the copy at %s: %v: %s\n", m.o.Dest, err, strings.TrimSpace(string(out)))
			}
		}
	}
	fmt.Fprintf(m.progress, "migration failed (%v): restoring VPS %d here\n", m.withRemote(cause), m.id)
	_, err := m.r.restore(ctx, m.lk, m.id, m.images, restoreSpec{}, m.progress)
	if err != nil {
		return &migrateError{msg: fmt.Sprintf("VPS %d is stopped here (its checkpoint kept in %s; restore it with `vpsctl restore %d --dir %s`): migration failed: %v; restoring it here failed: %v",
			m.id, m.images, m.id, m.images, m.withRemote(cause), err), errs: []error{ErrMigrate, cause}}
	}
	os.RemoveAll(m.images)
	return &migrateError{msg: fmt.Sprintf("VPS %d is running here again (restored, not moved): %v", m.id, m.withRemote(cause)),
		errs: []error{ErrMigrate, cause}}
}

// withRemote adds the destination's last error output to err.
func (m *migration) withRemote(err error) error {
	if m.stderr == nil {
		return err
	}
	if t := strings.TrimSpace(m.stderr.String()); t != "" && !strings.Contains(err.Error(), t) {
		return fmt.Errorf("%w (destination said: %s)", err, t)
	}
	return err
}

// destState asks the destination, on a new connection, what state the VPS is in there:
// "running", "stopped", "deleted", or what went wrong asking.
func (m *migration) destState(ctx context.Context) string {
	qctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cmd, err := m.destCommand(qctx, "status", itoa(m.id))
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	out, err := cmd.Output()
	f := strings.Fields(string(out))
	switch {
	case len(f) >= 4 && f[2] == "exist":
		st := f[3]
		if slices.Contains(f[4:], "incomplete") {
			st += " incomplete"
		}
		return st
	case len(f) >= 3 && f[2] == "deleted":
		return "deleted"
	}
	return fmt.Sprintf("unknown (status: %v %q)", err, strings.TrimSpace(string(out)))
}

// removeHere destroys the VPS here once it is there. Its host objects went with its stop (the
// dump waited for the monitor's teardown), and are not looked for again: they are named by the
// VPS's ID, and a destination on this host (another state root) has them now.
func (m *migration) removeHere(ctx context.Context) error {
	m.hangUp()
	r, id := m.r, m.id
	name := ""
	if c, err := r.St.LoadConfig(id); err == nil {
		name = c.Name
	}
	if err := r.destroyLocked(ctx, id, m.lk, name, monitor.Leftovers{}, nil, false); err != nil {
		return fmt.Errorf("VPS %d runs on %s, but removing it here failed: %w", id, m.o.Dest, err)
	}
	return nil
}

// migrateError is a migration's failure: its message says where the VPS is.
type migrateError struct {
	msg  string
	errs []error
}

func (e *migrateError) Error() string   { return e.msg }
func (e *migrateError) Unwrap() []error { return e.errs }

// tailWriter keeps the last max bytes written to it.
type tailWriter struct {
	buf bytes.Buffer
	max int
}

func (t *tailWriter) Write(b []byte) (int, error) {
	t.buf.Write(b)
	if over := t.buf.Len() - t.max; over > 0 {
		t.buf.Next(over)
	}
	return len(b), nil
}

func (t *tailWriter) String() string { return t.buf.String() }

// remoteSentinels name the sentinels an error from the other side may wrap.
var remoteSentinels = map[string]error{
	"exist": store.ErrExist, "name_exist": store.ErrNameExist, "ip_in_use": network.ErrIPInUse, "bad_ip": network.ErrBadIP,
	"no_template": store.ErrNoTemplate, "pool_full": uid.ErrPoolFull, "blocked": ErrCheckpointBlocked, "criu": criu.ErrCRIU,
	"criu_not_found": criu.ErrNotFound, "criu_too_old": criu.ErrTooOld, "bad_value": ErrBadValue, "locked": store.ErrLocked,
	"incomplete": ErrIncomplete,
}

// errorMsg is the message that carries err to the other side.
func errorMsg(err error) wireMsg {
	m := wireMsg{Op: "error", Error: err.Error()}
	for name, s := range remoteSentinels {
		if errors.Is(err, s) {
			m.Kind = name
			break
		}
	}
	return m
}

// remoteError is the error an "error" message carries.
func remoteError(m wireMsg) error {
	err := fmt.Errorf("destination: %s", m.Error)
	if s, ok := remoteSentinels[m.Kind]; ok {
		return &migrateError{msg: err.Error(), errs: []error{s}}
	}
	return err
}

// MigrateReceive is the destination's side of a migration (`vpsctl migrate-receive`, which the
// source runs): the protocol on in and out. Whatever it claimed and was not committed by the
// source is undone when it returns.
func (r *Runtime) MigrateReceive(ctx context.Context, in io.Reader, out io.Writer) error {
	// The source's ssh going away is the end of our input; we undo what we did, rather than
	// being killed by the hang-up half-way.
	signal.Ignore(syscall.SIGHUP, syscall.SIGPIPE)
	c := newConn(in, out)
	err := r.receive(ctx, c)
	if err != nil && !errors.Is(err, errProtocol) {
		c.send(errorMsg(err))
	}
	return err
}

func (r *Runtime) receive(ctx context.Context, c *conn) error {
	hello, err := c.recv("hello")
	if err != nil {
		return err
	}
	if hello.Version != migrateVersion {
		return fmt.Errorf("%w: migration protocol %d here, %d at the source", ErrBadValue, migrateVersion, hello.Version)
	}
	cfg, err := store.ParseConfig([]byte(hello.Config))
	if err != nil {
		return err
	}
	id := container.ID(hello.ID)
	if cfg.ID != id {
		return fmt.Errorf("%w: config of VPS %d for VPS %d", ErrBadValue, cfg.ID, id)
	}
	// Checked before anything moves (and again, atomically, at the claim).
	if r.St.Exists(id) {
		return fmt.Errorf("VPS %d: %w here", id, store.ErrExist)
	}
	if err := r.precheck(cfg); err != nil {
		return err
	}
	tpl, need, err := r.templateFor(hello.Template, hello.TemplateFP)
	if err != nil {
		return err
	}
	if err := c.send(wireMsg{Op: "ready", NeedTemplate: need, TemplateAs: tpl}); err != nil {
		return err
	}
	if need {
		if _, err := c.recv("template"); err != nil {
			return err
		}
		sr := &streamReader{c: c}
		err := template.Receive(r.St, tpl, hello.TemplateSource+" (migrated)", hello.TemplateFP, func(rootfs string) error {
			return extractStream(sr, rootfs)
		})
		if err != nil {
			return err
		}
	}
	cfg.Template = tpl
	inc, err := r.claimIncoming(ctx, cfg, true, "migration of VPS "+itoa(id), hello.Node)
	if err != nil {
		return err
	}
	defer inc.abandon()
	claimed := wireMsg{Op: "claimed", IDMap: cfg.IDMap}
	if inc.source != "" {
		claimed.Node = r.Cluster.Settings.Node
	}
	if err := c.send(claimed); err != nil {
		return err
	}
	if _, err := c.recv("files"); err != nil {
		return err
	}
	if err := inc.extractStream(&streamReader{c: c}); err != nil {
		return err
	}
	if err := c.send(wireMsg{Op: "ok"}); err != nil {
		return err
	}
	if !hello.Live {
		if _, err := c.recv("commit"); err != nil {
			return err
		}
		if err := inc.intoImage(ctx); err != nil {
			return err
		}
		if err := inc.complete(); err != nil {
			return err
		}
		return c.send(wireMsg{Op: "done"})
	}
	// A VPS with a disk limit gets its image now, from the files of the first round, while it
	// still runs at the source; the final round goes into it.
	if err := inc.intoImage(ctx); err != nil {
		return err
	}
	final, err := c.recv("final")
	if err != nil {
		return err
	}
	if err := inc.extractFinal(&streamReader{c: c}, final.Removed); err != nil {
		return err
	}
	ckpt := r.DefaultCheckpointDir(id)
	if err := prepareImages(ckpt, inc.shift, false); err != nil {
		return err
	}
	res, err := r.restore(ctx, inc.lk, id, ckpt, restoreSpec{stopped: true, incoming: true}, io.Discard)
	if err != nil {
		return err
	}
	fault.Point("migrate-receive-restored")
	if err := c.send(wireMsg{Op: "restored", InitPID: res.InitPID}); err != nil {
		return err
	}
	if _, err := c.recv("go"); err != nil {
		return err // abandon kills the stopped VPS
	}
	meta, err := monitor.ReadCheckpointMeta(ckpt)
	if err != nil {
		return err
	}
	if err := continueRestored(res.InitPID, meta.Stopped); err != nil {
		return err
	}
	if err := inc.complete(); err != nil {
		return err
	}
	os.RemoveAll(ckpt)
	fault.Point("migrate-receive-running")
	return c.send(wireMsg{Op: "running", InitPID: res.InitPID})
}

// precheck refuses, before anything moves, a VPS whose name or addresses are taken here.
func (r *Runtime) precheck(c *store.Config) error {
	if c.Name != "" {
		if id, err := r.St.LookupName(c.Name); err == nil {
			return fmt.Errorf("name %q: VPS %d: %w here", c.Name, id, store.ErrNameExist)
		}
	}
	others, err := r.St.Configs()
	if err != nil {
		return err
	}
	return r.checkAddrsFree(c, others)
}

// templateFor picks the template a migrated VPS uses here: the one of its name if it is the
// same tree (same fingerprint), else a copy under NAME-FINGERPRINT; need says it must be sent.
func (r *Runtime) templateFor(name, fp string) (string, bool, error) {
	if err := template.ValidateName(name); err != nil {
		return "", false, err
	}
	if len(fp) < 12 {
		return "", false, fmt.Errorf("%w: template fingerprint %q", ErrBadValue, fp)
	}
	for _, cand := range []string{name, name + "-" + fp[:12]} {
		have, err := template.Fingerprint(r.St, cand)
		if errors.Is(err, store.ErrNoTemplate) {
			return cand, true, nil
		}
		if err != nil {
			return "", false, err
		}
		if have == fp {
			return cand, false, nil
		}
	}
	return "", false, fmt.Errorf("%w: templates %s and %s-%s here are other trees", ErrBadValue, name, name, fp[:12])
}

// extractStream extracts a data stream of fstree entries into the VPS's directory.
func (in *incoming) extractStream(sr *streamReader) error {
	if err := in.extract(tar.NewReader(sr)); err != nil {
		return err
	}
	return sr.drain()
}

// extractFinal applies a live migration's final round: the private area's files removed since
// the first round, then a data stream of its changed files (private/...) and the checkpoint's
// (checkpoint/...). The private area is the VPS's directory's, or, for a VPS with a disk image,
// the image's upper/, mounted privately here meanwhile.
func (in *incoming) extractFinal(sr *streamReader, removed []string) (err error) {
	x, err := fstree.NewExtractor(in.dir(), in.shift)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := x.Close(); err == nil {
			err = cerr
		}
	}()
	priv, rename := x, func(name string) string { return name }
	if in.r.hasImage(in.c.ID) {
		// (No := here: the deferred closes below report into the result.)
		var img *disk.Mounted
		if img, err = disk.Attach(in.r.St.Path(in.c.ID, monitor.DiskImage)); err != nil {
			return fmt.Errorf("VPS %d's disk image: %w", in.c.ID, err)
		}
		defer img.Close() // before the restore, which mounts it
		if priv, err = fstree.NewExtractor(filepath.Dir(img.Upper), in.shift); err != nil {
			return err
		}
		defer func() {
			if cerr := priv.Close(); err == nil {
				err = cerr
			}
		}()
		rename = func(name string) string { return disk.UpperDir + strings.TrimPrefix(name, "private") }
	}
	isPrivate := func(name string) bool { return name == "private" || strings.HasPrefix(name, "private/") }
	for _, rel := range removed {
		if err := priv.Remove(rename(filepath.Join("private", rel))); err != nil {
			return err
		}
	}
	tr := tar.NewReader(sr)
	err = eachEntry(tr, func(hdr *tar.Header) error {
		to := x
		if isPrivate(hdr.Name) {
			to, hdr.Name = priv, rename(hdr.Name)
			if hdr.Typeflag == tar.TypeLink && isPrivate(hdr.Linkname) {
				hdr.Linkname = rename(hdr.Linkname)
			}
		}
		return to.Entry(hdr, tr)
	})
	if err != nil {
		return err
	}
	return sr.drain()
}

// extractStream extracts a data stream into dir (a template's tree: no shift).
func extractStream(sr *streamReader, dir string) error {
	if err := extractInto(tar.NewReader(sr), dir, idshift.Shift{}); err != nil {
		return err
	}
	return sr.drain()
}

// continueRestored lets the processes of a VPS restored stopped go on, but those that were
// stopped when it was dumped (VPS PIDs).
func continueRestored(init int, stopped []int) error {
	procs, err := pidns.List(pidns.HostPID(init))
	if err != nil {
		return err
	}
	for _, p := range procs {
		if !slices.Contains(stopped, int(p.VPS)) {
			unix.Kill(int(p.Host), unix.SIGCONT)
		}
	}
	return nil
}
