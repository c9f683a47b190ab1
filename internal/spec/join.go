package spec

import (
	"fmt"
	"os"

	"github.com/vpsctl/vpsctl/cgroup"
	"github.com/vpsctl/vpsctl/prestart"
	"github.com/vpsctl/vpsctl/store"
	"golang.org/x/sys/unix"
)

// Join is how a command joins running VPS c, whose init is host PID pid, in its groups cg
// (where the init is now: cgroup.JoinPlace): as its root, with the default bounding set and
// environment. Exec adds the command to it; the
// monitor records it (prestart.JoinRecord) for the CLI's front door, which runs a plain
// `vpsctl exec` from the record alone.
func Join(c *store.Config, pid int, cg cgroup.Manager) prestart.Config {
	flags := CloneFlags(c.Namespaces)
	if timeNSOwn(pid) {
		// A restored VPS runs in the time namespace criu made for it (its clocks go on from
		// the dump's): commands join it too, as they join every other namespace of its init,
		// or a later checkpoint finds them in another one and cannot dump them.
		flags |= unix.CLONE_NEWTIME
	}
	return prestart.Config{
		InitPID: pid, NSFlags: flags, Setgroups: true, CapDrop: CapMask(c),
		Env:   []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "USER=root", "LOGNAME=root", "container=vpsctl"},
		Place: cgroup.JoinPlace(cg, pid),
	}
}

// timeNSOwn reports whether process pid is in a time namespace other than ours.
func timeNSOwn(pid int) bool {
	theirs, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/time", pid))
	if err != nil {
		return false
	}
	ours, err := os.Readlink("/proc/self/ns/time")
	return err == nil && theirs != ours
}
