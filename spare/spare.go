package spare

// Package spare keeps VPSs booted in advance, for `vpsctl run --rm`: a pool of VPSs of one template, for `vpsctl run --rm`, the way
// Kata Containers' VM cache keeps VMs booted for the next container. A keeper process (this
// file's spareMain, a hidden mode) keeps --count of them, each booted by a worker goroutine as
// far as a run --rm's boot goes before its command is known: created, its groups made and
// limited, its init child cloned into its namespaces and groups, its root file system mounted
// (runHere, with monitor.spare set). There the boot waits for a claim on the keeper's socket:
//
//	vpsctl run --rm --template T [--hostname H] -- CMD...   (C, before the Go runtime:
//	                                                          nsenter/spareclaim.c)
//	   ──SOCK_SEQPACKET STATE/spare/T.sock──▶ keeper: one parked worker accepts
//	   claim: "VSPR" v1, hostname\0, argv\0..., fds [stdin, stdout, stderr]
//	                                             worker: /etc/hostname, the init child's config
//	                                             with the caller's stdio; the init child mounts
//	                                             /proc, /dev..., pivots, execs CMD as PID 1
//	   ◀── started                               (or fallback: the caller runs as without spares)
//	   signal number ──▶                          the init is killed (as a run's SIGINT/SIGTERM)
//	   ◀── exited, status                         the caller exits with it; the worker destroys
//	                                             the VPS as run --rm does and boots the next spare
//
// Invariants: a spare is a transient VPS (ID from transientBase) with a "spare" file naming its
// template in its directory, locked by its worker from its create to its destroy; `list` does
// not show it until it is claimed. Nothing a claim sends is trusted beyond what a run's command
// line is: the socket is root's (0600 in a 0700 directory, and the peer's credentials are
// checked), and the host name is validated as create validates it. Whatever a worker cannot
// serve (a bad host name, a boot that fails) it answers with fallback before the command has
// run, and the caller does the whole run itself, with a run's errors. The keeper holds
// STATE/spare/T.lock (flock) while it lives, its PID inside; a keeper killed outright leaves
// its spares unlocked, and the next keeper of the template destroys them.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vpsctl/vpsctl/hostconf"
	"github.com/vpsctl/vpsctl/internal/fault"
	"github.com/vpsctl/vpsctl/internal/sysfile"
	"github.com/vpsctl/vpsctl/internal/timerslack"
	"github.com/vpsctl/vpsctl/monitor"
	"github.com/vpsctl/vpsctl/prestart"
	"github.com/vpsctl/vpsctl/runtime"
	"github.com/vpsctl/vpsctl/template"
	"golang.org/x/sys/unix"
)

// MaxSpares bounds --count: each spare is a booted VPS (a UID range, groups, mounts, a
// parked init) that serves nothing until claimed.
const MaxSpares = 16

// Options describe a keeper of spare VPSs.
type Options struct {
	Template string
	Count    int           // spares kept booted (1..MaxSpares)
	Idle     time.Duration // the keeper stops after this long without a claim (0: never)
}

// Keeper describes a running keeper (`vpsctl spare list`).
type Keeper struct {
	Template string `json:"template"`
	PID      int    `json:"pid"`
	Count    int    `json:"count"`
	Ready    int    `json:"ready"`  // spares booted and waiting for a claim
	Served   int64  `json:"served"` // runs whose command ran in a spare
}

