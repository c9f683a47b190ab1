package runtime

import (
	"github.com/vpsctl/vpsctl/cgroup"
	"github.com/vpsctl/vpsctl/uid"
)

// The VPS's own view of its groups (the hierarchies mounted again inside its cgroup namespace,
// so that an init such as systemd can manage its subtree) is built by the init child:
// guest_cgroups in nsenter/initchild.c.

// delegate hands the VPS's group to its root user (the seed's rule that a container manages
// the groups below its own): the VPS may mkdir subgroups and move its processes among them; the
// limits set by the host stay host-owned.
func delegate(cg cgroup.Manager, idmap uid.Range) error {
	return cg.Delegate(int(idmap.Host), int(idmap.Host))
}
