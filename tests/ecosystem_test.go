package tests

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestVersion: --version and -V name the version, the commit, Go and the C library.
func TestVersion(t *testing.T) {
	for _, flag := range []string{"--version", "-V"} {
		out := must(t, flag)
		for _, re := range []string{`(?m)^vpsctl \S+$`, `(?m)^commit: [0-9a-f]{40}(-dirty)?$`, `(?m)^go: go1\.`, `(?m)^libc: (musl|glibc \d)`} {
			if !regexp.MustCompile(re).MatchString(out) {
				t.Errorf("%s: %q does not match %s", flag, out, re)
			}
		}
	}
}

// TestImportVZ: the acceptance (a vzctl config and a simfs private area become a VPS that
// starts with the container's files and settings), and every refusal leaving nothing behind.
func TestImportVZ(t *testing.T) {
	checkClean(t, "802", "803")
	dir := t.TempDir()
	cmd := exec.Command("bash", "../scripts/vz-testdata.sh", dir)
	cmd.Env = append(os.Environ(), "VPSCTL="+bin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("vz-testdata.sh: %v\n%s", err, out)
	}
	conf, priv := filepath.Join(dir, "101.conf"), filepath.Join(dir, "private-101")
	os.WriteFile(filepath.Join(priv, "root", "from-openvz"), []byte("kept\n"), 0o644)
	t.Cleanup(func() { vpsctl(t, "template", "remove", "vz-101") })

	out := must(t, "import-vz", conf, priv, "--id", "802")
	for _, want := range []string{"--memory 256M", "--ipadd 198.18.1.101 --ipadd 198.18.2.101/24", "--diskspace 2G:2254M", "NOT MAPPED: the disk image's file system has no inode limit",
		"KMEMSIZE", "VPS 802 created from the container (template vz-101)"} {
		if !strings.Contains(out, want) {
			t.Errorf("import-vz output lacks %q:\n%s", want, out)
		}
	}
	must(t, "start", "802")
	if got := dfSizeKiB(t, "802"); !near(got, 2254<<10) {
		t.Fatalf("the imported DISKSPACE: df / says %d KiB", got)
	}
	if got := must(t, "exec", "802", "--", "cat", "/root/from-openvz"); got != "kept\n" {
		t.Fatalf("the container's file: %q", got)
	}
	if got := must(t, "exec", "legacy", "--", "hostname"); got != "ct101.example.com\n" {
		t.Fatalf("hostname: %q", got)
	}
	if got := must(t, "list", "-o", "ctid,status,ostemplate", "-H", "-s", "ctid", "802"); strings.Join(strings.Fields(got), " ") != "802 running vz-101" {
		t.Fatalf("list: %q", got)
	}
	var st struct {
		Beancounters map[string]struct{ Limit *uint64 }
	}
	json.Unmarshal([]byte(must(t, "stats", "802", "--format", "json")), &st)
	if l := st.Beancounters["numproc"].Limit; l == nil || *l != 400 {
		t.Fatalf("numproc limit: %v", l)
	}
	if l := st.Beancounters["cpu"].Limit; l == nil || *l != 50 {
		t.Fatalf("cpu limit: %v", l)
	}
	must(t, "stop", "802", "--timeout", "10")

	// JSON of the whole report.
	var rep struct {
		ID       int
		Unmapped []struct{ Key, Why string }
	}
	small := filepath.Join(dir, "small.conf")
	os.WriteFile(small, []byte("HOSTNAME=\"small\"\nDISKSPACE=\"1G:1G\"\nKMEMSIZE=\"unlimited\"\nONBOOT=\"no\"\nDESCRIPTION=\"x\"\nQUOTATIME=\"0\"\n"), 0o644)
	r := vpsctl(t, "import-vz", small, priv, "--id", "803", "--template", "vz-101b", "--format", "json")
	t.Cleanup(func() { vpsctl(t, "template", "remove", "vz-101b") })
	if r.code != 0 || json.Unmarshal([]byte(r.out), &rep) != nil || rep.ID != 803 || len(rep.Unmapped) < 3 {
		t.Fatalf("import-vz --format json: exit %d %q %+v", r.code, r.out, rep)
	}
	must(t, "destroy", "803")

	// Refusals: nothing is left behind by any of them.
	templates := must(t, "template", "list")
	expectCode(t, 44, "import-vz", conf, priv, "--id", "802")
	expectCode(t, 211, "import-vz", conf, priv, "--id", "804") // vz-101 exists
	expectCode(t, 20, "import-vz", conf)
	expectCode(t, 21, "import-vz", filepath.Join(dir, "nope.conf"), priv, "--id", "804")
	bad := filepath.Join(dir, "bad.conf")
	os.WriteFile(bad, []byte("PHYSPAGES=\"lots\"\n"), 0o644)
	expectCode(t, 21, "import-vz", bad, priv, "--id", "804", "--template", "vz-bad")
	ploop := filepath.Join(dir, "ploop.conf")
	os.WriteFile(ploop, []byte("VE_LAYOUT=\"ploop\"\n"), 0o644)
	expectCode(t, 21, "import-vz", ploop, priv, "--id", "804", "--template", "vz-ploop")
	noID := filepath.Join(dir, "ct.conf")
	os.WriteFile(noID, []byte("HOSTNAME=\"x\"\n"), 0o644)
	expectCode(t, 21, "import-vz", noID, priv)
	expectCode(t, 21, "import-vz", conf, filepath.Join(dir, "empty"), "--id", "804", "--template", "vz-empty")
	// A create that fails after the copy (the name is taken) takes the template back.
	dupName := filepath.Join(dir, "dup.conf")
	os.WriteFile(dupName, []byte("NAME=\"legacy\"\n"), 0o644)
	expectCode(t, 44, "import-vz", dupName, priv, "--id", "804", "--template", "vz-dup")
	if after := must(t, "template", "list"); after != templates {
		t.Fatalf("a refused import left a template:\nbefore:\n%s\nafter:\n%s", templates, after)
	}
	if got := must(t, "status", "804"); got != "VPS 804 deleted\n" {
		t.Fatalf("a refused import left VPS 804: %q", got)
	}
}

