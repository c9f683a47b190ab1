package tests

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// storeState describes every entry of the state root: relative path -> type, mode, owner, size
// and content hash (or symlink target, or device number). Two equal storeStates mean the state
// root is byte-for-byte the same.
type storeState map[string]string

// auditLines are the lines of the state root's audit log.
func auditLines(t testing.TB) []string {
	t.Helper()
	b, _ := os.ReadFile(filepath.Join(root, "audit.log"))
	if len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// auditRecord is an audit line's fields the tests check.
type auditRecord struct {
	UID  int    `json:"uid"`
	User string `json:"user"`
	PID  int    `json:"pid"`
	Peer string `json:"peer"`
	Cmd  string `json:"cmd"`
	Exit int    `json:"exit"`
}

// auditRecords decodes audit lines; a line that is not one fails t.
func auditRecords(t testing.TB, lines []string) []auditRecord {
	t.Helper()
	recs := make([]auditRecord, 0, len(lines))
	for _, l := range lines {
		var rec auditRecord
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("audit line %q: %v", l, err)
		}
		recs = append(recs, rec)
	}
	return recs
}

// storeDigest walks the state root and describes every entry (see storeState). It skips what
// legitimately changes without any command changing the store: the contents of lock files
// (each locker writes its name into them), the console and monitor logs that running VPSs
// append to, and the staging directories of destroyed VPSs (tmp/destroy-*) that background
// removers, maybe an earlier test's, are deleting.
func storeDigest(t testing.TB) storeState {
	t.Helper()
	st := storeState{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // vanished during the walk; the other digest will tell
			}
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		parts := strings.Split(rel, string(filepath.Separator))
		if len(parts) == 3 && parts[0] == "vps" && (strings.HasPrefix(parts[2], "console.log") || strings.HasPrefix(parts[2], "monitor.log")) {
			return nil
		}
		if strings.HasPrefix(parts[0], "lxcfs") {
			// The run's LXCFS (its mount, PID, lock and log) is the host's, not a command's.
			if d.IsDir() && len(parts) == 1 {
				return filepath.SkipDir
			}
			return nil
		}
		if len(parts) >= 2 && parts[0] == "tmp" && strings.HasPrefix(parts[1], "destroy-") {
			if d.IsDir() && len(parts) == 2 {
				return filepath.SkipDir
			}
			return nil
		}
		// A failed command's audit line is what it leaves on purpose (checked by the caller).
		if len(parts) == 1 && strings.HasPrefix(parts[0], "audit.log") {
			return nil
		}
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		sys := fi.Sys().(*syscall.Stat_t)
		desc := fmt.Sprintf("mode=%#o uid=%d gid=%d", sys.Mode, sys.Uid, sys.Gid)
		switch {
		case fi.Mode().IsRegular() && parts[0] == "locks":
			// Lock files: path, mode and owner only.
		case fi.Mode().IsRegular():
			sum, err := fileSum(p)
			if err != nil {
				return err
			}
			desc += fmt.Sprintf(" size=%d sha256=%s", fi.Size(), sum)
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			desc += fmt.Sprintf(" size=%d -> %q", fi.Size(), target)
		case fi.Mode()&(fs.ModeDevice|fs.ModeCharDevice) != 0:
			desc += fmt.Sprintf(" rdev=%#x", sys.Rdev)
		}
		st[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatalf("digest of %s: %v", root, err)
	}
	return st
}

