package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"
	"github.com/vpsctl/vpsctl/eventlog"
)

// audited names the commands that change something: each writes a line to STATE/audit.log
// when it ends (docs/OPERATIONS.md, "Audit"). Subcommands are "template build" and so on.
// exec, enter and console are not here: what is done through them vpsctl cannot see.
var audited = map[string]bool{
	"create": true, "set": true, "start": true, "stop": true, "restart": true, "destroy": true,
	"suspend": true, "resume": true, "checkpoint": true, "restore": true, "run": true,
	"clone": true, "backup": true, "migrate": true, "migrate-receive": true, "migrate-abort": true,
	"import-vz": true, "template build": true, "template import": true, "template remove": true,
	"spare start": true, "spare stop": true, "lxcfs start": true, "lxcfs stop": true,
	"lxcfs refresh": true, "cluster join": true, "cluster stop": true,
}

// commandOf is the name of the command (and subcommand) args run, as audited names them
// (aliases resolved), or "" for none.
func commandOf(app *cli.App, args []string) string {
	i := 1
	for i < len(args) && len(args[i]) > 1 && args[i][0] == '-' && args[i] != "--" {
		if takesValue(app.Flags, args[i]) && !strings.Contains(args[i], "=") {
			i++
		}
		i++
	}
	if i >= len(args) {
		return ""
	}
	cmd := findCommand(app.Commands, args[i])
	if cmd == nil {
		return ""
	}
	if i+1 < len(args) {
		if sub := findCommand(cmd.Subcommands, args[i+1]); sub != nil {
			return cmd.Name + " " + sub.Name
		}
	}
	return cmd.Name
}

// audit appends the audit line of the command args ran, which exits with code, if it is one
// that changes something and its state root exists (a command that could not even find it
// changed nothing there). A line that cannot be written is a warning: the command is done.
func audit(app *cli.App, args []string, code int) {
	if !audited[commandOf(app, args)] {
		return
	}
	if _, err := os.Stat(hostCfg.Root); err != nil {
		return
	}
	l := eventlog.Audit(hostCfg.Root, hostCfg.AuditLogMax, hostCfg.LogKeep)
	if err := l.AppendRecord(eventlog.NewRecord(os.Args, code, os.Getenv)); err != nil {
		fmt.Fprintf(os.Stderr, "vpsctl: warning: audit log: %v\n", err)
	}
}
