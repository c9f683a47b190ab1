package template

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/vpsctl/vpsctl/internal/timerslack"
	"github.com/vpsctl/vpsctl/store"
)

// DebianOptions tune a Debian template build.
type DebianOptions struct {
	Suite   string   // default bookworm (Debian 12)
	Variant string   // systemd (default) or sysvinit
	Include []string // extra packages
	Mirror  string   // default: the host's configured Debian mirror, else deb.debian.org
	Replace bool
}

// debianBase is what every VPS needs: its init, SSH, the ip tool, ping and ps. No ifupdown or
// network manager: vpsctl configures the VPS's network from the host before init runs.
var debianBase = map[string][]string{
	"systemd":  {"systemd", "systemd-sysv", "dbus", "openssh-server", "iproute2", "iputils-ping", "procps", "less", "ca-certificates"},
	"sysvinit": {"sysvinit-core", "openssh-server", "iproute2", "iputils-ping", "procps", "less", "ca-certificates"},
}

// BuildDebian builds a Debian root filesystem with debootstrap (installed if missing) and
// adapts it to run as a VPS.
func BuildDebian(st *store.Store, name string, o DebianOptions, progress io.Writer) error {
	if o.Suite == "" {
		o.Suite = "bookworm"
	}
	if o.Variant == "" {
		o.Variant = "systemd"
	}
	pkgs, ok := debianBase[o.Variant]
	if !ok {
		return fmt.Errorf("%w: variant %q (want systemd or sysvinit)", ErrSource, o.Variant)
	}
	for _, p := range o.Include {
		for _, q := range strings.Split(p, ",") {
			if q = strings.TrimSpace(q); q != "" {
				if strings.ContainsAny(q, " /;'\"$`") {
					return fmt.Errorf("%w: package name %q", ErrSource, q)
				}
				pkgs = append(pkgs, q)
			}
		}
	}
	if o.Mirror == "" {
		o.Mirror = hostMirror()
	}
	if _, err := exec.LookPath("debootstrap"); err != nil {
		fmt.Fprintln(progress, "installing debootstrap")
		cmd := exec.Command("apt-get", "install", "-y", "-q", "debootstrap")
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := timerslack.WithHostOutput(cmd.CombinedOutput); err != nil {
			return fmt.Errorf("install debootstrap: %v: %s", err, lastLines(string(out), 3))
		}
	}
	src := fmt.Sprintf("debootstrap %s %s %s (%s)", o.Suite, o.Variant, o.Mirror, strings.Join(pkgs, ","))
	return build(st, name, src, o.Replace, progress, func(rootfs string) error {
		fmt.Fprintf(progress, "debootstrap %s (%s) from %s: this takes a minute or two\n", o.Suite, o.Variant, o.Mirror)
		// In a private mount namespace: the /proc and /sys debootstrap mounts in the target
		// vanish with it, even if it is killed half-way.
		cmd := exec.Command("unshare", "--mount", "--propagation", "private",
			"debootstrap", "--variant=minbase", "--include="+strings.Join(pkgs, ","), o.Suite, rootfs, o.Mirror)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if err := runProgress(cmd, progress); err != nil {
			return fmt.Errorf("%w: debootstrap: %v", ErrSource, err)
		}
		fmt.Fprintln(progress, "adapting it to run as a VPS")
		return adaptDebian(rootfs, o.Variant)
	})
}

// Stepper is a progress writer that shows passing steps its own way, each replacing the one
// before (the CLI's progress bar on a terminal). A writer that is not one gets every step as a
// plain line: a pipe or a log gets no carriage returns or terminal escapes.
type Stepper interface {
	io.Writer
	Step(msg string)
}

// runProgress runs cmd, showing its "I: ..." lines as progress and keeping the rest for errors.
func runProgress(cmd *exec.Cmd, progress io.Writer) error {
	stepper, _ := progress.(Stepper)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := timerslack.WithHost(cmd.Start); err != nil {
		return err
	}
	var tail []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			l := sc.Text()
			if strings.HasPrefix(l, "I: Retrieving") || strings.HasPrefix(l, "I: Validating") || strings.HasPrefix(l, "I: Extracting") ||
				strings.HasPrefix(l, "I: Unpacking") || strings.HasPrefix(l, "I: Configuring") {
				if stepper != nil {
					stepper.Step(l)
					continue
				}
			}
			fmt.Fprintf(progress, "  %s\n", l)
			tail = append(tail, l)
			if len(tail) > 20 {
				tail = tail[1:]
			}
		}
	}()
	err := cmd.Wait()
	pw.Close()
	<-done
	if err != nil {
		return fmt.Errorf("%v: %s", err, strings.Join(tail, "; "))
	}
	return nil
}

// checkpointDropIn is the systemd drop-in that every service of a systemd template gets
// (/etc/systemd/system/service.d/, so units installed later get it too; named to sort after a
// unit's own drop-ins, which it overrides). CRIU dumps one UTS, IPC and user namespace for a
// whole VPS and cannot dump one nested in it, and these sandboxing settings would give a
// service such a namespace of its own (Debian 12: systemd-logind, -hostnamed, -localed,
// -timedated, -networkd). The service stays in the VPS's own namespaces, which isolate it
// from the host and the other VPSs as they isolate every other process of the VPS; it only
// loses a sandbox inside the VPS. Mount and network namespaces (PrivateTmp=, ProtectSystem=,
// PrivateNetwork=, ...) nest in a dump and stay as the units ask.
const checkpointDropIn = `# vpsctl: keep services checkpointable (vpsctl checkpoint, backup --with-memory, migrate).
# CRIU cannot dump a UTS, IPC or user namespace nested in the VPS's own, which these settings
# would give a service; the VPS's own namespaces still isolate it from the host.
[Service]
ProtectHostname=no
PrivateIPC=no
PrivateUsers=no
`

