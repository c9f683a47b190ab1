package metrics

import (
	"errors"
	"strings"
	"testing"
)

const netDev = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    1000      10    0    0    0     0          0         0     1000      10    0    0    0     0       0          0
  eth0:   20000     200    1    0    0     0          0         3     5000      50    0    0    0     0       0          0
venet0:     300       3    0    0    0     0          0         0      700       7    0    0    0     0       0          0
`

func TestParseNetDev(t *testing.T) {
	n, err := ParseNetDev([]byte(netDev))
	if err != nil {
		t.Fatal(err)
	}
	if n != (Net{RxBytes: 20300, RxPackets: 203, TxBytes: 5700, TxPackets: 57}) {
		t.Fatalf("%+v", n)
	}
	// Only loopback, or only headers: nothing.
	if n, err := ParseNetDev([]byte(strings.Join(strings.Split(netDev, "\n")[:3], "\n"))); err != nil || n != (Net{}) {
		t.Fatalf("%+v %v", n, err)
	}
	// Old kernels wrote no space after the colon.
	if n, err := ParseNetDev([]byte("h\nh\neth0:5 1 0 0 0 0 0 0 6 2 0 0 0 0 0 0\n")); err != nil || n.RxBytes != 5 || n.TxPackets != 2 {
		t.Fatalf("%+v %v", n, err)
	}
	for _, bad := range []string{
		"h\nh\neth0: 1 2 3\n",
		"h\nh\neth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 x\n",
		"h\nh\n: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n",
		"h\nh\ngarbage\n",
		"h\nh\neth0: -1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n",
	} {
		if _, err := ParseNetDev([]byte(bad)); !errors.Is(err, ErrBadNetDev) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func FuzzParseNetDev(f *testing.F) {
	f.Add([]byte(netDev))
	f.Add([]byte("h\nh\neth0:5 1 0 0 0 0 0 0 6 2 0 0 0 0 0 0\n"))
	f.Add([]byte("h\nh\neth0: 1 2\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := ParseNetDev(b)
		if err != nil {
			if !errors.Is(err, ErrBadNetDev) {
				t.Fatal(err)
			}
			return
		}
		// Whatever parses renders as a valid exposition.
		var out strings.Builder
		if err := Write(&out, []Sample{{ID: 1, State: Running, Usage: &Usage{Net: &n}}}); err != nil {
			t.Fatal(err)
		}
	})
}
