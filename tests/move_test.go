package tests

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Checkpoint blockers, CRIU's errors, TCP connections kept, clone, backup and migration, on
// busybox VPSs (the Debian guests' are in debian_move_test.go).

// TestCheckpointBlockers: --check names a nested namespace with the process holding it, and an
// established TCP connection without --tcp-established, and exits 213; a checkpoint refuses the
// VPS with the same list and leaves it running; TCP connections are kept across a checkpoint
// and a restore with --tcp-established.
func TestCheckpointBlockers(t *testing.T) {
	const id, addr = "621", "198.18.0.121"
	checkClean(t, id)
	must(t, "create", id, "--template", "busybox", "--ipadd", addr)
	must(t, "start", id)
	must(t, "exec", id, "--", "sh", "-c", "unshare -u sleep 1000 >/dev/null 2>&1 &")
	var r result
	waitFor(t, 10*time.Second, "the nested namespace", func() bool {
		r = vpsctl(t, "checkpoint", "--check", id)
		return strings.Contains(r.out, "nested uts namespace")
	})
	if r.code != 213 || !strings.Contains(r.out, "(sleep") {
		t.Fatalf("check with a nested namespace: exit %d\n%s", r.code, r.out)
	}
	r = expectCode(t, 213, "checkpoint", id)
	if !strings.Contains(r.err, "nested uts namespace") || !strings.Contains(r.err, "nothing was dumped") {
		t.Fatalf("checkpoint refused with: %s", r.err)
	}
	if s := status(t, id); s.State != "running" {
		t.Fatalf("after a refused checkpoint: %+v", s)
	}
	must(t, "exec", id, "--", "killall", "sleep")
	// A process left holding a host file (an exec's output redirected to one on the host).
	hostFile := filepath.Join(t.TempDir(), "out")
	f, err := os.Create(hostFile)
	if err != nil {
		t.Fatal(err)
	}
	held := exec.Command(bin, "--root", root, "exec", id, "--", "sh", "-c", "sleep 1000 </dev/null 2>/dev/null &")
	var stderr bytes.Buffer
	held.Stdout, held.Stderr = f, &stderr
	if err := held.Run(); err != nil {
		t.Fatalf("exec with its output to a host file: %v: %s", err, stderr.String())
	}
	f.Close()
	r = expectCode(t, 213, "checkpoint", "--check", id)
	if !strings.Contains(r.out, hostFile+" is on a mount outside the VPS") || !strings.Contains(r.out, "(sleep") {
		t.Fatalf("check with a host file held:\n%s", r.out)
	}
	must(t, "exec", id, "--", "killall", "sleep")
	// killall returns once it has signalled: the check is clean once the sleep has exited.
	waitFor(t, 10*time.Second, "a clean check once the host file is let go", func() bool {
		r = vpsctl(t, "checkpoint", "--check", id)
		return r.code == 0 && strings.Contains(r.out, "blockers: none")
	})
	startEcho(t, id)
	e := dialEcho(t, addr+":7")
	r = expectCode(t, 213, "checkpoint", "--check", id)
	if !strings.Contains(r.out, "established TCP connection") || !strings.Contains(r.out, "--tcp-established") {
		t.Fatalf("check with a connection:\n%s", r.out)
	}
	if out := must(t, "checkpoint", "--check", "--tcp-established", id); !strings.Contains(out, "blockers: none") {
		t.Fatalf("check --tcp-established:\n%s", out)
	}
	must(t, "checkpoint", "--tcp-established", id)
	if s := status(t, id); s.State != "stopped" {
		t.Fatalf("after checkpoint: %+v", s)
	}
	must(t, "restore", id)
	for i := 0; i < 3; i++ {
		e.roundTrip() // the same connection, on the restored VPS
	}
	must(t, "stop", "--kill", id)
}

