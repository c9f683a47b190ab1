package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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

	// Without -root it makes a state root of its own in /var/tmp, and leaves nothing of it.
	before := ownRoots()
	t.Cleanup(func() { before.removeNew() })
	own := exec.Command(embed, "-id", "4246")
	var ownOut strings.Builder
	own.Stdout, own.Stderr = &ownOut, &ownOut
	if err := own.Start(); err != nil {
		t.Fatal(err)
	}
	if err := waitCmd(t, own, 120*time.Second); err != nil || !strings.Contains(ownOut.String(), "destroyed VPS 4246") {
		t.Fatalf("embed without -root: %v\n%s", err, ownOut.String())
	}
	after := ownRoots()
	if fmt.Sprint(after.dirs) != fmt.Sprint(before.dirs) {
		t.Errorf("embed without -root left its state root: %v (before: %v)", after.dirs, before.dirs)
	}
	if after.mounts != before.mounts {
		t.Errorf("embed without -root left %d mounts in /var/tmp/vpsctl-embed-* (before: %d)", after.mounts, before.mounts)
	}
	if fmt.Sprint(after.procs) != fmt.Sprint(before.procs) {
		t.Errorf("embed without -root left processes %v working in its state root (before: %v)", after.procs, before.procs)
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

// embedRoots is what exists of the state roots embed makes for itself (/var/tmp/vpsctl-embed-*):
// the directories, the mounts in them, and the processes working in them (its LXCFS and
// supervisor name the root on their command line).
type embedRoots struct {
	dirs   []string
	mounts int
	procs  []int
}

const embedRootPrefix = "/var/tmp/vpsctl-embed-"

func ownRoots() embedRoots {
	var r embedRoots
	r.dirs, _ = filepath.Glob(embedRootPrefix + "*")
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	r.mounts = strings.Count(string(mi), embedRootPrefix)
	r.procs = processes(func(cl []byte, _ string) bool { return strings.Contains(string(cl), embedRootPrefix) })
	return r
}

// removeNew removes what a failing run left since r was taken: its processes, their mount,
// the directory.
func (r embedRoots) removeNew() {
	now := ownRoots()
	for _, pid := range now.procs {
		if !slices.Contains(r.procs, pid) {
			unix.Kill(pid, unix.SIGKILL)
		}
	}
	for _, d := range now.dirs {
		if !slices.Contains(r.dirs, d) {
			unix.Unmount(filepath.Join(d, "lxcfs"), unix.MNT_DETACH)
			os.RemoveAll(d)
		}
	}
}
