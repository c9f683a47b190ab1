package cgroup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vpsctl/vpsctl/internal/sysfile"
	"golang.org/x/sys/unix"
)

// readFile returns the content of dir/name without the trailing newline. Group files are
// read and written with plain system calls (package sysfile): a boot touches some forty.
func readFile(dir, name string) (string, error) {
	b, err := sysfile.ReadFile(filepath.Join(dir, name))
	return strings.TrimRight(string(b), "\n"), err
}

// writeFile writes value to dir/name in one write(2): cgroup files parse
// one write as one command, and a rejected value fails that write.
func writeFile(dir, name, value string) error {
	if err := sysfile.WriteFile(filepath.Join(dir, name), []byte(value), unix.O_TRUNC, 0); err != nil {
		return fmt.Errorf("value %q: %w", value, err) // err is a *PathError naming the file
	}
	return nil
}

// writeIfExists is writeFile, skipping files the kernel does not provide
// (a missing controller feature, swap accounting turned off).
func writeIfExists(dir, name, value string) error {
	if err := writeFile(dir, name, value); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// exists reports whether the group at dir ("" = not mounted) has file name.
func exists(dir, name string) bool {
	if dir == "" {
		return false
	}
	_, err := os.Stat(filepath.Join(dir, name))
	return err == nil
}

func readUint(dir, name string) (uint64, error) {
	s, err := readFile(dir, name)
	if err != nil {
		return 0, err
	}
	n, err := parseValue(s)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", filepath.Join(dir, name), err)
	}
	return n, nil
}

func readKeyed(dir, name string) (map[string]uint64, error) {
	s, err := readFile(dir, name)
	if err != nil {
		return nil, err
	}
	m, err := parseKeyed(s)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, name), err)
	}
	return m, nil
}

// statReader reads a group's counter files for Stats and Failures, gathering their errors: a
// file that does not exist, or a dir of "" (a controller not mounted), reads as zero.
type statReader struct{ errs []error }

func (r *statReader) get(dir, name string) uint64 {
	if dir == "" {
		return 0
	}
	v, err := optional(readUint(dir, name))
	r.errs = append(r.errs, err)
	return v
}

func (r *statReader) keyed(dir, name string) map[string]uint64 {
	if dir == "" {
		return nil
	}
	v, err := optional(readKeyed(dir, name))
	r.errs = append(r.errs, err)
	return v
}

func (r *statReader) err() error { return errors.Join(r.errs...) }

// failCounts are a group's failure counts: what Failures returns, and Stats' OOMKills and
// Failcnts.
type failCounts struct{ oomKills, numproc, physpages, swappages uint64 }

// stats is f as Failures returns it.
func (f failCounts) stats() *Stats {
	return &Stats{OOMKills: f.oomKills, Counters: []Counter{
		{Resource: "numproc", Failcnt: f.numproc},
		{Resource: "physpages", Failcnt: f.physpages},
		{Resource: "swappages", Failcnt: f.swappages},
	}}
}

// readFailures is Failures of a group whose counts read reads, or the errors of its reads.
func readFailures(read func(*statReader) failCounts) (*Stats, error) {
	var r statReader
	f := read(&r)
	if err := r.err(); err != nil {
		return nil, err
	}
	return f.stats(), nil
}

// optional turns "file does not exist" into the zero value: Stats reports
// 0 for what a hierarchy does not account.
func optional[T any](v T, err error) (T, error) {
	if errors.Is(err, fs.ErrNotExist) {
		var zero T
		return zero, nil
	}
	return v, err
}

// Delegated files of a group, per kind of hierarchy (cgroup-v2.rst, "Delegation"; v1 has no
// subtree_control or threads, v2 no tasks or clone_children).
var (
	delegatedV1 = []string{"cgroup.procs", "tasks", "cgroup.clone_children"}
	delegatedV2 = []string{"cgroup.procs", "cgroup.subtree_control", "cgroup.threads"}
)

