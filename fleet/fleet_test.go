package fleet

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func ids(vs []VPS) []uint32 {
	out := make([]uint32, len(vs))
	for i, v := range vs {
		out[i] = v.ID
	}
	return out
}

func TestBootOrder(t *testing.T) {
	// Issue 25's acceptance: 501 (bootorder 10) and 502 (20) onboot, 503 not: 502 then 501.
	all := []VPS{{ID: 503}, {ID: 501, OnBoot: true, BootOrder: 10}, {ID: 502, OnBoot: true, BootOrder: 20}}
	if got := ids(BootOrder(all)); !reflect.DeepEqual(got, []uint32{502, 501}) {
		t.Fatalf("%v", got)
	}
	all = []VPS{{ID: 9, OnBoot: true}, {ID: 3, OnBoot: true, BootOrder: 5}, {ID: 1, OnBoot: true, BootOrder: 5},
		{ID: 2, OnBoot: true}, {ID: 7, OnBoot: false, BootOrder: 100}, {ID: 4, OnBoot: true, BootOrder: 50}}
	levels := BootLevels(all)
	want := [][]uint32{{4}, {1, 3}, {2, 9}}
	if len(levels) != len(want) {
		t.Fatalf("%v", levels)
	}
	for i := range want {
		if !reflect.DeepEqual(ids(levels[i]), want[i]) {
			t.Fatalf("level %d: %v", i, ids(levels[i]))
		}
	}
	if BootLevels(nil) != nil || BootLevels([]VPS{{ID: 1}}) != nil {
		t.Fatal("levels without onboot VPSs")
	}
	if got := ids(StopOrder(all)); !reflect.DeepEqual(got, []uint32{9, 2, 3, 1, 4, 7}) {
		t.Fatalf("stop order %v", got)
	}
	if all[0].ID != 9 {
		t.Fatal("StopOrder sorted its argument")
	}
}

func many(n int) []VPS {
	out := make([]VPS, n)
	for i := range out {
		out[i] = VPS{ID: uint32(i + 1), OnBoot: true}
	}
	return out
}

func TestRunBoundsParallelism(t *testing.T) {
	var cur, peak atomic.Int32
	var reports []uint32
	items := many(20)
	res := Run(context.Background(), items, 3, func(ctx context.Context, v VPS) error {
		n := cur.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(2 * time.Millisecond)
		cur.Add(-1)
		if v.ID == 7 {
			return errors.New("boom")
		}
		return nil
	}, func(r Result) { reports = append(reports, r.VPS.ID) })
	if peak.Load() != 3 {
		t.Fatalf("peak parallelism %d, want 3", peak.Load())
	}
	if len(res) != 20 || len(reports) != 20 {
		t.Fatalf("%d results, %d reports", len(res), len(reports))
	}
	for i, r := range res {
		if r.VPS.ID != uint32(i+1) || r.Skipped || r.Killed || (r.Err != nil) != (r.VPS.ID == 7) || r.Took <= 0 {
			t.Fatalf("result %d: %+v", i, r)
		}
	}
	// parallel below 1 is 1.
	cur.Store(0)
	peak.Store(0)
	Run(context.Background(), many(4), 0, func(ctx context.Context, v VPS) error {
		if cur.Add(1) > 1 {
			peak.Store(2)
		}
		time.Sleep(time.Millisecond)
		cur.Add(-1)
		return nil
	}, nil)
	if peak.Load() != 0 {
		t.Fatal("parallel 0 ran two at once")
	}
}

func TestRunStopsAtCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var ran atomic.Int32
	res := Run(ctx, many(10), 2, func(c context.Context, v VPS) error {
		ran.Add(1)
		if v.ID == 2 { // both slots taken: the dispatcher is waiting when the end comes
			cancel()
		}
		<-c.Done() // every begun operation waits for the end, as a stop would for its deadline
		return fmt.Errorf("VPS %d: %w", v.ID, c.Err())
	}, nil)
	if n := ran.Load(); n != 2 {
		t.Fatalf("%d operations began", n)
	}
	skipped := 0
	for _, r := range res {
		if r.Skipped {
			skipped++
			if !errors.Is(r.Err, context.Canceled) {
				t.Fatalf("%+v", r)
			}
		}
	}
	if skipped != 10-int(ran.Load()) {
		t.Fatalf("%d skipped, %d ran", skipped, ran.Load())
	}
}

