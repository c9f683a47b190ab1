// Package store keeps vpsctl's persistent state under one state root (default /var/lib/vpsctl):
//
//	templates/NAME/rootfs          a template's root filesystem (owned by host root)
//	vps/ID/vps.conf                a VPS's configuration (human-readable, see Config)
//	vps/ID/run.json                runtime state, written only by the VPS's monitor
//	vps/ID/private/                the VPS's own files (overlay upper layer); removed only by destroy
//	vps/ID/work/, vps/ID/root/     overlay work dir and mount point
//	vps/ID/console.log             the VPS's console output
//	names/NAME -> ID               the unique-name index (symlinks: creation is atomic)
//	locks/ID.lock, locks/.global   flock(2) locks
//	tmp/                           staging for creates and destroys in progress
//
// Invariants: every file is replaced atomically (write to a temp file, fsync, rename), so a
// reader sees the old or the new content, never a torn one. A VPS directory appears under vps/
// only complete (it is built in tmp/ and renamed in), and destroy's first step is renaming it
// out of vps/, so a crash at any instant leaves a VPS fully there or fully gone; leftovers in
// tmp/ belong to dead processes and are removed by Sweep.
package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/moby/sys/mountinfo"

	"github.com/vpsctl/vpsctl/container"
	"github.com/vpsctl/vpsctl/internal/fault"
	"github.com/vpsctl/vpsctl/internal/sysfile"
	"golang.org/x/sys/unix"
)

// Sentinels for conditions callers branch on.
var (
	ErrNotExist   = errors.New("VPS does not exist")
	ErrExist      = errors.New("VPS already exists")
	ErrNameExist  = errors.New("name already in use")
	ErrLocked     = errors.New("locked by another vpsctl")
	ErrNoTemplate = errors.New("template not found")
)

// DefaultRoot is the state root used when neither --root nor VPSCTL_ROOT is given.
const DefaultRoot = "/var/lib/vpsctl"

// Store is a state root.
type Store struct {
	Root string
	// Reclaim, if set, deletes the directory of a destroyed VPS (already renamed into tmp/)
	// in the background and returns once that has started; when it fails, Remove deletes the
	// directory itself. lock is the directory, open and flock(LOCK_EX)ed: the process doing
	// the deleting must hold it (inherit it) until it is done, for Sweep leaves a locked
	// directory alone. A reclaim that dies half-way leaves an unlocked one Sweep removes.
	// The job's other parts are done first (see ReclaimJob).
	Reclaim func(ReclaimJob) error
}

// ReclaimJob is what a background remover is handed: a destroyed VPS's directory, and what must
// go before its files; or, after a stop, only the latter (Dir "", DirLock nil).
type ReclaimJob struct {
	Dir     string   // the renamed-away directory, STATE/tmp/destroy-*
	DirLock *os.File // Dir, open and flocked: held by the remover until it is done
	// Hold are open files it closes first (a VPS's mount namespace: the last close unmounts
	// its tree).
	Hold []*os.File
	// Groups are cgroup directories of the VPS, removed (with any subgroups) next, while the
	// remover holds VPSLock, the VPS's lock, inherited from the caller: no command on the VPS
	// (or a new VPS of the same ID) starts before they and the mounts are gone. The remover
	// then removes the lock file at VPSLockPath, as destroy does ("": it stays, after a stop).
	Groups      []string
	VPSLock     *os.File
	VPSLockPath string
	// Spares are cgroup directories made (where missing) once the lock is let go of: spare
	// groups for the next boots (cgroup.Manager.Spares).
	Spares []string
}