func fileSum(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// diff lists what changed from a to b, one line per entry, or "" if nothing did.
func (a storeState) diff(b storeState) string {
	var out []string
	for p, d := range a {
		if e, ok := b[p]; !ok {
			out = append(out, "- "+p+" "+d)
		} else if e != d {
			out = append(out, "~ "+p+" "+d+" => "+e)
		}
	}
	for p, e := range b {
		if _, ok := a[p]; !ok {
			out = append(out, "+ "+p+" "+e)
		}
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// waitStoreStable waits (bounded) until the state root stops changing, e.g. while a freshly
// started VPS's boot scripts still write to its private area.
func waitStoreStable(t testing.TB) {
	t.Helper()
	prev := storeDigest(t)
	stable := 0
	waitFor(t, 20*time.Second, "the state root to settle", func() bool {
		time.Sleep(250 * time.Millisecond)
		cur := storeDigest(t)
		if cur.diff(prev) == "" {
			stable++
		} else {
			stable = 0
		}
		prev = cur
		return stable >= 2
	})
}

// documentedCodes are the exit codes `vpsctl --help` lists under EXIT CODES.
func documentedCodes(t testing.TB) []int {
	t.Helper()
	out := must(t, "--help")
	i := strings.Index(out, "EXIT CODES")
	if i < 0 {
		t.Fatalf("vpsctl --help has no EXIT CODES section:\n%s", out)
	}
	var codes []int
	for _, m := range regexp.MustCompile(`(?m)^\s+(\d+)\s{2,}\S`).FindAllStringSubmatch(out[i:], -1) {
		n, _ := strconv.Atoi(m[1])
		codes = append(codes, n)
	}
	if len(codes) < 5 {
		t.Fatalf("could not parse the exit codes of vpsctl --help:\n%s", out[i:])
	}
	return codes
}

// checkErrLine checks that stderr is exactly one line "vpsctl: ..." containing every want.
func checkErrLine(t testing.TB, args []string, r result, wants ...string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(r.err, "\n"), "\n")
	if !strings.HasSuffix(r.err, "\n") || len(lines) != 1 || !strings.HasPrefix(lines[0], "vpsctl: ") {
		t.Errorf("vpsctl %s: stderr is not one line \"vpsctl: ...\":\n%q", strings.Join(args, " "), r.err)
		return
	}
	for _, w := range wants {
		if !strings.Contains(lines[0], w) {
			t.Errorf("vpsctl %s: message %q does not mention %q", strings.Join(args, " "), lines[0], w)
		}
	}
}

// holdLock holds VPS id's lock file with flock(1), as a foreign holder, until the test ends.
// It returns the holder's PID.
func holdLock(t *testing.T, id string) int {
	t.Helper()
	p := filepath.Join(root, "locks", id+".lock")
	cmd := exec.Command("flock", p, "sleep", "8")
	// Own process group: flock's child (sleep) inherits the locked descriptor, so both must go.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("flock: %v", err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() {
		syscall.Kill(-pid, syscall.SIGKILL)
		cmd.Wait()
	})
	waitFor(t, 5*time.Second, "flock to hold "+p, func() bool {
		fi, err := os.Stat(p)
		if err != nil {
			return false
		}
		ino := ":" + strconv.FormatUint(fi.Sys().(*syscall.Stat_t).Ino, 10)
		locks, _ := os.ReadFile("/proc/locks")
		for _, l := range strings.Split(string(locks), "\n") {
			f := strings.Fields(l)
			if len(f) >= 6 && f[1] == "FLOCK" && f[4] == strconv.Itoa(pid) && strings.HasSuffix(f[5], ino) {
				return true
			}
		}
		return false
	})
	return pid
}

type badRow struct {
	name  string
	args  []string
	codes []int  // accepted exit codes (the first is the expected one)
	msg   string // distinctive part of the error message
	// setup runs right before the row (and before the "before" digest) and may return more
	// strings the message must contain.
	setup func(t *testing.T) []string
	check func(t *testing.T, r result)
}

func codes(c ...int) []int { return c }

