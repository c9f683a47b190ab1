package eventlog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func testLog(t *testing.T, max int64, keep int) *Log {
	t.Helper()
	return &Log{Path: filepath.Join(t.TempDir(), "events.log"), MaxSize: max, Keep: keep}
}

func readAll(t *testing.T, l *Log, since time.Time) []Event {
	t.Helper()
	var out []Event
	err := l.Read(since, func(ln Line) error {
		var e Event
		if err := json.Unmarshal(ln.Raw, &e); err != nil {
			t.Fatalf("%s: %v", ln.Raw, err)
		}
		if !e.Time.Equal(ln.Time) {
			t.Fatalf("line time %v, event time %v", ln.Time, e.Time)
		}
		out = append(out, e)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestAppendAndRead(t *testing.T) {
	l := testLog(t, 0, 1)
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	for i := 0; i < 3; i++ {
		if err := l.Emit(Event{Time: t0.Add(time.Duration(i) * time.Minute), ID: 501, Name: "web", Event: Started, Cause: "start --all"}); err != nil {
			t.Fatal(err)
		}
	}
	got := readAll(t, l, time.Time{})
	if len(got) != 3 || got[0].ID != 501 || got[0].Name != "web" || got[0].Event != Started || got[0].PID != os.Getpid() || !got[2].Time.Equal(t0.Add(2*time.Minute)) {
		t.Fatalf("%+v", got)
	}
	if got := readAll(t, l, t0.Add(time.Minute)); len(got) != 2 {
		t.Fatalf("since: %d", len(got))
	}
	st, err := os.Stat(l.Path)
	if err != nil || st.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v %v", st.Mode(), err)
	}
	raw, _ := os.ReadFile(l.Path)
	if !bytes.Contains(raw, []byte(`"time":"2026-01-02T03:04:05.000000006Z"`)) {
		t.Fatalf("time not RFC 3339 with nanoseconds: %s", raw)
	}
	// An error from the callback stops the reading and comes back.
	stop := errors.New("stop")
	n := 0
	if err := l.Read(time.Time{}, func(Line) error { n++; return stop }); err != stop || n != 1 {
		t.Fatalf("%v after %d", err, n)
	}
}

func TestAppendRefusals(t *testing.T) {
	l := testLog(t, 0, 1)
	for _, line := range [][]byte{[]byte("a\nb"), bytes.Repeat([]byte("x"), maxLine)} {
		if err := l.Append(line); !errors.Is(err, ErrTooLong) {
			t.Fatalf("%d bytes: %v", len(line), err)
		}
	}
	for _, e := range []Event{{ID: 1, Event: "exploded"}, {Event: Started}} {
		if err := l.Emit(e); !errors.Is(err, ErrBadEvent) {
			t.Fatalf("%+v: %v", e, err)
		}
	}
	if err := l.AppendJSON(func() {}); err == nil {
		t.Fatal("unmarshalable value appended")
	}
	if _, err := os.Stat(l.Path); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a refused record created the file")
	}
	// A directory that does not exist: the open's error.
	bad := &Log{Path: filepath.Join(t.TempDir(), "no", "events.log")}
	if err := bad.Emit(Event{ID: 1, Event: Started}); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%v", err)
	}
}

func TestEmitShortensLongFields(t *testing.T) {
	l := testLog(t, 0, 1)
	keys := make([]string, 100)
	for i := range keys {
		keys[i] = "KEY" + strconv.Itoa(i)
	}
	if err := l.Emit(Event{ID: 7, Event: Set, Cause: strings.Repeat("é", 2000), Name: strings.Repeat("n", 100), Keys: keys}); err != nil {
		t.Fatal(err)
	}
	got := readAll(t, l, time.Time{})
	if len(got) != 1 || len(got[0].Keys) != maxKeys+1 || got[0].Keys[maxKeys] != "..." || len(got[0].Cause) > maxCause+3 ||
		!strings.HasSuffix(got[0].Cause, "...") || len(got[0].Name) != 64 || len(keys) != 100 {
		t.Fatalf("%d keys, cause %d bytes, name %d", len(got[0].Keys), len(got[0].Cause), len(got[0].Name))
	}
}

