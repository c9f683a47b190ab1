package monitor

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/vpsctl/vpsctl/cgroup"
	"github.com/vpsctl/vpsctl/container"
	"github.com/vpsctl/vpsctl/criu"
	"github.com/vpsctl/vpsctl/internal/idshift"
	"github.com/vpsctl/vpsctl/internal/spec"
	"github.com/vpsctl/vpsctl/internal/sysfile"
	"github.com/vpsctl/vpsctl/network"
	"github.com/vpsctl/vpsctl/store"
	"github.com/vpsctl/vpsctl/uid"
	"golang.org/x/sys/unix"
)

// ErrNoCheckpoint reports a missing or unusable image directory.
var ErrNoCheckpoint = fmt.Errorf("no usable checkpoint: %w", spec.ErrBadValue)

// CheckpointMeta is written next to the images (MetaFile).
type CheckpointMeta struct {
	ID        container.ID `json:"id"`
	Time      time.Time    `json:"time"`
	TTY       string       `json:"tty"` // the console's --external key at dump time
	Hostname  string       `json:"hostname"`
	IDMap     string       `json:"idmap"` // the UID range the images are for (see the remap)
	Bytes     int64        `json:"bytes"`
	Seconds   float64      `json:"seconds"`
	Running   bool         `json:"left_running"`
	CRIU      string       `json:"criu"`
	InitVPSID int          `json:"init_vps_pid"`
	// TCPEstablished: the images hold established TCP connections (restored with them).
	TCPEstablished bool `json:"tcp_established,omitempty"`
	// TCPClose: they are restored closed instead (a backup's: the peers went on long ago).
	TCPClose bool `json:"tcp_close,omitempty"`
	// Stopped are the VPS PIDs that were stopped by a signal at dump time.
	Stopped []int `json:"stopped,omitempty"`
	// CgroupRoot is the VPS's group at dump time (/vpsctl/ID): a VPS restored under another
	// ID has its groups moved under its own.
	CgroupRoot string `json:"cgroup_root,omitempty"`
	// GroupsIDMap is the UID range the dumped groups' owners are in, when the images were
	// remapped to IDMap since: the restore shifts the restored groups' owners too.
	GroupsIDMap string `json:"groups_idmap,omitempty"`
	// Externals are the mounts the dump left out, by criu's --external key: what the restore
	// mounts there again (see External).
	Externals map[string]External `json:"externals,omitempty"`
}

// External is a mount of a VPS that comes from the host and so is not in a dump: a LXCFS view
// of its own limits, or a --bindmount directory. A restore mounts it again, from this host's
// LXCFS or directory, with the VPS's own ID mapping, wherever the dump was taken.
type External struct {
	LXCFS  string `json:"lxcfs,omitempty"`  // the LXCFS file (lxcfs.Files), or
	Bind   string `json:"bind,omitempty"`   // the bind mount as the config spells it, or
	Device string `json:"device,omitempty"` // where a device node goes (DeviceTargets)
}

// MetaFile is the name of a checkpoint's CheckpointMeta in its image directory.
const MetaFile = "vpsctl-checkpoint.json"

// Write writes m into image directory dir.
func (m *CheckpointMeta) Write(dir string) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, MetaFile), append(b, '\n'), 0o600)
}

// ReadCheckpointMeta reads the CheckpointMeta of image directory dir.
func ReadCheckpointMeta(dir string) (*CheckpointMeta, error) {
	if _, err := os.Stat(filepath.Join(dir, "inventory.img")); err != nil {
		return nil, fmt.Errorf("%s: no CRIU image (inventory.img): %w", dir, ErrNoCheckpoint)
	}
	b, err := os.ReadFile(filepath.Join(dir, MetaFile))
	if err != nil {
		return nil, fmt.Errorf("%s: not a vpsctl checkpoint: %w", dir, ErrNoCheckpoint)
	}
	var m CheckpointMeta
	if err := json.Unmarshal(b, &m); err != nil || m.TTY == "" {
		return nil, fmt.Errorf("%s: corrupt %s: %w", dir, MetaFile, ErrNoCheckpoint)
	}
	return &m, nil
}

