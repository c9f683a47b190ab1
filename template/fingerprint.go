package template

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/vpsctl/vpsctl/store"
)

// A VPS's private area is the upper layer of an overlay on its template: it means something
// only over the very tree it was made on. Two hosts' templates of one name may differ (built
// on other days, from other packages), so a migration compares fingerprints, not names.

// fingerprintFile caches a template's fingerprint in its directory: a template never changes
// once built (a rebuild replaces the whole directory, and with it the cache).
const fingerprintFile = "fingerprint"

// Fingerprint returns a digest of template name's tree: every entry's path, type, mode,
// owner, size (of files), modification time and link target.
func Fingerprint(st *store.Store, name string) (string, error) {
	rootfs, err := Rootfs(st, name)
	if err != nil {
		return "", err
	}
	cache := filepath.Join(st.TemplateDir(name), fingerprintFile)
	if b, err := os.ReadFile(cache); err == nil && len(strings.TrimSpace(string(b))) == 64 {
		return strings.TrimSpace(string(b)), nil
	}
	h := sha256.New()
	err = filepath.WalkDir(rootfs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(rootfs, p)
		st := fi.Sys().(*syscall.Stat_t)
		var target string
		if d.Type()&fs.ModeSymlink != 0 {
			target, _ = os.Readlink(p)
		}
		size := int64(0) // a directory's size depends on its file system's history
		if d.Type().IsRegular() {
			size = fi.Size()
		}
		_, err = fmt.Fprintf(h, "%q %o %d %d %d %d %q\n", rel, st.Mode, st.Uid, st.Gid, size, fi.ModTime().UnixNano(), target)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("template %s: fingerprint: %w", name, err)
	}
	fp := hex.EncodeToString(h.Sum(nil))
	os.WriteFile(cache, []byte(fp+"\n"), 0o644) // a cache: a failure costs a walk next time
	return fp, nil
}

// Source returns the line a template was built from (template list's SOURCE).
func Source(st *store.Store, name string) string {
	b, _ := os.ReadFile(filepath.Join(st.TemplateDir(name), "source"))
	return strings.TrimSpace(string(b))
}

// Receive makes template name from a copy of another host's (a migration brings the template
// of the VPS it moves): fill writes the tree into the empty rootfs it is given. The copy keeps
// the other template's fingerprint, so later migrations of the same template find it.
func Receive(st *store.Store, name, source, fingerprint string, fill func(rootfs string) error) error {
	return build(st, name, source, false, io.Discard, func(rootfs string) error {
		if err := fill(rootfs); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(filepath.Dir(rootfs), fingerprintFile), []byte(fingerprint+"\n"), 0o644)
	})
}
