package main

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
	"github.com/vpsctl/vpsctl/hostconf"
	"github.com/vpsctl/vpsctl/registry"
	"github.com/vpsctl/vpsctl/runtime"
	"github.com/vpsctl/vpsctl/store"
)

// The cluster (README, "Cluster"): hosts, list --cluster, status of a VPS elsewhere, and the
// host's agent.

func init() {
	extraCommandList = append(extraCommandList, hostsCommand, clusterCommand)
}

// needCluster is rt's cluster registry, or a usage error naming the setting.
func needCluster(rt *runtime.Runtime, what string) error {
	if rt.Cluster == nil {
		return usageError("%s: this host is in no cluster (set CLUSTER in %s, or %s)", what, hostconf.DefaultPath, hostconf.ClusterEnv)
	}
	return nil
}

func hostsCommand() *cli.Command {
	return &cli.Command{
		Name: "hosts", Usage: "the hosts of the cluster and whether each is up",
		Description: `One line per registered host: up while its cluster agent keeps its lease alive, down
when the lease expired (its VPSs then show as unknown in list --cluster, never as gone).

EXAMPLES:
   vpsctl hosts
   vpsctl hosts --format json`,
		Flags: []cli.Flag{formatFlag()},
		Action: func(c *cli.Context) error {
			asJSON, err := checkFormat(c)
			if err != nil {
				return err
			}
			rt, err := openRuntime(c)
			if err != nil {
				return err
			}
			if err := needCluster(rt, "hosts"); err != nil {
				return err
			}
			hs, err := rt.ClusterHosts(c.Context)
			if err != nil {
				return err
			}
			if asJSON {
				if hs == nil {
					hs = []registry.HostState{}
				}
				return printJSON(os.Stdout, hs)
			}
			w := newTable()
			fmt.Fprintln(w, "HOST\tSTATE\tADDRESS\tVERSION\tCPUS\tMEMORY\tVPSS\tREGISTERED")
			for _, h := range hs {
				state := "down"
				if h.Up {
					state = "up"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%dM\t%d\t%s\n", h.Name, state, dash(h.Address), dash(h.Version), h.CPUs,
					h.MemoryBytes>>20, h.VPSs, h.Registered.Local().Format(time.DateTime))
			}
			return w.Flush()
		},
	}
}

// listCluster prints list --cluster: every VPS of every host, from the registry.
func listCluster(c *cli.Context, rt *runtime.Runtime, asJSON bool) error {
	if err := needCluster(rt, "list --cluster"); err != nil {
		return err
	}
	inv, err := rt.ClusterInventory(c.Context)
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(os.Stdout, inv.VPSs)
	}
	w := newTable()
	fmt.Fprintln(w, "ID\tNAME\tHOST\tSTATE\tTEMPLATE\tIP")
	for _, v := range inv.VPSs {
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\n", v.ID, dash(v.Name), v.Host, v.State, dash(v.Template), dash(strings.Join(v.Addrs, " ")))
	}
	return w.Flush()
}

// remoteStatus is status of a VPS this host does not have: where the cluster has it.
type remoteStatus struct {
	ID    uint32 `json:"id"`
	Name  string `json:"name"`
	State string `json:"state"` // "remote"
	Host  string `json:"host"`
}

// statusElsewhere prints where the cluster has VPS ref, which this host does not have. ok is
// false when the cluster has it nowhere either (or this host is in no cluster).
func statusElsewhere(c *cli.Context, rt *runtime.Runtime, ref string, asJSON bool) (ok bool, err error) {
	if rt.Cluster == nil {
		return false, nil
	}
	rec, err := rt.ClusterLookup(c.Context, ref)
	if errors.Is(err, store.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("VPS %s is not on this host, and: %w", ref, err)
	}
	if rec.Host == rt.Cluster.Settings.Node {
		return false, nil // this host's in the registry, gone here: settled by the next change
	}
	if asJSON {
		return true, printJSON(os.Stdout, remoteStatus{ID: rec.ID, Name: rec.Name, State: "remote", Host: rec.Host})
	}
	fmt.Printf("VPS %d exist on host %s\n", rec.ID, rec.Host)
	return true, nil
}

func clusterCommand() *cli.Command {
	return &cli.Command{
		Name: "cluster", Usage: "this host's cluster agent",
		Description: `The agent (vpsctl-cluster) holds this host's etcd connection and its registration lease;
commands that need the cluster start it when it does not run. agent runs it in the
foreground (for a service manager); stop stops it, and the host shows as down at once.
join claims this host's VPSs in the registry: those made before CLUSTER was set (run again
at will: a VPS already claimed by this host is claimed as its config is now).

EXAMPLES:
   vpsctl cluster join
   vpsctl cluster agent
   vpsctl cluster stop`,
		Subcommands: []*cli.Command{
			{
				Name: "join", Usage: "claim this host's VPSs in the cluster registry",
				Description: `EXAMPLE:
   vpsctl cluster join        # once CLUSTER= is in the host configuration`,
				Action: func(c *cli.Context) error {
					rt, err := openRuntime(c)
					if err != nil {
						return err
					}
					if err := needCluster(rt, "cluster join"); err != nil {
						return err
					}
					res, err := rt.ClusterJoin(c.Context)
					var first error
					for _, j := range res {
						if j.Err != nil {
							fmt.Fprintf(os.Stderr, "vpsctl: VPS %d not claimed: %v\n", j.ID, j.Err)
							first = cmp.Or(first, j.Err)
							continue
						}
						fmt.Printf("VPS %d claimed\n", j.ID)
					}
					if err != nil {
						return err
					}
					if first != nil {
						return cli.Exit("", exitCode(first))
					}
					return nil
				},
			},
			{
				Name: "agent", Usage: "run this host's cluster agent in the foreground",
				Description: `EXAMPLE:
   vpsctl cluster agent       # a service's ExecStart=; vpsctl starts one itself when it needs it`,
				Action: func(c *cli.Context) error {
					rt, err := openRuntime(c)
					if err != nil {
						return err
					}
					if err := needCluster(rt, "cluster agent"); err != nil {
						return err
					}
					prog, err := rt.Cluster.Program()
					if err != nil {
						return err
					}
					// The agent replaces this process: a service manager's PID is the agent's.
					return syscall.Exec(prog, append([]string{prog}, rt.Cluster.Settings.Args()...), os.Environ())
				},
			},
			{
				Name: "stop", Usage: "stop this host's cluster agent (the host shows as down)",
				Description: `EXAMPLE:
   vpsctl cluster stop && vpsctl hosts`,
				Action: func(c *cli.Context) error {
					rt, err := openRuntime(c)
					if err != nil {
						return err
					}
					pid := registry.AgentPID(rt.St.Root)
					if pid == 0 {
						fmt.Println("no cluster agent runs")
						return nil
					}
					if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
						return fmt.Errorf("cluster agent %d: %w", pid, err)
					}
					for deadline := time.Now().Add(10 * time.Second); registry.AgentPID(rt.St.Root) == pid; {
						if time.Now().After(deadline) {
							return fmt.Errorf("cluster agent %d did not stop in 10 s", pid)
						}
						time.Sleep(10 * time.Millisecond)
					}
					fmt.Printf("cluster agent %d stopped\n", pid)
					return nil
				},
			},
		},
	}
}
