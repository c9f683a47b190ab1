package monitor

import (
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vpsctl/vpsctl/cgroup"
	"github.com/vpsctl/vpsctl/container"
	"github.com/vpsctl/vpsctl/eventlog"
	"github.com/vpsctl/vpsctl/store"
	"golang.org/x/sys/unix"
)

func testStore(t *testing.T, id container.ID) *store.Store {
	t.Helper()
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(st.VPSDir(id), 0o700); err != nil {
		t.Fatal(err)
	}
	return st
}

func stats(numproc, physpages, cpu, oom uint64) *cgroup.Stats {
	return &cgroup.Stats{OOMKills: oom, Counters: []cgroup.Counter{
		{Resource: "numproc", Failcnt: numproc}, {Resource: "physpages", Failcnt: physpages}, {Resource: "cpu", Failcnt: cpu}}}
}

func kinds(es []eventlog.Event) []string {
	var out []string
	for _, e := range es {
		s := string(e.Event)
		if e.Resource != "" {
			s += ":" + e.Resource
		}
		out = append(out, s)
	}
	return out
}

// TestCounterEvents: the first reading ever is a baseline (no events); a rise is an event at
// the next reading and only there; the cpu counter (throttling) never is; after a boot's reset
// every counter counts from zero; a counter that went down is a new baseline.
func TestCounterEvents(t *testing.T) {
	st := testStore(t, 9)
	if es := CounterEvents(st, 9, "web", stats(2, 0, 50, 0)); len(es) != 0 {
		t.Fatalf("first reading: %v", kinds(es))
	}
	es := CounterEvents(st, 9, "web", stats(5, 0, 99, 1))
	if got := kinds(es); !slices.Equal(got, []string{"failcnt:numproc", "oom-kill"}) {
		t.Fatalf("rises: %v", got)
	}
	if es[0].Value != 5 || es[0].Delta != 3 || es[0].Name != "web" || es[0].ID != 9 || es[1].Value != 1 || es[1].Delta != 1 {
		t.Fatalf("events: %+v", es)
	}
	if es := CounterEvents(st, 9, "web", stats(5, 0, 120, 1)); len(es) != 0 {
		t.Fatalf("no rise: %v", kinds(es))
	}
	ResetCounters(st, 9)
	if got := kinds(CounterEvents(st, 9, "web", stats(1, 2, 0, 0))); !slices.Equal(got, []string{"failcnt:numproc", "failcnt:physpages"}) {
		t.Fatalf("after a reset: %v", got)
	}
	if es := CounterEvents(st, 9, "web", stats(0, 2, 0, 0)); len(es) != 0 {
		t.Fatalf("down: %v", kinds(es))
	}
	if got := kinds(CounterEvents(st, 9, "web", stats(1, 2, 0, 0))); !slices.Equal(got, []string{"failcnt:numproc"}) {
		t.Fatalf("up from the new baseline: %v", got)
	}
}

// TestCounterEventsFailures: a torn or foreign reading is a baseline; a reading held by
// another process (its lock) gives up quickly and logs nothing, so nothing is logged twice; a
// VPS whose directory is gone has no reading.
func TestCounterEventsFailures(t *testing.T) {
	st := testStore(t, 9)
	path := st.Path(9, countersFile)
	if err := os.WriteFile(path, []byte(`{"numproc": 1`), 0o600); err != nil {
		t.Fatal(err)
	}
	if es := CounterEvents(st, 9, "", stats(5, 0, 0, 0)); len(es) != 0 {
		t.Fatalf("torn reading: %v", kinds(es))
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if es := CounterEvents(st, 9, "", stats(9, 0, 0, 0)); len(es) != 0 {
		t.Fatalf("locked: %v", kinds(es))
	}
	if d := time.Since(t0); d > time.Second {
		t.Fatalf("waited %v for the lock", d)
	}
	f.Close()
	if got := kinds(CounterEvents(st, 9, "", stats(9, 0, 0, 0))); !slices.Equal(got, []string{"failcnt:numproc"}) {
		t.Fatalf("after the lock: %v", got)
	}
	os.RemoveAll(st.VPSDir(9))
	if es := CounterEvents(st, 9, "", stats(20, 0, 0, 0)); len(es) != 0 {
		t.Fatalf("no directory: %v", kinds(es))
	}
}

func TestEndCause(t *testing.T) {
	for _, tc := range []struct {
		st   syscall.WaitStatus
		want string
	}{
		{syscall.WaitStatus(syscall.SIGINT), "guest poweroff"},
		{syscall.WaitStatus(syscall.SIGKILL), "init killed by SIGKILL"},
		{syscall.WaitStatus(3 << 8), "init exited with status 3"},
	} {
		if got := endCause(tc.st); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.st, got, tc.want)
		}
	}
}

// TestSettingsEnv: a monitor process gets the settings of the command that started it; values
// it cannot read leave the defaults.
func TestSettingsEnv(t *testing.T) {
	saved, savedTO := Events, CheckpointTimeout
	defer func() { Events, CheckpointTimeout = saved, savedTO }()
	Events, CheckpointTimeout = eventlog.Events("/srv/a", 1<<20, 5), 3*time.Minute
	env := settingsEnv()
	Events, CheckpointTimeout = nil, 10*time.Minute
	for _, e := range env {
		k, v, _ := strings.Cut(e, "=")
		t.Setenv(k, v)
	}
	loadSettings("/srv/b")
	if Events == nil || Events.Path != "/srv/b/events.log" || Events.MaxSize != 1<<20 || Events.Keep != 5 || CheckpointTimeout != 3*time.Minute {
		t.Fatalf("loaded %+v, %v from %q", Events, CheckpointTimeout, env)
	}
	Events, CheckpointTimeout = nil, 10*time.Minute
	t.Setenv(eventsEnv, "x:1")
	t.Setenv(checkpointEnv, "-5")
	loadSettings("/srv/b")
	if Events != nil || CheckpointTimeout != 10*time.Minute {
		t.Fatalf("bad values loaded: %+v, %v", Events, CheckpointTimeout)
	}
}
