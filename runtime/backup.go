package runtime

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/vpsctl/vpsctl/cgroup"
	"github.com/vpsctl/vpsctl/container"
	"github.com/vpsctl/vpsctl/criu"
	"github.com/vpsctl/vpsctl/internal/fstree"
	"github.com/vpsctl/vpsctl/internal/idshift"
	"github.com/vpsctl/vpsctl/internal/spec"
	"github.com/vpsctl/vpsctl/monitor"
	"github.com/vpsctl/vpsctl/store"
)

// BackupOptions tune a backup.
type BackupOptions struct {
	WithMemory bool      // a running VPS's processes too (a checkpoint that leaves it running)
	Progress   io.Writer // one line per step (nil: none)
	// Meter, if a terminal, shows the archive's size and the rate while it is written.
	Meter *os.File
}

// BackupResult is what a backup wrote.
type BackupResult struct {
	ID          container.ID `json:"id"`
	File        string       `json:"file"`
	Bytes       int64        `json:"bytes"` // of the compressed archive
	Compression string       `json:"compression"`
	Running     bool         `json:"running"`
	WithMemory  bool         `json:"with_memory"`
	Seconds     float64      `json:"seconds"`
	// FrozenSeconds is how long a running VPS was frozen: its files (and processes) copied.
	FrozenSeconds float64 `json:"frozen_seconds,omitempty"`
}

// Backup writes VPS id, stopped or running, into one archive at file (see archive.go): its
// config, its private area and, with o.WithMemory, a checkpoint of its processes. A running
// VPS is frozen while its files are copied (and, with memory, dumped first, leaving it
// running), so files and processes match; then it runs on. The file appears only once it is
// complete.
func (r *Runtime) Backup(ctx context.Context, id container.ID, file string, o BackupOptions) (*BackupResult, error) {
	lk, err := r.St.LockVPS(ctx, id, "backup")
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
	running := s.State == "running"
	if o.WithMemory && !running {
		return nil, fmt.Errorf("VPS %d: --with-memory: %w", id, ErrNotRunning)
	}
	conf, err := os.ReadFile(r.St.Path(id, "vps.conf"))
	if err != nil {
		return nil, err
	}
	if file == "" {
		return nil, fmt.Errorf("backup: no file named: %w", ErrBadValue)
	}
	if file, err = filepath.Abs(file); err != nil {
		return nil, err
	}
	if fi, err := os.Stat(file); err == nil && !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("backup file %s: not a regular file: %w", file, ErrBadValue)
	}
	// Where the archive cannot be written is known before anything is frozen or read.
	tmp := file + ".partial-" + strconv.Itoa(os.Getpid())
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("backup file %s: %w: %w", file, err, ErrBadValue)
	}
	ok := false
	defer func() {
		if !ok {
			out.Close()
			os.Remove(tmp)
		}
	}()
	comp, err := newCompressor(out)
	if err != nil {
		return nil, err
	}
	defer func() {
		if !ok {
			comp.close(true)
		}
	}()
	progress := progressOr(o.Progress)
	meter := startProgress(o.Meter, fmt.Sprintf("backup of VPS %d (%s)", id, comp.Kind), comp.count.n.Load)
	defer meter.end()
	t0 := time.Now()
	aw := &archiveWriter{tw: tar.NewWriter(comp.w)}
	head := BackupHeader{Format: backupFormat, ID: uint32(id), Name: s.Name, Template: s.Template, IDMap: s.IDMap,
		Running: running, WithMemory: o.WithMemory, Time: time.Now().UTC()}
	hb, _ := json.MarshalIndent(head, "", "  ")
	if err := aw.file(backupHeaderName, hb); err != nil {
		return nil, err
	}
	if err := aw.file("vps.conf", conf); err != nil {
		return nil, err
	}
	res := &BackupResult{ID: id, File: file, Compression: comp.Kind, Running: running, WithMemory: o.WithMemory}
	images := ""
	if running {
		if images, res.FrozenSeconds, err = r.backupRunning(ctx, s, aw, o.WithMemory, progress); err != nil {
			return nil, err
		}
		if images != "" {
			defer os.RemoveAll(images)
		}
	} else if err := r.writePrivate(aw, s); err != nil {
		return nil, err
	}
	if images != "" {
		if err := fstree.Write(aw, images, fstree.WriteOptions{Prefix: "checkpoint"}); err != nil {
			return nil, fmt.Errorf("backup: %w", err)
		}
	}
	if err := aw.close(); err != nil {
		return nil, err
	}
	if err := comp.close(false); err != nil {
		return nil, err
	}
	if err := out.Sync(); err != nil {
		return nil, err
	}
	if err := out.Close(); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, file); err != nil {
		return nil, err
	}
	ok = true
	res.Bytes, res.Seconds = comp.count.n.Load(), time.Since(t0).Seconds()
	return res, nil
}

