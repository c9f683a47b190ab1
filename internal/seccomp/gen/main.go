// Command gen writes the seccomp filter built from seccomp.Table as the C header
// vpsctl_seccomp.h into the directory given with -dir (seccomp.HeaderDir under go generate):
// beside the C code that includes it, because cgo rebuilds a package only when files of its
// own directory change. Run it with `go generate ./internal/seccomp`.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/vpsctl/vpsctl/internal/seccomp"
)

func main() {
	dir := flag.String("dir", ".", "the directory to write the C header into")
	flag.Parse()
	if err := run(*dir); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(dir string) error {
	prog, err := seccomp.Build(seccomp.Table)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, seccomp.HeaderName), seccomp.CHeader(seccomp.Table, prog), 0o644)
}
