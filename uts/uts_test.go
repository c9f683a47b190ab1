package uts

import (
	"errors"
	"os"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

var (
	goodNames = []string{"a", "web1", "Web-1.example.com", "1.2.3.4", "x--y", "0", strings.Repeat("a", 63),
		strings.Repeat("a", 62) + "." + "b"}
	badNames = map[string]string{
		"":                                     "empty",
		"-x":                                   `hostname "-x": label starts with '-'`,
		"x-":                                   "label ends with '-'",
		"a..b":                                 "empty label",
		".a":                                   "empty label",
		"a.":                                   "empty label",
		"a_b":                                  `character '_' not allowed`,
		"a b":                                  `character ' ' not allowed`,
		"héllo":                                "not allowed",
		"a/b":                                  "not allowed",
		"a\x00":                                "not allowed",
		strings.Repeat("a", 64):                "longer than 63 bytes",
		strings.Repeat("a.", 32) + "a":         "65 bytes, longer than 64",
		"x." + strings.Repeat("-", 10) + ".y":  "label starts with '-'",
		strings.Repeat("a", 32) + "." + "b-.c": "label ends with '-'",
		"ok.-bad":                              "label starts with '-'",
	}
)

func TestValidateHostname(t *testing.T) {
	for _, s := range goodNames {
		if err := ValidateHostname(s); err != nil {
			t.Errorf("ValidateHostname(%q) = %v", s, err)
		}
		if err := ValidateDomainname(s); err != nil {
			t.Errorf("ValidateDomainname(%q) = %v", s, err)
		}
	}
	for s, want := range badNames {
		err := ValidateHostname(s)
		if !errors.Is(err, ErrBadName) || !strings.Contains(err.Error(), want) {
			t.Errorf("ValidateHostname(%q) = %v; want ErrBadName with %q", s, err, want)
		}
		if s == "" {
			continue
		}
		err = ValidateDomainname(s)
		if !errors.Is(err, ErrBadName) || !strings.HasPrefix(err.Error(), "domainname ") {
			t.Errorf("ValidateDomainname(%q) = %v", s, err)
		}
	}
	if err := ValidateDomainname(""); err != nil {
		t.Errorf("empty domain name refused: %v", err)
	}
	if got := ValidateHostname("-x").Error(); got != `hostname "-x": label starts with '-'` {
		t.Errorf("message = %q", got)
	}
}

// TestApply sets names in a UTS namespace private to one thread, which dies afterwards.
func TestApply(t *testing.T) {
	requireRoot(t)
	hostBefore, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	want := "vpsctl-uts-test-" + strings.Repeat("x", 5)
	type result struct {
		node, domain string
		err          error
		badErr       error
	}
	done := make(chan result, 1)
	go func() {
		// Never unlocked: the thread leaves with its private UTS namespace and dies.
		runtime.LockOSThread()
		var r result
		defer func() { done <- r }()
		if r.err = unix.Unshare(unix.CLONE_NEWUTS); r.err != nil {
			return
		}
		r.badErr = Apply("bad_name", "")
		if r.err = Apply(want, "example.test"); r.err != nil {
			return
		}
		var u unix.Utsname
		if r.err = unix.Uname(&u); r.err != nil {
			return
		}
		r.node, r.domain = unix.ByteSliceToString(u.Nodename[:]), unix.ByteSliceToString(u.Domainname[:])
	}()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if !errors.Is(r.badErr, ErrBadName) {
		t.Errorf("Apply(bad_name) = %v", r.badErr)
	}
	if r.node != want || r.domain != "example.test" {
		t.Errorf("in the namespace: %q %q", r.node, r.domain)
	}
	if h, _ := os.Hostname(); h != hostBefore {
		t.Fatalf("host's hostname changed to %q (was %q)", h, hostBefore)
	}
}
