package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vpsctl/vpsctl/internal/fault"
	"github.com/vpsctl/vpsctl/registry"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The cluster (issue 23): a real three-member etcd on 127.0.0.1 (client ports 23791..23793,
// peer ports 23801..23803) and state roots acting as hosts A and B, each with its own host
// configuration (CLUSTER, NODE). VPS IDs 700-799, addresses 198.18.0.0/24.

// exitClusterDown is vpsctl's exit code for "cluster unavailable" (cmd/vpsctl/exitcodes.go).
const exitClusterDown = 218

// requireEtcd skips t without Debian's etcd-server (scripts/test.sh installs it), or fails it
// when CI=true.
func requireEtcd(t testing.TB) {
	t.Helper()
	requireRoot(t)
	if _, err := exec.LookPath("etcd"); err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no etcd program (apt-get install etcd-server; CI=true: refusing to skip)")
	}
	t.Skip("no etcd program: apt-get install etcd-server")
}

// etcdMembers is a real etcd cluster, each member's data in a directory of the test's, every
// member stopped by its PID when the test ends.
type etcdMembers struct {
	t         testing.TB
	dir       string
	args      [][]string
	procs     []*exec.Cmd
	endpoints []string
}

func startEtcd(t testing.TB) *etcdMembers {
	t.Helper()
	requireEtcd(t)
	const n, clientBase, peerBase = 3, 23791, 23801
	e := &etcdMembers{t: t, dir: t.TempDir(), procs: make([]*exec.Cmd, n)}
	var initial []string
	for i := range n {
		initial = append(initial, fmt.Sprintf("m%d=http://127.0.0.1:%d", i, peerBase+i))
	}
	for i := range n {
		client, peer := fmt.Sprintf("http://127.0.0.1:%d", clientBase+i), fmt.Sprintf("http://127.0.0.1:%d", peerBase+i)
		e.endpoints = append(e.endpoints, client)
		e.args = append(e.args, []string{"--name", fmt.Sprintf("m%d", i), "--data-dir", filepath.Join(e.dir, fmt.Sprintf("m%d", i)),
			"--listen-client-urls", client, "--advertise-client-urls", client, "--listen-peer-urls", peer,
			"--initial-advertise-peer-urls", peer, "--initial-cluster", strings.Join(initial, ","),
			"--initial-cluster-state", "new", "--initial-cluster-token", fmt.Sprintf("vpsctl-it-%d", os.Getpid())})
		e.start(i)
	}
	t.Cleanup(func() {
		for i := range e.procs {
			e.stop(i)
		}
	})
	e.waitHealthy(e.endpoints)
	return e
}