// TestCriuErrors: when criu fails, its first error lines are printed (not its last, the
// cleanup's noise) and its log is kept at the path printed; a failed dump leaves the VPS
// running, a failed restore leaves it stopped with nothing behind.
func TestCriuErrors(t *testing.T) {
	const id = "622"
	checkClean(t, id)
	must(t, "create", id, "--template", "busybox")
	must(t, "start", id)
	// A criu whose dump fails as criu does: the cause first, then pages of cleanup.
	fake := filepath.Join(t.TempDir(), "criu")
	script := `#!/bin/sh
[ "$1" = --version ] && { echo "Version: 4.2.1"; exit 0; }
while [ $# -gt 0 ]; do [ "$1" = --images-dir ] && dir=$2; shift; done
{ echo "(00.04) Error (criu/util.c:1533): rlimit: Can't setup RLIMIT_NOFILE for self: Operation not permitted"
  echo "(00.05) Error (criu/namespaces.c:460): the first cause"
  i=0; while [ $i -lt 30 ]; do echo "(00.06) Unseizing $i"; i=$((i+1)); done
  echo "(00.07) Error (criu/cr-dump.c:2111): Dumping FAILED."; } > "$dir/dump.log"
exit 1
`
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	r := vpsctlEnv(t, []string{"VPSCTL_CRIU=" + fake}, "checkpoint", id)
	if r.code != 16 || !strings.Contains(r.err, "the first cause") || strings.Contains(r.err, "RLIMIT") {
		t.Fatalf("failed dump: exit %d, stderr:\n%s", r.code, r.err)
	}
	logPath := ""
	for _, l := range strings.Split(r.err, "\n") {
		if p, ok := strings.CutPrefix(l, "criu's log: "); ok {
			logPath = p
		}
	}
	if b, err := os.ReadFile(logPath); err != nil || !bytes.Contains(b, []byte("Dumping FAILED")) {
		t.Fatalf("criu's log %q not kept (%v); stderr:\n%s", logPath, err, r.err)
	}
	if s := status(t, id); s.State != "running" {
		t.Fatalf("after a failed dump: %+v", s)
	}
	// A real criu failure: a restore from a damaged image.
	must(t, "checkpoint", id)
	img := filepath.Join(root, "vps", id, "checkpoint", "core-1.img")
	if err := os.Truncate(img, 12); err != nil {
		t.Fatal(err)
	}
	r = expectCode(t, 17, "restore", id)
	restoreLog := filepath.Join(root, "vps", id, "checkpoint", "restore.log")
	if !strings.Contains(r.err, "criu's first errors:") || !strings.Contains(r.err, "Error (") || !strings.Contains(r.err, "criu's log: "+restoreLog) {
		t.Fatalf("failed restore: %s", r.err)
	}
	if _, err := os.Stat(restoreLog); err != nil {
		t.Fatal(err)
	}
	if s := status(t, id); s.State != "stopped" {
		t.Fatalf("after a failed restore: %+v", s)
	}
}