// Open returns the store at root, creating its directories if needed.
func Open(root string) (*Store, error) {
	if root == "" {
		root = DefaultRoot
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	// tmp/ is made last: if it exists, so does the rest (one stat on the common path).
	if _, err := os.Stat(filepath.Join(abs, "tmp")); err == nil {
		return &Store{Root: abs}, nil
	}
	for _, d := range []string{"", "templates", "vps", "names", "locks", "tmp"} {
		if err := os.MkdirAll(filepath.Join(abs, d), 0o700); err != nil {
			return nil, fmt.Errorf("state root: %w", err)
		}
	}
	// The root holds tenants' private areas: only host root may traverse it, so a tenant's
	// setuid binary or device node is unreachable to other host users.
	_ = os.Chmod(abs, 0o700)
	return &Store{Root: abs}, nil
}

// VPSDir returns the directory of VPS id.
func (s *Store) VPSDir(id container.ID) string {
	return filepath.Join(s.Root, "vps", strconv.FormatUint(uint64(id), 10))
}

// Path returns a path inside VPS id's directory.
func (s *Store) Path(id container.ID, name string) string { return filepath.Join(s.VPSDir(id), name) }

// TemplateDir returns the directory of template name.
func (s *Store) TemplateDir(name string) string { return filepath.Join(s.Root, "templates", name) }

// WriteFileAtomic replaces path with data: temp file in the same directory, fsync, rename.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	return writeFile(path, data, perm, true)
}

// WriteFileVolatile replaces path atomically, like WriteFileAtomic, but without the fsync: for
// files that only mean something while the host is up (a stop request), where a crash may lose
// the file but must never leave half of it. The fsync is most of such a write's cost.
func WriteFileVolatile(path string, data []byte, perm os.FileMode) error {
	return writeFile(path, data, perm, false)
}

func writeFile(path string, data []byte, perm os.FileMode, durable bool) error {
	// os.CreateTemp's file would be offered to the netpoller first (see package sysfile): run
	// state is written on every boot's critical path. The same exclusive create of a random
	// name, as a plain blocking file.
	var f *os.File
	var err error
	for range 100 {
		name := fmt.Sprintf("%s/.%s.tmp%d", filepath.Dir(path), filepath.Base(path), rand.Uint32())
		if f, err = sysfile.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); !errors.Is(err, fs.ErrExist) {
			break
		}
	}
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	if werr == nil {
		werr = f.Chmod(perm)
	}
	if werr == nil && durable {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp, path)
	}
	if werr != nil {
		os.Remove(tmp)
		return werr
	}
	return nil
}

// Exists reports whether VPS id exists.
func (s *Store) Exists(id container.ID) bool {
	_, err := os.Stat(s.Path(id, "vps.conf"))
	return err == nil
}

