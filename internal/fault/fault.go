// Package fault provides crash-injection points for vpsctl's crash-consistency tests.
//
// When the environment variable VPSCTL_FAULT names a point, the process that reaches it kills
// itself with SIGKILL there, exactly as an operator's kill -9 or a power loss of the process
// would. The tests run every point and check that the next command finishes or undoes the work.
// Without VPSCTL_FAULT a point costs one string comparison.
package fault

import (
	"os"
	"syscall"
)

// Env is the variable naming the point to crash at.
const Env = "VPSCTL_FAULT"

var point = os.Getenv(Env)

// Point crashes the process if name is the configured fault point.
func Point(name string) {
	if point != "" && point == name {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // SIGKILL is not deliverable late, but never run past the point
	}
}

// Points lists every point compiled into vpsctl, for the tests.
var Points = []string{
	"create-staged", "create-named", "create-committed",
	"start-spawned", "monitor-cgroup", "monitor-cloned", "monitor-rootfs", "monitor-network", "monitor-running",
	"stop-requested", "stop-signalled", "stop-killed",
	"set-applied", "set-saved",
	"destroy-stopped", "destroy-renamed",
}
