package cgroup

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// bothKinds makes a test group named prefix+"1" through New (v1 on this kind of host) and one
// named prefix+"2" in a cgroup2 tree.
func bothKinds(prefix string) map[string]func(t *testing.T) Manager {
	return map[string]func(t *testing.T) Manager{
		"v1": func(t *testing.T) Manager { return newGroup(t, prefix+"1", New) },
		"v2": func(t *testing.T) Manager { return newV2(t, prefix+"2") },
	}
}

// TestDelegate: Delegate gives the group's directory and its delegated files to the VPS's root;
// its limits stay host root's. A second group made under the same parent (the leaf made
// first, with no walk over the parents) is a working one too: its cpuset is filled in.
func TestDelegate(t *testing.T) {
	const id = 3000000
	for kind, mk := range bothKinds("d") {
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

// TestSpares: a v1 group's Spares are the slots beside it (none in a hybrid host's cgroup2
// tree, which cannot rename); Create renames a spare into place, one slot after the other, and
// makes a new group once none is left; a spare (an empty cpuset, as plain mkdir leaves it) is a
// working group once taken.
func TestSpares(t *testing.T) {
	m := newGroup(t, "s1", New)
	f1, ok := m.(*fs1)
	if !ok {
		t.Skip("cgroup v2 host: no spare groups (cgroup2 has no rename)")
	}
	slots := m.Spares()
	want := 0
	for _, h := range f1.hiers {
		if h.ctrls[0] != unifiedName {
			want += len(spareSlots)
		}
	}
	if len(slots) != want || want == 0 {
		t.Fatalf("Spares: %d slots %v, want %d", len(slots), slots, want)
	}
	parents := map[string]bool{}
	for _, dir := range m.Paths() {
		parents[filepath.Dir(dir)] = true
	}
	ino := map[string]uint64{}
	for _, s := range slots {
		if !parents[filepath.Dir(s)] || !strings.HasPrefix(filepath.Base(s), ".spare-") {
			t.Fatalf("slot %s is not a spare beside the group", s)
		}
		if err := os.Mkdir(s, 0o755); err != nil {
			t.Fatal(err)
		}
		var st syscall.Stat_t
		if err := syscall.Stat(s, &st); err != nil {
			t.Fatal(err)
		}
		ino[s] = st.Ino
	}
	inoOf := func(p string) uint64 {
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil {
			return 0
		}
		return st.Ino
	}
	for i, name := range []string{"s2", "s3", "s4"} {
		g, err := New(testParent + "/" + name)
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Create(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for c, dir := range g.Paths() {
			slot := filepath.Join(filepath.Dir(dir), fmt.Sprintf(".spare-%d", i))
			switch {
			case c == unifiedName:
				if _, err := os.Stat(slot); err == nil {
					t.Errorf("a spare in the cgroup2 tree: %s", slot)
				}
			case i < len(spareSlots):
				if inoOf(dir) != ino[slot] || inoOf(slot) != 0 {
					t.Errorf("%s %s: not the spare %s renamed into place", name, c, slot)
				}
			default:
				if inoOf(dir) == 0 {
					t.Errorf("%s %s: not made", name, c)
				}
			}
		}
		if cpus := read(t, g.Paths()["cpuset"], "cpuset.cpus"); cpus == "" {
			t.Errorf("%s: empty cpuset.cpus", name)
		}
		// A working group: a process moves in.
		cmd := start(t, g, "exit 0")
		if err := waitCmd(t, cmd, 5*time.Second); err != nil {
			t.Errorf("%s: a process in the group: %v", name, err)
		}
	}
}

// TestWithoutDefaults: what a new group already has is dropped, anything else is kept.
func TestWithoutDefaults(t *testing.T) {
	def := &Resources{MemoryBytes: ptr(int64(-1)), CPUs: ptr(0), CPULimitPct: ptr(0), CPUUnits: ptr(1000),
		NumProc: ptr(int64(-1)), IOLimitBps: ptr(int64(0)), Devices: []DeviceRule{{Type: 'c', Major: 1, Minor: 3, Access: "rwm"}}}
	got := withoutDefaults(def)
	if got.MemoryBytes != nil || got.SwapBytes != nil || got.CPUs != nil || got.CPULimitPct != nil || got.CPUUnits != nil ||
		got.NumProc != nil || got.IOLimitBps != nil || len(got.Devices) != 1 {
		t.Errorf("defaults kept: %+v", got)
	}
	if def.MemoryBytes == nil || def.CPUUnits == nil {
		t.Error("the caller's Resources changed")
	}
	set := &Resources{MemoryBytes: ptr(int64(-1)), SwapBytes: ptr(int64(0)), CPUs: ptr(0), CPULimitPct: ptr(50),
		CPUUnits: ptr(500), NumProc: ptr(int64(40)), IOLimitBps: ptr(int64(1 << 20)), IOWeight: ptr(100)}
	got = withoutDefaults(set)
	if got.MemoryBytes == nil || got.SwapBytes == nil || got.CPULimitPct == nil || got.CPUs == nil || got.CPUUnits == nil ||
		got.NumProc == nil || got.IOLimitBps == nil || got.IOWeight == nil {
		t.Errorf("a limit dropped: %+v", got)
	}
}

// TestFreshSet: the first Set on the group Create just made writes only what differs from a new
// group's values (a value changed behind its back stays); later Sets, and Sets on a group it did
// not make, write every value.
func TestFreshSet(t *testing.T) {
	for kind, mk := range bothKinds("f") {
		t.Run(kind, func(t *testing.T) {
			m := mk(t)
			dir := m.Paths()["pids"]
			if kind == "v2" {
				dir = m.Paths()[""]
			}
			if dir == "" {
				t.Skip("no pids controller")
			}
			if err := os.WriteFile(filepath.Join(dir, "pids.max"), []byte("7"), 0o644); err != nil {
				t.Skip("pids.max not writable here:", err)
			}
			def := &Resources{NumProc: ptr(int64(-1)), CPUUnits: ptr(1000)}
			if err := m.Set(def); err != nil {
				t.Fatal(err)
			}
			if got := read(t, dir, "pids.max"); got != "7" {
				t.Errorf("fresh group: pids.max %s after a default Set, want 7 (not written)", got)
			}
			if err := m.Set(&Resources{NumProc: ptr(int64(9))}); err != nil {
				t.Fatal(err)
			}
			if got := read(t, dir, "pids.max"); got != "9" {
				t.Errorf("fresh group: pids.max %s, want 9", got)
			}
			again, err := New(m.Path())
			if kind == "v2" {
				again, err = newV2At(v2Mount(t), m.Path())
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := again.Set(def); err != nil {
				t.Fatal(err)
			}
			if got := read(t, dir, "pids.max"); got != "max" {
				t.Errorf("existing group: pids.max %s after a default Set, want max", got)
			}
		})
	}
}
