package runtime

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vpsctl/vpsctl/eventlog"
	"github.com/vpsctl/vpsctl/store"
)

// TestEmit: events reach the log; transient VPSs (run, spares) are not logged; a log that
// cannot be written is a warning, not an error of the operation (emit returns nothing).
func TestEmit(t *testing.T) {
	dir := t.TempDir()
	var warn bytes.Buffer
	r := &Runtime{Events: eventlog.Events(dir, 1<<20, 2), Warn: &warn}
	r.event(7, "web", eventlog.Started, "vpsctl start")
	r.event(store.TransientBase+1, "", eventlog.Created, "")
	b, err := os.ReadFile(filepath.Join(dir, eventlog.EventsFile))
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(string(b)), "\n"); len(lines) != 1 ||
		!strings.Contains(lines[0], `"id":7,"name":"web","event":"started","cause":"vpsctl start"`) {
		t.Fatalf("events log:\n%s", b)
	}
	if warn.Len() != 0 {
		t.Fatalf("warnings: %s", warn.String())
	}
	r.Events = eventlog.Events(filepath.Join(dir, "missing", "dir"), 1<<20, 2)
	r.event(7, "web", eventlog.Stopped, "vpsctl stop")
	if !strings.Contains(warn.String(), "VPS 7: stopped not logged") {
		t.Fatalf("no warning for a log that cannot be written: %q", warn.String())
	}
	// No log, no warning writer: nothing happens.
	(&Runtime{}).event(7, "", eventlog.Set, "")
	(&Runtime{Events: r.Events}).event(7, "", eventlog.Set, "")
}
