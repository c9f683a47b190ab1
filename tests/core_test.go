package tests

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type statusJSON struct {
	ID       uint32 `json:"id"`
	Name     string `json:"name"`
	State    string `json:"state"`
	Hostname string `json:"hostname"`
	InitPID  int    `json:"init_pid"`
	Template string `json:"template"`
}

func status(t testing.TB, id string) statusJSON {
	t.Helper()
	var s statusJSON
	out := must(t, "status", id, "--format", "json")
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("status json %q: %v", out, err)
	}
	return s
}

func TestCoreLifecycle(t *testing.T) {
	checkClean(t, "101")
	must(t, "create", "101", "--template", "busybox", "--hostname", "alpha", "--name", "web")
	if got := strings.TrimSpace(must(t, "status", "101")); got != "VPS 101 exist stopped" {
		t.Fatalf("status after create = %q", got)
	}
	must(t, "start", "101")
	if got := strings.TrimSpace(must(t, "exec", "web", "--", "hostname")); got != "alpha" {
		t.Fatalf("hostname inside = %q, want alpha", got)
	}
	host, _ := os.Hostname()
	if host == "alpha" {
		t.Fatal("host's hostname changed")
	}
	if r := vpsctl(t, "exec", "101", "--", "sh", "-c", "exit 7"); r.code != 7 {
		t.Fatalf("exec exit 7: got %d (%s)", r.code, r.err)
	}
	if got := strings.TrimSpace(must(t, "status", "101")); got != "VPS 101 exist running" {
		t.Fatalf("status = %q", got)
	}
	s1 := status(t, "web")
	if s1.State != "running" || s1.InitPID <= 0 || s1.Hostname != "alpha" || s1.Template != "busybox" || s1.Name != "web" {
		t.Fatalf("status json = %+v", s1)
	}

	t.Run("pid 1 is the template's init", func(t *testing.T) {
		got := strings.TrimSpace(must(t, "exec", "101", "--", "readlink", "/proc/1/exe"))
		if got != "/bin/busybox" {
			t.Fatalf("/proc/1/exe inside = %q", got)
		}
		if comm := strings.TrimSpace(must(t, "exec", "101", "--", "cat", "/proc/1/comm")); comm != "init" {
			t.Fatalf("/proc/1/comm = %q", comm)
		}
	})
	t.Run("ps shows only the VPS's processes", func(t *testing.T) {
		out := must(t, "exec", "101", "--", "ps", "-o", "pid,comm")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		// header, init, getty, ps (and rcS may be gone already)
		if len(lines) > 6 {
			t.Fatalf("ps inside shows %d lines:\n%s", len(lines), out)
		}
		if strings.Contains(out, "vpsctl") || strings.Contains(out, "go") && strings.Contains(out, "test") {
			t.Fatalf("host processes visible:\n%s", out)
		}
	})
	t.Run("network namespace has only lo", func(t *testing.T) {
		out := must(t, "exec", "101", "--", "ip", "-o", "link")
		if n := strings.Count(strings.TrimSpace(out), "\n") + 1; n != 1 || !strings.Contains(out, "lo:") {
			t.Fatalf("links inside:\n%s", out)
		}
	})
	t.Run("mount table hides the host's", func(t *testing.T) {
		out := must(t, "exec", "101", "--", "cat", "/proc/self/mountinfo")
		if strings.Contains(out, root) || strings.Contains(out, workDir) || strings.Contains(out, "/dev/vda") || strings.Contains(out, " ext4 ") {
			t.Fatalf("host mounts visible inside:\n%s", out)
		}
		mi, _ := os.ReadFile("/proc/self/mountinfo")
		if strings.Contains(string(mi), filepath.Join(root, "vps")) {
			t.Fatal("the VPS's mounts are visible in the host's mount namespace")
		}
	})
	t.Run("user namespace maps root to an unprivileged host uid", func(t *testing.T) {
		out := strings.Fields(must(t, "exec", "101", "--", "cat", "/proc/self/uid_map"))
		if len(out) != 3 || out[0] != "0" || out[1] == "0" {
			t.Fatalf("uid_map inside = %v", out)
		}
	})
	t.Run("duplicate create is refused", func(t *testing.T) {
		expectCode(t, 44, "create", "101", "--template", "busybox")
		expectCode(t, 44, "create", "109", "--template", "busybox", "--name", "web")
		expectCode(t, 43, "status", "web2")
	})
	t.Run("destroy of a running VPS is refused", func(t *testing.T) {
		expectCode(t, 32, "destroy", "101")
		expectCode(t, 32, "start", "101")
	})
	t.Run("in-VPS reboot restarts it with a new init", func(t *testing.T) {
		old := status(t, "101").InitPID
		vpsctl(t, "exec", "101", "--", "reboot")
		waitFor(t, 20*time.Second, "a new init", func() bool {
			s := status(t, "101")
			return s.State == "running" && s.InitPID != old && s.InitPID > 0
		})
		if got := strings.TrimSpace(must(t, "exec", "101", "--", "hostname")); got != "alpha" {
			t.Fatalf("hostname after reboot = %q", got)
		}
	})
	must(t, "stop", "101", "--timeout", "20s")
	if got := strings.TrimSpace(must(t, "status", "101")); got != "VPS 101 exist stopped" {
		t.Fatalf("status after stop = %q", got)
	}
	if s := status(t, "101"); s.InitPID != 0 {
		t.Fatalf("init_pid after stop = %d", s.InitPID)
	}
	expectCode(t, 31, "stop", "101")
	expectCode(t, 31, "exec", "101", "--", "true")
	must(t, "destroy", "101")
	if got := strings.TrimSpace(must(t, "status", "101")); got != "VPS 101 deleted" {
		t.Fatalf("status after destroy = %q", got)
	}
	expectCode(t, 43, "start", "web")
	if _, err := os.Stat(filepath.Join(root, "vps", "101")); !os.IsNotExist(err) {
		t.Fatalf("VPS directory left after destroy: %v", err)
	}
}

