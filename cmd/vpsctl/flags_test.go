package main

import (
	"errors"
	"slices"
	"strings"
	"testing"

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
		if _, err := userpasswdFrom(tc.vals, strings.NewReader(tc.in)); !errors.Is(err, runtime.ErrBadValue) {
			t.Errorf("userpasswdFrom(%q, %q) = %v, want ErrBadValue", tc.vals, tc.in, err)
		}
	}
}
