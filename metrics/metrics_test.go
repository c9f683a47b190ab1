package metrics

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

func testSamples() []Sample {
	return []Sample{
		{ID: 502, Name: "db", State: Running, Usage: &Usage{CPUSeconds: 12.5, MemoryBytes: 1 << 20, MemoryLimit: 512 << 20,
			SwapBytes: 0, SwapLimit: Unlimited, Processes: 7, ProcessLimit: 512, OOMKills: 1,
			Failcnt: map[string]uint64{"physpages": 3, "numproc": 0},
			Net:     &Net{RxBytes: 100, TxBytes: 200, RxPackets: 1, TxPackets: 2}, Disk: &Disk{UsedBytes: 4096, Limit: Unlimited}}},
		{ID: 501, State: Stopped},
	}
}

const golden = `# HELP vpsctl_vps_state State of the VPS: 1 for its state, 0 for the others.
# TYPE vpsctl_vps_state gauge
vpsctl_vps_state{id="501",name="",state="running"} 0
vpsctl_vps_state{id="501",name="",state="stopped"} 1
vpsctl_vps_state{id="501",name="",state="suspended"} 0
vpsctl_vps_state{id="502",name="db",state="running"} 1
vpsctl_vps_state{id="502",name="db",state="stopped"} 0
vpsctl_vps_state{id="502",name="db",state="suspended"} 0
# HELP vpsctl_vps_cpu_seconds_total CPU time used by the VPS's processes, in seconds.
# TYPE vpsctl_vps_cpu_seconds_total counter
vpsctl_vps_cpu_seconds_total{id="502",name="db"} 12.5
# HELP vpsctl_vps_memory_usage_bytes Memory used by the VPS, page cache included.
# TYPE vpsctl_vps_memory_usage_bytes gauge
vpsctl_vps_memory_usage_bytes{id="502",name="db"} 1048576
# HELP vpsctl_vps_memory_limit_bytes Memory limit of the VPS (+Inf: none).
# TYPE vpsctl_vps_memory_limit_bytes gauge
vpsctl_vps_memory_limit_bytes{id="502",name="db"} 536870912
# HELP vpsctl_vps_swap_usage_bytes Swap used by the VPS.
# TYPE vpsctl_vps_swap_usage_bytes gauge
vpsctl_vps_swap_usage_bytes{id="502",name="db"} 0
# HELP vpsctl_vps_swap_limit_bytes Swap limit of the VPS (+Inf: none).
# TYPE vpsctl_vps_swap_limit_bytes gauge
vpsctl_vps_swap_limit_bytes{id="502",name="db"} +Inf
# HELP vpsctl_vps_processes Processes and threads in the VPS.
# TYPE vpsctl_vps_processes gauge
vpsctl_vps_processes{id="502",name="db"} 7
# HELP vpsctl_vps_processes_limit Limit on processes and threads in the VPS (+Inf: none).
# TYPE vpsctl_vps_processes_limit gauge
vpsctl_vps_processes_limit{id="502",name="db"} 512
# HELP vpsctl_vps_oom_kills_total Processes of the VPS killed by the kernel's OOM killer.
# TYPE vpsctl_vps_oom_kills_total counter
vpsctl_vps_oom_kills_total{id="502",name="db"} 1
# HELP vpsctl_vps_failcnt_total Refusals counted by each beancounter of the VPS (OpenVZ's failcnt).
# TYPE vpsctl_vps_failcnt_total counter
vpsctl_vps_failcnt_total{id="502",name="db",resource="numproc"} 0
vpsctl_vps_failcnt_total{id="502",name="db",resource="physpages"} 3
# HELP vpsctl_vps_network_receive_bytes_total Bytes received by the VPS's interfaces.
# TYPE vpsctl_vps_network_receive_bytes_total counter
vpsctl_vps_network_receive_bytes_total{id="502",name="db"} 100
# HELP vpsctl_vps_network_transmit_bytes_total Bytes sent by the VPS's interfaces.
# TYPE vpsctl_vps_network_transmit_bytes_total counter
vpsctl_vps_network_transmit_bytes_total{id="502",name="db"} 200
# HELP vpsctl_vps_network_receive_packets_total Packets received by the VPS's interfaces.
# TYPE vpsctl_vps_network_receive_packets_total counter
vpsctl_vps_network_receive_packets_total{id="502",name="db"} 1
# HELP vpsctl_vps_network_transmit_packets_total Packets sent by the VPS's interfaces.
# TYPE vpsctl_vps_network_transmit_packets_total counter
vpsctl_vps_network_transmit_packets_total{id="502",name="db"} 2
# HELP vpsctl_vps_disk_usage_bytes Disk space used by the VPS's private area.
# TYPE vpsctl_vps_disk_usage_bytes gauge
vpsctl_vps_disk_usage_bytes{id="502",name="db"} 4096
# HELP vpsctl_vps_disk_limit_bytes Disk space limit of the VPS's private area (+Inf: none).
# TYPE vpsctl_vps_disk_limit_bytes gauge
vpsctl_vps_disk_limit_bytes{id="502",name="db"} +Inf
`

