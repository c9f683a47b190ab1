package cgroup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
)

// Placement under systemd.
//
// On a host whose PID 1 is systemd and whose cgroups are v2 only, systemd owns the tree: a
// program that manages groups of its own asks for a delegated unit and keeps to its subtree
// (https://systemd.io/CGROUP_DELEGATION/; runc's systemd driver and systemd-nspawn do the
// same). A group made at the root behind systemd's back is one systemd may trim or re-parent.
// So there, group rel ("vpsctl/101") lives in the transient scope unit vpsctl-101.scope
// (Delegate=yes, in vpsctl.slice), at the same relative path:
//
//	/sys/fs/cgroup/vpsctl.slice/vpsctl-101.scope/   the scope: an inner node, never a process
//	        supervisor/                             the process that made the group (the
//	                                                VPS's monitor): a leaf
//	        vpsctl/101/                             the group itself, delegated on to the VPS
//
// Processes sit in leaves only (the kernel's no-internal-process rule, which the delegation
// doc restates): the monitor leaves the scope's own group for supervisor/ before controllers
// are enabled below the scope. The rel path keeps its "vpsctl/ID" components, so the owner of
// a process is read from its cgroup path as everywhere else. The scope ends when its last
// process has exited, and systemd then removes it with whatever is left in it.
//
// Hosts without systemd keep groups at the hierarchy roots, where nobody else manages them.

const (
	// sdSlice holds every scope vpsctl makes.
	sdSlice = "vpsctl.slice"
	// sdSupervisor is the leaf the scope's first process moves to.
	sdSupervisor = "supervisor"
	// sdJobTimeout bounds the wait for systemd to start a scope (it runs the job at once;
	// a host under emulation takes a second or two).
	sdJobTimeout = 30 * time.Second
	// sdRetries bounds the wait for a scope on its way out (see sdRetryWait).
	sdRetries = 20
)

// sdRetryWait is the pause between two asks for a scope on its way out; tests shorten it.
var sdRetryWait = 100 * time.Millisecond

// errScopeExists: systemd has a unit of the scope's name already.
var errScopeExists = errors.New("scope exists")

// systemdRun is where sd_booted(3) looks: the directory exists iff PID 1 is systemd.
var systemdRun = "/run/systemd/system"

// underSystemd reports whether systemd is PID 1 here (inside a VPS: the VPS's own systemd).
var underSystemd = sync.OnceValue(func() bool {
	fi, err := os.Stat(systemdRun)
	return err == nil && fi.IsDir()
})

// SystemdScopes reports whether groups are placed in systemd's delegated scopes here (PID 1 is
// systemd and cgroups are v2 only): a group's Create then moves its caller into its scope.
func SystemdScopes() bool {
	v2, err := unified()
	return err == nil && v2 && underSystemd()
}

// scopeUnit names rel's scope: rel escaped as systemd escapes a path ("vpsctl/101" becomes
// "vpsctl-101.scope"): one scope per group, so its lifetime is that group's supervisor's.
func scopeUnit(rel string) string {
	var b strings.Builder
	for i := 0; i < len(rel); i++ {
		c := rel[i]
		switch {
		case c == '/':
			b.WriteByte('-')
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_',
			c == '.' && i > 0 && rel[i-1] != '/':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, `\x%02x`, c)
		}
	}
	return b.String() + ".scope"
}

// sdScope is a group in its delegated scope: fs2 rooted at the scope's directory, so every
// subtree_control it writes is the scope's or below it, never systemd's.
type sdScope struct {
	*fs2
	unit, scopeDir string
	// start asks systemd for the scope with pid in it; tests replace it.
	start func(unit string, pid int) error
}

func newSystemdScope(mount, rel string) *sdScope {
	unit := scopeUnit(rel)
	dir := filepath.Join(mount, sdSlice, unit)
	return &sdScope{fs2: newFS2(dir, rel), unit: unit, scopeDir: dir, start: startScope}
}

// Create places the calling process (the group's supervisor) in the scope's supervisor leaf,
// asking systemd for the scope if there is none yet, then makes the group below the scope.
func (m *sdScope) Create() error {
	if err := m.supervise(os.Getpid()); err != nil {
		return err
	}
	return m.fs2.Create()
}

// supervise makes sure pid is in scopeDir/supervisor. systemd is asked each time, not only
// when the scope's directory is missing: a scope whose last process has just gone may still
// have its directory while systemd removes it, and a process put there would end up in a
// group of no unit.
func (m *sdScope) supervise(pid int) error {
	sup := filepath.Join(m.scopeDir, sdSupervisor)
	if in, err := inGroup(pid, sup); err != nil || in {
		return err
	}
	for try := 0; ; try++ {
		// systemd moves pid into the scope's own group; it leaves that for a leaf below.
		err := m.start(m.unit, pid)
		if err == nil {
			break
		}
		if !errors.Is(err, errScopeExists) {
			return err
		}
		// A live scope that outlived its supervisor (killed while the group still held
		// processes) is joined as it is: the new supervisor takes the leaf. One on its way
		// out is waited for, briefly, and asked for again.
		if _, err := os.Stat(m.scopeDir); err == nil {
			break
		}
		if try == sdRetries {
			return fmt.Errorf("systemd: %s exists, its group %s does not: %w", m.unit, m.scopeDir, ErrTimeout)
		}
		time.Sleep(sdRetryWait)
	}
	if _, err := mkdir(sup); err != nil {
		return err
	}
	return applyPid(sup, pid)
}

// inGroup reports whether pid's cgroup v2 path is dir's.
func inGroup(pid int, dir string) (bool, error) {
	g, err := ProcGroup(pid)
	if err != nil {
		return false, err
	}
	return filepath.Join(cgroupRoot, g) == dir, nil
}

// Spares: none on cgroup2 (see fs2).
func (m *sdScope) Spares() []string { return nil }

// startScope starts unit as a transient scope holding pid, through systemd's private bus
// socket (/run/systemd/private: no D-Bus daemon needed), and waits for the job's result.
func startScope(unit string, pid int) error {
	ctx, cancel := context.WithTimeout(context.Background(), sdJobTimeout)
	defer cancel()
	conn, err := sddbus.NewSystemdConnectionContext(ctx)
	if err != nil {
		return fmt.Errorf("systemd: connect: %w", err)
	}
	defer conn.Close()
	props := []sddbus.Property{
		sddbus.PropDescription("vpsctl group " + strings.TrimSuffix(unit, ".scope")),
		sddbus.PropSlice(sdSlice),
		sddbus.PropPids(uint32(pid)),
		{Name: "Delegate", Value: dbus.MakeVariant(true)},
		// A host shutdown stops vpsctl.service (which stops VPSs gracefully) before the
		// scopes, whose own stop would signal every process in them at once.
		{Name: "Before", Value: dbus.MakeVariant([]string{"vpsctl.service"})},
	}
	done := make(chan string, 1)
	if _, err := conn.StartTransientUnitContext(ctx, unit, "fail", props, done); err != nil {
		var de dbus.Error
		if errors.As(err, &de) && de.Name == "org.freedesktop.systemd1.UnitExists" {
			return fmt.Errorf("systemd: start %s: %w", unit, errScopeExists)
		}
		return fmt.Errorf("systemd: start %s: %w", unit, err)
	}
	select {
	case r := <-done:
		if r != "done" {
			return fmt.Errorf("systemd: start %s: job %s", unit, r)
		}
	case <-ctx.Done():
		return fmt.Errorf("systemd: start %s: %w", unit, ErrTimeout)
	}
	return nil
}
