//go:build noapi

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/urfave/cli/v2"
)

// apiProgram is the program `vpsctl serve` becomes: vpsctl built without the noapi tag.
const apiProgram = "vpsctl-api"

// serveAction executes vpsctl-api from beside this executable with this command's arguments.
// Only from beside it (never from PATH): the API must be the same build as the CLI whose
// library, locks and state format it shares.
func serveAction(*cli.Context) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("serve: find vpsctl's own executable: %w", err)
	}
	prog := filepath.Join(filepath.Dir(exe), apiProgram)
	argv := append([]string{prog}, os.Args[1:]...)
	err = syscall.Exec(prog, argv, os.Environ())
	return fmt.Errorf("serve: execute %s (built beside vpsctl by scripts/build.sh): %w", prog, err)
}
