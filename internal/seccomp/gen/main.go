// Command gen writes the seccomp filter built from seccomp.Table as the C header vpsctl_seccomp.h
// in the working directory (internal/seccomp, under go generate), and also to every path given
// with -copy (for C code elsewhere that
// includes it beside itself: cgo rebuilds a package only when files of its own directory
// change). Run it with `go generate ./internal/seccomp`.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/vpsctl/vpsctl/internal/seccomp"
)

func main() {
	copies := flag.String("copy", "", "comma-separated further paths for the C header")
	flag.Parse()
	if err := run(*copies); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(copies string) error {
	prog, err := seccomp.Build(seccomp.Table)
	if err != nil {
		return err
	}
	h := seccomp.CHeader(seccomp.Table, prog)
	paths := []string{seccomp.HeaderName}
	if copies != "" {
		paths = append(paths, strings.Split(copies, ",")...)
	}
	for _, p := range paths {
		if err := os.WriteFile(p, h, 0o644); err != nil {
			return err
		}
	}
	return nil
}
