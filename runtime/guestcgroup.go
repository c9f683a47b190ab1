package runtime

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/vpsctl/vpsctl/cgroup"
	"github.com/vpsctl/vpsctl/uid"
)

// delegatedFiles are the files of a VPS's own group that its root may write: enough to create
// and populate subgroups (an init such as systemd does), never the group's own limits.
var delegatedFiles = []string{"cgroup.procs", "tasks", "cgroup.clone_children", "cgroup.subtree_control", "cgroup.threads"}

// The VPS's own view of its groups (the hierarchies mounted again inside its cgroup namespace,
// so that an init such as systemd can manage its subtree) is built by the init child:
// guest_cgroups in nsenter/initchild.c.

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