// LoadConfig reads VPS id's configuration.
func (s *Store) LoadConfig(id container.ID) (*Config, error) {
	b, err := sysfile.ReadFile(s.Path(id, "vps.conf"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("VPS %d: %w", id, ErrNotExist)
	}
	if err != nil {
		return nil, err
	}
	c, err := ParseConfig(b)
	if err != nil {
		return nil, fmt.Errorf("VPS %d: %w", id, err)
	}
	if c.ID != id {
		return nil, fmt.Errorf("VPS %d: %w: config says ID %d", id, ErrBadConfig, c.ID)
	}
	return c, nil
}

// SaveConfig atomically replaces the configuration of an existing VPS.
func (s *Store) SaveConfig(c *Config) error {
	if !s.Exists(c.ID) {
		return fmt.Errorf("VPS %d: %w", c.ID, ErrNotExist)
	}
	return WriteFileAtomic(s.Path(c.ID, "vps.conf"), c.Format(), 0o600)
}

// IDs returns the IDs of all existing VPSs, sorted.
func (s *Store) IDs() ([]container.ID, error) {
	ents, err := sysfile.ReadDir(filepath.Join(s.Root, "vps"))
	if err != nil {
		return nil, err
	}
	var ids []container.ID
	for _, e := range ents {
		n, err := strconv.ParseUint(e.Name(), 10, 32)
		if err != nil || n == 0 || strconv.FormatUint(n, 10) != e.Name() {
			continue
		}
		ids = append(ids, container.ID(n))
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids, nil
}

// Configs loads every VPS's configuration (unreadable ones are skipped).
func (s *Store) Configs() ([]*Config, error) {
	ids, err := s.IDs()
	if err != nil {
		return nil, err
	}
	out := make([]*Config, 0, len(ids))
	for _, id := range ids {
		if c, err := s.LoadConfig(id); err == nil {
			out = append(out, c)
		}
	}
	return out, nil
}

// LookupName returns the ID that name refers to.
func (s *Store) LookupName(name string) (container.ID, error) {
	t, err := os.Readlink(filepath.Join(s.Root, "names", name))
	if err != nil {
		return 0, fmt.Errorf("VPS %q: %w", name, ErrNotExist)
	}
	n, err := strconv.ParseUint(t, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("VPS %q: %w", name, ErrNotExist)
	}
	// An entry is valid only if the VPS's config agrees: a crash between the steps of a
	// create, rename or destroy can leave an entry dangling or stale.
	if c, err := s.LoadConfig(container.ID(n)); err != nil || c.Name != name {
		return 0, fmt.Errorf("VPS %q: %w", name, ErrNotExist)
	}
	return container.ID(n), nil
}

// ClaimName points name at id. It fails with ErrNameExist if another existing VPS holds it;
// an entry left dangling by a crash is taken over. Caller holds the global lock.
func (s *Store) ClaimName(name string, id container.ID) error {
	p := filepath.Join(s.Root, "names", name)
	target := strconv.FormatUint(uint64(id), 10)
	if err := os.Symlink(target, p); err == nil {
		return nil
	} else if !errors.Is(err, os.ErrExist) {
		return err
	}
	if cur, err := os.Readlink(p); err == nil && cur == target {
		return nil
	}
	if _, err := s.LookupName(name); err == nil {
		return fmt.Errorf("name %q: %w", name, ErrNameExist)
	}
	os.Remove(p)
	return os.Symlink(target, p)
}

// ReleaseName removes name if it points at id.
func (s *Store) ReleaseName(name string, id container.ID) {
	if name == "" {
		return
	}
	p := filepath.Join(s.Root, "names", name)
	if t, err := os.Readlink(p); err == nil && t == strconv.FormatUint(uint64(id), 10) {
		os.Remove(p)
	}
}

// StageDir makes a fresh staging directory in tmp/ whose name records the creating process, so
// Sweep can tell abandoned ones from ones still being built.
func (s *Store) StageDir(kind string) (string, error) {
	return os.MkdirTemp(filepath.Join(s.Root, "tmp"), fmt.Sprintf("%s-%d-", kind, os.Getpid()))
}

// Commit renames a staged VPS directory into place; ErrExist if the ID is taken.
func (s *Store) Commit(stage string, id container.ID) error {
	err := unix.Renameat2(unix.AT_FDCWD, stage, unix.AT_FDCWD, s.VPSDir(id), unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("VPS %d: %w", id, ErrExist)
	}
	if err != nil {
		return &os.LinkError{Op: "rename", Old: stage, New: s.VPSDir(id), Err: err}
	}
	return nil
}

// RemoveJob commits the destruction of VPS id by renaming its directory out of vps/ (after
// the rename the VPS no longer exists for any command, whatever happens next), then has the
// background remover delete it, with more for the remover (job's Dir and DirLock are filled
// in here). handed reports that a remover took the job over, its groups and lock file too;
// otherwise the files are gone at return, and the groups and the lock file are the caller's.
func (s *Store) RemoveJob(id container.ID, job ReclaimJob) (handed bool, err error) {
	hold := job.Hold
	defer func() {
		for _, f := range hold {
			f.Close()
		}
	}()
	stage, err := s.StageDir("destroy")
	if err != nil {
		return false, err
	}
	if err := os.Rename(s.VPSDir(id), filepath.Join(stage, "vps")); err != nil {
		os.Remove(stage)
		if errors.Is(err, os.ErrNotExist) {
			return false, fmt.Errorf("VPS %d: %w", id, ErrNotExist)
		}
		return false, err
	}
	fault.Point("destroy-renamed")
	UnmountBelow(stage)
	// Whoever deletes the directory holds its lock: the destroy stage is named after this
	// process, which may exit long before the deleting is done, and a sweep must not take
	// the deleting over meanwhile (it would double the work, in some command's own time).
	lock, err := lockDir(stage, false)
	if err == nil {
		defer lock.Close()
		job.Dir, job.DirLock = stage, lock
		if s.Reclaim != nil && s.Reclaim(job) == nil {
			return true, nil
		}
	}
	for _, f := range hold {
		f.Close()
	}
	hold = nil
	return false, os.RemoveAll(stage)
}

// lockDir opens dir and flock()s it exclusively; nonblocking: EWOULDBLOCK if held.
func lockDir(dir string, nonblocking bool) (*os.File, error) {
	f, err := sysfile.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, err
	}
	how := unix.LOCK_EX
	if nonblocking {
		how |= unix.LOCK_NB
	}
	for {
		err = unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, &os.PathError{Op: "flock", Path: dir, Err: err}
	}
	return f, nil
}

// Sweep removes staging directories of processes that no longer run (a create or destroy
// killed half-way). Name entries left dangling by such a crash are taken over by ClaimName.
func (s *Store) Sweep() {
	ents, _ := sysfile.ReadDir(filepath.Join(s.Root, "tmp"))
	for _, e := range ents {
		parts := strings.SplitN(e.Name(), "-", 3)
		if len(parts) != 3 {
			continue
		}
		pid, err := strconv.Atoi(parts[1])
		if err != nil || pid <= 0 {
			continue
		}
		if unix.Kill(pid, 0) == nil && pid != os.Getpid() {
			continue // its creator is alive
		}
		dir := filepath.Join(s.Root, "tmp", e.Name())
		lock, err := lockDir(dir, true)
		if err != nil {
			continue // a background remover holds it (or it is gone)
		}
		RemoveAll(dir)
		lock.Close()
	}
}

// RunState is the runtime state of a running VPS, written by its monitor.
type RunState struct {
	MonitorPID   int       `json:"monitor_pid"`
	MonitorStart uint64    `json:"monitor_start"` // start time in clock ticks (/proc/PID/stat field 22): guards against PID reuse
	InitPID      int       `json:"init_pid"`
	InitStart    uint64    `json:"init_start"`
	Started      time.Time `json:"started"`
	Boots        int       `json:"boots"`
	Phase        string    `json:"phase"` // "starting", "running", "rebooting", "stopping"
	// RecentBoots are the times of the last boots (a few), BackoffUntil when a boot held back
	// by a reboot loop may go, and Backoffs how many times in a row one was (see monitor).
	RecentBoots  []time.Time `json:"recent_boots,omitempty"`
	BackoffUntil time.Time   `json:"backoff_until,omitzero"`
	Backoffs     int         `json:"backoffs,omitempty"`
}

// LoadRun reads VPS id's runtime state; os.ErrNotExist if it has none.
func (s *Store) LoadRun(id container.ID) (*RunState, error) {
	b, err := sysfile.ReadFile(s.Path(id, "run.json"))
	if err != nil {
		return nil, err
	}
	var r RunState
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("VPS %d run state: %w", id, err)
	}
	return &r, nil
}

