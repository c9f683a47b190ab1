package cgroup

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

func TestScopeUnit(t *testing.T) {
	for rel, want := range map[string]string{
		"vpsctl/101":        "vpsctl-101.scope",
		"vpsctl/101/vpsctl": "vpsctl-101-vpsctl.scope",
		"vpsctl-test-5/a":   `vpsctl\x2dtest\x2d5-a.scope`,
		"a/.b":              `a-\x2eb.scope`,
		"a b":               `a\x20b.scope`,
	} {
		if got := scopeUnit(rel); got != want {
			t.Errorf("scopeUnit(%q) = %q, want %q", rel, got, want)
		}
	}
}

// TestSystemdScopeCreate: on a fake cgroup2 tree, Create asks systemd for the scope (and
// joins the one that exists the second time), moves the caller into its supervisor leaf, enables controllers from the scope down and never above
// it, and makes the group below the scope.
func TestSystemdScopeCreate(t *testing.T) {
	mount := t.TempDir()
	m := newSystemdScope(mount, "vpsctl/101")
	scope := filepath.Join(mount, "vpsctl.slice", "vpsctl-101.scope")
	if m.scopeDir != scope || m.Paths()[""] != filepath.Join(scope, "vpsctl", "101") || m.Path() != "vpsctl/101" {
		t.Fatalf("scope %s, paths %v, path %s", m.scopeDir, m.Paths(), m.Path())
	}
	var started []string
	// The fake systemd makes what the kernel and systemd would: the scope's group with its
	// delegated controllers, and the files of the groups made below it.
	m.start = func(unit string, pid int) error {
		if _, err := os.Stat(scope); err == nil {
			return errScopeExists
		}
		started = append(started, unit+" "+strconv.Itoa(pid))
		for name, content := range map[string]string{
			"cgroup.controllers":            "cpuset cpu io memory pids",
			"cgroup.subtree_control":        "",
			"cgroup.procs":                  strconv.Itoa(pid),
			"supervisor/cgroup.procs":       "",
			"vpsctl/cgroup.controllers":     "cpuset cpu io memory pids",
			"vpsctl/cgroup.subtree_control": "",
		} {
			p := filepath.Join(scope, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
				return err
			}
		}
		return nil
	}
	for range 2 {
		if err := m.Create(); err != nil {
			t.Fatal(err)
		}
	}
	if want := "vpsctl-101.scope " + strconv.Itoa(os.Getpid()); len(started) != 1 || started[0] != want {
		t.Errorf("scopes started: %q, want one: %q", started, want)
	}
	if got := read(t, filepath.Join(scope, "supervisor"), "cgroup.procs"); got != strconv.Itoa(os.Getpid()) {
		t.Errorf("supervisor/cgroup.procs = %q", got)
	}
	for _, dir := range []string{scope, filepath.Join(scope, "vpsctl")} {
		if got := read(t, dir, "cgroup.subtree_control"); got != "+cpuset +cpu +io +memory +pids" {
			t.Errorf("%s/cgroup.subtree_control = %q", dir, got)
		}
	}
	// systemd's own groups are left alone.
	for _, dir := range []string{mount, filepath.Join(mount, "vpsctl.slice")} {
		if _, err := os.Stat(filepath.Join(dir, "cgroup.subtree_control")); !os.IsNotExist(err) {
			t.Errorf("%s/cgroup.subtree_control written: %v", dir, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(scope, "vpsctl", "101")); err != nil || !fi.IsDir() {
		t.Errorf("the group: %v", err)
	}
	if m.Spares() != nil {
		t.Errorf("spares %v on cgroup2", m.Spares())
	}
}

// A unit that systemd still has while its group is gone (a scope on its way out) is asked for
// again, boundedly, then reported.
func TestSystemdScopeOnItsWayOut(t *testing.T) {
	defer func(w time.Duration) { sdRetryWait = w }(sdRetryWait)
	sdRetryWait = time.Millisecond
	m := newSystemdScope(t.TempDir(), "vpsctl/102")
	asks := 0
	m.start = func(string, int) error { asks++; return errScopeExists }
	if err := m.Create(); !errors.Is(err, ErrTimeout) || asks != sdRetries+1 {
		t.Fatalf("Create: %v after %d asks, want ErrTimeout after %d", err, asks, sdRetries+1)
	}
	// The unit gone meanwhile: the next ask starts it.
	asks = 0
	m.start = func(string, int) error {
		if asks++; asks < 3 {
			return errScopeExists
		}
		return errors.New("started")
	}
	if err := m.Create(); err == nil || err.Error() != "started" || asks != 3 {
		t.Fatalf("Create: %v after %d asks", err, asks)
	}
}
