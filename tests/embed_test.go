package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestEmbed: a program of its own that imports the library (examples/embed) creates, starts,
// execs into, stops and destroys a VPS, and leaves nothing behind (in a state root it is given,
// and in one it makes for itself): the library's processes (the
// monitor, the joiner, the spawner, the remover) are that program executed again, and its
// packages are those processes only when vpsctl's stage variable says so. Run with arguments a
// vpsctl command has (`destroy 101`), it is still itself: nothing acts on argv.
func TestEmbed(t *testing.T) {
	checkClean(t)
	embed := os.Getenv("VPSCTL_TEST_EMBED") // a prebuilt one (the VM tier compiles nothing)
	if embed == "" {
		embed = filepath.Join(t.TempDir(), "embed")
		if out, err := exec.Command("go", "build", "-o", embed, "../examples/embed").CombinedOutput(); err != nil {
			t.Fatalf("go build ./examples/embed: %v\n%s", err, out)
		}
	}
	// stopLXCFS stops the LXCFS a boot in state root dir started (before its TempDir goes).
	stopLXCFS := func(dir string) {
		t.Cleanup(func() {
			if out, err := exec.Command(bin, "--root", dir, "lxcfs", "stop").CombinedOutput(); err != nil {
				t.Errorf("lxcfs stop in %s: %v: %s", dir, err, out)
			}
		})
	}
	state := t.TempDir()
	stopLXCFS(state)
	cmd := exec.Command(embed, "-root", state, "-id", "4243")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if err := waitCmd(t, cmd, 120*time.Second); err != nil {
		t.Fatalf("embed: %v\n%s", err, out.String())
	}
	for _, want := range []string{"created VPS 4243", "started VPS 4243", "embedded\nuid=0 gid=0(root)", "stopped VPS 4243", "destroyed VPS 4243"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("embed's output lacks %q:\n%s", want, out.String())
		}
	}
	// Its background remover deletes the files after the program exits.
	waitFor(t, 10*time.Second, "the embedded VPS's files to go", func() bool {
		ents, _ := os.ReadDir(filepath.Join(state, "tmp"))
		_, err := os.Stat(filepath.Join(state, "vps", "4243"))
		return len(ents) == 0 && os.IsNotExist(err)
	})

	// Without -root it makes a state root of its own in /var/tmp, and leaves nothing of it: no
	// directory, no mount (the LXCFS its boot started there stopped), no process.
	tmpRoots := func() []string {
		m, _ := filepath.Glob("/var/tmp/vpsctl-embed-*")
		return m
	}
	embedMounts := func() int {
		mi, _ := os.ReadFile("/proc/self/mountinfo")
		return strings.Count(string(mi), "/var/tmp/vpsctl-embed-")
	}
	// Processes working in such a root (its LXCFS and supervisor name it on their command line).
	embedProcs := func() []string {
		var out []string
		cls, _ := filepath.Glob("/proc/[0-9]*/cmdline")
		for _, f := range cls {
			if b, _ := os.ReadFile(f); strings.Contains(string(b), "/var/tmp/vpsctl-embed-") {
				out = append(out, filepath.Base(filepath.Dir(f)))
			}
		}
		return out
	}
	roots, mounts, procs := tmpRoots(), embedMounts(), embedProcs()
	t.Cleanup(func() {
		// What a failing run left: its processes, their mount, the directory.
		for _, p := range embedProcs() {
			if pid, err := strconv.Atoi(p); err == nil && !slices.Contains(procs, p) {
				unix.Kill(pid, unix.SIGKILL)
			}
		}
		for _, r := range tmpRoots() {
			if !slices.Contains(roots, r) {
				unix.Unmount(filepath.Join(r, "lxcfs"), unix.MNT_DETACH)
				os.RemoveAll(r)
			}
		}
	})
	own := exec.Command(embed, "-id", "4246")
	var ownOut strings.Builder
	own.Stdout, own.Stderr = &ownOut, &ownOut
	if err := own.Start(); err != nil {
		t.Fatal(err)
	}
	if err := waitCmd(t, own, 120*time.Second); err != nil || !strings.Contains(ownOut.String(), "destroyed VPS 4246") {
		t.Fatalf("embed without -root: %v\n%s", err, ownOut.String())
	}
	if after := tmpRoots(); strings.Join(after, " ") != strings.Join(roots, " ") {
		t.Errorf("embed without -root left its state root: %v (before: %v)", after, roots)
	}
	if n := embedMounts(); n != mounts {
		t.Errorf("embed without -root left %d mounts in /var/tmp/vpsctl-embed-* (before: %d)", n, mounts)
	}
	if after := embedProcs(); strings.Join(after, " ") != strings.Join(procs, " ") {
		t.Errorf("embed without -root left processes %v working in its state root (before: %v)", after, procs)
	}

	// vpsctl's command words in its argv do nothing to vpsctl's state: a program importing the
	// library is not the vpsctl CLI, whatever its arguments (embed ignores them and does its
	// own job in a state root of its own).
	checkClean(t, "4244")
	must(t, "create", "4244", "--template", "busybox")
	other := t.TempDir()
	stopLXCFS(other)
	r := exec.Command(embed, "-root", other, "-id", "4245", "destroy", "4244")
	r.Env = append(os.Environ(), "VPSCTL_ROOT="+root)
	if b, err := r.CombinedOutput(); err != nil || !strings.Contains(string(b), "destroyed VPS 4245") {
		t.Fatalf("embed destroy 4244: %v\n%s", err, b)
	}
	if s := status(t, "4244"); s.State != "stopped" {
		t.Fatalf("VPS 4244 after a program importing the library ran with `destroy 4244`: %s", s.State)
	}
}
