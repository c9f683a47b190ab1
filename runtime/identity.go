package runtime

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vpsctl/vpsctl/container"
	"github.com/vpsctl/vpsctl/internal/safetext"
	"github.com/vpsctl/vpsctl/pidns"
	"github.com/vpsctl/vpsctl/store"
	"github.com/vpsctl/vpsctl/template"
	"github.com/vpsctl/vpsctl/uid"
	"golang.org/x/sys/unix"
)

// UIDTable is a VPS's UID (or GID) table: the userspace face of the seed's per-container uid
// hash.
type UIDTable struct {
	ID        container.ID `json:"id"`
	UserNS    bool         `json:"user_namespace"`
	Range     string       `json:"range"` // "HOST:SIZE"
	Pool      string       `json:"pool"`  // the host's pool VPS ranges come from, "BASE:SIZE"
	Groups    bool         `json:"groups"`
	Entries   []uid.Entry  `json:"entries"`
	Processes int          `json:"processes"`
}

// UIDs returns VPS id's UID table (GID table with groups): VPS ID, host ID, name from the VPS's
// /etc/passwd (/etc/group), and running processes per ID.
func (r *Runtime) UIDs(id container.ID, groups bool) (*UIDTable, error) {
	s, err := r.Status(id)
	if err != nil {
		return nil, err
	}
	if s.State == "deleted" {
		return nil, fmt.Errorf("VPS %d: %w", id, store.ErrNotExist)
	}
	t := &UIDTable{ID: s.ID, Groups: groups, UserNS: slices.Contains(s.Namespaces, "user"), Pool: r.Pool.String()}
	rg := uid.Identity
	if t.UserNS {
		if rg, err = uid.ParseRange(s.IDMap); err != nil {
			return nil, err
		}
	}
	t.Range = rg.String()
	file := "etc/passwd"
	if groups {
		file = "etc/group"
	}
	var accounts []uid.Account
	if f, err := r.openVPSFile(s, file); err == nil {
		if groups {
			accounts, _ = uid.ParseGroup(f)
		} else {
			accounts, _ = uid.ParsePasswd(f)
		}
		f.Close()
	}
	procs := map[uid.HostID]int{}
	if s.State == "running" {
		ps, err := pidns.List(pidns.HostPID(s.InitPID))
		if err == nil {
			for _, p := range ps {
				h := p.Status.Uid[0]
				if groups {
					h = p.Status.Gid[0]
				}
				procs[uid.HostID(h)]++
				t.Processes++
			}
		}
	}
	t.Entries = uid.Table(rg, accounts, procs)
	return t, nil
}

// openVPSFile opens a file of the VPS for reading, never following a tenant's symlink out of its
// root: through the running VPS's root, or else the private area over the template.
func (r *Runtime) openVPSFile(s *Status, rel string) (*os.File, error) {
	if s.State == "running" {
		return openInVPS(s.InitPID, rel)
	}
	if f, err := openInRoot(r.St.Path(s.ID, "private"), rel); err == nil {
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			return f, nil
		}
		f.Close() // an overlay whiteout or something odd: fall back to the template
	}
	tpl, err := template.Rootfs(r.St, s.Template)
	if err != nil {
		return nil, err
	}
	return openInRoot(tpl, rel)
}

func openInRoot(dir, rel string) (*os.File, error) {
	root, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(root)
	fd, err := unix.Openat2(root, rel, &unix.OpenHow{Flags: unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NOCTTY | unix.O_NONBLOCK,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS})
	if err != nil {
		return nil, &os.PathError{Op: "openat2", Path: filepath.Join(dir, rel), Err: err}
	}
	return os.NewFile(uintptr(fd), rel), nil
}

// ProcInfo is one process as `vpsctl ps` shows it.
type ProcInfo struct {
	VPS       container.ID  `json:"vps,omitempty"` // set in the spectator view only
	HostPID   int           `json:"host_pid"`
	VPSPID    int           `json:"vps_pid"`
	VPSUID    int64         `json:"vps_uid"` // -1: not mapped into the VPS
	HostUID   uint32        `json:"host_uid"`
	Owning    container.ID  `json:"owning"`
	Effective container.ID  `json:"effective"`
	Command   safetext.Text `json:"command"` // the VPS's: escaped in tables and JSON
}

