package monitor

import (
	"os"

	"github.com/vpsctl/vpsctl/cgroup"
)

// Leftovers are what a stop can leave to the background remover once every process of the VPS
// is gone and its run state is cleared: its groups and the mount namespaces held open while its
// processes exited (the VPS's; a stop's, its monitor's too), whose last close unmounts what is
// in them and waits for an RCU grace period. A remover killed half-way leaves groups the next
// start removes (repair) and namespaces that died with it.
type Leftovers struct {
	CG    cgroup.Manager // nil: none
	MntNS []int          // the held namespaces' fds
}

// Groups are the groups' directories.
func (l Leftovers) Groups() []string {
	var dirs []string
	if l.CG != nil {
		for _, d := range l.CG.Paths() {
			dirs = append(dirs, d)
		}
	}
	return dirs
}

// Hold are the held mount namespaces as files.
func (l Leftovers) Hold() []*os.File {
	var fs []*os.File
	for _, fd := range l.MntNS {
		fs = append(fs, os.NewFile(uintptr(fd), "mntns"))
	}
	return fs
}

// HeldNS are the namespace fds of fds that are open (>= 0), for Leftovers.MntNS.
func HeldNS(fds ...int) []int {
	var held []int
	for _, fd := range fds {
		if fd >= 0 {
			held = append(held, fd)
		}
	}
	return held
}
