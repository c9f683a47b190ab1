package revert

import (
	"errors"
	"strings"
	"testing"
)

func TestNewestFirstAndFinish(t *testing.T) {
	var order []int
	var u Steps
	u.Add(func() { order = append(order, 1) })
	u.AddErr(func() error { order = append(order, 2); return errors.New("step 2 stuck") })
	u.Add(func() { order = append(order, 3) })
	err := errors.New("boom")
	u.Finish(&err)
	if len(order) != 3 || order[0] != 3 || order[1] != 2 || order[2] != 1 {
		t.Fatalf("order %v, want [3 2 1]", order)
	}
	if !strings.Contains(err.Error(), "boom") || !strings.Contains(err.Error(), "step 2 stuck") {
		t.Fatalf("error %q names neither the failure nor what could not be undone", err)
	}
	if len(u) != 0 {
		t.Fatal("the steps are not forgotten after Run")
	}
	var none error
	u.Add(func() { t.Fatal("a step ran although the operation succeeded") })
	u.Finish(&none)
	if none != nil {
		t.Fatal(none)
	}
}
