// Package metrics writes the state and resource usage of a host's VPSs in the Prometheus text
// exposition format (version 0.0.4), for `vpsctl metrics`: what node_exporter's textfile
// collector reads, and what `promtool check metrics` accepts.
//
// The package formats; it does not measure. The caller (the runtime) reads each VPS's
// cgroup, network and disk counters into a [Sample]; [Write] renders any number of them.
//
// Invariants:
//
//   - Every series carries the labels id and name (name "" when the VPS has none), so a
//     query can use either; a VPS's series are identified by id alone, which never changes.
//   - Each metric family is written once, HELP and TYPE first, all its samples together, as
//     the format requires; families and samples come in a fixed order (samples by ID), so
//     two runs over the same data print the same bytes.
//   - Counters end in _total and are the kernel's cumulative counters, never reset by
//     vpsctl: they restart from zero only when the VPS's cgroup or network namespace is made
//     anew (a boot), which Prometheus's rate() treats as a counter reset.
//   - A limit that is not set is written as +Inf, not left out: "no limit" and "not
//     measured" stay distinguishable, and usage/limit ratios evaluate to 0 instead of
//     vanishing. A usage that was not measured (a stopped VPS, a VPS whose counters could not
//     be read, a disk without quota accounting) is left out.
//   - Label values and help texts are escaped as the format says (\\, \", \n), so no name can
//     break the output.
package metrics

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strconv"
)

// State is a VPS's state as status and list report it.
type State string

// The states; every sample's state is one of them (vpsctl_vps_state has a series for each).
const (
	Running   State = "running"
	Stopped   State = "stopped"
	Suspended State = "suspended"
)

var states = []State{Running, Stopped, Suspended}

// ErrBadSample is a sample that cannot be written: an unknown state or no ID.
var ErrBadSample = errors.New("bad metrics sample")

// Limit is a limit in its unit (bytes, processes); Unlimited when none is set.
type Limit uint64

// Unlimited is no limit: the runtime's beancounters use the same value (math.MaxUint64).
const Unlimited Limit = math.MaxUint64

// Sample is one VPS.
type Sample struct {
	ID    uint32
	Name  string
	State State
	Usage *Usage // nil: not measured (a stopped VPS, or its counters could not be read)
}

// Usage is what a running (or suspended) VPS uses and may use.
type Usage struct {
	CPUSeconds   float64 // CPU time of all its processes since its group was made
	MemoryBytes  uint64  // RAM in use, page cache included (the kernel's memory.current / usage_in_bytes)
	MemoryLimit  Limit
	SwapBytes    uint64
	SwapLimit    Limit
	Processes    uint64 // processes and threads
	ProcessLimit Limit
	OOMKills     uint64            // processes the kernel's OOM killer killed in it
	Failcnt      map[string]uint64 // beancounter failcnt by resource (numproc, physpages, ...)
	Net          *Net              // nil: not measured (no network namespace of its own)
	Disk         *Disk             // nil: not measured (a VPS without --diskspace: its files are on the host's file system)
}

// Net is the traffic of a VPS's interfaces, summed, as seen from inside it (receive = into
// the VPS).
type Net struct {
	RxBytes, TxBytes, RxPackets, TxPackets uint64
}

// Disk is a VPS's private area.
type Disk struct {
	UsedBytes uint64
	Limit     Limit
}

// family is one metric: its name, type, help, and how to write a sample's series of it.
type family struct {
	name, typ, help string
	// write appends the family's series for one sample: lp is the sample's rendered labels
	// without the closing brace ("{id=\"101\",name=\"web\""). A nil u: the sample has no usage.
	write func(b []byte, name string, lp []byte, s *Sample) []byte
}

func usage(f func(b []byte, name string, lp []byte, u *Usage) []byte) func([]byte, string, []byte, *Sample) []byte {
	return func(b []byte, name string, lp []byte, s *Sample) []byte {
		if s.Usage == nil {
			return b
		}
		return f(b, name, lp, s.Usage)
	}
}

