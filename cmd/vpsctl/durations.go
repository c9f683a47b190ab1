package main

import (
	"flag"

	"github.com/urfave/cli/v2"
)

// secondsFlag is a duration flag that also takes bare seconds, as vzctl's --timeout and every
// shell script's sleep do: `stop --timeout 10` is ten seconds, `--timeout 1m30s` still works.
// Go's flag package alone refuses a number without a unit.
type secondsFlag struct {
	*cli.DurationFlag
}

func (f *secondsFlag) Apply(set *flag.FlagSet) error {
	if err := f.DurationFlag.Apply(set); err != nil {
		return err
	}
	for _, name := range f.Names() {
		if fl := set.Lookup(name); fl != nil {
			fl.Value = secondsValue{fl.Value}
		}
	}
	return nil
}

// secondsValue is a flag's duration value that reads a bare number as seconds.
type secondsValue struct{ flag.Value }

func (v secondsValue) Set(s string) error {
	if isDigits(s) {
		s += "s"
	}
	return v.Value.Set(s)
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
