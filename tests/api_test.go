package tests

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

// apiServer is a `vpsctl serve` of this run's state root, and a client of its socket.
type apiServer struct {
	sock   string
	tcp    string // 127.0.0.1:PORT when started with TCP
	client *http.Client
}

// startAPI runs `vpsctl serve --socket S ARGS...` and waits, boundedly, until it answers. The
// server is stopped (SIGTERM, then SIGKILL) when the test ends.
func startAPI(t *testing.T, args ...string) *apiServer {
	t.Helper()
	return startAPIEnv(t, nil, args...)
}

// startAPIEnv is startAPI with env added to the server's environment.
func startAPIEnv(t *testing.T, env []string, args ...string) *apiServer {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "v.sock")
	cmd := exec.Command(bin, append([]string{"--root", root, "serve", "--socket", sock}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var logb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logb, &logb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(40 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Errorf("vpsctl serve did not end on SIGTERM")
		}
		if t.Failed() {
			t.Logf("vpsctl serve's log:\n%s", logb.String())
		}
	})
	s := &apiServer{sock: sock, client: unixClient(sock)}
	waitFor(t, 10*time.Second, "vpsctl serve to answer", func() bool {
		resp, err := s.client.Get("http://localhost/v1/version")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	for i, a := range args {
		if a == "--listen" && i+1 < len(args) {
			s.tcp = args[i+1]
		}
	}
	return s
}

func unixClient(sock string) *http.Client {
	return &http.Client{Timeout: 120 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
}

// call sends a request to the API and decodes its JSON answer into a map (nil if not JSON).
func (s *apiServer) call(t *testing.T, method, path, body string) (int, map[string]any, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://localhost"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	json.Unmarshal(b, &m)
	return resp.StatusCode, m, string(b)
}

// must2xx is call that fails the test unless the status is want.
func (s *apiServer) expect(t *testing.T, want int, method, path, body string) map[string]any {
	t.Helper()
	code, m, raw := s.call(t, method, path, body)
	if code != want {
		t.Fatalf("%s %s %s: %d, want %d: %s", method, path, body, code, want, raw)
	}
	return m
}

// apiError checks an error answer: HTTP status and exit code, and a message with msg.
func (s *apiServer) apiError(t *testing.T, status, exit int, msg, method, path, body string) {
	t.Helper()
	code, m, raw := s.call(t, method, path, body)
	e, _ := m["error"].(map[string]any)
	if code != status || e == nil || int(e["exit_code"].(float64)) != exit || !strings.Contains(e["message"].(string), msg) {
		t.Fatalf("%s %s %s: %d %s, want %d with exit %d and %q", method, path, body, code, raw, status, exit, msg)
	}
}

func opResult(t *testing.T, op map[string]any) map[string]any {
	t.Helper()
	r, ok := op["result"].(map[string]any)
	if !ok || op["status"] != "success" {
		t.Fatalf("operation without a result: %v", op)
	}
	return r
}

// TestAPIAcceptance is the acceptance through the API, and the CLI beside it: both
// see the same VPS and wait on the same locks.
func TestAPIAcceptance(t *testing.T) {
	checkClean(t, "801")
	s := startAPI(t)
	fi, err := os.Stat(s.sock)
	if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket %s: %v %v, want a socket of mode 0660", s.sock, fi.Mode(), err)
	}
	v := s.expect(t, 200, "GET", "/v1/version", "")
	if v["go"] == "" || v["libc"] == "" || v["commit"] == "" {
		t.Fatalf("version: %v", v)
	}
	op := s.expect(t, 201, "POST", "/v1/vps", `{"id":801,"template":"busybox"}`)
	if r := opResult(t, op); r["state"] != "stopped" || r["hostname"] != "vps801" {
		t.Fatalf("create: %v", r)
	}
	s.apiError(t, 409, 44, "801", "POST", "/v1/vps", `{"id":801,"template":"busybox"}`)
	if r := opResult(t, s.expect(t, 200, "POST", "/v1/vps/801/start", "")); r["state"] != "running" || r["init_pid"].(float64) == 0 {
		t.Fatalf("start: %v", r)
	}
	if m := s.expect(t, 200, "GET", "/v1/vps/801", ""); m["state"] != "running" {
		t.Fatalf("get: %v", m)
	}
	ex := s.expect(t, 200, "POST", "/v1/vps/801/exec", `{"command":["hostname"]}`)
	if ex["exit_code"].(float64) != 0 || ex["stdout"] != "vps801\n" {
		t.Fatalf("exec hostname: %v", ex)
	}
	// The CLI sees what the API did, and the API what the CLI does.
	if out := must(t, "status", "801"); strings.TrimSpace(out) != "VPS 801 exist running" {
		t.Fatalf("status: %q", out)
	}
	must(t, "set", "801", "--hostname", "api-host", "--name", "apiweb")
	if m := s.expect(t, 200, "GET", "/v1/vps/apiweb", ""); m["hostname"] != "api-host" || m["id"].(float64) != 801 {
		t.Fatalf("after the CLI's set: %v", m)
	}
	// exec: stdin, environment, working directory, exit status, a command that is not there,
	// a timeout.
	ex = s.expect(t, 200, "POST", "/v1/vps/801/exec", `{"command":["sh","-c","cat; echo $X; pwd; echo err >&2; exit 3"],"stdin":"in\n","env":["X=ex"],"workdir":"/etc"}`)
	if ex["exit_code"].(float64) != 3 || ex["stdout"] != "in\nex\n/etc\n" || ex["stderr"] != "err\n" {
		t.Fatalf("exec: %v", ex)
	}
	ex = s.expect(t, 200, "POST", "/v1/vps/801/exec", `{"command":["/no/such"]}`)
	if ex["exit_code"].(float64) != 127 || !strings.Contains(ex["stderr"].(string), "/no/such") {
		t.Fatalf("exec of nothing: %v", ex)
	}
	// A NUL byte cannot cross execve(2): refused as bad input, not a server error.
	for _, body := range []string{`{"command":["a\u0000b"]}`, `{"command":["true"],"env":["X=\u0000"]}`, `{"command":["true"],"workdir":"/\u0000"}`} {
		s.apiError(t, 400, 21, "NUL byte", "POST", "/v1/vps/801/exec", body)
	}
	t0 := time.Now()
	ex = s.expect(t, 200, "POST", "/v1/vps/801/exec", `{"command":["sleep","30"],"timeout":0.5}`)
	if ex["exit_code"].(float64) != 137 || ex["timed_out"] != true || time.Since(t0) > 10*time.Second {
		t.Fatalf("exec with a timeout: %v after %v", ex, time.Since(t0))
	}
	// A lock held by a vpsctl command: the API's stop waits for it like a command, then says
	// who holds it, with the CLI's exit code.
	holdLock(t, "801")
	s.apiError(t, 409, 9, "locked", "POST", "/v1/vps/801/stop", `{"timeout":5}`)
	// stats: null for no limit.
	st := s.expect(t, 200, "GET", "/v1/vps/801/stats", "")
	if bc := st["beancounters"].(map[string]any)["cpu"].(map[string]any); bc["limit"] != nil {
		t.Fatalf("cpu limit of a VPS without one: %v, want null", bc["limit"])
	}
	// Asynchronously: 202 and the operation, awaited.
	waitFor(t, 15*time.Second, "the lock to be let go", func() bool {
		code, _, _ := s.call(t, "POST", "/v1/vps/801/suspend", "")
		return code == 200
	})
	s.expect(t, 200, "POST", "/v1/vps/801/resume", "")
	op = s.expect(t, 202, "POST", "/v1/vps/801/stop?async=true", `{"timeout":10}`)
	if op["status"] != "running" && op["status"] != "success" {
		t.Fatalf("async stop: %v", op)
	}
	done := s.expect(t, 200, "GET", fmt.Sprintf("/v1/operations/%s/wait?timeout=60", op["id"]), "")
	if r := opResult(t, done); r["state"] != "stopped" {
		t.Fatalf("awaited stop: %v", done)
	}
	if ops := s.expect(t, 200, "GET", "/v1/operations/"+op["id"].(string), ""); ops["finished_at"] == nil {
		t.Fatalf("operation: %v", ops)
	}
	s.apiError(t, 409, 31, "not running", "POST", "/v1/vps/801/exec", `{"command":["true"]}`)
	s.apiError(t, 409, 31, "not running", "GET", "/v1/vps/801/stats", "")
	s.apiError(t, 400, 70, "-bad", "PATCH", "/v1/vps/801", `{"hostname":"-bad"}`)
	s.apiError(t, 400, 72, "nameserver", "PATCH", "/v1/vps/801", `{"nameserver":["not-an-address"]}`)
	// Refused before an operation starts, async or not: no 202 for a request the document refuses.
	s.apiError(t, 400, 21, "onboot", "PATCH", "/v1/vps/801?async=true", `{"onboot":"maybe"}`)
	s.apiError(t, 400, 21, "namespaces", "POST", "/v1/vps?async=true", `{"id":802,"template":"busybox","namespaces":["uts","nope"]}`)
	if r := opResult(t, s.expect(t, 200, "PATCH", "/v1/vps/801", `{"numproc":"200","memory":268435456}`)); r["state"] != "stopped" {
		t.Fatalf("set: %v", r)
	}
	if out := must(t, "list", "-a", "-o", "id,numproc.l"); !strings.Contains(out, "801") {
		t.Fatalf("list: %s", out)
	}
	if r := opResult(t, s.expect(t, 200, "POST", "/v1/vps/801/restart", `{"timeout":5}`)); r["state"] != "running" {
		t.Fatalf("restart of a stopped VPS: %v", r)
	}
	s.apiError(t, 409, 32, "running", "DELETE", "/v1/vps/801", "")
	s.expect(t, 200, "DELETE", "/v1/vps/801?force=true", "")
	s.apiError(t, 404, 43, "801", "GET", "/v1/vps/801", "")
	if r := vpsctl(t, "status", "801"); strings.TrimSpace(r.out) != "VPS 801 deleted" {
		t.Fatalf("status after the API's destroy: %q", r.out)
	}
	// The events the library logged, as server-sent events (none on a host without events).
	code, _, raw := s.call(t, "GET", "/v1/events?since=10m", "")
	if code != 200 || (raw != "" && !strings.Contains(raw, "event: vps\n")) {
		t.Fatalf("events: %d %q", code, raw)
	}
	if code, _, raw := s.call(t, "GET", "/v1/metrics", ""); code != 200 || !strings.Contains(raw, "# TYPE vpsctl_vps_state gauge") {
		t.Fatalf("metrics: %d %q", code, raw)
	}
}

// TestAPITemplates: list, build (an operation with the template as result), get, remove, and
// the refusals (in use, unknown kind).
func TestAPITemplates(t *testing.T) {
	checkClean(t, "802")
	s := startAPI(t)
	if m := s.expect(t, 201, "POST", "/v1/templates", `{"name":"api-bb","kind":"busybox"}`); opResult(t, m)["name"] != "api-bb" {
		t.Fatalf("build: %v", m)
	}
	t.Cleanup(func() { vpsctl(t, "template", "remove", "api-bb") })
	s.apiError(t, 409, 211, "api-bb", "POST", "/v1/templates", `{"name":"api-bb","kind":"busybox"}`)
	code, _, raw := s.call(t, "GET", "/v1/templates", "")
	if code != 200 || !strings.Contains(raw, `"name":"api-bb"`) || !strings.Contains(raw, `"name":"busybox"`) {
		t.Fatalf("list: %d %s", code, raw)
	}
	s.expect(t, 200, "GET", "/v1/templates/api-bb", "")
	s.expect(t, 201, "POST", "/v1/vps", `{"id":802,"template":"api-bb"}`)
	s.apiError(t, 409, 210, "api-bb", "DELETE", "/v1/templates/api-bb", "")
	s.expect(t, 200, "DELETE", "/v1/vps/802", "")
	s.expect(t, 200, "DELETE", "/v1/templates/api-bb", "")
	s.apiError(t, 404, 91, "api-bb", "GET", "/v1/templates/api-bb", "")
	s.apiError(t, 400, 20, "kind", "POST", "/v1/templates", `{"name":"x","kind":"windows"}`)
}

// TestAPIListen: the socket is 0660 root:GROUP and replaces a stale socket file but not a
// live server's; TCP is mutual TLS (a client without a certificate of the CA is refused), or
// plain HTTP only on loopback with --insecure; the flags' misuse is refused up front.
func TestAPIListen(t *testing.T) {
	checkClean(t)
	dir := t.TempDir()
	expectCode(t, 20, "serve", "--socket", filepath.Join(dir, "a.sock"), "--listen", "127.0.0.1:0")
	expectCode(t, 21, "serve", "--socket", filepath.Join(dir, "a.sock"), "--listen", "198.18.0.1:0", "--insecure")
	expectCode(t, 20, "serve", "--socket", filepath.Join(dir, "a.sock"), "--insecure")
	expectCode(t, 21, "serve", "--socket", filepath.Join(dir, "a.sock"), "--group", "no-such-group-here")
	expectCode(t, 20, "serve", "--socket", "")
	expectCode(t, 20, "serve", "extra")
	notSock := filepath.Join(dir, "file")
	os.WriteFile(notSock, nil, 0o600)
	expectCode(t, 21, "serve", "--socket", notSock)

	// A stale socket (nobody listening) is replaced; a live one is not.
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	s := startAPI(t, "--group", "daemon")
	fi, _ := os.Stat(s.sock)
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 || st.Gid != 1 || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket: uid %d gid %d mode %v, want root:daemon 0660", st.Uid, st.Gid, fi.Mode().Perm())
	}
	expectCode(t, 32, "serve", "--socket", s.sock)
	s2 := startAPI(t) // its own socket; and the stale one:
	_ = s2
	cmd := exec.Command(bin, "--root", root, "serve", "--socket", stale)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitFor(t, 10*time.Second, "a server on the stale socket's path", func() bool {
		resp, err := unixClient(stale).Get("http://localhost/v1/version")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})

	// Mutual TLS.
	ca, caKey := newCert(t, nil, nil, "vpsctl test CA", true)
	srvCert, srvKey := newCert(t, ca, caKey, "127.0.0.1", false)
	cliCert, cliKey := newCert(t, ca, caKey, "panel", false)
	other, otherKey := newCert(t, nil, nil, "someone else", true)
	write := func(name string, blocks ...*pem.Block) string {
		var b bytes.Buffer
		for _, bl := range blocks {
			pem.Encode(&b, bl)
		}
		p := filepath.Join(dir, name)
		os.WriteFile(p, b.Bytes(), 0o600)
		return p
	}
	certPEM := func(c *x509.Certificate) *pem.Block { return &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw} }
	keyPEM := func(k *ecdsa.PrivateKey) *pem.Block {
		b, _ := x509.MarshalECPrivateKey(k)
		return &pem.Block{Type: "EC PRIVATE KEY", Bytes: b}
	}
	port := freePort(t)
	startAPI(t, "--listen", port, "--tls-cert", write("srv.pem", certPEM(srvCert)), "--tls-key", write("srv.key", keyPEM(srvKey)),
		"--client-ca", write("ca.pem", certPEM(ca)))
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	client := func(cert *x509.Certificate, key *ecdsa.PrivateKey) *http.Client {
		cfg := &tls.Config{RootCAs: roots}
		if cert != nil {
			cfg.Certificates = []tls.Certificate{{Certificate: [][]byte{cert.Raw}, PrivateKey: key}}
		}
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
	}
	get := func(cert *x509.Certificate, key *ecdsa.PrivateKey) error {
		resp, err := client(cert, key).Get("https://" + port + "/v1/version")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	if err := get(cliCert, cliKey); err != nil {
		t.Fatalf("a client of the CA: %v", err)
	}
	if err := get(nil, nil); err == nil {
		t.Fatal("a client without a certificate was served")
	}
	if err := get(other, otherKey); err == nil {
		t.Fatal("a client of another CA was served")
	}
	// A changing request over TCP is audited with the client's address and certificate.
	before := len(auditLines(t))
	req, _ := http.NewRequest("DELETE", "https://"+port+"/v1/templates/no-such-tpl", nil)
	if resp, err := client(cliCert, cliKey).Do(req); err != nil || resp.StatusCode != 404 {
		t.Fatalf("DELETE of a template that is not there: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	lines := auditLines(t)[before:]
	if len(lines) != 1 {
		t.Fatalf("audit lines of a DELETE over TCP: %q", lines)
	}
	if rec := auditRecords(t, lines)[0]; rec.Cmd != "API DELETE /v1/templates/no-such-tpl" ||
		rec.Exit != 91 || rec.UID != -1 || !strings.HasPrefix(rec.Peer, "127.0.0.1:") || !strings.HasSuffix(rec.Peer, " CN=panel") {
		t.Fatalf("audit lines of a DELETE over TCP: %q", lines)
	}
	// Plain HTTP on loopback.
	port = freePort(t)
	startAPI(t, "--listen", port, "--insecure")
	resp, err := http.Get("http://" + port + "/v1/vps")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("insecure loopback: %v %v", resp, err)
	}
	resp.Body.Close()
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// newCert makes a certificate for name, signed by parent (self-signed without one).
func newCert(t *testing.T, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, name string, isCA bool) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: isCA, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	if ip := net.ParseIP(name); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c, key
}

// TestAPIProgramMissing: `vpsctl serve` is vpsctl-api from beside the vpsctl executable; where
// it is missing, serve says so (exit 3) and listens on nothing.
func TestAPIProgramMissing(t *testing.T) {
	dir := t.TempDir()
	lone := filepath.Join(dir, "vpsctl")
	if out, err := exec.Command("cp", bin, lone).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	sock := filepath.Join(dir, "a.sock")
	cmd := exec.Command(lone, "--root", root, "serve", "--socket", sock)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("serve without vpsctl-api: %v, want exit 3\n%s", err, stderr.String())
	}
	if msg := stderr.String(); !strings.Contains(msg, "vpsctl-api") || strings.Count(strings.TrimSpace(msg), "\n") != 0 {
		t.Errorf("serve without vpsctl-api: message %q, want one line naming vpsctl-api", msg)
	}
	if fileExists(sock) {
		t.Errorf("serve without vpsctl-api made its socket %s", sock)
	}
}

