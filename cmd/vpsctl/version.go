package main

// #include <stdlib.h>
// #ifdef __GLIBC__
// #include <gnu/libc-version.h>
// static const char *vpsctl_libc(void) { return gnu_get_libc_version(); }
// static int vpsctl_glibc(void) { return 1; }
// #else
// static const char *vpsctl_libc(void) { return ""; }
// static int vpsctl_glibc(void) { return 0; }
// #endif
import "C"

import (
	"fmt"
	"io"
	goruntime "runtime"
	"runtime/debug"
	"strings"

	"github.com/urfave/cli/v2"
)

// version and commit are set at build time (scripts/build.sh: -X main.version=$(git describe),
// -X main.commit=$(git rev-parse HEAD)); a plain `go build` leaves "dev", and the commit then
// comes from Go's own build information when it has one.
var (
	version = "dev"
	commit  = ""
)

// buildInfo is what --version prints after the version: the commit, the Go version, the C
// library vpsctl was linked with (its start-up and its static linking differ, see
// scripts/build.sh) and the platform.
type buildInfo struct {
	Version, Commit, Go, Libc, Platform string
}

func readBuildInfo() buildInfo {
	b := buildInfo{Version: version, Commit: "unknown", Go: goruntime.Version(), Libc: "musl",
		Platform: goruntime.GOOS + "/" + goruntime.GOARCH}
	// musl defines no macro of its own; vpsctl is linked with one of the two.
	if C.vpsctl_glibc() != 0 {
		b.Libc = "glibc " + C.GoString(C.vpsctl_libc())
	}
	if commit != "" {
		b.Commit = commit
	} else if bi, ok := debug.ReadBuildInfo(); ok {
		dirty := false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				b.Commit = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if dirty && b.Commit != "unknown" {
			b.Commit += "-dirty"
		}
	}
	return b
}

func (b buildInfo) String() string {
	return fmt.Sprintf("vpsctl %s\ncommit: %s\ngo: %s\nlibc: %s\nplatform: %s\n", b.Version, b.Commit, b.Go, b.Libc, b.Platform)
}

func printVersion(w io.Writer) { io.WriteString(w, readBuildInfo().String()) }

func init() {
	cli.VersionPrinter = func(c *cli.Context) { printVersion(c.App.Writer) }
	cli.VersionFlag = &cli.BoolFlag{Name: "version", Aliases: []string{"V"}, Usage: "print the version, commit, Go version and C library"}
}

// appVersion is the App's Version: without one, urfave/cli offers no --version.
func appVersion() string { return strings.TrimPrefix(version, "v") }
