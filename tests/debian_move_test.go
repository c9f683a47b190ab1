package tests

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestDebianMove checkpoints and restores real Debian 12 guests with their services running
// (systemd: also after apt installs nginx and cron; sysvinit), keeps an ssh session into them
// counting across checkpoint --tcp-established and restore, and, for systemd, backs up with
// memory, restores after a destroy, clones, and migrates over ssh with the session going on.
// It builds the Debian templates (shared with TestDebianGuests) with debootstrap; -short skips
// it.
func TestDebianMove(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the Debian guest suite builds templates with debootstrap")
	}
	t.Run("systemd", testDebianSystemd)
	t.Run("sysvinit", testDebianSysvinit)
}

func testDebianSystemd(t *testing.T) {
	const id, addr, cloneID, cloneAddr = "631", "198.18.0.131", "632", "198.18.0.132"
	checkClean(t, id, cloneID)
	root2 := otherRoot(t, "debian", id)
	ensureDebianTemplate(t, "debian-12", "systemd")
	must(t, "create", id, "--template", "debian-12", "--ipadd", addr)
	must(t, "start", id)
	waitSystemd(t, id)
	if out := must(t, "checkpoint", "--check", id); !strings.Contains(out, "blockers: none") {
		t.Fatalf("check of a booted Debian:\n%s", out)
	}
	key := guestKey(t, id)
	installDebs(t, id, "nginx", "cron")
	waitSystemd(t, id)
	if out := must(t, "exec", id, "--", "systemctl", "is-active", "nginx", "cron", "ssh", "systemd-logind"); strings.Count(out, "active") != 4 {
		t.Fatalf("services after apt: %s", out)
	}
	nginx := strings.TrimSpace(must(t, "exec", id, "--", "cat", "/run/nginx.pid"))
	timedCheckpoint(t, id, "checkpoint", id)
	timedCheckpoint(t, id, "restore", id)
	waitSystemd(t, id)
	if got := strings.TrimSpace(must(t, "exec", id, "--", "cat", "/run/nginx.pid")); got != nginx {
		t.Fatalf("nginx's PID %s after restore, %s before", got, nginx)
	}
	if out := must(t, "exec", id, "--", "systemctl", "is-active", "nginx", "cron", "ssh"); strings.Count(out, "active") != 3 {
		t.Fatalf("services after restore: %s", out)
	}
	must(t, "exec", id, "--", "systemctl", "restart", "nginx") // systemd still drives its services

	// An ssh session counting across checkpoint --tcp-established and restore.
	sess := startSession(t, key, addr)
	sess.waitFor(t, 3)
	timedCheckpoint(t, id, "checkpoint", "--tcp-established", id)
	timedCheckpoint(t, id, "restore", id)
	sess.keepsCounting(t)
	sess.stop()

	// Backup with memory, destroy, restore: running again, the same processes.
	nginx = strings.TrimSpace(must(t, "exec", id, "--", "cat", "/run/nginx.pid"))
	file := filepath.Join(t.TempDir(), id+".tar.zst")
	t.Logf("backup: %s", must(t, "backup", id, file, "--with-memory"))
	must(t, "destroy", "-f", id)
	must(t, "restore", id, "--from-backup", file)
	waitSystemd(t, id)
	if got := strings.TrimSpace(must(t, "exec", id, "--", "cat", "/run/nginx.pid")); got != nginx {
		t.Fatalf("nginx's PID %s after the backup's restore, %s before", got, nginx)
	}

	// A clone boots on its own.
	must(t, "clone", id, cloneID, "--ipadd", cloneAddr)
	must(t, "start", cloneID)
	waitSystemd(t, cloneID)
	if got := strings.TrimSpace(must(t, "exec", cloneID, "--", "hostname")); got != "vps"+cloneID {
		t.Fatalf("clone's host name %q", got)
	}
	if out := must(t, "exec", cloneID, "--", "systemctl", "is-active", "nginx"); strings.TrimSpace(out) != "active" {
		t.Fatalf("clone's nginx: %s", out)
	}
	must(t, "stop", "--kill", cloneID)
	must(t, "destroy", cloneID)

	// Migrate over ssh with a session counting across.
	sshd := startSSHD(t)
	sess = startSession(t, key, addr)
	sess.waitFor(t, 2)
	out := must(t, sshd.migrateArgs(id, root2)...)
	t.Logf("migrate: %s", out)
	if !strings.Contains(out, "running there") || !strings.Contains(out, "downtime") {
		t.Fatalf("migrate: %s", out)
	}
	sess.keepsCounting(t)
	sess.stop()
	if s := status(t, id); s.State != "deleted" {
		t.Fatalf("still here after the migration: %+v", s)
	}
	var state string
	waitFor(t, 60*time.Second, "systemd there", func() bool {
		state = strings.TrimSpace(vpsctl2(t, root2, "exec", id, "--", "systemctl", "is-system-running").out)
		return state == "running"
	})
	vpsctl2(t, root2, "destroy", "-f", id)
}

