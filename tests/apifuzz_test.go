package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
)

// TestAPISchemaFuzz does what schemathesis does, in Go (schemathesis is a PyPI package, and
// PyPI cannot be reached from the machines this suite runs on; TestSchemathesis runs it where
// it is installed): it reads the server's own OpenAPI document from /v1/openapi.json and
// sends every operation many generated requests, both valid by the document and broken in one
// way each (a required field left out, an unknown one added, a value of the wrong type, a
// number out of range, a value outside its enum, malformed JSON). For every answer it checks
// that it is no server error (5xx) and that it matches the document (status, content type,
// body schema, with kin-openapi's validator); for every request the document's validator
// refuses, that the server refused it too (4xx).
//
// The generator is seeded (VPSCTL_FUZZ_SEED to replay a run, VPSCTL_FUZZ_N for more cases per
// operation). What the requests may do to the host is bounded as schemathesis's configuration
// would bound it: valid requests act on this test's own VPSs (850 stopped, 851 running) and
// creates use IDs 860..869; an operation that would dump or restore a running VPS (CRIU
// writes images where it is told), or build a Debian template (minutes of debootstrap), gets
// only VPSs and templates that do not exist, or broken requests.
func TestAPISchemaFuzz(t *testing.T) {
	ids := []string{"850", "851"}
	for i := 860; i < 870; i++ {
		ids = append(ids, strconv.Itoa(i))
	}
	checkClean(t, ids...)
	s := startAPI(t)
	must(t, "create", "850", "--template", "busybox", "--name", "fz-stopped")
	must(t, "create", "851", "--template", "busybox", "--name", "fz-running")
	must(t, "start", "851")
	t.Cleanup(func() {
		// Templates the fuzzer built.
		out := must(t, "template", "list", "--format", "json")
		var ts []struct{ Name string }
		json.Unmarshal([]byte(out), &ts)
		for _, tp := range ts {
			if tp.Name != "busybox" {
				vpsctl(t, "template", "remove", tp.Name)
			}
		}
	})

	_, _, raw := s.call(t, "GET", "/v1/openapi.json", "")
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("the served document is not valid OpenAPI 3: %v", err)
	}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	openapi3filter.RegisterBodyDecoder("text/event-stream", func(r io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
		b, err := io.ReadAll(r)
		return string(b), err
	})

	// The validator is not vacuous: an answer the document does not allow is refused.
	{
		req, _ := http.NewRequest("GET", "http://localhost/v1/version", nil)
		route, pp, err := router.FindRoute(req)
		if err != nil {
			t.Fatal(err)
		}
		in := &openapi3filter.ResponseValidationInput{RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: pp, Route: route},
			Status: 200, Header: http.Header{"Content-Type": {"application/json"}}}
		in.SetBodyBytes([]byte(`{"version":1}`))
		if openapi3filter.ValidateResponse(context.Background(), in) == nil {
			t.Fatal("the response validator took an answer that does not match the document")
		}
	}

	seed := time.Now().UnixNano()
	if v := os.Getenv("VPSCTL_FUZZ_SEED"); v != "" {
		seed, _ = strconv.ParseInt(v, 10, 64)
	}
	n := 30
	if v := os.Getenv("VPSCTL_FUZZ_N"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	t.Logf("seed %d (VPSCTL_FUZZ_SEED to replay), %d cases per operation", seed, n)
	f := &fuzzer{t: t, s: s, doc: doc, router: router, rng: rand.New(rand.NewSource(seed))}
	deadline := time.Now().Add(8 * time.Minute)
	var paths []string
	for p := range doc.Paths.Map() {
		paths = append(paths, p)
	}
	slices.Sort(paths) // the same order for a seed
	for _, path := range paths {
		item := doc.Paths.Value(path)
		for _, method := range []string{"GET", "POST", "PATCH", "DELETE"} {
			op := item.GetOperation(method)
			if op == nil {
				continue
			}
			for i := 0; i < n && time.Now().Before(deadline); i++ {
				f.one(method, path, item, op, i%2 == 1)
			}
		}
	}
	t.Logf("%d requests: %d valid (%d answered 2xx), %d broken (all refused)", f.sent, f.valid, f.ok, f.sent-f.valid)
	if f.ok == 0 {
		t.Fatal("no request was answered with success: the generator makes nothing the server takes")
	}
}

type fuzzer struct {
	t                *testing.T
	s                *apiServer
	doc              *openapi3.T
	router           routers.Router
	rng              *rand.Rand
	sent, valid, ok  int
	createdTemplates []string
}

