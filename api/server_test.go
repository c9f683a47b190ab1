package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/vpsctl/vpsctl/container"
	"github.com/vpsctl/vpsctl/eventlog"
	"github.com/vpsctl/vpsctl/runtime"
	"github.com/vpsctl/vpsctl/store"
)

// classifyForTest stands in for cmd/vpsctl's table: enough of it to tell the paths apart.
func classifyForTest(err error) (int, int) {
	switch {
	case errors.Is(err, store.ErrNotExist):
		return 43, http.StatusNotFound
	case errors.Is(err, store.ErrNoTemplate):
		return 91, http.StatusNotFound
	case errors.Is(err, runtime.ErrUsage):
		return 20, http.StatusBadRequest
	case errors.Is(err, runtime.ErrBadValue), errors.Is(err, container.ErrBadID):
		return 21, http.StatusBadRequest
	}
	return 3, http.StatusInternalServerError
}

func newTestServer(t *testing.T) (*httptest.Server, *runtime.Runtime) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the state root's locks and directories are root's")
	}
	rt, err := runtime.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := New(context.Background(), rt, Options{Classify: classifyForTest, Version: map[string]string{"version": "test"},
		Log: log.New(io.Discard, "", 0)})
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return ts, rt
}

// TestRoutesMatchOpenAPI: the document describes exactly the server's routes, each with an
// operationId and a default (error) answer, and kin-openapi finds it valid OpenAPI 3.
func TestRoutesMatchOpenAPI(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.json is not valid OpenAPI 3: %v", err)
	}
	var inDoc, inServer []string
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			inDoc = append(inDoc, method+" "+path)
			if op.OperationID == "" {
				t.Errorf("%s %s: no operationId", method, path)
			}
			if op.Responses.Default() == nil {
				t.Errorf("%s %s: no default (error) response", method, path)
			}
		}
	}
	for _, r := range routes() {
		inServer = append(inServer, r.method+" "+r.path)
	}
	sort.Strings(inDoc)
	sort.Strings(inServer)
	if !slices.Equal(inDoc, inServer) {
		t.Fatalf("document and server differ:\ndocument: %v\nserver:   %v", inDoc, inServer)
	}
	// docs/openapi.json is the same file.
	b, err := os.ReadFile(filepath.Join("..", "docs", "openapi.json"))
	if err != nil || string(b) != string(OpenAPI) {
		t.Fatalf("docs/openapi.json is not api/openapi.json: %v", err)
	}
}

type answer struct {
	status int
	header http.Header
	body   string
}

func do(t *testing.T, ts *httptest.Server, method, path, body string, header ...string) answer {
	t.Helper()
	req, err := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, string(b)}
}