// A delegated cgroup2 group's own subtree is bounded: the kernel's defaults (no limit) would let
// a tenant make groups until the host's memory for them runs out. A guest's systemd makes a few
// groups per unit, a few levels deep: these leave it room many times over.
const (
	maxDescendants = 4096
	maxDepth       = 16
)

// delegate chowns dir and the files that make a group delegated to uid:gid; a cgroup2 group
// (v2) gets its bounds first (cgroup.max.descendants, cgroup.max.depth), files that stay
// host-owned.
func delegate(dir string, v2 bool, uid, gid int) error {
	files := delegatedV1
	if v2 {
		files = delegatedV2
		for f, v := range map[string]int{"cgroup.max.descendants": maxDescendants, "cgroup.max.depth": maxDepth} {
			if err := writeFile(dir, f, strconv.Itoa(v)); err != nil {
				return err
			}
		}
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		return err
	}
	for _, f := range files {
		if err := os.Chown(filepath.Join(dir, f), uid, gid); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// openDir opens directory dir for CLONE_INTO_CGROUP (O_PATH is enough).
func openDir(dir string) (int, error) {
	var fd int
	err := sysfile.Retry(func() (err error) {
		fd, err = unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	return fd, nil
}

// mkdir makes dir, unless it exists, and reports whether it made it (a fresh group, see
// withoutDefaults).
func mkdir(dir string) (made bool, err error) {
	err = os.Mkdir(dir, 0o755)
	if err != nil && !errors.Is(err, fs.ErrExist) {
		return false, err
	}
	return err == nil, nil
}

// poll calls done until it reports true, fails, or timeout passes. The
// interval grows from 1ms to 20ms: short waits end quickly, long ones stay cheap.
func poll(timeout time.Duration, done func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	interval := time.Millisecond
	for {
		ok, err := done()
		if err != nil || ok {
			return err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return ErrTimeout
		}
		time.Sleep(min(interval, left))
		interval = min(2*interval, 20*time.Millisecond)
	}
}

// subtree lists dir and every directory below it, each parent before its
// children. A missing dir yields nothing: groups may vanish while we walk.
func subtree(dir string) ([]string, error) {
	ents, err := sysfile.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := []string{dir}
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		sub, err := subtree(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		out = append(out, sub...)
	}
	return out, nil
}

// treePids returns the processes in cgroup.procs of dir and its subgroups.
func treePids(dir string, into map[int]struct{}) error {
	dirs, err := subtree(dir)
	if err != nil {
		return err
	}
	for _, d := range dirs {
		s, err := readFile(d, "cgroup.procs")
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENODEV) {
			continue // removed meanwhile (ENODEV: rmdir'd while we read it)
		}
		if err != nil {
			return err
		}
		for f := range strings.FieldsSeq(s) {
			pid, err := strconv.Atoi(f)
			if err != nil {
				return fmt.Errorf("%s/cgroup.procs: pid %q: %w", d, f, ErrBadValue)
			}
			into[pid] = struct{}{}
		}
	}
	return nil
}

func sortedKeys(m map[int]struct{}) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// removeTree removes dir and its subgroups, children before parents. While
// the kernel says EBUSY (a task still exiting, a subgroup made meanwhile)
// it walks the tree again, until timeout. cgroupfs directories hold only
// kernel files, so rmdir(2) suffices.
func removeTree(dir string, timeout time.Duration) error {
	// The common case, a group with no subgroups and no tasks, is one rmdir: no walk.
	switch err := sysfile.Retry(func() error { return unix.Rmdir(dir) }); err {
	case nil, unix.ENOENT:
		return nil
	}
	var busy string
	err := poll(timeout, func() (bool, error) {
		dirs, err := subtree(dir)
		if err != nil {
			return false, err
		}
		for _, d := range slices.Backward(dirs) {
			switch err := sysfile.Retry(func() error { return unix.Rmdir(d) }); err {
			case nil, unix.ENOENT:
			case unix.EBUSY:
				busy = d
				return false, nil
			default:
				return false, &os.PathError{Op: "rmdir", Path: d, Err: err}
			}
		}
		return true, nil
	})
	if errors.Is(err, ErrTimeout) {
		return fmt.Errorf("remove %s: %w (%w)", dir, err, &os.PathError{Op: "rmdir", Path: busy, Err: unix.EBUSY})
	}
	return err
}

// killMember SIGKILLs pid if it still belongs to the group. The pidfd is
// opened first and membership checked after, so a PID that was recycled
// between listing and signalling is never hit: either /proc shows the new
// process (not a member, skipped) or the pidfd's process is gone (ESRCH).
func killMember(pid int, member func(pid int) bool) error {
	var fd int
	err := sysfile.Retry(func() (err error) { fd, err = unix.PidfdOpen(pid, 0); return err })
	if err == unix.ESRCH {
		return nil
	}
	if err != nil {
		return os.NewSyscallError("pidfd_open", err)
	}
	defer unix.Close(fd)
	if !member(pid) {
		return nil
	}
	err = sysfile.Retry(func() error { return unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0) })
	if err != nil && err != unix.ESRCH {
		return os.NewSyscallError("pidfd_send_signal", err)
	}
	return nil
}

// memberFunc reports whether a process is in group rel or below, judged by
// the lines of /proc/PID/cgroup that match.
func memberFunc(rel string, match func(ProcCgroupLine) bool) func(int) bool {
	return func(pid int) bool {
		lines, err := readProcCgroup(pid)
		if err != nil {
			return false // gone, or unreadable: never signal what we cannot place
		}
		for _, l := range lines {
			if match(l) && IsDescendant(rel, l.Path) {
				return true
			}
		}
		return false
	}
}

// freezeKill kills a group through the freezer, for hierarchies without
// cgroup.kill: a frozen group cannot fork, so the PIDs listed are all there
// is and none of them can exit and be recycled before the signal. Freezing
// is best effort (the pidfd check keeps killing safe without it), and the
// round repeats until the group is empty.
func freezeKill(m Manager, member func(int) bool, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	// An empty group is the common case (a stop that already killed the VPS's PID namespace,
	// or a repair): freezing and thawing it would cost two state changes for nothing. A task
	// joining right after this read joins on its own behalf (exec), not the VPS's.
	if pids, err := m.Pids(); err == nil && len(pids) == 0 {
		return nil
	}
	for {
		_ = m.Freeze(min(time.Until(deadline), 2*time.Second))
		pids, err := m.Pids()
		for _, pid := range pids {
			if err == nil {
				err = killMember(pid, member)
			}
		}
		// Thaw even after an error: the SIGKILLs are delivered on thaw.
		if terr := m.Thaw(); err == nil && !errors.Is(terr, ErrNotSupported) {
			err = terr
		}
		if err != nil {
			return err
		}
		err = m.WaitEmpty(min(time.Until(deadline), 200*time.Millisecond))
		if !errors.Is(err, ErrTimeout) || time.Now().After(deadline) {
			return err
		}
	}
}

// wholeDisks returns "MAJ:MIN" of every whole disk: /sys/block lists disks,
// never partitions.
func wholeDisks() ([]string, error) {
	ents, err := sysfile.ReadDir("/sys/block")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		dev, err := readFile(filepath.Join("/sys/block", e.Name()), "dev")
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, dev)
	}
	return out, nil
}

// writeDevices writes one rule per disk to dir/name (the kernel parses one
// rule per write), skipping disks the kernel refuses with ENODEV (gone
// since listing, or without a request queue to throttle).
func writeDevices(dir, name string, disks []string, rule func(dev string) string) error {
	for _, d := range disks {
		if err := writeFile(dir, name, rule(d)); err != nil && !errors.Is(err, unix.ENODEV) {
			return err
		}
	}
	return nil
}
