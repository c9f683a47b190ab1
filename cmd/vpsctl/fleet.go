package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"github.com/vpsctl/vpsctl/container"
	"github.com/vpsctl/vpsctl/fleet"
	"github.com/vpsctl/vpsctl/runtime"
)

// causeEnv carries start --all's name to the `vpsctl start ID` it runs for each VPS: the cause
// of that VPS's started event. Such a start writes no audit line: start --all's stands for it.
const causeEnv = "_VPSCTL_CAUSE"

// startCause is the cause of a start's started event.
var startCause = "vpsctl start"

// stopTimeout is stop's and restart's grace period: --timeout, else STOP_TIMEOUT.
func stopTimeout(c *cli.Context) time.Duration {
	if c.IsSet("timeout") {
		return c.Duration("timeout")
	}
	return hostCfg.StopTimeout
}

// startAll is `vpsctl start --all`: every onboot VPS that is not running, in boot order
// (runtime.StartAll, package fleet), each by a `vpsctl start ID` of its own, so that each
// VPS's monitor is a start's forked child as with a plain start (one Go runtime per boot, in a
// session of its own), and a start that hangs or dies costs the others nothing.
func startAll(c *cli.Context) error {
	rt, err := openRuntime(c)
	if err != nil {
		return err
	}
	vpss, states, bad, err := rt.Fleet()
	if err != nil {
		return err
	}
	for _, err := range bad {
		fmt.Fprintf(os.Stderr, "vpsctl: %v: not started\n", err)
	}
	ctx, cancel := context.WithTimeout(c.Context, hostCfg.StartAllTimeout)
	defer cancel()
	results := runtime.StartAll(ctx, vpss, states, hostCfg.StartAllParallel, startChild, func(r fleet.Result) {
		switch {
		case r.Skipped:
			fmt.Printf("VPS %d not started: start --all ran out of time (STARTALL_TIMEOUT %v)\n", r.VPS.ID, hostCfg.StartAllTimeout)
		case errors.Is(r.Err, runtime.ErrRunning):
			fmt.Printf("VPS %d already running\n", r.VPS.ID)
		case r.Err != nil:
			fmt.Printf("VPS %d failed to start: %v\n", r.VPS.ID, r.Err)
		default:
			fmt.Printf("VPS %d started (%v)\n", r.VPS.ID, r.Took.Round(time.Millisecond))
		}
	})
	failed := len(bad)
	for _, r := range results {
		if r.Err != nil && !errors.Is(r.Err, runtime.ErrRunning) {
			failed++
		}
	}
	if failed > 0 {
		return fmt.Errorf("start --all: %d of %d VPSs not started", failed, len(results)+len(bad))
	}
	return nil
}

// startChild runs `vpsctl start ID` for start --all and waits for it. It is not killed when
// ctx ends: a start that has begun is bounded by START_TIMEOUT, and killing it half-way would
// only leave a VPS for the next command to repair.
func startChild(_ context.Context, id container.ID) error {
	cmd := exec.Command("/proc/self/exe", "--root", hostCfg.Root, "start", strconv.FormatUint(uint64(id), 10))
	cmd.Args[0] = "vpsctl"
	cmd.Env = append(os.Environ(), causeEnv+"=start --all")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// The output is the start's few lines; should a process it left hold the pipe open, the
	// wait ends anyway.
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		msg := strings.TrimSpace(strings.ReplaceAll(out.String(), "vpsctl: ", ""))
		if ee.ExitCode() == exitRunning {
			return fmt.Errorf("%s: %w", msg, runtime.ErrRunning)
		}
		return fmt.Errorf("%s (exit %d)", msg, ee.ExitCode())
	}
	return err
}

// stopAllKillWait bounds stop --all's kill of the VPSs still running after the grace period:
// a kill waits up to 5 s for the init's PID namespace to die, 10 s for a group's processes
// (no PID namespace), and 15 s for the monitor to finish its teardown.
const stopAllKillWait = 30 * time.Second

// stopAll is `vpsctl stop --all`: every running VPS, within bounds (runtime.StopAll).
func stopAll(c *cli.Context) error {
	rt, err := openRuntime(c)
	if err != nil {
		return err
	}
	// A VPS whose ONBOOT or BOOTORDER does not parse is stopped all the same (Fleet).
	vpss, states, _, err := rt.Fleet()
	if err != nil {
		return err
	}
	grace := hostCfg.StopAllTimeout
	if c.IsSet("timeout") {
		grace = c.Duration("timeout")
	}
	results := rt.StopAll(c.Context, vpss, states, hostCfg.StopAllParallel, grace, stopAllKillWait, "stop --all", func(r fleet.Result) {
		switch {
		case r.Killed && r.Err == nil:
			fmt.Printf("VPS %d killed: not powered off within %v (%v)\n", r.VPS.ID, grace, r.Took.Round(time.Millisecond))
		case r.Err != nil:
			fmt.Printf("VPS %d failed to stop: %v\n", r.VPS.ID, r.Err)
		default:
			fmt.Printf("VPS %d stopped (%v)\n", r.VPS.ID, r.Took.Round(time.Millisecond))
		}
	})
	failed := 0
	for _, r := range results {
		if r.Err != nil {
			failed++
		}
	}
	if failed > 0 {
		return fmt.Errorf("stop --all: %d of %d VPSs not stopped", failed, len(results))
	}
	return nil
}