// TestErrors: every refusal the server makes itself is a JSON error with the HTTP status and
// the CLI's exit code, and nothing runs.
func TestErrors(t *testing.T) {
	ts, _ := newTestServer(t)
	for _, tc := range []struct {
		method, path, body string
		status, exit       int
		msg                string
	}{
		{"GET", "/v1/nope", "", 404, 20, "no such resource"},
		{"GET", "/", "", 404, 20, "no such resource"},
		{"PUT", "/v1/vps", "", 405, 20, "allowed: GET, POST"},
		{"DELETE", "/v1/vps/101/start", "", 405, 20, "allowed: POST"},
		{"GET", "/v1/vps?state=frozen", "", 400, 20, "state"},
		{"GET", "/v1/vps?all=1", "", 400, 20, `unknown query parameter "all"`},
		{"GET", "/v1/vps/101", "", 404, 43, "VPS 101"},
		{"GET", "/v1/vps/web", "", 404, 43, "web"},
		{"GET", "/v1/vps/0", "", 400, 21, ""},
		{"GET", "/v1/vps/101/stats", "", 404, 43, "VPS 101"},
		{"POST", "/v1/vps", "", 400, 20, "required"},
		{"POST", "/v1/vps", "{", 400, 20, "body"},
		{"POST", "/v1/vps", `{"id":101,"template":"busybox"} {}`, 400, 20, "after the JSON"},
		{"POST", "/v1/vps", `{"id":101}`, 400, 20, "template is required"},
		{"POST", "/v1/vps", `{"template":"busybox"}`, 400, 20, "id is required"},
		{"POST", "/v1/vps", `{"id":-1,"template":"busybox"}`, 400, 20, "id"},
		{"POST", "/v1/vps", `{"id":4294967296,"template":"busybox"}`, 400, 20, "id"},
		{"POST", "/v1/vps", `{"id":101,"template":"busybox","memory":true}`, 400, 20, "limit"},
		{"POST", "/v1/vps", `{"id":101,"template":"busybox","extra":1}`, 400, 20, `unknown field "extra"`},
		{"POST", "/v1/vps", `{"id":0,"template":"busybox"}`, 400, 21, ""},
		{"POST", "/v1/vps?async=maybe", `{"id":101,"template":"busybox"}`, 400, 20, "async"},
		{"POST", "/v1/vps", `{"id":101,"template":"nosuch"}`, 404, 91, "nosuch"},
		{"POST", "/v1/vps/101/start", "", 404, 43, "VPS 101"},
		{"POST", "/v1/vps/101/start", `{"x":1}`, 400, 20, "unknown field"},
		{"POST", "/v1/vps/101/stop", `{"timeout":-1}`, 400, 20, "timeout"},
		{"POST", "/v1/vps/101/stop", `{"timeout":99999}`, 400, 20, "timeout"},
		{"POST", "/v1/vps/101/exec", `{"command":[]}`, 400, 20, "command"},
		{"POST", "/v1/vps/101/exec", `{"command":["true"],"env":["NOEQUALS"]}`, 400, 20, "VAR=value"},
		{"POST", "/v1/vps/101/exec", `{"command":["true"]}`, 404, 43, "VPS 101"},
		{"PATCH", "/v1/vps/101", `{"hostname":"x"}`, 404, 43, "VPS 101"},
		{"PATCH", "/v1/vps/101", ``, 400, 20, "required"},
		{"DELETE", "/v1/vps/101?force=yes", "", 400, 20, "force"},
		{"DELETE", "/v1/vps/101", "", 404, 43, "VPS 101"},
		{"GET", "/v1/templates/nosuch", "", 404, 91, "nosuch"},
		{"DELETE", "/v1/templates/nosuch", "", 404, 91, "nosuch"},
		{"POST", "/v1/templates", `{"name":"t","kind":"windows"}`, 400, 20, "kind"},
		{"POST", "/v1/templates", `{"name":"t","kind":"import"}`, 400, 20, "source"},
		{"GET", "/v1/operations/nosuch", "", 404, 20, "not found"},
		{"GET", "/v1/operations/nosuch/wait?timeout=1", "", 404, 20, "not found"},
		{"GET", "/v1/operations/x/wait?timeout=-1", "", 400, 20, "timeout"},
		{"GET", "/v1/events?since=yesterday", "", 400, 21, "since"},
		{"GET", "/v1/events?follow=often", "", 400, 20, "follow"},
		{"GET", "/v1/events", "", 400, 20, "Last-Event-ID"},
	} {
		var hdr []string
		if tc.msg == "Last-Event-ID" {
			hdr = []string{"Last-Event-ID", "not a time"}
		}
		a := do(t, ts, tc.method, tc.path, tc.body, hdr...)
		var e struct{ Error *Error }
		if err := json.Unmarshal([]byte(a.body), &e); err != nil || e.Error == nil {
			t.Errorf("%s %s %s: %d, not a JSON error: %q", tc.method, tc.path, tc.body, a.status, a.body)
			continue
		}
		if a.status != tc.status || e.Error.Status != tc.status || e.Error.ExitCode != tc.exit ||
			!strings.Contains(e.Error.Message, tc.msg) || a.header.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s %s: %d %+v, want %d, exit %d, message with %q", tc.method, tc.path, tc.body, a.status, e.Error, tc.status, tc.exit, tc.msg)
		}
	}
}

// TestEmptyHost: the collections of a host without VPSs are empty JSON arrays, not null.
func TestEmptyHost(t *testing.T) {
	ts, _ := newTestServer(t)
	for _, p := range []string{"/v1/vps", "/v1/vps?state=running", "/v1/templates", "/v1/operations"} {
		if a := do(t, ts, "GET", p, ""); a.status != 200 || strings.TrimSpace(a.body) != "[]" {
			t.Errorf("GET %s: %d %q", p, a.status, a.body)
		}
	}
	if a := do(t, ts, "GET", "/v1/version", ""); a.status != 200 || !strings.Contains(a.body, `"version":"test"`) {
		t.Errorf("version: %d %q", a.status, a.body)
	}
	if a := do(t, ts, "GET", "/v1/openapi.json", ""); a.status != 200 || a.body != string(OpenAPI) {
		t.Errorf("openapi.json: %d", a.status)
	}
	if a := do(t, ts, "GET", "/v1/metrics", ""); a.status != 200 || !strings.HasPrefix(a.header.Get("Content-Type"), "text/plain") {
		t.Errorf("metrics: %d %q", a.status, a.header.Get("Content-Type"))
	}
}

