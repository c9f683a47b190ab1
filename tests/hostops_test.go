package tests

// Running a host (issue 25, docs/OPERATIONS.md): the host configuration and plans, start --all
// and stop --all, monitors out of their caller's cgroup, events, audit, metrics.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// hostConfig writes a host configuration (and plans, NAME -> text) in a directory of the test's
// and returns the environment that makes vpsctl read it.
func hostConfig(t *testing.T, text string, plans map[string]string) []string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "vpsctl.conf")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if len(plans) > 0 {
		os.Mkdir(filepath.Join(dir, "plans"), 0o755)
		for name, p := range plans {
			if err := os.WriteFile(filepath.Join(dir, "plans", name+".conf"), []byte(p), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return []string{"VPSCTL_CONFIG=" + path}
}

func mustEnv(t *testing.T, env []string, args ...string) string {
	t.Helper()
	r := vpsctlEnv(t, env, args...)
	if r.code != 0 {
		t.Fatalf("vpsctl %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.out, r.err)
	}
	return r.out
}

// vpsConf reads VPS id's saved settings.
func vpsConf(t *testing.T, id string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "vps", id, "vps.conf"))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok && !strings.HasPrefix(k, "#") {
			m[k] = strings.Trim(v, `"`)
		}
	}
	return m
}

