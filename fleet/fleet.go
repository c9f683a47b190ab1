// Package fleet runs one operation over many VPSs of a host: the order and the bounded
// parallelism of `vpsctl start --all` (boot) and `vpsctl stop --all` (shutdown).
//
// It knows nothing of how a VPS starts or stops: the caller passes the operation as a
// function, and gets one Result per VPS, as each finishes and all together at the end.
//
// Invariants:
//
//   - start --all starts only onboot VPSs, level by level: all VPSs of a higher BOOTORDER have
//     finished starting (or failed) before any of a lower one begins, so a VPS can depend on
//     those booted before it (vzctl's BOOTORDER: higher first; unset is 0, last). Within a
//     level at most `parallel` start at once, lower IDs dispatched first. A failure does not
//     stop the boot: later levels still start, and the failure is reported.
//   - stop --all is bounded: every VPS gets the graceful stop at once (up to `parallel` at a
//     time), all sharing one deadline; whatever has not stopped by then (the stop gave up
//     because of the deadline, or never began) is killed, within a second bound. Nothing
//     waits longer than the two bounds together.
//   - Exactly one Result per VPS (StartAll: boot order; StopAll: stop
//     order); report, if not nil, is called once per VPS as it finishes, never from two
//     goroutines at once.
//   - Every goroutine started has ended when a function returns.
package fleet

import (
	"context"
	"errors"
	"sort"
	"sync"
	"time"
)

// VPS is what the ordering needs to know of a VPS (vps.conf's ONBOOT and BOOTORDER).
type VPS struct {
	ID        uint32
	Name      string
	OnBoot    bool
	BootOrder int // higher boots first; 0 when unset
}

// Result is what happened to one VPS.
type Result struct {
	VPS     VPS
	Err     error         // the operation's error; for a VPS never attempted, why (the context's error)
	Skipped bool          // never attempted: the context was done before its turn
	Killed  bool          // stop --all: it did not stop gracefully in time and was killed (Err: the kill's error)
	Took    time.Duration // from the operation's start to its end, kill included
}

// BootLevels returns the onboot VPSs of all grouped by boot order: the highest BOOTORDER
// first, each level in ascending ID order. VPSs without onboot are left out.
func BootLevels(all []VPS) [][]VPS {
	var on []VPS
	for _, v := range all {
		if v.OnBoot {
			on = append(on, v)
		}
	}
	sort.Slice(on, func(i, j int) bool {
		if on[i].BootOrder != on[j].BootOrder {
			return on[i].BootOrder > on[j].BootOrder
		}
		return on[i].ID < on[j].ID
	})
	var levels [][]VPS
	for i, v := range on {
		if i == 0 || v.BootOrder != on[i-1].BootOrder {
			levels = append(levels, nil)
		}
		levels[len(levels)-1] = append(levels[len(levels)-1], v)
	}
	return levels
}

// StopOrder returns all in the order stop --all asks them to stop: the reverse of the boot
// order (lowest BOOTORDER first, higher IDs first within one), onboot or not. With enough
// parallelism they all stop at once anyway; the order matters when there is less.
func StopOrder(all []VPS) []VPS {
	out := append([]VPS(nil), all...)
	sort.Slice(out, func(i, j int) bool {
		if out[i].BootOrder != out[j].BootOrder {
			return out[i].BootOrder < out[j].BootOrder
		}
		return out[i].ID > out[j].ID
	})
	return out
}

// reporter serializes the report callback.
type reporter struct {
	mu sync.Mutex
	fn func(Result)
}

func (r *reporter) report(res Result) {
	if r == nil || r.fn == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fn(res)
}

func run(ctx context.Context, items []VPS, parallel int, do func(context.Context, VPS) error, rep *reporter) []Result {
	parallel = max(parallel, 1)
	results := make([]Result, len(items))
	slots := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i, v := range items {
		// A free slot, or the end: whichever comes first (select picks at random when both
		// are ready, so the context is checked again below).
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			for j := i; j < len(items); j++ {
				results[j] = Result{VPS: items[j], Err: ctx.Err(), Skipped: true}
				rep.report(results[j])
			}
			break
		}
		wg.Add(1)
		go func(i int, v VPS) {
			defer wg.Done()
			defer func() { <-slots }()
			t0 := time.Now()
			err := do(ctx, v)
			results[i] = Result{VPS: v, Err: err, Took: time.Since(t0)}
			rep.report(results[i])
		}(i, v)
	}
	wg.Wait()
	return results
}

// StartAll starts the onboot VPSs of all, level by level (BootLevels), at most parallel at
// once within a level. It returns a result for each onboot VPS, in boot order. When ctx is
// done, what has not begun is Skipped.
func StartAll(ctx context.Context, all []VPS, parallel int, start func(context.Context, VPS) error, report func(Result)) []Result {
	rep := &reporter{fn: report}
	var out []Result
	for _, level := range BootLevels(all) {
		out = append(out, run(ctx, level, parallel, start, rep)...)
	}
	return out
}

// StopAll stops every VPS of running within bounds: stop(ctx, v, false) for all of them (at
// most parallel at once, in StopOrder), sharing a deadline of grace; then stop(ctx, v, true)
// (kill) for each whose graceful stop never began or gave up at that deadline, all sharing a
// second deadline of killWait. A graceful stop that failed for another reason (the VPS was
// not running any more, its lock is held) is reported as it is, not killed: the error says
// more than a kill would. stop must return an error matching context.DeadlineExceeded (or
// context.Canceled) when it gives up because its ctx is done. Results are in StopOrder.
func StopAll(ctx context.Context, running []VPS, parallel int, grace, killWait time.Duration,
	stop func(ctx context.Context, v VPS, kill bool) error, report func(Result)) []Result {
	order := StopOrder(running)
	rep := &reporter{fn: report}
	// Graceful stops are reported as they end, except those that will be killed next.
	gracefulRep := &reporter{fn: func(r Result) {
		if !needsKill(r) {
			rep.report(r)
		}
	}}
	gctx, cancel := context.WithTimeout(ctx, grace)
	results := run(gctx, order, parallel, func(c context.Context, v VPS) error { return stop(c, v, false) }, gracefulRep)
	cancel()
	var again []VPS
	var idx []int
	for i, r := range results {
		if needsKill(r) {
			again = append(again, r.VPS)
			idx = append(idx, i)
		}
	}
	if len(again) == 0 {
		return results
	}
	// The kill phase has a bound of its own and ignores the caller's cancellation: a stop
	// --all that is itself interrupted (systemd's TimeoutStopSec, a ^C) still kills what is
	// left rather than leave it running unattended; killWait bounds it.
	kctx, kcancel := context.WithTimeout(context.WithoutCancel(ctx), killWait)
	defer kcancel()
	killed := run(kctx, again, len(again), func(c context.Context, v VPS) error { return stop(c, v, true) }, nil)
	for k, i := range idx {
		results[i] = Result{VPS: results[i].VPS, Err: killed[k].Err, Skipped: killed[k].Skipped, Killed: !killed[k].Skipped,
			Took: results[i].Took + killed[k].Took}
		rep.report(results[i])
	}
	return results
}

// needsKill says whether a graceful stop's result calls for the kill: it never began, or it
// gave up at the deadline.
func needsKill(r Result) bool {
	return r.Skipped || r.Err != nil && (errors.Is(r.Err, context.DeadlineExceeded) || errors.Is(r.Err, context.Canceled))
}
