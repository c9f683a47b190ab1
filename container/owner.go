package container

import (
	"os"
	"strings"

	"github.com/vpsctl/vpsctl/cgroup"
)

// GroupRoot is the cgroup directory below which every VPS has its group ("vpsctl/ID").
const GroupRoot = "vpsctl"

// ServiceGroup is the group of vpsctl's own long-lived processes: the VPSs' monitors, the
// keepers of spare VPSs, the LXCFS it runs. The leading dot keeps it out of the vpsctl/ID rule
// (OwnerOfGroup: they are the host's).
const ServiceGroup = GroupRoot + "/.monitor"

// OwnerOfGroup returns the VPS that owns a cgroup path (as /proc/PID/cgroup shows it): the
// first "vpsctl/ID" in it. A VPS nested inside VPS 101 lives at vpsctl/101/vpsctl/201 as the
// host sees it, and is owned, from the host's view, by 101. Anything else is the host's.
func OwnerOfGroup(path string) ID {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	for i := 0; i+1 < len(parts); i++ {
		if parts[i] == GroupRoot {
			if id, err := ParseID(parts[i+1]); err == nil {
				return id
			}
			return HostID
		}
	}
	return HostID
}

// Owning returns the owning VPS of process pid: the VPS whose group it is in, where it was born
// or attached and what it is accounted to (the seed's owning container, like uid vs euid).
func Owning(pid int) (ID, error) {
	g, err := cgroup.ProcGroup(pid)
	if err != nil {
		return HostID, err
	}
	return OwnerOfGroup(g), nil
}

// Effective returns the VPS whose namespaces process pid executes in right now (the seed's
// effective container): the VPS in inits (ID -> host PID of its init) sharing the most of
// pid's namespaces that the host does not share. It differs from the owning VPS when the host
// acts inside a VPS without joining its group (nsenter -t INIT -n -u CMD).
func Effective(pid int, inits map[ID]int) (ID, error) {
	mine, err := ReadNSInodes(pid)
	if err != nil {
		return HostID, err
	}
	// Our own namespaces stand for the host's: vpsctl runs in them (and PID 1's may be
	// unreadable, e.g. under a sandbox's init).
	host, err := ReadNSInodes(os.Getpid())
	if err != nil {
		return HostID, err
	}
	best, bestN := HostID, 0
	for id, ip := range inits {
		theirs, err := ReadNSInodes(ip)
		if err != nil {
			continue
		}
		n := 0
		for ns, ino := range theirs {
			if ino == mine[ns] && ino != host[ns] {
				n++
			}
		}
		if n > bestN || n == bestN && n > 0 && id < best {
			best, bestN = id, n
		}
	}
	return best, nil
}
