package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDebianGuests builds Debian 12 templates (systemd and sysvinit) with debootstrap and boots
// them as VPSs: init reaches its normal target, a user set with --userpasswd logs in over SSH,
// an in-VPS reboot boots again and an in-VPS poweroff stops and cleans up. It needs Debian's
// archive (the host's apt mirror) and takes a few minutes; -short skips it.
func TestDebianGuests(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the Debian guest suite builds templates with debootstrap")
	}
	for _, tc := range []struct {
		variant, tpl, id, addr, user string
		ready                        func(t *testing.T, id string)
	}{
		{"systemd", "debian-12", "201", "198.18.0.201", "alice", func(t *testing.T, id string) {
			var state string
			waitFor(t, 90*time.Second, "systemd to finish booting", func() bool {
				r := vpsctl(t, "exec", id, "--", "systemctl", "is-system-running")
				state = strings.TrimSpace(r.out)
				return state == "running" || state == "degraded"
			})
			if state != "running" {
				failed := vpsctl(t, "exec", id, "--", "systemctl", "--failed", "--no-pager")
				t.Fatalf("systemd is %s:\n%s", state, failed.out)
			}
			if got := strings.TrimSpace(must(t, "exec", id, "--", "cat", "/proc/1/comm")); got != "systemd" {
				t.Fatalf("PID 1 is %q", got)
			}
		}},
		{"sysvinit", "debian-12-sysvinit", "202", "198.18.0.202", "bob", func(t *testing.T, id string) {
			waitFor(t, 60*time.Second, "runlevel 2", func() bool {
				return strings.TrimSpace(vpsctl(t, "exec", id, "--", "runlevel").out) == "N 2"
			})
			if got := strings.TrimSpace(must(t, "exec", id, "--", "cat", "/proc/1/comm")); got != "init" {
				t.Fatalf("PID 1 is %q", got)
			}
		}},
	} {
		t.Run(tc.variant, func(t *testing.T) {
			checkClean(t, tc.id)
			debianTemplate(t, tc.tpl, tc.variant)
			must(t, "create", tc.id, "--template", tc.tpl, "--hostname", "deb"+tc.id, "--ipadd", tc.addr)
			must(t, "set", tc.id, "--userpasswd", tc.user+":s3cret-"+tc.id) // on a stopped VPS
			must(t, "start", tc.id)
			tc.ready(t, tc.id)
			env := must(t, "exec", tc.id, "--", "cat", "/proc/1/environ")
			if !strings.Contains(env, "container=") {
				t.Fatalf("no container= in init's environment: %q", env)
			}
			// The password never reaches vpsctl's files.
			if out, _ := exec.Command("grep", "-r", "s3cret-"+tc.id, root+"/vps/"+tc.id+"/vps.conf",
				root+"/vps/"+tc.id+"/monitor.log").CombinedOutput(); len(out) > 0 {
				t.Fatalf("password found in vpsctl's files: %s", out)
			}
			var host string
			waitFor(t, 60*time.Second, "an SSH login", func() bool {
				out, err := exec.Command("timeout", "15", "sshpass", "-p", "s3cret-"+tc.id, "ssh", "-o", "StrictHostKeyChecking=no",
					"-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR",
					tc.user+"@"+tc.addr, "hostname").Output()
				host = strings.TrimSpace(string(out))
				return err == nil
			})
			if host != "deb"+tc.id {
				t.Fatalf("ssh hostname = %q", host)
			}
			old := status(t, tc.id).InitPID
			vpsctl(t, "exec", tc.id, "--", "reboot")
			waitFor(t, 60*time.Second, "a fresh boot", func() bool {
				s := status(t, tc.id)
				return s.State == "running" && s.InitPID != old && s.InitPID > 0
			})
			tc.ready(t, tc.id)
			vpsctl(t, "exec", tc.id, "--", "poweroff")
			waitFor(t, 60*time.Second, "poweroff", func() bool { return status(t, tc.id).State == "stopped" })
			waitFor(t, 10*time.Second, "the monitor to finish", func() bool { return len(ourMonitors()) == 0 })
			must(t, "destroy", tc.id)
		})
	}
}

// debianTemplate builds template tpl (Debian 12 of init variant) with debootstrap unless this
// run has it already.
func debianTemplate(t *testing.T, tpl, variant string) {
	t.Helper()
	if r := vpsctl(t, "template", "list"); strings.Contains(r.out, tpl+" ") {
		return
	}
	build := vpsctlTimeout(t, 15*time.Minute, nil, "template", "build", "debian-12", "--variant", variant)
	if build.code != 0 {
		t.Fatalf("template build: %s\n%s", build.out, build.err)
	}
}

// TestDebianGuestViews is issue 21's acceptance on a Debian 12 systemd guest: start --wait
// returns with systemd booted, free, nproc and uptime are the VPS's own, ip tuntap works with
// the tun feature, a read-only bind mount shows the host's files.
func TestDebianGuestViews(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the Debian guest suite builds templates with debootstrap")
	}
	const id = "408"
	checkClean(t, id)
	debianTemplate(t, "debian-12", "systemd")
	share := t.TempDir()
	os.Chmod(share, 0o755)
	if err := os.WriteFile(filepath.Join(share, "readme"), []byte("shared\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	must(t, "create", id, "--template", "debian-12", "--memory", "512M", "--swap", "256M", "--cpus", "1",
		"--features", "tun,fuse", "--bindmount", share+":/mnt/share:ro")
	t0 := time.Now()
	if out := must(t, "start", "--wait", id); !strings.Contains(out, "booted (systemd: running") &&
		!strings.Contains(out, "booted (systemd: degraded") {
		t.Fatalf("start --wait: %q", out)
	}
	// No wait here: start --wait has waited.
	if st := strings.TrimSpace(vpsctl(t, "exec", id, "--", "systemctl", "is-system-running").out); st != "running" && st != "degraded" {
		t.Fatalf("right after start --wait, systemd is %q", st)
	}
	free := must(t, "exec", id, "--", "free", "-m")
	if f := strings.Fields(strings.Split(free, "\n")[1]); len(f) < 2 || f[0] != "Mem:" || f[1] != "512" {
		t.Fatalf("free -m:\n%s", free)
	}
	if got := strings.TrimSpace(must(t, "exec", id, "--", "nproc")); got != "1" {
		t.Fatalf("nproc %q", got)
	}
	if up := uptimeOf(t, must(t, "exec", id, "--", "cat", "/proc/uptime")); up > time.Since(t0).Seconds()+2 {
		t.Fatalf("uptime %.1f s, longer than the VPS has run", up)
	}
	must(t, "exec", id, "--", "ip", "tuntap", "add", "dev", "tun0", "mode", "tun")
	if out := must(t, "exec", id, "--", "ip", "-o", "link", "show", "tun0"); !strings.Contains(out, "tun0") {
		t.Fatalf("no tun0: %q", out)
	}
	if got := must(t, "exec", id, "--", "cat", "/mnt/share/readme"); got != "shared\n" {
		t.Fatalf("bind mount: %q", got)
	}
	if r := vpsctl(t, "exec", id, "--", "touch", "/mnt/share/x"); r.code == 0 {
		t.Fatal("wrote into a read-only bind mount")
	}
}
