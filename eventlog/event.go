package eventlog

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// EventsFile and AuditFile are the logs' names in the state root.
const (
	EventsFile = "events.log"
	AuditFile  = "audit.log"
)

// Kind is what happened to a VPS.
type Kind string

// The kinds of event. Who logs each is in docs/OPERATIONS.md ("Events").
const (
	Created      Kind = "created"      // create committed the VPS
	Started      Kind = "started"      // a command (start, start --all, restart) booted it and its init runs
	Booted       Kind = "booted"       // the monitor booted the VPS's init again after a reboot
	Stopped      Kind = "stopped"      // its init is gone and it was torn down (cause: who or what)
	Rebooted     Kind = "rebooted"     // the guest asked for a reboot (its init died of SIGHUP)
	Destroyed    Kind = "destroyed"    // destroy committed
	Suspended    Kind = "suspended"    // frozen (or, cause "to disk", checkpointed and stopped)
	Resumed      Kind = "resumed"      // thawed (or restored from a suspend to disk)
	Checkpointed Kind = "checkpointed" // checkpoint wrote an image
	Restored     Kind = "restored"     // restore brought it back from an image
	OOMKill      Kind = "oom-kill"     // the kernel's OOM killer killed a process in it (Delta: how many)
	Failcnt      Kind = "failcnt"      // a beancounter refused something (Resource, Value, Delta)
	Set          Kind = "set"          // set changed its configuration (Keys)
)

var kinds = map[Kind]bool{Created: true, Started: true, Booted: true, Stopped: true, Rebooted: true,
	Destroyed: true, Suspended: true, Resumed: true, Checkpointed: true, Restored: true, OOMKill: true,
	Failcnt: true, Set: true}

// ErrBadEvent is an event that cannot be logged: an unknown kind or no VPS ID.
var ErrBadEvent = errors.New("bad event")

// Event is one line of STATE/events.log.
type Event struct {
	Time     time.Time `json:"time"` // RFC 3339 with nanoseconds
	ID       uint32    `json:"id"`
	Name     string    `json:"name,omitempty"`
	Event    Kind      `json:"event"`
	Cause    string    `json:"cause,omitempty"`    // why: "vpsctl stop", "stop --all", "guest poweroff", "init killed by SIGKILL"
	Keys     []string  `json:"keys,omitempty"`     // set: the configuration keys it changed
	Resource string    `json:"resource,omitempty"` // failcnt: the beancounter (numproc, physpages, ...)
	Value    uint64    `json:"value,omitempty"`    // failcnt, oom-kill: the counter now
	Delta    uint64    `json:"delta,omitempty"`    // failcnt, oom-kill: its rise since last seen
	PID      int       `json:"pid,omitempty"`      // the process that logged it
}

// maxCause and maxKeys keep a record well below maxLine whatever a caller passes.
const (
	maxCause = 1024
	maxKeys  = 64
)

// Check reports whether e can be logged.
func (e *Event) Check() error {
	if !kinds[e.Event] {
		return fmt.Errorf("%w: unknown kind %q", ErrBadEvent, e.Event)
	}
	if e.ID == 0 {
		return fmt.Errorf("%w: %s without a VPS ID", ErrBadEvent, e.Event)
	}
	return nil
}

