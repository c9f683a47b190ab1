package monitor

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/vpsctl/vpsctl/cgroup"
	"github.com/vpsctl/vpsctl/network"
	"github.com/vpsctl/vpsctl/store"
	"golang.org/x/sys/unix"
)

// TestInitMsgEncode: the init child's config is NUL-terminated key=value strings ending with an
// empty one, repeated keys in order (what initchild.c's parser walks).
func TestInitMsgEncode(t *testing.T) {
	m := initMsg{NSFlags: 0x7e020000, Hostname: "web1", Domainname: "", Console: "/dev/pts/3", CapDrop: 0x1f,
		Init: []string{"/sbin/init", "-s"}, Env: []string{"container=vpsctl", "TERM=linux"},
		Cgroups: []cgroup.FS{{Type: "cgroup", Mount: "/sys/fs/cgroup/cpu,cpuacct", Options: "cpu,cpuacct"}, {Type: "cgroup2", Mount: "/sys/fs/cgroup/unified"}}}
	b, err := m.encode()
	if err != nil {
		t.Fatal(err)
	}
	got := string(b)
	want := strings.Join([]string{"ns=2114060288", "hostname=web1", "domainname=", "console=/dev/pts/3", "capdrop=1f",
		"cgroupfs=cgroup /sys/fs/cgroup/cpu,cpuacct cpu,cpuacct", "cgroupfs=cgroup2 /sys/fs/cgroup/unified ",
		"arg=/sbin/init", "arg=-s", "env=container=vpsctl", "env=TERM=linux"}, "\x00") + "\x00\x00"
	if got != want {
		t.Fatalf("encode = %q\nwant     %q", got, want)
	}
}

// TestGoAheadEncode: the go-ahead says how many tasks files come with it (initchild.c refuses
// a go-ahead whose count and files differ).
func TestGoAheadEncode(t *testing.T) {
	for n, want := range map[int]string{0: "tasks=0\x00\x00", 9: "tasks=9\x00\x00"} {
		if b, err := goAhead(n); err != nil || string(b) != want {
			t.Errorf("goAhead(%d) = %q, %v; want %q", n, b, err, want)
		}
	}
}

// TestClaimMsgEncode: a parked init child's second message has the keys a claim may set, in
// initMsg's format; park=1 marks the first.
func TestClaimMsgEncode(t *testing.T) {
	b, err := claimMsg("h1", "", []string{"/bin/sh", "-c", "a b"}, []string{"TERM=linux"})
	if err != nil {
		t.Fatal(err)
	}
	got := string(b)
	want := strings.Join([]string{"hostname=h1", "domainname=", "arg=/bin/sh", "arg=-c", "arg=a b", "env=TERM=linux"}, "\x00") + "\x00\x00"
	if got != want {
		t.Fatalf("claimMsg = %q\nwant       %q", got, want)
	}
	m := initMsg{Park: true}
	if b, _ := m.encode(); !strings.Contains(string(b), "\x00park=1\x00") {
		t.Fatalf("initMsg with Park: %q", b)
	}
	// A value the format cannot carry is refused, not sent cut short.
	if _, err := (&initMsg{Hostname: "a\x00b"}).encode(); err == nil {
		t.Fatal("a NUL in a value was encoded")
	}
	// initchild.c splits a cgroupfs= value at its first two spaces.
	if _, err := (&initMsg{Cgroups: []cgroup.FS{{Type: "cgroup", Mount: "/sys/fs/cgroup/a b"}}}).encode(); err == nil {
		t.Fatal("a cgroup mount point with a space was encoded")
	}
}

// TestParseInitError: struct init_error is an int32 errno and a NUL-padded step; anything of
// another size is not one.
func TestParseInitError(t *testing.T) {
	b := make([]byte, initErrorSize)
	binary.NativeEndian.PutUint32(b, uint32(syscall.ENOENT))
	copy(b[4:], "exec /sbin/init")
	e, ok := parseInitError(b)
	if !ok || e.Stage != "exec /sbin/init" || !errors.Is(e, syscall.ENOENT) {
		t.Fatalf("parseInitError = %+v, %v", e, ok)
	}
	if e.Error() != "exec /sbin/init: no such file or directory" {
		t.Errorf("Error() = %q", e.Error())
	}
	for _, n := range []int{0, 4, initErrorSize - 1, initErrorSize + 1} {
		if _, ok := parseInitError(make([]byte, n)); ok {
			t.Errorf("a %d-byte message parsed as an init error", n)
		}
	}
}

// TestReadyMsgFailure: a monitor's report turns into the error the command returns, with the
// sentinel it names (exit codes branch on it) and none when the boot succeeded.
func TestReadyMsgFailure(t *testing.T) {
	if err := (Report{InitPID: 7}).Failure(101); err != nil {
		t.Fatalf("success reported as %v", err)
	}
	err := Report{Kind: "ip_in_use", Error: "198.18.0.5 is in use"}.Failure(101)
	if !errors.Is(err, network.ErrIPInUse) || err.Error() != "VPS 101: 198.18.0.5 is in use: "+network.ErrIPInUse.Error() {
		t.Fatalf("ip_in_use report: %v", err)
	}
	// A report made of an error that wrapped the sentinel already says it: not twice.
	err = Report{Kind: "locked", Error: "template \"t\": " + store.ErrLocked.Error() + ": another keeper runs"}.Failure(101)
	if !errors.Is(err, store.ErrLocked) || strings.Count(err.Error(), store.ErrLocked.Error()) != 1 {
		t.Fatalf("locked report: %v", err)
	}
	err = Report{Kind: "no_such_kind", Error: "clone init: EPERM"}.Failure(101)
	if err == nil || err.Error() != "VPS 101: clone init: EPERM" {
		t.Fatalf("unknown kind: %v", err)
	}
}

// TestInitMsgTrace: the init child is told to trace only when vpsctl traces.
func TestInitMsgTrace(t *testing.T) {
	m := initMsg{NSFlags: 1, Init: []string{"/sbin/init"}}
	if b, _ := m.encode(); strings.Contains(string(b), "trace=") {
		t.Fatalf("untraced config has a trace key: %q", b)
	}
	m.Trace = true
	if b, _ := m.encode(); !strings.Contains(string(b), "\x00trace=1\x00") {
		t.Fatalf("traced config lacks trace=1: %q", b)
	}
}

// TestOpenTaskFiles: the go-ahead's tasks files are opened for writing, in order; one that
// cannot be opened (a group gone between its making and the open) fails the boot with its path
// named, and the files opened before it are closed again.
func TestOpenTaskFiles(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	for _, p := range []string{a, b} {
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	fds, err := openTaskFiles([]string{a, b})
	if err != nil || len(fds) != 2 {
		t.Fatalf("openTaskFiles: %v, %v", fds, err)
	}
	if _, err := unix.Write(fds[1], []byte("0")); err != nil {
		t.Errorf("write to the second file: %v", err)
	}
	closeFDs(fds)
	if got, _ := os.ReadFile(b); string(got) != "0" {
		t.Errorf("second file holds %q, want the write to it", got)
	}

	before := openFDs(t)
	missing := filepath.Join(dir, "gone", "tasks")
	fds, err = openTaskFiles([]string{a, missing, b})
	if err == nil || fds != nil || !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Fatalf("openTaskFiles with %s missing: %v, %v; want an error naming it", missing, fds, err)
	}
	if after := openFDs(t); after != before {
		t.Errorf("open files: %d before, %d after the failed open", before, after)
	}
}

// openFDs counts this process's open files.
func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}
