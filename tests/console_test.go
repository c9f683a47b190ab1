package tests

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestConsole attaches to a VPS's console, logs in at its getty, runs a command and detaches
// with Ctrl-]; the VPS keeps running and the console output is also in console.log.
func TestConsole(t *testing.T) {
	const id = "108"
	checkClean(t, id)
	must(t, "create", id, "--template", "busybox", "--hostname", "consoled")
	must(t, "start", id)
	// The monitor makes the socket while the VPS boots, and reports the start only once it
	// listens: it is there the moment start returns.
	if fi, err := os.Stat(filepath.Join(root, "vps", id, "console.sock")); err != nil || fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("console socket right after start: %v %v", fi, err)
	}
	cmd := exec.Command(bin, "--root", root, "console", id)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// busybox's getty: root has no password in the busybox template.
	for _, s := range []string{"root\r", "hostname\r"} {
		time.Sleep(700 * time.Millisecond)
		io.WriteString(in, s)
	}
	time.Sleep(700 * time.Millisecond)
	io.WriteString(in, "\x1d")
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("console: %v\n%s", err, out.String())
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("console did not detach on Ctrl-]:\n%s", out.String())
	}
	got := out.String()
	if !strings.Contains(got, "consoled") || !strings.Contains(got, "Detached") {
		t.Fatalf("console session:\n%s", got)
	}
	if s := status(t, id); s.State != "running" {
		t.Fatal("detaching stopped the VPS")
	}
	expectCode(t, 43, "console", "109")

	// exec -t and enter get a pty of the VPS's own devpts.
	if got := strings.TrimSpace(must(t, "exec", "-t", id, "--", "tty")); !strings.HasPrefix(got, "/dev/pts/") {
		t.Fatalf("exec -t: tty = %q", got)
	}
	enter := exec.Command(bin, "--root", root, "enter", id)
	enter.Stdin = strings.NewReader("hostname; exit 3\n")
	eout, _ := enter.CombinedOutput()
	if !strings.Contains(string(eout), "consoled") || enter.ProcessState.ExitCode() != 3 {
		t.Fatalf("enter: exit %d, output %q", enter.ProcessState.ExitCode(), eout)
	}
	must(t, "stop", "--kill", id)
	expectCode(t, 31, "console", id)
}
