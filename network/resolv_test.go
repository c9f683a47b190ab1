package network

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func mkfifo(path string) error { return unix.Mkfifo(path, 0o644) }

const testHostResolv = "# host\nnameserver 127.0.0.53\nnameserver 198.18.0.53\nsearch example.net corp.example.net\noptions edns0\n"

func TestRenderResolvConf(t *testing.T) {
	old := "# tenant's\nnameserver 8.8.8.8\nsearch old.example\noptions rotate\n"
	for _, c := range []struct {
		name        string
		old         string
		ns, search  []string
		want        string
		wantErr     bool
		description string
	}{
		{name: "replace nameservers", old: old, ns: []string{"198.18.0.1", "fd42:1::1"},
			want: "# tenant's\nsearch old.example\noptions rotate\nnameserver 198.18.0.1\nnameserver fd42:1::1\n"},
		{name: "replace search", old: old, search: []string{"a.example", "b.example."},
			want: "# tenant's\nnameserver 8.8.8.8\noptions rotate\nsearch a.example b.example.\n"},
		{name: "inherit brings search along, drops loopback", old: old, ns: []string{Inherit},
			want: "# tenant's\noptions rotate\nsearch example.net corp.example.net\nnameserver 198.18.0.53\n"},
		{name: "inherit plus own, deduplicated", ns: []string{"198.18.0.53", Inherit, "198.18.0.1"}, search: []string{"x.example"},
			want: "search x.example\nnameserver 198.18.0.53\nnameserver 198.18.0.1\n"},
		{name: "inherit search only", old: "nameserver 198.18.0.9", search: []string{Inherit},
			want: "nameserver 198.18.0.9\nsearch example.net corp.example.net\n"},
		{name: "own loopback resolver is fine", ns: []string{"127.0.0.1"}, want: "nameserver 127.0.0.1\n"},
		{name: "zone", ns: []string{"fe80::1%eth0"}, want: "nameserver fe80::1%eth0\n"},
		{name: "injected line in zone", ns: []string{"fe80::1%eth0\nnameserver 1.2.3.4"}, wantErr: true},
		{name: "not an address", ns: []string{"dns.example"}, wantErr: true},
		{name: "multicast", ns: []string{"224.0.0.1"}, wantErr: true},
		{name: "injected line in search", search: []string{"a.example\noptions debug"}, wantErr: true},
		{name: "space in search", search: []string{"a.example b"}, wantErr: true},
		{name: "empty label", search: []string{"a..example"}, wantErr: true},
	} {
		got, err := renderResolvConf([]byte(c.old), []byte(testHostResolv), c.ns, c.search)
		if c.wantErr {
			if !errors.Is(err, ErrBadDNS) {
				t.Errorf("%s: got %q, %v; want ErrBadDNS", c.name, got, err)
			}
			continue
		}
		if err != nil || string(got) != c.want {
			t.Errorf("%s: got %q, %v; want %q", c.name, got, err, c.want)
		}
	}
}

func FuzzResolvConf(f *testing.F) {
	f.Add("nameserver 8.8.8.8\nsearch a\noptions x\n", testHostResolv, "198.18.0.1", "example.com")
	f.Add("", testHostResolv, Inherit, "")
	f.Add("# c\n\n", "", "fe80::1%eth0", Inherit)
	f.Fuzz(func(t *testing.T, old, host, ns, search string) {
		var nss, searches []string
		if ns != "" {
			nss = strings.Split(ns, ",")
		}
		if search != "" {
			searches = strings.Split(search, ",")
		}
		got, err := renderResolvConf([]byte(old), []byte(host), nss, searches)
		if err != nil {
			if !errors.Is(err, ErrBadDNS) {
				t.Fatalf("error %v is not ErrBadDNS", err)
			}
			return
		}
		// What it writes must read back as exactly what it was asked for.
		gotNS, _ := parseResolvConf(got)
		for _, s := range gotNS {
			if _, err := parseNameserver(s); err != nil && (len(nss) > 0 || !strings.Contains(old, s)) {
				t.Fatalf("wrote nameserver %q", s)
			}
		}
		again, err := renderResolvConf(got, []byte(host), nss, searches)
		if err != nil || !bytes.Equal(again, got) {
			t.Fatalf("not idempotent: %q then %q, %v", got, again, err)
		}
	})
}

// setHostResolv points hostResolvConf at a test file for the test's duration.
func setHostResolv(t *testing.T, content string) {
	p := filepath.Join(t.TempDir(), "host-resolv.conf")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	old := hostResolvConf
	hostResolvConf = p
	t.Cleanup(func() { hostResolvConf = old })
}

