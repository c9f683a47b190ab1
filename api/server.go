// Package api is vpsctl's HTTP/JSON API (`vpsctl serve`), for control panels and automation:
// VPSs, their actions, exec, templates, events and metrics, as resources under /v1, described
// by the OpenAPI 3 document openapi.json (served at /v1/openapi.json).
//
// It is a thin layer over package runtime, as the CLI is: every request runs the library's
// operation, which takes the same locks as a vpsctl command, so the CLI and the API can be
// used at once on one host and see the same VPSs.
//
// Invariants:
//
//   - The server keeps no state of its own. What a VPS is lives in the state root; the only
//     thing in the server's memory is the table of recent operations (a handle on work in
//     progress and its outcome for a while after, see ops.go), which a restarted server
//     forgets without losing anything a VPS is.
//   - Work the API starts is not the request's: an operation runs under the server's
//     context, so a client that disconnects does not cut a create or a start half-way.
//     Only exec, which answers with the command's output, ends with its request.
//   - Every error answer is JSON {"error": {"status", "exit_code", "message"}}: the HTTP
//     status, and the exit code and message the same failure gives on the command line (the
//     one table in cmd/vpsctl/exitcodes.go, handed in as Classify).
//   - A request that does not match the document is refused with 400 before anything runs:
//     unknown fields, wrong types, malformed values.
package api

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/vpsctl/vpsctl/eventlog"
	"github.com/vpsctl/vpsctl/runtime"
)

// OpenAPI is the API's OpenAPI 3 document (docs/openapi.json is the same file).
//
//go:embed openapi.json
var OpenAPI []byte

// Server serves the API over one runtime.
type Server struct {
	rt *runtime.Runtime
	// classify maps an error to vpsctl's exit code and an HTTP status.
	classify func(error) (exit, status int)
	version  any
	ops      *operations
	// base is the context operations run under: cancelled when the server shuts down.
	base context.Context
	log  *log.Logger
	// audit is the audit log changing requests write to (audit.go); nil: none.
	audit *eventlog.Log
}

// Options configure a Server.
type Options struct {
	// Classify maps an error to its exit code and HTTP status (vpsctl's one table).
	Classify func(error) (exit, status int)
	// Version is what GET /v1/version answers (any JSON value).
	Version any
	// Log receives one line per failed request and operation; nil: the standard logger.
	Log *log.Logger
	// AuditLog receives a line per request that changes something, as the CLI's commands
	// write (set the http.Server's ConnContext to ConnContext to name unix callers); nil: none.
	AuditLog *eventlog.Log
}

// New returns a server over rt. Operations run under ctx.
func New(ctx context.Context, rt *runtime.Runtime, o Options) *Server {
	if o.Log == nil {
		o.Log = log.Default()
	}
	return &Server{rt: rt, classify: o.Classify, version: o.Version, ops: newOperations(), base: ctx, log: o.Log, audit: o.AuditLog}
}

// route is one operation of the API: the mux's pattern and its handler. routes() is the one
// list, which the tests compare with the OpenAPI document.
type route struct {
	method, path string
	handle       func(*Server, http.ResponseWriter, *http.Request) error
}

func routes() []route {
	rs := []route{
		{"GET", "/v1/version", (*Server).getVersion},
		{"GET", "/v1/openapi.json", (*Server).getOpenAPI},
		{"GET", "/v1/vps", (*Server).listVPS},
		{"POST", "/v1/vps", (*Server).createVPS},
		{"GET", "/v1/vps/{ref}", (*Server).getVPS},
		{"PATCH", "/v1/vps/{ref}", (*Server).setVPS},
		{"DELETE", "/v1/vps/{ref}", (*Server).destroyVPS},
		{"GET", "/v1/vps/{ref}/stats", (*Server).statsVPS},
		{"POST", "/v1/vps/{ref}/exec", (*Server).execVPS},
		{"GET", "/v1/templates", (*Server).listTemplates},
		{"POST", "/v1/templates", (*Server).buildTemplate},
		{"GET", "/v1/templates/{name}", (*Server).getTemplate},
		{"DELETE", "/v1/templates/{name}", (*Server).removeTemplate},
		{"GET", "/v1/operations", (*Server).listOperations},
		{"GET", "/v1/operations/{id}", (*Server).getOperation},
		{"GET", "/v1/operations/{id}/wait", (*Server).waitOperation},
		{"GET", "/v1/events", (*Server).events},
		{"GET", "/v1/metrics", (*Server).metrics},
	}
	for _, a := range actions {
		rs = append(rs, route{"POST", "/v1/vps/{ref}/" + a.name, a.handler()})
	}
	return rs
}

