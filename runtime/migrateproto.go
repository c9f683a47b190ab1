package runtime

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
)

// The migration protocol: the source runs `vpsctl migrate-receive` on the destination (over
// ssh, or directly for a local destination) and talks to it over its stdin and stdout in
// frames: one kind byte, a big-endian u32 length, the payload.
//
//	'M'  a message (wireMsg, JSON)
//	'D'  a chunk of a data stream (a tar stream of fstree entries)
//	'E'  the end of a data stream
//
// The conversation (S source, D destination):
//
//	S: hello (config, template and its fingerprint, live or not)
//	D: ready (whether it needs the template, under which name), after checking the ID, name
//	   and addresses are free there; or error
//	S: template + stream (only if needed)
//	D: claimed (the UID range it gave the VPS: the source's if free there); or error
//	S: files + stream (the private area; for a live migration while the VPS still runs)
//	D: ok
//	offline:  S: commit                D: done (the VPS is complete there)
//	live:     S checkpoints the VPS (it stops here), then
//	          S: final + stream (files changed since, removed ones, the images)
//	          D: restored (every process stopped) or error
//	          S: go                    D: running (the processes continued)
//
// D undoes everything (a restored VPS killed, the VPS destroyed) when its input ends before
// commit or go, so until S has sent those, the VPS runs (or exists) on the source only; S
// restores it itself if anything fails before go. After go only D's answer, or a status query
// of D when that answer is lost, tells S that the VPS runs there.

const migrateVersion = 1

// maxFrame bounds a frame's payload: D never allocates more for one.
const maxFrame = 1 << 20

// wireMsg is every message; Op says which fields mean something.
type wireMsg struct {
	Op string `json:"op"`
	// hello
	Version        int    `json:"version,omitempty"`
	ID             uint32 `json:"id,omitempty"`
	Config         string `json:"config,omitempty"`
	Template       string `json:"template,omitempty"`
	TemplateFP     string `json:"template_fp,omitempty"`
	TemplateSource string `json:"template_source,omitempty"`
	Live           bool   `json:"live,omitempty"`
	// hello: the source's cluster host, if it is one (its registry record of the VPS moves
	// to the destination at the commit); claimed: the destination's, if it expects that move.
	Node string `json:"node,omitempty"`
	// ready
	NeedTemplate bool   `json:"need_template,omitempty"`
	TemplateAs   string `json:"template_as,omitempty"`
	// claimed
	IDMap string `json:"idmap,omitempty"`
	// final
	Removed []string `json:"removed,omitempty"`
	// restored, running
	InitPID int `json:"init_pid,omitempty"`
	// error: the message and the name of the sentinel it wraps (remoteSentinels)
	Error string `json:"error,omitempty"`
	Kind  string `json:"kind,omitempty"`
}

// conn is one side of the protocol.
type conn struct {
	r *bufio.Reader
	w *bufio.Writer
}

func newConn(r io.Reader, w io.Writer) *conn {
	return &conn{r: bufio.NewReaderSize(r, 1<<16), w: bufio.NewWriterSize(w, 1<<16)}
}

func (c *conn) frame(kind byte, b []byte) error {
	var h [5]byte
	h[0] = kind
	binary.BigEndian.PutUint32(h[1:], uint32(len(b)))
	if _, err := c.w.Write(h[:]); err != nil {
		return err
	}
	_, err := c.w.Write(b)
	return err
}

// send writes message m.
func (c *conn) send(m wireMsg) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if err := c.frame('M', b); err != nil {
		return err
	}
	return c.w.Flush()
}

// errProtocol: the other side said something out of turn, or nothing at all.
var errProtocol = errors.New("migration protocol")