// TestAPIAudit: a request that changes something writes one audit line, as a command does,
// naming the caller on the unix socket by its credentials (here: this test process, root) and
// the request, with the exit code its answer carries, a refused one included; reads and exec
// write none. An asynchronous request's line is written when its operation ends.
func TestAPIAudit(t *testing.T) {
	checkClean(t, "809")
	s := startAPI(t)
	before := len(auditLines(t))
	s.expect(t, 201, "POST", "/v1/vps", `{"id":809,"template":"busybox"}`)
	s.apiError(t, 409, 44, "809", "POST", "/v1/vps", `{"id":809,"template":"busybox"}`)
	s.expect(t, 200, "GET", "/v1/vps/809", "")
	s.expect(t, 200, "GET", "/v1/vps", "")
	op := s.expect(t, 202, "DELETE", "/v1/vps/809?async=true", "")
	s.expect(t, 200, "GET", "/v1/operations/"+op["id"].(string)+"/wait", "")
	lines := auditLines(t)[before:]
	want := []struct {
		cmd  string
		exit int
	}{{"API POST /v1/vps", 0}, {"API POST /v1/vps", 44}, {"API DELETE /v1/vps/809?async=true", 0}}
	if len(lines) != len(want) {
		t.Fatalf("%d audit lines, want %d:\n%s", len(lines), len(want), strings.Join(lines, "\n"))
	}
	for i, rec := range auditRecords(t, lines) {
		if rec.Cmd != want[i].cmd || rec.Exit != want[i].exit || rec.UID != 0 || rec.User != "root" || rec.PID != os.Getpid() {
			t.Errorf("audit line %q, want cmd %q exit %d by uid 0 (root), PID %d", lines[i], want[i].cmd, want[i].exit, os.Getpid())
		}
	}
}

