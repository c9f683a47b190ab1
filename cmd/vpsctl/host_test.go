package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/vpsctl/vpsctl/eventlog"
	"github.com/vpsctl/vpsctl/fleet"
	"github.com/vpsctl/vpsctl/hostconf"
)

func TestReorderGlobalFlagsAfterCommand(t *testing.T) {
	app := newApp()
	for _, tc := range []struct{ in, want []string }{
		{[]string{"vpsctl", "list", "--root", "/x", "-a"}, []string{"vpsctl", "--root", "/x", "list", "-a", "--"}},
		{[]string{"vpsctl", "create", "101", "--root=/x", "--template", "t"}, []string{"vpsctl", "--root=/x", "create", "--template", "t", "--", "101"}},
		{[]string{"vpsctl", "--root", "/y", "template", "build", "busybox", "--root", "/x"},
			[]string{"vpsctl", "--root", "/y", "--root", "/x", "template", "build", "--", "busybox"}},
		// After the VPS, exec's words are its command's, --root included.
		{[]string{"vpsctl", "exec", "101", "--root", "/x", "--", "ps"}, []string{"vpsctl", "exec", "--", "101", "--root", "/x", "--", "ps"}},
	} {
		if got, err := reorderArgs(app, tc.in); err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%q: got %q, %v, want %q", tc.in, got, err, tc.want)
		}
	}
	// A value flag that ends the line has no value: the "--" after the flags must not become it.
	for _, in := range [][]string{{"vpsctl", "migrate", "101", "local", "--dest-root"}, {"vpsctl", "list", "--root"},
		{"vpsctl", "checkpoint", "101", "--dir"}} {
		if got, err := reorderArgs(app, in); err == nil || !strings.Contains(err.Error(), "flag needs an argument: "+in[len(in)-1]) {
			t.Errorf("%q: got %q, %v, want a usage error", in, got, err)
		}
	}
}

func TestAuditedCommands(t *testing.T) {
	app := newApp()
	for _, tc := range []struct {
		args []string
		cmd  string
		want bool
	}{
		{[]string{"vpsctl", "--root", "/x", "create", "--template", "t", "--", "101"}, "create", true},
		{[]string{"vpsctl", "delete", "--", "101"}, "destroy", true},
		{[]string{"vpsctl", "chkpnt", "--", "101"}, "checkpoint", true},
		{[]string{"vpsctl", "template", "rm", "--", "t"}, "template remove", true},
		{[]string{"vpsctl", "spare", "start", "--", "t"}, "spare start", true},
		{[]string{"vpsctl", "lxcfs", "stop", "--"}, "lxcfs stop", true},
		{[]string{"vpsctl", "lxcfs", "status", "--"}, "lxcfs status", false},
		{[]string{"vpsctl", "lxcfs", "refresh", "--"}, "lxcfs refresh", true},
		{[]string{"vpsctl", "clone", "--", "101", "102"}, "clone", true},
		{[]string{"vpsctl", "backup", "--", "101", "f"}, "backup", true},
		{[]string{"vpsctl", "migrate", "--", "101", "local"}, "migrate", true},
		{[]string{"vpsctl", "migrate-receive", "--"}, "migrate-receive", true},
		{[]string{"vpsctl", "migrate-abort", "--", "101"}, "migrate-abort", true},
		{[]string{"vpsctl", "import-vz", "--", "101.conf", "p"}, "import-vz", true},
		{[]string{"vpsctl", "start", "--all", "--"}, "start", true},
		{[]string{"vpsctl", "exec", "--", "101", "ps"}, "exec", false},
		{[]string{"vpsctl", "list", "-a", "--"}, "list", false},
		{[]string{"vpsctl", "template", "list", "--"}, "template list", false},
		{[]string{"vpsctl", "config", "show", "--"}, "config show", false},
		{[]string{"vpsctl", "events", "--"}, "events", false},
		{[]string{"vpsctl", "--root", "/x"}, "", false},
		{[]string{"vpsctl", "nosuch"}, "", false},
	} {
		got := commandOf(app, tc.args)
		if got != tc.cmd || audited[got] != tc.want {
			t.Errorf("%q: command %q (audited %v), want %q (%v)", tc.args, got, audited[got], tc.cmd, tc.want)
		}
	}
}

// The host's own errors are bad values (exit 21), whichever package reports them.
func TestHostErrorsExitCodes(t *testing.T) {
	_, planErr := hostconf.LoadPlan(t.TempDir(), "nosuch")
	for _, err := range []error{
		&hostconf.LineError{File: "/etc/vpsctl/vpsctl.conf", Line: 3, Msg: "unknown key MEMROY"},
		planErr,
		fmt.Errorf("VPS 1: %w", fleet.ErrBadValue),
		fmt.Errorf("--since x: %w", eventlog.ErrBadSince),
	} {
		if got := exitCode(err); got != exitBadValue {
			t.Errorf("%v: exit %d, want %d", err, got, exitBadValue)
		}
	}
}

// TestMaxArgs: what each form of ArgsUsage allows; every command's is checked at its start.
func TestMaxArgs(t *testing.T) {
	for usage, want := range map[string]int{"": 0, "ID|NAME": 1, "ID|NAME | --all": 1, "ID|NAME [options]": 1,
		"[ID|NAME]": 1, "ID --template NAME": 1, "busybox|debian-12 [NAME]": 2, "ID|NAME FILE": 2,
		"HOSTPID...": -1, "[ID|PATTERN...]": -1, "ID|NAME -- COMMAND [ARG...]": -1, "[ID] --template T -- COMMAND [ARG...]": -1} {
		if got := maxArgs(usage); got != want {
			t.Errorf("maxArgs(%q) = %d, want %d", usage, got, want)
		}
	}
}
