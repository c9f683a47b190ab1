package criu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vpsctl/vpsctl/internal/timerslack"
	"golang.org/x/sys/unix"
)

// Log files criu writes into the images directory (its default work dir).
const (
	DumpLog    = "dump.log"
	RestoreLog = "restore.log"
	// DefaultPidFile is used when RestoreOptions.PidFile is empty.
	DefaultPidFile = "restore.pid"
)

var (
	// ErrCRIU wraps every failure of a criu run (non-zero exit, killed,
	// timed out); such failures are an *[Error].
	ErrCRIU = errors.New("criu failed")
	// ErrPdeathSig: the restored root task had PR_SET_PDEATHSIG set when it
	// was dumped. CRIU restores it, and with --restore-detached the root's
	// parent is criu itself, which exits right after the restore: the
	// kernel then sends the signal and the restored VPS dies at once.
	// Launch VPS inits without a parent-death signal if they are to be
	// checkpointed (only `criu swrk` with restore-sibling avoids this).
	ErrPdeathSig = errors.New("restored root task had a parent-death signal and was killed when criu exited")
)

// pdeathWarning is what criu logs in that case (cr-restore.c).
const pdeathWarning = "Root task has pdeath_sig configured"

// logTailLines is how much of criu's log an error quotes when the log has no error line.
const logTailLines = 12

// firstErrorLines is how many of criu's first error lines an error quotes.
const firstErrorLines = 5

// harmless are error lines criu logs on every run on some hosts and that never cause a
// failure: they are left out of an [Error]'s first lines.
var harmless = []string{
	"Can't setup RLIMIT_NOFILE for self", // without CAP_SYS_RESOURCE in criu's own user namespace
}

// Error is a failed criu run: criu's first error lines, which name the cause (what follows
// them is mostly the cleanup's noise), and where its whole log is. It wraps [ErrCRIU] and the
// cause of the failure (an exit status, or the end of the caller's context).
type Error struct {
	Op    string   // "dump" or "restore"
	Err   error    // the run's own failure
	First []string // criu's first error lines, or the log's last lines when it has none
	Log   string   // path of criu's log; a caller that moves it sets the new path
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "criu %s: %v", e.Op, e.Err)
	if len(e.First) > 0 {
		b.WriteString("; criu's first errors:")
		for _, l := range e.First {
			b.WriteString("\n  " + l)
		}
	}
	if e.Log != "" {
		b.WriteString("\ncriu's log: " + e.Log)
	}
	return b.String()
}

func (e *Error) Unwrap() []error { return []error{ErrCRIU, e.Err} }

// faultNoBreakpoints is CRIU_FAULT=130 (FI_NO_BREAKPOINTS): see the package
// doc for why it is always set.
const faultNoBreakpoints = "CRIU_FAULT=130"

// criuEnv is the environment criu runs with: ours, minus any CRIU_FAULT (a
// stray fatal fault number would make criu fail on purpose), plus 130.
func criuEnv() []string {
	env := slices.DeleteFunc(os.Environ(), func(s string) bool { return strings.HasPrefix(s, "CRIU_FAULT=") })
	return append(env, faultNoBreakpoints)
}