func (c *conn) next() (byte, []byte, error) {
	var h [5]byte
	if _, err := io.ReadFull(c.r, h[:]); err != nil {
		if err == io.EOF {
			return 0, nil, fmt.Errorf("%w: the other side closed the connection", errProtocol)
		}
		return 0, nil, fmt.Errorf("%w: %v", errProtocol, err)
	}
	n := binary.BigEndian.Uint32(h[1:])
	if n > maxFrame {
		return 0, nil, fmt.Errorf("%w: frame of %d bytes", errProtocol, n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(c.r, b); err != nil {
		return 0, nil, fmt.Errorf("%w: %v", errProtocol, err)
	}
	return h[0], b, nil
}

// recv reads the next message, which must be op (an "error" message is returned as an error).
func (c *conn) recv(op string) (wireMsg, error) {
	var m wireMsg
	kind, b, err := c.next()
	if err != nil {
		return m, err
	}
	if kind != 'M' {
		return m, fmt.Errorf("%w: data where %q was due", errProtocol, op)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("%w: %v", errProtocol, err)
	}
	if m.Op == "error" {
		return m, remoteError(m)
	}
	if op != "" && m.Op != op {
		return m, fmt.Errorf("%w: %q where %q was due", errProtocol, m.Op, op)
	}
	return m, nil
}

// streamWriter writes a data stream in frames; Close ends it.
type streamWriter struct{ c *conn }

func (s streamWriter) Write(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		chunk := b
		if len(chunk) > maxFrame {
			chunk = chunk[:maxFrame]
		}
		if err := s.c.frame('D', chunk); err != nil {
			return n, err
		}
		n += len(chunk)
		b = b[len(chunk):]
	}
	return n, nil
}

func (s streamWriter) Close() error {
	if err := s.c.frame('E', nil); err != nil {
		return err
	}
	return s.c.w.Flush()
}

// streamReader reads a data stream up to its end frame.
type streamReader struct {
	c    *conn
	buf  []byte
	done bool
}

func (s *streamReader) Read(b []byte) (int, error) {
	for len(s.buf) == 0 {
		if s.done {
			return 0, io.EOF
		}
		kind, p, err := s.c.next()
		if err != nil {
			return 0, err
		}
		switch kind {
		case 'D':
			s.buf = p
		case 'E':
			s.done = true
		default:
			return 0, fmt.Errorf("%w: a message inside a data stream", errProtocol)
		}
	}
	n := copy(b, s.buf)
	s.buf = s.buf[n:]
	return n, nil
}

// drain reads the rest of the stream (what a tar reader left after the archive's end).
func (s *streamReader) drain() error {
	_, err := io.Copy(io.Discard, s)
	return err
}

// Dest is a migration's destination: another host over ssh, or this host (another state root).
type Dest struct {
	Local bool
	User  string // ssh: the remote user ("" = ssh's default)
	Host  string
	Port  int // 0 = ssh's default
}

func (d Dest) String() string {
	if d.Local {
		return "local"
	}
	s := "ssh://"
	if d.User != "" {
		s += d.User + "@"
	}
	s += d.Host
	if d.Port != 0 {
		s += ":" + strconv.Itoa(d.Port)
	}
	return s
}

// ParseDest parses "ssh://[user@]host[:port]" or "local". It is pure.
func ParseDest(s string) (Dest, error) {
	if s == "local" {
		return Dest{Local: true}, nil
	}
	bad := func(why string) (Dest, error) {
		return Dest{}, fmt.Errorf("%w: destination %q: %s (want ssh://[user@]host[:port] or local)", ErrBadValue, s, why)
	}
	u, err := url.Parse(s)
	if err != nil {
		return bad(err.Error())
	}
	if u.Scheme != "ssh" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return bad("not an ssh URL")
	}
	d := Dest{Host: u.Hostname()}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			return bad("no passwords in the URL: ssh asks, or uses keys")
		}
		d.User = u.User.Username()
	}
	if d.Host == "" || strings.HasPrefix(d.Host, "-") || strings.HasPrefix(d.User, "-") {
		return bad("bad host or user")
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return bad("bad port")
		}
		d.Port = n
	}
	return d, nil
}

// shellQuote quotes s for the remote shell ssh hands its command line to.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-=:") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
