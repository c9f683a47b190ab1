package tests

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vpsctl/vpsctl/internal/fault"
)

// TestCrashConsistency kills vpsctl (or the monitor) with SIGKILL at every fault point and
// checks that the next commands find the VPS fully there or fully gone, that the private area
// survives unless destroy committed, and that nothing leaks on the host.
func TestCrashConsistency(t *testing.T) {
	const id = "161"
	type step struct {
		setup func(t *testing.T) // brings the VPS to the state the command starts from
		args  []string
		env   []string // more environment for the command
		point string   // the fault point, if not the case's name
	}
	created := func(t *testing.T) {
		must(t, "create", id, "--template", "busybox", "--name", "crash")
	}
	running := func(t *testing.T) {
		created(t)
		must(t, "start", id)
	}
	var cases = map[string]step{}
	for _, p := range fault.Points {
		switch {
		case strings.HasPrefix(p, "create-"):
			cases[p] = step{setup: func(*testing.T) {}, args: []string{"create", id, "--template", "busybox", "--name", "crash"}}
		case strings.HasPrefix(p, "start-"), strings.HasPrefix(p, "monitor-"):
			cases[p] = step{setup: created, args: []string{"start", id}}
		case p == "stop-killed":
			cases[p] = step{setup: running, args: []string{"stop", id, "--kill"}}
		case strings.HasPrefix(p, "stop-"):
			cases[p] = step{setup: running, args: []string{"stop", id, "--timeout", "5s"}}
		case strings.HasPrefix(p, "set-"):
			cases[p] = step{setup: running, args: []string{"set", id, "--hostname", "after", "--name", "crash2", "--numproc", "77"}}
		case strings.HasPrefix(p, "destroy-"):
			cases[p] = step{setup: running, args: []string{"destroy", "--force", id}}
		case strings.HasPrefix(p, "migrate-"):
			continue // a migration's crash needs two state roots: TestMigrateFaults
		default:
			t.Fatalf("fault point %q has no test case", p)
		}
	}
	names := slices.DeleteFunc(slices.Clone(fault.Points), func(p string) bool { _, ok := cases[p]; return !ok })
	// destroy of a stopped VPS at its points too (the cases above are --force on a running one).
	for _, p := range []string{"destroy-stopped", "destroy-renamed"} {
		cases[p+"/stopped"] = step{setup: created, args: []string{"destroy", id}, point: p}
		names = append(names, p+"/stopped")
	}
	for _, p := range []string{"stop-requested", "stop-killed", "stop-cleared"} {
		cases[p+"/destroy"] = step{setup: running, args: []string{"destroy", "--force", id}, point: p}
		names = append(names, p+"/destroy")
	}
	for _, name := range names {
		c := cases[name]
		p := name
		if c.point != "" {
			p = c.point
		}
		t.Run(name, func(t *testing.T) {
			checkClean(t, id)
			c.setup(t)
			marker := filepath.Join(root, "vps", id, "private", "marker")
			hadVPS := false
			if _, err := os.Stat(filepath.Join(root, "vps", id)); err == nil {
				hadVPS = true
				if err := os.WriteFile(marker, []byte("customer data"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			r := vpsctlEnv(t, append([]string{fault.Env + "=" + p}, c.env...), c.args...)
			if r.code == 0 && !strings.HasPrefix(p, "monitor-") {
				t.Fatalf("vpsctl %v did not crash at %s: %+v", c.args, p, r)
			}
			if p == "stop-signalled" {
				// The stop died after it told the init to power off: the VPS is halting (its
				// init kills every process, an exec's included) and must end up stopped, by
				// its monitor, as after a poweroff from inside.
				waitFor(t, 20*time.Second, "the signalled VPS to stop", func() bool { return status(t, id).State == "stopped" })
			}
			// The next commands must work on whatever is there.
			s := status(t, id)
			switch s.State {
			case "deleted":
				if hadVPS && !strings.HasPrefix(p, "destroy-") {
					t.Fatalf("VPS lost after a crash at %s", p)
				}
				if _, err := os.Stat(filepath.Join(root, "vps", id)); !os.IsNotExist(err) {
					t.Fatalf("deleted but its directory remains: %v", err)
				}
				must(t, "create", id, "--template", "busybox", "--name", "crash")
				must(t, "start", id)
			case "running":
				if got := strings.TrimSpace(must(t, "exec", id, "--", "echo", "ok")); got != "ok" {
					t.Fatalf("exec after crash: %q", got)
				}
				if p == "stop-requested" {
					// A stop killed half-way must not turn the guest's next reboot into a halt.
					old := s.InitPID
					vpsctl(t, "exec", id, "--", "reboot")
					waitFor(t, 20*time.Second, "a reboot", func() bool {
						n := status(t, id)
						return n.State == "running" && n.InitPID != old && n.InitPID > 0
					})
				}
			case "stopped":
				// A start killed after spawning its monitor leaves that monitor booting (the
				// VPS outlives its CLI by design); it holds the VPS's lock until the boot is
				// done, so this start waits for it and then finds the VPS running.
				if r := vpsctl(t, "start", id); r.code != 0 {
					if r.code != 32 || !strings.HasPrefix(p, "start-") || status(t, id).State != "running" {
						t.Fatalf("vpsctl start %s after a crash at %s: exit %d: %s", id, p, r.code, r.err)
					}
				}
			}
			if hadVPS && status(t, id).State != "deleted" && !strings.HasPrefix(p, "destroy-") {
				if b, err := os.ReadFile(marker); err != nil || string(b) != "customer data" {
					t.Fatalf("private area damaged after a crash at %s: %v", p, err)
				}
			}
			// Names stay consistent: the name resolves to this VPS or to nothing.
			for _, n := range []string{"crash", "crash2"} {
				r := vpsctl(t, "status", n)
				if r.code == 0 && !strings.Contains(r.out, "VPS "+id+" ") {
					t.Fatalf("name %s resolves elsewhere: %s", n, r.out)
				}
			}
			must(t, "stop", "--kill", id)
			must(t, "destroy", id)
			// destroy reclaims the files in the background: bounded wait for tmp/ to empty.
			waitTmpEmpty(t, 10*time.Second)
		})
	}
}
