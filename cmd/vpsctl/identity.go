package main

import (
	"fmt"
	"os"
	"strconv"

	"github.com/urfave/cli/v2"
	"github.com/vpsctl/vpsctl/container"
	"github.com/vpsctl/vpsctl/runtime"
)

func init() {
	extraCommandList = append(extraCommandList, uidCommand, psCommand, pidCommand)
}

func uidCommand() *cli.Command {
	return &cli.Command{
		Name: "uid", Usage: "show a VPS's UID table (VPS uid, host uid, user, processes)", ArgsUsage: "ID|NAME",
		Description: "Each VPS has its own host ID range for its user namespace: uid 0 of VPS 101 and\nuid 0 of VPS 102 are different, unprivileged host users.\n\nEXAMPLES:\n   vpsctl uid 101\n   vpsctl uid 101 --groups --format json",
		Flags:       []cli.Flag{formatFlag(), &cli.BoolFlag{Name: "groups", Aliases: []string{"g"}, Usage: "the GID table instead"}},
		Action: func(c *cli.Context) error {
			asJSON, err := checkFormat(c)
			if err != nil {
				return err
			}
			return withVPS(c, func(rt *runtime.Runtime, id container.ID) error {
				t, err := rt.UIDs(id, c.Bool("groups"))
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(os.Stdout, t.Entries)
				}
				if !t.UserNS {
					fmt.Printf("# VPS %d has no user namespace: host root mapping (VPS uid = host uid)\n", id)
				} else {
					fmt.Printf("# VPS %d: host IDs %s (host:size), from the pool %s\n", id, t.Range, t.Pool)
				}
				w := newTable()
				kind := "UID"
				if t.Groups {
					kind = "GID"
				}
				fmt.Fprintf(w, "VPS_%s\tHOST_%s\tNAME\tPROCESSES\n", kind, kind)
				for _, e := range t.Entries {
					fmt.Fprintf(w, "%d\t%d\t%s\t%d\n", e.VPSID, e.HostID, dash(e.User.String()), e.Processes)
				}
				return w.Flush()
			})
		},
	}
}

func psCommand() *cli.Command {
	return &cli.Command{
		Name: "ps", Usage: "list a VPS's processes with host and VPS PIDs (all VPSs without ID)", ArgsUsage: "[ID|NAME]",
		Description: "Without an ID: the spectator view, every process of every running VPS with its VPS ID.\nRead-only: vpsctl offers no way to signal from it.\n\nEXAMPLES:\n   vpsctl ps 101\n   vpsctl ps --format json",
		Flags:       []cli.Flag{formatFlag()},
		Action: func(c *cli.Context) error {
			asJSON, err := checkFormat(c)
			if err != nil {
				return err
			}
			rt, err := openRuntime(c)
			if err != nil {
				return err
			}
			var id container.ID
			if c.NArg() > 0 {
				if id, err = rt.Resolve(c.Args().First()); err != nil {
					return err
				}
			}
			ps, err := rt.PS(id)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(os.Stdout, ps)
			}
			w := newTable()
			if id == container.HostID {
				fmt.Fprint(w, "VPS\t")
			}
			fmt.Fprintln(w, "HOST_PID\tVPS_PID\tVPS_UID\tHOST_UID\tOWNING\tCOMMAND")
			for _, p := range ps {
				if id == container.HostID {
					fmt.Fprintf(w, "%d\t", p.VPS)
				}
				vu := strconv.FormatInt(p.VPSUID, 10)
				if p.VPSUID < 0 {
					vu = "-"
				}
				fmt.Fprintf(w, "%d\t%d\t%s\t%d\t%d\t%s\n", p.HostPID, p.VPSPID, vu, p.HostUID, p.Owning, p.Command.String())
			}
			return w.Flush()
		},
	}
}

func pidCommand() *cli.Command {
	return &cli.Command{
		Name: "pid", Usage: "which VPS owns a host PID, and its PID inside (vzpid)", ArgsUsage: "HOSTPID...",
		Description: "owning: the VPS whose cgroup the process is in (0 = host); effective: the VPS whose\nnamespaces it executes in. They differ for e.g. `nsenter -t INIT -n -u CMD` from the host.\n\nEXAMPLE:\n   vpsctl pid 4242 --format json",
		Flags:       []cli.Flag{formatFlag()},
		Action: func(c *cli.Context) error {
			asJSON, err := checkFormat(c)
			if err != nil {
				return err
			}
			if c.NArg() == 0 {
				return usageError("pid: usage: vpsctl pid HOSTPID...")
			}
			var pids []int
			for _, a := range c.Args().Slice() {
				p, err := strconv.Atoi(a)
				if err != nil || p <= 0 {
					return fmt.Errorf("PID %q: %w", a, runtime.ErrBadValue)
				}
				pids = append(pids, p)
			}
			rt, err := openRuntime(c)
			if err != nil {
				return err
			}
			infos, err := rt.PIDs(pids)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(os.Stdout, infos)
			}
			w := newTable()
			fmt.Fprintln(w, "HOST_PID\tOWNING\tEFFECTIVE\tVPS_PID\tCOMMAND")
			for _, p := range infos {
				fmt.Fprintf(w, "%d\t%d\t%d\t%d\t%s\n", p.HostPID, p.Owning, p.Effective, p.VPSPID, p.Command.String())
			}
			return w.Flush()
		},
	}
}
