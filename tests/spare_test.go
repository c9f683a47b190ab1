package tests

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

type spareKeeper struct {
	Template string `json:"template"`
	PID      int    `json:"pid"`
	Count    int    `json:"count"`
	Ready    int    `json:"ready"`
	Served   int64  `json:"served"`
}

// keepers is `vpsctl spare list --format json`, by template.
func keepers(t *testing.T) map[string]spareKeeper {
	t.Helper()
	var ks []spareKeeper
	if err := json.Unmarshal([]byte(must(t, "spare", "list", "--format", "json")), &ks); err != nil {
		t.Fatalf("spare list: %v", err)
	}
	m := map[string]spareKeeper{}
	for _, k := range ks {
		m[k.Template] = k
	}
	return m
}

// served is how many runs the busybox keeper served, once its spares are all booted again.
func served(t *testing.T) int64 {
	t.Helper()
	var k spareKeeper
	waitFor(t, 20*time.Second, "the spares booted again", func() bool {
		k = keepers(t)["busybox"]
		return k.PID > 0 && k.Ready == k.Count
	})
	return k.Served
}

// runProbe runs cmd (a vpsctl command line) with stdin and returns its stdout and exit code.
func runProbe(t *testing.T, env []string, stdin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"--root", root}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var eb strings.Builder
	cmd.Stderr = &eb
	timer := time.AfterFunc(60*time.Second, func() { cmd.Process.Kill() })
	defer timer.Stop()
	out, err := cmd.Output()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("vpsctl %v: %v", args, err)
	}
	return string(out), eb.String(), cmd.ProcessState.ExitCode()
}

