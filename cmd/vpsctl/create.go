package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"
	"github.com/vpsctl/vpsctl/container"
	"github.com/vpsctl/vpsctl/hostconf"
	"github.com/vpsctl/vpsctl/internal/spec"
	"github.com/vpsctl/vpsctl/runtime"
)

// limitFlags are shared by create and set.
func limitFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "memory", Usage: "memory limit `SIZE` (K/M/G/T suffix, or unlimited)"},
		&cli.StringFlag{Name: "swap", Usage: "swap allowed in addition to memory, `SIZE`"},
		&cli.StringFlag{Name: "cpus", Usage: "number of CPUs' worth of time `N`"},
		&cli.StringFlag{Name: "cpulimit", Usage: "CPU limit in `PCT` of one CPU (100 = one full CPU, 0 = none)"},
		&cli.StringFlag{Name: "cpuunits", Usage: "relative CPU weight `N`, 8..500000 (default 1000)"},
		&cli.StringFlag{Name: "numproc", Usage: "maximum number of processes and threads `N` (or unlimited)"},
		&cli.StringFlag{Name: "iolimit", Usage: "disk bandwidth limit per direction, `SIZE` per second"},
		&cli.StringFlag{Name: "ioweight", Usage: "relative disk weight `N`, 10..1000"},
		&cli.StringFlag{Name: "diskspace", Usage: "disk space `SOFT[:HARD]` (K/M/G/T; a bare number is KiB, as vzctl's): the VPS's files in a disk image of HARD's size; live on a running VPS (grow, or shrink if its files fit), always saved"},
		&cli.StringFlag{Name: "diskinodes", Usage: "vzctl's inode limit `N`: refused (the disk image's file system has none; diskspace bounds the files)"},
	}
}

// planFlag is --plan of create and set.
func planFlag() cli.Flag {
	return &cli.StringFlag{Name: "plan", Usage: "limits of plan `NAME` (PLANS/NAME.conf beside the host configuration; limit flags win)"}
}

// bootFlags are --onboot and --bootorder of create and set.
func bootFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "onboot", Usage: "`yes`: start --all (at the host's boot) starts it; no: not"},
		&cli.StringFlag{Name: "bootorder", Usage: "start --all's order `N`: higher first (default 0, last)"},
	}
}

// optString is flag n's value if it was given, else nil.
func optString(c *cli.Context, n string) *string {
	if !c.IsSet(n) {
		return nil
	}
	v := c.String(n)
	return &v
}

// planOf is --plan's plan, nil without one.
func planOf(c *cli.Context) (*hostconf.Plan, error) {
	if !c.IsSet("plan") {
		return nil, nil
	}
	return hostCfg.Plan(c.String("plan"))
}

func limitsFrom(c *cli.Context) runtime.Limits {
	get := func(n string) *string {
		if !c.IsSet(n) {
			return nil
		}
		v := c.String(n)
		return &v
	}
	return runtime.Limits{Memory: get("memory"), Swap: get("swap"), CPUs: get("cpus"), CPULimit: get("cpulimit"),
		CPUUnits: get("cpuunits"), NumProc: get("numproc"), IOLimit: get("iolimit"), IOWeight: get("ioweight")}
}

// netFlags are shared by create and set.
func netFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{Name: "ipadd", Usage: "add a routed address `ADDR[/PREFIX]` (repeatable, IPv4 or IPv6)"},
		&cli.StringSliceFlag{Name: "netif-add", Usage: "add a veth interface `NAME[,mac=MAC,host-ifname=H,bridge=BR,ip=ADDR/PREFIX,gw=GW]`"},
		&cli.StringSliceFlag{Name: "nameserver", Usage: "DNS server `ADDR`, or inherit (repeatable)"},
		&cli.StringSliceFlag{Name: "searchdomain", Usage: "DNS search `DOMAIN` (repeatable)"},
	}
}

func netFrom(c *cli.Context) runtime.NetOptions {
	o := runtime.NetOptions{IPAdd: c.StringSlice("ipadd"), NetIfAdd: c.StringSlice("netif-add")}
	if c.IsSet("nameserver") {
		o.Nameservers = c.StringSlice("nameserver")
	}
	if c.IsSet("searchdomain") {
		o.SearchDomains = c.StringSlice("searchdomain")
	}
	if c.Command.Name == "set" {
		o.IPDel, o.NetIfDel = c.StringSlice("ipdel"), c.StringSlice("netif-del")
	}
	return o
}