func TestBadInput(t *testing.T) {
	checkClean(t, "150", "151", "153")
	pid := os.Getpid()
	name := fmt.Sprintf("bad-%d", pid)
	must(t, "create", "150", "--template", "busybox", "--name", name)
	must(t, "create", "151", "--template", "busybox", "--ipadd", "198.18.0.151")
	must(t, "create", "153", "--template", "busybox")
	must(t, "start", "153")
	// A VPS's lock file is made by the first command that locks it; make them now, so that the
	// rows do not depend on their order.
	for _, id := range []string{"150", "151"} {
		if out, err := exec.Command("flock", filepath.Join(root, "locks", id+".lock"), "true").CombinedOutput(); err != nil {
			t.Fatalf("flock: %v: %s", err, out)
		}
	}
	waitStoreStable(t)
	documented := documentedCodes(t)
	long := strings.Repeat("a", 65)

	// Someone's directory, which a checkpoint must not replace.
	keep := filepath.Join(t.TempDir(), "keep")
	if err := os.MkdirAll(keep, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(keep, "precious"), []byte("data\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rows := []badRow{
		{name: "checkpoint over another directory", args: []string{"checkpoint", "153", "--leave-running", "--dir", keep}, codes: codes(21), msg: "not a vpsctl checkpoint",
			check: func(t *testing.T, r result) {
				if b, err := os.ReadFile(filepath.Join(keep, "precious")); err != nil || string(b) != "data\n" {
					t.Errorf("the directory's file after the refused checkpoint: %q %v", b, err)
				}
			}},
		{name: "unknown command", args: []string{"frobnicate"}, codes: codes(20), msg: `unknown command "frobnicate"`},
		{name: "unknown flag", args: []string{"create", "160", "--template", "busybox", "--bogus"}, codes: codes(20), msg: "bogus"},
		{name: "unknown flag of start", args: []string{"start", "150", "--bogus"}, codes: codes(20), msg: "bogus"},
		{name: "create without ID", args: []string{"create"}, codes: codes(20), msg: "usage"},
		{name: "create without template", args: []string{"create", "160"}, codes: codes(20), msg: "--template"},
		{name: "exec without command", args: []string{"exec", "150"}, codes: codes(20), msg: "COMMAND"},
		{name: "exec without command running", args: []string{"exec", "153"}, codes: codes(20), msg: "COMMAND"},
		{name: "template import without path", args: []string{"template", "import", "x"}, codes: codes(20), msg: "NAME PATH"},

		{name: "ID 0", args: []string{"start", "0"}, codes: codes(21), msg: `"0"`},
		{name: "create ID 0", args: []string{"create", "0", "--template", "busybox"}, codes: codes(21), msg: `"0"`},
		{name: "ID 2^32", args: []string{"start", "4294967296"}, codes: codes(21), msg: "4294967296"},
		{name: "create ID 2^32", args: []string{"create", "4294967296", "--template", "busybox"}, codes: codes(21), msg: "4294967296"},
		// "-5" reads as an (unknown) flag: a usage error (20), or a bad ID (21); never 3.
		{name: "ID -5", args: []string{"start", "-5"}, codes: codes(20, 21), msg: "-5"},
		{name: "create ID -5", args: []string{"create", "-5", "--template", "busybox"}, codes: codes(20, 21), msg: "-5"},
		{name: "ID abc!", args: []string{"start", "abc!"}, codes: codes(21), msg: `"abc!"`},
		{name: "create ID abc!", args: []string{"create", "abc!", "--template", "busybox"}, codes: codes(21), msg: `"abc!"`},
		{name: "ID 01", args: []string{"start", "01"}, codes: codes(21), msg: `"01"`},
		{name: "create ID 01", args: []string{"create", "01", "--template", "busybox"}, codes: codes(21), msg: `"01"`},
		{name: "create bad name", args: []string{"create", "160", "--template", "busybox", "--name", "1abc"}, codes: codes(21), msg: `"1abc"`},
		{name: "create bad template name", args: []string{"create", "160", "--template", "../busybox"}, codes: codes(21), msg: "../busybox"},

		{name: "start unknown ID", args: []string{"start", "199"}, codes: codes(43), msg: "199"},
		{name: "stop unknown ID", args: []string{"stop", "199"}, codes: codes(43), msg: "199"},
		{name: "exec unknown ID", args: []string{"exec", "199", "--", "true"}, codes: codes(43), msg: "199"},
		{name: "destroy unknown ID", args: []string{"destroy", "199"}, codes: codes(43), msg: "199"},
		{name: "set unknown ID", args: []string{"set", "199", "--hostname", "x"}, codes: codes(43), msg: "199"},
		{name: "enter unknown ID", args: []string{"enter", "199"}, codes: codes(43), msg: "199"},
		{name: "start unknown name", args: []string{"start", "nosuchvps"}, codes: codes(43), msg: `"nosuchvps"`},
		{name: "exec unknown name", args: []string{"exec", "nosuchvps", "--", "true"}, codes: codes(43), msg: `"nosuchvps"`},

		{name: "missing template", args: []string{"create", "160", "--template", "nosuchtpl"}, codes: codes(91), msg: `"nosuchtpl"`},
		{name: "existing ID", args: []string{"create", "150", "--template", "busybox"}, codes: codes(44), msg: "VPS 150"},
		{name: "existing name", args: []string{"create", "160", "--template", "busybox", "--name", name}, codes: codes(44), msg: name},

		{name: "hostname -bad", args: []string{"create", "160", "--template", "busybox", "--hostname", "-bad"}, codes: codes(70), msg: `"-bad"`},
		{name: "hostname 65 bytes", args: []string{"create", "160", "--template", "busybox", "--hostname", long}, codes: codes(70), msg: "hostname"},
		{name: "set hostname -bad", args: []string{"set", "150", "--hostname", "-bad"}, codes: codes(70), msg: `"-bad"`},
		// vzctl's own codes for these (include/vzerror.h): 72, 73, 86, 74.
		{name: "nameserver not an address", args: []string{"create", "160", "--template", "busybox", "--nameserver", "ns1.example"}, codes: codes(72), msg: "ns1.example"},
		{name: "set nameserver multicast", args: []string{"set", "150", "--nameserver", "224.0.0.1"}, codes: codes(72), msg: "224.0.0.1"},
		{name: "searchdomain with a space", args: []string{"create", "160", "--template", "busybox", "--searchdomain", "a b"}, codes: codes(73), msg: `"a b"`},
		{name: "set searchdomain empty label", args: []string{"set", "150", "--searchdomain", "a..b"}, codes: codes(73), msg: "a..b"},
		{name: "devices bad type", args: []string{"create", "160", "--template", "busybox", "--devices", "x:1:3:rw"}, codes: codes(86), msg: "x:1:3:rw"},
		{name: "set devices bad access", args: []string{"set", "150", "--devices", "c:1:3:rx"}, codes: codes(86), msg: "c:1:3:rx"},
		{name: "userpasswd no colon", args: []string{"set", "150", "--userpasswd", "a b:c"}, codes: codes(74), msg: `"a b"`},
		{name: "userpasswd empty password", args: []string{"set", "150", "--userpasswd", "alice:"}, codes: codes(74), msg: "empty password"},
		{name: "userpasswd bad user name", args: []string{"set", "150", "--userpasswd", "-root:x"}, codes: codes(74), msg: `"-root"`},
		{name: "numproc above the kernel's", args: []string{"set", "150", "--numproc", "4294967296"}, codes: codes(21), msg: "4194304"},
		{name: "devices major too big", args: []string{"set", "150", "--devices", "c:5000:1:rw"}, codes: codes(86), msg: "c:5000:1:rw"},
		{name: "devices access twice", args: []string{"set", "150", "--devices", "c:1:3:rrr"}, codes: codes(86), msg: "c:1:3:rrr"},
		{name: "idmap-size below a system's", args: []string{"create", "160", "--template", "busybox", "--idmap-size", "1"}, codes: codes(21), msg: "at least 65536"},
		{name: "extra argument", args: []string{"destroy", "150", "151"}, codes: codes(20), msg: `"151"`},
		{name: "status extra argument", args: []string{"status", "150", "x"}, codes: codes(20), msg: `"x"`},
		{name: "flag without its value", args: []string{"checkpoint", "153", "--dir"}, codes: codes(20), msg: "--dir"},
		{name: "migrate without dest-root's value", args: []string{"migrate", "150", "local", "--dest-root"}, codes: codes(20), msg: "--dest-root"},
		{name: "checkpoint check stopped", args: []string{"checkpoint", "--check", "150"}, codes: codes(31), msg: "not running"},
		{name: "clone onto itself", args: []string{"clone", "150", "150"}, codes: codes(44), msg: "another ID"},
		{name: "backup into no file", args: []string{"backup", "150", ""}, codes: codes(21), msg: "no file"},
		{name: "backup into a directory", args: []string{"backup", "150", "/tmp"}, codes: codes(21), msg: "not a regular file"},
		{name: "backup where no directory is", args: []string{"backup", "150", "/nonexistent/d/f.tar"}, codes: codes(21), msg: "/nonexistent/d/f.tar"},
		{name: "exec workdir missing", args: []string{"exec", "-w", "/nonexistent", "153", "--", "touch", "created-here"}, codes: codes(21), msg: "/nonexistent",
			check: func(t *testing.T, r result) {
				if r := vpsctl(t, "exec", "153", "--", "test", "-e", "/created-here"); r.code == 0 {
					t.Errorf("the command ran in / instead")
				}
			}},
		{name: "exec workdir relative", args: []string{"exec", "-w", "tmp", "153", "--", "true"}, codes: codes(21), msg: `"tmp"`},
		{name: "exec env without a value", args: []string{"exec", "-e", "FOO", "153", "--", "true"}, codes: codes(21), msg: `"FOO"`},
		{name: "memory 12Q", args: []string{"create", "160", "--template", "busybox", "--memory", "12Q"}, codes: codes(21), msg: "12Q"},
		{name: "set memory 12Q", args: []string{"set", "150", "--memory", "12Q"}, codes: codes(21), msg: "12Q"},
		{name: "cpuunits 5", args: []string{"create", "160", "--template", "busybox", "--cpuunits", "5"}, codes: codes(21), msg: "cpuunits"},
		{name: "numproc 0", args: []string{"create", "160", "--template", "busybox", "--numproc", "0"}, codes: codes(21), msg: "numproc"},
		{name: "namespaces uts,foo", args: []string{"create", "160", "--template", "busybox", "--namespaces", "uts,foo"}, codes: codes(21), msg: `"foo"`},
		{name: "namespaces without pid,mnt", args: []string{"create", "160", "--template", "busybox", "--namespaces", "uts,ipc"}, codes: codes(21), msg: "pid"},
		{name: "empty root", args: []string{"list", "--root", ""}, codes: codes(20), msg: "--root"},
		{name: "root a file", args: []string{"list", "--root", "/etc/passwd"}, codes: codes(21), msg: "/etc/passwd"},
		{name: "address without net", args: []string{"create", "160", "--template", "busybox", "--namespaces", "uts,ipc,pid,mnt,user", "--ipadd", "198.18.0.160"}, codes: codes(21), msg: "network namespace"},
		{name: "hostname without uts", args: []string{"create", "160", "--template", "busybox", "--namespaces", "ipc,pid,mnt,user,net", "--hostname", "foo"}, codes: codes(21), msg: "UTS namespace"},
		{name: "idmap-size 0", args: []string{"create", "160", "--template", "busybox", "--idmap-size", "0"}, codes: codes(21), msg: "idmap-size"},
		{name: "idmap-size too big for the pool", args: []string{"create", "160", "--template", "busybox", "--idmap-size", "4000000000"}, codes: codes(212), msg: "4000000000"},

		{name: "ipadd 300.1.2.3", args: []string{"create", "160", "--template", "busybox", "--ipadd", "300.1.2.3"}, codes: codes(71), msg: "300.1.2.3"},
		{name: "set ipadd 300.1.2.3", args: []string{"set", "150", "--ipadd", "300.1.2.3"}, codes: codes(71), msg: "300.1.2.3"},
		{name: "ipadd in use", args: []string{"create", "152", "--template", "busybox", "--ipadd", "198.18.0.151"}, codes: codes(78), msg: "198.18.0.151"},
		{name: "set ipadd in use", args: []string{"set", "150", "--ipadd", "198.18.0.151"}, codes: codes(78), msg: "198.18.0.151"},

		{name: "start running", args: []string{"start", "153"}, codes: codes(32), msg: "is running"},
		{name: "destroy running", args: []string{"destroy", "153"}, codes: codes(32), msg: "is running"},
		{name: "stop stopped", args: []string{"stop", "150"}, codes: codes(31), msg: "not running"},
		{name: "exec stopped", args: []string{"exec", "150", "--", "true"}, codes: codes(31), msg: "not running"},
		{name: "exec stopped by name", args: []string{"exec", name, "--", "true"}, codes: codes(31), msg: "not running"},
		{name: "enter stopped", args: []string{"enter", "150"}, codes: codes(31), msg: "not running"},

		{name: "locked", args: []string{"start", "150"}, codes: codes(9), msg: "150",
			setup: func(t *testing.T) []string {
				// The message must name the holder: here, flock(1)'s PID.
				return []string{strconv.Itoa(holdLock(t, "150"))}
			}},

		{name: "format yaml", args: []string{"list", "--format", "yaml"}, codes: codes(20), msg: "yaml"},
		{name: "status format yaml", args: []string{"status", "150", "--format", "yaml"}, codes: codes(20), msg: "yaml"},
		{name: "template remove in use", args: []string{"template", "remove", "busybox"}, codes: codes(210), msg: "busybox"},
		{name: "template build unknown kind", args: []string{"template", "build", "nosuchkind"}, codes: codes(20), msg: "nosuchkind"},
		// No code is specific to a bad import source: any documented failure will do.
		{name: "template import nonexistent", args: []string{"template", "import", "x", "/nonexistent"}, codes: nil, msg: "/nonexistent",
			check: func(t *testing.T, r result) {
				if _, err := os.Lstat(filepath.Join(root, "templates", "x")); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("template x appeared after a failed import: %v", err)
				}
				if out := must(t, "template", "list"); regexp.MustCompile(`(?m)^x\s`).MatchString(out) {
					t.Errorf("template list shows x:\n%s", out)
				}
			}},
	}

	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			var wants []string
			if row.msg != "" {
				wants = append(wants, row.msg)
			}
			if row.setup != nil {
				wants = append(wants, row.setup(t)...)
			}
			before, auditBefore := storeDigest(t), auditLines(t)
			r := vpsctl(t, row.args...)
			after, auditAfter := storeDigest(t), auditLines(t)
			if added := auditAfter[len(auditBefore):]; len(added) > 1 || len(added) == 1 && !strings.Contains(added[0], fmt.Sprintf(`"exit":%d}`, r.code)) {
				t.Errorf("vpsctl %s: audit lines %q, want at most one, with exit %d", strings.Join(row.args, " "), added, r.code)
			}
			cmdline := strings.Join(row.args, " ")
			switch {
			case r.code == 0:
				t.Errorf("vpsctl %s: succeeded, want exit %v\nstdout: %s", cmdline, row.codes, r.out)
			case row.codes == nil && !slices.Contains(documented, r.code):
				t.Errorf("vpsctl %s: exit %d, which vpsctl --help does not document (%v)", cmdline, r.code, documented)
			case row.codes != nil && !slices.Contains(row.codes, r.code):
				t.Errorf("vpsctl %s: exit %d, want %v", cmdline, r.code, row.codes)
			}
			checkErrLine(t, row.args, r, wants...)
			if d := before.diff(after); d != "" {
				t.Errorf("vpsctl %s changed the state root:\n%s", cmdline, d)
			}
			if row.check != nil {
				row.check(t, r)
			}
		})
	}

	if s := status(t, "153"); s.State != "running" {
		t.Errorf("VPS 153 after the bad commands: %+v", s)
	}
	if s := status(t, "150"); s.State != "stopped" || s.Name != name {
		t.Errorf("VPS 150 after the bad commands: %+v", s)
	}
	must(t, "stop", "--kill", "153")
}

