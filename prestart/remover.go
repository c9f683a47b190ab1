package prestart

import (
	"os"
	"os/exec"
	"strconv"

	"github.com/vpsctl/vpsctl/internal/sysfile"
)

// StageEnv is the environment variable that makes a process vpsctl starts one of its programs
// (prestart.c): "NAME:FD" or "NAME". Only vpsctl sets it.
const StageEnv = "_VPSCTL_STAGE"

// RemoveJob is the background remover's work (remover.c): close the held files (a VPS's mount
// namespace, whose last close unmounts its tree), remove Groups (cgroup directories), let go of
// the VPS's lock (VPSLock, if not nil; its file VPSLockPath is removed first unless it is ""),
// make the Spares groups that are missing, and last delete Dir ("" for none) under DirLock.
type RemoveJob struct {
	Dir         string
	DirLock     *os.File
	Groups      []string
	VPSLock     *os.File
	VPSLockPath string
	Spares      []string
	Hold        []*os.File
}

// files are the job's descriptors in the order the remover finds them (from fd 3 on), and msg
// its message naming them so.
func (j RemoveJob) msg(op string) (files []*os.File, b []byte, err error) {
	m := &Msg{}
	if op != "" {
		m.Add("op", op)
	}
	m.Add("dir", j.Dir)
	files = append(files, j.DirLock)
	m.AddInt("dirlock", 3)
	if j.VPSLock != nil {
		files = append(files, j.VPSLock)
		m.AddInt("lock", 4).Add("lockpath", j.VPSLockPath)
	}
	for _, f := range j.Hold {
		m.AddInt("held", 3+len(files))
		files = append(files, f)
	}
	m.AddAll("group", j.Groups).AddAll("spare", j.Spares)
	b, err = m.Bytes()
	return files, b, err
}

// Remove carries out job in a background process (no Go runtime, its own session, the files at
// the lowest CPU and I/O priority) and returns once that process runs: Dir is a destroyed VPS's,
// renamed into the state root's tmp/, with everything below it unmounted by the caller. The
// process holds DirLock and VPSLock until it has done their parts, so a command waiting on the
// VPS's lock finds its groups and mounts gone. It is this process's spawner when it has one (no
// exec), else a new process, reaped by a goroutine or, once the caller exited, by the host's init.
func Remove(job RemoveJob) error {
	if job.DirLock == nil {
		null, err := sysfile.OpenFile(os.DevNull, os.O_RDONLY, 0) // fd 3's place
		if err != nil {
			return err
		}
		defer null.Close()
		job.DirLock = null
	}
	if reclaimBySpawner(job) == nil {
		return nil
	}
	files, b, err := job.msg("")
	if err != nil {
		return err
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	defer pr.Close()
	cmd := exec.Command("/proc/self/exe")
	cmd.Args[0] = "vpsctl-reclaim"
	// The message's pipe goes last: the job's descriptors keep the numbers the message names.
	fd := 3 + len(files)
	cmd.Env = []string{StageEnv + "=remover:" + strconv.Itoa(fd)}
	cmd.ExtraFiles = append(files, pr)
	if err := cmd.Start(); err != nil {
		pw.Close()
		return err
	}
	_, err = pw.Write(b) // a pipe holds far more than a job's message: no deadlock
	pw.Close()
	go cmd.Wait()
	return err
}
