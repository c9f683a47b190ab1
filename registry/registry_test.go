package registry

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestClaimKeys(t *testing.T) {
	c := Claim{ID: 701, Name: "web", Addrs: []string{"198.18.0.72", "198.18.0.71", "198.18.0.72"}, UIDs: "1000000:65536"}.Normalize()
	want := []string{"/vpsctl/vps/701", "/vpsctl/name/web", "/vpsctl/ip/198.18.0.71", "/vpsctl/ip/198.18.0.72", "/vpsctl/uid/0001000000"}
	if got := c.Keys(); !slices.Equal(got, want) {
		t.Fatalf("keys %v", got)
	}
	if c.UIDValue() != "65536 701" {
		t.Fatal(c.UIDValue())
	}
	if got := (Claim{ID: 7}).Keys(); !slices.Equal(got, []string{"/vpsctl/vps/7"}) {
		t.Fatal(got)
	}
	if (Claim{ID: 7, Addrs: []string{}}).Normalize().Addrs != nil {
		t.Fatal("empty addresses not nil")
	}
	if PendingKey("node-a", 701) != "/vpsctl/pending/node-a/701" || UIDKey(5) != "/vpsctl/uid/0000000005" {
		t.Fatal(PendingKey("node-a", 701), UIDKey(5))
	}
}

func TestClaimCheck(t *testing.T) {
	if err := (Claim{ID: 701, Name: "web", Addrs: []string{"fd42:1::1"}, UIDs: "1:2"}).Check(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []Claim{{}, {ID: 1, Name: "a/b"}, {ID: 1, Addrs: []string{"198.18.0.1/24"}}, {ID: 1, Addrs: []string{"FD42::1"}},
		{ID: 1, UIDs: "x"}, {ID: 1, UIDs: "5:0"}} {
		if c.Check() == nil {
			t.Errorf("%+v passed", c)
		}
	}
}

func TestConflictMessages(t *testing.T) {
	for _, tc := range []struct {
		c    Conflict
		want string
	}{
		{Conflict{What: "id", Key: "701", ID: 701, Host: "a"}, "VPS 701 exists on host a"},
		{Conflict{What: "name", Key: "web", ID: 701, Host: "a"}, `name "web" is held by VPS 701 on host a`},
		{Conflict{What: "ip", Key: "198.18.0.71", ID: 701, Host: "a"}, "198.18.0.71 in use on host a (VPS 701)"},
		{Conflict{What: "id", Key: "701", ID: 701}, "VPS 701 exists in the cluster"},
		{Conflict{What: "uid", Key: "1000000:65536", ID: 701, Host: "a"}, "UID range 1000000:65536 overlaps VPS 701's on host a"},
	} {
		if got := (&ConflictError{tc.c}).Error(); got != tc.want {
			t.Errorf("%q, want %q", got, tc.want)
		}
	}
}

func TestResponseErrors(t *testing.T) {
	if (&Response{}).err() != nil {
		t.Fatal("ok is an error")
	}
	err := (&Response{Kind: KindUnavailable, Error: "etcd claim: no answer: cluster unavailable"}).err()
	if !errors.Is(err, ErrUnavailable) || err.Error() != "etcd claim: no answer: cluster unavailable" {
		t.Fatal(err)
	}
	var ce *ConflictError
	if err := (&Response{Kind: KindConflict, Conflict: &Conflict{What: "id", ID: 1}}).err(); !errors.As(err, &ce) {
		t.Fatal(err)
	}
	if err := (&Response{Kind: KindUIDRace}).err(); !errors.Is(err, ErrUIDRace) {
		t.Fatal(err)
	}
	if err := (&Response{Kind: KindNotFound, Error: "VPS 1: not in the cluster registry"}).err(); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	if err := (&Response{Kind: KindBad, Error: "x"}).err(); err == nil || errors.Is(err, ErrUnavailable) {
		t.Fatal(err)
	}
}

func TestSettingsArgs(t *testing.T) {
	s := Settings{Root: "/var/lib/vpsctl", Endpoints: []string{"https://h1:2379", "https://h2:2379"}, Cert: "/c", Key: "/k", CA: "/ca",
		Timeout: 3 * time.Second, Node: "h1"}
	got, err := ParseArgs(s.Args()[1:])
	if err != nil || !reflect.DeepEqual(got, s) || got.Digest() != s.Digest() {
		t.Fatalf("%+v %v", got, err)
	}
	o := s
	o.Node = "h2"
	if o.Digest() == s.Digest() {
		t.Fatal("digest ignores the node")
	}
	for _, bad := range [][]string{{"--root"}, {"--timeout", "x", "--root", "/r"}, {"--bogus", "1"}, {"--root", "/r"}} {
		if _, err := ParseArgs(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestAgentEnv(t *testing.T) {
	got := agentEnv([]string{"PATH=/bin", "VPSCTL_FAULT=create-staged", "_VPSCTL_STAGE=x", "VPSCTL_TRACE=1", ReadyEnv + "=3", "VPSCTL_ROOT=/r"})
	if !slices.Equal(got, []string{"PATH=/bin", "VPSCTL_ROOT=/r"}) {
		t.Fatal(got)
	}
}

// FuzzParseArgs: whatever ParseArgs accepts, Args writes back to the same settings.
func FuzzParseArgs(f *testing.F) {
	f.Add("--root /r --endpoints http://h:1 --node n --timeout 1s")
	f.Add("--root /r --endpoints a,b --node n --timeout 3s --cert /c --key /k --ca /a")
	f.Add("--timeout -1s")
	f.Fuzz(func(t *testing.T, line string) {
		s, err := ParseArgs(strings.Fields(line))
		if err != nil {
			return
		}
		back, err := ParseArgs(s.Args()[1:])
		if err != nil || !reflect.DeepEqual(back, s) {
			t.Fatalf("%q: %+v, back %+v %v", line, s, back, err)
		}
	})
}
