package tests

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestKernelLogCheck shows that the overlay check checkClean and TestMain make can fail: a line
// written to the kernel's log after the reader opened it is read back, once, and overlayfs's
// warning of a shared upper directory is picked out of the messages while others are not.
func TestKernelLogCheck(t *testing.T) {
	requireRoot(t)
	k, err := openKernelLog()
	if err != nil {
		t.Fatal(err)
	}
	defer k.close()
	probe := fmt.Sprintf("vpsctl-test: kernel log probe %d", time.Now().UnixNano())
	if err := os.WriteFile("/dev/kmsg", []byte(probe+"\n"), 0); err != nil {
		t.Fatal(err)
	}
	msgs := k.read()
	if !slices.ContainsFunc(msgs, func(m string) bool { return strings.HasSuffix(m, probe) }) {
		t.Fatalf("the probe %q was not read back from /dev/kmsg; read %q", probe, msgs)
	}
	if again := k.read(); slices.ContainsFunc(again, func(m string) bool { return strings.HasSuffix(m, probe) }) {
		t.Errorf("the probe was read twice")
	}
	warn := "overlayfs: upperdir is in-use as upperdir/workdir of another mount, accessing files from both mounts will result in undefined behavior."
	if got := sharedUpper(append(msgs, warn)); !slices.Equal(got, []string{warn}) {
		t.Errorf("sharedUpper picked %q, want only the overlayfs warning", got)
	}
}
