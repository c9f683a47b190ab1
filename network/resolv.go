package network

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/vpsctl/vpsctl/internal/sysfile"
	"golang.org/x/sys/unix"
)

// hostResolvConf is read for "inherit"; a variable for tests.
var hostResolvConf = "/etc/resolv.conf"

// maxResolvConf bounds what is read of a resolv.conf: the VPS's own may be
// anything its tenant made it.
const maxResolvConf = 64 << 10

// Inherit, given as a nameserver or search domain, stands for the host's.
const Inherit = "inherit"

// WriteResolvConf sets the nameservers and search domains in
// <rootfs>/etc/resolv.conf, keeping its other lines (options, comments). An
// empty list leaves that part of the file alone. The nameserver "inherit"
// stands for the host's nameservers from /etc/resolv.conf, except loopback
// ones (they would be the VPS's own loopback), and brings the host's search
// domains with it unless search domains are given; the search domain
// "inherit" stands for the host's search domains. Bad values are ErrBadDNS.
//
// rootfs belongs to a tenant who may have planted symlinks anywhere below
// it: paths are resolved with openat2(2) RESOLVE_IN_ROOT, so they cannot
// leave rootfs, and resolv.conf is replaced by renaming a new file over it
// in the same directory, never by opening it for writing, so a symlink there
// is replaced rather than followed (CVE-2024-45310). The file gets the owner
// of its etc directory, so that root of a VPS in a user namespace owns it.
func WriteResolvConf(rootfs string, nameservers []string, search []string) error {
	if len(nameservers) == 0 && len(search) == 0 {
		return nil
	}
	var host []byte
	if slices.Contains(nameservers, Inherit) || slices.Contains(search, Inherit) {
		f, err := os.Open(hostResolvConf)
		if err != nil {
			return err
		}
		host, err = io.ReadAll(io.LimitReader(f, maxResolvConf))
		f.Close()
		if err != nil {
			return &os.PathError{Op: "read", Path: hostResolvConf, Err: err}
		}
	}
	// Check the values before touching the VPS.
	if _, err := renderResolvConf(nil, host, nameservers, search); err != nil {
		return err
	}

	root, err := openat2(unix.AT_FDCWD, rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: rootfs, Err: err}
	}
	defer unix.Close(root)
	etcPath := filepath.Join(rootfs, "etc")
	etc, err := openEtc(root)
	if err != nil {
		return &os.PathError{Op: "openat2", Path: etcPath, Err: err}
	}
	defer unix.Close(etc)

	path := filepath.Join(etcPath, "resolv.conf")
	old, err := readInRoot(root, "etc/resolv.conf")
	if err != nil {
		return &os.PathError{Op: "read", Path: path, Err: err}
	}
	content, err := renderResolvConf(old, host, nameservers, search)
	if err != nil {
		return err
	}
	if old != nil && bytes.Equal(old, content) {
		return nil // as it should be (every boot writes it: most change nothing)
	}
	return replaceAt(etc, "resolv.conf", content, path)
}

// openEtc opens etc of the root file system root as an O_PATH directory,
// creating it if missing.
func openEtc(root int) (int, error) {
	how := uint64(unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS)
	fd, err := openat2(root, "etc", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0, how)
	if err != unix.ENOENT {
		return fd, err
	}
	// mkdirat(2) does not follow a symlink in the last component: if etc
	// is a dangling one, this fails with EEXIST and the open below fails.
	err = sysfile.Retry(func() error { return unix.Mkdirat(root, "etc", 0o755) })
	if err != nil && err != unix.EEXIST {
		return -1, err
	}
	if err == nil {
		var st unix.Stat_t
		if err := unix.Fstat(root, &st); err == nil {
			_ = unix.Fchownat(root, "etc", int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW)
		}
	}
	return openat2(root, "etc", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0, how)
}

