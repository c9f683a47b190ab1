package tests

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vpsctl/vpsctl/runtime"
)

// mountNSFDs lists this process's open fds that hold a mount namespace.
func mountNSFDs(t *testing.T) []string {
	t.Helper()
	fds, err := filepath.Glob("/proc/self/fd/*")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, fd := range fds {
		if l, err := os.Readlink(fd); err == nil && strings.HasPrefix(l, "mnt:[") {
			out = append(out, filepath.Base(fd)+" "+l)
		}
	}
	return out
}

// TestStopContextEnds: a library caller's Stop whose context ends in the grace period gives up
// there with the context's error, the VPS still running, and keeps nothing of it open: the
// mount namespaces it held while the guest powered off (its init's and its monitor's) are
// closed, or the VPS's mounts would outlive the VPS in this process. A stop after it works.
func TestStopContextEnds(t *testing.T) {
	checkClean(t, "871")
	must(t, "create", "871", "--template", "busybox")
	must(t, "start", "871")
	// The guest takes its time to power off: a shutdown action that sleeps (init reads its
	// inittab again on SIGHUP).
	must(t, "exec", "871", "--", "sh", "-c", "echo ::shutdown:/bin/sleep 30 >> /etc/inittab && kill -HUP 1")
	rt, err := runtime.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	before := mountNSFDs(t)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	err = rt.Stop(ctx, 871, runtime.StopOptions{Timeout: slow(60 * time.Second)})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop with a context that ends in the grace period: %v, want the context's error", err)
	}
	if d := time.Since(t0); d > slow(10*time.Second) {
		t.Fatalf("Stop returned %v after its context ended", d)
	}
	if after := mountNSFDs(t); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Fatalf("mount namespaces held after the failed stop: %v (before: %v)", after, before)
	}
	if s := status(t, "871"); s.State != "running" {
		t.Fatalf("after a stop that gave up: %s, want it running", s.State)
	}
	must(t, "stop", "--kill", "871")
	if s := status(t, "871"); s.State != "stopped" {
		t.Fatalf("after stop --kill: %s", s.State)
	}
}