func testDebianSysvinit(t *testing.T) {
	const id, addr = "633", "198.18.0.133"
	checkClean(t, id)
	ensureDebianTemplate(t, "debian-12-sysvinit", "sysvinit")
	must(t, "create", id, "--template", "debian-12-sysvinit", "--ipadd", addr)
	must(t, "start", id)
	waitFor(t, 60*time.Second, "runlevel 2", func() bool {
		return strings.TrimSpace(vpsctl(t, "exec", id, "--", "runlevel").out) == "N 2"
	})
	if out := must(t, "checkpoint", "--check", id); !strings.Contains(out, "blockers: none") {
		t.Fatalf("check of a booted sysvinit Debian:\n%s", out)
	}
	key := guestKey(t, id)
	var sshd string
	waitFor(t, 30*time.Second, "sshd", func() bool {
		sshd = strings.TrimSpace(vpsctl(t, "exec", id, "--", "cat", "/run/sshd.pid").out)
		return sshd != ""
	})
	sess := startSession(t, key, addr)
	sess.waitFor(t, 3)
	timedCheckpoint(t, id, "checkpoint", "--tcp-established", id)
	timedCheckpoint(t, id, "restore", id)
	sess.keepsCounting(t)
	sess.stop()
	if got := strings.TrimSpace(must(t, "exec", id, "--", "cat", "/run/sshd.pid")); got != sshd {
		t.Fatalf("sshd's PID %s after restore, %s before", got, sshd)
	}
	if got := strings.TrimSpace(must(t, "exec", id, "--", "runlevel")); got != "N 2" {
		t.Fatalf("runlevel after restore: %q", got)
	}
	must(t, "stop", id)
}

// ensureDebianTemplate builds template tpl (variant) unless this run has it.
func ensureDebianTemplate(t *testing.T, tpl, variant string) {
	t.Helper()
	if r := vpsctl(t, "template", "list"); strings.Contains(r.out, tpl+" ") {
		return
	}
	build := vpsctlTimeout(t, 15*time.Minute, nil, "template", "build", "debian-12", "--variant", variant)
	if build.code != 0 {
		t.Fatalf("template build: %s\n%s", build.out, build.err)
	}
}

// waitSystemd waits (bounded) for VPS id's systemd to finish booting and wants "running".
func waitSystemd(t *testing.T, id string) {
	t.Helper()
	var state string
	waitFor(t, 90*time.Second, "systemd to finish booting", func() bool {
		state = strings.TrimSpace(vpsctl(t, "exec", id, "--", "systemctl", "is-system-running").out)
		return state == "running" || state == "degraded"
	})
	if state != "running" {
		failed := vpsctl(t, "exec", id, "--", "systemctl", "--failed", "--no-pager")
		t.Fatalf("systemd is %s:\n%s", state, failed.out)
	}
}