// checkpointDropInPath is where a systemd template has checkpointDropIn.
const checkpointDropInPath = "etc/systemd/system/service.d/zz-vpsctl-checkpoint.conf"

// adaptDebian makes a debootstrap tree a VPS template: no shared SSH host keys (each VPS makes
// its own at first boot), a console getty, inits that power off on vpsctl's signal, no units
// that need hardware, and services that stay checkpointable (checkpointDropIn).
func adaptDebian(r, variant string) error {
	write := func(p, content string, perm os.FileMode) error {
		p = filepath.Join(r, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		return os.WriteFile(p, []byte(content), perm)
	}
	keys, _ := filepath.Glob(filepath.Join(r, "etc/ssh/ssh_host_*"))
	for _, k := range keys {
		os.Remove(k)
	}
	files := map[string]string{
		"etc/hostname":    "localhost\n",
		"etc/hosts":       "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n",
		"etc/resolv.conf": "",
		"etc/fstab":       "# the VPS's mounts are made by vpsctl\n",
	}
	for p, c := range files {
		if err := write(p, c, 0o644); err != nil {
			return err
		}
	}
	switch variant {
	case "systemd":
		unit := `[Unit]
Description=Generate this VPS's own SSH host keys
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key
Before=ssh.service

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target
`
		if err := write("etc/systemd/system/vpsctl-ssh-keygen.service", unit, 0o644); err != nil {
			return err
		}
		if err := write(checkpointDropInPath, checkpointDropIn, 0o644); err != nil {
			return err
		}
		if err := os.Symlink("/etc/systemd/system/vpsctl-ssh-keygen.service",
			filepath.Join(r, "etc/systemd/system/multi-user.target.wants/vpsctl-ssh-keygen.service")); err != nil && !os.IsExist(err) {
			return err
		}
		// Units that need hardware or a host kernel's facilities a VPS does not have.
		for _, u := range []string{"systemd-udevd.service", "systemd-udev-trigger.service", "systemd-modules-load.service",
			"sys-kernel-config.mount", "sys-kernel-debug.mount", "sys-kernel-tracing.mount", "systemd-remount-fs.service",
			"getty@tty1.service", "systemd-timesyncd.service"} {
			os.Symlink("/dev/null", filepath.Join(r, "etc/systemd/system", u))
		}
	case "sysvinit":
		inittab := `# vpsctl sysvinit inittab
id:2:initdefault:
si::sysinit:/etc/init.d/rcS
l0:0:wait:/etc/init.d/rc 0
l1:1:wait:/etc/init.d/rc 1
l2:2:wait:/etc/init.d/rc 2
l3:3:wait:/etc/init.d/rc 3
l4:4:wait:/etc/init.d/rc 4
l5:5:wait:/etc/init.d/rc 5
l6:6:wait:/etc/init.d/rc 6
z6:6:respawn:/sbin/sulogin --force
ca:12345:ctrlaltdel:/sbin/shutdown -t1 -a -r now
# vpsctl stop sends SIGPWR: power off
pf::powerwait:/sbin/shutdown -h -P now
pn::powerfailnow:/sbin/shutdown -h -P now
co:2345:respawn:/sbin/getty --noclear 38400 console
`
		if err := write("etc/inittab", inittab, 0o644); err != nil {
			return err
		}
		// Debian's /etc/init.d/ssh sources /etc/default/ssh before starting sshd: make the
		// VPS's own host keys there, on its first boot.
		f, err := os.OpenFile(filepath.Join(r, "etc/default/ssh"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return err
		}
		_, err = f.WriteString("\n# vpsctl: this VPS's own SSH host keys, made at first boot\n[ -e /etc/ssh/ssh_host_ed25519_key ] || ssh-keygen -A >/dev/null 2>&1\n")
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// hostMirror returns the Debian mirror the host's apt uses, so builds work where only that
// mirror is reachable.
func hostMirror() string {
	files, _ := filepath.Glob("/etc/apt/sources.list.d/*")
	files = append([]string{"/etc/apt/sources.list"}, files...)
	for _, f := range files {
		if b, err := os.ReadFile(f); err == nil {
			if u := mirrorIn(string(b)); u != "" {
				return u
			}
		}
	}
	return "http://deb.debian.org/debian"
}

// mirrorIn finds a Debian archive URL (ending in /debian) in apt sources text, one-line
// ("deb [opts] URL suite ...") or deb822 ("URIs: URL") style.
func mirrorIn(text string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "#") {
			continue
		}
		fs := strings.Fields(l)
		for i, w := range fs {
			if (w != "URIs:" && w != "deb") || i+1 >= len(fs) {
				continue
			}
			for _, u := range fs[i+1:] {
				if strings.HasPrefix(u, "[") || strings.HasSuffix(u, "]") && !strings.HasPrefix(u, "http") {
					continue
				}
				if strings.HasPrefix(u, "http") && strings.HasSuffix(strings.TrimSuffix(u, "/"), "/debian") {
					return u
				}
				break
			}
		}
	}
	return ""
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "; ")
}