// StartAll finishes each boot-order level before it begins the next.
func TestStartAllLevels(t *testing.T) {
	all := []VPS{{ID: 1, OnBoot: true, BootOrder: 1}, {ID: 2, OnBoot: true, BootOrder: 1}, {ID: 3, OnBoot: true, BootOrder: 9},
		{ID: 4, OnBoot: true, BootOrder: 9}, {ID: 5, OnBoot: true, BootOrder: 9}, {ID: 6}}
	var mu sync.Mutex
	var log []string
	res := StartAll(context.Background(), all, 4, func(ctx context.Context, v VPS) error {
		mu.Lock()
		log = append(log, fmt.Sprintf("begin %d", v.BootOrder))
		mu.Unlock()
		time.Sleep(time.Duration(v.ID) * time.Millisecond)
		mu.Lock()
		log = append(log, fmt.Sprintf("end %d", v.BootOrder))
		mu.Unlock()
		if v.ID == 4 {
			return errors.New("no template")
		}
		return nil
	}, nil)
	if got := ids(func() []VPS {
		var vs []VPS
		for _, r := range res {
			vs = append(vs, r.VPS)
		}
		return vs
	}()); !reflect.DeepEqual(got, []uint32{3, 4, 5, 1, 2}) {
		t.Fatalf("results %v", got)
	}
	if res[1].Err == nil {
		t.Fatal("a failure was lost")
	}
	// Every event of level 9 comes before any of level 1: a failure in 9 did not stop level 1.
	seen1 := false
	for _, e := range log {
		if e == "begin 1" {
			seen1 = true
		}
		if seen1 && (e == "begin 9" || e == "end 9") {
			t.Fatalf("level 9 after level 1 began: %v", log)
		}
	}
	if !seen1 || len(log) != 10 {
		t.Fatalf("%v", log)
	}
}

// StopAll: gentle VPSs stop, a stuck one is killed after the grace period, ones never begun
// (too little parallelism) are killed, a failure for another reason is left as it is, and the
// whole takes about grace, not the sum of the waits.
func TestStopAll(t *testing.T) {
	vs := []VPS{{ID: 1}, {ID: 2}, {ID: 3}, {ID: 4}, {ID: 5}}
	var mu sync.Mutex
	kills := map[uint32]bool{}
	var reported []Result
	stop := func(ctx context.Context, v VPS, kill bool) error {
		if kill {
			mu.Lock()
			kills[v.ID] = true
			mu.Unlock()
			if v.ID == 5 {
				return errors.New("kill failed")
			}
			return nil
		}
		switch v.ID {
		case 2: // its init ignores the poweroff signal
			<-ctx.Done()
			return fmt.Errorf("stop: %w", ctx.Err())
		case 3:
			return errors.New("not running")
		case 5, 4: // slow: with 2 they hold the three slots until the deadline, so 1 never begins
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	}
	t0 := time.Now()
	res := StopAll(context.Background(), vs, 3, 50*time.Millisecond, time.Second, stop, func(r Result) { reported = append(reported, r) })
	el := time.Since(t0)
	if el < 50*time.Millisecond || el > 2*time.Second {
		t.Fatalf("took %v", el)
	}
	byID := map[uint32]Result{}
	for _, r := range res {
		byID[r.VPS.ID] = r
	}
	if r := byID[3]; r.Err == nil || r.Killed || kills[3] {
		t.Fatalf("3: %+v", r)
	}
	for _, id := range []uint32{1, 2, 4} {
		if r := byID[id]; r.Err != nil || !r.Killed || !kills[id] {
			t.Fatalf("%d: %+v", id, r)
		}
	}
	if r := byID[5]; r.Err == nil || !r.Killed {
		t.Fatalf("5: %+v", r)
	}
	if len(reported) != 5 {
		t.Fatalf("%d reports: %+v", len(reported), reported)
	}
	for _, r := range reported {
		if r.VPS.ID != 3 && !r.Killed {
			t.Fatalf("reported before its kill: %+v", r)
		}
	}
	// Nothing to kill: the kill phase does not run, and each stop is reported once.
	reported = nil
	res = StopAll(context.Background(), []VPS{{ID: 8}}, 4, time.Second, time.Second,
		func(ctx context.Context, v VPS, kill bool) error {
			if kill {
				t.Error("killed a VPS that stopped")
			}
			return nil
		}, func(r Result) { reported = append(reported, r) })
	if len(res) != 1 || res[0].Err != nil || len(reported) != 1 {
		t.Fatalf("%+v %+v", res, reported)
	}
}

// A stop --all whose own context is cancelled (the service manager gave up on it) still
// kills what is left, within killWait.
func TestStopAllCancelledStillKills(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var killed atomic.Int32
	res := StopAll(ctx, many(3), 2, time.Hour, time.Second, func(c context.Context, v VPS, kill bool) error {
		if kill {
			killed.Add(1)
			return c.Err()
		}
		t.Error("graceful stop began after cancellation")
		return nil
	}, nil)
	if killed.Load() != 3 {
		t.Fatalf("%d killed: %+v", killed.Load(), res)
	}
	for _, r := range res {
		if !r.Killed || r.Err != nil {
			t.Fatalf("%+v", r)
		}
	}
}