// Emit appends e to l, filling in the time (now) and PID (this process) when unset, and
// shortening an overlong cause or key list (marked with "..."), so that one record stays
// one short line.
func (l *Log) Emit(e Event) error {
	if err := e.Check(); err != nil {
		return err
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	if e.PID == 0 {
		e.PID = os.Getpid()
	}
	if len(e.Cause) > maxCause {
		e.Cause = strings.ToValidUTF8(e.Cause[:maxCause], "") + "..."
	}
	if len(e.Name) > 64 {
		e.Name = e.Name[:64]
	}
	if len(e.Keys) > maxKeys {
		e.Keys = append(e.Keys[:maxKeys:maxKeys], "...")
	}
	return l.AppendJSON(e)
}

// Events returns the events log of state root root with the given caps.
func Events(root string, maxSize int64, keep int) *Log {
	return &Log{Path: filepath.Join(root, EventsFile), MaxSize: maxSize, Keep: keep, Mode: 0o640}
}

// Text renders e as `vpsctl events` prints it without --format json:
// "2026-01-02T15:04:05.000Z07:00 101 web started: cause [keys]".
func (e *Event) Text() string {
	var b strings.Builder
	b.WriteString(e.Time.Format("2006-01-02T15:04:05.000Z07:00"))
	b.WriteString(" ")
	b.WriteString(strconv.FormatUint(uint64(e.ID), 10))
	if e.Name != "" {
		b.WriteString(" " + e.Name)
	}
	b.WriteString(" " + string(e.Event))
	if e.Resource != "" {
		fmt.Fprintf(&b, " %s failcnt %d (+%d)", e.Resource, e.Value, e.Delta)
	} else if e.Event == OOMKill {
		fmt.Fprintf(&b, " %d (+%d)", e.Value, e.Delta)
	}
	if len(e.Keys) > 0 {
		b.WriteString(" " + strings.Join(e.Keys, ","))
	}
	if e.Cause != "" {
		b.WriteString(": " + e.Cause)
	}
	return b.String()
}

// ParseSince reads `events --since`'s argument: a duration back from now ("10m", "2h", "90s";
// Go's syntax, plus "d" for days) or a time (RFC 3339, with or without fraction and zone, or
// a date "2006-01-02"; without a zone it is local). It is pure: now is given.
func ParseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, fmt.Errorf("--since: empty: %w", ErrBadSince)
	}
	if d, ok := strings.CutSuffix(s, "d"); ok && d != "" && strings.Trim(d, "0123456789") == "" {
		n, err := strconv.Atoi(d)
		if err != nil || n > 36500 {
			return time.Time{}, fmt.Errorf("--since %q: too far back: %w", s, ErrBadSince)
		}
		return now.AddDate(0, 0, -n), nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("--since %q: a negative duration: %w", s, ErrBadSince)
		}
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		var t time.Time
		var err error
		if layout == time.RFC3339Nano {
			t, err = time.Parse(layout, s)
		} else {
			t, err = time.ParseInLocation(layout, s, now.Location())
		}
		if err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("--since %q: want a duration (10m, 2h, 7d) or a time (2006-01-02T15:04:05Z07:00): %w", s, ErrBadSince)
}

// ErrBadSince is a --since value that is neither a duration nor a time.
var ErrBadSince = errors.New("bad time")

// Rise is a counter that went up between two readings.
type Rise struct {
	Resource string
	From, To uint64
}

// Rises compares two readings of a VPS's counters (beancounter failcnts by resource, and
// "oom_kill") and returns those that went up, sorted by resource: the failcnt and oom-kill
// events to log. prev nil means no earlier reading (nothing is known to have risen); a
// resource missing from prev counts from 0 (a VPS that just booted has fresh counters: the
// caller stores an empty, non-nil reading at each boot). A counter that went down (its
// group was made anew) is a new baseline, not a rise.
func Rises(prev, cur map[string]uint64) []Rise {
	if prev == nil {
		return nil
	}
	var out []Rise
	for k, v := range cur {
		if p := prev[k]; v > p {
			out = append(out, Rise{Resource: k, From: p, To: v})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Resource < out[j].Resource })
	return out
}

// OOMCounter is the key of the OOM-kill count in a reading given to Rises and CounterEvents.
const OOMCounter = "oom_kill"

// CounterEvents turns the rises between two readings of VPS id's counters into events:
// oom-kill for OOMCounter, failcnt for every other resource.
func CounterEvents(id uint32, name string, prev, cur map[string]uint64) []Event {
	var out []Event
	for _, r := range Rises(prev, cur) {
		e := Event{ID: id, Name: name, Event: Failcnt, Resource: r.Resource, Value: r.To, Delta: r.To - r.From}
		if r.Resource == OOMCounter {
			e.Event, e.Resource = OOMKill, ""
		}
		out = append(out, e)
	}
	return out
}