// restoreBoot is the monitor's first boot of a restore: criu re-creates the VPS from dir.
func (m *monitor) restoreBoot(c *store.Config, dir string) (*bootState, error) {
	meta, err := ReadCheckpointMeta(dir)
	if err != nil {
		return nil, err
	}
	b, idmap, userns, tpl, err := m.prepare(c)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			b.teardown()
		}
	}()
	// A user namespace with the VPS's ID map, only to idmap the template: the VPS's own one is
	// re-created by criu later.
	holder := exec.Command("/proc/self/exe")
	holder.Args[0] = "vpsctl-userns"
	holder.Env = []string{modeEnv + "=hold"}
	hin, err := holder.StdinPipe()
	if err != nil {
		return nil, err
	}
	attr := &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWUSER}
	if userns {
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(idmap.Host), Size: int(idmap.Size)}}
		attr.GidMappings = attr.UidMappings
	}
	holder.SysProcAttr = attr
	if err := holder.Start(); err != nil {
		return nil, fmt.Errorf("restore: user namespace holder: %w", err)
	}
	err = m.mountRootfs(c, tpl, holder.Process.Pid, userns)
	var extArgs []string
	if err == nil {
		var unmountExt func()
		var warnings []string
		extArgs, warnings, unmountExt, err = m.externalMounts(c, meta, holder.Process.Pid, userns, int(idmap.Host))
		if err == nil {
			defer unmountExt()
		}
		b.warnings = append(b.warnings, warnings...)
		if err != nil {
			m.dropRootfs()
		}
	}
	hin.Close()
	holder.Wait()
	if err != nil {
		return nil, err
	}
	defer m.dropRootfs()

	slave, consolePath, err := m.newConsole(b, idmap, userns)
	if err != nil {
		return nil, err
	}
	defer slave.Close()

	// Restored tasks read images themselves: the root task first as host root in its new, not
	// yet mapped user namespace (criu's prepare_timens), later all of them with the VPS's
	// credentials. So while the restore runs the images stay host root's and are readable by
	// the VPS root's group (0750, 0640; the directory's parents stay closed to it), and only
	// host root's again after it (0700, 0600).
	if userns {
		if err := ownImages(dir, int(idmap.Host)); err != nil {
			return nil, fmt.Errorf("restore: images: %w", err)
		}
		defer func() {
			if err := ownImages(dir, 0); err != nil {
				log.Printf("restore: images back to root: %v", err)
			}
		}()
	}
	// criu runs vpsctl itself as its action script: at "setup-namespaces" it builds the VPS's
	// network in the restored (still frozen) network namespace.
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	os.Setenv(modeEnv, "criu-action")
	os.Setenv("VPSCTL_ROOT", m.st.Root)
	os.Setenv("_VPSCTL_ID", strconv.FormatUint(uint64(m.id), 10))
	defer os.Unsetenv(modeEnv)
	b.undo.Add(func() {
		if err := network.Teardown(m.id, b.net); err != nil {
			log.Printf("network teardown: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), CheckpointTimeout)
	defer cancel()
	o := criu.RestoreOptions{Root: m.st.Path(m.id, "root"), ImagesDir: dir, ManageCgroups: true,
		InheritFds:     map[string]*os.File{meta.TTY: slave},
		TCPEstablished: meta.TCPEstablished, TCPClose: meta.TCPClose, LeaveStopped: m.restoreStopped, NetworkLock: "nftables",
		FileLocks: true, // harmless when the images hold none; criu refuses them otherwise
		ExtraArgs: append([]string{"--external", "mnt[console]:" + consolePath, "--empty-ns", "net", "--ext-mount-map", "auto", "--action-script", self}, extArgs...)}
	if own := "/" + spec.CgroupPath(m.id); meta.CgroupRoot != "" && meta.CgroupRoot != own {
		o.CgroupRoot = own // a VPS restored under another ID
	}
	pid, err := criu.Restore(ctx, o)
	if pid > 0 {
		b.setInit(pid)
	}
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	// criu restores the freezer state it dumped, frozen for a dump of a frozen VPS (a backup's
	// dump is one): a restored VPS runs.
	if err := b.cg.Thaw(); err != nil {
		return nil, fmt.Errorf("restore: thaw: %w", err)
	}
	if userns {
		if meta.GroupsIDMap != "" && meta.GroupsIDMap != c.IDMap {
			// criu made the groups with the owners they had at dump time, in the range the
			// images were remapped from.
			if err := shiftGroups(b.cg, meta.GroupsIDMap, idmap); err != nil {
				return nil, fmt.Errorf("restore: groups: %w", err)
			}
		}
		if err := spec.Delegate(b.cg, idmap); err != nil {
			log.Printf("cgroup delegation after restore: %v", err)
		}
	}
	ok = true
	return b, nil
}

// shiftGroups re-owns what in the VPS's groups (every hierarchy, the whole subtree) belongs
// to range from, into range to.
func shiftGroups(cg cgroup.Manager, from string, to uid.Range) error {
	fr, err := uid.ParseRange(from)
	if err != nil {
		return err
	}
	s, ok := idshift.New(fr, to)
	if !ok {
		return nil
	}
	for _, dir := range cg.Paths() {
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			var st unix.Stat_t
			if err := unix.Lstat(p, &st); err != nil {
				return nil
			}
			if u, g := s.ID(st.Uid), s.ID(st.Gid); u != st.Uid || g != st.Gid {
				return os.Lchown(p, int(u), int(g))
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// criuActionMain is criu's action script during a restore (see restoreBoot).
func criuActionMain() int {
	if os.Getenv("CRTOOLS_SCRIPT_ACTION") != "setup-namespaces" {
		return 0
	}
	id, err1 := container.ParseID(os.Getenv("_VPSCTL_ID"))
	pid, err2 := strconv.Atoi(os.Getenv("CRTOOLS_INIT_PID"))
	if err1 != nil || err2 != nil {
		fmt.Fprintln(os.Stderr, "vpsctl criu action: missing _VPSCTL_ID or CRTOOLS_INIT_PID")
		return 1
	}
	st, err := store.Open(os.Getenv("VPSCTL_ROOT"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "vpsctl criu action:", err)
		return 1
	}
	c, err := st.LoadConfig(id)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vpsctl criu action:", err)
		return 1
	}
	if !slices.Contains(c.Namespaces, "net") {
		return 0
	}
	nc, err := spec.Net(c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vpsctl criu action:", err)
		return 1
	}
	if _, err := network.Setup(id, pid, nc); err != nil {
		fmt.Fprintln(os.Stderr, "vpsctl criu action: network:", err)
		return 1
	}
	return 0
}

// holdMain keeps a user namespace alive until its stdin closes.
func holdMain() int {
	io.Copy(io.Discard, os.Stdin)
	return 0
}

// ownImages gives a checkpoint's image directory and everything in it to host root and group
// gid: with gid 0 directories 0700 and files 0600, else 0750 and 0640. It follows no link:
// each entry is opened with O_NOFOLLOW and changed through its descriptor, and symbolic links
// are left as they are.
func ownImages(dir string, gid int) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink != 0 || !(d.IsDir() || d.Type().IsRegular()) {
			return err
		}
		flags, mode := unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, uint32(0o600)
		if d.IsDir() {
			flags, mode = unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_DIRECTORY, 0o700
		}
		if gid != 0 {
			mode |= (mode & 0o500) >> 3 // the group may read (and search)
		}
		fd, err := sysfile.Open(p, flags, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := unix.Fchown(fd, 0, gid); err != nil {
			return &os.PathError{Op: "fchown", Path: p, Err: err}
		}
		if err := unix.Fchmod(fd, mode); err != nil {
			return &os.PathError{Op: "fchmod", Path: p, Err: err}
		}
		return nil
	})
}

// externalMounts makes what the dump left out (CheckpointMeta.Externals) mountable by criu:
// LXCFS's views from this host's LXCFS (the host's own files, with a warning, without one) and
// bind mounts from their directories, idmapped with the user namespace of process holder, each
// attached in a directory of our own mount namespace that the restored tasks, which make the
// mounts with the VPS's credentials, can reach (criu's --external mnt[KEY]:PATH; the state
// root is closed to them). It returns criu's arguments and what undoes the mounts.
func (m *monitor) externalMounts(c *store.Config, meta *CheckpointMeta, holder int, userns bool, rootUID int) (args, warnings []string, undo func(), err error) {
	undo = func() {}
	if len(meta.Externals) == 0 {
		return nil, nil, undo, nil
	}
	dir, err := os.MkdirTemp("/run", "vpsctl-restore-")
	if err != nil {
		return nil, nil, undo, err
	}
	var targets []string
	undo = func() {
		for _, t := range targets {
			unix.Unmount(t, unix.MNT_DETACH)
		}
		os.RemoveAll(dir)
	}
	fail := func(err error) ([]string, []string, func(), error) {
		undo()
		return nil, nil, func() {}, err
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		return fail(err)
	}
	var views map[string]int
	nsfd := -1
	for key, x := range meta.Externals {
		var fd int
		isDir := false
		switch {
		case x.LXCFS != "":
			if views == nil {
				views = map[string]int{}
				vs, _, lerr := lxcfsViews(m.st.Root, m.hostNS)
				if lerr != nil {
					warnings = append(warnings, fmt.Sprintf("no LXCFS views (%v): it sees the host's memory, CPUs and uptime", lerr))
				}
				for _, v := range vs {
					views[v.path] = v.fd
				}
				defer closeMounts(vs)
			}
			fd = -1
			if f, ok := views[x.LXCFS]; ok {
				fd, err = unix.Dup(f)
			} else {
				fd, err = unix.OpenTree(unix.AT_FDCWD, "/"+x.LXCFS, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
			}
			if err != nil {
				return fail(fmt.Errorf("LXCFS view %s: %w", x.LXCFS, err))
			}
		case x.Bind != "":
			bm, err := spec.ParseBindMount(x.Bind, m.st.Root)
			if err != nil {
				return fail(err)
			}
			if userns && nsfd < 0 {
				if nsfd, err = sysfile.Open(fmt.Sprintf("/proc/%d/ns/user", holder), os.O_RDONLY, 0); err != nil {
					return fail(err)
				}
				defer unix.Close(nsfd)
			}
			if fd, err = bindClone(bm, nsfd); err != nil {
				return fail(fmt.Errorf("bind mount %s: %w", bm, err))
			}
			isDir = true
		case x.Device != "":
			devs, err := spec.Devices(c)
			if err != nil {
				return fail(err)
			}
			i := slices.IndexFunc(devs, func(d spec.Device) bool { return "/"+deviceTarget(d) == x.Device })
			if i < 0 {
				return fail(fmt.Errorf("device node %s: not in the VPS's devices: %w", x.Device, spec.ErrBadValue))
			}
			host, _, err := m.deviceNode(devs[i], rootUID)
			if err == nil {
				fd, err = unix.OpenTree(unix.AT_FDCWD, host, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
			}
			if err != nil {
				return fail(fmt.Errorf("device node %s: %w", x.Device, err))
			}
		default:
			continue
		}
		target := filepath.Join(dir, key)
		if isDir {
			err = os.Mkdir(target, 0o755)
		} else {
			err = os.WriteFile(target, nil, 0o644)
		}
		if err == nil {
			err = unix.MoveMount(fd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH)
		}
		unix.Close(fd)
		if err != nil {
			return fail(fmt.Errorf("external mount %s: %w", key, err))
		}
		targets = append(targets, target)
		args = append(args, "--external", "mnt["+key+"]:"+target)
	}
	return args, warnings, undo, nil
}