func uintU(get func(u *Usage) uint64) func([]byte, string, []byte, *Sample) []byte {
	return usage(func(b []byte, name string, lp []byte, u *Usage) []byte {
		return series(b, name, lp, nil, uintValue(get(u)))
	})
}

func limitU(get func(u *Usage) Limit) func([]byte, string, []byte, *Sample) []byte {
	return usage(func(b []byte, name string, lp []byte, u *Usage) []byte {
		return series(b, name, lp, nil, limitValue(get(u)))
	})
}

func netU(get func(n *Net) uint64) func([]byte, string, []byte, *Sample) []byte {
	return usage(func(b []byte, name string, lp []byte, u *Usage) []byte {
		if u.Net == nil {
			return b
		}
		return series(b, name, lp, nil, uintValue(get(u.Net)))
	})
}

var families = []family{
	{"vpsctl_vps_state", "gauge", "State of the VPS: 1 for its state, 0 for the others.",
		func(b []byte, name string, lp []byte, s *Sample) []byte {
			for _, st := range states {
				v := "0"
				if st == s.State {
					v = "1"
				}
				b = series(b, name, lp, []string{"state", string(st)}, v)
			}
			return b
		}},
	{"vpsctl_vps_cpu_seconds_total", "counter", "CPU time used by the VPS's processes, in seconds.",
		usage(func(b []byte, name string, lp []byte, u *Usage) []byte {
			return series(b, name, lp, nil, strconv.FormatFloat(u.CPUSeconds, 'g', -1, 64))
		})},
	{"vpsctl_vps_memory_usage_bytes", "gauge", "Memory used by the VPS, page cache included.", uintU(func(u *Usage) uint64 { return u.MemoryBytes })},
	{"vpsctl_vps_memory_limit_bytes", "gauge", "Memory limit of the VPS (+Inf: none).", limitU(func(u *Usage) Limit { return u.MemoryLimit })},
	{"vpsctl_vps_swap_usage_bytes", "gauge", "Swap used by the VPS.", uintU(func(u *Usage) uint64 { return u.SwapBytes })},
	{"vpsctl_vps_swap_limit_bytes", "gauge", "Swap limit of the VPS (+Inf: none).", limitU(func(u *Usage) Limit { return u.SwapLimit })},
	{"vpsctl_vps_processes", "gauge", "Processes and threads in the VPS.", uintU(func(u *Usage) uint64 { return u.Processes })},
	{"vpsctl_vps_processes_limit", "gauge", "Limit on processes and threads in the VPS (+Inf: none).", limitU(func(u *Usage) Limit { return u.ProcessLimit })},
	{"vpsctl_vps_oom_kills_total", "counter", "Processes of the VPS killed by the kernel's OOM killer.", uintU(func(u *Usage) uint64 { return u.OOMKills })},
	{"vpsctl_vps_failcnt_total", "counter", "Refusals counted by each beancounter of the VPS (OpenVZ's failcnt).",
		usage(func(b []byte, name string, lp []byte, u *Usage) []byte {
			keys := make([]string, 0, len(u.Failcnt))
			for k := range u.Failcnt {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				b = series(b, name, lp, []string{"resource", k}, uintValue(u.Failcnt[k]))
			}
			return b
		})},
	{"vpsctl_vps_network_receive_bytes_total", "counter", "Bytes received by the VPS's interfaces.", netU(func(n *Net) uint64 { return n.RxBytes })},
	{"vpsctl_vps_network_transmit_bytes_total", "counter", "Bytes sent by the VPS's interfaces.", netU(func(n *Net) uint64 { return n.TxBytes })},
	{"vpsctl_vps_network_receive_packets_total", "counter", "Packets received by the VPS's interfaces.", netU(func(n *Net) uint64 { return n.RxPackets })},
	{"vpsctl_vps_network_transmit_packets_total", "counter", "Packets sent by the VPS's interfaces.", netU(func(n *Net) uint64 { return n.TxPackets })},
	{"vpsctl_vps_disk_usage_bytes", "gauge", "Disk space used by the VPS's private area.",
		usage(func(b []byte, name string, lp []byte, u *Usage) []byte {
			if u.Disk == nil {
				return b
			}
			return series(b, name, lp, nil, uintValue(u.Disk.UsedBytes))
		})},
	{"vpsctl_vps_disk_limit_bytes", "gauge", "Disk space limit of the VPS's private area (+Inf: none).",
		usage(func(b []byte, name string, lp []byte, u *Usage) []byte {
			if u.Disk == nil {
				return b
			}
			return series(b, name, lp, nil, limitValue(u.Disk.Limit))
		})},
}