func TestRotation(t *testing.T) {
	l := testLog(t, 1000, 2)
	for i := 1; i <= 60; i++ {
		if err := l.Emit(Event{ID: uint32(i), Event: Created}); err != nil {
			t.Fatal(err)
		}
	}
	for n := 0; n <= 2; n++ {
		st, err := os.Stat(l.Generation(n))
		if err != nil || st.Size() > 1000 || st.Size() == 0 {
			t.Fatalf("generation %d: %v %v", n, st, err)
		}
	}
	if _, err := os.Stat(l.Generation(3)); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("more generations than Keep")
	}
	got := readAll(t, l, time.Time{})
	// The newest records survive, in order, without gaps.
	if len(got) < 10 || got[len(got)-1].ID != 60 {
		t.Fatalf("%d records, last %+v", len(got), got[len(got)-1])
	}
	for i := 1; i < len(got); i++ {
		if got[i].ID != got[i-1].ID+1 {
			t.Fatalf("gap: %d then %d", got[i-1].ID, got[i].ID)
		}
	}
}

// TestConcurrentWriters: several processes (this test binary re-run) and goroutines append at
// once with a small cap: every line is whole, every writer's records survive in its own order,
// and rotation never dropped a generation twice (the total is exact when nothing rotated out).
func TestConcurrentWriters(t *testing.T) {
	l := testLog(t, 8<<10, 100) // Keep large enough that nothing is dropped
	const procs, perProc = 3, 200
	var cmds []*exec.Cmd
	for p := 0; p < procs; p++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperWriter$")
		cmd.Env = append(os.Environ(), "EVENTLOG_HELPER="+l.Path, "EVENTLOG_HELPER_ID="+strconv.Itoa(p+1), "EVENTLOG_HELPER_N="+strconv.Itoa(perProc))
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	var wg sync.WaitGroup
	for g := 0; g < 2; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			writeMany(t, l, uint32(100+g), perProc)
		}(g)
	}
	wg.Wait()
	for _, cmd := range cmds {
		if err := waitBounded(cmd, 60*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	got := readAll(t, l, time.Time{})
	if len(got) != (procs+2)*perProc {
		t.Fatalf("%d records, want %d", len(got), (procs+2)*perProc)
	}
	last := map[uint32]uint64{}
	for _, e := range got {
		if e.Value != last[e.ID]+1 {
			t.Fatalf("writer %d: record %d after %d", e.ID, e.Value, last[e.ID])
		}
		last[e.ID] = e.Value
	}
	for n := 0; n <= 100; n++ {
		if st, err := os.Stat(l.Generation(n)); err == nil && st.Size() > 8<<10 {
			t.Fatalf("generation %d is %d bytes", n, st.Size())
		}
	}
}

func writeMany(t testing.TB, l *Log, id uint32, n int) {
	for i := 1; i <= n; i++ {
		if err := l.Emit(Event{ID: id, Event: Failcnt, Resource: "numproc", Value: uint64(i)}); err != nil {
			t.Error(err)
			return
		}
	}
}

func waitBounded(cmd *exec.Cmd, d time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		cmd.Process.Kill()
		<-done
		return fmt.Errorf("%v: no exit within %v", cmd.Args, d)
	}
}

// TestHelperWriter is the writer process of TestConcurrentWriters.
func TestHelperWriter(t *testing.T) {
	path := os.Getenv("EVENTLOG_HELPER")
	if path == "" {
		t.Skip("helper process of TestConcurrentWriters")
	}
	id, _ := strconv.Atoi(os.Getenv("EVENTLOG_HELPER_ID"))
	n, _ := strconv.Atoi(os.Getenv("EVENTLOG_HELPER_N"))
	writeMany(t, &Log{Path: path, MaxSize: 8 << 10, Keep: 100}, uint32(id), n)
}

