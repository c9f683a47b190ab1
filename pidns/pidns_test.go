package pidns

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startVPS starts `sh -c script` as PID 1 of a new PID namespace and kills it (and with it,
// as the kernel does for a namespace whose init dies, every process in the namespace and
// in namespaces nested in it) when the test ends.
func startVPS(t *testing.T, script string) HostPID {
	t.Helper()
	cmd := exec.Command("sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Errorf("init %d did not exit within 10s of SIGKILL", pid)
		}
	})
	return HostPID(pid)
}

// listN waits (bounded) until the VPS of init has n processes.
func listN(t *testing.T, init HostPID, n int) []Proc {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		procs, err := List(init)
		if err != nil {
			t.Fatal(err)
		}
		if len(procs) == n || time.Now().After(deadline) {
			if len(procs) != n {
				t.Fatalf("VPS of %d has %d processes, want %d: %v", init, len(procs), n, procs)
			}
			return procs
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func ownDepth(t *testing.T) int {
	s, err := readStatus(HostPID(os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	return len(s.NSpid)
}

func TestTranslateNested(t *testing.T) {
	requireRoot(t)
	base := ownDepth(t) // our level is base-1; a VPS we start is at base, nested ones at base+1
	// VPS A: init, a sleep, and an unshare'd nested PID namespace holding a shell and two sleeps.
	a := startVPS(t, `sleep 31 & unshare --pid --fork sh -c 'sleep 32 & sleep 33 & wait' & wait`)
	// VPS B, a sibling at the same depth with the same small PIDs, and its own nested namespace.
	b := startVPS(t, `sleep 34 & unshare --pid --fork sh -c 'sleep 35 & wait' & wait`)
	procsA := listN(t, a, 6)
	procsB := listN(t, b, 5)

	if procsA[0].VPS != 1 || procsA[0].Host != a {
		t.Fatalf("first process %+v, want init %d as VPS PID 1", procsA[0], a)
	}
	hostInA := map[HostPID]bool{}
	var nestedInit HostPID
	for i, p := range procsA {
		hostInA[p.Host] = true
		if i > 0 && p.VPS <= procsA[i-1].VPS {
			t.Errorf("not sorted by VPS PID: %v", procsA)
		}
		if p.VPS > 100 {
			t.Errorf("VPS PID %d is not small", p.VPS)
		}
		if p.Status.NSpid[0] != int(p.Host) || p.Status.NSpid[base] != int(p.VPS) {
			t.Errorf("%+v: NSpid does not match", p)
		}
		v, err := ToVPS(a, p.Host)
		if err != nil || v != p.VPS {
			t.Errorf("ToVPS(%d, %d) = %d, %v; want %d", a, p.Host, v, err, p.VPS)
		}
		if len(p.Status.NSpid) == base+2 && p.Status.NSpid[base+1] == 1 {
			nestedInit = p.Host
		}
		if p.Cmdline == "" {
			t.Errorf("%+v: no command line", p)
		}
	}
	if nestedInit == 0 {
		t.Fatalf("no nested init among %v", procsA)
	}
	for _, p := range procsB {
		if hostInA[p.Host] {
			t.Errorf("process %d of sibling VPS B listed in A", p.Host)
		}
		if _, err := ToVPS(a, p.Host); !errors.Is(err, ErrNotInVPS) {
			t.Errorf("ToVPS(A, %d of B at depth %d) = %v; want ErrNotInVPS", p.Host, len(p.Status.NSpid), err)
		}
	}

	// The nested namespace is a VPS of its own, seen from its init: 3 processes, PIDs from
	// its own level, all of them also in A.
	nested := listN(t, nestedInit, 3)
	for _, p := range nested {
		if !hostInA[p.Host] || p.Status.NSpid[base+1] != int(p.VPS) || len(p.Status.NSpid) != base+2 {
			t.Errorf("nested %+v", p)
		}
	}
	if nested[0].Host != nestedInit || nested[0].VPS != 1 {
		t.Errorf("nested first %+v", nested[0])
	}
	if _, err := ToVPS(nestedInit, a); !errors.Is(err, ErrNotInVPS) {
		t.Errorf("parent VPS's init seen from nested: %v", err)
	}

	// Outside and missing processes, and a non-init as VPS.
	if _, err := ToVPS(a, HostPID(os.Getpid())); !errors.Is(err, ErrNotInVPS) {
		t.Errorf("ToVPS(A, self) = %v", err)
	}
	if _, err := ToVPS(a, 5000000); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ToVPS(A, missing) = %v", err)
	}
	if _, err := List(5000000); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("List(missing) = %v", err)
	}
	if _, err := ToVPS(procsA[1].Host, a); !errors.Is(err, ErrNotInit) {
		t.Errorf("VPS named by a non-init: %v", err)
	}
	ino, err := pidNSInode(a)
	if err != nil {
		t.Fatal(err)
	}
	link, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", a))
	if link != fmt.Sprintf("pid:[%d]", ino) {
		t.Errorf("PidNSInode = %d, link %q", ino, link)
	}
	self, _ := pidNSInode(HostPID(os.Getpid()))
	if self == ino {
		t.Error("VPS shares our PID namespace")
	}

	// Nothing is left once the inits are killed: the kernel takes the nested namespace too.
	all := append(procsA, procsB...)
	for _, p := range []HostPID{a, b} {
		if err := syscall.Kill(int(p), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, p := range all {
		for {
			s, err := readStatus(p.Host)
			if errors.Is(err, os.ErrNotExist) || err == nil && !strings.Contains(s.Name, "sleep") && !strings.Contains(s.Name, "sh") && s.Name != "unshare" {
				break // gone, or its PID already reused by something else
			}
			if err == nil && s.State == "Z" && (p.Host == a || p.Host == b) {
				break // our own child, reaped by the cleanup's Wait
			}
			if time.Now().After(deadline) {
				t.Fatalf("process %d (%s) still there after its VPS's init was killed", p.Host, p.Status.Name)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// pidNSInode returns the inode number of the PID namespace of process pid (what
// readlink /proc/PID/ns/pid shows as pid:[INODE]).
func pidNSInode(pid HostPID) (uint64, error) {
	d, err := openProc(pid)
	if err != nil {
		return 0, err
	}
	defer d.close()
	ns, err := d.pidNS()
	return ns.ino, err
}

// readStatus reads and parses /proc/PID/status. A process that does not exist (or exits while
// being read) gives an error wrapping os.ErrNotExist.
func readStatus(pid HostPID) (Status, error) {
	path := "/proc/" + strconv.Itoa(int(pid)) + "/status"
	b, err := os.ReadFile(path)
	if err != nil {
		return Status{}, gone(err)
	}
	s, err := ParseStatus(string(b))
	if err != nil {
		return Status{}, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}
