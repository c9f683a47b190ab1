// Package template manages OS templates: root filesystems that VPSs are created from.
//
// A template lives in STATE/templates/NAME/rootfs, owned by host root, and is never written to
// after it is built: VPSs share it read-only as the lower layer of an overlay, with their own
// changes in their private area (so create is O(1) and page cache is shared). Templates are
// built or imported in the state root's tmp/ and renamed into place, so a template either exists
// whole or not at all.
package template

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/vpsctl/vpsctl/internal/safetext"
	"github.com/vpsctl/vpsctl/internal/timerslack"
	"github.com/vpsctl/vpsctl/store"
)

// Sentinels.
var (
	ErrBadName = errors.New("bad template name")
	ErrExist   = errors.New("template already exists")
	ErrSource  = errors.New("bad template source")
)

// ValidateName checks a template name: 1..64 of [a-z0-9._-], starting with a letter or digit.
func ValidateName(s string) error {
	if s == "" || len(s) > 64 || s[0] == '.' || s[0] == '-' {
		return fmt.Errorf("%w %q", ErrBadName, s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w %q: character %q not allowed", ErrBadName, s, c)
		}
	}
	return nil
}

// Rootfs returns the root filesystem directory of template name.
func Rootfs(st *store.Store, name string) (string, error) {
	if err := ValidateName(name); err != nil {
		return "", err
	}
	p := filepath.Join(st.TemplateDir(name), "rootfs")
	if fi, err := os.Stat(p); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("template %q: %w", name, store.ErrNoTemplate)
	}
	return p, nil
}

// Info describes a template.
type Info struct {
	Name   string `json:"name"`
	Rootfs string `json:"rootfs"`
	Source string `json:"source"`
}

// List returns all templates, sorted by name.
func List(st *store.Store) ([]Info, error) {
	ents, err := os.ReadDir(filepath.Join(st.Root, "templates"))
	if err != nil {
		return nil, err
	}
	var out []Info
	for _, e := range ents {
		if ValidateName(e.Name()) != nil {
			continue
		}
		rf, err := Rootfs(st, e.Name())
		if err != nil {
			continue
		}
		src, _ := os.ReadFile(filepath.Join(st.TemplateDir(e.Name()), "source"))
		out = append(out, Info{Name: e.Name(), Rootfs: rf, Source: strings.TrimSpace(string(src))})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Remove deletes template name. The caller has checked that no VPS uses it.
func Remove(st *store.Store, name string) error {
	if _, err := Rootfs(st, name); err != nil {
		return err
	}
	stage, err := st.StageDir("tpl-rm")
	if err != nil {
		return err
	}
	if err := os.Rename(st.TemplateDir(name), filepath.Join(stage, "t")); err != nil {
		os.Remove(stage)
		return err
	}
	return store.RemoveAll(stage)
}

// build runs fill on a fresh staging rootfs, drops its device nodes (saying so on progress),
// and moves the result into place as template name. replace allows overwriting an existing
// template (a rebuild).
func build(st *store.Store, name, source string, replace bool, progress io.Writer, fill func(rootfs string) error) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	if !replace {
		if _, err := Rootfs(st, name); err == nil {
			return fmt.Errorf("template %q: %w", name, ErrExist)
		}
	}
	stage, err := st.StageDir("tpl")
	if err != nil {
		return err
	}
	defer store.RemoveAll(stage)
	rootfs := filepath.Join(stage, "t", "rootfs")
	if err := os.MkdirAll(rootfs, 0o755); err != nil {
		return err
	}
	if err := fill(rootfs); err != nil {
		return err
	}
	dropped, err := DropDevices(rootfs)
	if err != nil {
		return err
	}
	if len(dropped) > 0 {
		fmt.Fprintf(progress, "template %s: dropped %d device %s (%s)\n", name, len(dropped),
			plural(len(dropped), "node", "nodes"), listSome(dropped, 8))
	}
	if err := os.WriteFile(filepath.Join(stage, "t", "source"), []byte(source+"\n"), 0o644); err != nil {
		return err
	}
	dst := st.TemplateDir(name)
	if replace {
		old := filepath.Join(stage, "old")
		if err := os.Rename(dst, old); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if err := os.Rename(filepath.Join(stage, "t"), dst); err != nil {
		if errors.Is(err, unix.EEXIST) || errors.Is(err, unix.ENOTEMPTY) {
			// Another build of the same name finished first.
			return fmt.Errorf("template %q: %w", name, ErrExist)
		}
		return err
	}
	return nil
}

// Import makes template name from src: a directory holding a root filesystem (e.g. a
// debootstrap tree), or a .tar, .tar.gz or .tar.xz of one. Ownership, modes and links are
// preserved (cp -a / tar --numeric-owner); device nodes are dropped (DropDevices).
func Import(st *store.Store, name, src string, progress io.Writer) error {
	fi, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrSource, err)
	}
	return build(st, name, "import "+src, false, progress, func(rootfs string) error {
		var cmd *exec.Cmd
		if fi.IsDir() {
			if _, err := os.Stat(filepath.Join(src, "bin")); err != nil {
				if _, err2 := os.Stat(filepath.Join(src, "usr")); err2 != nil {
					return fmt.Errorf("%w: %s has neither bin/ nor usr/: not a root filesystem", ErrSource, src)
				}
			}
			fmt.Fprintf(progress, "copying %s\n", src)
			cmd = exec.Command("cp", "-a", "--reflink=auto", src+"/.", rootfs+"/")
		} else {
			fmt.Fprintf(progress, "unpacking %s\n", src)
			cmd = exec.Command("tar", "--numeric-owner", "-xpf", src, "-C", rootfs)
		}
		out, err := timerslack.WithHostOutput(cmd.CombinedOutput)
		if err != nil {
			return fmt.Errorf("%w: %s: %v: %s", ErrSource, src, err, strings.TrimSpace(string(out)))
		}
		return nil
	})
}

// DropDevices removes every character and block device node below root and returns their
// paths relative to root, in walk order. A template is shared read-only by every VPS made
// from it, and a device node in it is a device in each of them: debootstrap trees and many
// tarballs carry dev/console (5:1, the host's console), dev/null and the like. A VPS's /dev is
// built by vpsctl at boot; only --devices grants a device. FIFOs and sockets stay: they reach
// nothing outside the VPS, and the host never opens a tenant's path without checking it is a
// regular file. Overlay whiteouts (0:0 character devices) are device nodes too, and go.
//
// The walk does not follow symbolic links and removing a node never does (unlink(2)), so a
// tree cannot make it remove anything outside root.
func DropDevices(root string) ([]string, error) {
	var dropped []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&(fs.ModeDevice|fs.ModeCharDevice) == 0 {
			return nil
		}
		if err := os.Remove(p); err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		dropped = append(dropped, rel)
		return nil
	})
	if err != nil {
		return dropped, fmt.Errorf("drop device nodes: %w", err)
	}
	return dropped, nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// listSome lists up to max of names, escaped (they come from the imported tree, which may be
// anyone's), and says how many more there are.
func listSome(names []string, max int) string {
	var shown []string
	for i, n := range names {
		if i == max {
			shown = append(shown, fmt.Sprintf("and %d more", len(names)-max))
			break
		}
		shown = append(shown, safetext.Escape(n))
	}
	return strings.Join(shown, ", ")
}
