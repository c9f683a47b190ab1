package runtime

import (
	"bytes"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// procStart returns the start time of pid in clock ticks since boot (/proc/PID/stat field 22),
// or 0 if pid does not exist. A recorded (pid, start) pair identifies one process for good:
// a recycled PID has another start time.
func procStart(pid int) uint64 {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	return parseStatStart(b)
}

// parseStatStart extracts field 22 of /proc/PID/stat. The command name (field 2) may contain
// spaces and parentheses, so fields are counted after the last ')'.
func parseStatStart(b []byte) uint64 {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := bytes.Fields(b[i+1:])
	// After ')': field 3 (state) is f[0], so field 22 is f[19].
	if len(f) < 20 {
		return 0
	}
	v, err := strconv.ParseUint(string(f[19]), 10, 64)
	if err != nil {
		return 0
	}
	return v
}

// alive reports whether the process recorded as (pid, start) still runs (zombies count as dead).
func alive(pid int, start uint64) bool {
	if pid <= 0 || start == 0 {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	if parseStatStart(b) != start {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	if i+2 < len(b) && (b[i+2] == 'Z' || b[i+2] == 'X') {
		return false
	}
	return true
}

// waitPidfd waits up to timeout for the process behind pidfd to exit.
func waitPidfd(pidfd int, timeoutMs int) bool {
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, timeoutMs)
		if err == unix.EINTR {
			continue
		}
		return err == nil && n > 0
	}
}
