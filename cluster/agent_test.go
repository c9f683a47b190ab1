package cluster

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vpsctl/vpsctl/registry"
	"github.com/vpsctl/vpsctl/uid"
)

// serveAgent runs the agent of s in this process and returns once it listens; it is stopped
// when the test ends.
func serveAgent(t *testing.T, s registry.Settings) <-chan error {
	t.Helper()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- Serve(s, "test", pw) }()
	buf := make([]byte, 256)
	pr.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, _ := pr.Read(buf)
	pr.Close()
	if got := strings.TrimSpace(string(buf[:n])); got != "ok" {
		t.Fatalf("agent: %q", got)
	}
	t.Cleanup(func() {
		c := registry.New(s)
		if call, err := c.Go(context.Background(), registry.Request{Op: registry.OpStop}); err == nil {
			call.Wait()
		}
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("agent did not stop")
		}
	})
	return done
}

// TestAgent: vpsctl's requests through the socket, the errors they map to, one agent per
// state root, and an agent asked by a command with other settings stepping down.
func TestAgent(t *testing.T) {
	e := startEtcd(t, 1, clientBase, peerBase, "http")
	ctx := context.Background()
	s := settings(t, e.Endpoints, "A")
	serveAgent(t, s)
	if err := Serve(s, "test", nil); err == nil || !strings.Contains(err.Error(), "another agent runs") {
		t.Fatalf("second agent for one root: %v", err)
	}
	if fi, err := os.Stat(registry.SocketPath(s.Root)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket: %v %v", fi, err)
	}
	if registry.AgentPID(s.Root) != os.Getpid() {
		t.Fatalf("agent PID %d", registry.AgentPID(s.Root))
	}
	c := registry.New(s)
	c.Agent = "/nonexistent/vpsctl-cluster" // the agent must not need starting
	cl := registry.Claim{ID: 720, Name: "n720", Addrs: []string{"198.18.0.120"}}
	if _, err := c.Do(ctx, registry.Request{Op: registry.OpClaim, Claim: &cl}); err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(ctx, registry.Request{Op: registry.OpPrepare})
	if err != nil || len(resp.Pending) != 1 || resp.Pending[0].PID != os.Getpid() {
		t.Fatalf("prepare: %+v %v", resp, err)
	}
	_, err = c.Do(ctx, registry.Request{Op: registry.OpClaim, Claim: &registry.Claim{ID: 721, Addrs: cl.Addrs}})
	var ce *registry.ConflictError
	if !errors.As(err, &ce) || ce.What != "ip" || ce.Host != "A" {
		t.Fatalf("conflict: %v", err)
	}
	if _, err := c.Do(ctx, registry.Request{Op: registry.OpClaim}); err == nil {
		t.Fatal("a claim without a claim")
	}
	// A create while a change is unsettled: refused with the markers, nothing claimed.
	create := registry.Request{Op: registry.OpCreate, Claim: &registry.Claim{ID: 722}, Alloc: &registry.UIDAlloc{PoolBase: 1000000, PoolSize: 1 << 20, Size: 65536}}
	resp, err = c.Do(ctx, create)
	if !errors.Is(err, registry.ErrPending) || len(resp.Pending) != 1 || resp.Pending[0].ID != 720 {
		t.Fatalf("create with 720 unsettled: %+v %v", resp, err)
	}
	if _, err := c.Do(ctx, registry.Request{Op: "frobnicate"}); err == nil || !strings.Contains(err.Error(), "unknown request") {
		t.Fatalf("unknown op: %v", err)
	}
	if _, err := c.Do(ctx, registry.Request{Op: registry.OpLookup, ID: 799}); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("lookup: %v", err)
	}
	if _, err := c.Do(ctx, registry.Request{Op: registry.OpMark, ID: 799}); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("mark of nothing: %v", err)
	}
	call, err := c.Go(ctx, registry.Request{Op: registry.OpSettle, ID: 720, Claim: &cl})
	if err != nil {
		t.Fatal(err)
	}
	call.Abandon() // carried out all the same
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		resp, err := c.Do(ctx, registry.Request{Op: registry.OpInventory})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Pending) == 0 && len(resp.Records) == 1 && resp.Records[0].Name == "n720" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("abandoned settle not done: %+v", resp)
		}
	}
	if resp, err := c.Do(ctx, registry.Request{Op: registry.OpHosts}); err != nil || len(resp.Hosts) != 1 || resp.Hosts[0].Name != "A" {
		t.Fatalf("hosts: %+v %v", resp, err)
	}
	// The agent chooses the range: first fit past what the host uses.
	create.Alloc.Used = []uid.Range{{Host: 1000000, Size: 65536}}
	if resp, err = c.Do(ctx, create); err != nil || resp.Claim == nil || resp.Claim.UIDs != "1065536:65536" {
		t.Fatalf("create: %+v %v", resp, err)
	}
	if _, err := c.Do(ctx, registry.Request{Op: registry.OpSettle, ID: 722}); err != nil {
		t.Fatal(err)
	}
	create.Claim.ID, create.Alloc.PoolSize = 723, 65536
	if _, err = c.Do(ctx, create); !errors.Is(err, uid.ErrPoolFull) {
		t.Fatalf("create from a full pool: %v", err)
	}

	// An agent of another state root under the same node name: refused changes, named why.
	other := s
	other.Root = t.TempDir()
	serveAgent(t, other)
	co := registry.New(other)
	co.Agent = "/nonexistent/vpsctl-cluster"
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		_, err := co.Do(ctx, registry.Request{Op: registry.OpCreate, Claim: &registry.Claim{ID: 724}})
		if errors.Is(err, registry.ErrUnavailable) && strings.Contains(err.Error(), "node name held by another live host") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("second agent of node A: %v", err)
		}
	}

	// A command with other settings: the agent steps down, and the command, finding none,
	// fails to start its own (no program here) with ErrUnavailable.
	s2 := s
	s2.Node = "A2"
	c2 := registry.New(s2)
	c2.Agent = "/nonexistent/vpsctl-cluster"
	if _, err := c2.Do(ctx, registry.Request{Op: registry.OpPrepare}); !errors.Is(err, registry.ErrUnavailable) || !strings.Contains(err.Error(), "/nonexistent") {
		t.Fatalf("stale agent, no program: %v", err)
	}
	if registry.AgentPID(s.Root) != 0 {
		t.Fatal("the stale agent still runs")
	}
	if _, err := os.Stat(registry.SocketPath(s.Root)); !os.IsNotExist(err) {
		t.Fatalf("stale agent left its socket: %v", err)
	}
}