// backupRunning writes running VPS s's files into aw while it is frozen; with memory it first
// dumps the frozen VPS (it stays frozen) into an image directory, which it returns for the
// caller to add. It returns how long the VPS was frozen.
func (r *Runtime) backupRunning(ctx context.Context, s *Status, aw *archiveWriter, memory bool, progress io.Writer) (string, float64, error) {
	cg, err := cgroup.New(spec.CgroupPath(s.ID))
	if err != nil {
		return "", 0, err
	}
	t0 := time.Now()
	if !s.Suspended {
		if err := cg.Freeze(FreezeTimeout); err != nil {
			return "", 0, fmt.Errorf("VPS %d: freeze: %w", s.ID, err)
		}
		defer cg.Thaw()
	}
	images := ""
	if memory {
		images = r.St.Path(s.ID, "backup-"+strconv.Itoa(os.Getpid()))
		// Established connections are dumped (criu refuses the dump otherwise) and restored
		// closed: their peers have long gone on without them by the time a backup is restored.
		if _, err := r.dump(ctx, s, images, dumpSpec{frozen: true, tcp: true}, progress); err != nil {
			return "", 0, err
		}
	}
	if err := r.writePrivate(aw, s); err != nil {
		os.RemoveAll(images)
		return "", 0, err
	}
	frozen := time.Since(t0).Seconds()
	if !s.Suspended {
		if err := cg.Thaw(); err != nil {
			os.RemoveAll(images)
			return "", 0, fmt.Errorf("VPS %d: thaw: %w", s.ID, err)
		}
	}
	fmt.Fprintf(progress, "VPS %d was frozen for %.2f s while its files were copied\n", s.ID, frozen)
	return images, frozen, nil
}

// writePrivate writes VPS s's files (see privateTree) into aw as private/...
func (r *Runtime) writePrivate(aw *archiveWriter, s *Status) error {
	dir, done, err := r.privateTree(s)
	if err != nil {
		return err
	}
	defer done()
	if err := fstree.Write(aw, dir, fstree.WriteOptions{Prefix: "private"}); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return nil
}

// RestoreBackupResult is what a restore from a backup made.
type RestoreBackupResult struct {
	ID      container.ID `json:"id"`
	From    uint32       `json:"from"` // the VPS ID in the archive
	IDMap   string       `json:"idmap,omitempty"`
	Running bool         `json:"running"` // restored (with memory) or started
	InitPID int          `json:"init_pid,omitempty"`
	Seconds float64      `json:"seconds"`
}