// TestHostConfigErrors: a malformed host configuration is one error naming its file and line,
// exit 21, and nothing is done, by any command.
func TestHostConfigErrors(t *testing.T) {
	checkClean(t)
	for _, tc := range []struct{ text, where, what string }{
		{"# limits\nCPUUNITS=\"500\"\nMEMORY=\"2Q\"\n", ":3: ", `MEMORY="2Q"`},
		{"MEMROY=\"1G\"\n", ":1: ", "unknown key MEMROY"},
		{"ROOT=relative\n", ":1: ", "absolute"},
		{"STOP_TIMEOUT=\"60h\"\n", ":1: ", "want 0..24h"},
	} {
		env := hostConfig(t, tc.text, nil)
		path := strings.TrimPrefix(env[0], "VPSCTL_CONFIG=")
		for _, args := range [][]string{{"create", "2501", "--template", "busybox"}, {"list", "-a"}, {"config", "show"}} {
			r := vpsctlEnv(t, env, args...)
			if r.code != 21 || !strings.Contains(r.err, path+tc.where) || !strings.Contains(r.err, tc.what) || r.out != "" {
				t.Errorf("%q, vpsctl %v: exit %d, stdout %q, stderr %q; want 21 and %q", tc.text, args, r.code, r.out, r.err, path+tc.where+tc.what)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(root, "vps", "2501")); err == nil {
		t.Fatal("a create with a bad host configuration made the VPS")
	}
	if b, _ := os.ReadFile(filepath.Join(root, "audit.log")); bytes.Contains(b, []byte("create 2501 ")) {
		t.Fatalf("a command that did nothing was audited:\n%s", b)
	}
	// A file named by VPSCTL_CONFIG must exist; one at the default path need not.
	if r := vpsctlEnv(t, []string{"VPSCTL_CONFIG=/nonexistent/vpsctl.conf"}, "list"); r.code != 21 || !strings.Contains(r.err, "/nonexistent/vpsctl.conf") {
		t.Fatalf("missing explicit file: exit %d, %q", r.code, r.err)
	}
}

// TestHostConfigDefaultsAndPlans: create takes its template, limits and DNS from the host
// configuration, a plan's limits over those, flags over the plan; set --plan applies a plan's
// limits and leaves the rest; config show says where each value came from.
func TestHostConfigDefaultsAndPlans(t *testing.T) {
	checkClean(t, "2511", "2512", "2513", "2515")
	env := hostConfig(t, "DEFAULT_TEMPLATE=\"busybox\"\nMEMORY=\"300M\"\nNAMESERVER=\"198.18.0.53\"\n",
		map[string]string{"small": "DESCRIPTION=\"small\"\nMEMORY=\"128M\"\nNUMPROC=\"64\"\nCPUUNITS=\"500\"\n"})
	mustEnv(t, env, "create", "2511")
	c := vpsConf(t, "2511")
	if c["TEMPLATE"] != "busybox" || c["MEMORY"] != "300M" || c["SWAP"] != "512M" || c["NUMPROC"] != "4096" ||
		c["CPUUNITS"] != "1000" || c["NAMESERVER"] != "198.18.0.53" {
		t.Fatalf("create with the host's defaults: %v", c)
	}
	mustEnv(t, env, "create", "2512", "--plan", "small", "--numproc", "100")
	if c := vpsConf(t, "2512"); c["MEMORY"] != "128M" || c["NUMPROC"] != "100" || c["CPUUNITS"] != "500" || c["SWAP"] != "512M" {
		t.Fatalf("create --plan small --numproc 100: %v", c)
	}
	// Without a configuration file (the environment names none here but the tests' root):
	// the built-in defaults, as before the file existed.
	must(t, "create", "2513", "--template", "busybox")
	if c := vpsConf(t, "2513"); c["MEMORY"] != "1G" || c["NUMPROC"] != "4096" || c["NAMESERVER"] != "" {
		t.Fatalf("create with the built-in defaults: %v", c)
	}
	// The built-in plans need no file: a host nobody configured has small, medium and large.
	must(t, "create", "2515", "--template", "busybox", "--plan", "medium")
	if c := vpsConf(t, "2515"); c["MEMORY"] != "2G" || c["SWAP"] != "1G" || c["NUMPROC"] != "2048" || c["CPUS"] != "2" {
		t.Fatalf("create --plan medium, no configuration file: %v", c)
	}
	r := vpsctlEnv(t, env, "create", "2514", "--plan", "nosuch")
	if r.code != 21 || !strings.Contains(r.err, `"nosuch"`) || !strings.Contains(r.err, "plans: large, medium, small)") {
		t.Fatalf("unknown plan: exit %d, %q", r.code, r.err)
	}
	if r := vpsctlEnv(t, env, "create", "2514", "--plan", "../small"); r.code != 21 {
		t.Fatalf("plan name with a path: exit %d, %q", r.code, r.err)
	}
	mustEnv(t, env, "set", "2511", "--plan", "small", "--cpuunits", "700", "--hostname", "planned")
	if c := vpsConf(t, "2511"); c["MEMORY"] != "128M" || c["NUMPROC"] != "64" || c["CPUUNITS"] != "700" || c["SWAP"] != "512M" || c["HOSTNAME"] != "planned" {
		t.Fatalf("set --plan small --cpuunits 700: %v", c)
	}

	out := mustEnv(t, env, "config", "show")
	path := strings.TrimPrefix(env[0], "VPSCTL_CONFIG=")
	for _, want := range []string{`MEMORY="300M"`, path + ":2", `ROOT="` + root + `"`, "flag --root", `NUMPROC="4096"`, "# default"} {
		if !strings.Contains(out, want) {
			t.Errorf("config show lacks %q:\n%s", want, out)
		}
	}
	var settings []struct{ Key, Value, Source string }
	if err := json.Unmarshal([]byte(mustEnv(t, env, "config", "show", "--plan", "small", "--format", "json")), &settings); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, s := range settings {
		got[s.Key] = s.Value + " from " + s.Source
	}
	if !strings.HasPrefix(got["NUMPROC"], "64 from plan small (") || !strings.HasPrefix(got["SWAP"], "512M from default") ||
		!strings.HasPrefix(got["MEMORY"], "128M from plan small") {
		t.Fatalf("config show --plan small: %v", got)
	}
}

// events reads the events log (as JSON lines) from since on.
type event struct {
	Time  time.Time `json:"time"`
	ID    uint32    `json:"id"`
	Event string    `json:"event"`
	Cause string    `json:"cause"`
	Keys  []string  `json:"keys"`
}

func eventsSince(t *testing.T, since time.Time) []event {
	t.Helper()
	out := must(t, "events", "--since", since.UTC().Format(time.RFC3339Nano), "--format", "json")
	var es []event
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var e event
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("events: %q: %v", l, err)
		}
		es = append(es, e)
	}
	return es
}

func eventIDs(es []event, kind string) []uint32 {
	var out []uint32
	for _, e := range es {
		if e.Event == kind {
			out = append(out, e.ID)
		}
	}
	return out
}

