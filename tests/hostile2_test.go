package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The rows of issue 20 ("Hostile tenants") that need the runtime: a device node planted in a
// template after its import, the syscall filter, default limits against a fork bomb, a process
// named with terminal escapes, a reboot loop, a password kept out of every argv.

// TestHostileLateDeviceNode: a node put into a template after its import (or a tarball the
// import did not see) opens nothing: the root is nodev and c 5:1 is not allowed either.
func TestHostileLateDeviceNode(t *testing.T) {
	const id, tpl = "302", "devtpl302"
	checkClean(t, id)
	src := t.TempDir()
	if out, err := exec.Command("cp", "-a", filepath.Join(root, "templates", "busybox", "rootfs")+"/.", src+"/").CombinedOutput(); err != nil {
		t.Fatalf("copy the busybox tree: %v: %s", err, out)
	}
	must(t, "template", "import", tpl, src)
	t.Cleanup(func() { vpsctl(t, "template", "remove", tpl) })
	node := filepath.Join(root, "templates", tpl, "rootfs", "dev", "console")
	os.Remove(node)
	if err := unix.Mknod(node, unix.S_IFCHR|0o666, int(unix.Mkdev(5, 1))); err != nil {
		t.Fatal(err)
	}
	must(t, "create", id, "--template", tpl)
	must(t, "start", id)
	r := vpsctl(t, "exec", id, "--", "sh", "-c", `mkdir /r; mount --bind / /r || exit 90; [ -c /r/dev/console ] || exit 91; echo x > /r/dev/console`)
	if r.code == 90 || r.code == 91 {
		t.Fatalf("the row could not set up (exit %d): %s%s", r.code, r.out, r.err)
	}
	if r.code == 0 {
		t.Fatal("a VPS wrote to the host's console through its template's node")
	}
}

// TestHostileSeccomp: every process of a VPS, its init and what exec starts, runs under the
// filter; the calls no VPS needs fail with EPERM, ordinary ones work, setuid-free sudo-like
// use (su) is not broken by no_new_privs (it is not set).
func TestHostileSeccomp(t *testing.T) {
	const id = "304"
	checkClean(t, id)
	must(t, "create", id, "--template", "busybox")
	must(t, "start", id)
	for _, env := range [][]string{nil, {"VPSCTL_NO_FASTPATH=1"}} {
		r := vpsctlEnv(t, env, "exec", id, "--", "sh", "-c", "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status /proc/1/status")
		if r.code != 0 || strings.Count(r.out, "Seccomp:\t2") != 2 || strings.Count(r.out, "NoNewPrivs:\t0") != 2 {
			t.Fatalf("%v: exec's and init's filter: exit %d\n%s%s", env, r.code, r.out, r.err)
		}
	}
	// busybox's swapoff and insmod reach the kernel with calls the filter denies (swapoff(2),
	// finit_module/init_module): EPERM, not the ENOENT or ENOSYS they would get otherwise.
	r := vpsctl(t, "exec", id, "--", "sh", "-c", "echo x > /m.ko; insmod /m.ko; echo rc=$?")
	if !strings.Contains(r.out+r.err, "Operation not permitted") {
		t.Fatalf("insmod inside: %s%s", r.out, r.err)
	}
}

// TestHostileForkBomb: a VPS created without limits has a process limit; a fork bomb hits it,
// the VPS's beancounter counts the refusals, and the host (and the VPS's own init) go on.
func TestHostileForkBomb(t *testing.T) {
	const id = "305"
	checkClean(t, id)
	must(t, "create", id, "--template", "busybox")
	must(t, "start", id)
	max := strings.TrimSpace(cgroupFileAny(t, "pids", id, "pids.max"))
	if n, err := strconv.Atoi(max); err != nil || n <= 0 {
		t.Fatalf("pids.max of a VPS created without limits: %q, want a number", max)
	}
	// Bounded: the bomb runs 5 s, then the VPS is stopped (the kill of its PID namespace). Its
	// processes hold none of our pipes: exec's output ends with the shell.
	t.Cleanup(func() { vpsctl(t, "stop", "--kill", id) })
	r := vpsctlTimeout(t, 60*time.Second, nil, "exec", id, "--", "sh", "-c",
		`b() { b & b & wait; }; (b) >/dev/null 2>&1 </dev/null & sleep 5; echo done`)
	if !strings.Contains(r.out, "done") {
		t.Fatalf("the VPS's shell did not live through its own fork bomb: %+v", r)
	}
	var st struct {
		Beancounters map[string]struct {
			Failcnt uint64 `json:"failcnt"`
		} `json:"beancounters"`
	}
	if err := json.Unmarshal([]byte(must(t, "stats", id, "--format", "json")), &st); err != nil {
		t.Fatal(err)
	}
	if st.Beancounters["numproc"].Failcnt == 0 {
		t.Errorf("numproc's failcnt did not rise under a fork bomb: %+v", st.Beancounters)
	}
	must(t, "stop", "--kill", id)
}

// cgroupFileAny reads FILE of VPS id's group of controller ctrl (v1) or of the unified tree (v2).
func cgroupFileAny(t *testing.T, ctrl, id, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(groupDir(ctrl, id), file))
	if err != nil {
		t.Fatalf("no %s for VPS %s: %v", file, id, err)
	}
	return string(b)
}

