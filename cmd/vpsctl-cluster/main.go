// Command vpsctl-cluster is a host's cluster agent (package cluster): it holds the host's etcd
// connection and registration lease, and answers the vpsctl commands of one state root on
// STATE/cluster/agent.sock. vpsctl starts it when a command needs the cluster and none runs
// (with the settings of the host configuration); a service manager may run it in the
// foreground instead, with the same arguments:
//
//	vpsctl-cluster agent --root DIR --endpoints URL,... --node NAME --timeout 3s \
//	    [--cert FILE --key FILE] [--ca FILE]
//
// It is a program of its own because the etcd client's initialisation costs every process
// that links it about 7 ms (registry's package doc): vpsctl itself links none of it.
package main

import (
	"errors"
	"fmt"
	"log"
	"os"

	"github.com/vpsctl/vpsctl/cgroup"
	"github.com/vpsctl/vpsctl/cluster"
	"github.com/vpsctl/vpsctl/container"
	"github.com/vpsctl/vpsctl/registry"
)

// version is set at build time as vpsctl's is (scripts/build.sh): the version the host
// registers.
var version = "dev"

func main() {
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	if len(os.Args) < 2 || os.Args[1] != "agent" {
		fmt.Fprintln(os.Stderr, "usage: vpsctl-cluster agent --root DIR --endpoints URL,... --node NAME --timeout D [--cert F --key F] [--ca F]")
		os.Exit(2)
	}
	s, err := registry.ParseArgs(os.Args[2:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "vpsctl-cluster: "+err.Error())
		os.Exit(2)
	}
	// Started by vpsctl: the pipe where it waits for "ok" (registry.ReadyEnv names the fd).
	var ready *os.File
	if os.Getenv(registry.ReadyEnv) == "3" {
		ready = os.NewFile(3, "ready")
		os.Unsetenv(registry.ReadyEnv)
		// Out of the starting command's group (a login session's scope would take the agent
		// along at logout), beside vpsctl's other long-lived processes. A service manager's
		// agent (vpsctl cluster agent) stays in its unit.
		if err := cgroup.JoinSelf(container.ServiceGroup); err != nil {
			log.Printf("staying in the starter's cgroup: %v", err)
		}
	}
	if err := cluster.Serve(s, version, ready); err != nil {
		log.Printf("vpsctl-cluster: %v", err)
		if errors.Is(err, cluster.ErrAgentRuns) {
			return // not a failure: a service manager must not restart it in a loop
		}
		os.Exit(1)
	}
}
