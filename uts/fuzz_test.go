package uts

import (
	"errors"
	"strings"
	"testing"
)

// FuzzValidateHostname: no panics; every accepted name satisfies the rules checked here
// independently; domain names accept exactly the non-empty hostnames.
func FuzzValidateHostname(f *testing.F) {
	for _, s := range goodNames {
		f.Add(s)
	}
	for s := range badNames {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := ValidateHostname(s)
		derr := ValidateDomainname(s)
		if (err == nil) != (derr == nil) && s != "" {
			t.Fatalf("hostname %v, domainname %v", err, derr)
		}
		if err != nil {
			if !errors.Is(err, ErrBadName) {
				t.Fatalf("%v does not wrap ErrBadName", err)
			}
			return
		}
		if len(s) < 1 || len(s) > 64 {
			t.Fatalf("accepted %d bytes", len(s))
		}
		for _, l := range strings.Split(s, ".") {
			if len(l) < 1 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
				t.Fatalf("accepted label %q of %q", l, s)
			}
			if strings.Trim(l, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") != "" {
				t.Fatalf("accepted label %q of %q", l, s)
			}
		}
		// Case does not matter to the rules.
		if ValidateHostname(strings.ToUpper(s)) != nil || ValidateHostname(strings.ToLower(s)) != nil {
			t.Fatalf("%q accepted but not in another case", s)
		}
	})
}