// RestoreBackup recreates VPS id from backup archive file: the archive is read and checked
// whole (ErrBadArchive) before anything is made; then the VPS is claimed as id (the archive's
// VPS, or a new ID) with the archive's UID range if that is free here, else a free one, and
// addresses checked, its files extracted (shifted into its range), and, if it ran when backed
// up, restored from its checkpoint (with memory; its TCP connections come back closed) or
// started.
func (r *Runtime) RestoreBackup(ctx context.Context, id container.ID, file string, progress io.Writer, meter *os.File) (*RestoreBackupResult, error) {
	progress = progressOr(progress)
	t0 := time.Now()
	var conf []byte
	head, err := r.scanBackup(ctx, file, meter, func(hdr *tar.Header, body io.Reader) error {
		if hdr.Name == "vps.conf" {
			b, err := io.ReadAll(io.LimitReader(body, 1<<20))
			conf = b
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	c, err := store.ParseConfig(conf)
	if err != nil {
		return nil, fmt.Errorf("%w: vps.conf: %v", ErrBadArchive, err)
	}
	c.ID = id
	fmt.Fprintf(progress, "%s: VPS %d backed up %s (%s), checked\n", file, head.ID, head.Time.Format(time.RFC3339), backupKind(head))
	in, err := r.claimIncoming(ctx, c, true, "restore of backup "+filepath.Base(file), "")
	if err != nil {
		return nil, err
	}
	defer in.abandon()
	x, err := fstree.NewExtractor(in.dir(), in.shift)
	if err != nil {
		return nil, err
	}
	_, err = r.scanBackup(ctx, file, meter, func(hdr *tar.Header, body io.Reader) error {
		switch {
		case hdr.Name == "vps.conf":
			return nil // the claim wrote the VPS's own
		case hdr.Name == "private" || strings.HasPrefix(hdr.Name, "private/") ||
			head.WithMemory && (hdr.Name == "checkpoint" || strings.HasPrefix(hdr.Name, "checkpoint/")):
			return x.Entry(hdr, body)
		}
		return fmt.Errorf("%w: unexpected entry %s", ErrBadArchive, hdr.Name)
	})
	if cerr := x.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	res := &RestoreBackupResult{ID: id, From: head.ID, IDMap: c.IDMap}
	ckpt := r.DefaultCheckpointDir(id)
	if head.WithMemory {
		if err := prepareImages(ckpt, in.shift, true); err != nil {
			return nil, err
		}
	}
	if err := in.intoImage(ctx); err != nil {
		return nil, err
	}
	if err := in.complete(); err != nil {
		return nil, err
	}
	fmt.Fprintf(progress, "VPS %d recreated from %s (UID range %s)\n", id, file, c.IDMap)
	if head.Running {
		if head.WithMemory {
			rr, err := r.Restore(ctx, id, RestoreOptions{Dir: ckpt, Progress: progress})
			if err != nil {
				return nil, fmt.Errorf("VPS %d recreated, stopped: its processes: %w", id, err)
			}
			res.InitPID = rr.InitPID
		} else {
			pid, err := r.Start(ctx, id, StartOptions{})
			if err != nil {
				return nil, fmt.Errorf("VPS %d recreated, stopped: start: %w", id, err)
			}
			res.InitPID = pid
		}
		res.Running = true
	}
	res.Seconds = time.Since(t0).Seconds()
	return res, nil
}

func backupKind(h *BackupHeader) string {
	switch {
	case h.WithMemory:
		return "running, with memory"
	case h.Running:
		return "running, files only"
	}
	return "stopped"
}

// scanBackup reads backup file once through readArchive.
func (r *Runtime) scanBackup(ctx context.Context, file string, meter *os.File, entry func(*tar.Header, io.Reader) error) (*BackupHeader, error) {
	ar, closeAr, err := openArchive(ctx, file)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %v", ErrBadValue, err)
		}
		return nil, err
	}
	defer closeAr()
	cr := &countReader{r: ar}
	m := startProgress(meter, "reading "+filepath.Base(file), cr.n.Load)
	defer m.end()
	return readArchive(cr, entry)
}

// prepareImages makes a checkpoint that arrived from elsewhere restorable here: its userns
// maps shifted into the VPS's range (and the restore told to shift the groups too), and, for
// a backup's, TCP connections restored closed.
func prepareImages(dir string, s idshift.Shift, closeTCP bool) error {
	meta, err := monitor.ReadCheckpointMeta(dir)
	if err != nil {
		return err
	}
	if s.Active() {
		if err := criu.ShiftUserns(dir, s.ID); err != nil {
			return err
		}
		if meta.GroupsIDMap == "" {
			meta.GroupsIDMap = meta.IDMap
		}
		meta.IDMap = s.To.String()
	}
	if closeTCP && meta.TCPEstablished {
		meta.TCPEstablished, meta.TCPClose = false, true
	}
	return meta.Write(dir)
}
