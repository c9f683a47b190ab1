package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// TestHelpText: every command and subcommand a user can see answers --help with an example
// (README: every command has --help with examples), and `vpsctl help CMD` shows the same; no
// flag shows two defaults (a zero value beside the one its usage names: DefaultText is for that).
func TestHelpText(t *testing.T) {
	twoDefaults := regexp.MustCompile(`\(default: [^)]*\).*\(default: `)
	help := func(args ...string) string {
		app := newApp()
		var out bytes.Buffer
		app.Writer, app.ErrWriter = &out, &out
		if err := app.Run(append([]string{"vpsctl"}, args...)); err != nil {
			t.Errorf("%v: %v", args, err)
		}
		return out.String()
	}
	var walk func(path []string, cmds []*cli.Command)
	walk = func(path []string, cmds []*cli.Command) {
		for _, c := range cmds {
			if c.Hidden || c.Name == "help" {
				continue
			}
			p := append(append([]string(nil), path...), c.Name)
			if len(c.Subcommands) > 0 {
				walk(p, c.Subcommands)
				continue
			}
			out := help(append(p, "--help")...)
			if !strings.Contains(out, "EXAMPLE") {
				t.Errorf("vpsctl %s --help: no example", strings.Join(p, " "))
			}
			if l := twoDefaults.FindString(out); l != "" {
				t.Errorf("vpsctl %s --help: two defaults: %s", strings.Join(p, " "), l)
			}
		}
	}
	walk(nil, newApp().Commands)
	if out := help("help", "stop"); !strings.Contains(out, "vpsctl stop - ") {
		t.Errorf("vpsctl help stop: %q", out)
	}
}
