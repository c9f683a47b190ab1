package monitor

import (
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/vpsctl/vpsctl/cgroup"
	"github.com/vpsctl/vpsctl/internal/proc"
	"github.com/vpsctl/vpsctl/internal/spec"
	"github.com/vpsctl/vpsctl/internal/sysfile"
	"github.com/vpsctl/vpsctl/network"
	"github.com/vpsctl/vpsctl/prestart"
	"github.com/vpsctl/vpsctl/store"
	"golang.org/x/sys/unix"
)

// Between boots a monitor is not a Go program. Once the VPS's init runs, the Go monitor
// execve()s its own binary into the C reaper (nsenter/reaper.c): same PID, same children, no Go
// runtime, a few hundred KiB instead of a Go runtime's megabytes per running VPS. The reaper
// waits for the init, serves the console and turns SIGTERM into a stop request. When the init
// exits it either exits at once (a `vpsctl stop` is waiting and cleans up itself) or execs the
// Go monitor again with "--after STATUS FDS", which tears the boot down (after) and, on an
// in-VPS reboot, boots again and goes back to the reaper.
//
//	Go monitor: boot ──execve──▶ C reaper: wait, console ──execve──▶ Go monitor: teardown, reboot?
//	(same process throughout; the console socket and its clients are handed over as fds)

// becomeReaper replaces this process with the C reaper for boot b. It returns only if it could
// not (then the caller waits in Go, as before the reaper existed).
func (m *monitor) becomeReaper(b *bootState) error {
	if b.master == nil {
		return errors.New("no reaper for a boot without a console")
	}
	keep := func(f *os.File) (int, error) {
		fd := int(f.Fd())
		_, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0)
		return fd, err
	}
	master, err := keep(b.master)
	if err != nil {
		return fmt.Errorf("reaper: console: %w", err)
	}
	logf, err := sysfile.OpenFile(m.st.Path(m.id, "console.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("reaper: console log: %w", err)
	}
	logfd, err := keep(logf)
	if err != nil {
		return fmt.Errorf("reaper: console log: %w", err)
	}
	listen, clients, err := m.console.files()
	if err != nil {
		return fmt.Errorf("reaper: console socket: %w", err)
	}
	defer func() {
		// Only reached if the exec failed: the Go monitor serves the console again.
		if listen != nil {
			if err := m.console.adoptListener(listen); err != nil {
				log.Printf("console socket: %v", err)
			}
		}
		for _, c := range clients {
			c.Close()
		}
	}()
	lfd := -1
	if listen != nil {
		if lfd, err = keep(listen); err != nil {
			return fmt.Errorf("reaper: console socket: %w", err)
		}
	}
	if m.hostNS >= 0 {
		if _, err := keep(os.NewFile(uintptr(m.hostNS), "host-mntns")); err != nil {
			return fmt.Errorf("reaper: host mount namespace: %w", err)
		}
	}
	msg := (&prestart.Msg{}).Add("id", strconv.FormatUint(uint64(m.id), 10)).AddInt("pid", b.pid)
	msg.AddInt("sig", int(spec.PoweroffSignal(b.pid))).AddInt("master", master).AddInt("log", logfd)
	msg.AddInt("logmax", maxConsoleLog).Add("logpath", m.st.Path(m.id, "console.log")).AddInt("hostns", m.hostNS).AddInt("listen", lfd).Add("stopfile", m.st.Path(m.id, StopFile))
	for _, c := range clients {
		fd, err := keep(c)
		if err != nil {
			return fmt.Errorf("reaper: console client: %w", err)
		}
		msg.AddInt("client", fd)
	}
	body, err := msg.Bytes()
	if err != nil {
		return fmt.Errorf("reaper: %w", err)
	}
	// The message goes through a pipe, written whole before the exec (a pipe holds 64 KiB; the
	// message is a few hundred bytes) and read by the reaper's first act.
	var p [2]int
	if err := unix.Pipe(p[:]); err != nil {
		return fmt.Errorf("reaper: %w", os.NewSyscallError("pipe", err))
	}
	_, werr := unix.Write(p[1], body)
	unix.Close(p[1])
	if werr != nil {
		unix.Close(p[0])
		return fmt.Errorf("reaper: %w", os.NewSyscallError("write", werr))
	}
	// The same environment whoever started this monitor (a spawn, or a start that forked):
	// the reaper passes it on when it execs the Go monitor again, as a monitor's stage.
	env := monitorEnv(m.st.Root)
	for i, e := range env {
		if strings.HasPrefix(e, modeEnv+"=") {
			env[i] = modeEnv + "=reaper:" + strconv.Itoa(p[0])
		}
	}
	argv := []string{"vpsctl-monitor", strconv.FormatUint(uint64(m.id), 10)}
	err = syscall.Exec("/proc/self/exe", argv, env)
	unix.Close(p[0])
	return fmt.Errorf("reaper: exec: %w", err)
}

