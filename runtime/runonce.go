package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/vpsctl/vpsctl/container"
	"github.com/vpsctl/vpsctl/internal/fault"
	"github.com/vpsctl/vpsctl/monitor"
	"github.com/vpsctl/vpsctl/store"
	"github.com/vpsctl/vpsctl/uid"
)

// runOnceLocked is RunOnce with the VPS's lock held. destroy: the VPS is destroyed next, by
// this process (run --rm): its mount namespace is kept for Destroy to hand to the background
// remover, which then does the unmounting too (see Runtime.held). spare, if set, makes the
// boot a spare VPS's (see monitor.spare), always in this process.
func (r *Runtime) runOnceLocked(ctx context.Context, id container.ID, argv []string, stdin, stdout, stderr *os.File, destroy bool, spare func() *monitor.Claim) (int, error) {
	if destroy {
		// A run --rm's own VPS, created by this command an instant ago: its status is known,
		// unless another command started it before this one took its lock (then it has run
		// state). What a killed earlier VPS of the same ID left on the host is still removed.
		if _, err := r.St.LoadRun(id); err == nil {
			return 0, fmt.Errorf("VPS %d: %w", id, ErrRunning)
		}
		r.cleanHost(id)
	} else {
		s, err := r.Status(id)
		if err != nil {
			return 0, err
		}
		if s.State == "running" {
			return 0, fmt.Errorf("VPS %d: %w", id, ErrRunning)
		}
		r.repair(id)
	}
	fault.Mark("run-checked")
	var keep func(monitor.Leftovers)
	if destroy {
		keep = func(left monitor.Leftovers) { r.hold(id, left) }
	}
	code, err := monitor.RunHere(r.St, id, argv, []*os.File{stdin, stdout, stderr}, keep, spare)
	fault.Mark("run-monitor-exited")
	return code, err
}

// userpasswdScript sets a password read from stdin ("user:password"), creating the user if
// missing (useradd where there is one, else by hand, as on busybox), with chpasswd or, where it
// is missing, busybox's mkpasswd. The password travels on stdin
// only: never in argv (visible in ps) nor in any file or log of vpsctl's.
const userpasswdScript = `u="$1"
IFS= read -r line; p="${line#*:}"
if ! id "$u" >/dev/null 2>&1; then
  if command -v useradd >/dev/null 2>&1; then useradd -m -s /bin/sh "$u" || exit 1
  else
    n=1000; while grep -q "^[^:]*:[^:]*:$n:" /etc/passwd; do n=$((n+1)); done
    echo "$u:x:$n:$n::/home/$u:/bin/sh" >> /etc/passwd
    echo "$u:x:$n:" >> /etc/group
    echo "$u:!:19000:0:99999:7:::" >> /etc/shadow
    mkdir -p "/home/$u" && chown "$n:$n" "/home/$u"
  fi
fi
if command -v chpasswd >/dev/null 2>&1; then printf '%s:%s\n' "$u" "$p" | chpasswd; exit; fi
h=$(printf '%s\n' "$p" | mkpasswd -m sha512) || exit 1
awk -F: -v OFS=: -v u="$u" -v h="$h" '$1==u{$2=h}1' /etc/shadow > /etc/shadow.vpsctl &&
  cat /etc/shadow.vpsctl > /etc/shadow && rm -f /etc/shadow.vpsctl`

// setUserPassword sets user's password inside the VPS (running: joined like exec; stopped: a
// one-shot boot), creating the user if missing, like vzctl --userpasswd. The caller holds the
// VPS's lock.
func (r *Runtime) setUserPassword(ctx context.Context, s *Status, user, password string) error {
	id := s.ID
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	defer pr.Close()
	go func() {
		pw.Write([]byte(user + ":" + password + "\n"))
		pw.Close()
	}()
	argv := []string{"/bin/sh", "-c", userpasswdScript, "vpsctl-userpasswd", user}
	var code int
	if s.State == "running" {
		code, err = r.Exec(ctx, id, ExecOptions{Args: argv, Stdin: pr, Stdout: os.Stderr, Stderr: os.Stderr})
	} else {
		code, err = r.runOnceLocked(ctx, id, argv, pr, os.Stderr, os.Stderr, false, nil)
	}
	if err != nil {
		return err
	}
	if code != 0 {
		return fmt.Errorf("VPS %d: setting the password of %q: exit %d: %w", id, user, code, ErrUserPasswd)
	}
	return nil
}

