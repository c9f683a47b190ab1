// Command vpsctl manages numbered virtual private servers on Linux namespaces and cgroups, the
// way OpenVZ's vzctl did. It is a thin layer over package runtime: it parses, validates, prints,
// and maps errors to exit codes (exitcodes.go); it holds no logic of its own.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
	"github.com/vpsctl/vpsctl/container"
	"github.com/vpsctl/vpsctl/hostconf"
	"github.com/vpsctl/vpsctl/internal/fault"
	"github.com/vpsctl/vpsctl/runtime"
	"github.com/vpsctl/vpsctl/store"
	"github.com/vpsctl/vpsctl/template"
)

func main() {
	fault.Mark("cli-main")
	code := runCLI()
	fault.Mark("cli-done")
	// The caller's wait ends here; this process's own exit goes on without it.
	releaseCaller(code)
	os.Exit(code)
}

// hostCfg is the host configuration (hostconf), read before anything else is done.
var hostCfg *hostconf.Config

// runCLI runs the command line and returns the exit code, its error printed.
func runCLI() int {
	cause := os.Getenv(causeEnv) // start --all's children (fleet.go); nothing else is to see it
	os.Unsetenv(causeEnv)
	cfg, err := hostconf.LoadDefault(getenv)
	if err != nil {
		// A broken configuration does nothing at all: every default may be wrong.
		fmt.Fprintln(os.Stderr, "vpsctl: "+err.Error())
		return exitCode(err)
	}
	hostCfg = cfg
	if cause != "" {
		startCause = cause
	}
	app := newApp()
	args, err := reorderArgs(app, os.Args)
	if err == nil {
		err = app.Run(args)
	}
	code := errorCode(err)
	if cause == "" {
		audit(app, args, code) // start --all's own line stands for its children's
	}
	if err == nil {
		// A start that booted its VPS in this process stays as its monitor from here on.
		runtime.BecomeMonitor(0)
	}
	return code
}

// errorCode prints err, if any, and returns the exit code it means.
func errorCode(err error) int {
	if err == nil {
		return exitOK
	}
	var ex cli.ExitCoder
	if errors.As(err, &ex) {
		if msg := err.Error(); msg != "" {
			fmt.Fprintln(os.Stderr, "vpsctl: "+msg)
		}
		return ex.ExitCode()
	}
	fmt.Fprintln(os.Stderr, "vpsctl: "+err.Error())
	return exitCode(err)
}

// getenv is the environment as the host configuration reads it: a relative VPSCTL_ROOT (which
// vpsctl always took) is made absolute, as the configuration wants its paths.
func getenv(key string) string {
	v := os.Getenv(key)
	if key == hostconf.RootEnv && v != "" {
		if abs, err := filepath.Abs(v); err == nil {
			return abs
		}
	}
	return v
}

// startOptions has a start's VPS monitored by this process if the front door forked it for that.
func startOptions() runtime.StartOptions {
	if fd := startFD(); fd >= 0 {
		o := runtime.StartOptions{Caller: os.NewFile(uintptr(fd), "caller")}
		if ns := hostMountNS(); ns >= 0 {
			o.CallerMountNS = os.NewFile(uintptr(ns), "host-mntns")
		}
		return o
	}
	return runtime.StartOptions{}
}

// usageError is a bad command line (exit 20).
func usageError(format string, a ...any) error {
	return cli.Exit(fmt.Sprintf(format, a...), exitUsage)
}

// openRuntime opens the state root the host configuration names (--root included), and runs
// it as the configuration says.
func openRuntime(*cli.Context) (*runtime.Runtime, error) {
	rt, err := runtime.OpenConfig(hostCfg)
	if err != nil {
		return nil, err
	}
	rt.Warn = os.Stderr
	return rt, nil
}

// applyRoot makes --root, when given, the configuration's ROOT (precedence: the command line
// over the environment over the file).
func applyRoot(c *cli.Context) error {
	if !c.IsSet("root") {
		return nil
	}
	if c.String("root") == "" {
		return usageError("--root: an empty directory name") // not the current directory
	}
	dir, err := filepath.Abs(c.String("root"))
	if err != nil {
		return err
	}
	if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
		return fmt.Errorf("--root %s: not a directory: %w", dir, runtime.ErrBadValue)
	}
	return hostCfg.Override("ROOT", dir, hostconf.Source{Kind: hostconf.FromFlag, Name: "root"})
}