func TestWriteGolden(t *testing.T) {
	var b bytes.Buffer
	if err := Write(&b, testSamples()); err != nil {
		t.Fatal(err)
	}
	if b.String() != golden {
		t.Fatalf("got:\n%s", b.String())
	}
	if len(Names()) != strings.Count(golden, "# TYPE ") {
		t.Fatal("Names and the families written disagree")
	}
}

// A running VPS without network or disk figures has no such series, and its other series are
// all there.
func TestPartialUsage(t *testing.T) {
	var b bytes.Buffer
	err := Write(&b, []Sample{{ID: 7, State: Suspended, Usage: &Usage{MemoryLimit: Unlimited, SwapLimit: 5, ProcessLimit: Unlimited}}})
	if err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, absent := range []string{"network_receive_bytes_total{", "disk_usage_bytes{", "failcnt_total{"} {
		if strings.Contains(out, absent) {
			t.Errorf("%s written without data", absent)
		}
	}
	for _, present := range []string{`vpsctl_vps_memory_limit_bytes{id="7",name=""} +Inf`, `vpsctl_vps_swap_limit_bytes{id="7",name=""} 5`,
		`vpsctl_vps_state{id="7",name="",state="suspended"} 1`, `vpsctl_vps_cpu_seconds_total{id="7",name=""} 0`} {
		if !strings.Contains(out, present+"\n") {
			t.Errorf("missing %s", present)
		}
	}
}

func TestEscaping(t *testing.T) {
	var b bytes.Buffer
	s := Sample{ID: 1, Name: "a\"b\\c\nd", State: Running, Usage: &Usage{Failcnt: map[string]uint64{`x"y`: 1}}}
	if err := Write(&b, []Sample{s}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `vpsctl_vps_failcnt_total{id="1",name="a\"b\\c\nd",resource="x\"y"} 1`+"\n") {
		t.Fatalf("%s", b.String())
	}
	if got := string(appendEscaped(nil, "a\\b\n\"", false)); got != `a\\b\n"` {
		t.Fatalf("help escaping: %s", got)
	}
}