func TestWriteResolvConf(t *testing.T) {
	setHostResolv(t, testHostResolv)
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(root, "etc", "resolv.conf")
	if err := os.WriteFile(conf, []byte("options rotate\nnameserver 8.8.8.8\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteResolvConf(root, []string{Inherit}, nil); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(conf)
	want := "options rotate\nsearch example.net corp.example.net\nnameserver 198.18.0.53\n"
	if err != nil || string(got) != want {
		t.Fatalf("resolv.conf = %q, %v; want %q", got, err, want)
	}
	if st, err := os.Stat(conf); err != nil || st.Mode().Perm() != 0o644 {
		t.Errorf("mode: %v, %v", st.Mode(), err)
	}
	entries, _ := os.ReadDir(filepath.Join(root, "etc"))
	if len(entries) != 1 {
		t.Errorf("etc holds %d entries, want resolv.conf alone (temporary file left?)", len(entries))
	}
	// Bad values change nothing.
	if err := WriteResolvConf(root, []string{"not-an-ip"}, nil); !errors.Is(err, ErrBadDNS) {
		t.Errorf("bad nameserver: %v", err)
	}
	if got2, _ := os.ReadFile(conf); string(got2) != want {
		t.Errorf("bad nameserver changed the file to %q", got2)
	}
	// Nothing asked, nothing done (no etc needed).
	if err := WriteResolvConf(filepath.Join(root, "missing"), nil, nil); err != nil {
		t.Errorf("empty lists: %v", err)
	}
}

// A tenant's symlinks must neither be written through nor lead out of the
// root file system (CVE-2024-45310).
func TestWriteResolvConfSymlinks(t *testing.T) {
	setHostResolv(t, testHostResolv)
	hostFile := "/etc/hostname"
	before, err := os.ReadFile(hostFile)
	if err != nil {
		t.Skipf("no %s to guard: %v", hostFile, err)
	}
	beforeSt, _ := os.Stat(hostFile)

	t.Run("resolv.conf to an absolute host path", func(t *testing.T) {
		root := t.TempDir()
		os.Mkdir(filepath.Join(root, "etc"), 0o755)
		if err := os.Symlink(hostFile, filepath.Join(root, "etc", "resolv.conf")); err != nil {
			t.Fatal(err)
		}
		if err := WriteResolvConf(root, []string{"198.18.0.1"}, []string{"example.com"}); err != nil {
			t.Fatal(err)
		}
		st, err := os.Lstat(filepath.Join(root, "etc", "resolv.conf"))
		if err != nil || !st.Mode().IsRegular() {
			t.Fatalf("resolv.conf is not a regular file now: %v, %v", st, err)
		}
		got, _ := os.ReadFile(filepath.Join(root, "etc", "resolv.conf"))
		if string(got) != "search example.com\nnameserver 198.18.0.1\n" {
			t.Errorf("resolv.conf = %q", got)
		}
	})
	t.Run("resolv.conf to a relative path out of the root", func(t *testing.T) {
		root := t.TempDir()
		os.Mkdir(filepath.Join(root, "etc"), 0o755)
		if err := os.Symlink("../../../../../../../../../../.."+hostFile, filepath.Join(root, "etc", "resolv.conf")); err != nil {
			t.Fatal(err)
		}
		if err := WriteResolvConf(root, []string{"198.18.0.1"}, nil); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("etc to the host's /etc", func(t *testing.T) {
		root := t.TempDir()
		if err := os.Symlink("/etc", filepath.Join(root, "etc")); err != nil {
			t.Fatal(err)
		}
		// Resolved in the root, /etc is root/etc: the symlink itself, which
		// points at itself; nothing may be written to the host.
		err := WriteResolvConf(root, []string{"198.18.0.1"}, nil)
		t.Logf("WriteResolvConf: %v", err)
		if _, err := os.Lstat("/etc/.resolv.conf.vpsctl-"); err == nil {
			t.Error("temporary file in host /etc")
		}
	})
	t.Run("etc to the root itself", func(t *testing.T) {
		root := t.TempDir()
		if err := os.Symlink("/", filepath.Join(root, "etc")); err != nil {
			t.Fatal(err)
		}
		if err := WriteResolvConf(root, []string{"198.18.0.1"}, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(root, "resolv.conf")); err != nil {
			t.Errorf("want the file in the root (etc resolved to it): %v", err)
		}
	})
	t.Run("resolv.conf is a FIFO", func(t *testing.T) {
		root := t.TempDir()
		os.Mkdir(filepath.Join(root, "etc"), 0o755)
		if err := mkfifo(filepath.Join(root, "etc", "resolv.conf")); err != nil {
			t.Skip(err)
		}
		if err := WriteResolvConf(root, []string{"198.18.0.1"}, nil); err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(filepath.Join(root, "etc", "resolv.conf"))
		if string(got) != "nameserver 198.18.0.1\n" {
			t.Errorf("resolv.conf = %q", got)
		}
	})
	t.Run("no etc", func(t *testing.T) {
		root := t.TempDir()
		if err := WriteResolvConf(root, []string{"198.18.0.1"}, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(root, "etc", "resolv.conf")); err != nil {
			t.Error(err)
		}
	})

	after, err := os.ReadFile(hostFile)
	afterSt, _ := os.Stat(hostFile)
	if err != nil || !bytes.Equal(before, after) || !afterSt.ModTime().Equal(beforeSt.ModTime()) || afterSt.Mode() != beforeSt.Mode() {
		t.Fatalf("host %s changed: %q -> %q (%v)", hostFile, before, after, err)
	}
	if matches, _ := filepath.Glob("/etc/.resolv.conf.vpsctl-*"); len(matches) > 0 {
		t.Errorf("temporary files in host /etc: %v", matches)
	}
}