// TestClone: a clone of a running VPS gets its own UID range (files, setuid bits and file
// capabilities moved to the same offsets in it), host name and addresses; the source runs on,
// untouched; errors leave nothing behind.
func TestClone(t *testing.T) {
	const src, dst, addr = "623", "624", "198.18.0.124"
	checkClean(t, src, dst, "625")
	must(t, "create", src, "--template", "busybox", "--hostname", "orig", "--ipadd", "198.18.0.123")
	must(t, "start", src)
	must(t, "exec", src, "--", "sh", "-c", "echo hi > /f; chown 1000:1000 /f; cp /bin/busybox /suid; chmod 4755 /suid; mkdir /d; chown 33:33 /d")
	if _, err := exec.LookPath("setcap"); err == nil {
		// A file capability set inside the VPS: version 3, its root ID the VPS root's host ID.
		base := idmapBase(t, src)
		if out, err := exec.Command("setcap", "-n", strconv.Itoa(base), "cap_net_raw+ep", filepath.Join(root, "vps", src, "private", "suid")).CombinedOutput(); err != nil {
			t.Fatalf("setcap: %v %s", err, out)
		}
	}
	confBefore, _ := os.ReadFile(filepath.Join(root, "vps", src, "vps.conf"))
	out := must(t, "clone", src, dst, "--ipadd", addr)
	if !strings.Contains(out, "cloned to "+dst) {
		t.Fatalf("clone: %s", out)
	}
	b1, b2 := idmapBase(t, src), idmapBase(t, dst)
	if b1 == b2 {
		t.Fatalf("the clone shares the source's UID range %d", b1)
	}
	for rel, off := range map[string]int{"f": 1000, "d": 33, "suid": 0, ".": 0} {
		var st syscall.Stat_t
		if err := syscall.Lstat(filepath.Join(root, "vps", dst, "private", rel), &st); err != nil {
			t.Fatal(err)
		}
		if int(st.Uid) != b2+off || int(st.Gid) != b2+off {
			t.Errorf("clone's %s owned by %d:%d, want %d", rel, st.Uid, st.Gid, b2+off)
		}
		if rel == "suid" && st.Mode&syscall.S_ISUID == 0 {
			t.Errorf("clone's setuid bit lost: %o", st.Mode)
		}
	}
	if _, err := exec.LookPath("getcap"); err == nil {
		capOut, _ := exec.Command("getcap", "-n", filepath.Join(root, "vps", dst, "private", "suid")).CombinedOutput()
		if !strings.Contains(string(capOut), "cap_net_raw") || !strings.Contains(string(capOut), "[rootid="+strconv.Itoa(b2)+"]") {
			t.Errorf("clone's file capability: %s", capOut)
		}
	}
	if confAfter, _ := os.ReadFile(filepath.Join(root, "vps", src, "vps.conf")); !bytes.Equal(confBefore, confAfter) {
		t.Errorf("the source's config changed")
	}
	if s := status(t, src); s.State != "running" {
		t.Fatalf("source after the clone: %+v", s)
	}
	if out := vpsctl(t, "status", src); strings.Contains(out.out, "suspended") {
		t.Fatalf("the source stayed frozen: %s", out.out)
	}
	if s := status(t, dst); s.State != "stopped" || s.Hostname != "vps"+dst {
		t.Fatalf("clone: %+v", s)
	}
	must(t, "start", dst)
	if got := strings.TrimSpace(must(t, "exec", dst, "--", "cat", "/f")); got != "hi" {
		t.Fatalf("clone's /f: %q", got)
	}
	if got := must(t, "exec", dst, "--", "ls", "-ln", "/f"); !strings.Contains(got, " 1000 ") {
		t.Fatalf("clone's /f inside: %s", got)
	}
	if got := must(t, "exec", dst, "--", "ip", "-o", "addr"); !strings.Contains(got, addr) || strings.Contains(got, "198.18.0.123") {
		t.Fatalf("clone's addresses: %s", got)
	}
	must(t, "stop", "--kill", dst)
	expectCode(t, 44, "clone", src, dst)
	expectCode(t, 20, "clone", src)
	expectCode(t, 21, "clone", src, "0")
	expectCode(t, 78, "clone", src, "625", "--ipadd", "198.18.0.123")
	expectCode(t, 43, "clone", "629", "625")
	if s := status(t, "625"); s.State != "deleted" {
		t.Fatalf("a failed clone left VPS 625: %+v", s)
	}
	must(t, "stop", "--kill", src)
}

// idmapBase returns the first host ID of VPS id's UID range.
func idmapBase(t *testing.T, id string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "vps", id, "vps.conf"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, `IDMAP="`); ok {
			n, _ := strconv.Atoi(strings.SplitN(v, ":", 2)[0])
			return n
		}
	}
	t.Fatalf("VPS %s has no IDMAP", id)
	return 0
}

