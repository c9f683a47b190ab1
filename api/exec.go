package api

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/vpsctl/vpsctl/runtime"
)

// execRequest runs a command in a VPS, non-interactively.
type execRequest struct {
	Command []string `json:"command"`
	Env     []string `json:"env,omitempty"`     // VAR=value added to the VPS's default environment
	Workdir string   `json:"workdir,omitempty"` // default /
	Stdin   string   `json:"stdin,omitempty"`   // what the command reads (default: nothing)
	Timeout *float64 `json:"timeout,omitempty"` // seconds; then the command is killed (default 300)
}

// execResult is what the command did. exit_code is its status, as `vpsctl exec`'s: 126 not
// executable, 127 not found, 128+N killed by signal N.
type execResult struct {
	ExitCode        int    `json:"exit_code"`
	Stdout          string `json:"stdout"`
	Stderr          string `json:"stderr"`
	StdoutTruncated bool   `json:"stdout_truncated,omitempty"`
	StderrTruncated bool   `json:"stderr_truncated,omitempty"`
	TimedOut        bool   `json:"timed_out,omitempty"`
}

// maxOutput bounds what an answer carries of each of stdout and stderr; the rest is read and
// dropped, so that the command never blocks on a full pipe.
const maxOutput = 1 << 20

const (
	defaultExecTimeout = 5 * time.Minute
	maxExecTimeout     = 24 * time.Hour
)

// drainWait is how long output is still read after the command exits: a process it left in
// the background may hold the pipes open for ever.
const drainWait = 2 * time.Second

func (s *Server) execVPS(w http.ResponseWriter, r *http.Request) error {
	if _, err := newQuery(r); err != nil {
		return err
	}
	var req execRequest
	if err := decode(r, &req, false); err != nil {
		return err
	}
	if len(req.Command) == 0 || req.Command[0] == "" {
		return badf("body: command: want the command and its arguments, e.g. [\"hostname\"]")
	}
	for _, e := range req.Env {
		if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
			return badf("body: env %q: want VAR=value", e)
		}
	}
	timeout, err := seconds("timeout", req.Timeout, defaultExecTimeout, maxExecTimeout)
	if err != nil {
		return err
	}
	if req.Workdir == "" {
		req.Workdir = "/"
	}
	id, err := s.resolve(r)
	if err != nil {
		return err
	}
	// Exec ends with its request: its answer is the command's output.
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	res, err := runExec(req, func(o runtime.ExecOptions) (int, error) { return s.rt.Exec(ctx, id, o) })
	if err != nil {
		return err
	}
	res.TimedOut = errors.Is(ctx.Err(), context.DeadlineExceeded)
	writeJSON(w, http.StatusOK, res)
	return nil
}

// runExec runs req through exec with pipes for its stdio and collects what it prints. A
// command that could not start (not found, not executable) is a result with the shell's
// status, as on the command line.
func runExec(req execRequest, exec func(runtime.ExecOptions) (int, error)) (*execResult, error) {
	stdin, err := stdinFor(req.Stdin)
	if err != nil {
		return nil, err
	}
	defer stdin.Close()
	var out, errOut capture
	ow, err := out.start()
	if err != nil {
		return nil, err
	}
	ew, err := errOut.start()
	if err != nil {
		ow.Close()
		out.finish()
		return nil, err
	}
	code, err := exec(runtime.ExecOptions{Args: req.Command, Env: req.Env, Dir: req.Workdir,
		Stdin: stdin, Stdout: ow, Stderr: ew, OwnSignals: true})
	ow.Close()
	ew.Close()
	out.finish()
	errOut.finish()
	var ce *runtime.CommandError
	if errors.As(err, &ce) {
		return &execResult{ExitCode: ce.Status, Stderr: ce.Error() + "\n"}, nil
	}
	if err != nil {
		return nil, err
	}
	res := &execResult{ExitCode: code}
	res.Stdout, res.StdoutTruncated = out.result()
	res.Stderr, res.StderrTruncated = errOut.result()
	return res, nil
}

// stdinFor is a file the command reads text from: /dev/null for none, else a pipe fed by a
// goroutine (a command that does not read it ends the feeding with EPIPE).
func stdinFor(text string) (*os.File, error) {
	if text == "" {
		return os.Open(os.DevNull)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	go func() {
		io.WriteString(pw, text)
		pw.Close()
	}()
	return pr, nil
}

// capture collects up to maxOutput bytes read from a pipe.
type capture struct {
	r    *os.File
	mu   sync.Mutex
	buf  []byte
	more bool
	done chan struct{}
}

// start returns the pipe's write end, for the command.
func (c *capture) start() (*os.File, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	c.r, c.done = r, make(chan struct{})
	go func() {
		defer close(c.done)
		b := make([]byte, 32<<10)
		for {
			n, err := r.Read(b)
			c.mu.Lock()
			keep := min(n, maxOutput-len(c.buf))
			c.buf = append(c.buf, b[:keep]...)
			c.more = c.more || keep < n
			c.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return w, nil
}

// finish waits, boundedly, for the pipe's end, and closes it.
func (c *capture) finish() {
	select {
	case <-c.done:
	case <-time.After(drainWait):
		c.r.SetReadDeadline(time.Now())
		<-c.done
	}
	c.r.Close()
}

// result is the text read, valid UTF-8 (JSON strings are), and whether some was dropped.
func (c *capture) result() (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := string(c.buf)
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return s, c.more
}