// DumpOptions describe one `criu dump`.
type DumpOptions struct {
	Pid       int    // host PID of the tree's root (the VPS init as the host sees it)
	Root      string // host path of the tree's root filesystem (--root)
	ImagesDir string // created (0700) if missing; receives the images and dump.log
	// LeaveRunning keeps the tree running after the dump (--leave-running);
	// otherwise criu kills it once the images are complete.
	LeaveRunning  bool
	ManageCgroups bool // --manage-cgroups: save cgroup (v1 and v2) properties
	// External are --external values, e.g. "net[4026532008]:extnet" for a
	// network namespace to re-attach on restore with InheritFds["extnet"],
	// "mnt[/dev/console]:console" for a bind mount, or "tty[RDEV:DEV]".
	External []string
	// NetworkLock is "iptables" (criu's default, needs iptables-restore),
	// "nftables" (built in via libnftables), "skip", or "" for the default.
	NetworkLock string
	// TCPEstablished dumps established TCP connections (--tcp-established): their sockets are
	// put in repair mode and closed silently, the peer sees nothing until the restore.
	TCPEstablished bool
	// FreezeCgroup is the freezer group (v1) or cgroup2 group of the tree (--freeze-cgroup):
	// criu freezes it to seize the tasks, and a group that was frozen before stays frozen
	// after a dump that leaves the tree running.
	FreezeCgroup string
	// CgroupRoot is the group whose whole subtree is dumped (--cgroup-root), empty groups
	// included; criu otherwise walks from the root task's own group only.
	CgroupRoot string
	// IrmapScanPaths are directories (inside the tree's root) searched for the paths of
	// watched inodes whose file handles cannot be opened (--irmap-scan-path).
	IrmapScanPaths []string
	// FileLocks dumps the file locks the tree holds (--file-locks; criu refuses a tree that
	// holds any otherwise). The restore needs it as well.
	FileLocks bool
	ExtraArgs []string  // appended verbatim
	Log       io.Writer // criu's stdout and stderr (nil: discarded); the full log is ImagesDir/dump.log
}

// Dump checkpoints the process tree rooted at o.Pid into o.ImagesDir:
//
//	criu dump --tree PID --root ROOT --images-dir DIR --log-file dump.log -v4 ...
//
// with CRIU_FAULT=130 set. The tree must be criu-friendly, as runc's are: its
// root is its own session leader (setsid(2); otherwise "A session leader of
// N(1) is outside of its pid namespace"), and it inherited no host fd above 2
// (otherwise "Can't lookup mount=.. for fd=.."). Ending ctx kills criu; the
// tree may then be left frozen or half-cured, so give it a generous deadline.
func Dump(ctx context.Context, o DumpOptions) error {
	if o.Pid <= 0 {
		return fmt.Errorf("criu dump: bad pid %d: %w", o.Pid, ErrCRIU)
	}
	if o.ImagesDir == "" || o.Root == "" {
		return fmt.Errorf("criu dump: images dir and root are required: %w", ErrCRIU)
	}
	if err := os.MkdirAll(o.ImagesDir, 0o700); err != nil {
		return err
	}
	args := []string{"dump", "--tree", strconv.Itoa(o.Pid), "--root", o.Root,
		"--images-dir", o.ImagesDir, "--log-file", DumpLog, "-v4"}
	if o.LeaveRunning {
		args = append(args, "--leave-running")
	}
	if o.ManageCgroups {
		args = append(args, "--manage-cgroups")
	}
	for _, e := range o.External {
		args = append(args, "--external", e)
	}
	if o.NetworkLock != "" {
		args = append(args, "--network-lock", o.NetworkLock)
	}
	if o.TCPEstablished {
		args = append(args, "--tcp-established")
	}
	if o.FreezeCgroup != "" {
		args = append(args, "--freeze-cgroup", o.FreezeCgroup)
	}
	if o.CgroupRoot != "" {
		args = append(args, "--cgroup-root", o.CgroupRoot)
	}
	for _, p := range o.IrmapScanPaths {
		args = append(args, "--irmap-scan-path", p)
	}
	if o.FileLocks {
		args = append(args, "--file-locks")
	}
	args = append(args, o.ExtraArgs...)
	return run(ctx, args, o.ImagesDir, DumpLog, o.Log, nil)
}