// TestBackupRestore: a stopped VPS's backup restored as another VPS (its range is taken: files
// shifted); a running VPS's backup with memory restored after its destroy, its processes
// counting on; truncated, changed and foreign archives refused before anything is made.
func TestBackupRestore(t *testing.T) {
	const id, other = "626", "627"
	checkClean(t, id, other)
	dir := t.TempDir()
	must(t, "create", id, "--template", "busybox", "--ipadd", "198.18.0.126")
	must(t, "start", id)
	must(t, "exec", id, "--", "sh", "-c", "echo kept > /marker; chown 7:7 /marker")
	must(t, "stop", "--kill", id)
	stopped := filepath.Join(dir, "stopped.tar.zst")
	expectCode(t, 31, "backup", id, stopped, "--with-memory")
	out := must(t, "backup", id, stopped, "--format", "json")
	var res struct {
		Bytes       int64  `json:"bytes"`
		Compression string `json:"compression"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Bytes <= 0 {
		t.Fatalf("backup --format json: %v %s", err, out)
	}
	if _, err := exec.LookPath("zstd"); err == nil && res.Compression != "zstd" {
		t.Errorf("compression %q with zstd installed", res.Compression)
	}
	expectCode(t, 44, "restore", id, "--from-backup", stopped)
	// As another VPS: the address is the original's: refused, nothing made.
	expectCode(t, 78, "restore", other, "--from-backup", stopped)
	if s := status(t, other); s.State != "deleted" {
		t.Fatalf("a refused restore left %+v", s)
	}
	must(t, "set", id, "--ipdel", "all", "--save")
	plain := filepath.Join(dir, "plain.tar.zst")
	must(t, "backup", id, plain)
	must(t, "restore", other, "--from-backup", plain)
	if s := status(t, other); s.State != "stopped" {
		t.Fatalf("restored copy: %+v", s)
	}
	b1, b2 := idmapBase(t, id), idmapBase(t, other)
	var st syscall.Stat_t
	if err := syscall.Lstat(filepath.Join(root, "vps", other, "private", "marker"), &st); err != nil || b1 == b2 || int(st.Uid) != b2+7 {
		t.Fatalf("restored copy's range %d (original %d), marker owned by %d (%v)", b2, b1, st.Uid, err)
	}
	must(t, "destroy", other)

	// A running VPS, with memory: the counter goes on after a destroy and a restore.
	must(t, "set", id, "--ipadd", "198.18.0.126", "--save")
	must(t, "start", id)
	must(t, "exec", id, "--", "sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /count.new; mv /count.new /count; sleep 0.1; done >/dev/null 2>&1 &")
	waitFor(t, 10*time.Second, "the counter", func() bool { return readCount(t, id) > 3 })
	pids := must(t, "exec", id, "--", "sh", "-c", "ps -o pid,args | grep -v 'ps -o' | grep -v grep")
	mem := filepath.Join(dir, "mem.tar.zst")
	out = must(t, "backup", id, mem, "--with-memory")
	if !strings.Contains(out, "frozen for") {
		t.Errorf("backup --with-memory: %s", out)
	}
	if s := status(t, id); s.State != "running" {
		t.Fatalf("after backup: %+v", s)
	}
	if r := vpsctl(t, "status", id); strings.Contains(r.out, "suspended") {
		t.Fatal("backup left the VPS frozen")
	}
	atBackup := readCount(t, id)
	must(t, "destroy", "-f", id)
	must(t, "restore", id, "--from-backup", mem)
	if s := status(t, id); s.State != "running" {
		t.Fatalf("after restore --from-backup: %+v", s)
	}
	waitFor(t, 10*time.Second, "the counter to go on", func() bool { return readCount(t, id) > 0 })
	if n := readCount(t, id); n < atBackup-20 || n > atBackup+200 {
		t.Fatalf("counter %d after the restore, %d at the backup: restarted?", n, atBackup)
	}
	if got := must(t, "exec", id, "--", "sh", "-c", "ps -o pid,args | grep -v 'ps -o' | grep -v grep"); !samePIDs(pids, got) {
		t.Fatalf("processes differ:\nbefore %s\nafter  %s", pids, got)
	}
	// Damaged archives: refused (96) before anything is made.
	b, err := os.ReadFile(mem)
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(dir, "cut.tar.zst")
	if err := os.WriteFile(cut, b[:len(b)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	r := expectCode(t, 214, "restore", other, "--from-backup", cut)
	if !strings.Contains(r.err, "bad backup archive") {
		t.Fatalf("truncated archive: %s", r.err)
	}
	changed := filepath.Join(dir, "changed.tar.zst")
	if out, err := exec.Command("sh", "-c", `zstd -q -d -c "$1" | sed 's/kept/KEPT/' | zstd -q -c > "$2"`, "sh", mem, changed).CombinedOutput(); err != nil {
		t.Fatalf("recompress: %v %s", err, out)
	}
	r = expectCode(t, 214, "restore", other, "--from-backup", changed)
	if !strings.Contains(r.err, "private/marker does not match its checksum") {
		t.Fatalf("changed archive: %s", r.err)
	}
	junk := filepath.Join(dir, "junk")
	os.WriteFile(junk, []byte("not an archive at all"), 0o600)
	expectCode(t, 214, "restore", other, "--from-backup", junk)
	expectCode(t, 21, "restore", other, "--from-backup", filepath.Join(dir, "missing"))
	expectCode(t, 20, "restore", other, "--from-backup", mem, "--dir", dir)
	expectCode(t, 20, "backup", id)
	if s := status(t, other); s.State != "deleted" {
		t.Fatalf("a refused archive made %+v", s)
	}
	if _, err := os.Stat(filepath.Join(root, "locks", other+".lock")); err == nil {
		t.Fatal("a refused archive left a lock file")
	}
	must(t, "stop", "--kill", id)
}

// TestMigrateLocal: to another state root on this host (--dest-root): offline with the
// template sent; live with a TCP connection kept and the UID range taken there (files and
// images shifted); an address taken there and a restore failing there leave the VPS running
// here.
func TestMigrateLocal(t *testing.T) {
	const id, addr = "628", "198.18.0.128"
	checkClean(t, id)
	root2 := otherRoot(t, "migrate", id, "661", "662", "663", "664", "665")
	expectCode(t, 20, "migrate", "wanderer", "local") // a local destination needs --dest-root
	for _, bad := range []string{"hostb", "ssh://root:pw@hostb", "ssh://-oProxyCommand=x"} {
		expectCode(t, 21, "migrate", "wanderer", bad)
	}
	must(t, "create", id, "--template", "busybox", "--name", "wanderer", "--ipadd", addr)
	must(t, "start", id)
	must(t, "exec", id, "--", "sh", "-c", "echo moved > /marker")
	must(t, "stop", "--kill", id)
	out := must(t, "migrate", "wanderer", "local", "--dest-root", root2)
	if !strings.Contains(out, "sending template busybox") || !strings.Contains(out, "(stopped), gone here") {
		t.Fatalf("offline migration: %s", out)
	}
	if s := status(t, id); s.State != "deleted" {
		t.Fatalf("still here: %+v", s)
	}
	if r := vpsctl2(t, root2, "status", "wanderer"); r.code != 0 || !strings.Contains(r.out, "exist stopped") {
		t.Fatalf("there: %+v", r)
	}
	if r := vpsctl2(t, root2, "migrate", id, "local", "--dest-root", root); r.code != 0 || strings.Contains(r.out, "sending template") {
		t.Fatalf("back (the template is there, same tree): %+v", r)
	}
	// Live, into a root where the VPS's range is taken.
	base := idmapBase(t, id)
	for _, x := range []string{"661", "662", "663", "664", "665"} {
		vpsctl2(t, root2, "create", x, "--template", "busybox")
		b, _ := os.ReadFile(filepath.Join(root2, "vps", x, "vps.conf"))
		if strings.Contains(string(b), `IDMAP="`+strconv.Itoa(base)+":") {
			break
		}
	}
	must(t, "start", id)
	startEcho(t, id)
	e := dialEcho(t, addr+":7")
	must(t, "exec", id, "--", "sh", "-c", "sleep 1000 >/dev/null 2>&1 &")
	out = must(t, "migrate", id, "local", "--dest-root", root2)
	if !strings.Contains(out, "is taken there") || !strings.Contains(out, "downtime") {
		t.Fatalf("live migration: %s", out)
	}
	e.roundTrip()
	e.roundTrip()
	if s := status(t, id); s.State != "deleted" {
		t.Fatalf("still here after a live migration: %+v", s)
	}
	if r := vpsctl2(t, root2, "exec", id, "--", "cat", "/marker"); strings.TrimSpace(r.out) != "moved" {
		t.Fatalf("marker there: %+v", r)
	}
	if r := vpsctl2(t, root2, "exec", id, "--", "pidof", "sleep"); r.code != 0 {
		t.Fatalf("the sleeping process did not move: %+v", r)
	}
	// Back, then: an address taken there stops the migration before the VPS stops here.
	if r := vpsctl2(t, root2, "migrate", id, "local", "--dest-root", root); r.code != 0 {
		t.Fatalf("live migration back: %+v", r)
	}
	e.roundTrip()
	if r := vpsctl2(t, root2, "set", "661", "--ipadd", addr, "--save"); r.code != 0 {
		t.Fatalf("set there: %+v", r)
	}
	r := expectCode(t, 215, "migrate", id, "local", "--dest-root", root2)
	if !strings.Contains(r.err, "still running here") || !strings.Contains(r.err, "in use") {
		t.Fatalf("address taken there: %s", r.err)
	}
	vpsctl2(t, root2, "set", "661", "--ipdel", "all", "--save")
	e.roundTrip()
	// A restore that fails there (no criu there): the VPS comes back here, its connection too.
	wrapper := filepath.Join(t.TempDir(), "vpsctl-nocriu")
	os.WriteFile(wrapper, []byte("#!/bin/sh\nVPSCTL_CRIU=/nonexistent exec "+bin+" \"$@\"\n"), 0o755)
	r = expectCode(t, 215, "migrate", id, "local", "--dest-root", root2, "--dest-vpsctl", wrapper)
	if !strings.Contains(r.err, "running here again") {
		t.Fatalf("restore failing there: %s", r.err)
	}
	if s := status(t, id); s.State != "running" {
		t.Fatalf("not running here after a failed migration: %+v", s)
	}
	if r := vpsctl2(t, root2, "status", id); !strings.Contains(r.out, "deleted") {
		t.Fatalf("left there: %+v", r)
	}
	e.roundTrip()
	must(t, "stop", "--kill", id)
}

