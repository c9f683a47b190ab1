package runtime

import (
	"errors"
	"testing"
)

// TestNamespacesFor: settings a VPS's namespaces would never apply are refused, at create and
// at set (both ask namespacesFor).
func TestNamespacesFor(t *testing.T) {
	all := []string{"uts", "ipc", "pid", "mnt", "net", "user"}
	if err := namespacesFor(all, true, true); err != nil {
		t.Fatalf("all namespaces: %v", err)
	}
	if err := namespacesFor([]string{"pid", "mnt"}, false, false); err != nil {
		t.Fatalf("nothing asked: %v", err)
	}
	for _, tc := range []struct {
		ns       []string
		net, uts bool
	}{{[]string{"uts", "pid", "mnt"}, true, false}, {[]string{"net", "pid", "mnt"}, false, true}} {
		if err := namespacesFor(tc.ns, tc.net, tc.uts); !errors.Is(err, ErrBadValue) {
			t.Errorf("%v net=%v uts=%v: %v", tc.ns, tc.net, tc.uts, err)
		}
	}
}
