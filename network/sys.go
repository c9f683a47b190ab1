package network

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"github.com/vpsctl/vpsctl/internal/sysfile"
	"golang.org/x/sys/unix"
)

// dump retries a netlink dump that the kernel interrupted because the table
// changed under it (NLM_F_DUMP_INTR), which would give a partial list.
func dump[T any](f func() (T, error)) (T, error) {
	var v T
	var err error
	for range 10 {
		if v, err = f(); !errors.Is(err, netlink.ErrDumpInterrupted) {
			return v, err
		}
	}
	return v, err
}

// vpsNetns is an open network namespace of a VPS with a netlink handle bound
// to it.
type vpsNetns struct {
	pid int
	ns  netns.NsHandle
	h   *netlink.Handle
}

// openNetns opens the network namespace of process pid. It refuses the
// host's own namespace: configuring "the VPS" there would put venet0 and
// default routes on the host.
func openNetns(pid int) (*vpsNetns, error) {
	if pid <= 0 {
		return nil, fmt.Errorf("init pid %d: %w", pid, ErrNotFound)
	}
	path := "/proc/" + strconv.Itoa(pid) + "/ns/net"
	var fd int
	err := sysfile.Retry(func() (err error) {
		fd, err = unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	ns := netns.NsHandle(fd)
	self, err := netns.Get()
	if err != nil {
		ns.Close()
		return nil, fmt.Errorf("own network namespace: %w", err)
	}
	same := ns.Equal(self)
	self.Close()
	if same {
		ns.Close()
		return nil, fmt.Errorf("init pid %d: %w", pid, errHostNetns)
	}
	h, err := handleAt(ns)
	if err != nil {
		ns.Close()
		return nil, fmt.Errorf("netlink handle in network namespace of pid %d: %w", pid, err)
	}
	return &vpsNetns{pid: pid, ns: ns, h: h}, nil
}

func (v *vpsNetns) Close() {
	v.h.Close()
	v.ns.Close()
}

// handleAt returns a netlink handle whose socket lives in ns.
//
// netlink.NewHandleAt setns()es the calling thread into ns to open the socket
// and back again, ignoring a failure of the way back. It runs on a goroutine
// that locks its thread and never unlocks it, so that should the way back
// ever fail, the thread dies with the goroutine instead of carrying the VPS's
// namespace to other goroutines (vishvananda/netns#17).
func handleAt(ns netns.NsHandle) (*netlink.Handle, error) {
	type result struct {
		h   *netlink.Handle
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
		ch <- result{h, err}
	}()
	r := <-ch
	return r.h, r.err
}

// procSys is where the host's sysctls are; a variable for tests.
var procSys = "/proc/sys"

// setHostSysctl writes val to a sysctl of the host's network namespace (the
// one this process runs in: /proc/sys/net shows the namespace of the reader).
func setHostSysctl(key, val string) error {
	return sysfile.WriteFile(procSys+"/"+key, []byte(val), 0, 0)
}

// hostSysctl reads a sysctl of the host's network namespace.
func hostSysctl(key string) (string, error) {
	b, err := sysfile.ReadFile(procSys + "/" + key)
	return strings.TrimSpace(string(b)), err
}

// isNotFound reports errors meaning an object is already gone.
func isNotFound(err error) bool {
	var lnf netlink.LinkNotFoundError
	return errors.As(err, &lnf) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENOENT) ||
		errors.Is(err, unix.ESRCH) || errors.Is(err, unix.EADDRNOTAVAIL)
}