// PS lists the processes of VPS id, or of every running VPS (the spectator view, Linux-VServer's
// context 1) when id is 0. It only reads: vpsctl offers no way to signal from it.
func (r *Runtime) PS(id container.ID) ([]ProcInfo, error) {
	var ss []*Status
	if id == container.HostID {
		all, err := r.List(false)
		if err != nil {
			return nil, err
		}
		ss = all
	} else {
		s, err := r.running(id, true)
		if err != nil {
			return nil, err
		}
		ss = []*Status{s}
	}
	out := []ProcInfo{}
	for _, s := range ss {
		rg := uid.Identity
		if slices.Contains(s.Namespaces, "user") {
			if p, err := uid.ParseRange(s.IDMap); err == nil {
				rg = p
			}
		}
		ps, err := pidns.List(pidns.HostPID(s.InitPID))
		if err != nil {
			continue // it stopped meanwhile
		}
		for _, p := range ps {
			pi := ProcInfo{HostPID: int(p.Host), VPSPID: int(p.VPS), HostUID: p.Status.Uid[0],
				VPSUID: -1, Effective: s.ID, Command: safetext.Text(p.Cmdline)}
			if g, ok := rg.ToGuest(uid.HostID(p.Status.Uid[0])); ok {
				pi.VPSUID = int64(g)
			}
			if pi.Command == "" {
				pi.Command = safetext.Text("[" + p.Status.Name + "]")
			}
			if id == container.HostID {
				pi.VPS = s.ID
			}
			if o, err := container.Owning(int(p.Host)); err == nil {
				pi.Owning = o
			}
			out = append(out, pi)
		}
	}
	return out, nil
}

// PIDInfo is the answer of `vpsctl pid` (OpenVZ's vzpid) for one host PID.
type PIDInfo struct {
	HostPID   int           `json:"host_pid"`
	Owning    container.ID  `json:"owning"`
	Effective container.ID  `json:"effective"`
	VPSPID    int           `json:"vps_pid"` // PID inside the owning (else effective) VPS; 0 if outside its PID namespace
	Command   safetext.Text `json:"command"` // the VPS's: escaped in tables and JSON
}

// ErrNoProcess reports a host PID that does not exist.
var ErrNoProcess = fmt.Errorf("no such process: %w", ErrBadValue)

// PIDs tells, for each host PID, its owning and effective VPS (0 = host) and its PID inside.
func (r *Runtime) PIDs(pids []int) ([]PIDInfo, error) {
	running, err := r.List(false)
	if err != nil {
		return nil, err
	}
	inits := map[container.ID]int{}
	for _, s := range running {
		inits[s.ID] = s.InitPID
	}
	out := make([]PIDInfo, 0, len(pids))
	for _, p := range pids {
		pi := PIDInfo{HostPID: p}
		o, err := container.Owning(p)
		if err != nil {
			return nil, fmt.Errorf("PID %d: %w", p, ErrNoProcess)
		}
		if _, ok := inits[o]; !ok && o != container.HostID {
			o = container.HostID // a stale group of a VPS that is not running
		}
		e, err := container.Effective(p, inits)
		if err != nil {
			return nil, fmt.Errorf("PID %d: %w", p, ErrNoProcess)
		}
		pi.Owning, pi.Effective = o, e
		for _, v := range []container.ID{o, e} {
			if v == container.HostID {
				continue
			}
			if vp, err := pidns.ToVPS(pidns.HostPID(inits[v]), pidns.HostPID(p)); err == nil {
				pi.VPSPID = int(vp)
				break
			}
		}
		if o == container.HostID && e == container.HostID {
			pi.VPSPID = p
		}
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p)); err == nil {
			pi.Command = safetext.Text(strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " ")))
		}
		out = append(out, pi)
	}
	return out, nil
}
