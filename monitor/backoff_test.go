package monitor

import (
	"testing"
	"time"
)

// TestBackoff: a boot is held back only after loopBoots boots within loopWindow, 10 s the first
// time, doubling, at most 5 minutes; a loop that ended holds nothing back.
func TestBackoff(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	ago := func(ds ...time.Duration) []time.Time {
		var ts []time.Time
		for _, d := range ds {
			ts = append(ts, now.Add(-d))
		}
		return ts
	}
	s := time.Second
	for _, tc := range []struct {
		boots []time.Time
		n     int
		want  time.Duration
	}{
		{nil, 0, 0},
		{ago(4*s, 3*s, 2*s, 1*s), 0, 0},                // four boots: no loop yet
		{ago(50*s, 40*s, 30*s, 20*s, 10*s), 0, 10 * s}, // five within a minute
		{ago(50*s, 40*s, 30*s, 20*s, 10*s), 1, 20 * s}, // going on: doubled
		{ago(50*s, 40*s, 30*s, 20*s, 10*s), 5, 5 * time.Minute},
		{ago(50*s, 40*s, 30*s, 20*s, 10*s), 40, 5 * time.Minute},
		{ago(70*s, 40*s, 30*s, 20*s, 10*s), 3, 0},            // the oldest of five is past the window
		{ago(99*s, 50*s, 40*s, 30*s, 20*s, 10*s), 0, 10 * s}, // only the last five count
	} {
		if got := backoff(tc.boots, tc.n, now); got != tc.want {
			t.Errorf("backoff(%v, %d) = %v, want %v", tc.boots, tc.n, got, tc.want)
		}
	}
}