// dangerous operations get only refs that do not exist (or broken requests).
var fuzzNoRunning = map[string]bool{"checkpointVPS": true, "restoreVPS": true, "suspendVPS": true, "destroyVPS": true}

// ref picks a VPS reference for operation opID.
func (f *fuzzer) ref(opID string) string {
	pool := []string{"850", "851", "fz-stopped", "fz-running", "9999", "nosuch-name", "0", "-x", "01", "4294967296"}
	if fuzzNoRunning[opID] {
		pool = []string{"850", "9999", "nosuch-name", "0", "01"}
		if opID == "destroyVPS" {
			pool = []string{"9999", "nosuch-name", "0", "865", "866"}
		}
	}
	return pool[f.rng.Intn(len(pool))]
}

// one sends one request to method path, valid by the document or (broken) not.
func (f *fuzzer) one(method, path string, item *openapi3.PathItem, op *openapi3.Operation, broken bool) {
	t := f.t
	u := path
	q := url.Values{}
	hdr := http.Header{}
	params := append(openapi3.Parameters{}, item.Parameters...)
	params = append(params, op.Parameters...)
	for _, pr := range params {
		p := pr.Value
		switch p.In {
		case "path":
			var v string
			switch p.Name {
			case "ref":
				v = f.ref(op.OperationID)
			case "name":
				v = []string{"busybox", "nosuch-tpl", "fz-tpl", "-bad"}[f.rng.Intn(4)]
				if op.OperationID == "removeTemplate" && v == "busybox" && f.rng.Intn(2) == 0 {
					v = "fz-tpl" // busybox is in use: removing it is refused, but not every time
				}
			case "id":
				v = []string{"0123456789abcdef", "nosuch"}[f.rng.Intn(2)]
				if ops := f.operations(); len(ops) > 0 && f.rng.Intn(2) == 0 {
					v = ops[f.rng.Intn(len(ops))]
				}
			}
			u = strings.Replace(u, "{"+p.Name+"}", url.PathEscape(v), 1)
		case "query":
			if f.rng.Intn(2) == 0 {
				continue
			}
			v := f.scalar(p.Schema.Value)
			if p.Name == "timeout" {
				v = strconv.Itoa(f.rng.Intn(3)) // wait: seconds of this test's time
			}
			if p.Name == "follow" {
				v = "false" // an open stream never ends: TestAPIAcceptance reads one
			}
			q.Set(p.Name, v)
		case "header":
			if f.rng.Intn(3) == 0 {
				hdr.Set(p.Name, f.word()) // HTTP carries no control characters in a header
			}
		}
	}
	var body []byte
	if rb := op.RequestBody; rb != nil {
		sch := rb.Value.Content.Get("application/json").Schema.Value
		if rb.Value.Required || f.rng.Intn(3) > 0 {
			v := f.value(sch, 0)
			f.tame(op.OperationID, v)
			body, _ = json.Marshal(v)
		}
	}
	if broken {
		switch k := f.rng.Intn(4); {
		case k == 0 && op.RequestBody != nil:
			body = f.breakBody(op.RequestBody.Value.Content.Get("application/json").Schema.Value, body)
		case k == 1:
			q.Set("no_such_parameter", "1")
		case k == 2 && len(q) > 0:
			for name := range q {
				q.Set(name, "\x01not-a-"+name)
				break
			}
		default:
			if op.RequestBody != nil {
				body = []byte(`{"unterminated": `)
			} else {
				q.Set("no_such_parameter", "1")
			}
		}
	}
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, _ := http.NewRequest(method, "http://localhost"+u, bytes.NewReader(body))
	req.Header = hdr
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	route, pathParams, err := f.router.FindRoute(req)
	if err != nil {
		t.Fatalf("%s %s: the document has no route: %v", method, u, err)
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: pathParams, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
	reqErr := openapi3filter.ValidateRequest(context.Background(), in)
	req.Body = io.NopCloser(bytes.NewReader(body)) // the validator read it
	f.sent++
	resp, err := f.s.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s %s: %v", method, u, body, err)
	}
	rb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	what := fmt.Sprintf("%s %s %s -> %d %s", method, u, trunc(body), resp.StatusCode, trunc(rb))
	if resp.StatusCode >= 500 {
		t.Errorf("server error: %s", what)
	}
	if reqErr != nil {
		if resp.StatusCode < 400 {
			t.Errorf("a request the document refuses (%v) was taken: %s", firstLine(reqErr), what)
		}
	} else {
		f.valid++
		if resp.StatusCode < 300 {
			f.ok++
		}
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true}}
	out.SetBodyBytes(rb)
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		t.Errorf("answer does not match the document: %v\n%s", firstLine(err), what)
	}
}

