package template

import (
	"debug/elf"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/vpsctl/vpsctl/internal/timerslack"
	"github.com/vpsctl/vpsctl/store"
)

// DefaultBusybox is where Debian's busybox-static package installs its binary.
const DefaultBusybox = "/bin/busybox"

// busyboxFiles are the configuration files of the busybox template. The inittab gives a real
// init: rcS at boot, a getty on the console (reached with `vpsctl console`), a clean shutdown.
var busyboxFiles = map[string]string{
	"etc/inittab": `# vpsctl busybox template
::sysinit:/etc/init.d/rcS
console::respawn:/sbin/getty -L 0 console vt100
::ctrlaltdel:/sbin/reboot
::shutdown:/bin/sync
::restart:/sbin/init
`,
	// Shell builtins only: every command rcS runs is an exec of busybox, whose glibc start-up
	// costs 0.5-1 ms of CPU here, while the host is still busy with the start (/var/run is
	// in the template; the test is for templates built before it was).
	"etc/init.d/rcS": `#!/bin/sh
# Runs once at boot. vpsctl has mounted /proc, /sys, /dev and /run and set the hostname.
[ -d /var/run ] || ln -s /run /var/run
read -r h </proc/sys/kernel/hostname
echo "busybox VPS $h booted"
`,
	"etc/passwd":      "root::0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
	"etc/group":       "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n",
	"etc/shadow":      "root::19000:0:99999:7:::\n",
	"etc/hostname":    "localhost\n",
	"etc/hosts":       "127.0.0.1 localhost\n::1 localhost\n",
	"etc/os-release":  "ID=busybox\nNAME=\"BusyBox\"\nPRETTY_NAME=\"BusyBox VPS (vpsctl)\"\n",
	"etc/profile":     "export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nexport PS1='\\u@\\h:\\w\\$ '\n",
	"etc/resolv.conf": "",
	"etc/shells":      "/bin/sh\n/bin/ash\n",
}

// BuildBusybox makes template name from a statically linked busybox binary: every applet as a
// symlink at its usual path, busybox's own init as /sbin/init, and a minimal /etc.
func BuildBusybox(st *store.Store, name, busybox string, replace bool, progress io.Writer) error {
	if busybox == "" {
		busybox = DefaultBusybox
	}
	if err := checkStatic(busybox); err != nil {
		return err
	}
	return build(st, name, "busybox "+busybox, replace, progress, func(rootfs string) error {
		fmt.Fprintf(progress, "building template %q from %s\n", name, busybox)
		for _, d := range []string{"bin", "sbin", "usr/bin", "usr/sbin", "etc/init.d", "proc", "sys", "dev", "run", "root", "var/log", "home", "mnt"} {
			if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
				return err
			}
		}
		if err := os.Mkdir(filepath.Join(rootfs, "tmp"), os.ModeSticky|0o777); err != nil {
			return err
		}
		os.Chmod(filepath.Join(rootfs, "tmp"), os.ModeSticky|0o777)
		os.Chmod(filepath.Join(rootfs, "root"), 0o700)
		if err := os.Symlink("../run", filepath.Join(rootfs, "var/run")); err != nil {
			return err
		}
		if err := copyFile(busybox, filepath.Join(rootfs, "bin/busybox"), 0o755); err != nil {
			return err
		}
		out, err := timerslack.WithHostOutput(exec.Command(busybox, "--list-full").Output)
		if err != nil {
			return fmt.Errorf("%w: %s --list-full: %v", ErrSource, busybox, err)
		}
		n := 0
		for _, app := range strings.Fields(string(out)) {
			if app == "bin/busybox" || strings.Contains(app, "..") {
				continue
			}
			rel, _ := filepath.Rel(filepath.Dir(app), "bin/busybox")
			dst := filepath.Join(rootfs, app)
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return err
			}
			if err := os.Symlink(rel, dst); err != nil && !os.IsExist(err) {
				return err
			}
			n++
		}
		for p, content := range busyboxFiles {
			perm := os.FileMode(0o644)
			switch {
			case strings.HasPrefix(p, "etc/init.d/"):
				perm = 0o755
			case p == "etc/shadow":
				perm = 0o600
			}
			if err := os.WriteFile(filepath.Join(rootfs, p), []byte(content), perm); err != nil {
				return err
			}
		}
		if _, err := os.Lstat(filepath.Join(rootfs, "sbin/init")); err != nil {
			return fmt.Errorf("%w: %s has no init applet", ErrSource, busybox)
		}
		fmt.Fprintf(progress, "installed %d applets, /sbin/init is busybox init\n", n)
		return nil
	})
}

// checkStatic refuses a dynamically linked busybox: it would need the host's libraries inside
// the VPS. Debian's busybox-static package provides the static one.
func checkStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("%w: %s: %v (install busybox-static)", ErrSource, path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%w: %s is dynamically linked (install busybox-static)", ErrSource, path)
		}
	}
	return nil
}

func copyFile(src, dst string, perm os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