// StartSpares starts a keeper of o.Count spare VPSs of o.Template and returns once the first
// is booted, with the keeper's PID; already: a keeper of the template runs (its PID), nothing
// was started.
func Start(r *runtime.Runtime, o Options) (pid int, already bool, err error) {
	if err := template.ValidateName(o.Template); err != nil {
		return 0, false, err
	}
	if _, err := template.Rootfs(r.St, o.Template); err != nil {
		return 0, false, err
	}
	if o.Count < 1 || o.Count > MaxSpares {
		return 0, false, fmt.Errorf("--count %d: want 1 to %d: %w", o.Count, MaxSpares, runtime.ErrBadValue)
	}
	if o.Idle < 0 {
		return 0, false, fmt.Errorf("--idle %v: must not be negative: %w", o.Idle, runtime.ErrBadValue)
	}
	if err := os.MkdirAll(filepath.Join(r.St.Root, "spare"), 0o700); err != nil {
		return 0, false, err
	}
	if pid := r.St.KeeperPID(o.Template); pid > 0 {
		return pid, true, nil
	}
	// The log is the running keeper's (its failures, its start and end); the keeper empties it
	// once its lock is its own (a start that loses the race to another must not).
	logf, err := sysfile.OpenFile(r.St.SparePath(o.Template, ".log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return 0, false, err
	}
	defer logf.Close()
	null, err := sysfile.OpenFile(os.DevNull, os.O_RDONLY, 0)
	if err != nil {
		return 0, false, err
	}
	defer null.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		return 0, false, err
	}
	defer pr.Close()
	cmd := exec.Command("/proc/self/exe", o.Template, strconv.Itoa(o.Count), o.Idle.String())
	cmd.Args[0] = "vpsctl-spare"
	// What the tests and benchmarks turn off reaches the keeper's boots too.
	cmd.Env = append([]string{prestart.StageEnv + "=keeper", "VPSCTL_ROOT=" + r.St.Root}, timerslack.Env()...)
	if p := os.Getenv(hostconf.PathEnv); p != "" {
		cmd.Env = append(cmd.Env, hostconf.PathEnv+"="+p) // the keeper reads the same configuration
	}
	if fault.Tracing() {
		cmd.Env = append(cmd.Env, fault.TraceEnv+"=1")
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = null, logf, logf
	cmd.ExtraFiles = []*os.File{pw}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		pw.Close()
		return 0, false, err
	}
	pw.Close()
	pid = cmd.Process.Pid
	b, _ := io.ReadAll(pr) // until the keeper has a spare booted, or has failed
	var msg monitor.Report
	if json.Unmarshal(b, &msg) != nil || msg.InitPID == 0 && msg.Error == "" {
		// Died without a word: its log says why.
		cmd.Wait()
		return 0, false, fmt.Errorf("spare keeper of template %q exited (%v); see %s", o.Template, cmd.ProcessState, r.St.SparePath(o.Template, ".log"))
	}
	if err := msg.FailureOf(fmt.Sprintf("spare VPS of template %q", o.Template)); err != nil {
		cmd.Wait() // it stops: a start right after finds no keeper
		return 0, false, err
	}
	cmd.Process.Release() // it lives on, in a session of its own
	return pid, false, nil
}

// StopSpares stops the keeper of tpl, which destroys its spares, and waits (at most timeout)
// until it has; false: none was running.
func Stop(r *runtime.Runtime, tpl string, timeout time.Duration) (bool, error) {
	if err := template.ValidateName(tpl); err != nil {
		return false, err
	}
	pid := r.St.KeeperPID(tpl)
	if pid <= 0 {
		destroyOrphanSpares(r, tpl) // of a keeper killed outright
		return false, nil
	}
	if err := unix.Kill(pid, unix.SIGTERM); err != nil && err != unix.ESRCH {
		return false, os.NewSyscallError("kill", err)
	}
	// The keeper lets go of its lock as its last act: wait for that.
	deadline := time.Now().Add(timeout)
	for wait := time.Millisecond; r.St.KeeperPID(tpl) > 0; wait = min(2*wait, 50*time.Millisecond) {
		if time.Now().After(deadline) {
			return true, fmt.Errorf("spare keeper of template %q (PID %d) still running after %v", tpl, pid, timeout)
		}
		time.Sleep(wait)
	}
	return true, nil
}

// ListSpares lists the running keepers.
func List(r *runtime.Runtime) ([]Keeper, error) {
	ents, err := os.ReadDir(filepath.Join(r.St.Root, "spare"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Keeper
	for _, e := range ents {
		tpl, ok := strings.CutSuffix(e.Name(), ".lock")
		if !ok {
			continue
		}
		pid := r.St.KeeperPID(tpl)
		if pid <= 0 {
			continue
		}
		var k Keeper // the counts the keeper last wrote, if any
		if b, err := os.ReadFile(r.St.SparePath(tpl, ".state")); err == nil {
			json.Unmarshal(b, &k)
		}
		k.Template, k.PID = tpl, pid
		out = append(out, k)
	}
	return out, nil
}

// destroyOrphanSpares destroys the spares of tpl whose keeper is gone, claimed or not, and
// returns how many: their locks are free (Destroy takes them; a VPS another command holds is
// left).
func destroyOrphanSpares(r *runtime.Runtime, tpl string) int {
	ids, err := r.St.IDs()
	if err != nil {
		return 0
	}
	n := 0
	for _, id := range ids {
		if r.St.SpareTemplate(id) != tpl {
			continue
		}
		if err := r.Destroy(context.Background(), id, true); err == nil {
			n++
		}
	}
	return n
}