// SaveRun atomically writes VPS id's runtime state. It is not fsynced: it describes processes,
// which a host crash ends anyway, and every reader checks them (PID and start time) before it
// believes the file; a file a crash left empty reads as stale state and is cleared.
func (s *Store) SaveRun(id container.ID, r *RunState) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return WriteFileVolatile(s.Path(id, "run.json"), b, 0o600)
}

// joinFile is a running VPS's join record (see SaveJoin).
const joinFile = "join"

// SaveJoin records what `vpsctl exec` needs to join running VPS id (prestart.JoinRecord), for
// the CLI's front door, which reads it without a Go runtime. It goes with the run state: written
// after it, removed before it (ClearRun), so a record never outlives its run.
func (s *Store) SaveJoin(id container.ID, record []byte) error {
	return WriteFileVolatile(s.Path(id, joinFile), record, 0o600)
}

// placementFile is the record, in the state root, of where a started VPS's monitor places
// itself before its Go runtime starts (package monitor's placementRecord says what it holds),
// which the CLI's front door reads.
const placementFile = "placement"

// SavePlacement writes the placement record if record differs from it; a record it cannot write
// is left as it was (the front door then does less, and the monitor moves itself). nil: none.
func (s *Store) SavePlacement(record []byte) {
	p := filepath.Join(s.Root, placementFile)
	if old, err := sysfile.ReadFile(p); record == nil || (err == nil && bytes.Equal(old, record)) {
		return
	}
	WriteFileAtomic(p, record, 0o600)
}

// The files StageRun writes, beside the run state and the join record.
const (
	stagedRun  = ".run.json.next"
	stagedJoin = ".join.next"
)

