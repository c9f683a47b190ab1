//go:build !amd64

package criu

import "context"

// probeBreakpoints is implemented for x86-64 only; elsewhere it answers "no",
// which only makes Preflight recommend CRIU_FAULT=130, the safe choice.
func probeBreakpoints(context.Context) (bool, string) {
	return false, "probe not implemented on this architecture"
}
