package runtime

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/sys/mountinfo"
	"github.com/vpsctl/vpsctl/pidns"
)

// What a dump of a running VPS fails on that its processes show beforehand. CRIU dumps one
// namespace of each kind for the whole tree, except mount and network namespaces, which may
// nest: a service sandboxed by systemd with ProtectHostname= (uts), PrivateIPC= (ipc) or
// PrivateUsers= (user), or a container run inside the VPS (pid, cgroup, time), makes the dump
// fail ("Can't dump nested uts namespace"). Files: the anon-inode kinds CRIU has no dumper for
// (io_uring, userfaultfd, perf events, BPF programs, ...), devices other than the VPS's own
// few, processes being traced, and, without --tcp-established, connected TCP sockets.

// nestedNS are the namespace kinds CRIU cannot dump nested, with what usually makes them in a
// VPS.
var nestedNS = []struct{ kind, cause string }{
	{"uts", "systemd's ProtectHostname="},
	{"ipc", "systemd's PrivateIPC="},
	{"user", "systemd's PrivateUsers= or a rootless container"},
	{"pid", "a container or unshare --pid"},
	{"cgroup", "a container or unshare --cgroup"},
	{"time", "unshare --time"},
}

// anonDumpable are the anonymous-inode files CRIU dumps ("anon_inode:KIND" links); it refuses
// every other kind.
var anonDumpable = []string{"[eventfd]", "[eventpoll]", "inotify", "[fanotify]", "[pidfd]", "[signalfd]", "[timerfd]", "bpf-map"}

// devDumpable are the device files of a VPS that CRIU dumps (the VPS's /dev holds these, and
// its ptys).
var devDumpable = []string{"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty",
	"/dev/console", "/dev/ptmx", "/dev/net/tun"}

// vpsBlockers lists, one sentence each, what in the processes of the VPS whose init has host
// PID init would make a dump fail. Established TCP connections are listed unless tcp (they are
// then dumped, --tcp-established).
func vpsBlockers(init int, tcp bool) []string {
	procs, err := pidns.List(pidns.HostPID(init))
	if err != nil {
		return []string{fmt.Sprintf("cannot list the VPS's processes: %v", err)}
	}
	var out []string
	initNS := map[string]string{}
	for _, n := range nestedNS {
		initNS[n.kind], _ = os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", init, n.kind))
	}
	seen := map[string]bool{}   // namespaces already reported
	netns := map[string]int{}   // network namespaces seen, with a process in each
	sockets := map[uint64]int{} // socket inode -> VPS PID of a holder
	holder := map[int]pidns.Proc{}
	mounts := map[int]bool{} // the IDs of the mounts of every mount namespace in the VPS
	mountNS := map[string]bool{}
	type pathFD struct {
		who, fd, link string
		mnt           int
	}
	var pathFDs []pathFD
	for _, p := range procs {
		if p.Status.State == "Z" || p.Status.State == "X" {
			continue
		}
		holder[int(p.VPS)] = p
		who := describeProc(p)
		for _, n := range nestedNS {
			ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", p.Host, n.kind))
			if err != nil || ns == initNS[n.kind] || seen[ns] {
				continue
			}
			seen[ns] = true
			out = append(out, fmt.Sprintf("nested %s namespace held by %s: CRIU cannot dump it (made by %s)", n.kind, who, n.cause))
		}
		if tracer := statusField(p.Host, "TracerPid:"); tracer != "" && tracer != "0" {
			out = append(out, fmt.Sprintf("%s is being traced (ptrace by host PID %s): CRIU cannot seize it", who, tracer))
		}
		if ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", p.Host)); err == nil {
			if _, ok := netns[ns]; !ok {
				netns[ns] = int(p.Host)
			}
		}
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.Host))
		for _, fd := range fds {
			fdPath := fmt.Sprintf("/proc/%d/fd/%s", p.Host, fd.Name())
			link, err := os.Readlink(fdPath)
			if err != nil {
				continue
			}
			if ino, ok := socketInode(link); ok {
				if _, dup := sockets[ino]; !dup {
					sockets[ino] = int(p.VPS)
				}
				continue
			}
			if why := undumpableFile(link, fdPath); why != "" {
				out = append(out, fmt.Sprintf("%s (fd %s): %s", who, fd.Name(), why))
			} else if mnt := fileMount(p.Host, fd.Name(), link, fdPath); mnt >= 0 {
				pathFDs = append(pathFDs, pathFD{who, fd.Name(), link, mnt})
			}
		}
		addMounts(p.Host, mountNS, mounts)
	}
	// CRIU dumps every mount namespace of the tree: a file is dumpable if its mount is in any
	// (a service's private namespace holds copies, with IDs of their own, of the mounts its
	// files were opened on).
	for _, f := range pathFDs {
		if !mounts[f.mnt] {
			out = append(out, fmt.Sprintf("%s (fd %s): %s is on a mount outside the VPS (a host file handed in, e.g. an exec's output redirected to one): CRIU cannot dump it",
				f.who, f.fd, f.link))
		}
	}
	if !tcp {
		for _, pid := range netns {
			for _, f := range []string{"tcp", "tcp6"} {
				b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, f))
				if err != nil {
					continue
				}
				for _, c := range ParseTCPTable(string(b)) {
					vpid, ok := sockets[c.Inode]
					if !ok || c.State != tcpEstablished {
						continue
					}
					out = append(out, fmt.Sprintf("established TCP connection %s -> %s of %s: dump it with --tcp-established",
						c.Local, c.Remote, describeProc(holder[vpid])))
				}
			}
		}
	}
	return out
}