// TestSpare: `vpsctl spare start` keeps VPSs booted for `run --rm`, which then runs its
// command in one of them: with the same view of the VPS, stdio, status and failures as a run
// that boots its own, each VPS used once; unclaimed spares are not listed; the keeper's and the
// caller's deaths are handled; stop leaves nothing.
func TestSpare(t *testing.T) {
	checkClean(t)
	dirsBefore := fmt.Sprint(vpsDirs(t))
	listBefore := must(t, "list", "-a")
	t.Cleanup(func() { vpsctl(t, "spare", "stop", "busybox") })

	// Bad input first: nothing starts.
	expectCode(t, 20, "spare", "start")
	expectCode(t, 91, "spare", "start", "no-such-template")
	expectCode(t, 21, "spare", "start", "busybox", "--count", "0")
	expectCode(t, 21, "spare", "start", "busybox", "--count", "17")
	expectCode(t, 21, "spare", "stop", "../busybox")
	if r := expectCode(t, 0, "spare", "stop", "busybox"); !strings.Contains(r.out, "no spare VPSs of template busybox kept") {
		t.Fatalf("stop without a keeper: %q", r.out)
	}
	if len(keepers(t)) != 0 {
		t.Fatalf("keepers after bad input: %v", keepers(t))
	}

	// A template whose VPSs cannot boot: the start says why and leaves nothing.
	broken := t.TempDir()
	os.MkdirAll(filepath.Join(broken, "bin"), 0o755)
	os.MkdirAll(filepath.Join(broken, "etc"), 0o755)
	os.WriteFile(filepath.Join(broken, "dev"), []byte("not a directory\n"), 0o644)
	must(t, "template", "import", "spare-broken", broken)
	defer vpsctl(t, "template", "rm", "spare-broken")
	if r := vpsctl(t, "spare", "start", "spare-broken"); r.code != 3 || !strings.Contains(r.err, `spare VPS of template "spare-broken"`) || !strings.Contains(r.err, "dev") {
		t.Fatalf("spare start of a template that cannot boot: code %d, err %q", r.code, r.err)
	}
	if len(keepers(t)) != 0 || fmt.Sprint(vpsDirs(t)) != dirsBefore {
		t.Fatalf("after a failed spare start: keepers %v, VPSs %v", keepers(t), vpsDirs(t))
	}
	// The same failure of a run and a start of their own VPS: the init child's report, whenever
	// it fails (before or after the monitor's go-ahead).
	for range 5 {
		if r := vpsctl(t, "run", "--rm", "--template", "spare-broken", "--", "/bin/true"); r.code != 3 || !strings.Contains(r.err, "start: mkdir /dev: not a directory") {
			t.Fatalf("run of a template that cannot boot: code %d, err %q", r.code, r.err)
		}
	}
	must(t, "create", "194", "--template", "spare-broken")
	if r := vpsctl(t, "start", "194"); r.code != 3 || !strings.Contains(r.err, "start: mkdir /dev: not a directory") {
		t.Fatalf("start of a VPS that cannot boot: code %d, err %q", r.code, r.err)
	}
	must(t, "destroy", "194")

	// Two starts at once make one keeper (the other finds it, or loses the race for its lock).
	var wg sync.WaitGroup
	codes := make([]int, 2)
	for i := range codes {
		wg.Add(1)
		go func() { defer wg.Done(); codes[i] = vpsctl(t, "spare", "start", "busybox").code }()
	}
	wg.Wait()
	if (codes[0] != 0 && codes[0] != 9) || (codes[1] != 0 && codes[1] != 9) || codes[0]+codes[1] > 9 || len(keepers(t)) != 1 {
		t.Fatalf("two spare starts at once: codes %v, keepers %v", codes, keepers(t))
	}
	must(t, "spare", "stop", "busybox")

	r := expectCode(t, 0, "spare", "start", "busybox", "--count", "2")
	if !strings.HasPrefix(r.out, "spare VPSs of template busybox ready (keeper PID ") {
		t.Fatalf("spare start: %q", r.out)
	}
	k := keepers(t)["busybox"]
	if k.PID <= 0 || k.Count != 2 {
		t.Fatalf("keeper: %+v", k)
	}
	if r := expectCode(t, 0, "spare", "start", "busybox"); !strings.Contains(r.out, "already kept (keeper PID "+strconv.Itoa(k.PID)+")") {
		t.Fatalf("second spare start: %q", r.out)
	}
	// Root's only: the socket and its directory.
	for path, mode := range map[string]os.FileMode{filepath.Join(root, "spare"): 0o700, filepath.Join(root, "spare", "busybox.sock"): 0o600} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != mode {
			t.Fatalf("%s: %v %v, want mode %o", path, fi.Mode(), err, mode)
		}
	}
	// Spares exist as VPSs, but list shows none.
	n0 := served(t)
	if got := must(t, "list", "-a"); got != listBefore {
		t.Fatalf("list -a with spares:\n%s\nwant:\n%s", got, listBefore)
	}
	if got := len(vpsDirs(t)); got != len(strings.Fields(strings.Trim(dirsBefore, "[]")))+2 {
		t.Fatalf("VPS directories with 2 spares: %d", got)
	}

	// What is not a claim (garbage, a claim without its stdio) is answered "not served" (3) and
	// uses no spare.
	sock := filepath.Join(root, "spare", "busybox.sock")
	header := []byte{0x56, 0x53, 0x50, 0x52, 1, 0, 0, 0} // "VSPR", version 1 (little-endian host)
	for _, msg := range [][]byte{[]byte("garbage"), append(header, "\x00/bin/true\x00"...)} {
		c, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: sock, Net: "unixpacket"})
		if err != nil {
			t.Fatalf("dial the keeper: %v", err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		rep := make([]byte, 8)
		if n, err := c.Read(rep); n != 8 || err != nil || rep[0] != 3 {
			t.Fatalf("reply to %q: %v %v, want kind 3 (fallback)", msg, rep[:n], err)
		}
		c.Close()
	}
	if got := served(t); got != n0 {
		t.Fatalf("served %d after malformed claims, want %d", got, n0)
	}

	// The same run, served by a spare and booted by itself: the same VPS.
	probe := []string{"run", "--rm", "--template", "busybox", "--hostname", "h1", "--", "/bin/sh", "-c",
		`hostname; cat /etc/hostname; echo pid=$$; cat; id -u; ls /sys/class/net; cat /sys/class/net/lo/flags
		grep -c fsync=volatile /proc/mounts; env | sort; grep CapBnd /proc/self/status; ls /proc/self/fd | wc -l
		awk '{print $3}' /proc/self/uid_map; wc -l < /proc/self/cgroup; ls /root; touch /root/was-here; echo err >&2; exit 7`}
	spareOut, spareErr, spareCode := runProbe(t, nil, "from-stdin\n", probe...)
	if got := served(t); got != n0+1 {
		t.Fatalf("served %d runs, want %d (the probe)", got, n0+1)
	}
	coldOut, coldErr, coldCode := runProbe(t, []string{"VPSCTL_NO_FASTPATH=1"}, "from-stdin\n", probe...)
	if got := served(t); got != n0+1 {
		t.Fatalf("VPSCTL_NO_FASTPATH=1: served %d, want %d", got, n0+1)
	}
	if spareCode != 7 || coldCode != 7 || spareOut != coldOut || spareErr != "err\n" || coldErr != "err\n" {
		t.Fatalf("spare: code %d out %q err %q\ncold: code %d out %q err %q", spareCode, spareOut, spareErr, coldCode, coldOut, coldErr)
	}
	if !strings.HasPrefix(spareOut, "h1\nh1\npid=1\nfrom-stdin\n0\nlo\n0x9\n1\n") {
		t.Fatalf("probe: %q", spareOut)
	}
	// A claimed spare is listed as the run's VPS, with the claim's host name.
	cmd := exec.Command(bin, "--root", root, "run", "--rm", "--template", "busybox", "--hostname", "listed", "--", "/bin/sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the claimed spare in list -a", func() bool {
		return strings.Contains(must(t, "list", "-a"), " listed ")
	})
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 137 {
		t.Fatalf("run after SIGTERM: exit %d, want 137", code)
	}
	n0++
	// Each spare serves once: what a run left is gone for the next.
	for range 3 {
		if out, _, code := runProbe(t, nil, "", "run", "--rm", "--template", "busybox", "--", "ls", "/root"); code != 0 || out != "" {
			t.Fatalf("a spare after a run: code %d, /root has %q", code, out)
		}
	}
	// Its output is the caller's: a command substitution ends with the command.
	if out, err := exec.Command("sh", "-c", bin+" --root "+root+" run --rm --template busybox -- echo 'a  b'").Output(); err != nil || string(out) != "a  b\n" {
		t.Fatalf("captured: %q %v", out, err)
	}
	n1 := served(t)
	if n1 != n0+5 {
		t.Fatalf("served %d, want %d", n1, n0+5)
	}

	// Failures are the run's own: the spare answers "not served" and the command boots its own.
	if r := vpsctl(t, "run", "--rm", "--template", "busybox", "--hostname", "bad_name", "--", "/bin/true"); r.code != 70 || !strings.Contains(r.err, "bad_name") {
		t.Fatalf("bad host name: code %d err %q", r.code, r.err)
	}
	if r := vpsctl(t, "run", "--rm", "--template", "busybox", "--", "/no/such/command"); r.code != 3 || !strings.Contains(r.err, "exec /no/such/command: no such file or directory") {
		t.Fatalf("missing command: code %d err %q", r.code, r.err)
	}
	// Forms a spare does not serve boot their own VPS.
	must(t, "run", "193", "--rm", "--template", "busybox", "--", "/bin/true")
	must(t, "run", "--rm", "--template", "busybox", "/bin/true")
	if got := served(t); got != n1 {
		t.Fatalf("served %d after runs a spare does not serve, want %d", got, n1)
	}

	// SIGINT to the run kills its VPS (status 128+9, as a run's); so does the run's death.
	sleeper := func(tag string) (*exec.Cmd, func() bool) {
		cmd := exec.Command(bin, "--root", root, "run", "--rm", "--template", "busybox", "--", "/bin/sleep", tag)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		running := func() bool {
			ents, _ := os.ReadDir("/proc")
			for _, e := range ents {
				if b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline"); err == nil && string(b) == "/bin/sleep\x00"+tag+"\x00" {
					return true
				}
			}
			return false
		}
		waitFor(t, 10*time.Second, "the sleep in the spare", running)
		return cmd, running
	}
	cmd, running := sleeper("61")
	cmd.Process.Signal(syscall.SIGINT)
	cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 137 {
		t.Fatalf("run after SIGINT: exit %d, want 137", code)
	}
	waitFor(t, 10*time.Second, "the VPS's end", func() bool { return !running() })
	cmd, running = sleeper("62")
	cmd.Process.Kill()
	cmd.Wait()
	waitFor(t, 10*time.Second, "the VPS's end after its run was killed", func() bool { return !running() })
	if got := served(t); got != n1+2 {
		t.Fatalf("served %d, want %d", got, n1+2)
	}
	n1 += 2

	// With every spare serving a command, a run boots its own at once instead of waiting.
	long1, running1 := sleeper("63")
	long2, running2 := sleeper("64")
	began := time.Now()
	if out, _, code := runProbe(t, nil, "", "run", "--rm", "--template", "busybox", "--", "echo", "own"); code != 0 || out != "own\n" {
		t.Fatalf("run with all spares busy: %d %q", code, out)
	}
	// Not a speed check: a claim that waited for a spare would have waited the keeper's 5 s.
	if d := time.Since(began); d > 4*time.Second {
		t.Fatalf("run with all spares busy took %v: it waited for a spare", d)
	}
	if k := keepers(t)["busybox"]; k.Served != n1 {
		t.Fatalf("served %d with two sleeps running, want %d (the run booted its own)", k.Served, n1)
	}
	// A stop waits for the runs in flight, as long as its --timeout, and then says so.
	if r := vpsctl(t, "spare", "stop", "busybox", "--timeout", "300ms"); r.code != 3 || !strings.Contains(r.err, "still running after 300ms") {
		t.Fatalf("spare stop with runs in flight: code %d err %q", r.code, r.err)
	}
	// The keeper's death ends what its spares run; their runs say so.
	k = keepers(t)["busybox"]
	syscall.Kill(k.PID, syscall.SIGKILL)
	for _, c := range []*exec.Cmd{long1, long2} {
		c.Wait()
		if code := c.ProcessState.ExitCode(); code != 3 {
			t.Fatalf("run whose keeper was killed: exit %d, want 3", code)
		}
	}
	waitFor(t, 10*time.Second, "the sleeps' end", func() bool { return !running1() && !running2() })
	waitFor(t, 10*time.Second, "the keeper's end", func() bool { return len(keepers(t)) == 0 })
	must(t, "spare", "start", "busybox", "--count", "2")
	n1 = served(t)

	// A keeper killed outright: its spares die with it (their inits' parent-death signal);
	// runs boot their own; the next keeper destroys what the dead one left.
	k = keepers(t)["busybox"]
	syscall.Kill(k.PID, syscall.SIGKILL)
	waitFor(t, 10*time.Second, "the keeper's end", func() bool { return len(keepers(t)) == 0 })
	if out, _, code := runProbe(t, nil, "", "run", "--rm", "--template", "busybox", "--", "echo", "cold"); code != 0 || out != "cold\n" {
		t.Fatalf("run after the keeper died: %d %q", code, out)
	}
	if got := len(vpsDirs(t)); got != len(strings.Fields(strings.Trim(dirsBefore, "[]")))+2 {
		t.Fatalf("VPS directories after the keeper was killed: %d, want its 2 spares", got)
	}
	// They are listed now (stopped: anyone may destroy them), and spare stop does.
	if got := strings.Count(must(t, "list", "-a"), " stopped "); got != strings.Count(listBefore, " stopped ")+2 {
		t.Fatalf("list -a after the keeper died: %d stopped VPSs, want its 2 spares more", got)
	}
	if r := expectCode(t, 0, "spare", "stop", "busybox"); !strings.Contains(r.out, "no spare VPSs of template busybox kept") {
		t.Fatalf("stop after the keeper died: %q", r.out)
	}
	if got := fmt.Sprint(vpsDirs(t)); got != dirsBefore {
		t.Fatalf("VPS directories after stop: %s, want %s", got, dirsBefore)
	}
	// A keeper's spares block the template's removal, which says what to do.
	must(t, "spare", "start", "busybox", "--count", "1")
	if r := expectCode(t, 210, "template", "rm", "busybox"); !strings.Contains(r.err, "vpsctl spare stop busybox") {
		t.Fatalf("template rm with spares: %q", r.err)
	}

	// stop destroys the spares and waits for the keeper.
	if r := expectCode(t, 0, "spare", "stop", "busybox"); r.out != "spare VPSs of template busybox stopped\n" {
		t.Fatalf("spare stop: %q", r.out)
	}
	if len(keepers(t)) != 0 {
		t.Fatalf("keepers after stop: %v", keepers(t))
	}
	waitTmpEmpty(t, 10*time.Second)
	if got := fmt.Sprint(vpsDirs(t)); got != dirsBefore {
		t.Fatalf("VPS directories after stop: %s, want %s", got, dirsBefore)
	}
	if _, err := os.Stat(filepath.Join(root, "spare", "busybox.sock")); !os.IsNotExist(err) {
		t.Fatalf("socket after stop: %v", err)
	}

	// --idle: a keeper with no claim for that long stops by itself.
	must(t, "spare", "start", "busybox", "--idle", "300ms")
	waitFor(t, 20*time.Second, "the idle keeper's end", func() bool { return len(keepers(t)) == 0 })
	waitTmpEmpty(t, 10*time.Second)
	waitFor(t, 10*time.Second, "its spare destroyed", func() bool { return fmt.Sprint(vpsDirs(t)) == dirsBefore })
}