// A writer that holds the lock forever (a stopped process) delays others by LockWait, and
// their lines still arrive whole.
func TestStuckLockHolder(t *testing.T) {
	l := testLog(t, 100, 1)
	l.LockWait = 50 * time.Millisecond
	if err := l.Emit(Event{ID: 1, Event: Created}); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(l.Path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for i := 2; i <= 4; i++ {
		if err := l.Emit(Event{ID: uint32(i), Event: Created}); err != nil {
			t.Fatal(err)
		}
	}
	if el := time.Since(start); el < 150*time.Millisecond || el > 5*time.Second {
		t.Fatalf("three appends past a held lock took %v", el)
	}
	// Unlocked appends do not rotate: all four records are in the live file, whole.
	if got := readAll(t, l, time.Time{}); len(got) != 4 {
		t.Fatalf("%d records", len(got))
	}
	if _, err := os.Stat(l.Generation(1)); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("rotated without the lock")
	}
	unix.Flock(fd, unix.LOCK_UN)
	if err := l.Emit(Event{ID: 5, Event: Created}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(l.Generation(1)); err != nil {
		t.Fatal("no rotation once the lock is free again")
	}
}

// Torn or foreign lines are skipped; a last line without its newline waits.
func TestReadSkipsJunk(t *testing.T) {
	l := testLog(t, 0, 1)
	l.Emit(Event{ID: 1, Event: Created})
	f, _ := os.OpenFile(l.Path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("not json\n{\"time\":\"x\"}\n{}\n\n")
	f.Close()
	l.Emit(Event{ID: 2, Event: Created})
	f, _ = os.OpenFile(l.Path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"time":"2026-01-01T00:00:00Z","id":3,"event":"created"}`)
	f.Close()
	got := readAll(t, l, time.Time{})
	if len(got) != 2 || got[0].ID != 1 || got[1].ID != 2 {
		t.Fatalf("%+v", got)
	}
}

func TestReadGenerationsOnce(t *testing.T) {
	l := testLog(t, 0, 3)
	l.Emit(Event{ID: 1, Event: Created})
	// The same inode under two names (a rotation seen half-way) is read once.
	if err := os.Link(l.Path, l.Generation(2)); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, l, time.Time{}); len(got) != 1 {
		t.Fatalf("%d", len(got))
	}
	if err := os.Chmod(l.Path, 0); err == nil && os.Geteuid() != 0 {
		if err := l.Read(time.Time{}, func(Line) error { return nil }); err == nil {
			t.Fatal("unreadable log read")
		}
	}
}

// TestFollowAcrossRotations: a follower sees every record exactly once, in order, while a
// writer rotates the file many times under it; it starts with what was there, and stops
// with its context.
func TestFollowAcrossRotations(t *testing.T) {
	l := testLog(t, 2<<10, 50)
	for i := 1; i <= 5; i++ {
		l.Emit(Event{ID: 9, Event: Failcnt, Value: uint64(i)})
	}
	const total = 400
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var got []uint64
	done := make(chan error, 1)
	go func() {
		done <- l.Follow(ctx, time.Time{}, 2*time.Millisecond, func(ln Line) error {
			var e Event
			json.Unmarshal(ln.Raw, &e)
			got = append(got, e.Value)
			if len(got) == total {
				cancel()
			}
			return nil
		})
	}()
	for i := 6; i <= total; i++ {
		if err := l.Emit(Event{ID: 9, Event: Failcnt, Value: uint64(i)}); err != nil {
			t.Fatal(err)
		}
		if i%50 == 0 {
			time.Sleep(5 * time.Millisecond)
		}
	}
	err := <-done
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("follow ended with %v after %d records", err, len(got))
	}
	if _, err := os.Stat(l.Generation(5)); err != nil {
		t.Fatal("the test did not rotate several times")
	}
	for i, v := range got {
		if v != uint64(i+1) {
			t.Fatalf("record %d is %d", i+1, v)
		}
	}
}

// A follower started before the log exists picks it up when it appears; a since filter
// applies to followed records too; an error from the callback ends the follow.
func TestFollowFromNothing(t *testing.T) {
	l := testLog(t, 0, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	t0 := time.Now()
	enough := errors.New("enough")
	done := make(chan error, 1)
	var got []uint32
	go func() {
		done <- l.Follow(ctx, t0, time.Millisecond, func(ln Line) error {
			var e Event
			json.Unmarshal(ln.Raw, &e)
			got = append(got, e.ID)
			if e.ID == 3 {
				return enough
			}
			return nil
		})
	}()
	time.Sleep(20 * time.Millisecond)
	l.Emit(Event{ID: 1, Event: Created, Time: t0.Add(-time.Hour)}) // before since
	l.Emit(Event{ID: 2, Event: Created})
	l.Emit(Event{ID: 3, Event: Created})
	if err := <-done; err != enough {
		t.Fatalf("%v", err)
	}
	if len(got) != 2 || got[0] != 2 {
		t.Fatalf("%v", got)
	}
	// A follower whose context is already done returns at once, after the backlog.
	ctx2, cancel2 := context.WithCancel(context.Background())
	cancel2()
	n := 0
	if err := l.Follow(ctx2, time.Time{}, time.Millisecond, func(Line) error { n++; return nil }); !errors.Is(err, context.Canceled) || n != 3 {
		t.Fatalf("%v, %d records", err, n)
	}
}

// Every field round-trips through a line: what the CLI's --format json prints is what was
// logged.
func TestEventJSON(t *testing.T) {
	e := Event{Time: time.Date(2026, 5, 6, 7, 8, 9, 10, time.FixedZone("", 3600)), ID: 4, Name: "n", Event: Set, Cause: "c", Keys: []string{"MEMORY"}, PID: 1}
	b, _ := json.Marshal(e)
	want := `{"time":"2026-05-06T07:08:09.00000001+01:00","id":4,"name":"n","event":"set","cause":"c","keys":["MEMORY"],"pid":1}`
	if string(b) != want {
		t.Fatalf("%s", b)
	}
}

// followWhile runs a follower with poll interval poll while write runs, and returns the
// Values it reported once write is done and the follower caught up (or the bound passed).
func followWhile(t *testing.T, l *Log, poll time.Duration, want uint64, write func()) []uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var got []uint64
	done := make(chan error, 1)
	go func() {
		done <- l.Follow(ctx, time.Time{}, poll, func(ln Line) error {
			var e Event
			json.Unmarshal(ln.Raw, &e)
			got = append(got, e.Value)
			if e.Value == want {
				cancel()
			}
			return nil
		})
	}()
	time.Sleep(poll / 2) // the follower is past its backlog and waiting
	write()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("follow: %v after %v", err, got)
	}
	return got
}

// Many rotations between two polls: the follower walks every generation in between.
func TestFollowManyRotationsPerPoll(t *testing.T) {
	l := testLog(t, 1<<10, 50)
	got := followWhile(t, l, 300*time.Millisecond, 100, func() {
		for i := 1; i <= 100; i++ {
			l.Emit(Event{ID: 9, Event: Failcnt, Value: uint64(i)})
		}
	})
	if _, err := os.Stat(l.Generation(5)); err != nil {
		t.Fatal("fewer rotations than the test needs")
	}
	for i, v := range got {
		if v != uint64(i+1) {
			t.Fatalf("record %d is %d: %v", i+1, v, got)
		}
	}
	if len(got) != 100 {
		t.Fatalf("%d records", len(got))
	}
}

// More rotations between two polls than generations kept: the follower's file is deleted;
// it goes on from the oldest generation left and still reports nothing twice, in order.
func TestFollowLosesItsFile(t *testing.T) {
	l := testLog(t, 1<<10, 1)
	l.Emit(Event{ID: 9, Event: Failcnt, Value: 1})
	got := followWhile(t, l, 300*time.Millisecond, 100, func() {
		for i := 2; i <= 100; i++ {
			l.Emit(Event{ID: 9, Event: Failcnt, Value: uint64(i)})
		}
	})
	if got[0] != 1 || got[len(got)-1] != 100 {
		t.Fatalf("%v", got)
	}
	for i := 1; i < len(got); i++ {
		if got[i] <= got[i-1] {
			t.Fatalf("out of order or twice: %v", got)
		}
	}
}

// A rotation that cannot rename (a directory in the way) fails the append, which says so,
// and leaves the live file as it was; a generation that cannot be read fails a Read.
func TestRotateAndReadFailures(t *testing.T) {
	l := testLog(t, 200, 1)
	l.Emit(Event{ID: 1, Event: Created})
	l.Emit(Event{ID: 2, Event: Created})
	if err := os.MkdirAll(filepath.Join(l.Generation(1), "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(l.Path)
	if err := l.Emit(Event{ID: 3, Event: Created}); err == nil {
		t.Fatal("append past the cap with an unrenamable generation succeeded")
	}
	if after, _ := os.ReadFile(l.Path); !bytes.Equal(before, after) {
		t.Fatal("failed rotation changed the live file")
	}
	if err := l.Read(time.Time{}, func(Line) error { return nil }); err == nil {
		t.Fatal("reading a directory generation succeeded")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := l.Follow(ctx, time.Time{}, time.Millisecond, func(Line) error { return nil }); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("following past a directory generation: %v", err)
	}
}
