package registry

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/vpsctl/vpsctl/uid"
	"golang.org/x/sys/unix"
)

// ReadyEnv tells an agent started by a command which descriptor to report its start on.
const ReadyEnv = "VPSCTL_CLUSTER_READY_FD"

// AgentProgram is the agent's program name: beside the vpsctl executable, else on PATH.
const AgentProgram = "vpsctl-cluster"

// startWait bounds an agent's start: its Go runtime and the etcd client's initialisation take
// about 10 ms; a loaded host gets far more, a broken one no more.
const startWait = 5 * time.Second

// Client asks a host's cluster agent. The zero value is not useful: see New.
type Client struct {
	Settings Settings
	// Agent is the agent program ("": AgentProgram beside os.Executable(), else on PATH).
	Agent  string
	digest string
}

// New returns a client of the agent for settings s. It does not connect: the first request
// does (and starts the agent if none answers).
func New(s Settings) *Client { return &Client{Settings: s, digest: s.Digest()} }

// Dir is the directory of the agent's files in state root root.
func Dir(root string) string { return filepath.Join(root, "cluster") }

// SocketPath is the agent's socket in state root root; LockPath the file its agent holds
// locked for as long as it runs (its PID inside), LogPath where it logs.
func SocketPath(root string) string { return filepath.Join(Dir(root), "agent.sock") }
func LockPath(root string) string   { return filepath.Join(Dir(root), "agent.lock") }
func LogPath(root string) string    { return filepath.Join(Dir(root), "agent.log") }

// bound is how long a request may take: the agent's etcd calls (at most two, each bounded by
// the timeout) and a margin for the agent itself.
func (c *Client) bound() time.Duration { return 2*c.Settings.Timeout + time.Second }

// Do sends req and waits for the answer. A failed answer is an error: *ConflictError,
// ErrUnavailable (wrapped), ErrPending (a create while the host has unsettled markers, which
// the response lists), ErrNotFound, uid.ErrPoolFull, ErrUIDRace, or a plain one.
func (c *Client) Do(ctx context.Context, req Request) (*Response, error) {
	call, err := c.Go(ctx, req)
	if err != nil {
		return nil, err
	}
	return call.Wait()
}

// Call is a request sent whose answer has not been read yet.
type Call struct {
	c        *Client
	ctx      context.Context
	req      []byte
	conn     net.Conn
	deadline time.Time
	op       string
}

// Go sends req and returns without waiting for the answer: the caller does other work
// meanwhile and then Waits (or Abandons the call: the agent carries the request out anyway).
func (c *Client) Go(ctx context.Context, req Request) (*Call, error) {
	req.Settings = c.digest
	if req.PID == 0 {
		req.PID = os.Getpid()
	}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	b = append(b, '\n')
	deadline := time.Now().Add(c.bound())
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	call := &Call{c: c, ctx: ctx, req: b, deadline: deadline, op: req.Op}
	return call, call.send()
}

func (call *Call) send() error {
	conn, err := call.c.connect(call.ctx, call.deadline)
	if err != nil {
		return err
	}
	conn.SetDeadline(call.deadline)
	if _, err := conn.Write(call.req); err != nil {
		conn.Close()
		return fmt.Errorf("cluster agent (%s): %v: %w", SocketPath(call.c.Settings.Root), err, ErrUnavailable)
	}
	call.conn = conn
	return nil
}

// Wait reads the answer. An agent running other settings (the configuration changed) answers
// that at once and exits: the request goes once more, to a fresh agent.
func (call *Call) Wait() (*Response, error) {
	for retried := false; ; retried = true {
		resp, err := call.read()
		if err != nil || resp.Kind != KindStale || retried {
			return resp, err
		}
		call.c.waitGone(call.deadline)
		if err := call.send(); err != nil {
			return nil, err
		}
	}
}

func (call *Call) read() (*Response, error) {
	defer call.conn.Close()
	call.conn.SetReadDeadline(call.deadline)
	var resp Response
	if err := json.NewDecoder(call.conn).Decode(&resp); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, fmt.Errorf("%s: no answer from the cluster agent in time: %w", call.op, ErrUnavailable)
		}
		return nil, fmt.Errorf("%s: cluster agent: %v: %w", call.op, err, ErrUnavailable)
	}
	if resp.Kind == KindStale {
		return &resp, nil
	}
	return &resp, resp.err()
}

// Abandon closes the call without reading the answer (the agent carries the request out).
func (call *Call) Abandon() { call.conn.Close() }

// err turns a failed Response into the error callers branch on.
func (r *Response) err() error {
	switch r.Kind {
	case "":
		return nil
	case KindConflict:
		if r.Conflict != nil {
			return &ConflictError{*r.Conflict}
		}
	case KindUnavailable:
		return &agentError{r.Error, ErrUnavailable}
	case KindUIDRace:
		return ErrUIDRace
	case KindPending:
		return ErrPending
	case KindPoolFull:
		return &agentError{r.Error, uid.ErrPoolFull}
	case KindNotFound:
		return &agentError{r.Error, ErrNotFound}
	}
	return fmt.Errorf("cluster agent: %s", r.Error)
}

// agentError is an error the agent reported: its message as the agent wrote it (which names
// the condition already), matching the condition's sentinel.
type agentError struct {
	msg string
	is  error
}

func (e *agentError) Error() string { return e.msg }
func (e *agentError) Unwrap() error { return e.is }

