package runtime

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// archive writes a backup tar stream with entries name -> content (in order) and returns it.
func archive(t *testing.T, files ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	aw := &archiveWriter{tw: tar.NewWriter(&buf)}
	hb, _ := json.Marshal(BackupHeader{Format: backupFormat, ID: 601, Template: "busybox", Time: time.Now()})
	if err := aw.file(backupHeaderName, hb); err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(files); i += 2 {
		if err := aw.file(files[i], []byte(files[i+1])); err != nil {
			t.Fatal(err)
		}
	}
	if err := aw.close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// rewrite copies tar stream b, applying f to every entry (nil: the entry is dropped).
func rewrite(t *testing.T, b []byte, f func(h *tar.Header, body []byte) (*tar.Header, []byte)) []byte {
	t.Helper()
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		if h, body = f(h, body); h == nil {
			continue
		}
		h.Size = int64(len(body))
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write(body)
	}
	tw.Close()
	return out.Bytes()
}

func TestArchiveRoundTrip(t *testing.T) {
	b := archive(t, "vps.conf", "ID=\"601\"\n", "private/etc/hostname", "web\n")
	var names []string
	head, err := readArchive(bytes.NewReader(b), func(h *tar.Header, r io.Reader) error {
		names = append(names, h.Name)
		return nil
	})
	if err != nil || head.ID != 601 || strings.Join(names, " ") != "vps.conf private/etc/hostname" {
		t.Fatalf("readArchive = %+v, %v, entries %q", head, err, names)
	}
}

func TestArchiveRefused(t *testing.T) {
	good := archive(t, "vps.conf", "ID=\"601\"\n", "private/a", "one", "private/b", "two")
	cases := map[string]struct {
		data []byte
		want string
	}{
		"truncated": {good[:len(good)/2], "truncated"},
		"no end":    {good[:len(good)-1536], "truncated"}, // the manifest's blocks cut off
		"empty":     {nil, "truncated"},
		"not a tar": {[]byte(strings.Repeat("junk", 300)), "not a backup"},
		"no header": {rewrite(t, good, func(h *tar.Header, b []byte) (*tar.Header, []byte) { return drop(h, backupHeaderName, b) }), "not a vpsctl backup"},
		"content":   {rewrite(t, good, func(h *tar.Header, b []byte) (*tar.Header, []byte) { return change(h, "private/a", b, []byte("ONE")) }), "private/a does not match its checksum"},
		"owner":     {rewrite(t, good, func(h *tar.Header, b []byte) (*tar.Header, []byte) { return chown(h, "private/b", b) }), "private/b does not match its checksum"},
		"removed":   {rewrite(t, good, func(h *tar.Header, b []byte) (*tar.Header, []byte) { return drop(h, "private/a", b) }), "the manifest says private/a"},
		"added":     {rewrite(t, good, func(h *tar.Header, b []byte) (*tar.Header, []byte) { return rename(h, manifestName, "private/c", b) }), "truncated"},
		"bad format": {rewrite(t, good, func(h *tar.Header, b []byte) (*tar.Header, []byte) {
			return change(h, backupHeaderName, b, []byte(`{"format":9}`))
		}), "unknown format"},
		"bad manifest": {rewrite(t, good, func(h *tar.Header, b []byte) (*tar.Header, []byte) {
			return change(h, manifestName, b, []byte("{"))
		}), "manifest"},
	}
	for name, c := range cases {
		_, err := readArchive(bytes.NewReader(c.data), nil)
		if !errors.Is(err, ErrBadArchive) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want ErrBadArchive saying %q", name, err, c.want)
		}
	}
	// An entry the manifest does not list, before it.
	extra := rewrite(t, good, func(h *tar.Header, b []byte) (*tar.Header, []byte) { return h, b })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tr := tar.NewReader(bytes.NewReader(extra))
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		body, _ := io.ReadAll(tr)
		if h.Name == manifestName {
			tw.WriteHeader(&tar.Header{Name: "private/z", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644})
			tw.Write([]byte("z"))
		}
		tw.WriteHeader(h)
		tw.Write(body)
	}
	tw.Close()
	if _, err := readArchive(&buf, nil); !errors.Is(err, ErrBadArchive) || !strings.Contains(err.Error(), "private/z is not in the manifest") {
		t.Errorf("added entry: %v", err)
	}
}

func drop(h *tar.Header, name string, b []byte) (*tar.Header, []byte) {
	if h.Name == name {
		return nil, nil
	}
	return h, b
}

func change(h *tar.Header, name string, b, to []byte) (*tar.Header, []byte) {
	if h.Name == name {
		return h, to
	}
	return h, b
}

func chown(h *tar.Header, name string, b []byte) (*tar.Header, []byte) {
	if h.Name == name {
		h.Uid = 0
		h.Gid = 0
		h.Uid++
	}
	return h, b
}

func rename(h *tar.Header, from, to string, b []byte) (*tar.Header, []byte) {
	if h.Name == from {
		h.Name = to
	}
	return h, b
}

// TestOpenArchive: gzip and zstd (when the zstd program is there) are read by their magic
// numbers, not by the file's name; anything else is no backup.
func TestOpenArchive(t *testing.T) {
	dir := t.TempDir()
	tarData := archive(t, "vps.conf", "ID=\"601\"\n")
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(tarData)
	zw.Close()
	p := filepath.Join(dir, "backup.tar.zst") // a misleading name
	if err := os.WriteFile(p, gz.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	r, closeFn, err := openArchive(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := readArchive(r, nil); err != nil {
		t.Errorf("gzip archive: %v", err)
	}
	closeFn()
	if err := os.WriteFile(p, tarData, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := openArchive(context.Background(), p); !errors.Is(err, ErrBadArchive) {
		t.Errorf("an uncompressed tar: %v, want ErrBadArchive", err)
	}
	var out bytes.Buffer
	c, err := newCompressor(&out)
	if err != nil {
		t.Fatal(err)
	}
	c.w.Write(tarData)
	if err := c.close(false); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, out.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	r, closeFn, err = openArchive(context.Background(), p)
	if err != nil {
		t.Fatalf("%s archive: %v", c.Kind, err)
	}
	defer closeFn()
	if _, err := readArchive(r, nil); err != nil {
		t.Errorf("%s archive: %v", c.Kind, err)
	}
}

func TestSizeString(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 2048: "2.0 KiB", 5 << 20: "5.0 MiB", 3 << 30: "3.00 GiB"} {
		if got := sizeString(n); got != want {
			t.Errorf("sizeString(%d) = %q, want %q", n, got, want)
		}
	}
}