func createCommand() *cli.Command {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "template", Aliases: []string{"ostemplate"}, Usage: "template `NAME` (see vpsctl template list; default: DEFAULT_TEMPLATE, else required)"},
		&cli.StringFlag{Name: "name", Usage: "unique alias `NAME` usable instead of the ID"},
		&cli.StringFlag{Name: "hostname", Usage: "host name (default: the name, or vpsID)"},
		&cli.StringFlag{Name: "domainname", Usage: "NIS domain name"},
		&cli.StringFlag{Name: "namespaces", Usage: "namespace subset, e.g. uts,ipc,pid,mnt (default: all of " + strings.Join(spec.AllNamespaces, ",") + ")"},
		&cli.Uint64Flag{Name: "idmap-size", Usage: "width `N` of the VPS's host UID/GID range", DefaultText: "UID_RANGE_SIZE, 65536"},
		planFlag(),
		&cli.StringSliceFlag{Name: "devices", Usage: "allow device `c|b:MAJOR:MINOR:rwm` in addition to the defaults, with its node in /dev (repeatable)"},
		&cli.StringSliceFlag{Name: "features", Usage: "`tun,fuse,ppp`: the devices (and nodes) each needs"},
		&cli.StringSliceFlag{Name: "bindmount", Usage: "`HOSTDIR:VPSDIR[:ro]`: a host directory shown inside, with the VPS's own UIDs (repeatable)"},
		&cli.StringSliceFlag{Name: "capability", Usage: "`NAME:on|off` change to the default bounding set (repeatable)"},
	}
	flags = append(flags, limitFlags()...)
	flags = append(flags, netFlags()...)
	flags = append(flags, bootFlags()...)
	return &cli.Command{
		Name: "create", Usage: "create a VPS from a template (does not start it)", ArgsUsage: "ID --template NAME",
		Description: `Records the VPS's config and prepares its private area (copy-on-write over the template).
Limits not given come from --plan, then from the host configuration (vpsctl config show).

EXAMPLES:
   vpsctl create 101 --template busybox --hostname alpha --name web --memory 256M --ipadd 198.18.0.101
   vpsctl create 102 --template busybox --plan small --onboot yes --bootorder 10`,
		Flags: flags,
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageError("create: usage: vpsctl create ID --template NAME [options]")
			}
			id, err := container.ParseID(c.Args().First())
			if err != nil {
				return err
			}
			if c.String("template") == "" && hostCfg.DefaultTemplate == "" {
				return usageError("create: --template is required (see vpsctl template list), or DEFAULT_TEMPLATE in the host configuration")
			}
			plan, err := planOf(c)
			if err != nil {
				return err
			}
			var ns []string
			if c.IsSet("namespaces") {
				ns = []string{c.String("namespaces")}
			}
			size := c.Uint64("idmap-size")
			if size > 1<<32-2 || c.IsSet("idmap-size") && size == 0 {
				return fmt.Errorf("--idmap-size %d: want 1..4294967294: %w", size, runtime.ErrBadValue)
			}
			rt, err := openRuntime(c)
			if err != nil {
				return err
			}
			o := runtime.CreateOptions{ID: id, Name: c.String("name"), Template: c.String("template"),
				Hostname: c.String("hostname"), Domainname: c.String("domainname"), Namespaces: ns,
				IDMapSize: uint32(size), Limits: limitsFrom(c), Net: netFrom(c),
				Devices: c.StringSlice("devices"), Caps: c.StringSlice("capability"), Features: c.StringSlice("features"),
				BindMounts: c.StringSlice("bindmount"), OnBoot: c.String("onboot"), BootOrder: c.String("bootorder"),
				DiskSpace: c.String("diskspace"), DiskInodes: c.String("diskinodes")}
			rt.CreateDefaults(&o, plan)
			if err := rt.Create(c.Context, o); err != nil {
				return err
			}
			fmt.Printf("VPS %d created\n", id)
			return nil
		},
	}
}

