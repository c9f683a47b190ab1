package seccomp

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// probeArgs are arguments with which each denied call, made by host root without the filter,
// fails harmlessly or does nothing (invalid flags, empty paths, fd -1): the baseline that
// shows the filter, not a capability check, is what refuses them under the filter. Every
// table entry needs one; "E" is a pointer to an empty string.
var probeArgs = map[string]string{
	"kexec_load":        "0:0:0:0xdead0000", // invalid flags: EINVAL before anything loads
	"kexec_file_load":   "-1:-1:0:0:0xdead0000",
	"init_module":       "0:0:0",          // a 0-byte image: ENOEXEC
	"finit_module":      "-1:E:0",         // EBADF
	"delete_module":     "E:0x800",        // no module "": ENOENT
	"create_module":     "",               // ENOSYS
	"get_kernel_syms":   "",               // ENOSYS
	"query_module":      "",               // ENOSYS
	"open_by_handle_at": "-1:0:0",         // EBADF
	"iopl":              "99",             // EINVAL (levels are 0-3)
	"ioperm":            "0xffffffff:1:0", // EINVAL (past the bitmap)
	"acct":              "E",              // ENOENT (NULL would turn accounting off)
	"swapon":            "E:0",            // ENOENT
	"swapoff":           "E",              // ENOENT
	"settimeofday":      "0:0",            // no time, no zone: does nothing
	"clock_settime":     "-1:0",           // EINVAL
	"clock_settime64":   "-1:0",           // EINVAL
	"stime":             "0",              // EFAULT
	"syslog":            "10:0:0",         // SYSLOG_ACTION_SIZE_BUFFER: reads a number
	"bpf":               "-1:0:0",         // EINVAL
	"perf_event_open":   "0:0:-1:-1:0",    // EFAULT
	"userfaultfd":       "0xdead",         // EINVAL
	"add_key":           "0:0:0:0:0",      // EFAULT
	"keyctl":            "-1",             // EOPNOTSUPP
	"request_key":       "0:0:0:0",        // EFAULT
	"lookup_dcookie":    "0:0:0",          // ENOSYS (removed)
	"uselib":            "0",              // EFAULT or ENOSYS
	"nfsservctl":        "",               // ENOSYS
	"_sysctl":           "0",              // ENOSYS
	"vm86":              "0:0",            // ENOSYS on 64-bit kernels
	"vm86old":           "0",              // ENOSYS on 64-bit kernels
	"io_uring_setup":    "0:0",            // EFAULT or EINVAL
	"io_uring_enter":    "-1:0:0:0:0:0",   // EBADF
	"io_uring_register": "-1:0:0:0",       // EBADF
	"ioctl":             "-1:0x5412",      // TIOCSTI on no fd: EBADF
	"umount2":           "E:1",            // MNT_FORCE of "": ENOENT
}

// Calls the filter must let through, with what they return without it too.
var allowedOps = []string{
	"64:39",             // getpid
	"32:20",             // getpid, i386
	"64:16:-1:0x5401",   // ioctl TCGETS: EBADF
	"32:54:-1:0x5401",   // the same, i386
	"64:166:E:2",        // umount2 MNT_DETACH: ENOENT
	"32:52:E:2",         // the same, i386
	"64:303:-1:E:0:0:0", // name_to_handle_at (systemd): EBADF
}

// Calls denied by argument or ABI beyond the table's plain entries.
var extraDeniedOps = []string{
	"64:16:-1:0x100005412", // TIOCSTI with high bits set: the kernel reads the low 32
	"64:166:E:3",           // MNT_FORCE|MNT_DETACH
	"x32:39",               // any x32 call
	"x32:246",
}

func probeOps(t *testing.T) (denied []string) {
	t.Helper()
	for _, r := range Table {
		a, ok := probeArgs[r.Name]
		if !ok {
			t.Fatalf("probeArgs has no harmless arguments for %s", r.Name)
		}
		for _, abi := range []struct {
			name string
			nr   int
		}{{"64", r.Nr64}, {"32", r.Nr32}} {
			if abi.nr == none {
				continue
			}
			op := abi.name + ":" + strconv.Itoa(abi.nr)
			if a != "" {
				op += ":" + a
			}
			denied = append(denied, op)
		}
	}
	return append(denied, extraDeniedOps...)
}

// buildProbe compiles testdata/probe.c, with the generated header, into a directory every
// user may enter (the probe runs as an unmapped-to-root user of a user namespace).
func buildProbe(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for d := dir; d != filepath.Dir(os.TempDir()) && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if d == os.TempDir() {
			break
		}
	}
	exe := filepath.Join(dir, "probe")
	// Static and not position-independent: the i386 calls pass pointers in 32-bit registers.
	out, err := exec.Command("gcc", "-O2", "-Wall", "-Werror", "-static", "-no-pie", "-mno-red-zone",
		"-I", HeaderDir, "-o", exe, filepath.Join("testdata", "probe.c")).CombinedOutput()
	if err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	return exe
}

// i386Syscalls reports whether this kernel runs i386 system calls. A host may turn that ABI
// off (ia32_emulation=0, or a kernel built without IA32_EMULATION; this kind of machine does):
// int 0x80 then raises a general protection fault, and the probe dies of SIGSEGV before any
// call is made.
func i386Syscalls(t *testing.T, exe string) bool {
	t.Helper()
	out, err := exec.Command(exe, "plain", "32:20").CombinedOutput()
	if err == nil {
		return true
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGSEGV {
			return false
		}
	}
	t.Fatalf("probe of an i386 getpid: %v\n%s", err, out)
	return false
}

// probeResult is the output of one probe run: op -> errno (0: success).
type probeResult struct {
	out    string
	errnos map[string]int
}

