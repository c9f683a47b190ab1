package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestHostReboot: the host reboots for real. The VM tier (scripts/vm-guest.sh) runs this test
// twice in one state root kept on the VM's disk (VPSCTL_TEST_STATE): with
// VPSCTL_REBOOT_STAGE=before, then reboots the VM, then with VPSCTL_REBOOT_STAGE=after.
//
// Before: VPSs are made, two of them left running. After: this is another boot; the VPSs are
// all there, stopped (nothing starts them at boot yet), with no group, monitor or mount of the
// previous boot; and they boot and stop again.
//
// The host-operations checks (the service unit installed, VPSs created with --onboot, running
// again after the reboot in boot order, stopped gracefully by the shutdown before it) belong
// in rebootBefore and rebootAfter.
func TestHostReboot(t *testing.T) {
	stage := os.Getenv("VPSCTL_REBOOT_STAGE")
	if stage == "" || os.Getenv("VPSCTL_TEST_STATE") == "" {
		t.Skip("runs around a reboot of the VM tier's host (scripts/vm-test.sh)")
	}
	mark := filepath.Join(root, "reboot-test.boot-id")
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		t.Fatal(err)
	}
	boot := strings.TrimSpace(string(b))
	switch stage {
	case "before":
		rebootBefore(t)
		if err := os.WriteFile(mark, []byte(boot), 0o644); err != nil {
			t.Fatal(err)
		}
	case "after":
		prev, err := os.ReadFile(mark)
		if err != nil {
			t.Fatalf("the first half's mark: %v", err)
		}
		if strings.TrimSpace(string(prev)) == boot {
			t.Fatalf("boot id %s before and after: the host was not rebooted", boot)
		}
		rebootAfter(t)
		os.Remove(mark)
	default:
		t.Fatalf("VPSCTL_REBOOT_STAGE=%q: want before or after", stage)
	}
}

// rebootIDs are the reboot test's VPSs: the first two are running when the host goes down.
var rebootIDs = []string{"181", "182", "183"}

func rebootBefore(t *testing.T) {
	for _, id := range rebootIDs {
		must(t, "create", id, "--template", "busybox", "--hostname", "reboot"+id)
	}
	for _, id := range rebootIDs[:2] {
		must(t, "start", id)
		must(t, "exec", id, "--", "sh", "-c", "echo kept > /root/before-reboot")
	}
}

func rebootAfter(t *testing.T) {
	for _, id := range rebootIDs {
		if s := status(t, id); s.State != "stopped" {
			t.Errorf("VPS %s after the reboot: %+v, want stopped", id, s)
		}
		if dirs := groupDirs(id); len(dirs) > 0 {
			t.Errorf("VPS %s: groups of the previous boot: %v", id, dirs)
		}
	}
	if mons := ourMonitors(); len(mons) > 0 {
		t.Errorf("monitors after the reboot: %v", mons)
	}
	if mi, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mi), root) {
		t.Errorf("mounts below the state root after the reboot:\n%s", mi)
	}
	// They boot again, with what they wrote before it.
	for _, id := range rebootIDs[:2] {
		must(t, "start", id)
		if got := strings.TrimSpace(must(t, "exec", id, "--", "cat", "/root/before-reboot")); got != "kept" {
			t.Errorf("VPS %s: a file written before the reboot reads %q", id, got)
		}
		if got := strings.TrimSpace(must(t, "exec", id, "--", "hostname")); got != "reboot"+id {
			t.Errorf("VPS %s: hostname %q", id, got)
		}
	}
	for _, id := range rebootIDs {
		must(t, "destroy", "--force", id)
	}
}
