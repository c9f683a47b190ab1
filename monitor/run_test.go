package monitor

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/vpsctl/vpsctl/cgroup"
	"github.com/vpsctl/vpsctl/container"
	"github.com/vpsctl/vpsctl/store"
)

// TestSaveRunOnce: a boot's run state and join record reach their files whether they were staged
// and put in place (the common path), staged but not put in place, or never staged; each way the
// boot is counted once among the recent boots the reboot-loop hold-back goes by.
func TestSaveRunOnce(t *testing.T) {
	// store.StageRun's staged run state: in the way (a directory), staging fails; gone after
	// staging, the commit does. A renamed staged file fails the staged checks below.
	const stagedRun = ".run.json.next"
	for _, tc := range []struct {
		name               string
		before, afterStage func(dir string) error
		staged             bool
	}{
		{"committed", nil, nil, true},
		{"commit failed", nil, func(dir string) error { return os.Remove(filepath.Join(dir, stagedRun)) }, true},
		{"not staged", func(dir string) error { return os.Mkdir(filepath.Join(dir, stagedRun), 0o700) }, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := store.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			const id = container.ID(7)
			if err := os.MkdirAll(st.VPSDir(id), 0o700); err != nil {
				t.Fatal(err)
			}
			cg, err := cgroup.New("vpsctl/7")
			if err != nil {
				t.Fatal(err)
			}
			m := &monitor{st: st, id: id, boots: 3}
			b := &bootState{pid: os.Getpid(), cg: cg}
			c := &store.Config{}
			if tc.before != nil {
				if err := tc.before(st.VPSDir(id)); err != nil {
					t.Fatal(err)
				}
			}
			m.stageRun(c, b)
			if b.staged != tc.staged {
				t.Fatalf("staged = %v, want %v", b.staged, tc.staged)
			}
			if tc.afterStage != nil {
				if err := tc.afterStage(st.VPSDir(id)); err != nil {
					t.Fatal(err)
				}
			}
			m.saveRun(c, b)
			r, err := st.LoadRun(id)
			if err != nil {
				t.Fatal(err)
			}
			if r.InitPID != b.pid || r.Phase != "running" || r.Boots != 3 || len(r.RecentBoots) != 1 {
				t.Fatalf("run state: init %d, phase %q, boots %d, recent boots %v; want %d, running, 3, one",
					r.InitPID, r.Phase, r.Boots, r.RecentBoots, b.pid)
			}
			join, err := os.ReadFile(st.Path(id, "join"))
			if err != nil || len(b.join) == 0 || !bytes.Equal(join, b.join) {
				t.Fatalf("join record %q (%v), want the boot's %q", join, err, b.join)
			}
		})
	}
}