// TestListVzlist: vzlist's options on real VPSs: aliases, -H, -s [-]FIELD, -S, -1, IDs and
// name patterns as arguments.
func TestListVzlist(t *testing.T) {
	checkClean(t, "806", "807", "808")
	must(t, "create", "806", "--template", "busybox", "--name", "vz-a")
	must(t, "create", "807", "--template", "busybox", "--name", "vz-b")
	must(t, "create", "808", "--template", "busybox", "--name", "other")
	must(t, "start", "807")
	fields := func(s string) string { return strings.Join(strings.Fields(s), " ") }
	if got := fields(must(t, "list", "-o", "ctid,status,ostemplate", "-H", "-s", "ctid", "806")); got != "806 stopped busybox" {
		t.Fatalf("one ID: %q", got)
	}
	if got := fields(must(t, "list", "-o", "ctid,name", "-H", "-s", "-ctid", "vz-*")); got != "807 vz-b 806 vz-a" {
		t.Fatalf("pattern, reverse: %q", got)
	}
	if got := fields(must(t, "list", "-o", "veid,status", "-s", "status", "806", "807")); got != "VEID STATUS 807 running 806 stopped" {
		t.Fatalf("header, sort by status: %q", got)
	}
	if got := fields(must(t, "list", "-1", "806", "807", "808")); got != "806 807 808" {
		t.Fatalf("-1: %q", got)
	}
	if got := must(t, "list", "-1", "-S"); !strings.Contains(got, "806\n") || strings.Contains(got, "807") {
		t.Fatalf("-S: %q", got)
	}
	if got := must(t, "list", "-1"); !strings.Contains(got, "807\n") || strings.Contains(got, "806") {
		t.Fatalf("running only: %q", got)
	}
	var rows []map[string]any
	json.Unmarshal([]byte(must(t, "list", "-o", "ctid,cpu.l,physpages.l", "--format", "json", "807")), &rows)
	if len(rows) != 1 || rows[0]["cpu.l"] != nil || rows[0]["physpages.l"] == nil {
		t.Fatalf("JSON: no limit is null: %v", rows)
	}
	expectCode(t, 43, "list", "809")
	expectCode(t, 20, "list", "-s", "nosuchfield")
	expectCode(t, 20, "list", "[")
	expectCode(t, 20, "list", "-1", "-o", "id")

	// Bare seconds, the help's own example.
	t0 := time.Now()
	must(t, "stop", "807", "--timeout", "10")
	if time.Since(t0) > 15*time.Second {
		t.Fatalf("stop --timeout 10 took %v", time.Since(t0))
	}
	expectCode(t, 20, "stop", "806", "--timeout", "10x")
}

// TestCompletionAndMan: the completion scripts register themselves in bash (and zsh, where
// installed) and offer this state root's VPSs; the man page is generated and reads as one.
func TestCompletionAndMan(t *testing.T) {
	checkClean(t, "810")
	must(t, "create", "810", "--template", "busybox", "--name", "compl")
	script := `source <("$VPSCTL" completion bash); complete -p vpsctl
COMP_WORDS=(vpsctl --root "$ROOT" start ""); COMP_CWORD=4; _vpsctl; echo "${COMPREPLY[*]}"`
	cmd := exec.Command("bash", "-c", script)
	// COMP_WORDS[0] is the command as typed: vpsctl, found on PATH.
	cmd.Env = append(os.Environ(), "VPSCTL="+bin, "ROOT="+root, "PATH="+filepath.Dir(bin)+":"+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "complete -o default -F _vpsctl vpsctl") ||
		!strings.Contains(string(out), "810") || !strings.Contains(string(out), "compl") {
		t.Fatalf("bash completion: %v\n%s", err, out)
	}
	if _, err := exec.LookPath("zsh"); err == nil {
		cmd := exec.Command("zsh", "-c", `autoload -U compinit; compinit -u; source <("$VPSCTL" completion zsh); print ${_comps[vpsctl]}`)
		cmd.Env = append(os.Environ(), "VPSCTL="+bin)
		if out, err := cmd.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "_vpsctl" {
			t.Fatalf("zsh completion: %v\n%s", err, out)
		}
	} else {
		t.Log("zsh not installed: its script not checked here")
	}
	expectCode(t, 20, "completion", "fish")
	expectCode(t, 20, "__man") // the fast build has no man page generator

	page := filepath.Join(t.TempDir(), "vpsctl.8")
	if out, err := exec.Command("bash", "../scripts/build.sh", "--man", page).CombinedOutput(); err != nil {
		t.Fatalf("build.sh --man: %v\n%s", err, out)
	}
	b, _ := os.ReadFile(page)
	if !strings.HasPrefix(string(b), ".nh\n.TH vpsctl 8") || !strings.Contains(string(b), "import-vz") || !strings.Contains(string(b), "EXIT CODES") {
		t.Fatalf("man page: %.300q", b)
	}
	if _, err := exec.LookPath("man"); err == nil {
		out, err := exec.Command("man", "-l", page).Output()
		if err != nil || !strings.Contains(string(out), "vpsctl") {
			t.Fatalf("man -l: %v\n%s", err, out)
		}
	}
}
