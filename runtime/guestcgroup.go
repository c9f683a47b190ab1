package runtime

import (
	"bufio"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/vpsctl/vpsctl/cgroup"
	"github.com/vpsctl/vpsctl/uid"
	"golang.org/x/sys/unix"
)

// delegatedFiles are the files of a VPS's own group that its root may write: enough to create
// and populate subgroups (an init such as systemd does), never the group's own limits.
var delegatedFiles = []string{"cgroup.procs", "tasks", "cgroup.clone_children", "cgroup.subtree_control", "cgroup.threads"}

// delegate hands VPS's group directories to its root user (the seed's rule that a container
// manages the groups below its own): the VPS may mkdir subgroups and move its processes among
// them; the limits set by the host stay host-owned.
func delegate(cg cgroup.Manager, idmap uid.Range) error {
	uid, gid := int(idmap.Host), int(idmap.Host)
	for _, dir := range cg.Paths() {
		if err := os.Chown(dir, uid, gid); err != nil {
			return err
		}
		for _, f := range delegatedFiles {
			if err := os.Chown(filepath.Join(dir, f), uid, gid); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	return nil
}

// mountGuestCgroups gives the VPS a cgroup view it can manage: the host's hierarchies (v1
// controllers and named ones, or the v2 tree) mounted again inside the VPS's cgroup namespace,
// so their root is the VPS's own group. Runs in the init child, below the new root (cwd).
func mountGuestCgroups() error {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return at("read mountinfo", err)
	}
	defer f.Close()
	type hier struct{ dir, fstype, opts string }
	var hs []hier
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS ... - FSTYPE SOURCE SUPEROPTS"
		l := sc.Text()
		pre, post, ok := strings.Cut(l, " - ")
		if !ok {
			continue
		}
		pf, sf := strings.Fields(pre), strings.Fields(post)
		if len(pf) < 5 || len(sf) < 3 || !strings.HasPrefix(pf[4], "/sys/fs/cgroup") {
			continue
		}
		switch sf[0] {
		case "cgroup":
			var keep []string
			for _, o := range strings.Split(sf[2], ",") {
				if o != "rw" && o != "ro" {
					keep = append(keep, o)
				}
			}
			hs = append(hs, hier{pf[4], "cgroup", strings.Join(keep, ",")})
		case "cgroup2":
			// On a hybrid host the VPS has its own group in the unified tree too (see the
			// cgroup package), which its cgroup namespace makes its root there.
			hs = append(hs, hier{pf[4], "cgroup2", ""})
		}
	}
	if len(hs) == 0 {
		return nil
	}
	if hs[0].fstype == "cgroup2" && hs[0].dir == "/sys/fs/cgroup" && len(hs) == 1 {
		// Pure v2: one tree.
		return mountCgroupFS("sys/fs/cgroup", "cgroup2", "")
	}
	if err := unix.Mount("tmpfs", "sys/fs/cgroup", "tmpfs", msNoSuidDevExec, "mode=755,size=64k"); err != nil {
		return at("mount /sys/fs/cgroup", err)
	}
	for _, h := range hs {
		rel := strings.TrimPrefix(h.dir, "/")
		if err := os.MkdirAll(rel, 0o755); err != nil {
			return at("mkdir /"+rel, err)
		}
		if err := mountCgroupFS(rel, h.fstype, h.opts); err != nil {
			return err
		}
		// Co-mounted controllers (cpu,cpuacct) are reachable by either name, as on the host.
		if name := filepath.Base(rel); h.fstype == "cgroup" && strings.Contains(name, ",") {
			for _, c := range strings.Split(name, ",") {
				os.Symlink(name, filepath.Join(filepath.Dir(rel), c))
			}
		}
	}
	// The view is fixed: no new hierarchies may be mounted over it.
	return nil
}

func mountCgroupFS(target, fstype, opts string) error {
	if err := unix.Mount("cgroup", target, fstype, msNoSuidDevExec, opts); err != nil {
		return at("mount /"+target, &os.PathError{Op: "mount " + fstype, Path: opts, Err: err})
	}
	return nil
}
