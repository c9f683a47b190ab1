package tests

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestEscapeBattery plays a hostile tenant: as root of one VPS it tries the classic ways out of a
// container, one row each, and every row asserts that the attempt FAILS. Each row names what
// blocks it (docs/SECURITY.md explains the defaults). A row whose attempt succeeds is an
// isolation bug: it fails the test and is marked NOT BLOCKED in the summary table.
func TestEscapeBattery(t *testing.T) {
	const id = "141"
	checkClean(t, id)
	e := newEscEnv(t, id)
	must(t, "create", id, "--template", "busybox", "--hostname", "esc141")
	must(t, "start", id)

	// Host-side objects some rows attack, made before the rows run.
	canary := filepath.Join(t.TempDir(), fmt.Sprintf("vpsctl-test-escape-canary-%d", e.testPID))
	canaryUser := fmt.Sprintf("hostcanary%d", e.testPID)
	if err := os.WriteFile(canary, []byte(canaryUser+":x:4242:4242:HOST SECRET:/:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.vars["CANARY"] = canary
	e.watch(canary)

	var hostSleep *exec.Cmd // a host process for the VPS to signal
	var extraFiles []*os.File
	hostCwd := t.TempDir()
	const cwdMarker = "vpsctl-test-escape-host-cwd-marker"
	if err := os.WriteFile(filepath.Join(hostCwd, cwdMarker), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var cgroupCanary string

	rows := []escRow{
		{
			name: "see host processes in /proc and ps",
			snippet: `for p in /proc/[0-9]*; do printf 'proc %s: ' "${p#/proc/}"; tr '\0' ' ' < $p/cmdline 2>/dev/null; echo; done
echo '--- ps'; ps -o pid,comm
echo '--- test pid'; [ -e /proc/%TESTPID% ] && { printf 'testpid_cmdline='; tr '\0' ' ' < /proc/%TESTPID%/cmdline; echo; }
exit 0`,
			blocked: func(t *testing.T, e *escEnv, r result) error {
				var errs []error
				for _, s := range []string{e.testExe, filepath.Base(e.testExe), "vpsctl-monitor", "vpsctl-nsenter", bin} {
					if strings.Contains(r.out, s) {
						errs = append(errs, fmt.Errorf("host process %q visible inside", s))
					}
				}
				// Every command ps shows must be one the VPS itself runs.
				_, psOut, _ := strings.Cut(r.out, "--- ps\n")
				psOut, _, _ = strings.Cut(psOut, "--- test pid")
				vpsComms := []string{"init", "rcS", "getty", "sh", "ps", "tr", "COMMAND"}
				for _, l := range strings.Split(strings.TrimSpace(psOut), "\n") {
					f := strings.Fields(l)
					if len(f) >= 2 && !slices.Contains(vpsComms, f[1]) {
						errs = append(errs, fmt.Errorf("ps inside shows a process that is not the VPS's: %q", l))
					}
				}
				if !strings.Contains(r.out, "proc 1: init") {
					errs = append(errs, errors.New("PID 1 inside is not the VPS's init"))
				}
				return errors.Join(errs...)
			},
			blockedBy: "PID namespace: the VPS's /proc is a procfs instance of its own PID namespace, where host PIDs have no entry",
		},
		{
			name: "signal a host process by its host PID",
			snippet: `kill -9 %SLEEPPID% 2>&1; echo kill_host_sleep=$?
if kill -0 %TESTPID% 2>/dev/null; then printf 'testpid_signalable cmdline='; tr '\0' ' ' < /proc/%TESTPID%/cmdline; echo; fi
exit 0`,
			attempt: func(t *testing.T, e *escEnv, snippet string) result {
				hostSleep = exec.Command("sleep", "60")
				if err := hostSleep.Start(); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() {
					hostSleep.Process.Kill()
					hostSleep.Wait()
				})
				e.vars["SLEEPPID"] = strconv.Itoa(hostSleep.Process.Pid)
				return e.exec(t, escOpts{}, "sh", "-c", e.expand(snippet))
			},
			blocked: func(t *testing.T, e *escEnv, r result) error {
				var errs []error
				var ws syscall.WaitStatus
				// The host sleep is our child: WNOHANG reaps it only if the VPS killed it.
				if pid, err := syscall.Wait4(hostSleep.Process.Pid, &ws, syscall.WNOHANG, nil); err != nil || pid != 0 {
					errs = append(errs, fmt.Errorf("host process %d was killed from inside (wait4: %d, %v, %v)", hostSleep.Process.Pid, pid, ws, err))
				}
				// A VPS process may have the same number as the test's host PID; the host
				// process itself must not be the one reached.
				if _, cl, ok := strings.Cut(r.out, "testpid_signalable cmdline="); ok && strings.Contains(cl, filepath.Base(e.testExe)) {
					errs = append(errs, fmt.Errorf("the test process (host PID %d) is signalable from inside", e.testPID))
				}
				return errors.Join(errs...)
			},
			blockedBy: "PID namespace: kill(2) resolves PIDs in the VPS's own namespace, where host processes have no number",
		},
		{
			name: "change the host's hostname",
			snippet: `hostname esc-evil-%TESTPID%; echo sethostname=$?; hostname
echo esc-evil > /proc/sys/kernel/hostname; echo procsys_hostname=$?
exit 0`,
			blocked: func(t *testing.T, e *escEnv, r result) error {
				h, err := os.Hostname()
				if err != nil {
					return err
				}
				if h != e.hostName {
					return fmt.Errorf("host hostname changed from %q to %q", e.hostName, h)
				}
				return nil
			},
			blockedBy: "UTS namespace: sethostname() inside changes only the VPS's own UTS namespace (the host's name is untouched)",
		},
		{
			name: "mount a host block device",
			snippet: `ls -l /dev/%BLK% 2>&1; echo dev_node_exists=$?
mkdir -p /tmp/esc-mnt
mount /dev/%BLK% /tmp/esc-mnt; echo mount_dev=$?
mknod /tmp/esc-blk b %BLKMAJ% %BLKMIN%; echo mknod_blk=$?
mount /tmp/esc-blk /tmp/esc-mnt; echo mount_node=$?
mount -t ext4 /tmp/esc-blk /tmp/esc-mnt; echo mount_node_ext4=$?
grep -q ' /tmp/esc-mnt ' /proc/self/mountinfo && echo MOUNTED
umount /tmp/esc-mnt 2>/dev/null; rm -f /tmp/esc-blk
exit 0`,
			blocked: func(t *testing.T, e *escEnv, r result) error {
				err := escFailed(r, "dev_node_exists", "mount_dev", "mount_node", "mount_node_ext4")
				if strings.Contains(r.out, "MOUNTED") {
					err = errors.Join(err, errors.New("a block device is mounted inside"))
				}
				return err
			},
			blockedBy: "no host block device in the VPS's /dev (a tmpfs with six bind-mounted character devices); mknod needs CAP_MKNOD in the initial user namespace; block filesystems mount only with CAP_SYS_ADMIN in the initial user namespace",
		},
		{
			name: "create a device node",
			snippet: `mknod /tmp/esc-null c 1 3; echo mknod=$?
[ -e /tmp/esc-null ]; echo node_exists=$?
rm -f /tmp/esc-null; exit 0`,
			blocked: func(t *testing.T, e *escEnv, r result) error {
				return escFailed(r, "mknod", "node_exists")
			},
			blockedBy: "user namespace: mknod(2) of a device needs CAP_MKNOD in the initial user namespace (VPS root has it only in its own); mounts made in a user namespace are nodev anyway",
		},
		{
			name: "load a kernel module",
			snippet: `grep -E '^Cap(Bnd|Eff):' /proc/self/status
printf '\177ELF-not-a-module' > /tmp/esc.ko; insmod /tmp/esc.ko; echo insmod=$?
modprobe dummy; echo modprobe=$?
rm -f /tmp/esc.ko; exit 0`,
			blocked: func(t *testing.T, e *escEnv, r result) error {
				err := escFailed(r, "insmod", "modprobe")
				for _, k := range []string{"CapBnd", "CapEff"} {
					v, ok := escValue(r.out, k+":")
					mask, perr := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
					if !ok || perr != nil {
						err = errors.Join(err, fmt.Errorf("no %s in /proc/self/status", k))
					} else if mask&(1<<unix.CAP_SYS_MODULE) != 0 {
						err = errors.Join(err, fmt.Errorf("%s %016x has CAP_SYS_MODULE (bit 16)", k, mask))
					}
				}
				return err
			},
			blockedBy: "CAP_SYS_MODULE dropped from the bounding set (and init_module() checks it in the initial user namespace)" + escAbsent("/proc/modules"),
		},
		{
			name: "write kernel sysctls in /proc/sys/kernel",
			// An attacker first tries to undo the read-only bind mount.
			snippet: `mount -o remount,rw,bind /proc/sys 2>&1; echo remount_rw=$?
echo 1 > /proc/sys/kernel/sysrq; echo sysrq=$?
echo '|/tmp/esc-pwn %p' > /proc/sys/kernel/core_pattern; echo core_pattern=$?
umount /proc/sys 2>&1; echo umount_ro_bind=$?
echo '|/tmp/esc-pwn %p' > /proc/sys/kernel/core_pattern; echo core_pattern_unmasked=$?
exit 0`,
			blocked: func(t *testing.T, e *escEnv, r result) error {
				return errors.Join(escFailed(r, "sysrq", "core_pattern", "core_pattern_unmasked"),
					e.unchanged("/proc/sys/kernel/core_pattern", "/proc/sys/kernel/sysrq"))
			},
			blockedBy: "user namespace: host-wide sysctl files belong to host root, unmapped in the VPS, so VPS root gets only 'other' (read) access; /proc/sys is also bind-mounted read-only, but that mount is VPS root's to undo" + escAbsent("/proc/sys/kernel/sysrq"),
		},
		{
			name:    "write /proc/sysrq-trigger",
			snippet: `echo h > /proc/sysrq-trigger; echo sysrq_trigger=$?; exit 0`,
			blocked: func(t *testing.T, e *escEnv, r result) error {
				return escFailed(r, "sysrq_trigger")
			},
			blockedBy: "read-only bind mount" + escAbsent("/proc/sysrq-trigger") + "; it is writable only by host root (owner unmapped in the VPS)",
		},
		{
			name: "read /proc/kcore",
			snippet: `umount /proc/kcore 2>/dev/null; echo umount_mask=$?
echo kcore_bytes=$(head -c 4096 /proc/kcore 2>/dev/null | wc -c); exit 0`,
			blocked: func(t *testing.T, e *escEnv, r result) error {
				if v, _ := escValue(r.out, "kcore_bytes="); strings.TrimSpace(v) != "0" {
					return fmt.Errorf("read %s bytes of /proc/kcore", v)
				}
				return nil
			},
			blockedBy: "masked (/dev/null bound over it)" + escAbsent("/proc/kcore") + "; behind the mask it is mode 0400 host root and needs CAP_SYS_RAWIO in the initial user namespace",
		},
		{
			name: "read /proc/keys",
			snippet: `grep -q ' /proc/keys ' /proc/self/mountinfo && echo KEYS_MASKED
stat -c 'keys_dev=%t:%T' /proc/keys
echo keys_bytes=$(cat /proc/keys 2>/dev/null | wc -c)
umount /proc/keys 2>/dev/null; echo umount_mask=$?
echo keys_bytes_unmasked=$(cat /proc/keys 2>/dev/null | wc -c); exit 0`,
			blocked: func(t *testing.T, e *escEnv, r result) error {
				var err error
				if !strings.Contains(r.out, "KEYS_MASKED") {
					err = errors.New("/proc/keys is not masked")
				}
				if v, _ := escValue(r.out, "keys_bytes="); strings.TrimSpace(v) != "0" {
					err = errors.Join(err, fmt.Errorf("/proc/keys shows %s bytes", v))
				}
				if v, _ := escValue(r.out, "keys_bytes_unmasked="); strings.TrimSpace(v) != "0" {
					err = errors.Join(err, fmt.Errorf("/proc/keys shows %s bytes after unmounting the mask", v))
				}
				return err
			},
			blockedBy: "masked (/dev/null bound over it); behind the mask /proc/keys lists only keys the VPS's own user namespace may view",
		},
		{
			name: "write /sys",
			snippet: `mount -o remount,rw /sys 2>&1; echo remount_rw=$?
touch /sys/kernel/x; echo touch=$?
echo /tmp/esc-pwn > /sys/kernel/uevent_helper; echo uevent_helper=$?
exit 0`,
			blocked: func(t *testing.T, e *escEnv, r result) error {
				return errors.Join(escFailed(r, "remount_rw", "touch", "uevent_helper"), e.unchanged("/sys/kernel/uevent_helper"))
			},
			blockedBy: "sysfs mounted read-only (nosuid,nodev,noexec), a new instance for the VPS's own network namespace; remounting it rw needs privilege over the superblock's user namespace; global sysfs files belong to unmapped host root",
		},
		{
			name: "write the host's cgroups (limits, release_agent, other groups)",
			// The VPS has a cgroup view of its own at /sys/fs/cgroup (its groups, delegated to
			// its root: it may make and fill subgroups). The attempt is to reach beyond it.
			snippet: `grep ' /sys/fs/cgroup' /proc/self/mountinfo
echo 4096 > /sys/fs/cgroup/memory/memory.limit_in_bytes; echo memory_limit=$?
echo 1 > /sys/fs/cgroup/pids/pids.max; echo pids_max=$?
echo 1 > /sys/fs/cgroup/memory/notify_on_release; echo notify_on_release=$?
ls /sys/fs/cgroup/*/release_agent 2>/dev/null | grep -q . ; echo release_agent_visible=$?
mkdir -p /tmp/esc-cg1
if mount -t cgroup -o memory cgroup /tmp/esc-cg1; then
  ls /tmp/esc-cg1/release_agent >/dev/null 2>&1; echo release_agent_visible_new_mount=$?
  echo /tmp/esc-pwn > /tmp/esc-cg1/release_agent; echo release_agent=$?
  echo 4096 > /tmp/esc-cg1/memory.limit_in_bytes; echo memory_limit_new_mount=$?
  umount /tmp/esc-cg1
fi
cat /proc/self/cgroup
exit 0`,
			attempt: func(t *testing.T, e *escEnv, snippet string) result {
				e.watch(e.hostCgroupFiles()...)
				return e.exec(t, escOpts{}, "sh", "-c", e.expand(snippet))
			},
			blocked: func(t *testing.T, e *escEnv, r result) error {
				err := escFailed(r, "memory_limit", "pids_max", "notify_on_release", "release_agent_visible",
					"release_agent_visible_new_mount", "release_agent", "memory_limit_new_mount")
				// Every VPS process stays in the VPS's own groups on the host.
				pid := status(t, e.id).InitPID
				cg, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
				for _, l := range strings.Split(strings.TrimSpace(string(cg)), "\n") {
					if f := strings.SplitN(l, ":", 3); len(f) == 3 && f[1] != "" && !strings.Contains(f[2], "/vpsctl/"+e.id) {
						err = errors.Join(err, fmt.Errorf("the VPS's init is outside its group on the host: %s", l))
					}
				}
				return errors.Join(err, e.unchanged(e.hostCgroupFiles()...))
			},
			blockedBy: "cgroup namespace: every cgroup mount inside is rooted at the VPS's own group (there is no parent to move to); the host chowns only cgroup.procs, tasks, cgroup.clone_children, cgroup.subtree_control, cgroup.threads and the directories to VPS root, so limit files stay host root's (unmapped: EACCES); release_agent exists only at a hierarchy's root and needs CAP_SYS_ADMIN in the initial user namespace (CVE-2022-0492)",
		},
		{
			name: "widen the device allowlist (devices cgroup)",
			snippet: `echo 'a *:* rwm' > /sys/fs/cgroup/devices/devices.allow; echo devices_allow=$?
echo 'b *:* rwm' > /sys/fs/cgroup/devices/devices.allow; echo devices_allow_block=$?
mkdir -p /sys/fs/cgroup/devices/esc && { echo 'a *:* rwm' > /sys/fs/cgroup/devices/esc/devices.allow; echo devices_allow_subgroup=$?; rmdir /sys/fs/cgroup/devices/esc; }
exit 0`,
			attempt: func(t *testing.T, e *escEnv, snippet string) result {
				if _, err := os.Stat("/sys/fs/cgroup/devices"); err != nil {
					t.Skip("no cgroup v1 devices hierarchy (on cgroup v2 the allowlist is an eBPF program)")
				}
				e.watch(e.devicesList())
				return e.exec(t, escOpts{}, "sh", "-c", e.expand(snippet))
			},
			blocked: func(t *testing.T, e *escEnv, r result) error {
				err := escFailed(r, "devices_allow", "devices_allow_block", "devices_allow_subgroup")
				list, rerr := os.ReadFile(e.devicesList())
				switch {
				case rerr != nil:
					err = errors.Join(err, fmt.Errorf("no devices cgroup for the VPS: %w", rerr))
				case strings.Contains(string(list), "a *:*") || strings.Contains(string(list), "\nb ") || strings.HasPrefix(string(list), "b "):
					err = errors.Join(err, fmt.Errorf("the VPS's device allowlist allows more than its /dev:\n%s", list))
				}
				return errors.Join(err, e.unchanged(e.devicesList()))
			},
			blockedBy: "devices cgroup allowlist (null zero full random urandom tty console ptmx pts) set by the host; devices.allow belongs to unmapped host root and writing it needs CAP_SYS_ADMIN in the initial user namespace, in subgroups too",
		},
		{
			name: "see the host's cgroup tree (cgroup2 mount inside)",
			snippet: `mkdir -p /tmp/esc-cg2
mount -t cgroup2 none /tmp/esc-cg2 2>&1 || { echo cgroup2_mount_failed; exit 0; }
ls -A /tmp/esc-cg2; echo $$ > /tmp/esc-cg2/%CGCANARY%/cgroup.procs; echo join_host_group=$?
umount /tmp/esc-cg2; exit 0`,
			attempt: func(t *testing.T, e *escEnv, snippet string) result {
				mp := escCgroup2Mount()
				if mp == "" {
					t.Skip("the host has no cgroup2 hierarchy mounted")
				}
				cgroupCanary = filepath.Join(mp, fmt.Sprintf("vpsctl-test-escape-%d", e.testPID))
				if err := os.Mkdir(cgroupCanary, 0o755); err != nil {
					t.Fatalf("host canary cgroup: %v", err)
				}
				t.Cleanup(func() { os.Remove(cgroupCanary) })
				e.vars["CGCANARY"] = filepath.Base(cgroupCanary)
				return e.exec(t, escOpts{}, "sh", "-c", e.expand(snippet))
			},
			blocked: func(t *testing.T, e *escEnv, r result) error {
				err := escFailed(r, "join_host_group")
				if strings.Contains(r.out, filepath.Base(cgroupCanary)+"\n") {
					err = errors.Join(err, fmt.Errorf("a host cgroup (%s) is visible in a cgroup2 mount made inside: the VPS's cgroup namespace is rooted at the host's cgroup2 root", cgroupCanary))
				}
				return err
			},
			blockedBy: "cgroup namespace rooted at the VPS's own group in every hierarchy; files of other groups belong to unmapped host root",
		},
		{
			name: "read the host's kernel log",
			snippet: `dmesg >/dev/null 2>&1; echo dmesg=$?
dd if=/proc/kmsg of=/dev/null count=0 2>/dev/null; echo kmsg=$?
exit 0`,
			blocked: func(t *testing.T, e *escEnv, r result) error {
				return escFailed(r, "dmesg", "kmsg")
			},
			blockedBy: "CAP_SYSLOG dropped from the bounding set (syslog(2) checks it in the initial user namespace); /proc/kmsg is 0400 host root; host kernel.dmesg_restrict=" + escSysctl("kernel/dmesg_restrict"),
		},
		{
			name: "write the host binary through /proc/PID/exe of an exec'd command",
			snippet: `for p in $(pidof sleep); do printf 'sleep %s exe=' $p; readlink /proc/$p/exe; ( : >> /proc/$p/exe ) 2>&1 && echo OPENED_FOR_WRITE=$p; done
for p in /proc/[0-9]*; do
  x=$(readlink $p/exe 2>/dev/null) || continue
  case "$x" in /bin/busybox) ;; *) echo "FOREIGN_EXE ${p#/proc/} $x"; ( : >> $p/exe ) 2>&1 && echo OPENED_FOR_WRITE=${p#/proc/};; esac
done
exit 0`,
			attempt: func(t *testing.T, e *escEnv, snippet string) result {
				bg := exec.Command(bin, "--root", root, "exec", e.id, "--", "sleep", "30")
				if err := bg.Start(); err != nil {
					t.Fatal(err)
				}
				// Killing vpsctl kills the joiner (Pdeathsig) and so the sleep.
				t.Cleanup(func() {
					bg.Process.Kill()
					bg.Wait()
				})
				waitFor(t, 20*time.Second, "the exec'd sleep inside the VPS", func() bool {
					return vpsctl(t, "exec", e.id, "--", "pidof", "sleep").code == 0
				})
				return e.exec(t, escOpts{}, "sh", "-c", e.expand(snippet))
			},
			blocked: func(t *testing.T, e *escEnv, r result) error {
				var err error
				if strings.Contains(r.out, "OPENED_FOR_WRITE") {
					err = fmt.Errorf("opened a process's executable for writing")
				}
				if strings.Contains(r.out, "FOREIGN_EXE") {
					err = errors.Join(err, errors.New("a process inside runs a binary from outside the VPS"))
				}
				if !strings.Contains(r.out, "sleep ") {
					err = errors.Join(err, errors.New("the exec'd sleep was not found inside"))
				}
				return errors.Join(err, e.unchanged(bin))
			},
			blockedBy: "the command is exec'd after joining, so its /proc/PID/exe is the VPS's own binary (busy: ETXTBSY); the joiner stays outside the VPS's PID namespace and is non-dumpable until exec (CVE-2019-5736)",
		},
		{
			name: "CVE-2019-5736: make exec run the host binary via /proc/self/exe and overwrite it",
			// The tenant replaces the vpsctl binary's ELF interpreter (a path inside the VPS) with
			// its own program and points a command at /proc/self/exe: when the admin execs it,
			// the joiner's child execs the host's vpsctl with the tenant's interpreter, which
			// then runs with /proc/self/exe naming the host binary.
			snippet: `mkdir -p "$(dirname %INTERP%)" && cat > %INTERP% && chmod 755 %INTERP% && ln -sf /proc/self/exe /tmp/esc-evilsh && echo planted`,
			attempt: func(t *testing.T, e *escEnv, snippet string) result {
				if goruntime.GOARCH != "amd64" {
					t.Skip("the interpreter payload is x86-64 assembly")
				}
				interp := escInterp(t, bin)
				if interp == "" {
					t.Skip("vpsctl is statically linked: no ELF interpreter for a tenant to replace")
				}
				payload := escCompile(t, "interp", escInterpPayload, "-nostdlib", "-static-pie", "-fPIE", "-O2", "-fno-builtin",
					"-fno-tree-loop-distribute-patterns", "-fno-stack-protector", "-fcf-protection=none")
				e.vars["INTERP"] = interp
				f, err := os.Open(payload)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				if r := e.exec(t, escOpts{stdin: f}, "sh", "-c", e.expand(snippet)); !strings.Contains(r.out, "planted") {
					t.Fatalf("planting the payload: %+v", r)
				}
				t.Cleanup(func() { vpsctl(t, "exec", e.id, "--", "rm", "-f", interp, "/tmp/esc-evilsh") })
				return e.exec(t, escOpts{}, "/tmp/esc-evilsh")
			},
			blocked: func(t *testing.T, e *escEnv, r result) error {
				var err error
				if exe, ok := escValue(r.out, "exe="); ok && exe == bin {
					t.Logf("known gap (no memfd copy of the binary): tenant code ran inside with /proc/self/exe = the host's %s", exe)
				}
				for _, k := range []string{"open_wronly=OK", "reopen_wronly=OK"} {
					if strings.Contains(r.out, k) {
						err = errors.Join(err, fmt.Errorf("host binary writable from inside: %s", k))
					}
				}
				return errors.Join(err, e.unchanged(bin))
			},
			blockedBy: "user namespace: the binary belongs to host root, unmapped in the VPS, so VPS root gets only 'other' r-x and its CAP_DAC_OVERRIDE does not apply (EACCES); ETXTBSY while monitors run it. Not blocked: the host binary can be made to run inside (no memfd copy yet)",
		},
		{
			name: "find a host fd leaked into exec (/proc/self/fd)",
			snippet: `ls -l /proc/self/fd
for n in 3 4 5 6 7 8 9; do [ -e /proc/self/fd/$n ] && echo "open_fd $n $(readlink /proc/self/fd/$n)"; done
exit 0`,
			attempt: func(t *testing.T, e *escEnv, snippet string) result {
				// Inherited without close-on-exec by vpsctl as fds 3..6: the root directory is
				// what CVE-2024-21626 leaked (a directory fd is a way out of any chroot).
				for _, p := range []string{"/", workDir, canary, bin} {
					f, err := os.Open(p)
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { f.Close() })
					extraFiles = append(extraFiles, f)
				}
				return e.exec(t, escOpts{extra: extraFiles}, "sh", "-c", e.expand(snippet))
			},
			blocked: func(t *testing.T, e *escEnv, r result) error {
				var err error
				sc := bufio.NewScanner(strings.NewReader(r.out))
				for sc.Scan() {
					l := sc.Text()
					if strings.HasPrefix(l, "open_fd ") {
						err = errors.Join(err, fmt.Errorf("leaked fd inside: %s", l))
						continue
					}
					name, target, ok := strings.Cut(l, " -> ")
					if !ok {
						continue
					}
					f := strings.Fields(name)
					fd := f[len(f)-1]
					// 0-2 are stdio; ls's own directory fd points at /proc/N/fd.
					if fd != "0" && fd != "1" && fd != "2" && !(strings.HasPrefix(target, "/proc/") && strings.HasSuffix(target, "/fd")) {
						err = errors.Join(err, fmt.Errorf("unexpected fd inside: %s", l))
					}
				}
				for _, p := range []string{workDir, canary, bin} {
					if strings.Contains(r.out, p) {
						err = errors.Join(err, fmt.Errorf("host path %s visible through an fd", p))
					}
				}
				return err
			},
			blockedBy: "close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) in the joiner's child before exec, so only stdio reaches the command (CVE-2024-21626)",
		},
		{
			name:    "keep a host working directory into exec",
			snippet: `echo cwd=$(readlink /proc/self/cwd); ls -a /proc/self/cwd/; ls -a ../../..; exit 0`,
			attempt: func(t *testing.T, e *escEnv, snippet string) result {
				return e.exec(t, escOpts{dir: hostCwd}, "sh", "-c", e.expand(snippet))
			},
			blocked: func(t *testing.T, e *escEnv, r result) error {
				var err error
				if strings.Contains(r.out, cwdMarker) {
					err = errors.New("the host's working directory is reachable inside")
				}
				if v, _ := escValue(r.out, "cwd="); v != "/" {
					err = errors.Join(err, fmt.Errorf("cwd inside is %q, want /", v))
				}
				return err
			},
			blockedBy: "setns(CLONE_NEWNS) resets root and cwd to the VPS's; the joiner's child chdir()s to -w (default /) inside (CVE-2024-21626)",
		},
		{
			name: "read host files through tenant symlinks followed by vpsctl uid",
			snippet: `[ -e /etc/passwd.esc ] || cp /etc/passwd /etc/passwd.esc; [ -e /etc/group.esc ] || cp /etc/group /etc/group.esc
ln -sf %PASSWD% /etc/passwd && ln -sf %GROUP% /etc/group && echo planted`,
			attempt: func(t *testing.T, e *escEnv, snippet string) result {
				var all result
				for _, links := range [][2]string{{"/etc/shadow", canary}, {canary, "/etc/shadow"}} {
					e.vars["PASSWD"], e.vars["GROUP"] = links[0], links[1]
					if r := e.exec(t, escOpts{}, "sh", "-c", e.expand(snippet)); !strings.Contains(r.out, "planted") {
						t.Fatalf("planting symlinks: %+v", r)
					}
					for _, args := range [][]string{{}, {"--groups"}, {"--format", "json"}, {"--groups", "--format", "json"}} {
						r := vpsctl(t, append([]string{"uid", e.id}, args...)...)
						all.out += fmt.Sprintf("== uid %v (passwd -> %s, group -> %s): exit %d\n%s%s", args, links[0], links[1], r.code, r.out, r.err)
						if slices.Contains(args, "json") && r.code == 0 {
							var rows []escUIDRow
							if err := json.Unmarshal([]byte(r.out), &rows); err != nil {
								t.Fatalf("uid json: %v: %s", err, r.out)
							}
							for _, u := range rows {
								all.out += fmt.Sprintf("ROW %s %d\n", u.User, u.VPSUID)
							}
						}
					}
				}
				vpsctl(t, "exec", e.id, "--", "sh", "-c", "mv -f /etc/passwd.esc /etc/passwd; mv -f /etc/group.esc /etc/group")
				return all
			},
			blocked: func(t *testing.T, e *escEnv, r result) error {
				var err error
				if strings.Contains(r.out, canaryUser) || strings.Contains(r.out, "HOST SECRET") {
					err = fmt.Errorf("the host canary %s was read through a tenant symlink", canary)
				}
				for _, s := range e.hostShadow {
					if strings.Contains(r.out, fmt.Sprintf("ROW %s %s\n", s.name, s.lastChange)) {
						err = errors.Join(err, fmt.Errorf("the host's /etc/shadow entry for %s was read through a tenant symlink", s.name))
					}
					if len(s.hash) >= 8 && strings.Contains(r.out, s.hash) {
						err = errors.Join(err, fmt.Errorf("a password hash of the host's /etc/shadow (%s) is in vpsctl's output", s.name))
					}
				}
				return errors.Join(err, e.unchanged("/etc/shadow", "/etc/passwd", "/etc/group", canary))
			},
			blockedBy: "openat2(RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS) from the VPS's root: a tenant's symlink (absolute or ..) resolves inside the VPS, never on the host",
		},
		{
			name: "be root on the host",
			snippet: `echo "uid_map=$(cat /proc/self/uid_map)"; echo id=$(id -u)
touch /tmp/esc-owner-probe-%TESTPID%; echo touched=$?; exit 0`,
			blocked: func(t *testing.T, e *escEnv, r result) error {
				m, _ := escValue(r.out, "uid_map=")
				f := strings.Fields(m)
				if len(f) != 3 || f[0] != "0" {
					return fmt.Errorf("uid_map inside = %q", m)
				}
				host, perr := strconv.ParseUint(f[1], 10, 32)
				if perr != nil || host < 1000000 {
					return fmt.Errorf("VPS root is host uid %s (want an unprivileged uid >= 1000000)", f[1])
				}
				var err error
				if v, _ := escValue(r.out, "id="); v != "0" {
					err = fmt.Errorf("not root inside (id -u = %q): the row proves nothing", v)
				}
				if u := escProcUID(status(t, e.id).InitPID); u != uint32(host) {
					err = errors.Join(err, fmt.Errorf("the VPS's init runs as host uid %d, not %d", u, host))
				}
				probe := filepath.Join(root, "vps", e.id, "private", "tmp", "esc-owner-probe-"+strconv.Itoa(e.testPID))
				var st unix.Stat_t
				if serr := unix.Stat(probe, &st); serr != nil {
					err = errors.Join(err, fmt.Errorf("probe file on the host: %w", serr))
				} else if st.Uid != uint32(host) {
					err = errors.Join(err, fmt.Errorf("file created by VPS root is owned by host uid %d, not %d", st.Uid, host))
				}
				return err
			},
			blockedBy: "user namespace with a private UID range: VPS root is an unprivileged host uid, and its capabilities act only on objects its own namespaces own",
		},
		{
			name: "inject keystrokes into the admin's terminal (TIOCSTI)",
			// The admin runs `vpsctl exec ID -- CMD` (no -t) from an interactive shell; CMD is
			// the tenant's. If CMD can push input into the admin's terminal, the admin's host
			// shell runs it as host root once vpsctl exits.
			snippet: `cat > /tmp/esc-tiocsti && chmod 755 /tmp/esc-tiocsti && echo planted`,
			attempt: func(t *testing.T, e *escEnv, snippet string) result {
				payload := escCompile(t, "tiocsti", escTIOCSTIPayload, "-static", "-O2")
				f, err := os.Open(payload)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				if r := e.exec(t, escOpts{stdin: f}, "sh", "-c", snippet); !strings.Contains(r.out, "planted") {
					t.Fatalf("planting the payload: %+v", r)
				}
				return escOnTerminal(t, e, "/tmp/esc-tiocsti")
			},
			blocked: func(t *testing.T, e *escEnv, r result) error {
				if strings.Contains(r.err, "ESC-INJECTED") {
					return fmt.Errorf("the admin's terminal received injected input: %q (legacy_tiocsti=%s)", strings.TrimSpace(r.err), escSysctl("dev/tty/legacy_tiocsti"))
				}
				return nil
			},
			blockedBy: "should be: the command never shares the caller's terminal or session (setsid() and a pty of the VPS's own, as exec -t and enter do); plain exec passes the caller's stdio and session through. dev.tty.legacy_tiocsti=0 on the host also blocks it (this host: " + escSysctl("dev/tty/legacy_tiocsti") + ")",
		},
		{
			name:    "write host files through tenant symlinks followed by set and restart (/etc/hostname, /etc/resolv.conf)",
			snippet: `ln -sf /etc/shadow /etc/hostname && ln -sf %CANARY% /etc/resolv.conf && echo planted`,
			attempt: func(t *testing.T, e *escEnv, snippet string) result {
				var all result
				step := func(args ...string) {
					r := vpsctl(t, args...)
					all.out += fmt.Sprintf("== vpsctl %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.out, r.err)
				}
				plant := func() {
					if r := e.exec(t, escOpts{}, "sh", "-c", e.expand(snippet)); !strings.Contains(r.out, "planted") {
						t.Fatalf("planting symlinks: %+v", r)
					}
				}
				plant()
				step("set", e.id, "--hostname", "esc-set")
				step("set", e.id, "--nameserver", "198.18.0.53", "--save")
				r := e.exec(t, escOpts{}, "sh", "-c", "ls -l /etc/hostname /etc/resolv.conf; cat /etc/hostname")
				all.out += "== inside after set\n" + r.out
				// The monitor writes both files again at boot, through the same tenant tree.
				plant()
				step("restart", "--timeout", "20s", e.id)
				waitFor(t, 30*time.Second, "the VPS to run again", func() bool { return status(t, e.id).State == "running" })
				return all
			},
			blocked: func(t *testing.T, e *escEnv, r result) error {
				var err error
				for _, s := range e.hostShadow {
					if len(s.hash) >= 8 && strings.Contains(r.out, s.hash) {
						err = fmt.Errorf("a password hash of the host's /etc/shadow (%s) is in vpsctl's output", s.name)
					}
				}
				return errors.Join(err, e.unchanged("/etc/shadow", "/etc/hostname", "/etc/resolv.conf", canary))
			},
			blockedBy: "the new file is created O_EXCL under a random name in the etc directory opened with openat2(RESOLVE_IN_ROOT) and renamed over the name, which replaces a symlink instead of following it; nothing is opened O_TRUNC through a tenant path (CVE-2024-45310)",
		},
	}

	type outcome struct{ name, by, result string }
	var table []outcome
	for _, row := range rows {
		res := "blocked"
		t.Run(row.name, func(t *testing.T) {
			defer func() {
				switch {
				case t.Skipped():
					res = "skipped"
				case t.Failed() && res == "blocked":
					res = "error (see log)"
				}
			}()
			var r result
			if row.attempt != nil {
				r = row.attempt(t, e, row.snippet)
			} else {
				r = e.exec(t, escOpts{}, "sh", "-c", e.expand(row.snippet))
			}
			t.Logf("attempt output:\n%s%s", r.out, r.err)
			if err := row.blocked(t, e, r); err != nil {
				res = "NOT BLOCKED"
				t.Errorf("ISOLATION BUG: %v\n(should be blocked by: %s)", err, row.blockedBy)
			}
		})
		table = append(table, outcome{row.name, row.blockedBy, res})
	}
	// Whatever the rows did, the host's files are as they were.
	if err := e.unchanged(); err != nil {
		t.Errorf("host files changed: %v", err)
	}
	var b strings.Builder
	b.WriteString("escape battery (attempt — blocked by — result):\n")
	for _, o := range table {
		fmt.Fprintf(&b, "  %-90s — %s — %s\n", o.name, o.by, o.result)
	}
	t.Log(b.String())
	must(t, "stop", "--kill", id)
}

// escRow is one escape attempt.
type escRow struct {
	name string
	// snippet is shell run inside the VPS as its root (%NAME% is replaced from escEnv.vars).
	snippet string
	// attempt, if set, makes the attempt instead of `vpsctl exec ID -- sh -c snippet`: for
	// rows that need host-side set-up or a host-side trigger.
	attempt func(t *testing.T, e *escEnv, snippet string) result
	// blocked returns nil if the attempt failed as it must, else what succeeded.
	blocked   func(t *testing.T, e *escEnv, r result) error
	blockedBy string
}

// escEnv is what the rows share.
type escEnv struct {
	id         string
	testPID    int
	testExe    string
	hostName   string
	vars       map[string]string
	sums       map[string]string // host files no attempt may change: path -> sha256 (or "absent")
	hostShadow []escShadow       // entries of the host's /etc/shadow the VPS's own lacks
}

type escShadow struct{ name, hash, lastChange string }

type escUIDRow struct {
	VPSUID uint32 `json:"vps_uid"`
	User   string `json:"user"`
}

func newEscEnv(t *testing.T, id string) *escEnv {
	t.Helper()
	exe, _ := os.Executable()
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	e := &escEnv{id: id, testPID: os.Getpid(), testExe: exe, hostName: host, sums: map[string]string{}}
	blk, maj, mnr := escBlockDevice()
	e.vars = map[string]string{"TESTPID": strconv.Itoa(e.testPID), "BLK": blk, "BLKMAJ": maj, "BLKMIN": mnr}
	e.watch(bin, "/etc/shadow", "/etc/passwd", "/etc/group", "/etc/hostname", "/etc/resolv.conf",
		"/proc/sys/kernel/core_pattern", "/proc/sys/kernel/sysrq", "/sys/kernel/uevent_helper")
	// Put back a host-wide knob that an escaped attempt changed, so one bug does not break the host.
	if old, err := os.ReadFile("/proc/sys/kernel/core_pattern"); err == nil {
		t.Cleanup(func() {
			if now, _ := os.ReadFile("/proc/sys/kernel/core_pattern"); !bytes.Equal(now, old) {
				os.WriteFile("/proc/sys/kernel/core_pattern", old, 0o644)
			}
		})
	}
	own, _ := os.ReadFile(filepath.Join(root, "templates", "busybox", "rootfs", "etc", "shadow"))
	ownLines := strings.Split(string(own), "\n")
	hs, _ := os.ReadFile("/etc/shadow")
	for _, l := range strings.Split(string(hs), "\n") {
		f := strings.Split(l, ":")
		if len(f) < 3 || slices.Contains(ownLines, l) {
			continue
		}
		e.hostShadow = append(e.hostShadow, escShadow{name: f[0], hash: f[1], lastChange: f[2]})
	}
	return e
}

// hostCgroupFiles are host-owned files of the VPS's groups and the host's hierarchy roots.
func (e *escEnv) hostCgroupFiles() []string {
	var fs []string
	for _, c := range []string{"memory", "pids", "devices"} {
		g := filepath.Join("/sys/fs/cgroup", c, "vpsctl", e.id)
		fs = append(fs, filepath.Join(g, "notify_on_release"), filepath.Join("/sys/fs/cgroup", c, "release_agent"))
	}
	return append(fs, filepath.Join("/sys/fs/cgroup/memory/vpsctl", e.id, "memory.limit_in_bytes"),
		filepath.Join("/sys/fs/cgroup/pids/vpsctl", e.id, "pids.max"))
}

// devicesList is the VPS's device allowlist on the host (cgroup v1).
func (e *escEnv) devicesList() string {
	return filepath.Join("/sys/fs/cgroup/devices/vpsctl", e.id, "devices.list")
}

func (e *escEnv) expand(s string) string {
	for k, v := range e.vars {
		s = strings.ReplaceAll(s, "%"+k+"%", v)
	}
	return s
}

// watch records the current content of host files so that unchanged can compare later.
func (e *escEnv) watch(paths ...string) {
	for _, p := range paths {
		e.sums[p] = escSum(p)
	}
}

// unchanged reports the watched files (all of them without arguments) that changed.
func (e *escEnv) unchanged(paths ...string) error {
	if len(paths) == 0 {
		for p := range e.sums {
			paths = append(paths, p)
		}
		slices.Sort(paths)
	}
	var errs []error
	for _, p := range paths {
		want, ok := e.sums[p]
		if !ok {
			continue
		}
		if got := escSum(p); got != want {
			errs = append(errs, fmt.Errorf("host file %s changed (sha256 %s -> %s)", p, want, got))
		}
	}
	return errors.Join(errs...)
}

func escSum(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return "absent"
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

type escOpts struct {
	stdin io.Reader
	extra []*os.File
	dir   string
}

// exec runs `vpsctl exec ID -- args...` with the given stdin, inherited fds and working directory.
func (e *escEnv) exec(t *testing.T, o escOpts, args ...string) result {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"--root", root, "exec", e.id, "--"}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = o.stdin, &out, &errb
	cmd.ExtraFiles, cmd.Dir = o.extra, o.dir
	if err := cmd.Start(); err != nil {
		t.Fatalf("vpsctl exec %v: %v", args, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(120 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("vpsctl exec %v: timed out", args)
	}
	return result{out: out.String(), err: errb.String(), code: cmd.ProcessState.ExitCode()}
}

// escOnTerminal runs `vpsctl exec ID -- cmd` the way an admin does from an interactive shell:
// on a terminal that is its controlling tty. It returns the terminal's output in out and, in
// err, whatever input is waiting on the terminal after vpsctl has exited (what the admin's
// shell would read next).
func escOnTerminal(t *testing.T, e *escEnv, cmdline ...string) result {
	t.Helper()
	mfd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	master := os.NewFile(uintptr(mfd), "pty-master")
	defer master.Close()
	if err := unix.IoctlSetPointerInt(mfd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	sfd, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(mfd), unix.TIOCGPTPEER, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC)
	if errno != 0 {
		t.Fatal(os.NewSyscallError("TIOCGPTPEER", errno))
	}
	slave := os.NewFile(sfd, "pty-slave")
	defer slave.Close()
	var out bytes.Buffer
	outDone := make(chan struct{})
	go func() {
		io.Copy(&out, master)
		close(outDone)
	}()
	cmd := exec.Command(bin, append([]string{"--root", root, "exec", e.id, "--"}, cmdline...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatal("vpsctl exec on a terminal: timed out")
	}
	// Read what is queued as input on the terminal, as the admin's shell would.
	if err := unix.SetNonblock(int(sfd), true); err != nil {
		t.Fatal(err)
	}
	var pending bytes.Buffer
	buf := make([]byte, 4096)
	for i := 0; i < 20; i++ {
		n, err := unix.Read(int(sfd), buf)
		if n > 0 {
			pending.Write(buf[:n])
			continue
		}
		if err != nil && err != unix.EAGAIN && err != unix.EINTR {
			break
		}
		time.Sleep(25 * time.Millisecond)
	}
	slave.Close()
	master.Close()
	select {
	case <-outDone:
	case <-time.After(5 * time.Second):
	}
	return result{out: out.String(), err: pending.String(), code: cmd.ProcessState.ExitCode()}
}

// escFailed checks that each "key=N" line of the output has a non-zero N (the attempt failed).
func escFailed(r result, keys ...string) error {
	var errs []error
	for _, k := range keys {
		v, ok := escValue(r.out, k+"=")
		switch {
		case !ok:
			// Attempts inside an if-branch (a mount that failed first) may not run at all.
			if !strings.Contains(r.out, "=") {
				errs = append(errs, fmt.Errorf("no output from the attempt"))
			}
		case strings.TrimSpace(v) == "0":
			errs = append(errs, fmt.Errorf("%s succeeded", k))
		}
	}
	return errors.Join(errs...)
}

// escValue returns what follows prefix on the first line starting with it.
func escValue(out, prefix string) (string, bool) {
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(l, prefix); ok {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

// escAbsent notes a path this host's kernel does not have (the attempt then fails trivially).
func escAbsent(p string) string {
	if _, err := os.Stat(p); err != nil {
		return " [" + p + " is absent on this host's kernel]"
	}
	return ""
}

func escSysctl(key string) string {
	b, err := os.ReadFile("/proc/sys/" + key)
	if err != nil {
		return "absent"
	}
	return strings.TrimSpace(string(b))
}

// escBlockDevice names a block device of the host: the first in /proc/partitions.
func escBlockDevice() (name, major, minor string) {
	b, _ := os.ReadFile("/proc/partitions")
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) == 4 && f[0] != "major" {
			return f[3], f[0], f[1]
		}
	}
	return "vda", "254", "0"
}

// escCgroup2Mount returns where the host's cgroup2 hierarchy is mounted, or "".
func escCgroup2Mount() string {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	for _, l := range strings.Split(string(b), "\n") {
		pre, post, ok := strings.Cut(l, " - ")
		if f, g := strings.Fields(pre), strings.Fields(post); ok && len(f) > 4 && len(g) > 0 && g[0] == "cgroup2" {
			return f[4]
		}
	}
	return ""
}

func escProcUID(pid int) uint32 {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	v, _ := escValue(string(b), "Uid:")
	f := strings.Fields(v)
	if len(f) == 0 {
		return 0
	}
	n, _ := strconv.ParseUint(f[0], 10, 32)
	return uint32(n)
}

// escInterp returns the ELF interpreter (PT_INTERP) of the binary at path, or "".
func escInterp(t *testing.T, path string) string {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b, err := io.ReadAll(p.Open())
			if err != nil {
				t.Fatal(err)
			}
			return strings.TrimRight(string(b), "\x00")
		}
	}
	return ""
}

// escCompile builds a tenant payload from C source with the host's gcc (cgo needs it anyway).
func escCompile(t *testing.T, name, src string, flags ...string) string {
	t.Helper()
	dir := t.TempDir()
	c := filepath.Join(dir, name+".c")
	if err := os.WriteFile(c, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, name)
	if b, err := runBoundedEsc(60*time.Second, "gcc", append(flags, "-o", out, c)...); err != nil {
		t.Fatalf("gcc %s: %v\n%s", name, err, b)
	}
	return out
}

func runBoundedEsc(timeout time.Duration, name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	var b bytes.Buffer
	cmd.Stdout, cmd.Stderr = &b, &b
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return b.Bytes(), err
	case <-time.After(timeout):
		cmd.Process.Kill()
		<-done
		return b.Bytes(), fmt.Errorf("%s: timed out", name)
	}
}

// escInterpPayload stands in for a tenant's ELF interpreter. It runs in a process whose
// /proc/self/exe is whatever binary was exec'd (here the host's vpsctl), so it uses no libc:
// it must not depend on the main program's headers or TLS. It reports whether it can open that
// binary for writing directly, and by reopening an O_PATH fd from a process that no longer
// executes it (the CVE-2019-5736 sequence), and appends one byte if it can.
const escInterpPayload = `#define _GNU_SOURCE
#include <asm/unistd.h>
#include <fcntl.h>
static long sc(long n, long a, long b, long c) {
	long r;
	__asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
	return r;
}
static unsigned long len(const char *s) { unsigned long n = 0; while (s[n]) n++; return n; }
static void out(const char *s) { sc(__NR_write, 1, (long)s, len(s)); }
static void num(long v) {
	char b[24]; int i = 23; b[i] = 0;
	do { b[--i] = '0' + v % 10; v /= 10; } while (v);
	out(b + i);
}
static void res(const char *what, long r) { out(what); if (r < 0) { out("=errno "); num(-r); } else out("=OK"); out("\n"); }
void cmain(long *sp) {
	char buf[512];
	long n = sc(__NR_readlink, (long)"/proc/self/exe", (long)buf, sizeof buf - 1);
	if (n >= 0) { buf[n] = 0; out("exe="); out(buf); out("\n"); }
	long fd = sc(__NR_open, (long)"/proc/self/exe", O_WRONLY | O_APPEND, 0);
	res("open_wronly", fd);
	if (fd >= 0) sc(__NR_write, fd, (long)"X", 1);
	long p = sc(__NR_open, (long)"/proc/self/exe", O_PATH, 0);
	res("open_path", p);
	if (p >= 0) {
		sc(__NR_dup2, p, 9, 0);
		char *argv[] = { "sh", "-c", "if printf X >> /proc/self/fd/9; then echo reopen_wronly=OK; else echo reopen_wronly=FAIL; fi", 0 };
		char **envp = (char **)(sp + 1 + sp[0] + 1);
		sc(__NR_execve, (long)"/bin/sh", (long)argv, (long)envp);
		out("execve /bin/sh failed\n");
	}
	sc(__NR_exit_group, 0, 0, 0);
}
__asm__(".globl _start\n_start:\n mov %rsp, %rdi\n and $-16, %rsp\n call cmain\n hlt\n");
`

// escTIOCSTIPayload pushes a command line into its terminal's input queue, through /dev/tty
// and through each of its stdio fds that is a terminal.
const escTIOCSTIPayload = `#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
static void inject(const char *name, int fd) {
	const char *s = "echo ESC-INJECTED\n";
	for (const char *p = s; *p; p++)
		if (ioctl(fd, TIOCSTI, p) < 0) { printf("%s: TIOCSTI: %s\n", name, strerror(errno)); return; }
	printf("%s: TIOCSTI injected\n", name);
}
int main(void) {
	int fd = open("/dev/tty", O_RDWR | O_NOCTTY);
	if (fd < 0) printf("/dev/tty: %s\n", strerror(errno)); else inject("/dev/tty", fd);
	for (int i = 0; i <= 2; i++) {
		char n[8];
		snprintf(n, sizeof n, "fd%d", i);
		if (isatty(i)) inject(n, i); else printf("%s: not a tty\n", n);
	}
	return 0;
}
`
