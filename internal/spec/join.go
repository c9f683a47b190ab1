package spec

import (
	"github.com/vpsctl/vpsctl/cgroup"
	"github.com/vpsctl/vpsctl/prestart"
	"github.com/vpsctl/vpsctl/store"
)

// Join is how a command joins running VPS c, whose init is host PID pid, in its groups cg
// (where the init is now: cgroup.JoinFiles): as its root, with the default bounding set and
// environment. Exec adds the command to it; the
// monitor records it (prestart.JoinRecord) for the CLI's front door, which runs a plain
// `vpsctl exec` from the record alone.
func Join(c *store.Config, pid int, cg cgroup.Manager) prestart.Config {
	return prestart.Config{
		InitPID: pid, NSFlags: CloneFlags(c.Namespaces), Setgroups: true, CapDrop: CapMask(c),
		Env:    []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "USER=root", "LOGNAME=root", "container=vpsctl"},
		Groups: cgroup.JoinFiles(cg, pid),
	}
}
