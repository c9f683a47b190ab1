package monitor

import (
	"os"

	"github.com/vpsctl/vpsctl/cgroup"
)

// Leftovers are what a stop can leave to the background remover once every process of the VPS
// is gone and its run state is cleared: its groups and its mount namespace (held, -1: none). A
// remover killed half-way leaves groups the next start removes (repair) and a namespace that
// died with it.
type Leftovers struct {
	CG    cgroup.Manager // nil: none
	MntNS int            // a held mount namespace's fd; -1: none
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

// Hold is the held mount namespace as a file (none: nil).
func (l Leftovers) Hold() []*os.File {
	if l.MntNS < 0 {
		return nil
	}
	return []*os.File{os.NewFile(uintptr(l.MntNS), "vps-mntns")}
}