// TestMigrateSSH: a live migration over ssh (Debian's sshd, started here) to another state root.
func TestMigrateSSH(t *testing.T) {
	const id, addr = "629", "198.18.0.129"
	checkClean(t, id)
	root2 := otherRoot(t, "ssh", id)
	sshd := startSSHD(t)
	must(t, "create", id, "--template", "busybox", "--ipadd", addr)
	must(t, "start", id)
	startEcho(t, id)
	e := dialEcho(t, addr+":7")
	out := must(t, sshd.migrateArgs(id, root2)...)
	if !strings.Contains(out, "running there") || !strings.Contains(out, "downtime") {
		t.Fatalf("migration over ssh: %s", out)
	}
	e.roundTrip()
	if r := vpsctl2(t, root2, "status", id); !strings.Contains(r.out, "exist running") {
		t.Fatalf("there: %+v", r)
	}
	if r := vpsctl2(t, root2, "stop", "--kill", id); r.code != 0 {
		t.Fatalf("stop there: %+v", r)
	}
	bad := append(sshd.migrateArgs(id, root2)[:2], "ssh://root@127.0.0.1:1", "--ssh-opt", "BatchMode=yes", "--ssh-opt", "ConnectTimeout=5")
	must(t, "create", id, "--template", "busybox")
	r := expectCode(t, 215, bad...)
	if !strings.Contains(r.err, "not moved") {
		t.Fatalf("unreachable destination: %s", r.err)
	}
}

