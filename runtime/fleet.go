package runtime

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vpsctl/vpsctl/container"
	"github.com/vpsctl/vpsctl/fleet"
)

// Starting and stopping every VPS of the host (start --all, stop --all): package fleet orders
// and bounds them; this file supplies the VPSs and the stop.

// Fleet returns every VPS but spares as package fleet sees them (ONBOOT, BOOTORDER), each with
// its status (same index). A VPS whose ONBOOT or BOOTORDER does not parse (vps.conf edited by
// hand) is there as not onboot, with boot order 0 (start --all leaves it alone, stop --all
// stops it), and its error (fleet.ErrBadValue) is in bad.
func (r *Runtime) Fleet() (vpss []fleet.VPS, states []*Status, bad []error, err error) {
	ss, err := r.List(true)
	if err != nil {
		return nil, nil, nil, err
	}
	for _, s := range ss {
		v, err := fleet.FromConfig(uint32(s.ID), s.Name, s.OnBoot, s.BootOrder)
		if err != nil {
			bad = append(bad, err)
			v = fleet.VPS{ID: uint32(s.ID), Name: s.Name}
		}
		vpss, states = append(vpss, v), append(states, s)
	}
	return vpss, states, bad, nil
}

// StartAll starts the onboot VPSs of vpss (from Fleet, with their states) that are not
// running, level by level and at most parallel at once within one (fleet.StartAll), with start
// (which gets the caller's ctx: when it ends, VPSs not yet begun are skipped). An onboot VPS
// that runs already is reported at once as a result whose error matches ErrRunning; it is not
// started again. report, if not nil, gets each result as it comes.
func StartAll(ctx context.Context, vpss []fleet.VPS, states []*Status, parallel int,
	start func(context.Context, container.ID) error, report func(fleet.Result)) []fleet.Result {
	var out []fleet.Result
	var stopped []fleet.VPS
	for i, v := range vpss {
		if v.OnBoot && states[i].State == "running" {
			res := fleet.Result{VPS: v, Err: fmt.Errorf("VPS %d: %w", v.ID, ErrRunning)}
			out = append(out, res)
			if report != nil {
				report(res)
			}
			continue
		}
		stopped = append(stopped, v)
	}
	return append(out, fleet.StartAll(ctx, stopped, parallel, func(ctx context.Context, v fleet.VPS) error {
		return start(ctx, container.ID(v.ID))
	}, report)...)
}

// StopAll stops every running VPS of vpss (from Fleet, with their states) within bounds
// (fleet.StopAll): all are asked to power off at once (at most parallel at a time) and share
// the graceful period grace; each one still running then is killed, the kills sharing killWait.
// A suspended VPS is thawed first (Stop does), so that its guest can power off. cause names
// the stop in the stopped events.
func (r *Runtime) StopAll(ctx context.Context, vpss []fleet.VPS, states []*Status, parallel int, grace, killWait time.Duration,
	cause string, report func(fleet.Result)) []fleet.Result {
	var running []fleet.VPS
	for i, v := range vpss {
		if states[i].State == "running" {
			running = append(running, v)
		}
	}
	return fleet.StopAll(ctx, running, parallel, grace, killWait, func(ctx context.Context, v fleet.VPS, kill bool) error {
		// The shared grace period is the context's: a graceful Stop gives up when it ends, to
		// be killed next. Its own timeout is a second later, so that it is the context that
		// ends the wait (a Stop that timed out would kill the VPS itself, unreported).
		err := r.Stop(ctx, container.ID(v.ID), StopOptions{Timeout: grace + time.Second, Kill: kill, Cause: cause})
		if errors.Is(err, ErrNotRunning) {
			return nil // it stopped by itself meanwhile
		}
		return err
	}, report)
}