// tame bounds what a valid body may do to the host (see TestAPISchemaFuzz).
func (f *fuzzer) tame(opID string, v any) {
	m, ok := v.(map[string]any)
	if !ok {
		return
	}
	switch opID {
	case "createVPS":
		if f.rng.Intn(2) == 0 {
			m["id"], m["template"] = 860+f.rng.Intn(10), "busybox"
			delete(m, "namespaces")
		}
	case "buildTemplate":
		if m["kind"] == "debian-12" {
			m["kind"] = "busybox"
		}
		if m["kind"] == "import" || f.rng.Intn(2) == 0 {
			m["source"] = "/nonexistent/" + f.str(nil)
		}
		if m["kind"] == "busybox" && f.rng.Intn(2) == 0 {
			delete(m, "busybox") // the host's, so that some builds succeed
			m["name"] = "fz-tpl"
		}
	case "checkpointVPS", "restoreVPS":
		// An image directory that cannot be the host's: only VPSs that do not run get here.
		m["dir"] = "/nonexistent/" + f.str(nil)
	case "execVPS":
		if t, ok := m["timeout"].(float64); ok && t > 5 {
			m["timeout"] = 5.0
		}
	case "startVPS":
		// A boot that has not finished in time is 504 (the CLI's 133): not what this test is after.
		if m["wait"] == true {
			m["timeout"] = 120.0
		}
	case "stopVPS", "restartVPS":
		if t, ok := m["timeout"].(float64); ok && t > 5 {
			m["timeout"] = 5.0
		}
	}
}

// operations are the IDs of the server's operations so far.
func (f *fuzzer) operations() []string {
	_, _, raw := f.s.call(f.t, "GET", "/v1/operations", "")
	var ops []struct{ ID string }
	json.Unmarshal([]byte(raw), &ops)
	var out []string
	for _, o := range ops {
		out = append(out, o.ID)
	}
	return out
}

// value generates a value valid by schema s.
func (f *fuzzer) value(s *openapi3.Schema, depth int) any {
	if len(s.OneOf) > 0 {
		return f.value(s.OneOf[f.rng.Intn(len(s.OneOf))].Value, depth)
	}
	if len(s.Enum) > 0 {
		return s.Enum[f.rng.Intn(len(s.Enum))]
	}
	switch {
	case s.Type.Is("object"):
		m := map[string]any{}
		for name, p := range s.Properties {
			if slices.Contains(s.Required, name) || (depth < 2 && f.rng.Intn(3) == 0) {
				m[name] = f.value(p.Value, depth+1)
			}
		}
		return m
	case s.Type.Is("array"):
		n := int(s.MinItems) + f.rng.Intn(3)
		out := make([]any, 0, n)
		for i := 0; i < n; i++ {
			out = append(out, f.value(s.Items.Value, depth+1))
		}
		return out
	case s.Type.Is("integer"):
		lo, hi := -1e6, 1e6
		if s.Min != nil {
			lo = *s.Min
		}
		if s.Max != nil {
			hi = *s.Max
		}
		if f.rng.Intn(4) == 0 {
			return int64(lo)
		}
		return int64(lo) + f.rng.Int63n(int64(min(hi-lo, 1e9))+1)
	case s.Type.Is("number"):
		lo, hi := -1e6, 1e6
		if s.Min != nil {
			lo = *s.Min
		}
		if s.Max != nil {
			hi = *s.Max
		}
		return lo + f.rng.Float64()*min(hi-lo, 10)
	case s.Type.Is("boolean"):
		return f.rng.Intn(2) == 0
	}
	return f.str(s)
}

// str generates a string valid by s: within its lengths and, for the patterns of names and
// IDs the document uses, of their characters.
func (f *fuzzer) str(s *openapi3.Schema) string {
	if s != nil && s.Pattern == "^[^=]+=" {
		return f.word() + "=" + f.anyText()
	}
	if s != nil && s.Pattern != "" {
		w := f.word()
		if s.MaxLength != nil && uint64(len(w)) > *s.MaxLength {
			w = w[:*s.MaxLength]
		}
		return w
	}
	t := f.anyText()
	if s != nil {
		if s.MaxLength != nil && uint64(len([]rune(t))) > *s.MaxLength {
			t = string([]rune(t)[:*s.MaxLength])
		}
		for uint64(len([]rune(t))) < s.MinLength {
			t += "a"
		}
	}
	return t
}

