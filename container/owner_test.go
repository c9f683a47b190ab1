package container

import "testing"

func TestOwnerOfGroup(t *testing.T) {
	cases := map[string]ID{
		"/vpsctl/101":               101,
		"vpsctl/101/sub":            101,
		"/vpsctl/101/vpsctl/201":    101,
		"/process_api/x/vpsctl/7":   7,
		"/":                         HostID,
		"/system.slice/ssh.service": HostID,
		"/vpsctl":                   HostID,
		"/vpsctl/0":                 HostID,
		"/vpsctl/abc":               HostID,
		"/notvpsctl/5":              HostID,
	}
	for p, want := range cases {
		if got := OwnerOfGroup(p); got != want {
			t.Errorf("OwnerOfGroup(%q) = %v, want %v", p, got, want)
		}
	}
}

func FuzzOwnerOfGroup(f *testing.F) {
	f.Add("/vpsctl/101")
	f.Add("vpsctl//5/vpsctl/6")
	f.Fuzz(func(t *testing.T, p string) {
		id := OwnerOfGroup(p)
		if id != HostID {
			if _, err := ParseID(id.String()); err != nil {
				t.Fatalf("bad ID %v from %q", id, p)
			}
		}
	})
}