// withVPS runs f with the runtime and the VPS named by the first argument.
func withVPS(c *cli.Context, f func(rt *runtime.Runtime, id container.ID) error) error {
	if c.NArg() < 1 {
		return usageError("%s: missing VPS ID or name", c.Command.Name)
	}
	rt, err := openRuntime(c)
	if err != nil {
		return err
	}
	id, err := rt.Resolve(c.Args().First())
	if err != nil {
		return err
	}
	return f(rt, id)
}

func formatFlag() cli.Flag {
	return &cli.StringFlag{Name: "format", Value: "table", Usage: "output format: table or json"}
}

func checkFormat(c *cli.Context) (bool, error) {
	switch c.String("format") {
	case "table", "":
		return false, nil
	case "json":
		return true, nil
	}
	return false, usageError("--format %q: want table or json", c.String("format"))
}

// output is where a command prints. With --format json its result goes to stdout as JSON,
// alone, and its progress lines to stderr; else both are for people, on stdout.
type output struct{ json bool }

// outputOf reads --format (usageError if it is neither table nor json).
func outputOf(c *cli.Context) (output, error) {
	asJSON, err := checkFormat(c)
	return output{json: asJSON}, err
}

// progress is where the command's progress lines go.
func (o output) progress() *os.File {
	if o.json {
		return os.Stderr
	}
	return os.Stdout
}

// result prints the command's result: v as JSON, or what human prints.
func (o output) result(v any, human func()) error {
	if o.json {
		return printJSON(os.Stdout, v)
	}
	human()
	return nil
}

// newTable is the writer of every table vpsctl prints: columns aligned with two spaces.
func newTable() *tabwriter.Writer { return tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0) }

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newApp() *cli.App {
	app := &cli.App{
		Name:    "vpsctl",
		Version: appVersion(),
		Usage:   "numbered virtual private servers on Linux namespaces and cgroups (OpenVZ's vzctl, reborn)",
		Description: `A VPS is a whole Linux system: its own init as PID 1, hostname, users mapped to a
private range of host UIDs, process table, network addresses, resource limits and
cgroup. It keeps running after vpsctl exits and reboots when its init asks.

EXAMPLES:
   vpsctl template build busybox
   vpsctl create 101 --template busybox --hostname alpha --name web
   vpsctl start 101
   vpsctl exec web -- ps
   vpsctl enter 101
   vpsctl status 101
   vpsctl list -a --format json
   vpsctl stop 101 && vpsctl destroy 101

` + exitHelp,
		// --netif-add takes "eth0,bridge=br0,...": commas are not list separators.
		DisableSliceFlagSeparator: true,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "root", Usage: "state root `DIR` (default: $VPSCTL_ROOT, else ROOT of " + hostconf.DefaultPath + ", else " + store.DefaultRoot + ")"},
		},
		Before:         applyRoot,
		ExitErrHandler: func(*cli.Context, error) {}, // main prints and exits, with our codes
		OnUsageError: func(c *cli.Context, err error, _ bool) error {
			return cli.Exit(err.Error(), exitUsage)
		},
		CommandNotFound: func(c *cli.Context, name string) {
			fmt.Fprintf(os.Stderr, "vpsctl: unknown command %q (see vpsctl --help)\n", name)
			os.Exit(exitUsage)
		},
		Commands: commands(),
	}
	setUsageErrors(app.Commands)
	app.Flags = cacheFlagNames(app.Flags)
	for _, c := range app.Commands {
		cacheCommandFlagNames(c)
	}
	return app
}

// urfave/cli v2 works out a flag's names anew, with a regular expression, at every Names()
// call, and looks flags up by name by asking every flag of the command for its names; each
// run asks for every flag whether it is set. A command with F flags so ran F² regular
// expressions before its action: half of `vpsctl create`'s time in its own code (perf). The
// string flags, most of them, answer from a list made at their first Names() (the flags of
// the commands not run are never asked); what else the library asks of a flag goes to the
// flag itself. The CLI parses on one goroutine.
type cachedString struct {
	*cli.StringFlag
	names nameCache
}