func TestPoweroffFromInside(t *testing.T) {
	checkClean(t, "102")
	must(t, "create", "102", "--template", "busybox")
	must(t, "start", "102")
	vpsctl(t, "exec", "102", "--", "poweroff")
	waitFor(t, 20*time.Second, "the VPS to stop", func() bool { return status(t, "102").State == "stopped" })
	// The monitor cleans up without any vpsctl command: no monitor, no cgroup.
	waitFor(t, 10*time.Second, "the monitor to exit", func() bool { return len(ourMonitors()) == 0 })
	must(t, "destroy", "102")
}

func TestSurvivesCLIAndKill(t *testing.T) {
	checkClean(t, "103")
	must(t, "create", "103", "--template", "busybox")
	must(t, "start", "103")
	// Every vpsctl above has exited: the VPS runs on.
	time.Sleep(200 * time.Millisecond)
	s := status(t, "103")
	if s.State != "running" {
		t.Fatalf("not running after the CLI exited: %+v", s)
	}
	must(t, "stop", "--kill", "103")
	if status(t, "103").State != "stopped" {
		t.Fatal("stop --kill did not stop")
	}
}

func TestExecCommandErrors(t *testing.T) {
	checkClean(t, "104")
	must(t, "create", "104", "--template", "busybox")
	must(t, "start", "104")
	r := expectCode(t, 127, "exec", "104", "--", "/no/such/cmd")
	if !strings.Contains(r.err, "/no/such/cmd") {
		t.Fatalf("error does not name the command: %q", r.err)
	}
	if r := vpsctl(t, "exec", "104", "--", "sh", "-c", "kill -9 $$"); r.code != 137 {
		t.Fatalf("killed command: exit %d, want 137", r.code)
	}
	// The C fast path (plain exec) and the Go path (VPSCTL_NO_FASTPATH) join the same way.
	probe := []string{"exec", "104", "--", "sh", "-c", "cat /proc/self/uid_map /proc/self/cgroup; grep CapBnd /proc/self/status; hostname; env | sort; ls /proc/self/fd | wc -l"}
	fast := must(t, probe...)
	slow := vpsctlEnv(t, []string{"VPSCTL_NO_FASTPATH=1"}, probe...)
	if slow.code != 0 || fast != slow.out {
		t.Fatalf("fast and Go exec paths differ:\nfast: %s\nGo:   %s (%s)", fast, slow.out, slow.err)
	}
	// stdin passes through
	r2 := vpsctl(t, "exec", "104", "--", "cat")
	if r2.code != 0 {
		t.Fatalf("cat: %+v", r2)
	}
	must(t, "stop", "--kill", "104")
}
