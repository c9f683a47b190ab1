package nsenter

import (
	"os"
	"os/exec"
	"slices"
	"syscall"
	"testing"

	"github.com/vpsctl/vpsctl/cgroup"
	"github.com/vpsctl/vpsctl/internal/testutil"
	"golang.org/x/sys/unix"
)

// compareFastGroups checks that the C fast stop names VPS 4242's groups and spare slots as
// package cgroup does on the layout this process sees.
func compareFastGroups(t *testing.T) {
	t.Helper()
	cg, err := cgroup.New("vpsctl/4242")
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, d := range cg.Paths() {
		want = append(want, d)
	}
	set := func(s []string) []string { s = slices.Clone(s); slices.Sort(s); return slices.Compact(s) }
	got, spares, ok := FastStopGroups(4242)
	if !ok {
		t.Fatalf("the fast stop cannot name the groups here (package cgroup: %v)", want)
	}
	if !slices.Equal(set(got), set(want)) {
		t.Errorf("groups: fast stop %v, package cgroup %v", set(got), set(want))
	}
	if !slices.Equal(set(spares), set(cg.Spares())) {
		t.Errorf("spare slots: fast stop %v, package cgroup %v", set(spares), set(cg.Spares()))
	}
}

// TestFastStopGroups: fastlife.c's groups are package cgroup's, on this host (hybrid here) and
// on a cgroup2-only host (a copy of this test in a mount namespace with cgroup2 mounted on
// /sys/fs/cgroup).
func TestFastStopGroups(t *testing.T) {
	if os.Getenv("_VPSCTL_TEST_V2ONLY") != "" {
		if err := unix.Mount("vpsctl-test", "/sys/fs/cgroup", "cgroup2", 0, ""); err != nil {
			t.Fatalf("mount cgroup2: %v", err)
		}
		compareFastGroups(t)
		return
	}
	testutil.RequireRoot(t)
	compareFastGroups(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestFastStopGroups$", "-test.v")
	cmd.Env = append(os.Environ(), "_VPSCTL_TEST_V2ONLY=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS} // made private by Go
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cgroup2-only copy: %v\n%s", err, out)
	}
}