// TestClientNoAgent: a client whose agent cannot start, or does not answer, fails with
// ErrUnavailable in bounded time.
func TestClientNoAgent(t *testing.T) {
	s := settings(t, []string{"http://127.0.0.1:1"}, "A")
	s.Timeout = 200 * time.Millisecond
	c := registry.New(s)
	c.Agent = "/bin/false" // starts and exits without saying "ok"
	t0 := time.Now()
	if _, err := c.Do(context.Background(), registry.Request{Op: registry.OpPrepare}); !errors.Is(err, registry.ErrUnavailable) {
		t.Fatalf("agent that exits: %v", err)
	}
	// Something listens but never answers.
	os.MkdirAll(registry.Dir(s.Root), 0o700)
	l, err := net.Listen("unix", registry.SocketPath(s.Root))
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		var held []net.Conn // answered never, closed with the listener's test
		for {
			conn, err := l.Accept()
			if err != nil {
				for _, c := range held {
					c.Close()
				}
				return
			}
			held = append(held, conn)
		}
	}()
	if _, err := c.Do(context.Background(), registry.Request{Op: registry.OpPrepare}); !errors.Is(err, registry.ErrUnavailable) {
		t.Fatalf("silent agent: %v", err)
	}
	l.Close()
	// Something that hangs up without an answer.
	l, err = net.Listen("unix", registry.SocketPath(s.Root))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			conn.Close()
		}
	}()
	if _, err := c.Do(context.Background(), registry.Request{Op: registry.OpPrepare}); !errors.Is(err, registry.ErrUnavailable) {
		t.Fatalf("agent hanging up: %v", err)
	}
	if d := time.Since(t0); d > 10*time.Second {
		t.Fatalf("took %v", d)
	}
}

// TestTLS: a member that wants client certificates (etcd --client-cert-auth) serves a host
// with CLUSTER_CERT/KEY/CA, and refuses one without, as ErrUnavailable.
func TestTLS(t *testing.T) {
	requireEtcd(t)
	dir := t.TempDir()
	ca, caKey := newCert(t, dir, "ca", nil, nil)
	newCert(t, dir, "server", ca, caKey)
	newCert(t, dir, "client", ca, caKey)
	e := startEtcd(t, 1, clientBase+3, peerBase+3, "https",
		"--cert-file", filepath.Join(dir, "server.pem"), "--key-file", filepath.Join(dir, "server-key.pem"),
		"--trusted-ca-file", filepath.Join(dir, "ca.pem"), "--client-cert-auth")
	ctx := context.Background()
	s := settings(t, e.Endpoints, "A")
	s.Cert, s.Key, s.CA = filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem"), filepath.Join(dir, "ca.pem")
	g := open(t, s)
	var err error
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, _, err = g.Prepare(ctx); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatalf("with a client certificate: %v", err)
	}
	if err := g.Claim(ctx, 1, registry.Claim{ID: 730}, nil, ""); err != nil {
		t.Fatal(err)
	}
	anon := s
	anon.Cert, anon.Key = "", ""
	if _, _, err := open(t, anon).Prepare(ctx); !errors.Is(err, registry.ErrUnavailable) {
		t.Fatalf("without a client certificate: %v", err)
	}
	bad := s
	bad.CA = filepath.Join(dir, "client-key.pem")
	if _, err := Open(bad); !errors.Is(err, registry.ErrUnavailable) || !strings.Contains(err.Error(), "CLUSTER_CA") {
		t.Fatalf("a CA file without a certificate: %v", err)
	}
	bad = s
	bad.Cert = filepath.Join(dir, "nope.pem")
	if _, err := Open(bad); !errors.Is(err, registry.ErrUnavailable) || !strings.Contains(err.Error(), "CLUSTER_CERT") {
		t.Fatalf("a missing certificate: %v", err)
	}
	if tc, err := TLSConfig(settings(t, []string{"http://127.0.0.1:2379"}, "A")); tc != nil || err != nil {
		t.Fatalf("plain http: %v %v", tc, err)
	}
}

// newCert writes NAME.pem and NAME-key.pem to dir: a CA's certificate (parent nil) or one
// for 127.0.0.1 signed by parent.
func newCert(t *testing.T, dir, name string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "vpsctl-test-" + name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	signer, signerKey := tmpl, key
	if parent == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	} else {
		signer, signerKey = parent, parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	os.WriteFile(filepath.Join(dir, name+".pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(filepath.Join(dir, name+"-key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	return cert, key
}
