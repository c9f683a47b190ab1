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
	// timed out); the message carries the tail of criu's log.
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

// logTailLines is how much of criu's log an error quotes.
const logTailLines = 12

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
	ExtraArgs   []string  // appended verbatim (e.g. --tcp-established, --file-locks)
	Log         io.Writer // criu's stdout and stderr (nil: discarded); the full log is ImagesDir/dump.log
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
	ExtraArgs  []string // appended verbatim
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
	}
	tail := logTail(filepath.Join(dir, logName), logTailLines)
	if tail == "" {
		tail = strings.TrimSpace(out.String())
	}
	return fmt.Errorf("criu %s: %w: %w; last lines of %s:\n%s", args[0], ErrCRIU, err, filepath.Join(dir, logName), tail)
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