func (f *cachedString) Names() []string { return f.names.get(f.StringFlag.Names) }

type cachedStringSlice struct {
	*cli.StringSliceFlag
	names nameCache
}

func (f *cachedStringSlice) Names() []string { return f.names.get(f.StringSliceFlag.Names) }

// nameCache holds a flag's names once worked out.
type nameCache []string

func (c *nameCache) get(names func() []string) []string {
	if *c == nil {
		*c = names()
	}
	return *c
}

func cacheFlagNames(flags []cli.Flag) []cli.Flag {
	for i, f := range flags {
		switch f := f.(type) {
		case *cli.StringFlag:
			flags[i] = &cachedString{StringFlag: f}
		case *cli.StringSliceFlag:
			flags[i] = &cachedStringSlice{StringSliceFlag: f}
		case *cli.DurationFlag:
			flags[i] = &secondsFlag{DurationFlag: f}
		}
	}
	return flags
}

func cacheCommandFlagNames(c *cli.Command) {
	c.Flags = cacheFlagNames(c.Flags)
	for _, sub := range c.Subcommands {
		cacheCommandFlagNames(sub)
	}
}

// setUsageErrors makes a bad flag of any command exit 20 (urfave/cli only applies the App's
// OnUsageError to the App's own flags).
func setUsageErrors(cmds []*cli.Command) {
	for _, c := range cmds {
		c.OnUsageError = func(_ *cli.Context, err error, _ bool) error {
			return cli.Exit(err.Error(), exitUsage)
		}
		if len(c.Subcommands) == 0 && !c.SkipFlagParsing && c.Before == nil {
			c.Before = checkArgCount(c)
		}
		setUsageErrors(c.Subcommands)
	}
}

