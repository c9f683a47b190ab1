package main

import (
	"strings"

	"github.com/urfave/cli/v2"
	"github.com/vpsctl/vpsctl/container"
)

// reorderArgs lets flags follow positional arguments (`vpsctl create 101 --template busybox`),
// which Go's flag package, and so urfave/cli v2, does not allow: it stops at the first
// positional. The result is global flags, command path, the command's flags, "--", then the
// positionals. A global flag among the command's (`vpsctl list --root DIR`) joins the global
// ones, unless the command has a flag of that name. For commands that run a command (exec,
// run), everything after the VPS reference belongs to that command and is left alone. A flag
// that takes a value and ends the line is a usage error: the "--" put after the flags would
// otherwise become its value.
func reorderArgs(app *cli.App, args []string) ([]string, error) {
	if len(args) < 2 {
		return args, nil
	}
	globals := []string{args[0]}
	i := 1
	// Global flags.
	for i < len(args) && strings.HasPrefix(args[i], "-") && args[i] != "--" {
		globals = append(globals, args[i])
		if !strings.Contains(args[i], "=") && takesValue(app.Flags, args[i]) && i+1 < len(args) {
			globals = append(globals, args[i+1])
			i++
		}
		i++
	}
	if i >= len(args) {
		return globals, nil
	}
	cmd := findCommand(app.Commands, args[i])
	if cmd == nil {
		return append(globals, args[i:]...), nil
	}
	path := []string{args[i]}
	i++
	for len(cmd.Subcommands) > 0 && i < len(args) {
		sub := findCommand(cmd.Subcommands, args[i])
		if sub == nil {
			break
		}
		cmd = sub
		path = append(path, args[i])
		i++
	}
	if cmd.SkipFlagParsing {
		return append(append(globals, path...), args[i:]...), nil
	}
	cmdArgs := runsCommand[cmd.Name]
	var flags, pos []string
	for ; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		// run's VPS ID is optional, so its command line starts after the first positional
		// that is not an ID: `run 190 --template T -- CMD` keeps --template a flag.
		if cmdArgs && len(pos) >= 1 && !(cmd.Name == "run" && len(pos) == 1 && container.LooksNumeric(pos[0])) {
			pos = append(pos, args[i:]...)
			break
		}
		if strings.HasPrefix(a, "-") && len(a) > 1 {
			to, defs := &flags, cmd.Flags
			if !defines(cmd.Flags, a) && defines(app.Flags, a) {
				to, defs = &globals, app.Flags
			}
			*to = append(*to, a)
			if !strings.Contains(a, "=") && takesValue(defs, a) {
				if i+1 >= len(args) {
					return nil, usageError("%s: flag needs an argument: %s", strings.Join(path, " "), a)
				}
				*to = append(*to, args[i+1])
				i++
			}
			continue
		}
		pos = append(pos, a)
	}
	out := append(globals, path...)
	out = append(out, flags...)
	out = append(out, "--")
	return append(out, pos...), nil
}

// runsCommand names the commands whose arguments after the VPS are a command line.
var runsCommand = map[string]bool{"exec": true, "run": true}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}

// defines reports whether flags has flag arg ("-x", "--name", "--name=value").
func defines(flags []cli.Flag, arg string) bool {
	name, _, _ := strings.Cut(strings.TrimLeft(arg, "-"), "=")
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				return true
			}
		}
	}
	return false
}

// takesValue reports whether flag arg ("-x", "--name") is defined and not boolean.
func takesValue(flags []cli.Flag, arg string) bool {
	name := strings.TrimLeft(arg, "-")
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				_, isBool := f.(*cli.BoolFlag)
				return !isBool
			}
		}
	}
	return false
}

// maxArgs is how many positional arguments a command's ArgsUsage allows: one per word that is
// not a flag or a flag's value ("ID --template NAME": 1), -1 for no bound ("HOSTPID...", or a
// command line after "--").
func maxArgs(usage string) int {
	n := 0
	words := strings.Fields(usage)
	for i := 0; i < len(words); i++ {
		w := words[i]
		switch {
		case w == "--" || strings.Contains(w, "..."):
			return -1
		case w == "|" || w == "[options]":
		case strings.HasPrefix(w, "--"):
			if i+1 < len(words) && words[i+1] != "|" && !strings.HasPrefix(words[i+1], "-") {
				i++ // the flag's value: --template NAME
			}
		default:
			n++
		}
	}
	return n
}

// checkArgCount refuses more positional arguments than command cmd's ArgsUsage allows (exit
// 20): `vpsctl destroy 101 102` must not destroy 101 and say nothing of 102.
func checkArgCount(cmd *cli.Command) cli.BeforeFunc {
	max := maxArgs(cmd.ArgsUsage)
	return func(c *cli.Context) error {
		if max < 0 || c.NArg() <= max {
			return nil
		}
		name := strings.TrimPrefix(c.Command.HelpName, "vpsctl ") // "template list"
		if max == 0 {
			return usageError("%s: takes no arguments, got %q", name, c.Args().First())
		}
		return usageError("%s: unexpected argument %q (usage: vpsctl %s %s)", name, c.Args().Get(max), name, cmd.ArgsUsage)
	}
}