// timedCheckpoint runs a checkpoint or restore with --format json and logs its time.
func timedCheckpoint(t *testing.T, id string, args ...string) {
	t.Helper()
	out := must(t, append(args, "--format", "json")...)
	var res struct {
		Bytes   int64   `json:"bytes"`
		Seconds float64 `json:"seconds"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v: %v %s", args, err, out)
	}
	t.Logf("VPS %s: %s: %.1f MiB in %.2f s", id, args[0], float64(res.Bytes)/(1<<20), res.Seconds)
}

// guestKey authorizes a throwaway key for root in VPS id and returns its private key's path.
func guestKey(t *testing.T, id string) string {
	t.Helper()
	key := filepath.Join(t.TempDir(), "key")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v %s", err, out)
	}
	pub, _ := os.ReadFile(key + ".pub")
	cmd := exec.Command(bin, "--root", root, "exec", id, "--", "sh", "-c", "mkdir -p /root/.ssh && chmod 700 /root/.ssh && cat > /root/.ssh/authorized_keys")
	cmd.Stdin = strings.NewReader(string(pub))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("authorized_keys: %v %s", err, out)
	}
	return key
}

// session is an ssh session into a VPS printing a counter every second.
type session struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	seen []int
	done chan struct{}
}

func startSession(t *testing.T, key, addr string) *session {
	t.Helper()
	var s *session
	waitFor(t, 60*time.Second, "an ssh session", func() bool {
		s = &session{done: make(chan struct{})}
		s.cmd = exec.Command("ssh", "-i", key, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
			"-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=5", "-o", "ServerAliveInterval=0",
			"root@"+addr, "i=0; while :; do i=$((i+1)); echo $i; sleep 1; done")
		out, err := s.cmd.StdoutPipe()
		if err != nil || s.cmd.Start() != nil {
			return false
		}
		go func() {
			defer close(s.done)
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if n, err := strconv.Atoi(strings.TrimSpace(sc.Text())); err == nil {
					s.mu.Lock()
					s.seen = append(s.seen, n)
					s.mu.Unlock()
				}
			}
			s.cmd.Wait()
		}()
		select {
		case <-s.done:
			return false // refused: sshd not up yet
		case <-time.After(3 * time.Second):
			return s.last() > 0
		}
	})
	t.Cleanup(s.stop)
	return s
}

func (s *session) last() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.seen) == 0 {
		return 0
	}
	return s.seen[len(s.seen)-1]
}

func (s *session) waitFor(t *testing.T, n int) {
	t.Helper()
	waitFor(t, 30*time.Second, fmt.Sprintf("the session to count to %d", n), func() bool { return s.last() >= n })
}

// keepsCounting checks the session is alive and counts on (three more), never from 1 again.
func (s *session) keepsCounting(t *testing.T) {
	t.Helper()
	from := s.last()
	waitFor(t, 30*time.Second, "the session to count on", func() bool {
		select {
		case <-s.done:
			t.Fatalf("the ssh session ended (counted to %d)", s.last())
		default:
		}
		return s.last() >= from+3
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := 1; i < len(s.seen); i++ {
		if s.seen[i] != s.seen[i-1]+1 {
			t.Fatalf("the counter went %d -> %d", s.seen[i-1], s.seen[i])
		}
	}
}

func (s *session) stop() {
	if s.cmd.Process != nil {
		s.cmd.Process.Kill()
		<-s.done
	}
}

// installDebs installs packages into VPS id as apt-get install would, without the VPS reaching
// any network: apt runs on the host with a state of its own (bookworm's lists from Debian's
// archive, the VPS's dpkg status) to download what the VPS lacks, and apt installs those files
// inside, offline.
func installDebs(t *testing.T, id string, pkgs ...string) {
	t.Helper()
	w := t.TempDir()
	os.Chmod(w, 0o755)
	for _, d := range []string{"lists/partial", "cache/archives/partial", "etc"} {
		must0(t, os.MkdirAll(filepath.Join(w, d), 0o755))
	}
	exec.Command("chown", "-R", "_apt", filepath.Join(w, "lists"), filepath.Join(w, "cache")).Run()
	must0(t, os.WriteFile(filepath.Join(w, "status"), []byte(must(t, "exec", id, "--", "cat", "/var/lib/dpkg/status")), 0o644))
	must0(t, os.WriteFile(filepath.Join(w, "etc/sources.list"),
		[]byte("deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main\n"), 0o644))
	opts := []string{"-o", "Dir::State::status=" + filepath.Join(w, "status"), "-o", "Dir::State::Lists=" + filepath.Join(w, "lists"),
		"-o", "Dir::Cache=" + filepath.Join(w, "cache"), "-o", "Dir::Cache::pkgcache=", "-o", "Dir::Cache::srcpkgcache=",
		"-o", "Dir::Etc::sourcelist=" + filepath.Join(w, "etc/sources.list"), "-o", "Dir::Etc::sourceparts=-",
		"-o", "Dir::Etc::preferencesparts=-", "-o", "Debug::NoLocking=1", "-o", "APT::Get::List-Cleanup=0", "-o", "Acquire::Languages=none"}
	apt := func(args ...string) {
		cmd := exec.Command("apt-get", append(opts, args...)...)
		cmd.Env = append(os.Environ(), "TMPDIR=/var/tmp", "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("apt-get %v: %v\n%s", args, err, out)
		}
	}
	apt("update", "-q")
	apt(append([]string{"install", "-y", "-q", "--download-only", "--no-install-recommends"}, pkgs...)...)
	debs, _ := filepath.Glob(filepath.Join(w, "cache/archives/*.deb"))
	if len(debs) == 0 {
		t.Fatalf("no packages downloaded for %v", pkgs)
	}
	must(t, "exec", id, "--", "mkdir", "-m", "755", "-p", "/tmp/debs") // readable by apt's _apt
	for _, d := range debs {
		f, err := os.Open(d)
		must0(t, err)
		cmd := exec.Command(bin, "--root", root, "exec", id, "--", "sh", "-c", "cat > /tmp/debs/"+filepath.Base(d))
		cmd.Stdin = f
		out, err := cmd.CombinedOutput()
		f.Close()
		if err != nil {
			t.Fatalf("copy %s: %v %s", d, err, out)
		}
	}
	r := vpsctlTimeout(t, 5*time.Minute, nil, "exec", "-e", "DEBIAN_FRONTEND=noninteractive", id, "--", "sh", "-c", "apt-get install -y -q --no-install-recommends /tmp/debs/*.deb && rm -r /tmp/debs")
	if r.code != 0 {
		t.Fatalf("apt-get install: exit %d\n%s\n%s", r.code, r.out, r.err)
	}
}