func commands() []*cli.Command {
	cmds := []*cli.Command{
		templateCommand(),
		createCommand(),
		{
			Name: "start", Usage: "boot a VPS, or (--all) every VPS marked to start with the host", ArgsUsage: "ID|NAME | --all",
			Description: `Boots the VPS's own init in new namespaces. The VPS keeps running after vpsctl exits.
With --wait, returns once the guest has finished booting: systemd running or degraded,
sysvinit in its runlevel, busybox init past its sysinit actions (exit 133 after --timeout).
--all starts every VPS created or set with --onboot yes that is not running, highest
--bootorder first: one boot order's VPSs have all started (or failed) before the next lower
one's begin; STARTALL_PARALLEL at once within one, at most STARTALL_TIMEOUT in all (see
vpsctl config show). Each is reported as it finishes.

EXAMPLES:
   vpsctl start 101
   vpsctl start --wait --timeout 60s 101 && vpsctl exec 101 -- systemctl status
   vpsctl start --all`,
			Flags: []cli.Flag{
				&cli.BoolFlag{Name: "wait", Usage: "return once the guest has finished booting"},
				&cli.DurationFlag{Name: "timeout", Value: 120 * time.Second, Usage: "with --wait: how long to wait"},
				&cli.BoolFlag{Name: "all", Usage: "every onboot VPS, in boot order"},
			},
			Action: func(c *cli.Context) error {
				if c.Bool("all") {
					if c.NArg() > 0 || c.Bool("wait") {
						return usageError("start: --all takes neither a VPS nor --wait")
					}
					return startAll(c)
				}
				return withVPS(c, func(rt *runtime.Runtime, id container.ID) error {
					o := startOptions()
					o.Cause = startCause
					pid, err := rt.Start(c.Context, id, o)
					if err != nil {
						return err
					}
					fmt.Printf("VPS %d started (init PID %d)\n", id, pid)
					if !c.Bool("wait") {
						return nil
					}
					t0 := time.Now()
					b, err := rt.WaitBooted(c.Context, id, c.Duration("timeout"))
					if err != nil {
						return err
					}
					fmt.Printf("VPS %d booted (%s: %s, %.1f s)\n", id, b.Init, b.State, time.Since(t0).Seconds())
					return nil
				})
			},
		},
		{
			Name: "stop", Usage: "power a VPS off, or (--all) every running VPS", ArgsUsage: "ID|NAME | --all",
			Description: `Asks the guest's init to power off, then after --timeout (default STOP_TIMEOUT) kills
every process of the VPS. --all asks every running VPS at once (STOPALL_PARALLEL at a time),
all sharing one grace period (--timeout, default STOPALL_TIMEOUT), then kills what is left.

EXAMPLES:
   vpsctl stop 101 --timeout 10
   vpsctl stop --all`,
			Flags: []cli.Flag{
				&cli.DurationFlag{Name: "timeout", Usage: "grace period before killing", DefaultText: "STOP_TIMEOUT, with --all STOPALL_TIMEOUT"},
				&cli.BoolFlag{Name: "kill", Usage: "kill at once, no grace period"},
				&cli.BoolFlag{Name: "all", Usage: "every running VPS"},
			},
			Action: func(c *cli.Context) error {
				if c.Bool("all") {
					if c.NArg() > 0 || c.Bool("kill") {
						return usageError("stop: --all takes neither a VPS nor --kill")
					}
					return stopAll(c)
				}
				return withVPS(c, func(rt *runtime.Runtime, id container.ID) error {
					o := runtime.StopOptions{Timeout: stopTimeout(c), Kill: c.Bool("kill"), Cause: "vpsctl stop"}
					if err := rt.Stop(c.Context, id, o); err != nil {
						return err
					}
					fmt.Printf("VPS %d stopped\n", id)
					return nil
				})
			},
		},
		{
			Name: "restart", Usage: "stop and start a VPS", ArgsUsage: "ID|NAME",
			Description: `Stops the VPS as stop does (the guest powers off, killed after --timeout), then starts it.
A stopped VPS is just started.

EXAMPLES:
   vpsctl restart 101
   vpsctl restart web --timeout 10s`,
			Flags: []cli.Flag{&cli.DurationFlag{Name: "timeout", Usage: "grace period before killing", DefaultText: "STOP_TIMEOUT"}},
			Action: func(c *cli.Context) error {
				return withVPS(c, func(rt *runtime.Runtime, id container.ID) error {
					o := runtime.StopOptions{Timeout: stopTimeout(c), Cause: "vpsctl restart"}
					if err := rt.Stop(c.Context, id, o); err != nil && !errors.Is(err, runtime.ErrNotRunning) {
						return err
					}
					so := startOptions()
					so.Cause = "vpsctl restart"
					pid, err := rt.Start(c.Context, id, so)
					if err != nil {
						return err
					}
					fmt.Printf("VPS %d restarted (init PID %d)\n", id, pid)
					return nil
				})
			},
		},
		{
			Name: "exec", Usage: "run a command inside a VPS", ArgsUsage: "ID|NAME -- COMMAND [ARG...]",
			Description: "Runs COMMAND as the VPS's root in all its namespaces and its cgroup, and exits with COMMAND's status.\n\nEXAMPLES:\n   vpsctl exec 101 -- ps\n   vpsctl exec web -- sh -c 'exit 7'; echo $?   # 7",
			Flags: []cli.Flag{
				&cli.BoolFlag{Name: "tty", Aliases: []string{"t"}, Usage: "allocate a pty inside the VPS"},
				&cli.StringSliceFlag{Name: "env", Aliases: []string{"e"}, Usage: "set `VAR=value` (repeatable)"},
				&cli.StringFlag{Name: "workdir", Aliases: []string{"w"}, Value: "/", Usage: "working directory inside the VPS"},
			},
			Action: func(c *cli.Context) error {
				if c.NArg() < 2 {
					return usageError("exec: usage: vpsctl exec ID -- COMMAND [ARG...]")
				}
				return withVPS(c, func(rt *runtime.Runtime, id container.ID) error {
					code, err := rt.Exec(c.Context, id, runtime.ExecOptions{Args: c.Args().Slice()[1:], TTY: c.Bool("tty"),
						Env: c.StringSlice("env"), Dir: c.String("workdir"), Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr})
					if err != nil {
						return err
					}
					return cli.Exit("", code)
				})
			},
		},
		{
			Name: "enter", Usage: "open an interactive login shell inside a VPS", ArgsUsage: "ID|NAME",
			Description: "Opens root's login shell on a new pty of the VPS (works under tmux and screen). Leave with exit.\n\nEXAMPLE:\n   vpsctl enter 101",
			Action: func(c *cli.Context) error {
				return withVPS(c, func(rt *runtime.Runtime, id container.ID) error {
					code, err := rt.Enter(c.Context, id, os.Stdin, os.Stdout, os.Stderr)
					if err != nil {
						return err
					}
					return cli.Exit("", code)
				})
			},
		},
		{
			Name: "status", Usage: "one line for scripts: VPS ID exist running|stopped, or deleted", ArgsUsage: "ID|NAME",
			Description: `One line, as vzctl status prints it: "VPS 101 exist running" or "VPS 101 exist stopped",
followed by "suspended", "incomplete" (a clone, restore or migration that did not finish:
destroy it) or "backoff" (a reboot loop held back) where they apply; "VPS 101 deleted" for
no such VPS (exit 0). In a cluster, a VPS of another host is "VPS 101 exist on host NAME".

EXAMPLES:
   vpsctl status 101
   vpsctl status web --format json`,
			Flags: []cli.Flag{formatFlag()},
			Action: func(c *cli.Context) error {
				asJSON, err := checkFormat(c)
				if err != nil {
					return err
				}
				if c.NArg() < 1 {
					return usageError("status: missing VPS ID or name")
				}
				rt, err := openRuntime(c)
				if err != nil {
					return err
				}
				// A numeric ID that does not exist is "deleted", not an error: scripts poll it.
				ref := c.Args().First()
				var id container.ID
				if container.LooksNumeric(ref) {
					id, err = container.ParseID(ref)
				} else {
					id, err = rt.Resolve(ref)
					if errors.Is(err, store.ErrNotExist) {
						if ok, err := statusElsewhere(c, rt, ref, asJSON); ok || err != nil {
							return err
						}
					}
				}
				if err != nil {
					return err
				}
				s, err := rt.Status(id)
				if err != nil {
					return err
				}
				if s.State == "deleted" {
					// Not here: in a cluster, perhaps on another host.
					if ok, err := statusElsewhere(c, rt, ref, asJSON); ok || err != nil {
						return err
					}
				}
				if asJSON {
					s.CheckViews()
					return printJSON(os.Stdout, s)
				}
				fmt.Println(s.Line())
				return nil
			},
		},
		listCommand(),
		{
			Name: "destroy", Aliases: []string{"delete"}, Usage: "remove a VPS and its private files", ArgsUsage: "ID|NAME",
			Description: "Removes the VPS's private area, config and state; the ID becomes free. Refused while running unless --force.\n\nEXAMPLE:\n   vpsctl destroy 101",
			Flags:       []cli.Flag{&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "stop the VPS first if it runs"}},
			Action: func(c *cli.Context) error {
				return withVPS(c, func(rt *runtime.Runtime, id container.ID) error {
					if err := rt.Destroy(c.Context, id, c.Bool("force")); err != nil {
						return err
					}
					fmt.Printf("VPS %d destroyed\n", id)
					return nil
				})
			},
		},
		setCommand(),
	}
	return append(cmds, extraCommands()...)
}

