// Package fault provides crash-injection points for vpsctl's crash-consistency tests.
//
// When the environment variable VPSCTL_FAULT names a point, the process that reaches it kills
// itself with SIGKILL there, exactly as an operator's kill -9 or a power loss of the process
// would. The tests run every point and check that the next command finishes or undoes the work.
// Without VPSCTL_FAULT a point costs one string comparison.
//
// The points, and a few trace-only marks (Mark), are also where time is measured: with
// VPSCTL_TRACE=1 every point or mark reached is printed to standard error as
// "vpsctl trace: PID NAME UNIX-MICROSECONDS", comparable across vpsctl's processes (the
// breakdown in docs/BENCHMARKS.md comes from it). A monitor's standard error is its monitor.log.
package fault

import (
	"fmt"
	"os"
	"syscall"
	"time"
)

// Env is the variable naming the point to crash at.
const Env = "VPSCTL_FAULT"

// TraceEnv is the variable that turns tracing on.
const TraceEnv = "VPSCTL_TRACE"

var point = os.Getenv(Env)

var tracing = os.Getenv(TraceEnv) != ""

// Tracing reports whether VPSCTL_TRACE is set (for C code run on this process's behalf, which
// traces when told to: the init child).
func Tracing() bool { return tracing }

// Mark records name in the trace, if tracing.
func Mark(name string) {
	if tracing {
		fmt.Fprintf(os.Stderr, "vpsctl trace: %d %s %d\n", os.Getpid(), name, time.Now().UnixMicro())
	}
}

// Point crashes the process if name is the configured fault point (and traces it).
func Point(name string) {
	Mark(name)
	if point != "" && point == name {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // SIGKILL is not deliverable late, but never run past the point
	}
}

// Points lists every point compiled into vpsctl, for the tests.
var Points = []string{
	"create-staged", "create-named", "create-committed",
	"start-spawned", "monitor-cgroup", "monitor-cloned", "monitor-rootfs", "monitor-network", "monitor-running",
	"stop-requested", "stop-signalled", "stop-killed", "stop-cleared",
	"set-applied", "set-saved",
	"destroy-stopped", "destroy-renamed",
	"migrate-receive-restored", "migrate-receive-running",
}

// ClusterPoints are the points only a host in a cluster (CLUSTER set) reaches: the claims in
// the cluster registry around the local steps (tests/cluster_test.go runs each with the
// points above of the same commands).
var ClusterPoints = []string{"create-claiming", "create-claimed", "create-settled", "set-claimed", "destroy-marked", "migrate-moved"}