// after continues a monitor that the C reaper handed back: the init exited with wait status st
// (a decimal int); fds are the console socket's and its clients' descriptors, comma-separated.
func (m *monitor) after(st, fds string) int {
	ws, err := strconv.Atoi(st)
	if err != nil {
		log.Printf("reaper handed back a bad status %q", st)
		ws = 0
	}
	m.console = newConsoleHub()
	for i, f := range strings.Split(fds, ",") {
		fd, err := strconv.Atoi(f)
		if err != nil || fd < 3 {
			continue
		}
		unix.CloseOnExec(fd)
		file := os.NewFile(uintptr(fd), "console")
		if i == 0 {
			if err := m.console.adoptListener(file); err != nil {
				log.Printf("console socket: %v (vpsctl console will not work)", err)
			}
		} else {
			m.console.adoptClient(file)
		}
	}
	m.dropRootfs() // the boot has ended
	// The run state must still be this monitor's (ownRun).
	run, err := m.ownRun()
	if err != nil {
		log.Printf("init exited (status %d), but %v: leaving the VPS as it is", ws, err)
		m.console.close()
		return 0
	}
	m.run = *run
	if !m.ended(syscall.WaitStatus(ws), m.cleanup) {
		m.console.close()
		m.st.ClearRun(m.id)
		os.Remove(m.st.Path(m.id, StopFile))
		return 0
	}
	return m.loop(m.run.Boots + 1)
}

// ownRun returns the VPS's run state if it is still this monitor's. If it is gone or names
// another monitor, a command took the VPS over after its init died (a stop that did not wait
// for us, a repair): the groups and the network may already be a new boot's, and are not ours
// to remove.
func (m *monitor) ownRun() (*store.RunState, error) {
	run, err := m.st.LoadRun(m.id)
	if err == nil && (run.MonitorPID != os.Getpid() || run.MonitorStart != proc.Start(os.Getpid())) {
		err = fmt.Errorf("the run state names monitor %d", run.MonitorPID)
	}
	if err != nil {
		return nil, fmt.Errorf("the VPS's run state is no longer this monitor's: %w", err)
	}
	return run, nil
}

// cleanup removes what a boot made on the host, for a boot the reaper watched: its cgroups and
// its network. Its mounts went with its mount namespace, its console pty with the reaper.
func (m *monitor) cleanup() {
	if cg, err := cgroup.New(spec.CgroupPath(m.id)); err == nil {
		if err := RemoveGroups(cg); err != nil {
			log.Printf("cgroup: %v", err)
		}
	}
	c, err := m.st.LoadConfig(m.id)
	if err != nil || !slices.Contains(c.Namespaces, "net") {
		return
	}
	if nc, err := spec.Net(c); err == nil {
		if err := network.Teardown(m.id, nc); err != nil {
			log.Printf("network teardown: %v", err)
		}
	}
}

// files returns the console socket and its clients as files (duplicates) for the reaper. It
// stops accepting first: a connection accepted here after the hand-over would be closed by the
// exec; one still in the socket's backlog is the reaper's to accept.
func (h *consoleHub) files() (listen *os.File, clients []*os.File, err error) {
	if ul, ok := h.ln.(*net.UnixListener); ok {
		if listen, err = ul.File(); err != nil {
			return nil, nil, err
		}
		ul.SetUnlinkOnClose(false) // the socket lives on in the duplicate
		ul.Close()
		<-h.accepting
		h.ln = nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.clients {
		if uc, ok := c.(*net.UnixConn); ok {
			f, err := uc.File()
			if err != nil {
				continue
			}
			clients = append(clients, f)
		}
	}
	return listen, clients, nil
}

// adoptListener serves the console socket inherited from the reaper.
func (h *consoleHub) adoptListener(f *os.File) error {
	ln, err := net.FileListener(f)
	f.Close()
	if err != nil {
		return err
	}
	h.serveListener(ln)
	return nil
}

// adoptClient takes over a `vpsctl console` connection inherited from the reaper.
func (h *consoleHub) adoptClient(f *os.File) {
	c, err := net.FileConn(f)
	f.Close()
	if err == nil {
		h.addClient(c)
	}
}
