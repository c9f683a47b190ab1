package proc

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestAliveZombieLeader: a process whose main thread has exited while another thread runs
// shows its leader as a zombie in /proc/PID/stat, and is alive; once it has really exited it
// is not. (A Go monitor exec'ing into the C reaper from another thread looks the same for an
// instant; status must not report it gone.)
func TestAliveZombieLeader(t *testing.T) {
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("no gcc to build the helper")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "leader.c")
	bin := filepath.Join(dir, "leader")
	prog := `#include <pthread.h>
#include <unistd.h>
static void *run(void *a) { (void)a; sleep(30); return 0; }
int main(void) { pthread_t t; pthread_create(&t, 0, run, 0); pthread_exit(0); }
`
	if err := os.WriteFile(src, []byte(prog), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(gcc, "-O2", "-pthread", "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("build the helper: %v\n%s", err, out)
	}
	cmd := exec.Command(bin)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	start := Start(pid)
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if i := strings.LastIndexByte(string(b), ')'); i > 0 && i+2 < len(b) && b[i+2] == 'Z' {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the helper's leader never became a zombie: %s", b)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !Alive(pid, start) {
		t.Fatal("a process with a zombie leader and a live thread reported dead")
	}
	cmd.Process.Kill()
	cmd.Wait()
	if Alive(pid, start) {
		t.Fatal("an exited, reaped process reported alive")
	}
}