// TestEvents: the events log as server-sent events, each with its time as id; since and
// Last-Event-ID leave out the older ones; follow=true streams what is appended later.
func TestEvents(t *testing.T) {
	ts, rt := newTestServer(t)
	l := eventlog.Events(rt.St.Root, 1<<20, 2)
	t0 := time.Now().Add(-time.Hour)
	for i, k := range []eventlog.Kind{eventlog.Created, eventlog.Started, eventlog.Stopped} {
		if err := l.Emit(eventlog.Event{Time: t0.Add(time.Duration(i) * time.Minute), ID: 101, Event: k}); err != nil {
			t.Fatal(err)
		}
	}
	a := do(t, ts, "GET", "/v1/events", "")
	if a.status != 200 || a.header.Get("Content-Type") != "text/event-stream" || strings.Count(a.body, "event: vps\n") != 3 {
		t.Fatalf("events: %d %q %q", a.status, a.header.Get("Content-Type"), a.body)
	}
	first := strings.SplitN(strings.SplitN(a.body, "\n", 2)[0], ": ", 2)[1]
	if a := do(t, ts, "GET", "/v1/events", "", "Last-Event-ID", first); strings.Count(a.body, "event: vps\n") != 2 || strings.Contains(a.body, `"created"`) {
		t.Errorf("after the first: %q", a.body)
	}
	if a := do(t, ts, "GET", "/v1/events?since=30m", ""); a.status != 200 || a.body != "" {
		t.Errorf("since 30m: %d %q", a.status, a.body)
	}
	// follow: an event appended after the request arrives on the open stream.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+"/v1/events?follow=true&since=1m", nil)
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := l.Emit(eventlog.Event{ID: 102, Event: eventlog.Destroyed}); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if line, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			var e eventlog.Event
			if err := json.Unmarshal([]byte(line), &e); err != nil || e.ID != 102 || e.Event != eventlog.Destroyed {
				t.Fatalf("followed event: %q %v", line, err)
			}
			return
		}
	}
	t.Fatalf("no event on the followed stream: %v", sc.Err())
}

// TestOperationsTable: finished operations are dropped after keepFinished, and the oldest
// finished first when the table is full; running ones always stay.
func TestOperationsTable(t *testing.T) {
	ops := newOperations()
	old := time.Now().Add(-2 * keepFinished)
	stale := &Operation{ID: "stale", Finished: &old, done: make(chan struct{})}
	running := &Operation{ID: "running", done: make(chan struct{})}
	ops.add(stale)
	ops.add(running)
	ops.add(&Operation{ID: "new", done: make(chan struct{})})
	if _, ok := ops.get("stale"); ok {
		t.Fatal("an operation finished two hours ago is still kept")
	}
	for i := 0; i < maxOps+5; i++ {
		op := &Operation{ID: newID(), done: make(chan struct{})}
		ops.add(op)
		ops.finish(op, nil, nil)
	}
	if len(ops.list()) > maxOps {
		t.Fatalf("%d operations kept, at most %d", len(ops.list()), maxOps)
	}
	if _, ok := ops.get("running"); !ok {
		t.Fatal("a running operation was dropped")
	}
}

// TestCapture: output past maxOutput is dropped and said so; bytes that are not UTF-8 come
// out valid; a pipe held open by a background process ends the read after drainWait.
func TestCapture(t *testing.T) {
	var c capture
	w, err := c.start()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("a\xffb"))
	w.Write(make([]byte, maxOutput))
	dup, err := os.OpenFile("/proc/self/fd/"+strconv.Itoa(int(w.Fd())), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer dup.Close() // a writer that stays: finish must not wait for it for ever
	w.Close()
	t0 := time.Now()
	c.finish()
	if time.Since(t0) > drainWait+time.Second {
		t.Fatalf("finish took %v", time.Since(t0))
	}
	s, more := c.result()
	if !more || len(s) < maxOutput || !strings.HasPrefix(s, "a\uFFFDb") {
		t.Fatalf("result: %d bytes, truncated %v, starts %q", len(s), more, s[:5])
	}
}
