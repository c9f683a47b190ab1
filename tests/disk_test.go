package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// Issue 21's disk space per VPS (--diskspace): the VPS's files in a disk image of the limit's
// size (package disk), live changes, refusals, and nothing left on the host.

// dfSizeKiB is the size of VPS id's / as df inside shows it, in KiB.
func dfSizeKiB(t *testing.T, id string) int64 {
	t.Helper()
	out := must(t, "exec", id, "--", "df", "-k", "/")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	f := strings.Fields(lines[len(lines)-1])
	if len(f) < 2 {
		t.Fatalf("df: %q", out)
	}
	n, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		t.Fatalf("df: %q", out)
	}
	return n
}

// loopsOf lists the loop devices backed by a file of VPS id in this run's state root.
func loopsOf(t *testing.T, id string) string {
	t.Helper()
	out, _ := exec.Command("losetup", "-a").Output()
	var mine []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, filepath.Join(root, "vps", id)+"/") {
			mine = append(mine, l)
		}
	}
	return strings.Join(mine, "\n")
}

// near reports whether got (KiB) is want (KiB) within 3%: a file system's size as df shows it
// is the image's less what the file system keeps for itself.
func near(got, want int64) bool {
	return got <= want && got >= want-want*3/100
}

func TestDiskSpace(t *testing.T) {
	const id = "420"
	checkClean(t, id)
	t.Cleanup(func() {
		vpsctl(t, "destroy", "--force", id)
		waitFor(t, 10e9, "the image's loop device to go", func() bool { return loopsOf(t, id) == "" })
	})
	must(t, "create", id, "--template", "busybox", "--diskspace", "280M:300M")
	image := filepath.Join(root, "vps", id, "disk.img")
	if conf, _ := os.ReadFile(filepath.Join(root, "vps", id, "vps.conf")); !strings.Contains(string(conf), `DISKSPACE="286720:307200"`) {
		t.Fatalf("vps.conf: %s", conf)
	}
	must(t, "start", "--wait", id)
	if got := dfSizeKiB(t, id); !near(got, 300<<10) {
		t.Fatalf("df / says %d KiB, want about %d", got, 300<<10)
	}
	// Writing past the limit fails inside; the image takes no more of the host than it had.
	var before syscall.Stat_t
	if err := syscall.Stat(image, &before); err != nil {
		t.Fatal(err)
	}
	r := vpsctl(t, "exec", id, "--", "dd", "if=/dev/zero", "of=/big", "bs=1M", "count=400")
	if r.code == 0 || !strings.Contains(r.err, "No space left on device") {
		t.Fatalf("dd of 400M into 300M: exit %d, %q", r.code, r.err)
	}
	var after syscall.Stat_t
	if err := syscall.Stat(image, &after); err != nil {
		t.Fatal(err)
	}
	if after.Blocks != before.Blocks {
		t.Fatalf("the image took host blocks: %d -> %d", before.Blocks, after.Blocks)
	}
	// Live: grow; a shrink below the usage is refused with both figures and changes nothing.
	must(t, "set", id, "--diskspace", "600M")
	if got := dfSizeKiB(t, id); !near(got, 600<<10) {
		t.Fatalf("after set --diskspace 600M: df says %d KiB", got)
	}
	conf, _ := os.ReadFile(filepath.Join(root, "vps", id, "vps.conf"))
	small := expectCode(t, 21, "set", id, "--diskspace", "256M")
	if !strings.Contains(small.err, "256M is less than the") || !strings.Contains(small.err, "in use") {
		t.Fatalf("shrink below usage: %q", small.err)
	}
	if now, _ := os.ReadFile(filepath.Join(root, "vps", id, "vps.conf")); string(now) != string(conf) {
		t.Fatalf("a refused shrink changed vps.conf:\n%s\n%s", conf, now)
	}
	if got := dfSizeKiB(t, id); !near(got, 600<<10) {
		t.Fatalf("a refused shrink changed the size: %d KiB", got)
	}
	// metrics: the image's usage (the 300M that dd filled, less the file system's own) and
	// the hard limit.
	var used, limit float64
	for _, l := range strings.Split(must(t, "metrics"), "\n") {
		fmt.Sscanf(l, `vpsctl_vps_disk_usage_bytes{id="`+id+`",name=""} %g`, &used)
		fmt.Sscanf(l, `vpsctl_vps_disk_limit_bytes{id="`+id+`",name=""} %g`, &limit)
	}
	if used < 250<<20 || used > 600<<20 || limit != 600<<20 {
		t.Fatalf("metrics: disk usage %g, limit %g; want about 300M used of 600M", used, limit)
	}
	must(t, "exec", id, "--", "rm", "/big")
	must(t, "set", id, "--diskspace", "400M")
	if got := dfSizeKiB(t, id); !near(got, 400<<10) {
		t.Fatalf("after a live shrink to 400M: df says %d KiB", got)
	}
	// What list and stats show.
	var rows []map[string]any
	if err := json.Unmarshal([]byte(must(t, "list", "-o", "id,diskspace,diskspace.s,diskspace.h,diskinodes", "--format", "json", id)), &rows); err != nil || len(rows) != 1 {
		t.Fatalf("list: %v %v", rows, err)
	}
	if rows[0]["diskspace.h"] != float64(400<<10) || rows[0]["diskspace.s"] != float64(400<<10) {
		t.Fatalf("list: %v", rows[0])
	}
	if used, ok := rows[0]["diskspace"].(float64); !ok || used <= 0 || used > 400<<10 {
		t.Fatalf("list diskspace: %v", rows[0])
	}
	if n, ok := rows[0]["diskinodes"].(float64); !ok || n < 3 {
		t.Fatalf("list diskinodes: %v", rows[0])
	}
	var st struct {
		Disk *struct {
			HardBytes uint64 `json:"hard_bytes"`
			UsedBytes uint64 `json:"used_bytes"`
		} `json:"disk"`
	}
	if err := json.Unmarshal([]byte(must(t, "stats", "--format", "json", id)), &st); err != nil || st.Disk == nil || st.Disk.HardBytes != 400<<20 {
		t.Fatalf("stats: %+v %v", st.Disk, err)
	}
	// Kept across a restart, changed while stopped, and its files with it.
	must(t, "exec", id, "--", "sh", "-c", "echo kept > /marker")
	must(t, "restart", id)
	if got := strings.TrimSpace(must(t, "exec", id, "--", "cat", "/marker")); got != "kept" {
		t.Fatalf("marker after restart: %q", got)
	}
	must(t, "stop", "--kill", id)
	waitFor(t, 10e9, "the stopped VPS's loop device to go", func() bool { return loopsOf(t, id) == "" })
	must(t, "set", id, "--diskspace", "500M")
	must(t, "start", id)
	if got := dfSizeKiB(t, id); !near(got, 500<<10) {
		t.Fatalf("after set while stopped: df says %d KiB", got)
	}
	if got := strings.TrimSpace(must(t, "exec", id, "--", "cat", "/marker")); got != "kept" {
		t.Fatalf("marker after an offline resize: %q", got)
	}
}

