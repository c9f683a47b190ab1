package api

import (
	"bytes"
	"net/http"

	"github.com/vpsctl/vpsctl/metrics"
)

// metrics answers every VPS's state and usage in Prometheus's text format (package metrics),
// what `vpsctl metrics` prints, for a Prometheus server to scrape directly.
func (s *Server) metrics(w http.ResponseWriter, r *http.Request) error {
	if _, err := newQuery(r); err != nil {
		return err
	}
	samples, err := s.rt.Metrics()
	if err != nil {
		return err
	}
	var b bytes.Buffer
	if err := metrics.Write(&b, samples); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Write(b.Bytes())
	return nil
}