// RestoreOptions describe one `criu restore`.
type RestoreOptions struct {
	Root      string // host path of the root filesystem to restore onto (--root); see Restore
	ImagesDir string // as given to Dump; receives restore.log
	PidFile   string // where criu writes the restored root's host PID; "" = ImagesDir/restore.pid
	// ManageCgroups: --manage-cgroups, recreating groups (with their
	// limits) that were removed since the dump.
	ManageCgroups bool
	// InheritFds hands open files to criu as --inherit-fd fd[N]:KEY, KEY
	// being the name given to DumpOptions.External (a network namespace fd
	// from /proc/PID/ns/net or /run/netns/NAME, a pty master, ...).
	InheritFds map[string]*os.File
	// TCPEstablished restores the established TCP connections a dump with
	// DumpOptions.TCPEstablished saved (criu refuses the images otherwise).
	TCPEstablished bool
	// TCPClose restores the established TCP connections a dump saved as closed sockets
	// (--tcp-close): their peers see nothing, their owners a closed connection.
	TCPClose bool
	// CgroupRoot moves the restored groups from under the dumped root to under this one
	// (--cgroup-root): a tree dumped in group /a restored into /b.
	CgroupRoot string
	// LeaveStopped leaves every restored task stopped by SIGSTOP (--leave-stopped).
	LeaveStopped bool
	// FileLocks restores the file locks a dump with DumpOptions.FileLocks saved.
	FileLocks bool
	// NetworkLock is the lock of the restored network namespace until its TCP connections
	// are back: as DumpOptions.NetworkLock.
	NetworkLock string
	ExtraArgs   []string // appended verbatim
	// Detached leaves the restored root to whoever adopts orphans (the
	// nearest child subreaper, else the host's init). When false (the
	// default), Restore first makes the calling process a child subreaper
	// (prctl PR_SET_CHILD_SUBREAPER, left set), so the restored root becomes
	// the caller's child when criu exits: the caller can wait4 its exit
	// status (a VPS monitor needs this to tell reboot from poweroff) and
	// must reap it and any other orphan it adopts.
	Detached bool
	Log      io.Writer // criu's stdout and stderr (nil: discarded); the full log is ImagesDir/restore.log
}

// Restore restores the tree in o.ImagesDir and returns the host PID of its
// root task (also, with ErrPdeathSig, the PID of the killed root to reap):
//
//	criu restore --root ROOT --images-dir DIR --log-file restore.log -v4 --restore-detached --pidfile F ...
//
// with CRIU_FAULT=130 set. criu re-creates the namespaces recorded in the
// images and mounts the tree's root from o.Root; like runc, callers should
// pass a mount point (bind-mount a plain directory onto itself, in the
// caller's own mount namespace so the host's mount table stays clean).
func Restore(ctx context.Context, o RestoreOptions) (pid int, err error) {
	if o.ImagesDir == "" || o.Root == "" {
		return 0, fmt.Errorf("criu restore: images dir and root are required: %w", ErrCRIU)
	}
	pidFile := o.PidFile
	if pidFile == "" {
		pidFile = filepath.Join(o.ImagesDir, DefaultPidFile)
	}
	// criu resolves a relative --pidfile against its work dir; be explicit.
	if pidFile, err = filepath.Abs(pidFile); err != nil {
		return 0, err
	}
	// A stale pid file would make us report a dead (or recycled) PID.
	if err := os.Remove(pidFile); err != nil && !errors.Is(err, os.ErrNotExist) {
		return 0, err
	}
	if !o.Detached {
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			return 0, os.NewSyscallError("prctl(PR_SET_CHILD_SUBREAPER)", err)
		}
	}
	args := []string{"restore", "--root", o.Root, "--images-dir", o.ImagesDir,
		"--log-file", RestoreLog, "-v4", "--restore-detached", "--pidfile", pidFile}
	if o.ManageCgroups {
		args = append(args, "--manage-cgroups")
	}
	if o.TCPEstablished {
		args = append(args, "--tcp-established")
	}
	if o.TCPClose {
		args = append(args, "--tcp-close")
	}
	if o.CgroupRoot != "" {
		args = append(args, "--cgroup-root", o.CgroupRoot)
	}
	if o.LeaveStopped {
		args = append(args, "--leave-stopped")
	}
	if o.FileLocks {
		args = append(args, "--file-locks")
	}
	if o.NetworkLock != "" {
		args = append(args, "--network-lock", o.NetworkLock)
	}
	// Sorted, so fd numbers are deterministic; fd N is ExtraFiles[N-3].
	keys := make([]string, 0, len(o.InheritFds))
	for k := range o.InheritFds {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var files []*os.File
	for i, k := range keys {
		if o.InheritFds[k] == nil {
			return 0, fmt.Errorf("criu restore: nil file for --inherit-fd key %q: %w", k, ErrCRIU)
		}
		files = append(files, o.InheritFds[k])
		args = append(args, "--inherit-fd", fmt.Sprintf("fd[%d]:%s", 3+i, k))
	}
	args = append(args, o.ExtraArgs...)
	if err := run(ctx, args, o.ImagesDir, RestoreLog, o.Log, files); err != nil {
		return 0, err
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return 0, fmt.Errorf("criu restore succeeded but left no pid file: %w", err)
	}
	pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("criu restore: pid file %s holds %q: %w", pidFile, b, ErrCRIU)
	}
	if log, _ := os.ReadFile(filepath.Join(o.ImagesDir, RestoreLog)); bytes.Contains(log, []byte(pdeathWarning)) {
		// The PID is returned so that a (subreaper) caller can reap it.
		return pid, fmt.Errorf("criu restore from %s: root task %d: %w", o.ImagesDir, pid, ErrPdeathSig)
	}
	return pid, nil
}

