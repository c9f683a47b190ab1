package api

import (
	"bytes"
	"net/http"

	"github.com/vpsctl/vpsctl/metrics"
	"github.com/vpsctl/vpsctl/runtime"
)

// metrics answers every VPS's state and usage in Prometheus's text format (package metrics),
// for a Prometheus server to scrape directly.
func (s *Server) metrics(w http.ResponseWriter, r *http.Request) error {
	if _, err := newQuery(r); err != nil {
		return err
	}
	ss, err := s.rt.List(true)
	if err != nil {
		return err
	}
	samples := make([]metrics.Sample, 0, len(ss))
	for _, st := range ss {
		samples = append(samples, s.sample(st))
	}
	var b bytes.Buffer
	if err := metrics.Write(&b, samples); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Write(b.Bytes())
	return nil
}

// sample is VPS st's metrics sample: its state and, running, what its groups account. What
// cannot be read (a VPS that stopped meanwhile) is left out rather than failing the scrape.
func (s *Server) sample(st *runtime.Status) metrics.Sample {
	smp := metrics.Sample{ID: uint32(st.ID), Name: st.Name, State: metrics.Stopped}
	if st.State != "running" {
		return smp
	}
	smp.State = metrics.Running
	if st.Suspended {
		smp.State = metrics.Suspended
	}
	stats, err := s.rt.Stats(st.ID)
	if err != nil {
		return smp
	}
	u := &metrics.Usage{CPUSeconds: float64(stats.CPUUsageNs) / 1e9, MemoryBytes: stats.MemoryBytes, SwapBytes: stats.SwapBytes,
		Processes: stats.Processes, MemoryLimit: metrics.Unlimited, SwapLimit: metrics.Unlimited, ProcessLimit: metrics.Unlimited,
		Failcnt: map[string]uint64{}}
	bytesOf := func(pages runtime.Limit) metrics.Limit {
		if pages == runtime.Unlimited {
			return metrics.Unlimited
		}
		return metrics.Limit(pages * 4096)
	}
	for name, bc := range stats.Beancounters {
		u.Failcnt[name] = bc.Failcnt
		switch name {
		case "numproc":
			u.ProcessLimit = metrics.Limit(bc.Limit)
		case "physpages":
			u.MemoryLimit = bytesOf(bc.Limit)
		case "swappages":
			u.SwapLimit = bytesOf(bc.Limit)
		}
	}
	smp.Usage = u
	return smp
}
