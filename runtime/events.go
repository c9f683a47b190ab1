package runtime

import (
	"fmt"

	"github.com/vpsctl/vpsctl/cgroup"
	"github.com/vpsctl/vpsctl/container"
	"github.com/vpsctl/vpsctl/eventlog"
	"github.com/vpsctl/vpsctl/monitor"
	"github.com/vpsctl/vpsctl/store"
)

// emit appends an event about VPS id, named name, to the events log (Runtime.Events). A log
// that cannot be written is a warning, never a failed command: what it records has happened.
// VPSs of vpsctl's own making (a run without an ID, spare VPSs: transient IDs) are not logged:
// a spare keeper makes and destroys thousands an hour, and a run's command line is in the audit
// log.
func (r *Runtime) emit(e eventlog.Event) {
	if r.Events == nil || e.ID >= store.TransientBase {
		return
	}
	if err := r.Events.Emit(e); err != nil && r.Warn != nil {
		fmt.Fprintf(r.Warn, "vpsctl: warning: VPS %d: %s not logged: %v\n", e.ID, e.Event, err)
	}
}

func (r *Runtime) event(id container.ID, name string, kind eventlog.Kind, cause string) {
	r.emit(eventlog.Event{ID: uint32(id), Name: name, Event: kind, Cause: cause})
}

// logCounters logs the rises of VPS id's counters since they were last read (cs: read now
// from its groups; see monitor.CounterEvents).
func (r *Runtime) logCounters(id container.ID, name string, cs *cgroup.Stats) {
	if r.Events == nil || id >= store.TransientBase {
		return
	}
	for _, e := range monitor.CounterEvents(r.St, id, name, cs) {
		r.emit(e)
	}
}

// logLastCounters is logCounters for the last reading of a VPS's groups (a stop's, once every
// process is gone; the next boot's groups count afresh): where no counter is above zero none
// can have risen, and the kept reading no longer matters, so its file is left alone (a fifth of
// a stop's time went to keeping a reading of zeros).
func (r *Runtime) logLastCounters(id container.ID, name string, cs *cgroup.Stats) {
	for _, v := range monitor.Reading(cs) {
		if v > 0 {
			r.logCounters(id, name, cs)
			return
		}
	}
}

// nameOf is VPS id's name, for its events ("" if its config cannot be read).
func (r *Runtime) nameOf(id container.ID) string {
	if c, err := r.St.LoadConfig(id); err == nil {
		return c.Name
	}
	return ""
}
