package main

import (
	"fmt"
	"os"
	"time"

	"github.com/urfave/cli/v2"
	"github.com/vpsctl/vpsctl/runtime"
	"github.com/vpsctl/vpsctl/spare"
)

func init() {
	extraCommandList = append(extraCommandList, spareCommand)
}

func spareCommand() *cli.Command {
	// withTemplate runs f with the runtime and the one argument, a template's name.
	withTemplate := func(c *cli.Context, f func(rt *runtime.Runtime, tpl string) error) error {
		if c.NArg() != 1 {
			return usageError("spare %s: usage: vpsctl spare %s TEMPLATE", c.Command.Name, c.Command.Name)
		}
		rt, err := openRuntime(c)
		if err != nil {
			return err
		}
		return f(rt, c.Args().First())
	}
	return &cli.Command{
		Name: "spare", Usage: "keep VPSs booted in advance for run --rm",
		Description: "A keeper process keeps --count VPSs of a template booted up to their command: a\n" +
			"`vpsctl run --rm --template T [--hostname H] -- COMMAND` then runs COMMAND in one of them\n" +
			"at once, and the keeper boots the next. Each spare holds a UID range, its groups and\n" +
			"mounts and a waiting init until it is claimed; `vpsctl list` does not show unclaimed\n" +
			"spares. Other forms of run (an ID, no --rm) boot a VPS of their own as always.\n\n" +
			"EXAMPLES:\n   vpsctl spare start busybox --count 2\n   vpsctl run --rm --template busybox -- /bin/true\n" +
			"   vpsctl spare list\n   vpsctl spare stop busybox",
		Subcommands: []*cli.Command{
			{
				Name: "start", Usage: "start a keeper of spare VPSs of a template", ArgsUsage: "TEMPLATE",
				Description: "Returns once the first spare is booted. A keeper that runs already is left as it is.\nThe keeper's log is STATE/spare/TEMPLATE.log.\n\nEXAMPLE:\n   vpsctl spare start busybox --count 2 --idle 30m",
				Flags: []cli.Flag{
					&cli.IntFlag{Name: "count", Value: 1, Usage: fmt.Sprintf("spares kept booted (1 to %d)", spare.MaxSpares)},
					&cli.DurationFlag{Name: "idle", Usage: "stop after this long without a claim (0: never)"},
				},
				Action: func(c *cli.Context) error {
					return withTemplate(c, func(rt *runtime.Runtime, tpl string) error {
						pid, already, err := spare.Start(rt, spare.Options{Template: tpl, Count: c.Int("count"), Idle: c.Duration("idle")})
						if err != nil {
							return err
						}
						if already {
							fmt.Printf("spare VPSs of template %s already kept (keeper PID %d)\n", tpl, pid)
							return nil
						}
						fmt.Printf("spare VPSs of template %s ready (keeper PID %d)\n", tpl, pid)
						return nil
					})
				},
			},
			{
				Name: "stop", Usage: "stop a keeper and destroy its spares", ArgsUsage: "TEMPLATE",
				Description: "Runs claimed meanwhile finish first.\n\nEXAMPLE:\n   vpsctl spare stop busybox",
				Flags: []cli.Flag{
					&cli.DurationFlag{Name: "timeout", Value: 60 * time.Second, Usage: "how long to wait for the keeper"},
				},
				Action: func(c *cli.Context) error {
					return withTemplate(c, func(rt *runtime.Runtime, tpl string) error {
						stopped, err := spare.Stop(rt, tpl, c.Duration("timeout"))
						if err != nil {
							return err
						}
						if !stopped {
							fmt.Printf("no spare VPSs of template %s kept\n", tpl)
							return nil
						}
						fmt.Printf("spare VPSs of template %s stopped\n", tpl)
						return nil
					})
				},
			},
			{
				Name: "list", Usage: "list the keepers of spare VPSs",
				Description: "EXAMPLE:\n   vpsctl spare list --format json",
				Flags:       []cli.Flag{formatFlag()},
				Action: func(c *cli.Context) error {
					js, err := checkFormat(c)
					if err != nil {
						return err
					}
					rt, err := openRuntime(c)
					if err != nil {
						return err
					}
					ks, err := spare.List(rt)
					if err != nil {
						return err
					}
					if js {
						if ks == nil {
							ks = []spare.Keeper{}
						}
						return printJSON(os.Stdout, ks)
					}
					w := newTable()
					fmt.Fprintln(w, "TEMPLATE\tPID\tCOUNT\tREADY\tSERVED")
					for _, k := range ks {
						fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\n", k.Template, k.PID, k.Count, k.Ready, k.Served)
					}
					return w.Flush()
				},
			},
		},
	}
}