// TestMigrateFaults kills the destination's vpsctl at its fault points (VPSCTL_FAULT, through a
// --dest-vpsctl wrapper): after the restore, before its answer (the source removes the copy
// left there and restores the VPS here), and after it let the VPS go on, before its answer (the
// source asks, finds it running there, and removes it here). The VPS runs on one side only.
func TestMigrateFaults(t *testing.T) {
	const id, addr = "638", "198.18.0.138"
	checkClean(t, id)
	root2 := otherRoot(t, "faults", id)
	wrapper := func(point string) string {
		w := filepath.Join(t.TempDir(), "vpsctl-"+point)
		os.WriteFile(w, []byte("#!/bin/sh\n[ \"$3\" = migrate-receive ] && export VPSCTL_FAULT="+point+"\nexec "+bin+" \"$@\"\n"), 0o755)
		return w
	}
	must(t, "create", id, "--template", "busybox", "--ipadd", addr)
	must(t, "start", id)
	startEcho(t, id)
	e := dialEcho(t, addr+":7")
	r := expectCode(t, 215, "migrate", id, "local", "--dest-root", root2, "--dest-vpsctl", wrapper("migrate-receive-restored"))
	if !strings.Contains(r.err, "running here again") {
		t.Fatalf("destination killed after its restore: %s", r.err)
	}
	if r := vpsctl2(t, root2, "status", id); !strings.Contains(r.out, "deleted") {
		t.Fatalf("its copy left there: %+v", r)
	}
	e.roundTrip()
	out := must(t, "migrate", id, "local", "--dest-root", root2, "--dest-vpsctl", wrapper("migrate-receive-running"))
	if !strings.Contains(out, "running there") {
		t.Fatalf("destination killed before its last answer: %s", out)
	}
	if s := status(t, id); s.State != "deleted" {
		t.Fatalf("still here: %+v", s)
	}
	if r := vpsctl2(t, root2, "status", id); strings.TrimSpace(r.out) != "VPS "+id+" exist running" {
		t.Fatalf("there: %+v", r)
	}
	e.roundTrip()
}
