package tests

import (
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"testing"
)

// parallel runs the same vpsctl command n times at once and returns the exit codes.
func parallel(t *testing.T, n int, args func(i int) []string) []result {
	t.Helper()
	out := make([]result, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			out[i] = vpsctl(t, args(i)...)
		}(i)
	}
	wg.Wait()
	return out
}

// onlyOneWins checks that exactly one invocation succeeded and the others failed with one of
// the allowed codes.
func onlyOneWins(t *testing.T, what string, rs []result, allowed ...int) {
	t.Helper()
	wins := 0
	for _, r := range rs {
		if r.code == 0 {
			wins++
			continue
		}
		ok := false
		for _, a := range allowed {
			ok = ok || r.code == a
		}
		if !ok {
			t.Errorf("%s: exit %d (%s), want 0 or one of %v", what, r.code, r.err, allowed)
		}
	}
	if wins != 1 {
		t.Fatalf("%s: %d winners, want exactly 1: %+v", what, wins, rs)
	}
}

func TestConcurrency(t *testing.T) {
	ids := []string{"171", "172", "173", "174", "175", "176", "177"}
	checkClean(t, append(ids, "179")...)

	t.Run("distinct IDs in parallel all succeed", func(t *testing.T) {
		for _, step := range [][]string{{"create", "--template", "busybox"}, {"start"}, {"stop", "--kill"}, {"start"}, {"destroy", "--force"}} {
			rs := parallel(t, len(ids), func(i int) []string {
				return append([]string{step[0], ids[i]}, step[1:]...)
			})
			for i, r := range rs {
				if r.code != 0 {
					t.Fatalf("%s %s: exit %d: %s", step[0], ids[i], r.code, r.err)
				}
			}
		}
	})

	t.Run("parallel creates get disjoint UID ranges", func(t *testing.T) {
		rs := parallel(t, len(ids), func(i int) []string { return []string{"create", ids[i], "--template", "busybox"} })
		for i, r := range rs {
			if r.code != 0 {
				t.Fatalf("create %s: %+v", ids[i], r)
			}
		}
		seen := map[string]string{}
		for _, id := range ids {
			var s struct {
				IDMap string `json:"idmap"`
			}
			json.Unmarshal([]byte(must(t, "status", id, "--format", "json")), &s)
			if other, dup := seen[s.IDMap]; dup || s.IDMap == "" {
				t.Fatalf("VPS %s and %s share UID range %q", id, other, s.IDMap)
			}
			seen[s.IDMap] = id
		}
		for _, id := range ids {
			must(t, "destroy", id)
		}
	})

	t.Run("same ID: exactly one wins each race", func(t *testing.T) {
		const n = 6
		onlyOneWins(t, "create", parallel(t, n, func(i int) []string {
			return []string{"create", "179", "--template", "busybox", "--name", "race" + strconv.Itoa(i)}
		}), 44, 9)
		onlyOneWins(t, "start", parallel(t, n, func(int) []string { return []string{"start", "179"} }), 32, 9)
		onlyOneWins(t, "stop", parallel(t, n, func(int) []string { return []string{"stop", "--kill", "179"} }), 31, 9)
		onlyOneWins(t, "destroy", parallel(t, n, func(int) []string { return []string{"destroy", "179"} }), 43, 9)
		// The store is intact: the list parses and no name of a loser survived.
		var all []map[string]any
		if err := json.Unmarshal([]byte(must(t, "list", "-a", "--format", "json")), &all); err != nil {
			t.Fatalf("list after races: %v", err)
		}
		for i := 0; i < n; i++ {
			if r := vpsctl(t, "status", fmt.Sprintf("race%d", i)); r.code != 43 {
				t.Fatalf("name race%d survives: %+v", i, r)
			}
		}
	})
}