func (e *etcdMembers) start(i int) {
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

// stop stops member i by its PID (SIGTERM; SIGKILL after 10 s) and waits for it.
func (e *etcdMembers) stop(i int) {
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

func (e *etcdMembers) waitHealthy(eps []string) {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, ep := range eps {
		for {
			resp, err := http.Get(ep + "/health")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					break
				}
			}
			if time.Now().After(deadline) {
				e.t.Fatalf("etcd %s not healthy: %v", ep, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// kvs reads every key under the registry's prefix with its value.
func (e *etcdMembers) kvs() map[string]string {
	e.t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: e.endpoints, DialTimeout: 5 * time.Second})
	if err != nil {
		e.t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, registry.Prefix, clientv3.WithPrefix())
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]string{}
	for _, kv := range resp.Kvs {
		out[string(kv.Key)] = string(kv.Value)
	}
	return out
}

// clusterHost is a state root acting as one host of the cluster.
type clusterHost struct {
	name, root, conf string
}

// clusterHosts makes hosts named names, each with its state root, a busybox template and a
// host configuration naming the cluster e. When the test ends their VPSs are destroyed and
// their agents stopped (by PID), and nothing of theirs may be left running.
func clusterHosts(t *testing.T, e *etcdMembers, names ...string) []*clusterHost {
	t.Helper()
	dir := filepath.Join(workDir, "cluster-"+t.Name())
	var hs []*clusterHost
	for _, n := range names {
		h := &clusterHost{name: n, root: filepath.Join(dir, n, "state"), conf: filepath.Join(dir, n, "vpsctl.conf")}
		os.MkdirAll(filepath.Dir(h.conf), 0o700)
		conf := fmt.Sprintf("CLUSTER=%q\nNODE=%q\nCLUSTER_TIMEOUT=\"2s\"\n", strings.Join(e.endpoints, ","), n)
		if err := os.WriteFile(h.conf, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		h.must(t, "template", "build", "busybox")
		hs = append(hs, h)
	}
	t.Cleanup(func() {
		for _, h := range hs {
			ents, _ := os.ReadDir(filepath.Join(h.root, "vps"))
			for _, ent := range ents {
				h.run(t, "destroy", "--force", ent.Name())
			}
			h.run(t, "lxcfs", "stop") // a host that started a VPS started its LXCFS
			h.run(t, "cluster", "stop")
			if pid := registry.AgentPID(h.root); pid != 0 {
				t.Errorf("host %s: agent %d still runs", h.name, pid)
			}
			// A destroy's background remover may still be at work for a moment.
			for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				pids := rootProcesses(h.root)
				if len(pids) == 0 {
					break
				}
				if time.Now().After(deadline) {
					for _, pid := range pids {
						cl, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
						t.Errorf("host %s: process left: %d %q", h.name, pid, cl)
					}
					break
				}
			}
		}
		os.RemoveAll(dir)
	})
	return hs
}

// checkCleanCluster is checkClean for this file's VPSs (IDs 700-799): groups and links of other
// tests running meanwhile (other state roots, other IDs) are theirs.
func checkCleanCluster(t *testing.T) {
	t.Helper()
	requireRoot(t)
	mine := func(s hostState) string {
		var out []string
		for _, x := range append(s.cgroups, s.links...) {
			b := strings.TrimPrefix(filepath.Base(x), "vps")
			if n, err := strconv.Atoi(b); err == nil && n >= 700 && n <= 799 {
				out = append(out, x)
			}
		}
		return strings.Join(out, " ")
	}
	before := mine(snapshot(t))
	t.Cleanup(func() {
		var after string
		for range 100 {
			if after = mine(snapshot(t)); after == before {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Errorf("groups or links of VPSs 700-799 left:\nbefore: %s\nafter:  %s", before, after)
	})
}

// rootProcesses lists vpsctl processes (monitors, agents) of state root dir.
func rootProcesses(dir string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cl, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		env, _ := os.ReadFile("/proc/" + e.Name() + "/environ")
		if !bytes.HasPrefix(cl, []byte("vpsctl")) && !bytes.Contains(cl, []byte("vpsctl-cluster")) {
			continue
		}
		if bytes.Contains(cl, []byte(dir+"\x00")) || bytes.Contains(env, []byte("VPSCTL_ROOT="+dir+"\x00")) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func (h *clusterHost) cmd(env []string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), append([]string{"VPSCTL_ROOT=" + h.root, "VPSCTL_CONFIG=" + h.conf}, env...)...)
	return cmd
}

func (h *clusterHost) runEnv(t testing.TB, env []string, args ...string) result {
	t.Helper()
	cmd := h.cmd(env, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Start(); err != nil {
		t.Fatalf("vpsctl %v: %v", args, err)
	}
	waitCmd(t, cmd, 120*time.Second)
	return result{out: o.String(), err: e.String(), code: cmd.ProcessState.ExitCode()}
}

func (h *clusterHost) run(t testing.TB, args ...string) result { return h.runEnv(t, nil, args...) }

func (h *clusterHost) must(t testing.TB, args ...string) string {
	t.Helper()
	r := h.run(t, args...)
	if r.code != 0 {
		t.Fatalf("%s: vpsctl %s: exit %d\n%s%s", h.name, strings.Join(args, " "), r.code, r.out, r.err)
	}
	return r.out
}

// expect runs args on h and checks the exit code, and that stderr holds want.
func (h *clusterHost) expect(t testing.TB, code int, want string, args ...string) result {
	t.Helper()
	r := h.run(t, args...)
	if r.code != code || !strings.Contains(r.err, want) {
		t.Fatalf("%s: vpsctl %s: exit %d, want %d with %q\n%s%s", h.name, strings.Join(args, " "), r.code, code, want, r.out, r.err)
	}
	return r
}

// localVPS is what a host's own store says of one VPS.
type localVPS struct {
	ID     uint32   `json:"id"`
	Name   string   `json:"name"`
	IDMap  string   `json:"idmap"`
	IPs    []string `json:"ips"`
	NetIfs []string `json:"netifs"`
}

func (h *clusterHost) local(t testing.TB) []localVPS {
	t.Helper()
	var vs []localVPS
	if err := json.Unmarshal([]byte(h.must(t, "list", "-a", "--format", "json")), &vs); err != nil {
		t.Fatal(err)
	}
	return vs
}

// agree checks that, after a next command on each host (list --cluster, which settles what
// the host left pending), etcd and the hosts' stores say the same: every VPS of every host has
// its record (with its host), name, addresses and UID range in etcd and nothing else is
// claimed; no change is left pending.
func agree(t *testing.T, e *etcdMembers, hs ...*clusterHost) {
	t.Helper()
	for _, h := range hs {
		h.must(t, "list", "--cluster")
	}
	kv := e.kvs()
	want := map[string]string{}
	for _, h := range hs {
		for _, v := range h.local(t) {
			id := strconv.Itoa(int(v.ID))
			var rec registry.Record
			if err := json.Unmarshal([]byte(kv[registry.VPSKey(v.ID)]), &rec); err != nil || rec.Host != h.name {
				t.Fatalf("VPS %d of host %s: registry record %q", v.ID, h.name, kv[registry.VPSKey(v.ID)])
			}
			want[registry.VPSKey(v.ID)] = kv[registry.VPSKey(v.ID)]
			if v.Name != "" {
				want[registry.NamePrefix+v.Name] = id
			}
			for _, a := range v.IPs {
				want[registry.IPPrefix+strings.Split(a, "/")[0]] = id
			}
			if v.IDMap != "" {
				var base, size uint32
				fmt.Sscanf(v.IDMap, "%d:%d", &base, &size)
				want[registry.UIDKey(base)] = fmt.Sprintf("%d %d", size, v.ID)
			}
		}
	}
	got := map[string]string{}
	for k, v := range kv {
		if !strings.HasPrefix(k, registry.HostsPrefix) && !strings.HasPrefix(k, registry.AlivePrefix) {
			got[k] = v
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("etcd and the local stores disagree:\netcd:  %v\nlocal: %v", sortedKeys(got), sortedKeys(want))
	}
}

func sortedKeys(m map[string]string) []string {
	var out []string
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// TestClusterAcceptance is issue 23's acceptance, as written.
func TestClusterAcceptance(t *testing.T) {
	checkCleanCluster(t)
	e := startEtcd(t)
	hs := clusterHosts(t, e, "A", "B")
	a, b := hs[0], hs[1]
	a.must(t, "create", "701", "--template", "busybox", "--ipadd", "198.18.0.71")
	if ev := a.must(t, "events", "--format", "json"); !strings.Contains(ev, `"created"`) || !strings.Contains(ev, `701`) {
		t.Fatalf("no created event for 701:\n%s", ev)
	}
	b.expect(t, 44, "VPS 701 exists on host A", "create", "701", "--template", "busybox")
	b.expect(t, 78, "198.18.0.71 in use on host A", "create", "702", "--template", "busybox", "--ipadd", "198.18.0.71")
	b.must(t, "create", "702", "--template", "busybox", "--ipadd", "198.18.0.72")
	var inv []struct {
		ID    uint32   `json:"id"`
		Host  string   `json:"host"`
		State string   `json:"state"`
		Addrs []string `json:"addrs"`
	}
	// B's create sent its settling without waiting for it: for a moment 702 may show as
	// creating, on B all the same.
	waitFor(t, 5*time.Second, "702 settled", func() bool {
		if err := json.Unmarshal([]byte(a.must(t, "list", "--cluster", "--format", "json")), &inv); err != nil {
			t.Fatal(err)
		}
		return len(inv) == 2 && inv[1].Host == "B" && inv[1].State != "creating"
	})
	if len(inv) != 2 || inv[0].ID != 701 || inv[0].Host != "A" || inv[0].State != "stopped" || inv[1].ID != 702 || inv[1].Host != "B" ||
		inv[1].State != "exist" || !slices.Equal(inv[1].Addrs, []string{"198.18.0.72"}) {
		t.Fatalf("list --cluster: %+v", inv)
	}
	if out := a.must(t, "list", "--cluster"); !strings.Contains(out, "HOST") || !strings.Contains(out, "702  -     B") {
		t.Fatalf("list --cluster table:\n%s", out)
	}
	hostsUp := func(h *clusterHost) map[string]bool {
		var hosts []registry.HostState
		if err := json.Unmarshal([]byte(h.must(t, "hosts", "--format", "json")), &hosts); err != nil {
			t.Fatal(err)
		}
		up := map[string]bool{}
		for _, x := range hosts {
			up[x.Name] = x.Up
		}
		return up
	}
	if up := hostsUp(a); len(up) != 2 || !up["A"] || !up["B"] {
		t.Fatalf("hosts: %v", up)
	}
	if out := a.must(t, "hosts"); !strings.Contains(out, "A     up") || !strings.Contains(out, "B     up") {
		t.Fatalf("hosts table:\n%s", out)
	}
	a.expect(t, 0, "", "status", "702") // on another host: says where
	if out := a.must(t, "status", "702"); out != "VPS 702 exist on host B\n" {
		t.Fatalf("status of B's VPS on A: %q", out)
	}
	b.must(t, "start", "702")
	agree(t, e, a, b)

	e.stop(0)
	b.must(t, "create", "703", "--template", "busybox", "--ipadd", "198.18.0.73")
	e.stop(1)
	t0 := time.Now()
	r := b.run(t, "create", "704", "--template", "busybox", "--ipadd", "198.18.0.74")
	took := time.Since(t0)
	if r.code != exitClusterDown || took > 10*time.Second || strings.Count(strings.TrimSpace(r.err), "\n") != 0 || !strings.Contains(r.err, "cluster unavailable") {
		t.Fatalf("create with the majority down: exit %d after %v\n%s%s", r.code, took, r.out, r.err)
	}
	t.Logf("create with the majority down: exit %d after %v: %s", r.code, took.Round(time.Millisecond), strings.TrimSpace(r.err))
	if _, err := os.Stat(filepath.Join(b.root, "vps", "704")); !os.IsNotExist(err) {
		t.Fatalf("VPS 704 created locally: %v", err)
	}
	// What reads or changes only local state goes on.
	if out := b.must(t, "status", "702"); out != "VPS 702 exist running\n" {
		t.Fatalf("status 702: %q", out)
	}
	b.must(t, "exec", "702", "--", "true")
	b.must(t, "list", "-a")
	b.must(t, "stop", "702")
	b.must(t, "start", "702")
	b.must(t, "stop", "702")
	// Destroy, and a set of a name or an address, need the registry: refused, nothing changed.
	b.expect(t, exitClusterDown, "cluster unavailable", "destroy", "703")
	b.must(t, "status", "703")
	b.expect(t, exitClusterDown, "cluster unavailable", "set", "703", "--ipadd", "198.18.0.79")
	b.expect(t, exitClusterDown, "cluster unavailable", "set", "703", "--name", "n703")
	b.must(t, "set", "703", "--hostname", "h703") // nothing of the cluster's
	if v := b.local(t); len(v) != 2 || v[1].ID != 703 || v[1].Name != "" || !slices.Equal(v[1].IPs, []string{"198.18.0.73/32"}) {
		t.Fatalf("after the refused sets: %+v", v)
	}

	e.start(0)
	e.start(1)
	e.waitHealthy(e.endpoints)
	waitFor(t, 30*time.Second, "the registry back", func() bool { return b.run(t, "list", "--cluster").code == 0 })
	a.must(t, "list", "--cluster")
	agree(t, e, a, b)
	if _, ok := e.kvs()[registry.VPSKey(704)]; ok {
		t.Fatal("704 claimed")
	}
	for _, id := range []string{"702", "703"} {
		b.must(t, "destroy", id)
	}

	// A host whose agent died (kill -9: its lease is not given up) is down once the lease
	// expires, and its VPSs unknown, never gone; its next command brings it back.
	pid := registry.AgentPID(a.root)
	if pid == 0 {
		t.Fatal("A has no agent")
	}
	syscall.Kill(pid, syscall.SIGKILL)
	waitFor(t, 30*time.Second, "A down", func() bool { return !hostsUp(b)["A"] })
	if err := json.Unmarshal([]byte(b.must(t, "list", "--cluster", "--format", "json")), &inv); err != nil {
		t.Fatal(err)
	}
	if len(inv) != 1 || inv[0].ID != 701 || inv[0].Host != "A" || inv[0].State != "unknown" {
		t.Fatalf("A's VPS while A is down: %+v", inv)
	}
	if out := b.must(t, "hosts"); !strings.Contains(out, "A     down") {
		t.Fatalf("hosts:\n%s", out)
	}
	a.must(t, "destroy", "701")
	if up := hostsUp(b); !up["A"] || !up["B"] {
		t.Fatalf("hosts after A's next command: %v", up)
	}
	agree(t, e, a, b)
}

// TestClusterSetDestroy: set --name and --ipadd claim across hosts (44, 78), --ipdel and a
// rename release, destroy releases everything, and the next host may take it all.
func TestClusterSetDestroy(t *testing.T) {
	checkCleanCluster(t)
	e := startEtcd(t)
	hs := clusterHosts(t, e, "A", "B")
	a, b := hs[0], hs[1]
	a.must(t, "create", "710", "--template", "busybox", "--name", "n710", "--ipadd", "198.18.0.110")
	// The agent a command started left that command's cgroup (a login scope would take it
	// along) for vpsctl's own, beside the monitors.
	if cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", registry.AgentPID(a.root))); err != nil || !strings.Contains(string(cg), "/vpsctl/.monitor") {
		t.Fatalf("agent's cgroups: %v\n%s", err, cg)
	}
	b.must(t, "create", "711", "--template", "busybox")
	b.expect(t, 44, `name "n710" is held by VPS 710 on host A`, "set", "711", "--name", "n710")
	b.expect(t, 78, "198.18.0.110 in use on host A (VPS 710)", "set", "711", "--ipadd", "198.18.0.110")
	b.expect(t, 44, "on host A", "create", "712", "--template", "busybox", "--name", "n710")
	if out := b.must(t, "status", "n710"); out != "VPS 710 exist on host A\n" {
		t.Fatalf("status by name of A's VPS on B: %q", out)
	}
	agree(t, e, a, b)
	a.must(t, "set", "710", "--name", "m710", "--ipadd", "198.18.0.111", "--ipdel", "198.18.0.110")
	agree(t, e, a, b)
	b.must(t, "set", "711", "--name", "n710", "--ipadd", "198.18.0.110")
	agree(t, e, a, b)
	a.must(t, "destroy", "710")
	agree(t, e, a, b)
	b.must(t, "create", "710", "--template", "busybox", "--name", "m710", "--ipadd", "198.18.0.111")
	agree(t, e, a, b)
	b.must(t, "destroy", "710")
	b.must(t, "destroy", "711")
	agree(t, e, a, b)
	if kv := e.kvs(); len(kv) != 4 { // the two hosts' records and liveness
		t.Fatalf("left in etcd: %v", sortedKeys(kv))
	}

	// VPSs made before the host joined the cluster: claimed by cluster join; one whose ID, or
	// whose UID range, another host holds is named and left alone.
	noUser := []string{"--namespaces", "uts,ipc,pid,mnt,net"}
	c := &clusterHost{name: "C", root: filepath.Join(filepath.Dir(filepath.Dir(a.root)), "C", "state"), conf: filepath.Join(t.TempDir(), "none.conf")}
	b.must(t, "create", "714", "--template", "busybox")
	bRange := b.local(t)[0].IDMap
	// C's pool starts at B's 714's range: C's own 719 gets it, unknown to the cluster yet.
	os.WriteFile(c.conf, []byte(fmt.Sprintf("UID_POOL_START=%q\n", strings.Split(bRange, ":")[0])), 0o600)
	c.must(t, "template", "build", "busybox")
	c.must(t, "create", "719", "--template", "busybox")
	c.must(t, append([]string{"create", "713", "--template", "busybox", "--name", "n713", "--ipadd", "198.18.0.113"}, noUser...)...)
	c.must(t, append([]string{"create", "714", "--template", "busybox"}, noUser...)...)
	c.must(t, append([]string{"create", "717", "--template", "busybox", "--ipadd", "198.18.0.117"}, noUser...)...)
	os.WriteFile(c.conf, []byte(fmt.Sprintf("CLUSTER=%q\nNODE=\"C\"\n", strings.Join(e.endpoints, ","))), 0o600)
	t.Cleanup(func() {
		for _, id := range []string{"713", "714", "717", "719"} {
			c.run(t, "destroy", id)
		}
		c.run(t, "cluster", "stop")
	})
	// Before its join, C's own VPSs are checked here only: 713's address is refused by the
	// local check made while the claim is on its way, and its name after the claim; neither
	// claim stays.
	c.expect(t, 78, "held by VPS 713", "create", "715", "--template", "busybox", "--ipadd", "198.18.0.113")
	c.expect(t, 44, `name "n713"`, "create", "716", "--template", "busybox", "--name", "n713")
	c.must(t, "list", "--cluster")
	for _, id := range []uint32{715, 716} {
		if _, ok := e.kvs()[registry.VPSKey(id)]; ok {
			t.Fatalf("%d left claimed", id)
		}
	}
	// An address C's unjoined VPS has that another host claimed meanwhile: C dropping it
	// releases nothing of B's (the set claims 717 as it is now).
	b.must(t, "create", "718", "--template", "busybox", "--ipadd", "198.18.0.117")
	c.must(t, "set", "717", "--ipdel", "198.18.0.117")
	if v := e.kvs()[registry.IPPrefix+"198.18.0.117"]; v != "718" {
		t.Fatalf("B's address after C dropped its own: %q", v)
	}
	c.must(t, "destroy", "717")
	b.must(t, "destroy", "718")
	r := c.run(t, "cluster", "join")
	if r.code != 44 || r.out != "VPS 713 claimed\n" || !strings.Contains(r.err, "VPS 714 not claimed: VPS 714 exists on host B") ||
		!strings.Contains(r.err, "VPS 719 not claimed: UID range "+bRange+" overlaps VPS 714's on host B") {
		t.Fatalf("cluster join: exit %d\n%s%s", r.code, r.out, r.err)
	}
	if out := a.must(t, "status", "n713"); out != "VPS 713 exist on host C\n" {
		t.Fatalf("status of a joined VPS: %q", out)
	}
	// Not C's in the registry: destroyed here, B's claims untouched.
	c.must(t, "destroy", "714")
	c.must(t, "destroy", "719")
	if r := c.run(t, "cluster", "join"); r.code != 0 || r.out != "VPS 713 claimed\n" {
		t.Fatalf("cluster join again: exit %d\n%s%s", r.code, r.out, r.err)
	}
	agree(t, e, a, b, c)
	c.must(t, "destroy", "713")
	b.must(t, "destroy", "714")
	agree(t, e, a, b, c)
}

// TestClusterConcurrency: 50 creates of the same ten IDs and addresses from two hosts at
// once: each ID and each address exists exactly once, on one host, as etcd says.
func TestClusterConcurrency(t *testing.T) {
	checkCleanCluster(t)
	e := startEtcd(t)
	hs := clusterHosts(t, e, "A", "B")
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for hi, h := range hs {
		for g := range 5 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := range 5 {
					n := (g*5 + k + hi*3) % 10
					id := strconv.Itoa(760 + n)
					// The two hosts pair IDs and addresses differently: an address can be lost
					// to another ID than the one that takes the same ID.
					addr := fmt.Sprintf("198.18.0.%d", 160+(n+hi*7)%10)
					r := h.run(t, "create", id, "--template", "busybox", "--ipadd", addr)
					mu.Lock()
					codes[r.code]++
					mu.Unlock()
					if r.code != 0 && r.code != 44 && r.code != 78 {
						t.Errorf("%s: create %s %s: exit %d: %s", h.name, id, addr, r.code, r.err)
					}
				}
			}()
		}
	}
	wg.Wait()
	t.Logf("50 creates: exit codes %v", codes)
	ids, addrs := map[uint32]string{}, map[string]uint32{}
	for _, h := range hs {
		for _, v := range h.local(t) {
			if other, ok := ids[v.ID]; ok {
				t.Fatalf("VPS %d on %s and %s", v.ID, other, h.name)
			}
			ids[v.ID] = h.name
			for _, a := range v.IPs {
				if other, ok := addrs[a]; ok {
					t.Fatalf("%s held by %d and %d", a, other, v.ID)
				}
				addrs[a] = v.ID
			}
		}
	}
	if codes[0] != len(ids) {
		t.Fatalf("%d IDs exist, %d creates succeeded: %v", len(ids), codes[0], ids)
	}
	// An ID can be left to no host: one host's create saw the other's claim in flight (44)
	// and that one then lost its address (78). Some create always wins.
	if len(ids) == 0 {
		t.Fatalf("no create succeeded: exit codes %v", codes)
	}
	agree(t, e, hs...)
}

// TestClusterCrash: kill -9 of a create (and of a set and a destroy) at each of its fault
// points: after the next command, etcd and the local stores agree.
func TestClusterCrash(t *testing.T) {
	checkCleanCluster(t)
	e := startEtcd(t)
	hs := clusterHosts(t, e, "A", "B")
	a, b := hs[0], hs[1]
	b.must(t, "create", "749", "--template", "busybox", "--name", "other") // another host's claims stay put
	killed := func(r result, what string) {
		t.Helper()
		if r.code != -1 {
			t.Fatalf("%s: not killed: exit %d\n%s%s", what, r.code, r.out, r.err)
		}
	}
	// Each fault point of each command, in the order the command reaches them.
	points := func(prefix string) []string {
		var out []string
		for _, p := range append(slices.Clone(fault.Points), fault.ClusterPoints...) {
			if strings.HasPrefix(p, prefix) {
				out = append(out, p)
			}
		}
		if len(out) < 3 {
			t.Fatalf("%s: points %v", prefix, out)
		}
		return out
	}
	for i, p := range points("create-") {
		id := strconv.Itoa(740 + i)
		killed(a.runEnv(t, []string{"VPSCTL_FAULT=" + p}, "create", id, "--template", "busybox", "--name", "c"+id,
			"--ipadd", fmt.Sprintf("198.18.0.%d", 140+i)), p)
		a.must(t, "list", "--cluster") // the next command
		agree(t, e, a, b)
		// Whatever the crash left, the ID is usable again: created, or creatable.
		if a.run(t, "status", id).out == "VPS "+id+" deleted\n" {
			a.must(t, "create", id, "--template", "busybox", "--name", "c"+id)
		}
		agree(t, e, a, b)
	}
	for _, p := range points("set-") {
		a.must(t, "create", "750", "--template", "busybox", "--name", "s750", "--ipadd", "198.18.0.150")
		killed(a.runEnv(t, []string{"VPSCTL_FAULT=" + p}, "set", "750", "--name", "t750", "--ipadd", "198.18.0.151", "--ipdel", "198.18.0.150"), p)
		a.must(t, "list", "--cluster")
		agree(t, e, a, b)
		a.must(t, "destroy", "750")
		agree(t, e, a, b)
	}
	for _, p := range points("destroy-") {
		a.must(t, "create", "751", "--template", "busybox", "--name", "d751", "--ipadd", "198.18.0.152")
		killed(a.runEnv(t, []string{"VPSCTL_FAULT=" + p}, "destroy", "751"), p)
		a.must(t, "hosts")
		a.must(t, "list", "--cluster")
		agree(t, e, a, b)
		a.run(t, "destroy", "751")
		agree(t, e, a, b)
	}
	// And the next command may be another change of the same host.
	killed(a.runEnv(t, []string{"VPSCTL_FAULT=create-claimed"}, "create", "752", "--template", "busybox", "--ipadd", "198.18.0.153"), "create-claimed")
	a.must(t, "create", "752", "--template", "busybox", "--ipadd", "198.18.0.153")
	agree(t, e, a, b)
}

// TestClusterMoves: on hosts of a cluster, a clone and a restore from a backup are claimed as
// creates are (an ID, a name or an address another host holds is refused, nothing made); a
// migration between two of its hosts keeps the VPS's claims and moves its record, live and
// stopped; a source killed after that move, before it told the destination to keep the VPS,
// gets the record back from the destination, which abandons its copy.
func TestClusterMoves(t *testing.T) {
	checkCleanCluster(t)
	e := startEtcd(t)
	hs := clusterHosts(t, e, "A", "B")
	a, b := hs[0], hs[1]
	// as is a vpsctl for --dest-vpsctl that runs as host h (with its configuration).
	as := func(h *clusterHost) string {
		w := filepath.Join(t.TempDir(), "vpsctl-"+h.name)
		if err := os.WriteFile(w, []byte(fmt.Sprintf("#!/bin/sh\nVPSCTL_CONFIG=%s exec %s \"$@\"\n", h.conf, bin)), 0o755); err != nil {
			t.Fatal(err)
		}
		return w
	}
	a.must(t, "create", "761", "--template", "busybox", "--name", "web", "--ipadd", "198.18.0.161")
	a.must(t, "start", "761")
	a.must(t, "exec", "761", "--", "sh", "-c", "echo kept > /marker")
	b.must(t, "create", "762", "--template", "busybox", "--ipadd", "198.18.0.162")
	a.expect(t, 44, "VPS 762 exists on host B", "clone", "761", "762")
	a.expect(t, 78, "198.18.0.162 in use on host B", "clone", "761", "763", "--ipadd", "198.18.0.162")
	if out := a.run(t, "status", "763").out; out != "VPS 763 deleted\n" {
		t.Fatalf("a refused clone left %q", out)
	}
	a.must(t, "clone", "761", "763", "--ipadd", "198.18.0.163")
	agree(t, e, a, b)

	backup := filepath.Join(t.TempDir(), "761.tar.zst")
	a.must(t, "backup", "761", backup)
	b.expect(t, 44, "VPS 761 exists on host A", "restore", "761", "--from-backup", backup)
	b.expect(t, 44, `name "web" is held by VPS 761 on host A`, "restore", "764", "--from-backup", backup)
	a.must(t, "destroy", "-f", "761")
	b.must(t, "restore", "761", "--from-backup", backup) // it ran: started
	if got := strings.TrimSpace(b.must(t, "exec", "761", "--", "cat", "/marker")); got != "kept" {
		t.Fatalf("restored on B: /marker %q", got)
	}
	agree(t, e, a, b)

	// Live from B to A, then stopped from A to B: the VPS's claims stay, its record moves.
	if out := b.must(t, "migrate", "761", "local", "--dest-root", a.root, "--dest-vpsctl", as(a)); !strings.Contains(out, "downtime") {
		t.Fatalf("live migration: %s", out)
	}
	if got := strings.TrimSpace(a.must(t, "exec", "761", "--", "cat", "/marker")); got != "kept" {
		t.Fatalf("migrated to A: /marker %q", got)
	}
	agree(t, e, a, b)
	a.must(t, "stop", "761")
	a.must(t, "migrate", "761", "local", "--dest-root", b.root, "--dest-vpsctl", as(b))
	agree(t, e, a, b)

	// The source killed right after it moved the record: the destination abandons its copy and
	// gives the record back; the VPS, dumped at the source, is restored there by hand.
	b.must(t, "start", "761")
	if r := b.runEnv(t, []string{"VPSCTL_FAULT=migrate-moved"}, "migrate", "761", "local", "--dest-root", a.root, "--dest-vpsctl", as(a)); r.code != -1 {
		t.Fatalf("migration killed after the move: exit %d\n%s%s", r.code, r.out, r.err)
	}
	// On A, status then says where the registry places the VPS.
	waitFor(t, 30*time.Second, "A to abandon its copy", func() bool { return a.run(t, "status", "761").out == "VPS 761 exist on host B\n" })
	agree(t, e, a, b)
	images, _ := filepath.Glob(filepath.Join(b.root, "vps", "761", "migrate-*"))
	if len(images) != 1 {
		t.Fatalf("the dump kept at the source: %v", images)
	}
	b.must(t, "restore", "761", "--dir", images[0])
	if got := strings.TrimSpace(b.must(t, "exec", "761", "--", "cat", "/marker")); got != "kept" {
		t.Fatalf("restored at the source: /marker %q", got)
	}
	agree(t, e, a, b)
}

// TestClusterOff: without CLUSTER nothing of the cluster is used: no agent, no cluster
// directory, and list --cluster and hosts say so.
func TestClusterOff(t *testing.T) {
	checkCleanCluster(t)
	must(t, "create", "798", "--template", "busybox")
	must(t, "destroy", "798")
	if _, err := os.Stat(filepath.Join(root, "cluster")); !os.IsNotExist(err) {
		t.Fatalf("a host without CLUSTER has %s: %v", filepath.Join(root, "cluster"), err)
	}
	expectCode(t, 20, "list", "--cluster")
	expectCode(t, 20, "hosts")
	expectCode(t, 20, "cluster", "agent")
	if out := must(t, "status", "798"); out != "VPS 798 deleted\n" {
		t.Fatal(out)
	}
	// A host configuration that names a cluster nobody serves: a create fails, in bounded
	// time, with nothing created; local commands work.
	conf := filepath.Join(t.TempDir(), "vpsctl.conf")
	os.WriteFile(conf, []byte("CLUSTER=\"http://127.0.0.1:1\"\nCLUSTER_TIMEOUT=\"500ms\"\nNODE=\"nowhere\"\n"), 0o600)
	alone := &clusterHost{name: "nowhere", root: filepath.Join(workDir, "cluster-off", "state"), conf: conf}
	t.Cleanup(func() {
		alone.run(t, "cluster", "stop")
		os.RemoveAll(filepath.Dir(alone.root))
	})
	alone.must(t, "template", "build", "busybox")
	t0 := time.Now()
	alone.expect(t, exitClusterDown, "cluster unavailable", "create", "797", "--template", "busybox")
	if d := time.Since(t0); d > 5*time.Second {
		t.Fatalf("took %v", d)
	}
	if out := alone.must(t, "list", "-a"); strings.Contains(out, "797") {
		t.Fatal(out)
	}
	alone.expect(t, exitClusterDown, "cluster unavailable", "status", "797")
	alone.expect(t, exitClusterDown, "cluster unavailable", "hosts")
	alone.expect(t, exitClusterDown, "cluster unavailable", "list", "--cluster")
	alone.expect(t, exitClusterDown, "cluster unavailable", "cluster", "join")
	bad := filepath.Join(t.TempDir(), "bad.conf")
	os.WriteFile(bad, []byte("CLUSTER=\"127.0.0.1:2379\"\n"), 0o600)
	r := vpsctlEnv(t, []string{"VPSCTL_CONFIG=" + bad}, "list")
	if r.code != 21 || !strings.Contains(r.err, "bad.conf:1") {
		t.Fatalf("malformed CLUSTER: exit %d %s", r.code, r.err)
	}
	r = vpsctlEnv(t, []string{"VPSCTL_CLUSTER=h1:2379"}, "list")
	if r.code != 21 || !strings.Contains(r.err, "VPSCTL_CLUSTER") {
		t.Fatalf("malformed VPSCTL_CLUSTER: exit %d %s", r.code, r.err)
	}
}
