package monitor

import (
	"encoding/json"
	"log"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vpsctl/vpsctl/cgroup"
	"github.com/vpsctl/vpsctl/container"
	"github.com/vpsctl/vpsctl/eventlog"
	"github.com/vpsctl/vpsctl/internal/spec"
	"github.com/vpsctl/vpsctl/internal/sysfile"
	"github.com/vpsctl/vpsctl/store"
	"golang.org/x/sys/unix"
)

// What the monitor logs in the events log (docs/OPERATIONS.md, "Events"): the VPS booted again
// after a guest reboot, the guest asked for a reboot, the VPS stopped without a command asking
// (the guest powered off, its init died), and the counters that rose during a boot. Commands
// log the rest (package runtime).

// emit appends e to Events. A log that cannot be written is a line in the monitor's log, never
// a failed boot or teardown.
func emit(e eventlog.Event) {
	if Events == nil {
		return
	}
	if err := Events.Emit(e); err != nil {
		log.Printf("events log: %v", err)
	}
}

// name is the VPS's name for its events ("" if its config cannot be read).
func (m *monitor) name() string {
	if c, err := m.st.LoadConfig(m.id); err == nil {
		return c.Name
	}
	return ""
}

// booted is boot number boot done: the counters start again from nothing (the groups are new),
// and a boot after the first is the guest's reboot done ("started", "restored" of the first
// are the command's).
func (m *monitor) booted(boot int) {
	ResetCounters(m.st, m.id)
	if boot > 1 {
		emit(eventlog.Event{ID: uint32(m.id), Name: m.name(), Event: eventlog.Booted})
	}
}

// initEnded logs the end of a boot's init (wait status st) before its teardown: the counters'
// last rises, and then the reboot the guest asked for, or the stop, unless a command stopped
// the VPS (the stop file names a live process other than this one): that command logs it.
func (m *monitor) initEnded(st syscall.WaitStatus, reboot bool) {
	name := m.name()
	if cg, err := cgroup.New(spec.CgroupPath(m.id)); err == nil {
		if cs, err := cg.Failures(); err == nil {
			for _, e := range CounterEvents(m.st, m.id, name, cs) {
				emit(e)
			}
		}
	}
	if reboot {
		emit(eventlog.Event{ID: uint32(m.id), Name: name, Event: eventlog.Rebooted})
		return
	}
	cause := endCause(st)
	if b, err := sysfile.ReadFile(m.st.Path(m.id, StopFile)); err == nil {
		switch pid, err := strconv.Atoi(strings.TrimSpace(string(b))); {
		case err == nil && pid == os.Getpid():
			cause = "monitor got SIGTERM"
		case err == nil && unix.Kill(pid, 0) == nil:
			return // that command's stop
		}
	}
	emit(eventlog.Event{ID: uint32(m.id), Name: name, Event: eventlog.Stopped, Cause: cause})
}

// endCause says why an init that no command stopped ended: reboot(2) in a PID namespace kills
// its init with SIGINT for a halt or poweroff (pid_namespaces(7)), SIGHUP for a restart.
func endCause(st syscall.WaitStatus) string {
	switch {
	case st.Signaled() && st.Signal() == syscall.SIGINT:
		return "guest poweroff"
	case st.Signaled() && st.Signal() == syscall.SIGHUP:
		return "guest reboot, not done: a stop was asked"
	case st.Signaled():
		return "init killed by " + unix.SignalName(st.Signal())
	}
	return "init exited with status " + strconv.Itoa(st.ExitStatus())
}

// countersFile keeps, in a VPS's directory, the last reading of its counters that was compared
// (see CounterEvents), as JSON: {"numproc": 3, "oom_kill": 1, ...}.
const countersFile = "counters"

// Reading is what counter events compare: each beancounter's failcnt but the cpu one's (a CPU
// limit throttles every period it is reached: a rate, not a refusal) and the OOM kills, all of
// which cgroup.Manager.Failures reads (Stats too).
func Reading(cs *cgroup.Stats) map[string]uint64 {
	r := map[string]uint64{eventlog.OOMCounter: cs.OOMKills}
	for _, c := range cs.Counters {
		if c.Resource != "cpu" {
			r[c.Resource] = c.Failcnt
		}
	}
	return r
}

// CounterEvents compares the counters in cs, read now from VPS id's groups, with the last
// reading kept in its directory, keeps cs's as the new last reading, and returns an event for
// each counter that rose in between (eventlog.CounterEvents). Whoever reads a VPS's counters
// (stats, list, metrics, the end of a boot) calls it, so a rise is logged once, at the first
// reading after it. Two readers at once: one of them compares and the other gives up (the
// file's lock, not waited for long), so no rise is logged twice; a rise the loser saw is the
// next reading's. Failures to read or keep the reading lose at most that reading's events.
func CounterEvents(st *store.Store, id container.ID, name string, cs *cgroup.Stats) []eventlog.Event {
	cur := Reading(cs)
	var events []eventlog.Event
	withCounters(st, id, func(prev map[string]uint64, changed *bool) map[string]uint64 {
		events = eventlog.CounterEvents(uint32(id), name, prev, cur)
		*changed = prev == nil || !sameReading(prev, cur)
		return cur
	})
	return events
}

// ResetCounters keeps an empty reading for VPS id: its groups were made anew (a boot), so
// every counter of theirs counts from zero, and the next reading logs whatever rose from there.
func ResetCounters(st *store.Store, id container.ID) {
	withCounters(st, id, func(prev map[string]uint64, changed *bool) map[string]uint64 {
		*changed = prev == nil || len(prev) > 0
		return map[string]uint64{}
	})
}

func sameReading(a, b map[string]uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// withCounters runs f on VPS id's last reading (nil: none, or unreadable) under the file's
// lock and, if f says it changed, writes f's result back in place (a torn write after a crash
// reads as no reading: a new baseline, no events).
func withCounters(st *store.Store, id container.ID, f func(prev map[string]uint64, changed *bool) map[string]uint64) {
	path := st.Path(id, countersFile)
	fd, err := sysfile.Open(path, unix.O_RDWR|unix.O_CREAT, 0o600)
	if err != nil {
		return // the VPS is gone, or its directory is not ours to write
	}
	defer unix.Close(fd)
	if !lockBriefly(fd) {
		return
	}
	var prev map[string]uint64
	buf := make([]byte, 4096)
	if n, err := unix.Pread(fd, buf, 0); err == nil && n > 0 && n < len(buf) {
		if json.Unmarshal(buf[:n], &prev) != nil {
			prev = nil
		}
	}
	changed := false
	next := f(prev, &changed)
	if !changed {
		return
	}
	b, err := json.Marshal(next)
	if err != nil {
		return
	}
	if unix.Ftruncate(fd, 0) != nil {
		return
	}
	if _, err := unix.Pwrite(fd, b, 0); err != nil {
		log.Printf("VPS %d: %s: %v", id, path, err)
	}
}

// lockBriefly takes flock(LOCK_EX) on fd if it comes within 50 ms: holders keep it for
// microseconds, and one that does not (stopped with SIGSTOP) must not hold up a stats or a
// teardown.
func lockBriefly(fd int) bool {
	for range 50 {
		if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err == nil {
			return true
		} else if err != unix.EWOULDBLOCK && err != unix.EINTR {
			return false
		}
		time.Sleep(time.Millisecond)
	}
	return false
}