// StageRun writes VPS id's run state r and join record (nil: none) beside their files, for
// CommitRun to put in place with a rename each: a boot writes them while its init child
// finishes (its PID is known from the clone) and commits them once the init runs, so that
// the wait for the init's exec is not followed by two file writes. A staged pair that is not
// committed is overwritten by the next one and removed by ClearRun.
func (s *Store) StageRun(id container.ID, r *RunState, join []byte) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := writeStaged(s.Path(id, stagedRun), b); err != nil {
		return err
	}
	if join == nil {
		if err := os.Remove(s.Path(id, stagedJoin)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	return writeStaged(s.Path(id, stagedJoin), join)
}

// writeStaged writes a staged file whole: it is only read by a rename into place.
func writeStaged(path string, data []byte) error {
	f, err := sysfile.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	return werr
}

// CommitRun puts what StageRun wrote in place: the run state first, then the join record (a
// record never outlives its run, see SaveJoin).
func (s *Store) CommitRun(id container.ID) error {
	if err := os.Rename(s.Path(id, stagedRun), s.Path(id, "run.json")); err != nil {
		return err
	}
	if err := os.Rename(s.Path(id, stagedJoin), s.Path(id, joinFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// ClearRun removes VPS id's runtime state, staged (StageRun) or not.
func (s *Store) ClearRun(id container.ID) {
	os.Remove(s.Path(id, joinFile))
	os.Remove(s.Path(id, "run.json"))
	os.Remove(s.Path(id, stagedJoin))
	os.Remove(s.Path(id, stagedRun))
}

// RemoveAll removes dir like os.RemoveAll, after unmounting anything mounted below it (deepest
// first): a killed build or boot can leave a mount there, and deleting through it would
// reach into whatever is mounted.
func RemoveAll(dir string) error {
	UnmountBelow(dir)
	return os.RemoveAll(dir)
}

// UnmountBelow detaches every mount below dir, deepest first.
func UnmountBelow(dir string) {
	below, err := sysfile.Mounts(0, func(mi *mountinfo.Info) (skip, stop bool) {
		return !strings.HasPrefix(mi.Mountpoint, dir+"/"), false
	})
	if err != nil {
		return
	}
	sort.Slice(below, func(i, j int) bool { return len(below[i].Mountpoint) > len(below[j].Mountpoint) })
	for _, m := range below {
		unix.Unmount(m.Mountpoint, unix.MNT_DETACH)
	}
}

// SpareMarker is the file in a spare VPS's directory (package spare) that names its template;
// ClaimedMarker its name once a run has claimed the spare.
const (
	SpareMarker   = "spare"
	ClaimedMarker = "spare-claimed"
)

// SparePath is the file of the spare keeper of template tpl with extension ext (.lock, .sock,
// .log, .state) in the state root's spare/.
func (s *Store) SparePath(tpl, ext string) string {
	return filepath.Join(s.Root, "spare", tpl+ext)
}

// KeeperPID returns the PID of the keeper of tpl, 0 if none runs: the keeper holds a flock on
// its lock file, in which it wrote its PID.
func (s *Store) KeeperPID(tpl string) int {
	held, text := LockHeld(s.SparePath(tpl, ".lock"))
	if !held {
		return 0
	}
	pid, _ := strconv.Atoi(text)
	return pid
}

// IsSpare: VPS id is an unclaimed spare of a living keeper (list leaves it out). One whose
// keeper died is listed, stopped, for anyone to destroy (the next keeper of its template, or
// `spare stop`, does).
func (s *Store) IsSpare(id container.ID) bool {
	if id < TransientBase {
		return false
	}
	if _, err := os.Lstat(s.Path(id, SpareMarker)); err != nil {
		return false
	}
	return s.VPSLocked(id)
}

// SpareTemplate is the template of VPS id if it is a spare, claimed or not ("" if it is none).
func (s *Store) SpareTemplate(id container.ID) string {
	if id < TransientBase {
		return ""
	}
	for _, name := range []string{SpareMarker, ClaimedMarker} {
		if b, err := os.ReadFile(s.Path(id, name)); err == nil {
			return strings.TrimSpace(string(b))
		}
	}
	return ""
}

// TransientBase is where the IDs of VPSs of vpsctl's own making (a run without an ID, a spare)
// start, far from hand-picked ones.
const TransientBase = 1000000000
