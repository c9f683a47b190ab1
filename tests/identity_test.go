package tests

import (
	"encoding/json"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

type uidRow struct {
	VPSUID    uint32 `json:"vps_uid"`
	HostUID   uint32 `json:"host_uid"`
	User      string `json:"user"`
	Processes int    `json:"processes"`
}

func uidTable(t *testing.T, id string, extra ...string) []uidRow {
	t.Helper()
	var rows []uidRow
	out := must(t, append([]string{"uid", id, "--format", "json"}, extra...)...)
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("uid json: %v: %s", err, out)
	}
	return rows
}

func row(rows []uidRow, vpsUID uint32) (uidRow, bool) {
	for _, r := range rows {
		if r.VPSUID == vpsUID {
			return r, true
		}
	}
	return uidRow{}, false
}

func hostUIDOf(t *testing.T, pid int) uint32 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "Uid:") {
			n, _ := strconv.Atoi(strings.Fields(l)[1])
			return uint32(n)
		}
	}
	t.Fatal("no Uid line")
	return 0
}

func TestIdentity(t *testing.T) {
	checkClean(t, "111", "112", "113")
	must(t, "create", "111", "--template", "busybox")
	must(t, "create", "112", "--template", "busybox")
	must(t, "start", "111")
	must(t, "start", "112")

	t.Run("disjoint UID ranges, root unprivileged on the host", func(t *testing.T) {
		r1, r2 := uidTable(t, "111"), uidTable(t, "112")
		a, ok1 := row(r1, 0)
		b, ok2 := row(r2, 0)
		if !ok1 || !ok2 || a.User != "root" || a.HostUID < 1000000 || b.HostUID < 1000000 || a.HostUID == b.HostUID {
			t.Fatalf("root rows: %+v %+v", a, b)
		}
		if d := int64(a.HostUID) - int64(b.HostUID); d > -65536 && d < 65536 {
			t.Fatalf("ranges overlap: %d and %d", a.HostUID, b.HostUID)
		}
		if got := hostUIDOf(t, status(t, "111").InitPID); got != a.HostUID {
			t.Fatalf("init of 111 runs as host uid %d, table says %d", got, a.HostUID)
		}
		if a.Processes < 1 {
			t.Fatalf("root of 111 has %d processes", a.Processes)
		}
		g := uidTable(t, "111", "--groups")
		if r, ok := row(g, 0); !ok || r.User != "root" {
			t.Fatalf("gid table: %+v", g)
		}
	})

	t.Run("a user's processes are counted under her host uid", func(t *testing.T) {
		must(t, "exec", "111", "--", "sh", "-c", "echo alice:x:1000:1000::/:/bin/sh >> /etc/passwd")
		must(t, "exec", "111", "--", "su", "alice", "-c", "sleep 300 >/dev/null 2>&1 &")
		var alice uidRow
		waitFor(t, 5*time.Second, "alice's process", func() bool {
			r, ok := row(uidTable(t, "111"), 1000)
			alice = r
			return ok && r.Processes == 1
		})
		base, _ := row(uidTable(t, "111"), 0)
		if alice.User != "alice" || alice.HostUID != base.HostUID+1000 {
			t.Fatalf("alice: %+v (root %+v)", alice, base)
		}
		// pid: owning and effective 111, and her PID inside.
		var procs []struct {
			HostPID int    `json:"host_pid"`
			VPSPID  int    `json:"vps_pid"`
			VPSUID  int64  `json:"vps_uid"`
			HostUID uint32 `json:"host_uid"`
			Command string `json:"command"`
		}
		if err := json.Unmarshal([]byte(must(t, "ps", "111", "--format", "json")), &procs); err != nil {
			t.Fatal(err)
		}
		sleepPID, sleepVPID, sawInit := 0, 0, false
		for _, p := range procs {
			if p.VPSPID == 1 {
				sawInit = true
			}
			if strings.HasPrefix(p.Command, "sleep 300") {
				sleepPID, sleepVPID = p.HostPID, p.VPSPID
				if p.VPSUID != 1000 || p.HostUID != alice.HostUID {
					t.Fatalf("sleep: %+v", p)
				}
			}
		}
		if !sawInit || sleepPID == 0 || sleepVPID <= 1 || sleepVPID == sleepPID {
			t.Fatalf("ps: %+v", procs)
		}
		var infos []struct {
			HostPID   int    `json:"host_pid"`
			Owning    uint32 `json:"owning"`
			Effective uint32 `json:"effective"`
			VPSPID    int    `json:"vps_pid"`
		}
		if err := json.Unmarshal([]byte(must(t, "pid", strconv.Itoa(sleepPID), "--format", "json")), &infos); err != nil {
			t.Fatal(err)
		}
		if len(infos) != 1 || infos[0].Owning != 111 || infos[0].Effective != 111 || infos[0].VPSPID != sleepVPID {
			t.Fatalf("pid: %+v (want 111/111/%d)", infos, sleepVPID)
		}
		// The spectator view lists both VPSs.
		all := must(t, "ps", "--format", "json")
		if !strings.Contains(all, `"vps": 111`) || !strings.Contains(all, `"vps": 112`) {
			t.Fatalf("spectator view: %s", all)
		}
	})

	t.Run("owning differs from effective under nsenter", func(t *testing.T) {
		init := status(t, "111").InitPID
		cmd := exec.Command("nsenter", "-t", strconv.Itoa(init), "-n", "-u", "sleep", "30")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { cmd.Process.Kill(); cmd.Wait() }()
		var infos []struct {
			Owning    uint32 `json:"owning"`
			Effective uint32 `json:"effective"`
		}
		waitFor(t, 5*time.Second, "nsenter's sleep", func() bool {
			if err := json.Unmarshal([]byte(must(t, "pid", strconv.Itoa(cmd.Process.Pid), "--format", "json")), &infos); err != nil {
				t.Fatal(err)
			}
			return len(infos) == 1 && infos[0].Effective == 111
		})
		if infos[0].Owning != 0 {
			t.Fatalf("pid: %+v, want owning 0 effective 111", infos)
		}
		expectCode(t, 21, "pid", "abc")
	})

	t.Run("set hostname live and persistent", func(t *testing.T) {
		init := status(t, "111").InitPID
		must(t, "set", "111", "--hostname", "beta")
		if got := strings.TrimSpace(must(t, "exec", "111", "--", "uname", "-n")); got != "beta" {
			t.Fatalf("uname -n = %q", got)
		}
		if got := strings.TrimSpace(must(t, "exec", "111", "--", "cat", "/etc/hostname")); got != "beta" {
			t.Fatalf("/etc/hostname = %q", got)
		}
		if s := status(t, "111"); s.InitPID != init || s.Hostname != "beta" {
			t.Fatalf("after set: %+v (init was %d)", s, init)
		}
		expectCode(t, 70, "set", "111", "--hostname", "bad_name!")
		if got := strings.TrimSpace(must(t, "exec", "111", "--", "hostname")); got != "beta" {
			t.Fatalf("hostname changed by a refused set: %q", got)
		}
		host, _ := os.Hostname()
		if host == "beta" {
			t.Fatal("host hostname changed")
		}
	})

	t.Run("namespace subset without user and net", func(t *testing.T) {
		must(t, "create", "113", "--template", "busybox", "--namespaces", "uts,ipc,pid,mnt")
		must(t, "start", "113")
		out := must(t, "exec", "113", "--", "ip", "-o", "link")
		hostLinks, _ := exec.Command("ip", "-o", "link").Output()
		if strings.Count(out, "\n") != strings.Count(string(hostLinks), "\n") {
			t.Fatalf("VPS without net ns should see the host's links:\n%s", out)
		}
		if r, ok := row(uidTable(t, "113"), 0); !ok || r.HostUID != 0 {
			t.Fatalf("uid table without user ns: %+v", r)
		}
		u := must(t, "uid", "113")
		if !strings.Contains(u, "no user namespace") {
			t.Fatalf("uid output does not say there is no user namespace:\n%s", u)
		}
		if got := strings.TrimSpace(must(t, "exec", "113", "--", "hostname")); got != "vps113" {
			t.Fatalf("hostname = %q", got)
		}
		must(t, "stop", "--kill", "113")
	})

	t.Run("idmap pool exhaustion names the pool", func(t *testing.T) {
		r := expectCode(t, 212, "create", "114", "--template", "busybox", "--idmap-size", "1073741824")
		if !strings.Contains(r.err, "1000000") {
			t.Fatalf("error does not name the pool: %s", r.err)
		}
	})
	must(t, "stop", "--kill", "111")
	must(t, "stop", "--kill", "112")
}