func TestBadSamples(t *testing.T) {
	for _, s := range []Sample{{ID: 0, State: Running}, {ID: 1, State: "exploded"}, {ID: 2}} {
		var b bytes.Buffer
		if err := Write(&b, []Sample{{ID: 9, State: Running}, s}); !errors.Is(err, ErrBadSample) || b.Len() != 0 {
			t.Errorf("%+v: %v, %d bytes written", s, err, b.Len())
		}
	}
	if err := Write(failWriter{}, testSamples()); err == nil {
		t.Fatal("write error lost")
	}
	// Nothing to report is still a valid exposition: the families, with no series.
	var b bytes.Buffer
	if err := Write(&b, nil); err != nil || strings.Count(b.String(), "# TYPE") != len(Names()) {
		t.Fatalf("%v\n%s", err, b.String())
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

// seriesLine is what every non-comment line must look like.
var seriesLine = regexp.MustCompile(`^vpsctl_vps_[a-z_]+\{id="[1-9][0-9]*",name="(?:[^"\\\n]|\\[\\"n])*"(?:,(?:state|resource)="(?:[^"\\\n]|\\[\\"n])*")?\} (?:\+Inf|[0-9][0-9.e+-]*)$`)

func FuzzWrite(f *testing.F) {
	f.Add(uint32(1), "web", "numproc", uint64(5), 1.5, uint64(1<<63))
	f.Add(uint32(4294967295), "a\"\\\n", "", uint64(0), 0.0, uint64(Unlimited))
	f.Fuzz(func(t *testing.T, id uint32, name, res string, v uint64, cpu float64, lim uint64) {
		if id == 0 || cpu < 0 || cpu != cpu || cpu > 1e300 {
			return
		}
		s := Sample{ID: id, Name: name, State: Running, Usage: &Usage{CPUSeconds: cpu, MemoryBytes: v, MemoryLimit: Limit(lim),
			Failcnt: map[string]uint64{res: v}, Net: &Net{RxBytes: v}, Disk: &Disk{UsedBytes: v, Limit: Limit(lim)}}}
		var b bytes.Buffer
		if err := Write(&b, []Sample{s}); err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n") {
			if strings.HasPrefix(line, "# ") {
				continue
			}
			if !seriesLine.MatchString(line) {
				t.Fatalf("bad line %q", line)
			}
		}
	})
}

// promtool finds Prometheus's linter: VPSCTL_PROMTOOL, PATH, or where
// scripts/install-promtool.sh puts it.
func promtool(t *testing.T) string {
	for _, p := range []string{os.Getenv("VPSCTL_PROMTOOL"), "promtool", "/usr/local/lib/vpsctl/prometheus/promtool"} {
		if p == "" {
			continue
		}
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("promtool not found (CI=true: refusing to skip); run scripts/install-promtool.sh")
	}
	t.Skip("promtool not found: run scripts/install-promtool.sh")
	return ""
}

// TestPromtoolCheck: Prometheus's own linter accepts the output, warnings included (it prints
// nothing and exits 0), for stopped, running and suspended VPSs with awkward names.
func TestPromtoolCheck(t *testing.T) {
	tool := promtool(t)
	samples := append(testSamples(), Sample{ID: 7, Name: "we\"ird\\name", State: Suspended, Usage: &Usage{MemoryLimit: Unlimited, SwapLimit: Unlimited, ProcessLimit: Unlimited}})
	samples = append(samples, bench(50)...)
	var b bytes.Buffer
	if err := Write(&b, samples); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(tool, "check", "metrics")
	cmd.Stdin = &b
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) != 0 {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
	// And it does fail on a broken exposition, so the check above means something.
	cmd = exec.Command(tool, "check", "metrics")
	cmd.Stdin = strings.NewReader("# TYPE x_total counter\nx_total{a=\"b} 1\n")
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("promtool accepted a broken exposition: %s", out)
	}
}

// bench makes n running VPSs with every figure, as a host of n VPSs reports them.
func bench(n int) []Sample {
	out := make([]Sample, n)
	for i := range out {
		out[i] = Sample{ID: uint32(1000 + i), Name: fmt.Sprintf("customer-%d", i), State: Running, Usage: &Usage{
			CPUSeconds: float64(i) * 1.25, MemoryBytes: uint64(i) << 20, MemoryLimit: 1 << 30, SwapBytes: 4096, SwapLimit: 512 << 20,
			Processes: 40, ProcessLimit: 1024, OOMKills: 0,
			Failcnt: map[string]uint64{"numproc": 0, "physpages": uint64(i), "swappages": 0, "cpu": 12, "blkio": 0, "kmemsize": 0},
			Net:     &Net{RxBytes: 1 << 30, TxBytes: 1 << 29, RxPackets: 1 << 20, TxPackets: 1 << 19},
			Disk:    &Disk{UsedBytes: 3 << 30, Limit: 10 << 30}}}
	}
	return out
}

// BenchmarkWrite1000: formatting 1000 VPSs, the whole of what vpsctl metrics prints on a
// full host every scrape.
func BenchmarkWrite1000(b *testing.B) {
	s := bench(1000)
	var out bytes.Buffer
	Write(&out, s)
	b.SetBytes(int64(out.Len()))
	b.ReportAllocs()
	for b.Loop() {
		out.Reset()
		if err := Write(&out, s); err != nil {
			b.Fatal(err)
		}
	}
}