var probeLine = regexp.MustCompile(`(?m)^op=(\S+) ret=(-?\d+) errno=(\d+)$`)

func runProbe(t *testing.T, exe string, userns bool, args ...string) probeResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, args...)
	if userns {
		// A VPS's view: root of a user namespace whose IDs are unprivileged host IDs, with
		// every capability there and none on the host.
		const host = 4000000000
		cmd.SysProcAttr = &syscall.SysProcAttr{
			Cloneflags:  syscall.CLONE_NEWUSER,
			UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: host, Size: 2}},
			GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: host, Size: 2}},
			// Become the namespace's 0 (host 0 is unmapped in it: without this the
			// probe would run as the overflow ID, with no capabilities).
			Credential: &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true},
		}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("probe %v (userns %v): %v\n%s", args, userns, err, out)
	}
	r := probeResult{out: string(out), errnos: map[string]int{}}
	for _, m := range probeLine.FindAllStringSubmatch(r.out, -1) {
		e, _ := strconv.Atoi(m[3])
		if _, seen := r.errnos[m[1]]; !seen { // the parent's line, not the forked child's
			r.errnos[m[1]] = e
		}
	}
	return r
}

func (r probeResult) errno(t *testing.T, op string) int {
	t.Helper()
	e, ok := r.errnos[op]
	if !ok {
		t.Fatalf("probe printed nothing for %s:\n%s", op, r.out)
	}
	return e
}

// TestInstall installs the generated filter with the header's installer, as host root and as
// root of a user namespace without no_new_privs, and checks every denied call (both ABIs)
// returns EPERM, ordinary calls work, the filter survives execve and fork, and
// /proc/self/status says "Seccomp: 2".
func TestInstall(t *testing.T) {
	requireRoot(t)
	exe := buildProbe(t)
	denied, allowed := probeOps(t), allowedOps
	if !i386Syscalls(t, exe) {
		t.Log("this kernel runs no i386 system calls (int 0x80 faults before any call is made, " +
			"filter or not): the i386 rows are checked by TestDeniedCalls' emulation only")
		is386 := func(op string) bool { return strings.HasPrefix(op, "32:") }
		denied = slices.DeleteFunc(denied, is386)
		allowed = slices.DeleteFunc(slices.Clone(allowed), is386)
	}
	all := append(append([]string{}, denied...), allowed...)

	base := runProbe(t, exe, false, append([]string{"plain"}, all...)...)
	filtered := runProbe(t, exe, false, append([]string{"filter"}, all...)...)
	differ := 0
	for _, op := range denied {
		if e := filtered.errno(t, op); e != int(syscall.EPERM) {
			t.Errorf("host root with the filter: %s gave errno %d, want EPERM", op, e)
		}
		if base.errno(t, op) != int(syscall.EPERM) {
			differ++
		} else {
			t.Logf("%s: EPERM without the filter too (a host sysctl?)", op)
		}
	}
	// The baseline must show that the filter is what refuses: without it, host root gets
	// other answers for (almost) all of them.
	if differ < len(denied)*9/10 {
		t.Errorf("only %d of %d denied calls answer other than EPERM without the filter:\n%s", differ, len(denied), base.out)
	}
	for _, op := range allowed {
		if b, f := base.errno(t, op), filtered.errno(t, op); b != f {
			t.Errorf("%s: errno %d without the filter, %d with it: it must be allowed", op, b, f)
		}
	}

	// As a VPS's root: no no_new_privs, then execve and fork.
	vps := runProbe(t, exe, true, append([]string{"filter-exec"}, all...)...)
	for _, want := range []string{"status NoNewPrivs:\t0\n", "status Seccomp:\t2\n", "status Seccomp_filters:\t1\n", "child\n"} {
		if !strings.Contains(vps.out, want) {
			t.Errorf("user namespace root after execve: no %q in\n%s", want, vps.out)
		}
	}
	for _, op := range denied {
		if e := vps.errno(t, op); e != int(syscall.EPERM) {
			t.Errorf("user namespace root after execve: %s gave errno %d, want EPERM", op, e)
		}
		// The forked child's answers are the same: count the lines.
		if n := strings.Count(vps.out, fmt.Sprintf("op=%s ret=-1 errno=1\n", op)); n != 2 {
			t.Errorf("user namespace root: %s denied %d times of 2 (parent, forked child)", op, n)
		}
	}
	for _, op := range allowed {
		if e := vps.errno(t, op); e == int(syscall.EPERM) {
			t.Errorf("user namespace root: %s was denied", op)
		}
	}
	if m := regexp.MustCompile(`install=0 errno=0 ns=(\d+)`).FindStringSubmatch(vps.out); m == nil {
		t.Errorf("no install line:\n%s", vps.out)
	} else {
		ns, _ := strconv.Atoi(m[1])
		t.Logf("install took %v", time.Duration(ns))
		// Paid on every exec; 0.07 ms here. A regression to a filter the kernel cannot
		// cache, or a huge one, shows as milliseconds.
		if time.Duration(ns) > 5*time.Millisecond {
			t.Errorf("install took %v", time.Duration(ns))
		}
	}

	// Without CAP_SYS_ADMIN in its namespace and without no_new_privs, the kernel refuses a
	// filter: the installer must run while VPS root still holds its capabilities.
	nocap := runProbe(t, exe, true, "nocap", "64:246", "64:39")
	for _, want := range []string{"install-nocap=-1 errno=13\n", "install-nnp=0 errno=0\n", "status NoNewPrivs:\t1\n", "op=64:246 ret=-1 errno=1\n"} {
		if !strings.Contains(nocap.out, want) {
			t.Errorf("without capabilities: no %q in\n%s", want, nocap.out)
		}
	}
}
