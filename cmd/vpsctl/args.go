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
// run), everything after the VPS reference belongs to that command and is left alone.
func reorderArgs(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
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
		return globals
	}
	cmd := findCommand(app.Commands, args[i])
	if cmd == nil {
		return append(globals, args[i:]...)
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
		return append(append(globals, path...), args[i:]...)
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
			if !strings.Contains(a, "=") && takesValue(defs, a) && i+1 < len(args) {
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
	return append(out, pos...)
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
