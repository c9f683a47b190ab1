package criu

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"time"

	"github.com/vpsctl/vpsctl/internal/timerslack"
)

// DefaultPath is where scripts/install-criu.sh installs CRIU.
const DefaultPath = "/usr/local/lib/vpsctl/criu/criu"

// EnvCRIU names the environment variable that overrides the binary.
const EnvCRIU = "VPSCTL_CRIU"

var (
	// ErrNotFound: no criu binary at $VPSCTL_CRIU, DefaultPath or on PATH.
	ErrNotFound = errors.New("criu not found (run scripts/install-criu.sh)")
	// ErrTooOld: a criu was found, but it is older than MinVersion.
	ErrTooOld = errors.New("criu too old (need >= 4.2; run scripts/install-criu.sh)")
)

// versionTimeout bounds `criu --version`, which does no kernel work.
const versionTimeout = 5 * time.Second

// Find returns the path of a usable criu binary and its version. It tries, in
// order: $VPSCTL_CRIU (if set, it is the only candidate: an explicit choice is
// never silently replaced), DefaultPath, then "criu" on PATH; the first whose
// version is >= MinVersion wins. Errors wrap ErrNotFound, or ErrTooOld (with
// path and version of the newest too-old candidate, which is also returned).
func Find() (path string, v Version, err error) {
	var cands []string
	if p := os.Getenv(EnvCRIU); p != "" {
		cands = []string{p}
	} else {
		cands = []string{DefaultPath}
		if p, err := exec.LookPath("criu"); err == nil && p != DefaultPath {
			cands = append(cands, p)
		}
	}
	var old string
	var oldV Version
	var problems []error
	for _, c := range cands {
		fi, err := os.Stat(c)
		if err != nil {
			problems = append(problems, err)
			continue
		}
		if fi.IsDir() || fi.Mode()&0o111 == 0 {
			problems = append(problems, fmt.Errorf("%s: not an executable file", c))
			continue
		}
		cv, err := binaryVersion(c)
		if err != nil {
			problems = append(problems, err)
			continue
		}
		if cv.Less(MinVersion) {
			if old == "" || oldV.Less(cv) {
				old, oldV = c, cv
			}
			continue
		}
		return c, cv, nil
	}
	if old != "" {
		return old, oldV, fmt.Errorf("%s is version %s: %w", old, oldV, ErrTooOld)
	}
	return "", Version{}, fmt.Errorf("tried %v: %w: %w", cands, ErrNotFound, errors.Join(problems...))
}

// binaryVersion runs `path --version`.
func binaryVersion(path string) (Version, error) {
	ctx, cancel := context.WithTimeout(context.Background(), versionTimeout)
	defer cancel()
	out, err := timerslack.WithHostOutput(exec.CommandContext(ctx, path, "--version").Output)
	if err != nil {
		return Version{}, fmt.Errorf("%s --version: %w", path, err)
	}
	v, err := ParseVersion(string(out))
	if err != nil {
		return Version{}, fmt.Errorf("%s --version: %w", path, err)
	}
	return v, nil
}
