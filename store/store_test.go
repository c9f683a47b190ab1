package store

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/vpsctl/vpsctl/container"
)

// TestWriteFileVolatile: the file is replaced whole, with its mode, and no temporary file is
// left; a write into a missing directory fails and creates nothing.
func TestWriteFileVolatile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "stop-requested")
	for _, data := range []string{"123\n", "4\n"} {
		if err := WriteFileVolatile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(p); err != nil || string(b) != data {
			t.Fatalf("read back %q, %v; want %q", b, err, data)
		}
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode: %v %v", fi, err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("left beside the file: %v", ents)
	}
	if err := WriteFileVolatile(filepath.Join(dir, "missing", "f"), []byte("x"), 0o600); err == nil {
		t.Fatal("write into a missing directory succeeded")
	}
}

// TestRemoveReclaim: Remove hands the renamed-away directory (in tmp/, a destroy's staging
// name) to Reclaim; when Reclaim fails, Remove deletes it itself. Either way the VPS is gone.
func TestRemoveReclaim(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	mk := func(id container.ID) {
		if err := os.MkdirAll(filepath.Join(s.VPSDir(id), "private", "etc"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(s.Path(id, "vps.conf"), []byte("ID=\"1\"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var handed string
	s.Reclaim = func(job ReclaimJob) error {
		dir := job.Dir
		handed = dir
		// The lock handed over is held: a sweep (another command's) leaves the directory be.
		if f, err := lockDir(dir, true); err == nil {
			f.Close()
			t.Error("Reclaim was handed a directory that is not locked")
		}
		return nil
	}
	mk(1)
	if err := s.removeForTest(1); err != nil {
		t.Fatal(err)
	}
	if s.Exists(1) {
		t.Fatal("VPS 1 exists after Remove")
	}
	if !strings.HasPrefix(handed, filepath.Join(s.Root, "tmp", "destroy-")) {
		t.Fatalf("Reclaim got %q, want a destroy staging directory in tmp/", handed)
	}
	if _, err := os.Stat(filepath.Join(handed, "vps", "vps.conf")); err != nil {
		t.Fatalf("the directory handed over lacks the VPS's files: %v", err)
	}
	os.RemoveAll(handed)

	s.Reclaim = func(ReclaimJob) error { return errors.New("cannot start the remover") }
	mk(2)
	if err := s.removeForTest(2); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(filepath.Join(s.Root, "tmp")); len(ents) != 0 {
		t.Fatalf("failed reclaim: tmp/ not emptied by Remove: %v", ents)
	}
	if err := s.removeForTest(2); !errors.Is(err, ErrNotExist) {
		t.Fatalf("Remove of a removed VPS: %v, want ErrNotExist", err)
	}
}

// TestSweepLocked: a staging directory of a dead process is removed by Sweep, unless someone
// holds its lock (a background remover still deleting it); once the lock is gone, it is.
func TestSweepLocked(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// A PID that is not running: a child of ours, reaped.
	p, err := os.StartProcess("/bin/true", []string{"true"}, &os.ProcAttr{})
	if err != nil {
		t.Fatal(err)
	}
	p.Wait()
	dir := filepath.Join(s.Root, "tmp", "destroy-"+strconv.Itoa(p.Pid)+"-x")
	if err := os.MkdirAll(filepath.Join(dir, "vps", "private"), 0o700); err != nil {
		t.Fatal(err)
	}
	lock, err := lockDir(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	s.Sweep()
	if _, err := os.Stat(filepath.Join(dir, "vps", "private")); err != nil {
		t.Fatalf("Sweep removed a locked directory: %v", err)
	}
	lock.Close()
	s.Sweep()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("Sweep left an unlocked directory of a dead process: %v", err)
	}
}

// removeForTest is destroy's commit without a job for the remover but the files.
func (s *Store) removeForTest(id container.ID) error {
	_, err := s.RemoveJob(id, ReclaimJob{})
	return err
}

// TestStageRun: a staged run state and join record are invisible until CommitRun puts them in
// place (run state and record both, or the record left as it was when none was staged); a
// staged pair never committed is removed by ClearRun; a commit with nothing staged fails.
func TestStageRun(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const id = container.ID(7)
	if err := os.MkdirAll(s.Path(id, ""), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := s.CommitRun(id); err == nil {
		t.Fatal("CommitRun with nothing staged succeeded")
	}
	if err := s.StageRun(id, &RunState{InitPID: 42, Phase: "running"}, []byte("pid=42\x00")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LoadRun(id); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("run state before the commit: %v, want none", err)
	}
	if err := s.CommitRun(id); err != nil {
		t.Fatal(err)
	}
	if r, err := s.LoadRun(id); err != nil || r.InitPID != 42 {
		t.Fatalf("run state after the commit: %+v, %v", r, err)
	}
	if b, err := os.ReadFile(s.Path(id, joinFile)); err != nil || string(b) != "pid=42\x00" {
		t.Fatalf("join record after the commit: %q, %v", b, err)
	}
	if fi, err := os.Stat(s.Path(id, "run.json")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("run state's mode: %v, %v", fi, err)
	}
	// A boot without a record: the run state alone moves.
	if err := s.StageRun(id, &RunState{InitPID: 43}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.CommitRun(id); err != nil {
		t.Fatal(err)
	}
	if r, _ := s.LoadRun(id); r == nil || r.InitPID != 43 {
		t.Fatalf("run state after the second commit: %+v", r)
	}
	// Staged and never committed (a boot that failed): ClearRun leaves nothing.
	if err := s.StageRun(id, &RunState{InitPID: 44}, []byte("pid=44\x00")); err != nil {
		t.Fatal(err)
	}
	s.ClearRun(id)
	if ents, _ := os.ReadDir(s.Path(id, "")); len(ents) != 0 {
		t.Fatalf("left after ClearRun: %v", ents)
	}
}