// run runs criu with args, bounded by ctx, and on failure returns an error
// quoting the tail of dir/logName.
func run(ctx context.Context, args []string, dir, logName string, log io.Writer, extra []*os.File) error {
	path, _, err := Find()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = criuEnv()
	var out bytes.Buffer
	w := io.Writer(&tailBuffer{b: &out, max: 4096})
	if log != nil {
		w = io.MultiWriter(w, log)
	}
	cmd.Stdout, cmd.Stderr = w, w
	cmd.ExtraFiles = extra
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err = timerslack.WithHost(cmd.Run)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		err = fmt.Errorf("%w (after %v)", ctx.Err(), time.Since(start).Round(time.Millisecond))
	} else {
		// criu's exit status is not ours (an *exec.ExitError would pass for the command's
		// own exit code further up).
		err = errors.New(err.Error())
	}
	logPath := filepath.Join(dir, logName)
	first := firstErrors(logPath, firstErrorLines)
	if len(first) == 0 {
		if tail := logTail(logPath, logTailLines); tail != "" {
			first = strings.Split(tail, "\n")
		} else if o := strings.TrimSpace(out.String()); o != "" {
			first = strings.Split(o, "\n")
			logPath = ""
		}
	}
	if _, serr := os.Stat(logPath); serr != nil {
		logPath = ""
	}
	return &Error{Op: args[0], Err: err, First: first, Log: logPath}
}

// firstErrors returns the first n error lines of a criu log ("Error (file:line): ..."), the
// timestamps and task numbers that lead them cut off, known-harmless ones left out.
func firstErrors(path string, n int) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		i := strings.Index(l, "Error (")
		if i < 0 || slices.ContainsFunc(harmless, func(h string) bool { return strings.Contains(l, h) }) {
			continue
		}
		out = append(out, l[i:])
		if len(out) == n {
			break
		}
	}
	return out
}

// logTail returns the last n lines of a criu log, preferring its error lines
// ("Error (...)") when the last n lines hold none: criu usually logs the
// cause, then a page of cleanup.
func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	tail := lines
	if len(tail) > n {
		tail = tail[len(tail)-n:]
	}
	hasErr := func(ls []string) bool {
		return slices.ContainsFunc(ls, func(l string) bool { return strings.Contains(l, "Error (") })
	}
	if !hasErr(tail) {
		var errs []string
		for _, l := range lines {
			if strings.Contains(l, "Error (") {
				errs = append(errs, l)
			}
		}
		if len(errs) > 4 {
			errs = errs[len(errs)-4:]
		}
		tail = append(errs, tail...)
	}
	return strings.Join(tail, "\n")
}

// tailBuffer keeps only the last max bytes written to it.
type tailBuffer struct {
	b   *bytes.Buffer
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b.Write(p)
	if over := t.b.Len() - t.max; over > 0 {
		t.b.Next(over)
	}
	return len(p), nil
}
