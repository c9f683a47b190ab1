package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"
	"github.com/vpsctl/vpsctl/container"
	"github.com/vpsctl/vpsctl/runtime"
)

// Copying and moving VPSs: clone, backup (restore --from-backup is restore's), migrate.

func init() {
	extraCommandList = append(extraCommandList, cloneCommand)
}

func cloneCommand() *cli.Command {
	return &cli.Command{
		Name: "clone", Usage: "copy a VPS into a new, stopped one", ArgsUsage: "SRC DST",
		Description: `Makes VPS DST a copy of VPS SRC: its config (template, limits, namespaces) and its
files, with a UID range of its own (the files re-owned into it, ACLs and file
capabilities included), its own host name (--hostname, default vpsDST or --name) and
the addresses --ipadd gives (none otherwise: SRC keeps its own). A running SRC is frozen
while its files are copied and thawed after; it is otherwise untouched. DST is left
stopped. Files are copied as they are: SSH host keys and /etc/machine-id too.

EXAMPLES:
   vpsctl clone 601 602 --ipadd 198.18.0.62 && vpsctl start 602
   vpsctl clone web web2 --name web2 --hostname web2.example.com`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "name", Usage: "the clone's `NAME`"},
			&cli.StringFlag{Name: "hostname", Usage: "the clone's host `NAME`"},
			&cli.StringSliceFlag{Name: "ipadd", Usage: "routed `ADDR[/PREFIX]` of the clone (repeatable)"},
			formatFlag(),
		},
		Action: func(c *cli.Context) error {
			asJSON, err := checkFormat(c)
			if err != nil {
				return err
			}
			if c.NArg() != 2 {
				return usageError("clone: usage: vpsctl clone SRC DST")
			}
			dst, err := container.ParseID(c.Args().Get(1))
			if err != nil {
				return err
			}
			return withVPS(c, func(rt *runtime.Runtime, src container.ID) error {
				progress := os.Stdout
				if asJSON {
					progress = os.Stderr
				}
				res, err := rt.Clone(c.Context, src, dst, runtime.CloneOptions{Name: c.String("name"),
					Hostname: c.String("hostname"), IPs: c.StringSlice("ipadd"), Progress: progress})
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(os.Stdout, res)
				}
				fmt.Printf("VPS %d cloned to %d (stopped)\n", src, dst)
				return nil
			})
		},
	}
}
