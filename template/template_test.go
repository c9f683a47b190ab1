package template

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vpsctl/vpsctl/store"
)

func TestValidateName(t *testing.T) {
	for _, s := range []string{"busybox", "debian-12", "a.b_c", "X1"} {
		if err := ValidateName(s); err != nil {
			t.Errorf("ValidateName(%q) = %v", s, err)
		}
	}
	for _, s := range []string{"", ".x", "-x", "a/b", "..", "a b", string(make([]byte, 65))} {
		if err := ValidateName(s); !errors.Is(err, ErrBadName) {
			t.Errorf("ValidateName(%q) = %v, want ErrBadName", s, err)
		}
	}
}

func TestMirrorIn(t *testing.T) {
	cases := map[string]string{
		"Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm\n":           "http://deb.debian.org/debian",
		"deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian bookworm main": "http://mirror.example/debian",
		"deb http://security.debian.org/debian-security bookworm-security main":        "",
		"# deb http://old.example/debian bookworm main\n":                              "",
	}
	for in, want := range cases {
		if got := mirrorIn(in); got != want {
			t.Errorf("mirrorIn(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzMirrorIn(f *testing.F) {
	f.Add("deb http://x/debian bookworm main")
	f.Add("URIs: https://y/debian/")
	f.Fuzz(func(t *testing.T, s string) { mirrorIn(s) })
}

// TestAdaptDebianCheckpointable checks the drop-in that keeps a systemd template's services
// out of namespaces CRIU cannot dump nested (ProtectHostname=, PrivateIPC=, PrivateUsers=).
func TestAdaptDebianCheckpointable(t *testing.T) {
	r := t.TempDir()
	if err := os.MkdirAll(filepath.Join(r, "etc/systemd/system/multi-user.target.wants"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := adaptDebian(r, "systemd"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(r, checkpointDropInPath))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"[Service]\n", "ProtectHostname=no\n", "PrivateIPC=no\n", "PrivateUsers=no\n"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("drop-in lacks %q:\n%s", want, b)
		}
	}
	s := t.TempDir()
	if err := os.MkdirAll(filepath.Join(s, "etc/default"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := adaptDebian(s, "sysvinit"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(s, checkpointDropInPath)); err == nil {
		t.Error("a sysvinit template got the systemd drop-in")
	}
}

// stepRecorder is a Stepper that records what it was given.
type stepRecorder struct {
	out   strings.Builder
	steps []string
}

func (s *stepRecorder) Write(p []byte) (int, error) { return s.out.Write(p) }

func (s *stepRecorder) Step(msg string) { s.steps = append(s.steps, msg) }

// TestRunProgress: a command's step lines go to a Stepper as steps, and to any other writer
// as plain lines; neither gets a carriage return or a terminal escape.
func TestRunProgress(t *testing.T) {
	script := "echo 'I: Retrieving a'; echo 'I: Retrieving b'; echo 'W: warned'"
	var plain strings.Builder
	if err := runProgress(exec.Command("sh", "-c", script), &plain); err != nil {
		t.Fatal(err)
	}
	if plain.String() != "  I: Retrieving a\n  I: Retrieving b\n  W: warned\n" {
		t.Fatalf("plain: %q", plain.String())
	}
	var rec stepRecorder
	if err := runProgress(exec.Command("sh", "-c", script), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.out.String() != "  W: warned\n" || len(rec.steps) != 2 || rec.steps[1] != "I: Retrieving b" {
		t.Fatalf("stepper: %q %q", rec.out.String(), rec.steps)
	}
	if err := runProgress(exec.Command("sh", "-c", "echo 'E: failed'; exit 1"), &plain); err == nil || !strings.Contains(err.Error(), "E: failed") {
		t.Fatalf("a failing command: %v", err)
	}
}

// TestBuildRace: of two builds of one name, the one that finishes second gets ErrExist (the
// API's 409), not the rename's "file exists", and the first one's template stays.
func TestBuildRace(t *testing.T) {
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	fill := func(marker string) func(string) error {
		return func(rootfs string) error { return os.WriteFile(filepath.Join(rootfs, marker), nil, 0o644) }
	}
	err = build(st, "raced", "second", false, io.Discard, func(rootfs string) error {
		// The other build runs to its end while this one fills its tree.
		if err := build(st, "raced", "first", false, io.Discard, fill("first")); err != nil {
			return err
		}
		return fill("second")(rootfs)
	})
	if !errors.Is(err, ErrExist) {
		t.Fatalf("the second build: %v, want ErrExist", err)
	}
	rootfs, err := Rootfs(st, "raced")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(rootfs, "first")); err != nil {
		t.Fatalf("the first build's template: %v", err)
	}
}
