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

// TestListFieldsVzlist: vzlist's field names are accepted as they are typed and read the
// fields they stand for; sorting puts "no value" first and numbers in numeric order.
func TestListFieldsVzlist(t *testing.T) {
	fields, err := ParseListFields("ctid,status,ostemplate,veid,vpsid")
	if err != nil || len(fields) != 5 || fields[0] != "ctid" {
		t.Fatalf("ParseListFields: %v, %v", fields, err)
	}
	s := &Status{ID: 101, State: "running", Suspended: true, Template: "busybox"}
	for f, want := range map[string]any{"ctid": uint64(101), "veid": uint64(101), "status": "running,suspended", "ostemplate": "busybox"} {
		if got := fieldValue(s, nil, f); got != want {
			t.Errorf("%s: %v, want %v", f, got, want)
		}
	}
	if _, err := ParseListFields("ctid,nope"); err == nil {
		t.Error("an unknown field was accepted")
	}
	for _, tc := range []struct {
		a, b any
		want int
	}{
		{nil, uint64(1), -1}, {uint64(1), nil, 1}, {nil, nil, 0}, {uint64(9), uint64(10), -1}, {int64(-1), uint64(0), -1},
		{Unlimited, Limit(5), 1}, {"b", "a", 1}, {"10", "9", -1},
	} {
		if got := compareValues(tc.a, tc.b); got != tc.want {
			t.Errorf("compareValues(%v, %v) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}