// TestAPIHostDefaults: the API gives a request the host's defaults as the CLI gives a command:
// DEFAULT_TEMPLATE and the DNS settings for a create that names none, plans (the built-in ones
// and the host's), and an unknown plan refused before anything is done.
func TestAPIHostDefaults(t *testing.T) {
	checkClean(t, "811", "812")
	env := hostConfig(t, "DEFAULT_TEMPLATE=\"busybox\"\nNAMESERVER=\"198.18.0.53\"\nMEMORY=\"300M\"\n",
		map[string]string{"tiny": "MEMORY=\"64M\"\nNUMPROC=\"64\"\n"})
	s := startAPIEnv(t, env)
	s.expect(t, 201, "POST", "/v1/vps", `{"id":811}`)
	if c := vpsConf(t, "811"); c["TEMPLATE"] != "busybox" || c["NAMESERVER"] != "198.18.0.53" || c["MEMORY"] != "300M" {
		t.Fatalf("create with the host's defaults: %v", c)
	}
	s.expect(t, 201, "POST", "/v1/vps", `{"id":812,"template":"busybox","plan":"small","numproc":"100"}`)
	if c := vpsConf(t, "812"); c["MEMORY"] != "512M" || c["NUMPROC"] != "100" || c["CPUS"] != "1" {
		t.Fatalf("create with the built-in plan small: %v", c)
	}
	s.expect(t, 200, "PATCH", "/v1/vps/811", `{"plan":"tiny","cpuunits":"700"}`)
	if c := vpsConf(t, "811"); c["MEMORY"] != "64M" || c["NUMPROC"] != "64" || c["CPUUNITS"] != "700" || c["TEMPLATE"] != "busybox" {
		t.Fatalf("set with the host's plan tiny: %v", c)
	}
	before := storeDigest(t)
	s.apiError(t, 400, 21, "plans: large, medium, small, tiny", "POST", "/v1/vps", `{"id":813,"plan":"nosuch"}`)
	s.apiError(t, 400, 21, "no such plan", "PATCH", "/v1/vps/811", `{"plan":"nosuch","memory":"1G"}`)
	if after := storeDigest(t); !reflect.DeepEqual(before, after) {
		t.Fatalf("a refused plan changed the store")
	}
	if c := vpsConf(t, "811"); c["MEMORY"] != "64M" {
		t.Fatalf("a refused set changed the VPS: %v", c)
	}
}
