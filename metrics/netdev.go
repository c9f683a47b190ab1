package metrics

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrBadNetDev is a /proc/net/dev text that cannot be read.
var ErrBadNetDev = errors.New("bad /proc/net/dev")

// ParseNetDev sums the traffic of every interface in the text of /proc/PID/net/dev (the
// network namespace of PID: for a VPS, its init's) but the loopback: what the VPS exchanged
// with the world, receive being into the VPS. The two header lines (no colon) are skipped;
// every other line must be "NAME: 16 counters" (an interface name cannot hold a colon, the
// kernel refuses one). It is pure.
func ParseNetDev(text []byte) (Net, error) {
	var n Net
	for i, line := range strings.Split(string(text), "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok {
			if i < 2 || strings.TrimSpace(line) == "" {
				continue
			}
			return Net{}, fmt.Errorf("line %d %q: no interface name: %w", i+1, line, ErrBadNetDev)
		}
		name = strings.TrimSpace(name)
		f := strings.Fields(rest)
		if name == "" || len(f) < 16 {
			return Net{}, fmt.Errorf("line %d %q: want NAME: and 16 counters: %w", i+1, line, ErrBadNetDev)
		}
		var v [16]uint64
		for j := range v {
			x, err := strconv.ParseUint(f[j], 10, 64)
			if err != nil {
				return Net{}, fmt.Errorf("line %d: counter %d %q: %w", i+1, j+1, f[j], ErrBadNetDev)
			}
			v[j] = x
		}
		if name == "lo" {
			continue
		}
		// Receive: bytes packets errs drop fifo frame compressed multicast; transmit: bytes
		// packets ... The sums wrap like the kernel's own counters would.
		n.RxBytes += v[0]
		n.RxPackets += v[1]
		n.TxBytes += v[8]
		n.TxPackets += v[9]
	}
	return n, nil
}