// readInRoot reads name below root (resolved in root) if it is a regular
// file, and returns nil if it is missing or anything else. It opens with
// O_PATH and checks the type before opening for reading: opening a device
// node can have effects of its own, and a FIFO would block.
func readInRoot(root int, name string) ([]byte, error) {
	how := uint64(unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS)
	pfd, err := openat2(root, name, unix.O_PATH|unix.O_CLOEXEC, 0, how)
	if err == unix.ENOENT || err == unix.ENOTDIR || err == unix.ELOOP {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := unix.Fstat(pfd, &st); err != nil {
		return nil, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, nil
	}
	// Reopen the very inode the O_PATH descriptor names.
	fd, err := openat2(unix.AT_FDCWD, "/proc/thread-self/fd/"+strconv.Itoa(pfd), unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOCTTY|unix.O_NONBLOCK, 0, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxResolvConf+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxResolvConf {
		return nil, fmt.Errorf("larger than %d bytes: %w", maxResolvConf, ErrBadDNS)
	}
	return b, nil
}

// replaceAt atomically replaces name in directory dir with a new file holding
// content: it writes a new file with a random name in dir and renames it
// over name, so it never writes through whatever name is now (a symlink to a
// host file, say). path names the file in errors.
func replaceAt(dir int, name string, content []byte, path string) (err error) {
	var st unix.Stat_t
	if err := unix.Fstat(dir, &st); err != nil {
		return &os.PathError{Op: "fstat", Path: filepath.Dir(path), Err: err}
	}
	tmp := "." + name + ".vpsctl-" + rand.Text()[:16]
	how := uint64(unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS)
	fd, err := openat2(dir, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644, how)
	if err != nil {
		return &os.PathError{Op: "create", Path: filepath.Join(filepath.Dir(path), tmp), Err: err}
	}
	f := os.NewFile(uintptr(fd), tmp)
	defer func() {
		f.Close()
		if err != nil {
			_ = sysfile.Retry(func() error { return unix.Unlinkat(dir, tmp, 0) })
		}
	}()
	if err := unix.Fchown(fd, int(st.Uid), int(st.Gid)); err != nil {
		return &os.PathError{Op: "fchown", Path: path, Err: err}
	}
	// The mode given to openat2 went through the umask.
	if err := unix.Fchmod(fd, 0o644); err != nil {
		return &os.PathError{Op: "fchmod", Path: path, Err: err}
	}
	// Not fsynced: the VPS's config is the record, and every boot writes the file from it.
	if _, err := f.Write(content); err != nil {
		return err
	}
	if err := sysfile.Retry(func() error { return unix.Renameat(dir, tmp, dir, name) }); err != nil {
		return &os.PathError{Op: "rename", Path: path, Err: err}
	}
	return nil
}

// openat2 is unix.Openat2, EINTR retried.
func openat2(dirfd int, path string, flags int, mode uint32, resolve uint64) (int, error) {
	how := &unix.OpenHow{Flags: uint64(flags), Mode: uint64(mode), Resolve: resolve}
	fd := -1
	err := sysfile.Retry(func() (err error) {
		fd, err = unix.Openat2(dirfd, path, how)
		return err
	})
	return fd, err
}

// renderResolvConf returns old with its nameserver lines replaced by
// nameservers (if any are given) and its search/domain lines by search (if
// given, or inherited), "inherit" standing for what host (the host's
// resolv.conf) has. It is pure; see WriteResolvConf for the rules.
func renderResolvConf(old, host []byte, nameservers, search []string) ([]byte, error) {
	hostNS, hostSearch := parseResolvConf(host)
	var ns []string
	inheritNS := false
	for _, s := range nameservers {
		if s == Inherit {
			inheritNS = true
			for _, h := range hostNS {
				if a, err := parseNameserver(h); err == nil && !a.IsLoopback() && !slices.Contains(ns, a.String()) {
					ns = append(ns, a.String())
				}
			}
			continue
		}
		a, err := parseNameserver(s)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(ns, a.String()) {
			ns = append(ns, a.String())
		}
	}
	var doms []string
	for _, s := range search {
		if s == Inherit {
			for _, h := range hostSearch {
				if validDomain(h) && !slices.Contains(doms, h) {
					doms = append(doms, h)
				}
			}
			continue
		}
		if !validDomain(s) {
			return nil, fmt.Errorf("search domain %q: %w", s, ErrBadSearchDomain)
		}
		if !slices.Contains(doms, s) {
			doms = append(doms, s)
		}
	}
	setSearch := len(search) > 0
	if !setSearch && inheritNS && len(hostSearch) > 0 {
		setSearch = true
		for _, h := range hostSearch {
			if validDomain(h) && !slices.Contains(doms, h) {
				doms = append(doms, h)
			}
		}
	}
	setNS := len(nameservers) > 0

	var out bytes.Buffer
	for _, line := range splitLines(old) {
		switch keyword(line) {
		case "nameserver":
			if setNS {
				continue
			}
		case "search", "domain":
			if setSearch {
				continue
			}
		}
		out.WriteString(line)
		out.WriteByte('\n')
	}
	if setSearch && len(doms) > 0 {
		out.WriteString("search " + strings.Join(doms, " ") + "\n")
	}
	for _, s := range ns {
		out.WriteString("nameserver " + s + "\n")
	}
	return out.Bytes(), nil
}

// parseResolvConf returns the nameservers and the search domains (of the
// last search or domain line, as the resolver does) of a resolv.conf.
func parseResolvConf(b []byte) (nameservers, search []string) {
	for _, line := range splitLines(b) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "nameserver":
			if len(f) > 1 {
				nameservers = append(nameservers, f[1])
			}
		case "search", "domain":
			search = slices.Clone(f[1:])
		}
	}
	return nameservers, search
}

func splitLines(b []byte) []string {
	s := strings.TrimSuffix(string(b), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func keyword(line string) string {
	f := strings.Fields(line)
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// ValidateNameserver checks a nameserver setting: an address, or Inherit.
func ValidateNameserver(s string) error {
	if s == Inherit {
		return nil
	}
	_, err := parseNameserver(s)
	return err
}

// ValidateSearchDomain checks a search domain setting: a domain name, or Inherit.
func ValidateSearchDomain(s string) error {
	if s != Inherit && !validDomain(s) {
		return fmt.Errorf("search domain %q: %w", s, ErrBadSearchDomain)
	}
	return nil
}

// parseNameserver parses a nameserver address; a zone (fe80::1%eth0) must
// name an interface, so that it cannot smuggle text into the file.
func parseNameserver(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.IsUnspecified() || a.IsMulticast() || a.Is4In6() || (a.Zone() != "" && !validIfName(a.Zone())) {
		return netip.Addr{}, fmt.Errorf("nameserver %q: %w", s, ErrBadNameserver)
	}
	return a, nil
}

// validDomain reports whether s is a DNS name of letters, digits, '-' and '_'
// in labels of 1 to 63 bytes, at most 253 bytes, optionally ending in '.'.
func validDomain(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}
