package runtime

import (
	"encoding/json"
	"testing"
)

// TestLimitJSON: no limit is null (2^64-1 is past JavaScript's exact integers), a limit its
// number, in a beancounter and in a list row alike.
func TestLimitJSON(t *testing.T) {
	b, err := json.Marshal(Beancounter{Held: 1, Barrier: Unlimited, Limit: 256})
	if err != nil || string(b) != `{"held":1,"maxheld":0,"barrier":null,"limit":256,"failcnt":0}` {
		t.Fatalf("beancounter: %s, %v", b, err)
	}
	b, err = json.Marshal(ListRow{Unlimited, Limit(0), uint64(7), nil})
	if err != nil || string(b) != `[null,0,7,null]` {
		t.Fatalf("row: %s, %v", b, err)
	}
	if Unlimited.String() != "unlimited" || Limit(42).String() != "42" {
		t.Fatalf("String: %q %q", Unlimited.String(), Limit(42).String())
	}
}