func setCommand() *cli.Command {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "name", Usage: "new unique alias"},
		&cli.StringFlag{Name: "hostname", Usage: "host name (live, and saved with /etc/hostname)"},
		&cli.StringFlag{Name: "domainname", Usage: "NIS domain name"},
		&cli.StringSliceFlag{Name: "ipdel", Usage: "remove address `ADDR`, or all"},
		&cli.StringSliceFlag{Name: "netif-del", Usage: "remove interface `NAME`"},
		&cli.StringSliceFlag{Name: "capability", Usage: "`NAME:on|off` (repeatable; applies at next start)"},
		&cli.StringSliceFlag{Name: "devices", Usage: "extra device rules `c|b:MAJOR:MINOR:rwm`, replacing the saved ones (\"\": none; next start)"},
		&cli.StringSliceFlag{Name: "features", Usage: "`tun,fuse,ppp`, replacing the saved ones (\"\": none; next start)"},
		&cli.StringSliceFlag{Name: "bindmount", Usage: "add `HOSTDIR:VPSDIR[:ro]` (next start)"},
		&cli.StringSliceFlag{Name: "bindmount-del", Usage: "remove the bind mount at `VPSDIR` (next start)"},
		&cli.BoolFlag{Name: "save", Usage: "on a running VPS, also save limits and addresses to its config"},
		&cli.StringSliceFlag{Name: "userpasswd", Usage: "set `USER` (password read from stdin) or USER:PASSWORD inside the VPS, creating the user if missing (never saved or logged)"},
		planFlag(),
	}
	flags = append(flags, limitFlags()...)
	flags = append(flags, netFlags()...)
	flags = append(flags, bootFlags()...)
	return &cli.Command{
		Name: "set", Usage: "change a VPS's settings", ArgsUsage: "ID|NAME [options]",
		Description: `On a running VPS, limits and addresses apply live and are saved only with --save;
on a stopped VPS they are saved. Host and domain names apply live and are always saved.

--plan applies a plan's limits (vzctl's --applyconfig); limit flags given with it win, and
limits the plan leaves out are left as they are.

EXAMPLES:
   vpsctl set 101 --hostname beta
   vpsctl set 101 --numproc 100 --memory 512M --save
   vpsctl set 101 --ipadd 198.18.0.111 --ipdel 198.18.0.101
   echo "$PASSWORD" | vpsctl set 101 --userpasswd alice    # the password never in any argv
   vpsctl set 101 --plan large --save
   vpsctl set 101 --onboot yes --bootorder 20`,
		Flags: flags,
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageError("set: usage: vpsctl set ID|NAME [options]")
			}
			str := func(n string) *string { return optString(c, n) }
			plan, err := planOf(c)
			if err != nil {
				return err
			}
			limits := limitsFrom(c).WithPlan(plan)
			users, err := userpasswdFrom(c.StringSlice("userpasswd"), os.Stdin)
			if err != nil {
				return err
			}
			return withVPS(c, func(rt *runtime.Runtime, id container.ID) error {
				err := rt.Set(c.Context, id, runtime.SetOptions{Name: str("name"), Hostname: str("hostname"), Domainname: str("domainname"),
					Limits: limits, Net: netFrom(c), Capabilities: c.StringSlice("capability"), Save: c.Bool("save"), Devices: devicesFrom(c),
					UserPasswd: users, Features: featuresFrom(c), BindMountAdd: c.StringSlice("bindmount"),
					BindMountDel: c.StringSlice("bindmount-del"), OnBoot: str("onboot"), BootOrder: str("bootorder"),
					DiskSpace: str("diskspace"), DiskInodes: str("diskinodes")})
				if err != nil {
					return err
				}
				fmt.Printf("VPS %d settings changed\n", id)
				return nil
			})
		},
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// featuresFrom is --features as given ([] for --features ""), nil when not given.
func featuresFrom(c *cli.Context) []string {
	if !c.IsSet("features") {
		return nil
	}
	f := []string{}
	for _, v := range c.StringSlice("features") {
		if v != "" {
			f = append(f, v)
		}
	}
	return f
}

// devicesFrom is --devices as given ([] for --devices ""), nil when not given.
func devicesFrom(c *cli.Context) []string {
	if !c.IsSet("devices") {
		return nil
	}
	d := []string{}
	for _, v := range c.StringSlice("devices") {
		if v != "" {
			d = append(d, v)
		}
	}
	return d
}

// userpasswdFrom completes --userpasswd values: USER alone takes its password from the first
// line of in (so it is in no argv, where every host user can read it in /proc); USER:PASSWORD
// is as given. One value may read in.
func userpasswdFrom(vals []string, in io.Reader) ([]string, error) {
	var out []string
	read := false
	for _, v := range vals {
		if strings.Contains(v, ":") {
			out = append(out, v)
			continue
		}
		if read {
			return nil, fmt.Errorf("--userpasswd %s: only one user's password can come from stdin: %w", v, runtime.ErrUserPasswd)
		}
		read = true
		line, err := bufio.NewReader(in).ReadString('\n')
		line = strings.TrimSuffix(line, "\n")
		if (err != nil && err != io.EOF) || line == "" {
			return nil, fmt.Errorf("--userpasswd %s: no password on stdin: %w", v, runtime.ErrUserPasswd)
		}
		out = append(out, v+":"+line)
	}
	return out, nil
}