// Errors a Response can carry besides ErrUnavailable and *ConflictError.
var (
	ErrUIDRace  = errors.New("another host claimed a UID range meanwhile")
	ErrPending  = errors.New("this host has unsettled changes in the cluster registry")
	ErrNotFound = errors.New("not in the cluster registry")
)

// connect returns a connection to the running agent, starting one if none answers.
func (c *Client) connect(ctx context.Context, deadline time.Time) (net.Conn, error) {
	sock := SocketPath(c.Settings.Root)
	d := net.Dialer{Deadline: deadline}
	conn, err := d.DialContext(ctx, "unix", sock)
	if err == nil {
		return conn, nil
	}
	if err := c.start(deadline); err != nil {
		return nil, err
	}
	conn, err = d.DialContext(ctx, "unix", sock)
	if err != nil {
		return nil, fmt.Errorf("cluster agent (%s): %v: %w", sock, err, ErrUnavailable)
	}
	return conn, nil
}

// start starts the agent unless one runs (or another command is starting one), and returns
// once it listens. Starters take STATE/cluster/start.lock in turn.
func (c *Client) start(deadline time.Time) error {
	root := c.Settings.Root
	if err := os.MkdirAll(Dir(root), 0o700); err != nil {
		return fmt.Errorf("cluster agent: %w: %w", err, ErrUnavailable)
	}
	sl, err := flockUntil(filepath.Join(Dir(root), "start.lock"), deadline)
	if err != nil {
		return fmt.Errorf("cluster agent: %w: %w", err, ErrUnavailable)
	}
	defer sl.Close()
	if conn, err := net.DialTimeout("unix", SocketPath(root), time.Until(deadline)); err == nil {
		conn.Close()
		return nil // another command started it meanwhile
	}
	// An agent that holds its lock but does not answer is on its way out (a stale one); wait
	// for it, bounded.
	if l, err := flockUntil(LockPath(root), earlier(deadline, time.Now().Add(startWait))); err == nil {
		l.Close()
	} else {
		return fmt.Errorf("cluster agent holds %s but does not answer: %w", LockPath(root), ErrUnavailable)
	}
	prog, err := c.Program()
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(LogPath(root), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("cluster agent: %w: %w", err, ErrUnavailable)
	}
	defer logf.Close()
	if fi, err := logf.Stat(); err == nil && fi.Size() > 1<<20 {
		logf.Truncate(0) // bounded: the log of the agents before this one is history
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	defer pr.Close()
	cmd := exec.Command(prog, c.Settings.Args()...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{pw} // fd 3: "ok" once it listens, or why not
	cmd.Dir = "/"
	cmd.Env = append(agentEnv(os.Environ()), ReadyEnv+"=3")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		pw.Close()
		return fmt.Errorf("cluster agent %s: %w: %w", prog, err, ErrUnavailable)
	}
	pw.Close()
	go cmd.Wait() // reaped if it dies while this command runs; otherwise init's
	pr.SetReadDeadline(earlier(deadline, time.Now().Add(startWait)))
	line, _ := bufio.NewReader(pr).ReadString('\n')
	line = strings.TrimSpace(line)
	if line != "ok" {
		if line == "" {
			line = "it did not start in time (see " + LogPath(root) + ")"
		}
		return fmt.Errorf("cluster agent: %s: %w", line, ErrUnavailable)
	}
	return nil
}

// agentEnv is the environment an agent gets: the command's, without vpsctl's own switches
// (a crash-test's fault point is the command's, not the agent's).
func agentEnv(env []string) []string {
	out := env[:0:0]
	for _, e := range env {
		if strings.HasPrefix(e, "_VPSCTL_") || strings.HasPrefix(e, "VPSCTL_FAULT=") || strings.HasPrefix(e, "VPSCTL_TRACE=") ||
			strings.HasPrefix(e, ReadyEnv+"=") {
			continue
		}
		out = append(out, e)
	}
	return out
}

// Program is the agent program: Agent, else AgentProgram beside the running executable, else
// on PATH.
func (c *Client) Program() (string, error) {
	if c.Agent != "" {
		return c.Agent, nil
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), AgentProgram)
		if unix.Access(p, unix.X_OK) == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath(AgentProgram)
	if err != nil {
		return "", fmt.Errorf("no %s program beside vpsctl or on PATH (scripts/build.sh builds it): %w", AgentProgram, ErrUnavailable)
	}
	return p, nil
}

// waitGone waits (bounded) until the agent that holds its lock has exited.
func (c *Client) waitGone(deadline time.Time) {
	if l, err := flockUntil(LockPath(c.Settings.Root), earlier(deadline, time.Now().Add(startWait))); err == nil {
		l.Close()
	}
}

// AgentPID is the PID of the agent running for state root root, 0 if none.
func AgentPID(root string) int {
	f, err := os.Open(LockPath(root))
	if err != nil {
		return 0
	}
	defer f.Close()
	if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
		return 0 // nobody holds it
	}
	var pid int
	fmt.Fscan(f, &pid)
	return pid
}

// flockUntil opens path and takes an exclusive flock on it, trying until deadline.
func flockUntil(path string, deadline time.Time) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if err != unix.EWOULDBLOCK && err != unix.EINTR {
			f.Close()
			return nil, &os.PathError{Op: "flock", Path: path, Err: err}
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, &os.PathError{Op: "flock", Path: path, Err: unix.EWOULDBLOCK}
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