// vpsCgroups lists the cgroup directories of VPS id, in every hierarchy.
func vpsCgroups(id string) []string {
	return groupDirs(id)
}

func TestFailedStartLeavesNothing(t *testing.T) {
	waitTmpEmpty(t, 20*time.Second) // earlier tests' removers: not this test's leftovers
	tpl := fmt.Sprintf("noinit-%d", os.Getpid())
	// Registered before checkClean, so it runs after checkClean's destroy.
	t.Cleanup(func() {
		if _, err := os.Stat(filepath.Join(root, "templates", tpl)); err == nil {
			vpsctl(t, "template", "remove", tpl)
		}
	})
	checkClean(t, "170")

	// A root filesystem with a shell but no /sbin/init.
	src := t.TempDir()
	for _, d := range []string{"bin", "etc", "proc", "sys", "dev", "tmp"} {
		if err := os.Mkdir(filepath.Join(src, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "bin", "busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	must(t, "template", "import", tpl, src)
	must(t, "create", "170", "--template", tpl)

	vpsRoot := filepath.Join(root, "vps", "170")
	var first result
	for attempt := 1; attempt <= 2; attempt++ {
		r := vpsctl(t, "start", "170")
		if r.code == 0 {
			t.Fatalf("start %d of a VPS without /sbin/init succeeded: %s", attempt, r.out)
		}
		checkErrLine(t, []string{"start", "170"}, r, "init")
		// The init child's failure crosses as a step and an errno (initchild.c, init_error).
		if !strings.Contains(r.err, "start: exec /sbin/init: no such file or directory") {
			t.Errorf("start %d: error %q does not name the failed step and its errno", attempt, r.err)
		}
		if attempt == 1 {
			first = r
		} else if r.code != first.code || r.err != first.err {
			t.Errorf("second start failed differently (a leftover of the first?):\nfirst:  exit %d %q\nsecond: exit %d %q",
				first.code, first.err, r.code, r.err)
		}
		if s := status(t, "170"); s.State != "stopped" || s.InitPID != 0 {
			t.Errorf("after failed start %d: status %+v", attempt, s)
		}
		if cg := vpsCgroups("170"); len(cg) > 0 {
			t.Errorf("after failed start %d: cgroups left: %v", attempt, cg)
		}
		mi, _ := os.ReadFile("/proc/self/mountinfo")
		if strings.Contains(string(mi), vpsRoot) {
			t.Errorf("after failed start %d: a mount of %s in the host's mount table", attempt, vpsRoot)
		}
		if m := ourMonitors(); len(m) > 0 {
			t.Errorf("after failed start %d: monitor processes left: %v", attempt, m)
		}
		if _, err := os.Stat(filepath.Join(vpsRoot, "run.json")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("after failed start %d: run.json left: %v", attempt, err)
		}
		if ents, _ := os.ReadDir(filepath.Join(root, "tmp")); len(ents) > 0 {
			t.Errorf("after failed start %d: leftovers in tmp/: %v", attempt, ents)
		}
	}

	must(t, "destroy", "170")
	must(t, "template", "remove", tpl)
	if _, err := os.Stat(filepath.Join(root, "templates", tpl)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("template %s left after remove: %v", tpl, err)
	}
}

func TestCreateFailureLeavesNoTrace(t *testing.T) {
	checkClean(t, "180", "181")
	waitTmpEmpty(t, 20*time.Second) // earlier tests' removers: not this test's leftovers
	pid := os.Getpid()
	held := fmt.Sprintf("ct-%d", pid)
	other := fmt.Sprintf("ct2-%d", pid)
	must(t, "create", "180", "--template", "busybox", "--ipadd", "198.18.0.180", "--name", held)

	cases := []struct {
		name string
		code int
		args []string
	}{
		// Refused once the ID is known free, before anything is staged.
		{"ip in use", 78, []string{"create", "181", "--template", "busybox", "--name", other, "--ipadd", "198.18.0.180"}},
		{"uid pool full", 212, []string{"create", "181", "--template", "busybox", "--name", other, "--idmap-size", "4000000000"}},
		// Refused last: the VPS directory is already staged in tmp/ when the name claim fails.
		{"name in use", 44, []string{"create", "181", "--template", "busybox", "--name", held, "--ipadd", "198.18.0.181"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := storeDigest(t)
			r := expectCode(t, c.code, c.args...)
			checkErrLine(t, c.args, r)
			if _, err := os.Lstat(filepath.Join(root, "vps", "181")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("vps/181 exists after a failed create: %v", err)
			}
			if _, err := os.Lstat(filepath.Join(root, "names", other)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("names/%s exists after a failed create: %v", other, err)
			}
			if tgt, err := os.Readlink(filepath.Join(root, "names", held)); err != nil || tgt != "180" {
				t.Errorf("names/%s = %q, %v; want 180", held, tgt, err)
			}
			if ents, _ := os.ReadDir(filepath.Join(root, "tmp")); len(ents) > 0 {
				t.Errorf("leftovers in tmp/: %v", ents)
			}
			if d := before.diff(storeDigest(t)); d != "" {
				t.Errorf("failed create changed the state root:\n%s", d)
			}
			if s := status(t, "181"); s.State != "deleted" {
				t.Errorf("status 181 = %+v, want deleted", s)
			}
		})
	}
	// The addresses and the name are still usable once the failed creates are gone.
	must(t, "create", "181", "--template", "busybox", "--name", other, "--ipadd", "198.18.0.181")
	must(t, "destroy", "181")
	must(t, "destroy", "180")
}

// TestStartCgroupRefusal: limits the kernel (or the cgroup package) refuses at boot, after the
// init child was cloned (cgroup v1 makes the groups meanwhile): the start fails with the bad
// value's exit code and leaves no cgroup, process or mount; with the config fixed it boots.
func TestStartCgroupRefusal(t *testing.T) {
	const id = "115"
	checkClean(t, id)
	must(t, "create", id, "--template", "busybox")
	conf := filepath.Join(root, "vps", id, "vps.conf")
	orig, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	// Each fits an int64, their sum (memory+swap) does not.
	bad := append(append([]byte{}, orig...), "MEMORY=\"5000000T\"\nSWAP=\"5000000T\"\n"...)
	if err := os.WriteFile(conf, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	r := vpsctl(t, "start", id)
	if r.code != 21 || !strings.Contains(r.err, "cgroup limits") {
		t.Fatalf("start with refused limits: code %d, stderr %q; want 21 naming the cgroup limits", r.code, r.err)
	}
	if dirs := groupDirs(id); len(dirs) > 0 {
		t.Fatalf("cgroups left after the failed start: %v", dirs)
	}
	if s := status(t, id); s.State != "stopped" {
		t.Fatalf("state after the failed start: %q", s.State)
	}
	if err := os.WriteFile(conf, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	must(t, "start", id)
	must(t, "stop", "--kill", id)
}

// TestStartOutOfDescriptors: with no descriptor to spare, start's fork in the C constructor
// cannot make its pipe and leaves the command to the Go runtime, which fails with one clear
// line (exit 3, the system error) and changes nothing; with descriptors back, the VPS starts.
func TestStartOutOfDescriptors(t *testing.T) {
	checkClean(t, "192")
	must(t, "create", "192", "--template", "busybox")
	defer vpsctl(t, "destroy", "--force", "192")
	cmd := exec.Command("sh", "-c", `ulimit -n 3 && exec "$0" --root "$1" start 192`, bin, root)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 || !strings.Contains(string(out), "too many open files") ||
		strings.Count(strings.TrimSpace(string(out)), "\n") != 0 {
		t.Fatalf("start with 3 descriptors: %v, output %q; want exit 3 and one line naming the problem", err, out)
	}
	if s := status(t, "192"); s.State != "stopped" {
		t.Fatalf("after the failed start: state %q, want stopped", s.State)
	}
	must(t, "start", "192")
	must(t, "stop", "--kill", "192")
	must(t, "destroy", "192")
}
