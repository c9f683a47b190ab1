package spec

import (
	"strconv"

	"github.com/vpsctl/vpsctl/cgroup"
	"github.com/vpsctl/vpsctl/container"
	"github.com/vpsctl/vpsctl/uid"
)

// CgroupPath is the group of VPS id, below vpsctl's parent group. Inside a VPS (with its own
// cgroup namespace) the same path lands below the VPS's own group: nested VPSs nest.
func CgroupPath(id container.ID) string { return "vpsctl/" + strconv.FormatUint(uint64(id), 10) }

// The VPS's own view of its groups (the hierarchies mounted again inside its cgroup namespace,
// so that an init such as systemd can manage its subtree) is built by the init child:
// guest_cgroups in prestart/initchild.c.

// Delegate hands the VPS's group to its root user (the seed's rule that a container manages
// the groups below its own): the VPS may mkdir subgroups and move its processes among them; the
// limits set by the host stay host-owned.
func Delegate(cg cgroup.Manager, idmap uid.Range) error {
	return cg.Delegate(int(idmap.Host), int(idmap.Host))
}
