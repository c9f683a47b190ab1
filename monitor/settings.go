package monitor

import (
	"fmt"
	"log"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/vpsctl/vpsctl/eventlog"
)

// Settings of the host configuration (package hostconf) a monitor needs. The runtime sets them
// from the configuration it was opened with; a monitor that is a process of its own (a spawned
// one, and every Go monitor the C reaper executes again after its VPS's init has exited) gets
// them in its environment (settingsEnv), so it logs where, and as, the command that started it
// did, whatever has happened to the configuration file since.
var (
	// CheckpointTimeout bounds one CRIU dump (runtime's checkpoint) or restore (the monitor's
	// restore boot).
	CheckpointTimeout = 10 * time.Minute
	// Events is the host's events log (docs/OPERATIONS.md, "Events"); nil: nothing is logged.
	Events *eventlog.Log
)

// Environment variables carrying the settings to a monitor process (see settingsEnv).
const (
	eventsEnv     = "_VPSCTL_EVENTS"     // "MAXSIZE:KEEP" of the state root's events log
	checkpointEnv = "_VPSCTL_CHECKPOINT" // CheckpointTimeout in nanoseconds
)

// settingsEnv is the environment that passes this process's settings on to a monitor process.
func settingsEnv() []string {
	env := []string{checkpointEnv + "=" + strconv.FormatInt(int64(CheckpointTimeout), 10)}
	if Events != nil {
		env = append(env, fmt.Sprintf("%s=%d:%d", eventsEnv, Events.MaxSize, Events.Keep))
	}
	return env
}

// loadSettings is settingsEnv's other end, in a monitor process of state root root. A value it
// cannot read (only vpsctl writes them) is logged and left at its default: a monitor must run
// its VPS whatever its environment says.
func loadSettings(root string) {
	if v := os.Getenv(checkpointEnv); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > 0 {
			CheckpointTimeout = time.Duration(n)
		} else {
			log.Printf("%s=%q: ignored", checkpointEnv, v)
		}
	}
	if v := os.Getenv(eventsEnv); v != "" {
		a, b, _ := strings.Cut(v, ":")
		size, err1 := strconv.ParseInt(a, 10, 64)
		keep, err2 := strconv.Atoi(b)
		if err1 != nil || err2 != nil || size < 0 || keep < 1 {
			log.Printf("%s=%q: ignored, nothing logged", eventsEnv, v)
			return
		}
		Events = eventlog.Events(root, size, keep)
	}
}
