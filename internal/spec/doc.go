// Package spec turns a VPS's stored configuration (store.Config) into what the kernel is told:
// its namespaces' clone flags, its capability bounding set, its device allowlist, its cgroup
// limits and path, its network configuration, how a command joins it. It is the one place that
// knows those translations; the monitor (which boots VPSs) and package runtime (which changes
// them live) both use it.
//
// Invariants: the functions are pure over a config (no I/O but Delegate's); a value the config
// cannot hold is an error wrapping ErrBadValue, naming the flag that sets it.
package spec

import (
	"errors"
	"fmt"
)

// ErrBadValue: a value of a VPS's settings is malformed or out of range.
var ErrBadValue = errors.New("bad value")

// ErrBadDevice is the ErrBadValue of a device rule (--devices), which vzctl gives an exit
// code of its own (86).
var ErrBadDevice = fmt.Errorf("bad device rule: %w", ErrBadValue)