// TestStartStopAll: start --all starts the onboot VPSs, higher BOOTORDER first, and no other;
// a second one starts nothing and fails nothing; stop --all stops every running VPS gracefully
// (the guest's init got its poweroff signal and shut down) within its bound, and kills, still
// within bounds, a guest that ignores it.
func TestStartStopAll(t *testing.T) {
	checkClean(t, "2521", "2522", "2523", "2524")
	must(t, "create", "2521", "--template", "busybox", "--onboot", "yes", "--bootorder", "10")
	must(t, "create", "2522", "--template", "busybox", "--onboot", "yes", "--bootorder", "20")
	must(t, "create", "2523", "--template", "busybox") // not onboot
	must(t, "create", "2524", "--template", "busybox", "--onboot", "no")
	expectCode(t, 21, "set", "2524", "--onboot", "maybe")
	expectCode(t, 21, "create", "2525", "--template", "busybox", "--bootorder", "-1")
	if c := vpsConf(t, "2521"); c["ONBOOT"] != "yes" || c["BOOTORDER"] != "10" {
		t.Fatalf("create --onboot yes --bootorder 10: %v", c)
	}

	t0 := time.Now()
	out := must(t, "start", "--all")
	if i, j := strings.Index(out, "VPS 2522 started"), strings.Index(out, "VPS 2521 started"); i < 0 || j < i {
		t.Fatalf("start --all: want 2522 then 2521:\n%s", out)
	}
	es := eventsSince(t, t0)
	if got := eventIDs(es, "started"); !slices.Equal(got, []uint32{2522, 2521}) {
		t.Fatalf("started events %v, want 2522 then 2521: %+v", got, es)
	}
	for _, e := range es {
		if e.Event == "started" && e.Cause != "start --all" {
			t.Errorf("started with cause %q", e.Cause)
		}
	}
	for _, id := range []string{"2523", "2524"} {
		if st := strings.TrimSpace(must(t, "status", id)); st != "VPS "+id+" exist stopped" {
			t.Fatalf("not onboot, started anyway: %s", st)
		}
	}
	// start --all again: what runs is left alone, and that is no failure. start --all writes
	// one audit line, its children none.
	t1 := time.Now()
	out = must(t, "start", "--all")
	if !strings.Contains(out, "VPS 2521 already running") || !strings.Contains(out, "VPS 2522 already running") {
		t.Fatalf("start --all again:\n%s", out)
	}
	if es := eventsSince(t, t1); len(eventIDs(es, "started")) != 0 {
		t.Fatalf("start --all again started something: %+v", es)
	}
	audit, _ := os.ReadFile(filepath.Join(root, "audit.log"))
	if n := bytes.Count(audit, []byte(`"cmd":"vpsctl --root `+root+` start --all"`)); n != 2 {
		t.Fatalf("%d audit lines of start --all, want 2:\n%s", n, audit)
	}
	if bytes.Contains(audit, []byte(`start 2521"`)) {
		t.Fatalf("start --all's children audited:\n%s", audit)
	}
	must(t, "set", "2523", "--onboot", "yes", "--bootorder", "5")
	if es := eventsSince(t, t1); len(es) == 0 || es[len(es)-1].Event != "set" || !slices.Equal(es[len(es)-1].Keys, []string{"ONBOOT", "BOOTORDER"}) {
		t.Fatalf("set --onboot --bootorder: events %+v", es)
	}
	if out := must(t, "start", "--all"); !strings.Contains(out, "VPS 2523 started") {
		t.Fatalf("start --all after set --onboot yes:\n%s", out)
	}

	// A VPS that fails to start is reported, the boot goes on with the lower boot orders, and
	// start --all fails at the end.
	must(t, "stop", "--all")
	must(t, "create", "2526", "--template", "busybox", "--onboot", "yes", "--bootorder", "15")
	defer vpsctl(t, "destroy", "--force", "2526")
	if err := os.MkdirAll(filepath.Join(root, "vps", "2526", "private", "sbin", "init"), 0o755); err != nil {
		t.Fatal(err) // an init that is a directory: the boot fails
	}
	r := vpsctl(t, "start", "--all")
	if r.code != 3 || !strings.Contains(r.out, "VPS 2526 failed to start") || !strings.Contains(r.err, "1 of 4 VPSs not started") ||
		strings.Index(r.out, "VPS 2522 started") > strings.Index(r.out, "VPS 2526 failed") ||
		strings.Index(r.out, "VPS 2526 failed") > strings.Index(r.out, "VPS 2521 started") {
		t.Fatalf("start --all with a failing VPS: exit %d\n%s%s", r.code, r.out, r.err)
	}
	must(t, "destroy", "2526")

	// stop --all: every running VPS, gracefully, in bounded time.
	t2 := time.Now()
	out = must(t, "stop", "--all", "--timeout", "30s")
	if d := time.Since(t2); d > 30*time.Second {
		t.Fatalf("stop --all took %v", d)
	}
	es = eventsSince(t, t2)
	for _, id := range []string{"2521", "2522", "2523"} {
		if !strings.Contains(out, "VPS "+id+" stopped") {
			t.Errorf("stop --all did not report %s:\n%s", id, out)
		}
		if st := strings.TrimSpace(must(t, "status", id)); st != "VPS "+id+" exist stopped" {
			t.Errorf("after stop --all: %s", st)
		}
		// busybox init's shutdown, on its poweroff signal (SIGUSR2), on the console.
		if b, _ := os.ReadFile(filepath.Join(root, "vps", id, "console.log")); !bytes.Contains(b, []byte("Requesting system poweroff")) {
			t.Errorf("VPS %s: no graceful shutdown on its console:\n%s", id, b)
		}
	}
	n := 0
	for _, e := range es {
		if e.Event == "stopped" {
			n++
			if e.Cause != "stop --all" {
				t.Errorf("VPS %d stopped with cause %q", e.ID, e.Cause)
			}
		}
	}
	if n != 3 {
		t.Fatalf("%d stopped events, want 3: %+v", n, es)
	}

	// A guest whose init ignores its poweroff signal is killed once the grace period is over.
	priv := filepath.Join(root, "vps", "2524", "private", "sbin")
	if err := os.MkdirAll(priv, 0o755); err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/sh\ntrap '' USR2 TERM INT PWR HUP\nwhile :; do sleep 1; done\n"
	if err := os.WriteFile(filepath.Join(priv, "init"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	must(t, "start", "2524")
	t3 := time.Now()
	out = must(t, "stop", "--all", "--timeout", "2s")
	if d := time.Since(t3); d < 2*time.Second || d > 20*time.Second {
		t.Fatalf("stop --all of a guest that ignores it took %v, want 2 s and the kill", d)
	}
	if !strings.Contains(out, "VPS 2524 killed") {
		t.Fatalf("stop --all of a guest that ignores it:\n%s", out)
	}
	if es := eventsSince(t, t3); len(es) != 1 || es[0].Event != "stopped" || es[0].Cause != "stop --all: killed" {
		t.Fatalf("events: %+v", es)
	}
	if st := strings.TrimSpace(must(t, "status", "2524")); st != "VPS 2524 exist stopped" {
		t.Fatalf("after stop --all: %s", st)
	}
	if out := must(t, "stop", "--all"); strings.TrimSpace(out) != "" {
		t.Fatalf("stop --all with nothing running: %q", out)
	}
}

// throwawayGroups makes a cgroup of the test's in a few hierarchies (on v1 pids and freezer,
// and a hybrid host's cgroup2 tree; on v2 the tree) and returns their cgroup.procs files.
func throwawayGroups(t *testing.T) []string {
	t.Helper()
	name := fmt.Sprintf("vpsctl-test-throwaway-%d", os.Getpid())
	var dirs []string
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		dirs = []string{"/sys/fs/cgroup/" + name}
	} else {
		for _, h := range []string{"pids", "freezer", "unified", "systemd"} {
			if _, err := os.Stat("/sys/fs/cgroup/" + h + "/cgroup.procs"); err == nil {
				dirs = append(dirs, filepath.Join("/sys/fs/cgroup", h, name))
			}
		}
	}
	var procs []string
	for _, d := range dirs {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		procs = append(procs, filepath.Join(d, "cgroup.procs"))
	}
	t.Cleanup(func() {
		for _, d := range dirs {
			killGroup(t, filepath.Join(d, "cgroup.procs"))
			os.Remove(d)
		}
	})
	return procs
}

// killGroup kills every process of a group until it stays empty (bounded).
func killGroup(t *testing.T, procs string) {
	t.Helper()
	waitFor(t, 10*time.Second, "an empty "+procs, func() bool {
		b, _ := os.ReadFile(procs)
		pids := strings.Fields(string(b))
		for _, p := range pids {
			if pid, err := strconv.Atoi(p); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		return len(pids) == 0
	})
}

// inGroups runs vpsctl ARGS from a shell that first joins the groups of procs.
func inGroups(t *testing.T, procs []string, args ...string) result {
	t.Helper()
	return inGroupsEnv(t, procs, nil, args...)
}

// inGroupsEnv is inGroups with more environment for vpsctl.
func inGroupsEnv(t *testing.T, procs, env []string, args ...string) result {
	t.Helper()
	script := `for f in $PROCS; do echo $$ > "$f" || exit 99; done; exec "$@"`
	cmd := exec.Command("sh", append([]string{"-c", script, "sh", bin, "--root", root}, args...)...)
	cmd.Env = append(append(os.Environ(), "PROCS="+strings.Join(procs, " ")), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{out: o.String(), err: e.String(), code: code}
}

// TestMonitorGroup: a VPS started from inside a throwaway cgroup has its monitor (and a spare
// keeper its keeper) in vpsctl's own group, in every hierarchy (under systemd on cgroup v2:
// the VPS's scope), so killing every process of the throwaway group (a logout's, a service's
// stop) leaves the VPS running, and stop still works. The monitor is the host's (vpsctl pid),
// not a VPS's.
func TestMonitorGroup(t *testing.T) {
	checkClean(t, "2531")
	must(t, "create", "2531", "--template", "busybox")
	procs := throwawayGroups(t)
	if r := inGroups(t, procs, "start", "2531"); r.code != 0 {
		t.Fatalf("start from a throwaway group: exit %d: %s %s", r.code, r.out, r.err)
	}
	for _, p := range procs {
		killGroup(t, p)
	}
	if st := strings.TrimSpace(must(t, "status", "2531")); st != "VPS 2531 exist running" {
		t.Fatalf("after the kill of the starter's group: %s", st)
	}
	mon := checkMonitorGroup(t, "2531")
	if out := must(t, "pid", strconv.Itoa(mon)); !strings.Contains(strings.Join(strings.Fields(out), " "), fmt.Sprintf("%d 0 0", mon)) {
		t.Errorf("vpsctl pid of the monitor: %s", out)
	}
	must(t, "stop", "2531")

	// A keeper of spare VPSs lives on likewise.
	if r := inGroups(t, procs, "spare", "start", "busybox"); r.code != 0 {
		t.Fatalf("spare start from a throwaway group: exit %d: %s %s", r.code, r.out, r.err)
	}
	defer vpsctl(t, "spare", "stop", "busybox")
	for _, p := range procs {
		killGroup(t, p)
	}
	if out := must(t, "run", "--rm", "--template", "busybox", "--", "/bin/echo", "served"); strings.TrimSpace(out) != "served" {
		t.Fatalf("run --rm after the kill: %q", out)
	}
	if out := must(t, "spare", "list"); !strings.Contains(out, "busybox") {
		t.Fatalf("the keeper died with its starter's group:\n%s", out)
	}
	must(t, "spare", "stop", "busybox")
}

// checkMonitorGroup checks that running VPS id's monitor is in vpsctl's monitor group in every
// hierarchy (under systemd on cgroup v2: in the VPS's scope), and returns its PID.
func checkMonitorGroup(t *testing.T, id string) int {
	t.Helper()
	var s struct {
		MonitorPID int `json:"monitor_pid"`
	}
	if err := json.Unmarshal([]byte(must(t, "status", id, "--format", "json")), &s); err != nil || s.MonitorPID == 0 {
		t.Fatalf("no monitor: %+v %v", s, err)
	}
	// Right after its start returns, the monitor may be executing its reaper from a thread
	// other than its first: that first thread exits meanwhile, and an exiting task's v1 lines
	// read "/" in /proc/PID/cgroup (the kernel's proc_cgroup_show). So the lines are read until
	// they are right, boundedly.
	var bad []string
	for deadline := time.Now().Add(slow(5 * time.Second)); ; time.Sleep(10 * time.Millisecond) {
		cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", s.MonitorPID))
		if err != nil {
			t.Fatal(err)
		}
		bad = bad[:0]
		if cgroupV2() && systemdHost() {
			// Under systemd the VPS's own scope is its monitor's unit (package cgroup,
			// "Placement under systemd"): a leaf of its own there, beside the VPS's group.
			if got, want := strings.TrimSpace(string(cg)), "0::/vpsctl.slice/vpsctl-"+id+".scope/supervisor"; got != want {
				bad = append(bad, fmt.Sprintf("in %q, want %q", got, want))
			}
		} else {
			for _, l := range strings.Split(strings.TrimSpace(string(cg)), "\n") {
				if !strings.HasSuffix(l, ":/vpsctl/.monitor") {
					bad = append(bad, "not in vpsctl/.monitor: "+l)
				}
			}
		}
		if len(bad) == 0 || time.Now().After(deadline) {
			break
		}
	}
	for _, b := range bad {
		t.Errorf("monitor %d %s", s.MonitorPID, b)
	}
	return s.MonitorPID
}

// TestMonitorPlacement: `vpsctl start`'s monitor is placed in vpsctl's group by the front door,
// before its Go runtime starts, as the state root's placement record says (monitor.placementRecord),
// and moves itself only where that failed: with no record (the first start), one this binary
// does not understand, or one naming files that are not there, the start works all the same,
// the monitor moves (its trace says so) and the record is written anew; with the record it
// wrote, the monitor does not move.
func TestMonitorPlacement(t *testing.T) {
	checkClean(t, "2532")
	must(t, "create", "2532", "--template", "busybox")
	defer vpsctl(t, "destroy", "-f", "2532")
	record := filepath.Join(root, "placement")
	sd := cgroupV2() && systemdHost()
	// Each start comes from throwaway groups, so that whatever groups this test process is
	// in, the caller's are not vpsctl's: a monitor the front door did not place must move.
	procs := throwawayGroups(t)
	start := func(what string, wantMove bool) {
		t.Helper()
		r := inGroupsEnv(t, procs, []string{"VPSCTL_TRACE=1"}, "start", "2532")
		if r.code != 0 {
			t.Fatalf("%s: start: exit %d: %s", what, r.code, r.err)
		}
		checkMonitorGroup(t, "2532")
		if moved := strings.Contains(r.err, " monitor-group-moved "); moved != (wantMove && !sd) {
			log, _ := os.ReadFile(filepath.Join(root, "vps", "2532", "monitor.log"))
			own, _ := os.ReadFile("/proc/self/cgroup")
			t.Errorf("%s: the monitor moved itself: %v, want %v\nmonitor.log:\n%s\nthis test's groups:\n%s", what, moved, wantMove && !sd, log, own)
		}
		must(t, "stop", "--kill", "2532")
	}
	os.Remove(record)
	start("no record", true)
	good, err := os.ReadFile(record)
	if err != nil {
		t.Fatalf("no record after a start: %v", err)
	}
	kv := map[string][]string{}
	for _, f := range strings.Split(strings.TrimSuffix(string(good), "\x00\x00"), "\x00") {
		k, v, _ := strings.Cut(f, "=")
		kv[k] = append(kv[k], v)
	}
	v1 := !cgroupV2()
	switch {
	case sd:
		if string(good) != "preclone=0\x00\x00" {
			t.Errorf("record under systemd: %q", good)
		}
	default:
		for _, f := range kv["tasks"] {
			if !strings.HasSuffix(f, "/vpsctl/.monitor/tasks") || !fileExists(f) {
				t.Errorf("record's tasks file %s", f)
			}
		}
		if v1 && len(kv["tasks"]) == 0 || !v1 && len(kv["tasks"]) != 0 {
			t.Errorf("record's tasks files %v on a host with v1 hierarchies: %v", kv["tasks"], v1)
		}
		if c := kv["cgroup2"]; len(c) > 1 || len(c) == 1 && (!strings.HasSuffix(c[0], "/vpsctl/.monitor") || !fileExists(c[0])) {
			t.Errorf("record's cgroup2 directory %v", c)
		}
		if want := map[bool]string{true: "0", false: "1"}[len(kv["cgroup2"]) == 1]; slices.Compare(kv["preclone"], []string{want}) != 0 {
			t.Errorf("record's preclone %v, want %s", kv["preclone"], want)
		}
	}
	start("the record", false)
	for what, bad := range map[string]string{
		"an unknown key": "placement=2\x00\x00",
		"missing files":  "cgroup2=/sys/fs/cgroup/no-such-group\x00tasks=/sys/fs/cgroup/no-such-group/tasks\x00preclone=0\x00\x00",
		"not a message":  "cgroup2",
	} {
		if err := os.WriteFile(record, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		start(what, true)
		if b, _ := os.ReadFile(record); string(b) != string(good) {
			t.Errorf("%s: record after the start %q, want %q", what, b, good)
		}
	}
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// TestEvents: the events log as text and JSON, --since, --follow (new lines as they come, until
// it is told to stop), and bad --since values.
func TestEvents(t *testing.T) {
	checkClean(t, "2541")
	t0 := time.Now()
	follow := exec.Command(bin, "--root", root, "events", "--follow", "--format", "json", "--since", t0.UTC().Format(time.RFC3339Nano))
	stdout, err := follow.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	defer follow.Process.Kill()

	must(t, "create", "2541", "--template", "busybox", "--name", "evt")
	must(t, "start", "2541")
	must(t, "suspend", "2541")
	must(t, "resume", "2541")
	must(t, "exec", "2541", "--", "reboot")
	waitFor(t, 20*time.Second, "the reboot", func() bool {
		for _, e := range eventsSince(t, t0) {
			if e.Event == "booted" {
				return true
			}
		}
		return false
	})
	must(t, "exec", "2541", "--", "poweroff")
	waitFor(t, 20*time.Second, "the poweroff", func() bool {
		return strings.TrimSpace(must(t, "status", "2541")) == "VPS 2541 exist stopped"
	})
	must(t, "destroy", "2541")
	want := []string{"created", "started", "suspended", "resumed", "rebooted", "booted", "stopped", "destroyed"}
	var got []string
	deadline := time.After(20 * time.Second)
	for len(got) < len(want) {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("events --follow ended; got %v", got)
			}
			var e event
			if err := json.Unmarshal([]byte(l), &e); err != nil {
				t.Fatalf("events --follow: %q: %v", l, err)
			}
			if e.ID == 2541 {
				got = append(got, e.Event)
				if e.Event == "stopped" && e.Cause != "guest poweroff" {
					t.Errorf("stopped from inside with cause %q", e.Cause)
				}
			}
		case <-deadline:
			t.Fatalf("events --follow: got %v, want %v", got, want)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("events --follow: got %v, want %v", got, want)
	}
	follow.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- follow.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("events --follow on SIGTERM: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("events --follow did not end on SIGTERM")
	}

	text := must(t, "events", "--since", t0.UTC().Format(time.RFC3339Nano))
	if !strings.Contains(text, " 2541 evt created") || !strings.Contains(text, " 2541 evt stopped: guest poweroff") {
		t.Fatalf("events as text:\n%s", text)
	}
	if out := must(t, "events", "--since", "2099-01-01"); out != "" {
		t.Fatalf("events --since the future: %q", out)
	}
	if out := must(t, "events", "--since", "10m"); !strings.Contains(out, "2541") {
		t.Fatalf("events --since 10m:\n%s", out)
	}
	for _, bad := range []string{"yesterday", "-5m", "99999d"} {
		expectCode(t, 21, "events", "--since", bad)
	}
	expectCode(t, 20, "events", "--format", "xml")
}

// TestAudit: every command that changes something leaves one line with who ran it, its command
// line (secrets redacted) and its exit code, failures included; others leave none.
func TestAudit(t *testing.T) {
	checkClean(t, "2551")
	log := filepath.Join(root, "audit.log")
	before, _ := os.ReadFile(log)
	must(t, "create", "2551", "--template", "busybox")
	r := vpsctl(t, "set", "2551", "--userpasswd", "root:hunter2", "--hostname", "aud")
	expectCode(t, 43, "destroy", "2559")
	must(t, "list", "-a")
	must(t, "status", "2551")
	after, _ := os.ReadFile(log)
	if fi, err := os.Stat(log); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("audit.log: %v %v", fi, err)
	}
	added := strings.Split(strings.TrimSpace(string(after[len(before):])), "\n")
	if len(added) != 3 {
		t.Fatalf("%d audit lines, want 3 (create, set, destroy):\n%s", len(added), strings.Join(added, "\n"))
	}
	recs := auditRecords(t, added)
	pre := "vpsctl --root " + root + " "
	if recs[0].Cmd != pre+"create 2551 --template busybox" || recs[0].Exit != 0 || recs[0].User != "root" || recs[0].PID == 0 {
		t.Errorf("create: %+v", recs[0])
	}
	if recs[1].Cmd != pre+"set 2551 --userpasswd 'root:***' --hostname aud" || recs[1].Exit != r.code {
		t.Errorf("set: %+v (exit %d)", recs[1], r.code)
	}
	if recs[2].Cmd != pre+"destroy 2559" || recs[2].Exit != 43 {
		t.Errorf("destroy: %+v", recs[2])
	}
	if bytes.Contains(after, []byte("hunter2")) {
		t.Fatal("a password in the audit log")
	}
	if n := bytes.Count(after, []byte(`create 2551 `)); n != 1 {
		t.Fatalf("%d lines of create 2551", n)
	}

	// An audit line that cannot be written is a warning: the command has done its work.
	if err := os.Rename(log, log+".aside"); err != nil {
		t.Fatal(err)
	}
	defer func() {
		os.Remove(log)
		os.Rename(log+".aside", log)
	}()
	if err := os.Mkdir(log, 0o700); err != nil {
		t.Fatal(err)
	}
	r = vpsctl(t, "set", "2551", "--hostname", "aud2")
	if r.code != 0 || !strings.Contains(r.err, "warning: audit log") {
		t.Fatalf("set with an unwritable audit log: exit %d, %q", r.code, r.err)
	}
	if c := vpsConf(t, "2551"); c["HOSTNAME"] != "aud2" {
		t.Fatalf("set with an unwritable audit log did not set: %v", c)
	}
}

// promtool finds promtool (scripts/install-promtool.sh), or skips (fails when CI=true).
func promtool(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("promtool"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/local/lib/vpsctl/prometheus/promtool"); err == nil {
		return "/usr/local/lib/vpsctl/prometheus/promtool"
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("promtool not found (CI=true: refusing to skip): scripts/install-promtool.sh")
	}
	t.Skip("promtool not found: scripts/install-promtool.sh")
	return ""
}

// TestMetrics: vpsctl metrics describes every VPS, running and stopped, in a form promtool
// accepts; a running VPS's usage and limits are its groups', its traffic its interfaces'.
func TestMetrics(t *testing.T) {
	checkClean(t, "2561", "2562")
	tool := promtool(t)
	// No address: its network namespace has its loopback only, whose traffic is left out (0),
	// and the series are there all the same.
	must(t, "create", "2561", "--template", "busybox", "--name", "met", "--memory", "256M", "--numproc", "200")
	must(t, "create", "2562", "--template", "busybox")
	must(t, "start", "2561")
	out := must(t, "metrics")
	cmd := exec.Command(tool, "check", "metrics")
	cmd.Stdin = strings.NewReader(out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s\n%s", err, b, out)
	}
	for _, want := range []string{
		`vpsctl_vps_state{id="2561",name="met",state="running"} 1`,
		`vpsctl_vps_state{id="2562",name="",state="stopped"} 1`,
		`vpsctl_vps_memory_limit_bytes{id="2561",name="met"} 268435456`,
		`vpsctl_vps_processes_limit{id="2561",name="met"} 200`,
		`vpsctl_vps_swap_limit_bytes{id="2561",name="met"} 536870912`,
		`vpsctl_vps_oom_kills_total{id="2561",name="met"} 0`,
		`vpsctl_vps_failcnt_total{id="2561",name="met",resource="numproc"} 0`,
		`vpsctl_vps_network_receive_packets_total{id="2561",name="met"}`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(out, `vpsctl_vps_memory_usage_bytes{id="2562"`) {
		t.Error("usage of a stopped VPS")
	}
	must(t, "suspend", "2561")
	if out := must(t, "metrics"); !strings.Contains(out, `vpsctl_vps_state{id="2561",name="met",state="suspended"} 1`) {
		t.Errorf("suspended VPS:\n%s", out)
	}
	must(t, "resume", "2561")
	must(t, "stop", "2561")
}