func uintValue(v uint64) string { return strconv.FormatUint(v, 10) }

func limitValue(l Limit) string {
	if l == Unlimited {
		return "+Inf"
	}
	return strconv.FormatUint(uint64(l), 10)
}

// series appends one line: name{labels,extra} value.
func series(b []byte, name string, lp []byte, extra []string, value string) []byte {
	b = append(b, name...)
	b = append(b, lp...)
	for i := 0; i+1 < len(extra); i += 2 {
		b = append(b, ',')
		b = append(b, extra[i]...)
		b = append(b, '=', '"')
		b = appendEscaped(b, extra[i+1], true)
		b = append(b, '"')
	}
	b = append(b, '}', ' ')
	b = append(b, value...)
	return append(b, '\n')
}

// appendEscaped escapes s for a label value (quote: \", \\, \n) or a help text (\\, \n).
func appendEscaped(b []byte, s string, quote bool) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			b = append(b, '\\', '\\')
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '"' && quote:
			b = append(b, '\\', '"')
		default:
			b = append(b, c)
		}
	}
	return b
}

// Check reports whether s can be written.
func (s *Sample) Check() error {
	if s.ID == 0 {
		return fmt.Errorf("%w: no ID", ErrBadSample)
	}
	if !slices.Contains(states, s.State) {
		return fmt.Errorf("%w: VPS %d: unknown state %q", ErrBadSample, s.ID, s.State)
	}
	return nil
}

// Write renders samples (any order; written by ID) to w. A bad sample fails the whole
// write before anything is written: a scrape must not be half a picture.
func Write(w io.Writer, samples []Sample) error {
	order := make([]int, len(samples))
	for i := range samples {
		if err := samples[i].Check(); err != nil {
			return err
		}
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return samples[order[a]].ID < samples[order[b]].ID })
	// Each sample's label prefix is rendered once and reused by every family.
	labels := make([][]byte, len(samples))
	for i := range samples {
		s := &samples[i]
		lp := make([]byte, 0, 32+len(s.Name))
		lp = append(lp, `{id="`...)
		lp = strconv.AppendUint(lp, uint64(s.ID), 10)
		lp = append(lp, `",name="`...)
		lp = appendEscaped(lp, s.Name, true)
		labels[i] = append(lp, '"')
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	buf := make([]byte, 0, 4<<10)
	for _, f := range families {
		buf = append(buf[:0], "# HELP "...)
		buf = append(buf, f.name...)
		buf = append(buf, ' ')
		buf = appendEscaped(buf, f.help, false)
		buf = append(buf, "\n# TYPE "...)
		buf = append(buf, f.name...)
		buf = append(buf, ' ')
		buf = append(buf, f.typ...)
		buf = append(buf, '\n')
		for _, i := range order {
			buf = f.write(buf, f.name, labels[i], &samples[i])
			if len(buf) > 32<<10 {
				if _, err := bw.Write(buf); err != nil {
					return err
				}
				buf = buf[:0]
			}
		}
		if _, err := bw.Write(buf); err != nil {
			return err
		}
	}
	return bw.Flush()
}