// TestDiskSpaceConvert: a VPS created without a limit gets one while stopped (its files move
// into an image), not while it runs.
func TestDiskSpaceConvert(t *testing.T) {
	const id = "421"
	checkClean(t, id)
	t.Cleanup(func() {
		vpsctl(t, "destroy", "--force", id)
		waitFor(t, 10e9, "the image's loop device to go", func() bool { return loopsOf(t, id) == "" })
	})
	must(t, "create", id, "--template", "busybox")
	must(t, "start", id)
	must(t, "exec", id, "--", "sh", "-c", "echo mine > /root/file")
	r := expectCode(t, 32, "set", id, "--diskspace", "300M")
	if !strings.Contains(r.err, "while it is stopped") {
		t.Fatalf("set --diskspace on a running VPS without an image: %q", r.err)
	}
	must(t, "stop", "--kill", id)
	must(t, "set", id, "--diskspace", "300M")
	must(t, "start", id)
	if got := strings.TrimSpace(must(t, "exec", id, "--", "cat", "/root/file")); got != "mine" {
		t.Fatalf("the VPS's file after the move into its image: %q", got)
	}
	if got := dfSizeKiB(t, id); !near(got, 300<<10) {
		t.Fatalf("df says %d KiB after the move", got)
	}
}

// TestDiskSpaceMoves: a VPS with a disk image is cloned while it runs (its files read where its
// monitor mounted them), backed up stopped (its image mounted privately for that, and let go
// after) and restored, migrated stopped and migrated back live: each copy keeps its files in an
// image of its own with the limit, shifted into its own UID range.
func TestDiskSpaceMoves(t *testing.T) {
	const id, clone, restored, refused = "424", "425", "426", "427"
	checkClean(t, id, clone, restored, refused)
	root2 := otherRoot(t, "disk", id)
	t.Cleanup(func() {
		for _, x := range []string{id, clone, restored, refused} {
			vpsctl(t, "destroy", "--force", x)
		}
		waitFor(t, 10e9, "the images' loop devices to go", func() bool {
			return loopsOf(t, id)+loopsOf(t, clone)+loopsOf(t, restored) == ""
		})
	})
	must(t, "create", id, "--template", "busybox", "--diskspace", "300M")
	must(t, "start", id)
	must(t, "exec", id, "--", "sh", "-c", "echo mine > /root/file; chown 7:7 /root/file")
	// copyOf checks stopped copy x (in state root r): its files in its own image, the file
	// there, owned by 7 inside and by its range's 7 on the host, the limit in force.
	copyOf := func(r, x string) {
		t.Helper()
		run := func(args ...string) string {
			t.Helper()
			res := vpsctl2(t, r, args...)
			if res.code != 0 {
				t.Fatalf("%v in %s: exit %d: %s", args, r, res.code, res.err)
			}
			return res.out
		}
		if _, err := os.Stat(filepath.Join(r, "vps", x, "disk.img")); err != nil {
			t.Fatalf("VPS %s has no disk image: %v", x, err)
		}
		if ents, err := os.ReadDir(filepath.Join(r, "vps", x, "private")); err != nil || len(ents) != 0 {
			t.Fatalf("VPS %s's private directory holds %d entries (%v), want its files in the image", x, len(ents), err)
		}
		run("start", x)
		if got := strings.TrimSpace(run("exec", x, "--", "cat", "/root/file")); got != "mine" {
			t.Fatalf("VPS %s's /root/file: %q", x, got)
		}
		if got := strings.Fields(run("exec", x, "--", "ls", "-ln", "/root/file")); len(got) < 4 || got[2] != "7" || got[3] != "7" {
			t.Fatalf("VPS %s's /root/file inside: %v, want owned by 7:7", x, got)
		}
		out := run("exec", x, "--", "df", "-k", "/")
		if f := strings.Fields(out); len(f) < 2 || !near(atoi(t, f[len(f)-5]), 300<<10) {
			t.Fatalf("VPS %s's df: %s, want about 300M", x, out)
		}
		run("stop", "--kill", x)
	}
	must(t, "clone", id, clone)
	if s := status(t, id); s.State != "running" {
		t.Fatalf("the source after the clone: %+v", s)
	}
	if b1, b2 := idmapBase(t, id), idmapBase(t, clone); b1 == b2 {
		t.Fatalf("the clone shares the source's UID range %d", b1)
	}
	copyOf(root, clone)

	must(t, "stop", "--kill", id)
	dir := t.TempDir()
	backup := filepath.Join(dir, "disk.tar.zst")
	must(t, "backup", id, backup)
	waitFor(t, 10e9, "the image mounted for the backup to be let go", func() bool { return loopsOf(t, id) == "" })
	must(t, "restore", restored, "--from-backup", backup)
	copyOf(root, restored)

	// An image attached elsewhere (its lock held here, as a loop device holds it): a backup
	// and a clone wait for it, boundedly, then are refused with nothing made.
	img, err := os.Open(filepath.Join(root, "vps", id, "disk.img"))
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if err := syscall.Flock(int(img.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	// bothRefused: a backup and a clone of the VPS fail with code, the backup's message saying
	// want, and make nothing (dir holds the first backup only).
	bothRefused := func(code int, want string) {
		t.Helper()
		r := expectCode(t, code, "backup", id, filepath.Join(dir, "refused.tar.zst"))
		if !strings.Contains(r.err, want) || strings.Count(r.err, "VPS "+id) != 1 {
			t.Fatalf("refused backup: %s, want one message saying %q", r.err, want)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 1 {
			t.Fatalf("a refused backup left files: %v", ents)
		}
		expectCode(t, code, "clone", id, refused)
		if s := status(t, refused); s.State != "deleted" {
			t.Fatalf("a refused clone made %+v", s)
		}
	}
	bothRefused(32, "attached elsewhere")
	img.Close()

	// Migrated stopped, then back live: the first round read where the monitor mounted the
	// image and its file system held for the final round after the dump; the destination
	// made its image from the first round and took the final round into it.
	must(t, "migrate", id, "local", "--dest-root", root2)
	if s := status(t, id); s.State != "deleted" {
		t.Fatalf("still here after its migration: %+v", s)
	}
	copyOf(root2, id)
	if r := vpsctl2(t, root2, "start", id); r.code != 0 {
		t.Fatalf("start there: %+v", r)
	}
	vpsctl2(t, root2, "exec", id, "--", "sh", "-c", "echo late > /root/late; sleep 1000 >/dev/null 2>&1 &")
	// A restore failing here (no criu): the VPS runs there again, its image mounted again
	// there (the one held for the final round let go first).
	wrapper := filepath.Join(t.TempDir(), "vpsctl-nocriu")
	os.WriteFile(wrapper, []byte("#!/bin/sh\nVPSCTL_CRIU=/nonexistent exec "+bin+" \"$@\"\n"), 0o755)
	if r := vpsctl2(t, root2, "migrate", id, "local", "--dest-root", root, "--dest-vpsctl", wrapper); r.code != 215 || !strings.Contains(r.err, "running here again") {
		t.Fatalf("live migration with a restore failing at the destination: %+v", r)
	}
	if r := vpsctl2(t, root2, "exec", id, "--", "cat", "/root/late"); strings.TrimSpace(r.out) != "late" {
		t.Fatalf("there again: %+v", r)
	}
	if r := vpsctl2(t, root2, "migrate", id, "local", "--dest-root", root); r.code != 0 || !strings.Contains(r.out, "downtime") {
		t.Fatalf("live migration back: %+v", r)
	}
	if s := status(t, id); s.State != "running" {
		t.Fatalf("after the live migration back: %+v", s)
	}
	if got := strings.TrimSpace(must(t, "exec", id, "--", "cat", "/root/late")); got != "late" {
		t.Fatalf("a file written between the rounds: %q", got)
	}
	must(t, "exec", id, "--", "pidof", "sleep")
	if got := dfSizeKiB(t, id); !near(got, 300<<10) {
		t.Fatalf("df says %d KiB after the live migration", got)
	}
	if ents, err := os.ReadDir(filepath.Join(root, "vps", id, "private")); err != nil || len(ents) != 0 {
		t.Fatalf("the private directory holds %d entries (%v), want the files in the image", len(ents), err)
	}
	// A copy whose files do not fit the image its limit makes (the source's limit lowered by
	// hand in its vps.conf, below what its image holds): refused, nothing left.
	must(t, "exec", id, "--", "dd", "if=/dev/zero", "of=/root/big", "bs=1M", "count=262")

	// A running VPS whose monitor is gone (killed): its image, mounted in the monitor's mount
	// namespace, is out of reach: a backup and a clone are refused, saying so, with nothing
	// made; a stop still ends the VPS, and its image is let go.
	monitor := status(t, id).MonitorPID
	if monitor <= 0 {
		t.Fatalf("no monitor: %+v", status(t, id))
	}
	if err := syscall.Kill(monitor, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5e9, "the monitor to be gone", func() bool { return status(t, id).MonitorPID == 0 })
	bothRefused(3, "monitor is gone")
	must(t, "stop", "--kill", id)
	conf := filepath.Join(root, "vps", id, "vps.conf")
	b, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	lowered := regexp.MustCompile(`DISKSPACE="[^"]*"`).ReplaceAll(b, []byte(`DISKSPACE="262144:262144"`))
	if err := os.WriteFile(conf, lowered, 0o600); err != nil {
		t.Fatal(err)
	}
	r := expectCode(t, 21, "clone", id, refused)
	if !strings.Contains(r.err, "in use") {
		t.Fatalf("a clone too large for its limit: %s", r.err)
	}
	if s := status(t, refused); s.State != "deleted" {
		t.Fatalf("a clone too large for its limit left %+v", s)
	}
}

// atoi parses a number a command printed.
func atoi(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("not a number: %q", s)
	}
	return n
}

// TestDiskSpaceBadInput: every refusal is one line, exit 21, and creates or changes nothing.
func TestDiskSpaceBadInput(t *testing.T) {
	const id, made = "422", "423"
	checkClean(t, id, made)
	for _, args := range [][]string{
		{"--diskspace", "100M"},
		{"--diskspace", "lots"},
		{"--diskspace", "2G:1G"},
		{"--diskspace", "-1G"},
		{"--diskspace", "1G", "--diskinodes", "100000"},
		{"--diskinodes", "100000"},
	} {
		r := expectCode(t, 21, append([]string{"create", id, "--template", "busybox"}, args...)...)
		if strings.Count(strings.TrimSpace(r.err), "\n") != 0 || !strings.Contains(r.err, "disk") {
			t.Errorf("create %v: %q", args, r.err)
		}
		if s := status(t, id); s.State != "deleted" {
			t.Fatalf("create %v failed and left VPS %s", args, id)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(root, "tmp")); len(ents) != 0 {
		waitTmpEmpty(t, 20e9)
	}
	// A create killed with its image made: the next command sweeps it, image and all.
	for _, point := range []string{"create-staged", "create-named"} {
		if r := vpsctlEnv(t, []string{"VPSCTL_FAULT=" + point}, "create", id, "--template", "busybox", "--diskspace", "300M"); r.code == 0 {
			t.Fatalf("create killed at %s: exit %d %s", point, r.code, r.err)
		}
		must(t, "list", "-a")
		if s := status(t, id); s.State != "deleted" {
			t.Fatalf("a create killed at %s left VPS %s %s", point, id, s.State)
		}
		waitTmpEmpty(t, 20e9)
	}
	must(t, "create", made, "--template", "busybox", "--diskspace", "300M")
	conf, _ := os.ReadFile(filepath.Join(root, "vps", made, "vps.conf"))
	for _, args := range [][]string{{"--diskspace", "100M"}, {"--diskspace", "x"}, {"--diskinodes", "5"}} {
		expectCode(t, 21, append([]string{"set", made}, args...)...)
	}
	if now, _ := os.ReadFile(filepath.Join(root, "vps", made, "vps.conf")); string(now) != string(conf) {
		t.Fatalf("refused sets changed vps.conf")
	}
}