// Handler returns the API's HTTP handler.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	allow := map[string][]string{}
	for _, rt := range routes() {
		mux.HandleFunc(rt.method+" "+rt.path, func(w http.ResponseWriter, r *http.Request) {
			r = s.beginAudit(r, rt.path)
			err := rt.handle(s, w, r)
			if err != nil {
				s.fail(w, r, err)
			}
			s.endRequest(r, err)
		})
		allow[rt.path] = append(allow[rt.path], rt.method)
	}
	// A known path with another method: 405 and the methods it has (a pattern without a
	// method is less specific than those with one, so it only gets what they leave).
	for path, methods := range allow {
		list := strings.Join(methods, ", ")
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", list)
			s.fail(w, r, fmt.Errorf("%s %s: %w (allowed: %s)", r.Method, r.URL.Path, errMethod, list))
		})
	}
	// Anything else is a JSON 404.
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, fmt.Errorf("no such resource %s: %w", r.URL.Path, errNotFound))
	})
	return mux
}

// errNotFound is a path the API does not have. It is the API's, not the library's: it maps
// to HTTP 404 without an exit code of the CLI's.
var errNotFound = errors.New("not found")

// errMethod is a known path asked with a method it does not have (HTTP 405).
var errMethod = errors.New("method not allowed")

// Error is the body of every error answer, under "error".
type Error struct {
	Status   int    `json:"status"`              // the HTTP status
	ExitCode int    `json:"exit_code"`           // what vpsctl exits with for the same failure
	Message  string `json:"message"`             // what vpsctl prints for it
	Op       string `json:"operation,omitempty"` // the operation that failed, if one did
}

// errorOf turns err into an Error.
func (s *Server) errorOf(err error) *Error {
	// The API's own failures have the CLI's usage code: a path or a parameter the API does
	// not have is a command line vpsctl does not have.
	usage, _ := s.classify(runtime.ErrUsage)
	if errors.Is(err, errNotFound) {
		return &Error{Status: http.StatusNotFound, ExitCode: usage, Message: err.Error()}
	}
	if errors.Is(err, errMethod) {
		return &Error{Status: http.StatusMethodNotAllowed, ExitCode: usage, Message: err.Error()}
	}
	var be *badRequest
	if errors.As(err, &be) {
		return &Error{Status: http.StatusBadRequest, ExitCode: usage, Message: err.Error()}
	}
	code, status := s.classify(err)
	return &Error{Status: status, ExitCode: code, Message: err.Error()}
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	e := s.errorOf(err)
	if e.Status >= 500 {
		s.log.Printf("%s %s: %v", r.Method, r.URL.Path, err)
	}
	writeJSON(w, e.Status, map[string]*Error{"error": e})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":{"status":500,"exit_code":3,"message":"cannot encode the answer"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// badRequest is a request that does not match the API: malformed JSON, unknown fields, a
// query parameter of the wrong type. It answers 400 with the CLI's usage exit code.
type badRequest struct{ msg string }

func (e *badRequest) Error() string { return e.msg }

func badf(format string, a ...any) error { return &badRequest{fmt.Sprintf(format, a...)} }

// maxBody bounds a request body: the largest legitimate one (a create with many addresses,
// an exec's stdin) is far smaller.
const maxBody = 1 << 20

// decode reads r's JSON body into v, refusing unknown fields, trailing data and, unless
// optional, an empty body. The Content-Type is not checked: `curl -d` sends form encoding.
func decode(r *http.Request, v any, optional bool) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return badf("body: %v", err)
	}
	if len(body) > maxBody {
		return badf("body larger than %d bytes", maxBody)
	}
	if strings.TrimSpace(string(body)) == "" {
		if optional {
			return nil
		}
		return badf("body: a JSON object is required")
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badf("body: %v", err)
	}
	if dec.More() {
		return badf("body: data after the JSON object")
	}
	return nil
}

// query reads the query parameters a route knows, refusing others: a misspelt parameter
// would otherwise be silently ignored.
type query struct {
	r     *http.Request
	known []string
}

func newQuery(r *http.Request, known ...string) (*query, error) {
	for k := range r.URL.Query() {
		found := false
		for _, n := range known {
			found = found || n == k
		}
		if !found {
			return nil, badf("unknown query parameter %q", k)
		}
	}
	return &query{r: r, known: known}, nil
}

func (q *query) bool(name string, def bool) (bool, error) {
	v := q.r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	switch v {
	case "true", "1":
		return true, nil
	case "false", "0":
		return false, nil
	}
	return false, badf("query parameter %s=%q: want true or false", name, v)
}

func (q *query) int(name string, def, lo, hi int) (int, error) {
	v := q.r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, badf("query parameter %s=%q: want an integer %d..%d", name, v, lo, hi)
	}
	return n, nil
}

func (q *query) str(name string) string { return q.r.URL.Query().Get(name) }

func (s *Server) getVersion(w http.ResponseWriter, r *http.Request) error {
	if _, err := newQuery(r); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.version)
	return nil
}

func (s *Server) getOpenAPI(w http.ResponseWriter, r *http.Request) error {
	if _, err := newQuery(r); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(OpenAPI)
	return nil
}

// seconds turns a JSON number of seconds into a duration, refusing what is out of range.
func seconds(name string, v *float64, def, max time.Duration) (time.Duration, error) {
	if v == nil {
		return def, nil
	}
	if *v < 0 || *v > max.Seconds() {
		return 0, badf("%s: want 0..%.0f seconds", name, max.Seconds())
	}
	return time.Duration(*v * float64(time.Second)), nil
}
