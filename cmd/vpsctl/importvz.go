package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"
	"github.com/vpsctl/vpsctl/container"
	"github.com/vpsctl/vpsctl/vzimport"
)

func init() {
	extraCommandList = append(extraCommandList, importVZCommand)
}

func importVZCommand() *cli.Command {
	return &cli.Command{
		Name: "import-vz", Usage: "make a VPS of an OpenVZ container (its vzctl CTID.conf and private area)", ArgsUsage: "CTID.conf PRIVATE_DIR",
		Description: `Reads the container's vzctl config and says of every key what became of it: mapped to a
vpsctl setting (HOSTNAME, NAME, IP_ADDRESS, NAMESERVER, SEARCHDOMAIN, NETIF, PHYSPAGES,
SWAPPAGES, NUMPROC, CPUUNITS, CPULIMIT, CPUS, IOLIMIT, CAPABILITY, DEVICES, DEVNODES, FEATURES,
ONBOOT, BOOTORDER, DISKSPACE), understood with nothing to set (VE_ROOT, VE_PRIVATE, OSTEMPLATE,
...), or not mapped and why (DISKINODES, quota settings, user beancounters, ...). The private area (a simfs directory, the container's
root file system) becomes the template vz-CTID (--template NAME for another), and the VPS is
created over it, stopped. A ploop image must be mounted first (ploop mount) and its mount
point given. The VPS's ID is the container's unless --id says otherwise.

EXAMPLES:
   vpsctl import-vz /etc/vz/conf/101.conf /vz/private/101
   vpsctl import-vz 101.conf private-101 --id 802 && vpsctl start 802`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "id", Usage: "the VPS's `ID` (default: the container's)"},
			&cli.StringFlag{Name: "template", Usage: "`NAME` of the template made of the private area (default vz-CTID)"},
			formatFlag(),
		},
		Action: func(c *cli.Context) error {
			out, err := outputOf(c)
			if err != nil {
				return err
			}
			if c.NArg() != 2 {
				return usageError("import-vz: usage: vpsctl import-vz CTID.conf PRIVATE_DIR [--id N]")
			}
			var o vzimport.Options
			if c.IsSet("id") {
				if o.ID, err = container.ParseID(c.String("id")); err != nil {
					return err
				}
			}
			o.Template = c.String("template")
			rt, err := openRuntime(c)
			if err != nil {
				return err
			}
			progress := out.progress()
			rep, err := vzimport.Import(c.Context, rt, c.Args().Get(0), c.Args().Get(1), o, progress)
			if err != nil {
				return err
			}
			if out.json {
				return printJSON(os.Stdout, rep)
			}
			w := newTable()
			fmt.Fprintln(w, "KEY\tVALUE\tBECAME")
			for _, m := range rep.Mapped {
				fmt.Fprintf(w, "%s\t%s\t%s\n", m.Key, m.Value, m.To)
			}
			for _, m := range rep.Noted {
				fmt.Fprintf(w, "%s\t%s\t(noted: %s)\n", m.Key, m.Value, m.Why)
			}
			for _, m := range rep.Unmapped {
				fmt.Fprintf(w, "%s\t%s\tNOT MAPPED: %s\n", m.Key, m.Value, m.Why)
			}
			if err := w.Flush(); err != nil {
				return err
			}
			fmt.Printf("VPS %d created from the container (template %s); %d keys mapped, %d not mapped\n",
				rep.ID, rep.Template, len(rep.Mapped), len(rep.Unmapped))
			return nil
		},
	}
}