// TestHostileProcessName: a process named with terminal escapes (a title change, a clear, a
// C1 CSI) shows escaped in ps and pid, in tables and JSON, never as a raw control byte.
func TestHostileProcessName(t *testing.T) {
	const id = "306"
	checkClean(t, id)
	must(t, "create", id, "--template", "busybox")
	must(t, "start", id)
	// A script, run by its odd name: its command line (sh's argv) and its name (comm) hold it.
	must(t, "exec", id, "--", "sh", "-c", `printf '#!/bin/sh\nsleep 300\n' > '/bin/`+"\x1b]0;owned\a\x1b[2J\u009b"+`x'; chmod +x /bin/*x; (cd /bin && ./*x) >/dev/null 2>&1 </dev/null &`)
	var hostPID string
	waitFor(t, 10*time.Second, "the oddly named process", func() bool {
		out := vpsctl(t, "ps", id).out
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, `\x1b]0;owned`) {
				hostPID = strings.Fields(l)[0]
				return true
			}
		}
		return false
	})
	for _, args := range [][]string{{"ps", id}, {"ps", id, "--format", "json"}, {"ps"}, {"pid", hostPID}, {"pid", hostPID, "--format", "json"}} {
		out := must(t, args...)
		if bytes.ContainsAny([]byte(out), "\x1b\x07") || strings.Contains(out, "\u009b") {
			t.Errorf("vpsctl %v printed a raw control character: %q", args, out)
		}
		if !strings.Contains(out, `\x1b]0;owned`) && !strings.Contains(out, `\u001b]0;owned`) {
			t.Errorf("vpsctl %v does not show the name escaped: %q", args, out)
		}
	}
}

// TestHostileRebootLoop: an init that reboots at once, forever: after five boots within a
// minute the next waits (status says backoff), the host's CPU is not spent, and a stop ends the
// wait at once.
func TestHostileRebootLoop(t *testing.T) {
	const id = "307"
	checkClean(t, id)
	must(t, "create", id, "--template", "busybox")
	etc := filepath.Join(root, "vps", id, "private", "etc")
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(etc, "inittab"), []byte("::sysinit:/sbin/reboot -f\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	must(t, "start", id)
	waitFor(t, 30*time.Second, "the reboot loop to be held back", func() bool {
		return strings.Contains(vpsctl(t, "status", id).out, "running backoff")
	})
	s := status(t, id)
	boots := s.Boots
	time.Sleep(3 * time.Second)
	if s2 := status(t, id); s2.Boots != boots {
		t.Fatalf("boots went on while held back: %d -> %d", boots, s2.Boots)
	}
	start := time.Now()
	must(t, "stop", id, "--timeout", "10s")
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("stop during the back-off took %v", d)
	}
	if st := status(t, id).State; st != "stopped" {
		t.Fatalf("after stop: %s", st)
	}
	log, _ := os.ReadFile(filepath.Join(root, "vps", id, "monitor.log"))
	if !strings.Contains(string(log), "reboot loop: 5 boots within 1m0s") {
		t.Errorf("monitor.log does not say why it waited:\n%s", log)
	}
}

// TestHostilePasswordArgv: `echo PASS | vpsctl set ID --userpasswd USER` sets the password and
// no process's argv, on the host or in the VPS, ever holds it.
func TestHostilePasswordArgv(t *testing.T) {
	const id, secret = "308", "s3cret-308-xyzzy"
	checkClean(t, id)
	must(t, "create", id, "--template", "busybox")
	must(t, "start", id)
	seen := make(chan string, 1)
	stop := make(chan struct{})
	go func() { // watch every argv while the set runs
		defer close(seen)
		for {
			select {
			case <-stop:
				return
			default:
			}
			ents, _ := os.ReadDir("/proc")
			for _, e := range ents {
				b, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
				if bytes.Contains(b, []byte(secret)) {
					seen <- fmt.Sprintf("%s: %q", e.Name(), b)
					return
				}
			}
		}
	}()
	cmd := exec.Command(bin, "--root", root, "set", id, "--userpasswd", "alice")
	cmd.Stdin = strings.NewReader(secret + "\n")
	out, err := cmd.CombinedOutput()
	close(stop)
	if err != nil {
		t.Fatalf("set --userpasswd alice: %v\n%s", err, out)
	}
	if leak, ok := <-seen; ok {
		t.Fatalf("the password was in an argv: %s", leak)
	}
	shadow := must(t, "exec", id, "--", "grep", "^alice:", "/etc/shadow")
	if strings.Contains(shadow, secret) || !strings.HasPrefix(shadow, "alice:$") {
		t.Fatalf("alice's shadow entry: %q", shadow)
	}
	// Without a password on stdin: a clear error, nothing changed.
	cmd = exec.Command(bin, "--root", root, "set", id, "--userpasswd", "bob")
	cmd.Stdin = strings.NewReader("")
	if b, _ := cmd.CombinedOutput(); cmd.ProcessState.ExitCode() != 74 || !strings.Contains(string(b), "no password on stdin") {
		t.Fatalf("set --userpasswd bob with nothing on stdin: exit %d: %s", cmd.ProcessState.ExitCode(), b)
	}
}