// RunOptions describe `vpsctl run`.
type RunOptions struct {
	ID       container.ID // 0: the first free ID from 1000000000
	Template string
	Hostname string
	Remove   bool
	Args     []string
	Pool     uid.Pool
	Stdin    *os.File
	Stdout   *os.File
	Stderr   *os.File
}

// Run creates a VPS, runs Args as its PID 1 and returns their status; with Remove the VPS is
// destroyed afterwards, whatever the outcome.
func (r *Runtime) Run(ctx context.Context, o RunOptions) (int, error) {
	c := CreateOptions{ID: o.ID, Template: o.Template, Hostname: o.Hostname, Pool: o.Pool}
	id, err := o.ID, error(nil)
	if id == 0 {
		id, err = r.CreateTransient(ctx, c, 0)
	} else {
		err = r.Create(ctx, c)
	}
	if err != nil {
		return 0, err
	}
	return r.runFresh(ctx, id, "run "+strings.Join(o.Args, " "), o.Args, o.Stdin, o.Stdout, o.Stderr, o.Remove, nil)
}

// runFresh runs argv as the PID 1 of VPS id, which this process has just created, under the
// VPS's lock (what names the holder) and, with remove, destroys the VPS afterwards whatever
// the outcome: a run's, and a spare's (spare: see monitor.spare).
func (r *Runtime) runFresh(ctx context.Context, id container.ID, what string, argv []string, stdin, stdout, stderr *os.File, remove bool, spare func() *monitor.Claim) (int, error) {
	lk, err := r.St.LockVPS(ctx, id, what)
	if err != nil {
		if remove {
			r.Destroy(ctx, id, true)
		}
		return 0, err
	}
	code, err := r.runOnceLocked(ctx, id, argv, stdin, stdout, stderr, remove, spare)
	if remove && r.destroyRan(ctx, id, lk) {
		return code, err
	}
	lk.Unlock()
	if remove {
		r.Destroy(ctx, id, true)
	}
	return code, err
}

// CreateTransient creates a VPS of vpsctl's own making (a run without an ID, a spare) as o
// says, at the first free ID from the off'th transient one on (o.ID is ignored), and returns
// its ID. A concurrent create that takes that ID first makes this one lose with ErrExist under
// create's lock: it then tries the next free ID.
func (r *Runtime) CreateTransient(ctx context.Context, o CreateOptions, off int) (container.ID, error) {
	var err error
	for range 10 {
		o.ID = r.transientIDFrom(off)
		if err = r.Create(ctx, o); !errors.Is(err, store.ErrExist) {
			break
		}
	}
	return o.ID, err
}

// transientIDFrom is a free ID for a VPS of vpsctl's own making (run, spares), far from
// hand-picked ones, searching from the off'th on: a spare keeper moves on with each spare, so
// that it does not wait for the remover of the last one, which holds its ID's lock.
func (r *Runtime) transientIDFrom(off int) container.ID {
	cand := container.ID(store.TransientBase + (os.Getpid()+off)%1000000)
	for r.St.Exists(cand) {
		cand++
	}
	return cand
}

// destroyRan destroys VPS id at the end of its run --rm, whose init has exited, with the lock lk
// that the run held throughout: nothing of the VPS can run, so there is no status to read and
// nothing to repair, and what the boot kept (groups, mount namespace) goes to the remover with
// the files. false: not done (the boot kept nothing: the caller destroys the VPS as usual).
func (r *Runtime) destroyRan(ctx context.Context, id container.ID, lk *store.Lock) bool {
	left, ok := r.takeHeld(id)
	if !ok {
		return false
	}
	err := r.destroyLocked(ctx, id, lk, "", left, nil, false)
	lk.Unlock()
	return err == nil
}

// RunSpare boots VPS id, a spare VPS (package spare) created by CreateTransient, as far as a
// run's boot goes before its command is known, then asks claim for one: the claim's command
// then runs as the VPS's PID 1 on the claim's stdio, and the VPS is destroyed after it as a
// run --rm's is. stdio is the init's until then. what names the VPS in errors.
func (r *Runtime) RunSpare(ctx context.Context, id container.ID, what string, stdio *os.File, claim func() *monitor.Claim) (int, error) {
	return r.runFresh(ctx, id, what, []string{"/bin/true"}, stdio, stdio, stdio, true, claim)
}
