package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"
	"github.com/vpsctl/vpsctl/lxcfs"
)

func init() {
	extraCommandList = append(extraCommandList, lxcfsCommand)
}

func lxcfsCommand() *cli.Command {
	root := func(c *cli.Context) (string, error) {
		if c.NArg() != 0 {
			return "", usageError("lxcfs %s takes no arguments", c.Command.Name)
		}
		rt, err := openRuntime(c)
		if err != nil {
			return "", err
		}
		return rt.St.Root, nil
	}
	return &cli.Command{
		Name: "lxcfs", Usage: "the LXCFS that shows VPSs their own memory, CPUs and uptime",
		Description: "A VPS's /proc/meminfo, cpuinfo, stat, uptime, loadavg, swaps, diskstats and\n" +
			"/sys/devices/system/cpu/online are LXCFS's views of its own limits. vpsctl uses the host's\n" +
			"lxcfs.service when it is mounted at " + lxcfs.ServiceMount + "; otherwise the first start runs one\n" +
			"of its own, supervised, mounted at STATE/lxcfs (log STATE/lxcfs.log). A VPS boots without\n" +
			"LXCFS too (with a warning; it sees the host's numbers). When vpsctl's LXCFS dies, its\n" +
			"supervisor detaches the views from running VPSs (the host's numbers, not read errors) and\n" +
			"binds the new instance's once it is back. `vpsctl status --format json ID` says which.\n\n" +
			"`lxcfs start` exits 3 when LXCFS is not installed or does not come up (the log says why).\n\n" +
			"EXAMPLES:\n   vpsctl lxcfs status\n   vpsctl lxcfs start\n   vpsctl lxcfs stop",
		Subcommands: []*cli.Command{
			{
				Name: "status", Usage: "which LXCFS VPSs boot with", Flags: []cli.Flag{formatFlag()},
				Description: `EXAMPLES:
   vpsctl lxcfs status
   vpsctl lxcfs status --format json`,
				Action: func(c *cli.Context) error {
					asJSON, err := checkFormat(c)
					if err != nil {
						return err
					}
					r, err := root(c)
					if err != nil {
						return err
					}
					in := lxcfs.Status(r)
					if asJSON {
						return printJSON(os.Stdout, in)
					}
					switch {
					case in.Service:
						fmt.Printf("lxcfs live at %s (the host's service)\n", in.Mount)
					case in.Mount != "":
						fmt.Printf("lxcfs live at %s (vpsctl's, supervisor PID %d)\n", in.Mount, in.SupervisorPID)
					case !in.Installed:
						fmt.Println("lxcfs not installed: VPSs see the host's numbers")
					default:
						fmt.Println("lxcfs not running: the next start runs it")
					}
					return nil
				},
			},
			{
				Name: "start", Usage: "run vpsctl's own LXCFS now (unless one is live)",
				Description: `EXAMPLE:
   vpsctl lxcfs start && vpsctl lxcfs status`,
				Action: func(c *cli.Context) error {
					r, err := root(c)
					if err != nil {
						return err
					}
					dir, err := lxcfs.Ensure(r)
					if err != nil {
						return err
					}
					// Its supervisor binds the running VPSs' views too; this returns once they are.
					n, err := lxcfs.Refresh(r, dir)
					if err != nil {
						return err
					}
					fmt.Printf("lxcfs live at %s (views of %d running VPSs bound)\n", dir, n)
					return nil
				},
			},
			{
				Name: "refresh", Usage: "bind the live LXCFS's views into every running VPS (after the host's lxcfs.service restarted)",
				Description: "vpsctl's own LXCFS does this itself whenever it (re)starts. Without a live LXCFS, stale\n" +
					"views are detached: the VPSs see the host's numbers instead of read errors.\n\nEXAMPLE:\n   systemctl restart lxcfs && vpsctl lxcfs refresh",
				Action: func(c *cli.Context) error {
					r, err := root(c)
					if err != nil {
						return err
					}
					dir, _ := lxcfs.Find(r)
					n, err := lxcfs.Refresh(r, dir)
					if err != nil {
						return err
					}
					if dir == "" {
						fmt.Printf("no live lxcfs: views of %d running VPSs detached\n", n)
					} else {
						fmt.Printf("views of %d running VPSs bound to %s\n", n, dir)
					}
					return nil
				},
			},
			{
				Name: "stop", Usage: "stop vpsctl's own LXCFS (running VPSs see the host's numbers until it runs again)",
				Description: `EXAMPLE:
   vpsctl lxcfs stop`,
				Action: func(c *cli.Context) error {
					r, err := root(c)
					if err != nil {
						return err
					}
					stopped, err := lxcfs.Stop(r)
					if err != nil {
						return err
					}
					if stopped {
						fmt.Println("lxcfs stopped")
					} else {
						fmt.Println("lxcfs not running")
					}
					return nil
				},
			},
		},
	}
}
