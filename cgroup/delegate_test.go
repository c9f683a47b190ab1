package cgroup

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestDelegate: Delegate gives the group's directory and its delegated files to the VPS's root;
// its limits stay host root's. A second group made under the same parent (the leaf made
// first, with no walk over the parents) is a working one too: its cpuset is filled in.
func TestDelegate(t *testing.T) {
	const id = 3000000
	kinds := map[string]func(t *testing.T) Manager{
		"v1": func(t *testing.T) Manager { return newGroup(t, "d1", New) },
		"v2": func(t *testing.T) Manager { return newV2(t, "d2") },
	}
	for kind, mk := range kinds {
		t.Run(kind, func(t *testing.T) {
			m := mk(t)
			if err := m.Delegate(id, id); err != nil {
				t.Fatal(err)
			}
			owner := func(p string) int {
				var st syscall.Stat_t
				if err := syscall.Stat(p, &st); err != nil {
					return -1
				}
				return int(st.Uid)
			}
			for c, dir := range m.Paths() {
				files, limit := delegatedV1, "notify_on_release"
				if c == "" || c == unifiedName {
					files, limit = delegatedV2, "cgroup.max.descendants"
				}
				if owner(dir) != id {
					t.Errorf("%s: directory owned by %d, want %d", c, owner(dir), id)
				}
				for _, f := range files {
					if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
						t.Errorf("%s: delegated file %s missing: %v", c, f, err)
					} else if owner(filepath.Join(dir, f)) != id {
						t.Errorf("%s: %s owned by %d, want %d", c, f, owner(filepath.Join(dir, f)), id)
					}
				}
				if owner(filepath.Join(dir, limit)) != 0 {
					t.Errorf("%s: %s owned by %d, want host root", c, limit, owner(filepath.Join(dir, limit)))
				}
			}
			if kind != "v1" {
				return
			}
			sib, err := New(testParent + "/d1b")
			if err != nil {
				t.Fatal(err)
			}
			defer sib.Destroy(0)
			if err := sib.Create(); err != nil {
				t.Fatal(err)
			}
			if dir, err := asFS1(t, sib).dir("cpuset"); err == nil {
				if read(t, dir, "cpuset.cpus") == "" || read(t, dir, "cpuset.mems") == "" {
					t.Fatal("a group made under an existing parent: cpuset.cpus/mems left empty")
				}
			}
		})
	}
}
