package fleet

import "context"

// Helpers the tests use; the program needs only StartAll and StopAll.

// BootOrder is BootLevels flattened: the order start --all starts VPSs in.
func BootOrder(all []VPS) []VPS {
	var out []VPS
	for _, l := range BootLevels(all) {
		out = append(out, l...)
	}
	return out
}

// Run calls do for every VPS of items, at most parallel (at least 1) at once, starting them
// in the order given, and returns their results in that order. Once ctx is done no more are
// started: those left are Skipped with ctx's error. do gets ctx and should give up when it is
// done.
func Run(ctx context.Context, items []VPS, parallel int, do func(context.Context, VPS) error, report func(Result)) []Result {
	return run(ctx, items, parallel, do, &reporter{fn: report})
}
