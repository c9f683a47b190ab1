package cluster

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// requireEtcd skips t without Debian's etcd-server (scripts/test.sh installs it), or fails it
// when CI=true: a CI run that skipped the registry's tests would prove nothing.
func requireEtcd(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("etcd"); err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no etcd program (apt-get install etcd-server; CI=true: refusing to skip)")
	}
	t.Skip("no etcd program: apt-get install etcd-server")
}

// etcdCluster is a real etcd cluster of members on 127.0.0.1, each with its data in a
// directory of the test's, stopped by PID when the test ends.
type etcdCluster struct {
	t         testing.TB
	dir       string
	args      [][]string
	procs     []*exec.Cmd
	Endpoints []string
}

// startEtcd starts n members: client ports clientBase.., peer ports peerBase.. extra are
// more flags for every member (TLS).
func startEtcd(t testing.TB, n, clientBase, peerBase int, scheme string, extra ...string) *etcdCluster {
	t.Helper()
	requireEtcd(t)
	e := &etcdCluster{t: t, dir: t.TempDir(), procs: make([]*exec.Cmd, n)}
	var initial []string
	for i := range n {
		initial = append(initial, fmt.Sprintf("m%d=http://127.0.0.1:%d", i, peerBase+i))
	}
	for i := range n {
		client := fmt.Sprintf("%s://127.0.0.1:%d", scheme, clientBase+i)
		e.Endpoints = append(e.Endpoints, client)
		args := []string{"--name", fmt.Sprintf("m%d", i), "--data-dir", filepath.Join(e.dir, fmt.Sprintf("m%d", i)),
			"--listen-client-urls", client, "--advertise-client-urls", client,
			"--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peerBase+i),
			"--initial-advertise-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peerBase+i),
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", fmt.Sprintf("vpsctl-test-%d", os.Getpid())}
		e.args = append(e.args, append(args, extra...))
		e.start(i)
	}
	t.Cleanup(func() {
		for i := range e.procs {
			e.Stop(i)
		}
	})
	e.waitHealthy(e.Endpoints, 30*time.Second)
	return e
}

func (e *etcdCluster) start(i int) {
	e.t.Helper()
	log, err := os.OpenFile(filepath.Join(e.dir, fmt.Sprintf("m%d.log", i)), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		e.t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command("etcd", e.args[i]...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.procs[i] = cmd
}

// Stop stops member i (by its PID: SIGTERM, SIGKILL after 10 s) and waits for it.
func (e *etcdCluster) Stop(i int) {
	cmd := e.procs[i]
	if cmd == nil {
		return
	}
	e.procs[i] = nil
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

// waitHealthy waits until every endpoint in eps answers /health (plain http only: the TLS
// tests wait through their own client).
func (e *etcdCluster) waitHealthy(eps []string, within time.Duration) {
	e.t.Helper()
	deadline := time.Now().Add(within)
	for _, ep := range eps {
		if !strings.HasPrefix(ep, "http://") {
			continue
		}
		for {
			resp, err := http.Get(ep + "/health")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					break
				}
			}
			if time.Now().After(deadline) {
				b, _ := os.ReadFile(filepath.Join(e.dir, "m0.log"))
				e.t.Fatalf("etcd %s not healthy in %v: %v\n%s", ep, within, err, b)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}
