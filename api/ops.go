package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"
)

// Operation is a piece of work the API started (a create, a start, a template build...):
// POST answers with it when it is done, or at once with ?async=true, after which GET
// /v1/operations/{id} polls it and GET /v1/operations/{id}/wait awaits it.
type Operation struct {
	ID       string     `json:"id"`
	Action   string     `json:"action"`             // create, start, stop, ..., template-build
	VPS      uint32     `json:"vps,omitempty"`      // the VPS it acts on
	Template string     `json:"template,omitempty"` // the template it acts on
	Status   string     `json:"status"`             // running, success or failure
	Created  time.Time  `json:"created_at"`
	Finished *time.Time `json:"finished_at,omitempty"`
	Error    *Error     `json:"error,omitempty"`  // failure: why
	Result   any        `json:"result,omitempty"` // success: what it made (the VPS's status, ...)

	done chan struct{}
}

// Operation statuses.
const (
	opRunning = "running"
	opSuccess = "success"
	opFailure = "failure"
)

// operations is the table of recent operations. It is bounded: finished operations are
// kept for keepFinished, and at most maxOps at all (the oldest finished ones go first).
type operations struct {
	mu  sync.Mutex
	ops map[string]*Operation
}

const (
	keepFinished = time.Hour
	maxOps       = 1000
)

func newOperations() *operations { return &operations{ops: map[string]*Operation{}} }

func newID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// snapshot is a copy of op safe to encode while the operation runs on.
func (t *operations) snapshot(op *Operation) Operation {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := *op
	return c
}

func (t *operations) get(id string) (*Operation, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	op, ok := t.ops[id]
	return op, ok
}

func (t *operations) list() []Operation {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Operation, 0, len(t.ops))
	for _, op := range t.ops {
		out = append(out, *op)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out
}

// add registers op, dropping finished operations past their time, and the oldest finished
// ones while the table is full.
func (t *operations) add(op *Operation) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	var finished []*Operation
	for id, o := range t.ops {
		if o.Finished == nil {
			continue
		}
		if now.Sub(*o.Finished) > keepFinished {
			delete(t.ops, id)
			continue
		}
		finished = append(finished, o)
	}
	sort.Slice(finished, func(i, j int) bool { return finished[i].Finished.Before(*finished[j].Finished) })
	for len(t.ops) >= maxOps && len(finished) > 0 {
		delete(t.ops, finished[0].ID)
		finished = finished[1:]
	}
	t.ops[op.ID] = op
}

func (t *operations) finish(op *Operation, result any, e *Error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now().UTC()
	op.Finished = &now
	if e != nil {
		op.Status, op.Error = opFailure, e
	} else {
		op.Status, op.Result = opSuccess, result
	}
	close(op.done)
}

// start runs do as a new operation under the server's context and answers the request: at
// once with 202 and the running operation when the query asks for async=true, else when it
// is done, with okStatus and the finished operation, or with its error.
func (s *Server) start(w http.ResponseWriter, r *http.Request, q *query, op *Operation, okStatus int, do func(ctx context.Context) (any, error)) error {
	async, err := q.bool("async", false)
	if err != nil {
		return err
	}
	op.ID, op.Status, op.Created, op.done = newID(), opRunning, time.Now().UTC(), make(chan struct{})
	s.ops.add(op)
	handOver(r)
	go func() {
		res, err := do(s.base)
		var e *Error
		exit := 0
		if err != nil {
			e = s.errorOf(err)
			e.Op, exit = op.ID, e.ExitCode
			if e.Status >= 500 {
				s.log.Printf("operation %s (%s): %v", op.ID, op.Action, err)
			}
		}
		s.endAudit(r, exit)
		s.ops.finish(op, res, e)
	}()
	w.Header().Set("Location", "/v1/operations/"+op.ID)
	if async {
		writeJSON(w, http.StatusAccepted, s.ops.snapshot(op))
		return nil
	}
	select {
	case <-op.done:
	case <-r.Context().Done():
		return nil // the client left; the operation goes on
	}
	done := s.ops.snapshot(op)
	if done.Error != nil {
		writeJSON(w, done.Error.Status, map[string]*Error{"error": done.Error})
		return nil
	}
	writeJSON(w, okStatus, done)
	return nil
}

func (s *Server) listOperations(w http.ResponseWriter, r *http.Request) error {
	if _, err := newQuery(r); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.ops.list())
	return nil
}

func (s *Server) operation(r *http.Request) (*Operation, error) {
	op, ok := s.ops.get(r.PathValue("id"))
	if !ok {
		return nil, fmt.Errorf("operation %q: %w (finished ones are kept for %v)", r.PathValue("id"), errNotFound, keepFinished)
	}
	return op, nil
}

func (s *Server) getOperation(w http.ResponseWriter, r *http.Request) error {
	if _, err := newQuery(r); err != nil {
		return err
	}
	op, err := s.operation(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.ops.snapshot(op))
	return nil
}

// waitOperation answers when the operation is done, or after timeout seconds (default 60)
// with it still running.
func (s *Server) waitOperation(w http.ResponseWriter, r *http.Request) error {
	q, err := newQuery(r, "timeout")
	if err != nil {
		return err
	}
	secs, err := q.int("timeout", 60, 0, 3600)
	if err != nil {
		return err
	}
	op, err := s.operation(r)
	if err != nil {
		return err
	}
	t := time.NewTimer(time.Duration(secs) * time.Second)
	defer t.Stop()
	select {
	case <-op.done:
	case <-t.C:
	case <-r.Context().Done():
		return nil
	}
	writeJSON(w, http.StatusOK, s.ops.snapshot(op))
	return nil
}
