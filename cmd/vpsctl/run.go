package main

import (
	"os"

	"github.com/urfave/cli/v2"
	"github.com/vpsctl/vpsctl/container"
	"github.com/vpsctl/vpsctl/runtime"
)

func init() {
	extraCommandList = append(extraCommandList, runCommand)
}

func runCommand() *cli.Command {
	return &cli.Command{
		Name: "run", Usage: "run a command as PID 1 of a fresh VPS", ArgsUsage: "[ID] --template T -- COMMAND [ARG...]",
		Description: "Creates a VPS (ID given or the first free one from 1000000000), boots it with COMMAND as\nits PID 1 on your terminal's stdio, and exits with COMMAND's status. --rm destroys the VPS\nafterwards. No network is set up.\n\nEXAMPLES:\n   vpsctl run --rm --template busybox -- /bin/true\n   vpsctl run --rm --template busybox --hostname h1 -- sh -c 'hostname; ps'",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "template", Usage: "template `NAME` (required)"},
			&cli.StringFlag{Name: "hostname", Usage: "host name"},
			&cli.BoolFlag{Name: "rm", Usage: "destroy the VPS when the command exits"},
		},
		Action: func(c *cli.Context) error {
			args := c.Args().Slice()
			if c.String("template") == "" {
				return usageError("run: --template is required")
			}
			rt, err := openRuntime(c)
			if err != nil {
				return err
			}
			var id container.ID
			if len(args) > 0 && container.LooksNumeric(args[0]) {
				if id, err = container.ParseID(args[0]); err != nil {
					return err
				}
				args = args[1:]
			}
			if len(args) == 0 {
				return usageError("run: usage: vpsctl run [ID] --template T -- COMMAND [ARG...]")
			}
			code, err := rt.Run(c.Context, runtime.RunOptions{ID: id, Template: c.String("template"), Hostname: c.String("hostname"),
				Remove: c.Bool("rm"), Args: args, Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr})
			if err != nil {
				return err
			}
			if code != 0 {
				return cli.Exit("", code)
			}
			return nil
		},
	}
}
