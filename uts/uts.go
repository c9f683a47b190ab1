// Package uts handles a VPS's hostname and NIS domain name (the seed's per-container UTS name,
// done with a UTS namespace per VPS): validating them, applying them inside the VPS's UTS
// namespace, and writing the VPS's /etc/hostname.
//
// Invariants:
//   - Only names that pass ValidateHostname/ValidateDomainname reach the kernel or a file: the
//     kernel itself checks nothing but the length.
//   - Apply acts on the calling thread's UTS namespace and never switches namespaces itself;
//     the caller arranges that (container.RunIn, or a VPS's init before exec).
//   - WriteEtcHostname never follows a tenant's symlink out of the VPS's root and never
//     truncates or rewrites a file reached through a path the tenant controls (CVE-2024-45310):
//     it writes a fresh file and renames it into place.
package uts

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"github.com/vpsctl/vpsctl/internal/sysfile"
	"golang.org/x/sys/unix"
)

// maxName is HOST_NAME_MAX (64), the kernel's limit for both the host and the domain name
// (__NEW_UTS_LEN); longer names make sethostname(2) fail with EINVAL.
const maxName = 64

// ErrBadName reports a hostname or domain name that is not allowed.
var ErrBadName = errors.New("bad host or domain name")

// nameError says which name is bad and why; it matches ErrBadName with errors.Is.
type nameError struct {
	kind, name, problem string
}

func (e *nameError) Error() string { return fmt.Sprintf("%s %q: %s", e.kind, e.name, e.problem) }

func (e *nameError) Unwrap() error { return ErrBadName }

// ValidateHostname checks s as an RFC 1123 host name: dot-separated labels of ASCII letters,
// digits and '-', each 1..63 bytes, not starting or ending with '-', 1..64 bytes in all. The
// error wraps ErrBadName and names the problem, e.g. `hostname "-x": label starts with '-'`.
func ValidateHostname(s string) error {
	if s == "" {
		return &nameError{"hostname", s, "empty"}
	}
	return validate("hostname", s)
}

// ValidateDomainname checks s as a NIS domain name with the same rules as ValidateHostname,
// except that the empty name (meaning "leave unset") is allowed.
func ValidateDomainname(s string) error {
	if s == "" {
		return nil
	}
	return validate("domainname", s)
}

func validate(kind, s string) error {
	if len(s) > maxName {
		return &nameError{kind, s, fmt.Sprintf("%d bytes, longer than %d", len(s), maxName)}
	}
	start := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && s[i] != '.' {
			c := s[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return &nameError{kind, s, fmt.Sprintf("character %q not allowed", c)}
			}
			continue
		}
		label := s[start:i]
		switch {
		case label == "":
			return &nameError{kind, s, "empty label"}
		case len(label) > 63:
			return &nameError{kind, s, fmt.Sprintf("label %q longer than 63 bytes", label)}
		case label[0] == '-':
			return &nameError{kind, s, "label starts with '-'"}
		case label[len(label)-1] == '-':
			return &nameError{kind, s, "label ends with '-'"}
		}
		start = i + 1
	}
	return nil
}

// Apply validates hostname and domainname, then sets them with sethostname(2) and
// setdomainname(2) in the UTS namespace of the CALLING THREAD (namespaces belong to threads).
// The domain name is left alone when domainname is "". Apply pins the goroutine to its thread
// for the two calls so they land in the same namespace; callers that switched namespaces must
// already run on a locked thread (container.RunIn does).
func Apply(hostname, domainname string) error {
	if err := ValidateHostname(hostname); err != nil {
		return err
	}
	if err := ValidateDomainname(domainname); err != nil {
		return err
	}
	// Nests with a caller's lock (LockOSThread counts), so this never unlocks the caller's thread.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := sysfile.Retry(func() error { return unix.Sethostname([]byte(hostname)) }); err != nil {
		return os.NewSyscallError("sethostname", err)
	}
	if domainname == "" {
		return nil
	}
	if err := sysfile.Retry(func() error { return unix.Setdomainname([]byte(domainname)) }); err != nil {
		return os.NewSyscallError("setdomainname", err)
	}
	return nil
}