// extraCommands are registered by the other files of this package (identity, cgroups, ...).
var extraCommandList []func() *cli.Command

func extraCommands() []*cli.Command {
	var out []*cli.Command
	for _, f := range extraCommandList {
		out = append(out, f())
	}
	return out
}

func templateCommand() *cli.Command {
	return &cli.Command{
		Name: "template", Usage: "manage OS templates",
		Subcommands: []*cli.Command{
			{
				Name: "build", Usage: "build a template", ArgsUsage: "busybox|debian-12 [NAME]",
				Description: "busybox: from the host's static busybox (package busybox-static), with busybox init.\ndebian-12: Debian bookworm with debootstrap (installed if missing), systemd or sysvinit,\nopenssh-server, iproute2; each VPS makes its own SSH host keys at first boot. The sysvinit\nvariant is named debian-12-sysvinit unless NAME is given.\n\nEXAMPLES:\n   vpsctl template build busybox\n   vpsctl template build debian-12\n   vpsctl template build debian-12 --variant sysvinit --include vim,curl",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "variant", Value: "systemd", Usage: "debian: systemd or sysvinit"},
					&cli.StringSliceFlag{Name: "include", Usage: "debian: extra packages (comma-separated or repeated)"},
					&cli.StringFlag{Name: "mirror", Usage: "debian: mirror URL (default: the host's apt mirror)"},
					&cli.StringFlag{Name: "busybox", Value: template.DefaultBusybox, Usage: "static busybox binary to use"},
					&cli.BoolFlag{Name: "force", Usage: "rebuild an existing template"},
				},
				Action: func(c *cli.Context) error {
					if c.NArg() < 1 {
						return usageError("template build: which template? (busybox)")
					}
					kind := c.Args().First()
					name := kind
					if c.NArg() > 1 {
						name = c.Args().Get(1)
					}
					if (kind == "debian-12" || kind == "debian") && c.NArg() == 1 && c.String("variant") == "sysvinit" {
						name = kind + "-sysvinit"
					}
					rt, err := openRuntime(c)
					if err != nil {
						return err
					}
					if c.Bool("force") {
						if err := rt.CheckTemplateReplace(name); err != nil {
							return err
						}
					}
					switch {
					case kind == "busybox":
						if err := template.BuildBusybox(rt.St, name, c.String("busybox"), c.Bool("force"), os.Stdout); err != nil {
							return err
						}
					case kind == "debian-12" || kind == "debian":
						o := template.DebianOptions{Variant: c.String("variant"), Include: c.StringSlice("include"), Mirror: c.String("mirror"), Replace: c.Bool("force")}
						progress, done := progressOut()
						err := template.BuildDebian(rt.St, name, o, progress)
						done()
						if err != nil {
							return err
						}
					default:
						return usageError("template build: unknown kind %q (want busybox or debian-12)", kind)
					}
					fmt.Printf("template %q ready\n", name)
					return nil
				},
			},
			{
				Name: "import", Usage: "import a root filesystem (directory, .tar, .tar.gz, .tar.xz)", ArgsUsage: "NAME PATH",
				Description: `Copies a root file system into template NAME; device nodes in it are dropped, and said.

EXAMPLES:
   vpsctl template import alpine ./alpine-minirootfs.tar.gz
   vpsctl template import mydeb /srv/rootfs/debian`,
				Action: func(c *cli.Context) error {
					if c.NArg() != 2 {
						return usageError("template import: usage: vpsctl template import NAME PATH")
					}
					rt, err := openRuntime(c)
					if err != nil {
						return err
					}
					if err := template.Import(rt.St, c.Args().Get(0), c.Args().Get(1), os.Stdout); err != nil {
						return err
					}
					fmt.Printf("template %q ready\n", c.Args().Get(0))
					return nil
				},
			},
			{
				Name: "list", Usage: "list templates", Flags: []cli.Flag{formatFlag()},
				Description: `EXAMPLES:
   vpsctl template list
   vpsctl template list --format json`,
				Action: func(c *cli.Context) error {
					asJSON, err := checkFormat(c)
					if err != nil {
						return err
					}
					rt, err := openRuntime(c)
					if err != nil {
						return err
					}
					ts, err := template.List(rt.St)
					if err != nil {
						return err
					}
					if asJSON {
						if ts == nil {
							ts = []template.Info{}
						}
						return printJSON(os.Stdout, ts)
					}
					w := newTable()
					fmt.Fprintln(w, "NAME\tSOURCE")
					for _, t := range ts {
						fmt.Fprintf(w, "%s\t%s\n", t.Name, t.Source)
					}
					return w.Flush()
				},
			},
			{
				Name: "remove", Aliases: []string{"rm"}, Usage: "remove a template no VPS uses", ArgsUsage: "NAME",
				Description: `A template a VPS was created from is refused (exit 210): destroy its VPSs first.

EXAMPLE:
   vpsctl template remove alpine`,
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return usageError("template remove: usage: vpsctl template remove NAME")
					}
					rt, err := openRuntime(c)
					if err != nil {
						return err
					}
					if err := rt.RemoveTemplate(c.Context, c.Args().First()); err != nil {
						return err
					}
					fmt.Printf("template %q removed\n", c.Args().First())
					return nil
				},
			},
		},
	}
}
