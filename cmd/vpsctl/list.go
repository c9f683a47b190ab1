package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"
	"github.com/vpsctl/vpsctl/runtime"
)

func listCommand() *cli.Command {
	return &cli.Command{
		Name: "list", Aliases: []string{"ls"}, Usage: "list VPSs (running ones unless -a, or the ones named)", ArgsUsage: "[ID|PATTERN...]",
		Description: `Columns id, name, state, hostname, template and addresses, or those -o names (vzlist -o):
` + strings.Join(runtime.ListFieldNames(), ",") + `
and vzlist's names for them: ` + strings.Join(runtime.ListFieldAliases(), " ") + `.
A beancounter's name is its held value; .m maxheld, .b barrier, .l limit, .f failcnt.
Beancounters of a stopped VPS are "-" (null in JSON), and so is no limit in JSON.
Arguments pick VPSs, whatever their state: IDs, or shell patterns of names ('web*').
As vzlist: -H no header, -s [-]FIELD sorts (- reverses), -S only stopped VPSs, -1 IDs only.
--cluster lists every VPS of every host of the cluster from its registry, with a HOST
column: this host's running or stopped, other hosts' exist (unknown while their host is
down; creating, changing or destroying while a change of theirs is unsettled).

EXAMPLES:
   vpsctl list -a
   vpsctl list -o id,hostname,numproc,numproc.l,numproc.f,physpages
   vpsctl list -o ctid,status,ostemplate -H -s ctid 101 'web*'
   vpsctl list -a -s -physpages -o ctid,physpages
   vpsctl list -1 -S
   vpsctl list -a --format json
   vpsctl list --cluster`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "all", Aliases: []string{"a"}, Usage: "include stopped VPSs"},
			&cli.BoolFlag{Name: "stopped", Aliases: []string{"S"}, Usage: "only VPSs that do not run"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "comma-separated fields to show (see above)"},
			&cli.StringFlag{Name: "sort", Aliases: []string{"s"}, Usage: "sort by `[-]FIELD` (- for reverse order)"},
			&cli.BoolFlag{Name: "no-header", Aliases: []string{"H"}, Usage: "no header line"},
			&cli.BoolFlag{Name: "1", Usage: "IDs only, one per line (-H -o id)"},
			&cli.BoolFlag{Name: "cluster", Usage: "every VPS of every host of the cluster, from its registry"},
			formatFlag(),
		},
		Action: func(c *cli.Context) error {
			asJSON, err := checkFormat(c)
			if err != nil {
				return err
			}
			if c.Bool("cluster") {
				for _, f := range []string{"all", "stopped", "output", "sort", "no-header", "1"} {
					if c.IsSet(f) {
						return usageError("list --cluster: --%s is for this host's VPSs", f)
					}
				}
				if c.NArg() > 0 {
					return usageError("list --cluster: no arguments")
				}
				rt, err := openRuntime(c)
				if err != nil {
					return err
				}
				return listCluster(c, rt, asJSON)
			}
			o := runtime.ListOptions{All: c.Bool("all"), Stopped: c.Bool("stopped"), Match: c.Args().Slice()}
			o.SortBy, o.Reverse = strings.CutPrefix(c.String("sort"), "-")
			if c.IsSet("sort") && o.SortBy == "" {
				return usageError("list: --sort: which field?")
			}
			output, noHeader := c.String("output"), c.Bool("no-header")
			if c.Bool("1") {
				if c.IsSet("output") {
					return usageError("list: -1 is -H -o id: not with -o")
				}
				output, noHeader = "id", true
			}
			var fields []string
			if output != "" {
				if fields, err = runtime.ParseListFields(output); err != nil {
					return err
				}
			}
			rt, err := openRuntime(c)
			if err != nil {
				return err
			}
			ss, err := rt.Select(o)
			if err != nil {
				return err
			}
			if fields != nil {
				return printFields(rt.Rows(ss, fields), fields, asJSON, noHeader)
			}
			if asJSON {
				return printJSON(os.Stdout, ss)
			}
			w := newTable()
			if !noHeader {
				fmt.Fprintln(w, "ID\tNAME\tSTATE\tHOSTNAME\tTEMPLATE\tIP")
			}
			for _, s := range ss {
				state := s.State
				if s.Suspended {
					state += ",suspended"
				}
				fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\n", s.ID, dash(s.Name), state, s.Hostname, s.Template, dash(strings.Join(s.IPs, " ")))
			}
			return w.Flush()
		},
	}
}

// printFields prints `list -o` rows: a table with the fields as headers (unless noHeader),
// or JSON objects keyed by field.
func printFields(rows []runtime.ListRow, fields []string, asJSON, noHeader bool) error {
	if asJSON {
		out := make([]map[string]any, 0, len(rows))
		for _, r := range rows {
			m := map[string]any{}
			for i, f := range fields {
				m[f] = r[i]
			}
			out = append(out, m)
		}
		return printJSON(os.Stdout, out)
	}
	w := newTable()
	if !noHeader {
		fmt.Fprintln(w, strings.ToUpper(strings.Join(fields, "\t")))
	}
	for _, r := range rows {
		vals := make([]string, len(r))
		for i, v := range r {
			vals[i] = listValue(v)
		}
		fmt.Fprintln(w, strings.Join(vals, "\t"))
	}
	return w.Flush()
}

// listValue renders a `list -o` value for the table: "-" for none, "unlimited" for no limit.
func listValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "-"
	case string:
		return dash(x)
	case runtime.Limit:
		return x.String()
	}
	return fmt.Sprint(v)
}