// describeProc names a VPS process for a blocker: its VPS PID, command and systemd unit.
func describeProc(p pidns.Proc) string {
	s := fmt.Sprintf("PID %d (%s", p.VPS, p.Status.Name)
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", p.Host)); err == nil {
		if u := UnitOf(string(b)); u != "" {
			s += ", unit " + u
		}
	}
	return s + ")"
}

// UnitOf returns the systemd unit a process belongs to, from the text of its /proc/PID/cgroup:
// the last component of its systemd (name=systemd, else cgroup2) path that names a unit
// ("" if none does).
func UnitOf(cgroupFile string) string {
	var p string
	for _, l := range strings.Split(cgroupFile, "\n") {
		f := strings.SplitN(l, ":", 3)
		if len(f) != 3 {
			continue
		}
		if f[1] == "name=systemd" || (f[0] == "0" && f[1] == "" && p == "") {
			p = f[2]
		}
	}
	for p != "/" && p != "." && p != "" {
		b := path.Base(p)
		for _, suffix := range []string{".service", ".scope", ".socket", ".mount", ".swap"} {
			if strings.HasSuffix(b, suffix) && len(b) > len(suffix) {
				return b
			}
		}
		p = path.Dir(p)
	}
	return ""
}

// statusField returns the value of one "Key:\tvalue" line of /proc/PID/status.
func statusField(pid pidns.HostPID, key string) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, key); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// socketInode parses a "socket:[INODE]" fd link.
func socketInode(link string) (uint64, bool) {
	s, ok := strings.CutPrefix(link, "socket:[")
	if !ok || !strings.HasSuffix(s, "]") {
		return 0, false
	}
	n, err := strconv.ParseUint(strings.TrimSuffix(s, "]"), 10, 64)
	return n, err == nil
}

// undumpableFile says why CRIU cannot dump the open file fdPath (/proc/PID/fd/N) whose link is
// link, or returns "".
func undumpableFile(link, fdPath string) string {
	if kind, ok := strings.CutPrefix(link, "anon_inode:"); ok {
		if slices.Contains(anonDumpable, kind) {
			return ""
		}
		return "open " + kind + " file: CRIU cannot dump this kind"
	}
	if strings.HasPrefix(link, "/dev/") && !strings.HasPrefix(link, "/dev/pts/") && !strings.HasPrefix(link, "/dev/shm/") &&
		!strings.HasPrefix(link, "/dev/mqueue/") && !slices.Contains(devDumpable, link) {
		// The link is the path in the VPS; the fd itself says whether it is a device.
		if fi, err := os.Stat(fdPath); err == nil && fi.Mode()&os.ModeDevice != 0 {
			return "open device " + link + ": CRIU dumps no device but the VPS's own few"
		}
	}
	return ""
}

