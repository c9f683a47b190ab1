package main

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
	"github.com/vpsctl/vpsctl/runtime"
)

// TestCachedFlagNames: every string flag of every command answers Names() from its cache,
// with the names the library works out (aliases included), and keeps the rest of its
// behaviour (usage, visibility, categories: the help text is the library's).
func TestCachedFlagNames(t *testing.T) {
	app := newApp()
	var walk func(path string, flags []cli.Flag, cmds []*cli.Command)
	n := 0
	walk = func(path string, flags []cli.Flag, cmds []*cli.Command) {
		for _, f := range flags {
			var want []string
			switch f := f.(type) {
			case *cli.StringFlag, *cli.StringSliceFlag:
				t.Errorf("%s: flag %v is not cached", path, f.Names())
				continue
			case *cachedString:
				want = f.StringFlag.Names()
			case *cachedStringSlice:
				want = f.StringSliceFlag.Names()
			default:
				continue
			}
			n++
			if !slices.Equal(f.Names(), want) {
				t.Errorf("%s: cached names %v, want %v", path, f.Names(), want)
			}
			if a, b := f.Names(), f.Names(); len(a) == 0 || &a[0] != &b[0] {
				t.Errorf("%s: flag %v works its names out at each call", path, a)
			}
			if _, ok := f.(cli.DocGenerationFlag); !ok {
				t.Errorf("%s: flag %v lost its usage", path, f.Names())
			}
		}
		for _, c := range cmds {
			walk(path+" "+c.Name, c.Flags, c.Subcommands)
		}
	}
	walk("vpsctl", app.Flags, app.Commands)
	if n < 20 {
		t.Fatalf("only %d string flags found", n)
	}
	// An alias still selects the flag.
	ctx := ""
	app.Commands = []*cli.Command{{Name: "x", Flags: cacheFlagNames([]cli.Flag{&cli.StringFlag{Name: "template", Aliases: []string{"ostemplate"}}}),
		Action: func(c *cli.Context) error { ctx = c.String("template"); return nil }}}
	if err := app.Run([]string{"vpsctl", "x", "--ostemplate", "t1"}); err != nil || ctx != "t1" {
		t.Fatalf("--ostemplate: %q, %v", ctx, err)
	}
}

func TestUserpasswdFrom(t *testing.T) {
	got, err := userpasswdFrom([]string{"alice", "bob:x"}, strings.NewReader("s3cret\nmore\n"))
	if err != nil || len(got) != 2 || got[0] != "alice:s3cret" || got[1] != "bob:x" {
		t.Fatalf("userpasswdFrom = %q, %v", got, err)
	}
	for _, tc := range []struct {
		vals []string
		in   string
	}{{[]string{"alice"}, ""}, {[]string{"alice"}, "\n"}, {[]string{"alice", "bob"}, "a\nb\n"}} {
		if _, err := userpasswdFrom(tc.vals, strings.NewReader(tc.in)); !errors.Is(err, runtime.ErrUserPasswd) {
			t.Errorf("userpasswdFrom(%q, %q) = %v, want ErrUserPasswd", tc.vals, tc.in, err)
		}
	}
}

// TestSecondsFlag: every duration flag takes bare seconds as well as Go's durations, and
// refuses what is neither.
func TestSecondsFlag(t *testing.T) {
	for in, want := range map[string]time.Duration{"10": 10 * time.Second, "0": 0, "1m30s": 90 * time.Second, "250ms": 250 * time.Millisecond} {
		app := newApp()
		var got time.Duration
		stop := findCommand(app.Commands, "stop")
		stop.Action = func(c *cli.Context) error { got = c.Duration("timeout"); return nil }
		if err := app.Run([]string{"vpsctl", "stop", "--timeout", in, "101"}); err != nil || got != want {
			t.Errorf("stop --timeout %s: %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"10x", "-", "1.5"} {
		app := newApp()
		stop := findCommand(app.Commands, "stop")
		stop.Action = func(c *cli.Context) error { return nil }
		if err := app.Run([]string{"vpsctl", "stop", "--timeout", in, "101"}); err == nil {
			t.Errorf("stop --timeout %s: accepted", in)
		}
	}
	var n int
	var walk func(cmds []*cli.Command)
	walk = func(cmds []*cli.Command) {
		for _, c := range cmds {
			for _, f := range c.Flags {
				if _, ok := f.(*cli.DurationFlag); ok {
					t.Errorf("%s: flag %v takes no bare seconds", c.Name, f.Names())
				}
				if _, ok := f.(*secondsFlag); ok {
					n++
				}
			}
			walk(c.Subcommands)
		}
	}
	walk(newApp().Commands)
	if n < 3 {
		t.Errorf("only %d duration flags found", n)
	}
}

// TestComplete: commands, subcommands, flags (the global ones too), flag values, and the
// arguments of each kind of command, VPSs and templates read only when wanted.
func TestComplete(t *testing.T) {
	app := newApp()
	reads := 0
	read := func(root string) stateNames {
		reads++
		if root != "/r" {
			return stateNames{}
		}
		return stateNames{vps: []string{"101", "web"}, templates: []string{"busybox"}}
	}
	for _, tc := range []struct {
		words []string
		want  []string // all of these among the candidates
		not   []string // none of these
	}{
		{[]string{""}, []string{"create", "start", "serve", "import-vz", "completion", "ls"}, []string{"__complete"}},
		{[]string{"template", ""}, []string{"build", "import", "list", "remove"}, []string{"start"}},
		{[]string{"--root", "/r", "start", ""}, []string{"101", "web"}, nil},
		{[]string{"start", "--root=/r", ""}, []string{"101", "web"}, nil},
		{[]string{"--root", "/r", "exec", "101", ""}, nil, []string{"101"}},
		{[]string{"--root", "/r", "list", "101", ""}, []string{"web"}, nil},
		{[]string{"--root", "/r", "create", "102", "--template", ""}, []string{"busybox"}, []string{"101"}},
		{[]string{"--root", "/r", "template", "remove", ""}, []string{"busybox"}, nil},
		{[]string{"template", "build", ""}, []string{"busybox", "debian-12"}, nil},
		{[]string{"list", "--format", ""}, []string{"table", "json"}, nil},
		{[]string{"list", "-"}, []string{"-a", "--all", "-H", "--sort", "--root", "--help"}, nil},
		{[]string{"stop", "--timeout", "10", "-"}, []string{"--kill"}, nil},
		{[]string{"completion", ""}, []string{"bash", "zsh"}, nil},
		{[]string{"pid", ""}, nil, []string{"101"}},
		{[]string{"import-vz", ""}, nil, []string{"101"}},
	} {
		got := complete(app, tc.words, read)
		for _, w := range tc.want {
			if !slices.Contains(got, w) {
				t.Errorf("complete %q: %v lacks %q", tc.words, got, w)
			}
		}
		for _, w := range tc.not {
			if slices.Contains(got, w) {
				t.Errorf("complete %q: %v has %q", tc.words, got, w)
			}
		}
	}
	if reads == 0 {
		t.Fatal("the state root was never read")
	}
	reads = 0
	complete(app, []string{"list", "-"}, read)
	if reads != 0 {
		t.Error("the state root was read to complete a flag")
	}
}