// word is a name-like string: a letter, then letters, digits, '.', '_', '-'.
func (f *fuzzer) word() string {
	const first = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	const rest = first + "0123456789._-"
	b := []byte{first[f.rng.Intn(len(first))]}
	for i := f.rng.Intn(12); i > 0; i-- {
		b = append(b, rest[f.rng.Intn(len(rest))])
	}
	return string(b)
}

// anyText is any string: empty, spaces, quotes, control characters, non-ASCII, long.
func (f *fuzzer) anyText() string {
	pool := []string{"", " ", "a b", `"'\`, "\x00\n\t", "ünïcödé ☃", "../../etc/passwd", "unlimited", "256M", "-1",
		"1.2.3.4", "::1", "inherit", "all", "c:1:3:rw", "CHOWN:off", "root:secret", "eth0,bridge=br0", strings.Repeat("x", 300)}
	if f.rng.Intn(3) == 0 {
		return f.word()
	}
	return pool[f.rng.Intn(len(pool))]
}

// scalar is a query parameter's value valid by s.
func (f *fuzzer) scalar(s *openapi3.Schema) string {
	switch v := f.value(s, 0).(type) {
	case string:
		return v
	case bool:
		return strconv.FormatBool(v)
	default:
		return fmt.Sprint(v)
	}
}

// breakBody makes body invalid by schema s in one way.
func (f *fuzzer) breakBody(s *openapi3.Schema, body []byte) []byte {
	var m map[string]any
	if json.Unmarshal(body, &m) != nil || m == nil {
		m = map[string]any{}
	}
	var props []string
	for name := range s.Properties {
		props = append(props, name)
	}
	slices.Sort(props)
	switch k := f.rng.Intn(5); {
	case k == 0 && len(s.Required) > 0:
		delete(m, s.Required[f.rng.Intn(len(s.Required))])
	case k == 1 && len(props) > 0:
		name := props[f.rng.Intn(len(props))]
		p := s.Properties[name].Value
		switch {
		case p.Type.Is("string") || len(p.OneOf) > 0:
			m[name] = map[string]any{"not": "a string"}
		case p.Type.Is("array"):
			m[name] = "not an array"
		default:
			m[name] = "not a " + p.Type.Slice()[0]
		}
	case k == 2 && len(props) > 0:
		for _, name := range props {
			p := s.Properties[name].Value
			if (p.Type.Is("integer") || p.Type.Is("number")) && p.Min != nil {
				m[name] = *p.Min - 1
				return mustJSON(m)
			}
			if len(p.Enum) > 0 {
				m[name] = "not-in-the-enum"
				return mustJSON(m)
			}
		}
		m["no_such_field"] = true
	case k == 3:
		return []byte(`[1, 2, 3]`)
	default:
		m["no_such_field"] = true
	}
	return mustJSON(m)
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

func trunc(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "..."
	}
	return string(b)
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

// TestSchemathesis runs schemathesis itself against a live server, where it is installed
// (scripts/test.sh tries `pip install schemathesis`; PyPI is not reachable everywhere). Its
// operations are bounded as TestAPISchemaFuzz's are: the ones that would checkpoint, restore
// or destroy a VPS or build and remove templates are left out, and the VPSs it finds are this
// test's.
func TestSchemathesis(t *testing.T) {
	st, err := exec.LookPath("schemathesis")
	if err != nil {
		if st, err = exec.LookPath("st"); err != nil {
			t.Skip("schemathesis is not installed (PyPI unreachable here); TestAPISchemaFuzz does its checks")
		}
	}
	checkClean(t, "852")
	must(t, "create", "852", "--template", "busybox")
	must(t, "start", "852")
	port := freePort(t)
	startAPI(t, "--listen", port, "--insecure")
	base := "http://" + port
	cmd := exec.Command(st, "run", "--url", base, "--checks", "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance",
		"--max-examples", "20", "--request-timeout", "30",
		"--exclude-operation-id", "checkpointVPS", "--exclude-operation-id", "restoreVPS", "--exclude-operation-id", "destroyVPS",
		"--exclude-operation-id", "buildTemplate", "--exclude-operation-id", "removeTemplate", "--exclude-operation-id", "suspendVPS",
		"--exclude-operation-id", "events", base+"/v1/openapi.json")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, cmd.Path, cmd.Args[1:]...).CombinedOutput()
	t.Logf("schemathesis:\n%s", out)
	if err != nil {
		t.Fatalf("schemathesis: %v", err)
	}
}