// fileMount returns the mount ID (fdinfo's mnt_id) of the open file or directory fd of host
// process pid (fdPath, whose link is link), or -1: for pipes, sockets, anonymous inodes and
// devices (CRIU dumps ttys, the console among them, by their driver), and for memfds and SysV
// shared memory, which live on the kernel's internal mounts.
func fileMount(pid pidns.HostPID, fd, link, fdPath string) int {
	if !strings.HasPrefix(link, "/") || strings.HasPrefix(link, "/memfd:") || strings.HasPrefix(link, "/SYSV") {
		return -1
	}
	if fi, err := os.Stat(fdPath); err != nil || !(fi.Mode().IsRegular() || fi.IsDir()) {
		return -1
	}
	info, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, fd))
	if err != nil {
		return -1
	}
	for l := range strings.SplitSeq(string(info), "\n") {
		if v, ok := strings.CutPrefix(l, "mnt_id:"); ok {
			if id, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
				return id
			}
		}
	}
	return -1
}

// addMounts adds the mount IDs of host process pid's mount namespace to ids, once per
// namespace (seen).
func addMounts(pid pidns.HostPID, seen map[string]bool, ids map[int]bool) {
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid))
	if err != nil || seen[ns] {
		return
	}
	mounts, err := mountinfo.PidMountInfo(int(pid))
	if err != nil {
		return
	}
	seen[ns] = true
	for _, m := range mounts {
		ids[m.ID] = true
	}
}

// tcpEstablished is TCP_ESTABLISHED in /proc/net/tcp's st column.
const tcpEstablished = 1

// TCPConn is one line of /proc/net/tcp or tcp6.
type TCPConn struct {
	Local, Remote netip.AddrPort
	State         int
	Inode         uint64
}

// ParseTCPTable parses the text of /proc/net/tcp or /proc/net/tcp6 (lines it cannot parse are
// skipped). Addresses are hex in the kernel's byte order: 32-bit words in host order (little
// endian on every architecture vpsctl runs on), the port big-endian.
func ParseTCPTable(text string) []TCPConn {
	var out []TCPConn
	for _, l := range strings.Split(text, "\n") {
		f := strings.Fields(l)
		if len(f) < 10 || !strings.HasSuffix(f[0], ":") {
			continue
		}
		local, ok1 := parseProcAddr(f[1])
		remote, ok2 := parseProcAddr(f[2])
		st, err1 := strconv.ParseUint(f[3], 16, 8)
		ino, err2 := strconv.ParseUint(f[9], 10, 64)
		if !ok1 || !ok2 || err1 != nil || err2 != nil {
			continue
		}
		out = append(out, TCPConn{Local: local, Remote: remote, State: int(st), Inode: ino})
	}
	return out
}

// parseProcAddr parses "0100007F:0016" (IPv4) or a 32-digit IPv6 address and a port.
func parseProcAddr(s string) (netip.AddrPort, bool) {
	a, p, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}, false
	}
	port, err := strconv.ParseUint(p, 16, 16)
	raw, err2 := hex.DecodeString(a)
	if err != nil || err2 != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, false
	}
	// Each 32-bit word is in host (little-endian) order.
	for i := 0; i < len(raw); i += 4 {
		binary.BigEndian.PutUint32(raw[i:], binary.LittleEndian.Uint32(raw[i:]))
	}
	addr, _ := netip.AddrFromSlice(raw)
	return netip.AddrPortFrom(addr.Unmap(), uint16(port)), true
}
