package api

import (
	"bytes"
	"fmt"
	"net/http"
	"time"

	"github.com/vpsctl/vpsctl/eventlog"
	"github.com/vpsctl/vpsctl/runtime"
)

// events streams STATE/events.log as server-sent events (text/event-stream): one event per
// record, its data the record's JSON line, its id the record's time, so that a client that
// reconnects with Last-Event-ID (as EventSource does by itself) goes on after the last one it
// saw. follow=true keeps the stream open for new records; without it the answer ends after
// the records there are.
func (s *Server) events(w http.ResponseWriter, r *http.Request) error {
	q, err := newQuery(r, "since", "follow")
	if err != nil {
		return err
	}
	follow, err := q.bool("follow", false)
	if err != nil {
		return err
	}
	var since time.Time
	if v := q.str("since"); v != "" {
		if since, err = eventlog.ParseSince(v, time.Now()); err != nil {
			return fmt.Errorf("since: %w: %w", runtime.ErrBadValue, err)
		}
	}
	after := time.Time{}
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		t, err := time.Parse(time.RFC3339Nano, id)
		if err != nil {
			return badf("Last-Event-ID %q: want an event's id (its time)", id)
		}
		after = t
	}
	log := eventlog.Events(s.rt.St.Root, 0, 0)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	send := func(ln eventlog.Line) error {
		if !after.IsZero() && !ln.Time.After(after) {
			return nil
		}
		var b bytes.Buffer
		fmt.Fprintf(&b, "id: %s\nevent: vps\ndata: %s\n\n", ln.Time.Format(time.RFC3339Nano), bytes.TrimSpace(ln.Raw))
		if _, err := w.Write(b.Bytes()); err != nil {
			return err
		}
		if flusher != nil {
			flusher.Flush()
		}
		return nil
	}
	if !follow {
		if err := log.Read(since, send); err != nil {
			s.log.Printf("events: %v", err)
		}
		return nil
	}
	if flusher != nil {
		flusher.Flush() // the headers: the client knows the stream is open
	}
	log.Follow(r.Context(), since, 0, send) // ends with the request
	return nil
}
