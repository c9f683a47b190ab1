package runtime

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"

	"github.com/vpsctl/vpsctl/network"
)

func TestParseDest(t *testing.T) {
	for in, want := range map[string]Dest{
		"local":                         {Local: true},
		"ssh://hostb":                   {Host: "hostb"},
		"ssh://root@127.0.0.1:2222":     {User: "root", Host: "127.0.0.1", Port: 2222},
		"ssh://admin@[fd42:1::1]:22/":   {User: "admin", Host: "fd42:1::1", Port: 22},
		"ssh://hostb.example.com:65535": {Host: "hostb.example.com", Port: 65535},
	} {
		got, err := ParseDest(in)
		if err != nil || got != want {
			t.Errorf("ParseDest(%q) = %+v, %v; want %+v", in, got, err, want)
		}
		if in != "ssh://admin@[fd42:1::1]:22/" && got.String() != in {
			t.Errorf("%+v.String() = %q, want %q", got, got.String(), in)
		}
	}
	for _, bad := range []string{"", "hostb", "ssh:hostb", "http://hostb", "ssh://", "ssh://root:pw@hostb", "ssh://hostb:0",
		"ssh://hostb:99999", "ssh://hostb/dir", "ssh://-oProxyCommand=x", "ssh://-l@hostb", "ssh://hostb?x=1"} {
		if d, err := ParseDest(bad); !errors.Is(err, ErrBadValue) {
			t.Errorf("ParseDest(%q) = %+v, %v; want ErrBadValue", bad, d, err)
		}
	}
}

func FuzzParseDest(f *testing.F) {
	f.Add("ssh://root@127.0.0.1:2222")
	f.Add("local")
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDest(s)
		if err == nil && !d.Local && (d.Host == "" || strings.HasPrefix(d.Host, "-") || strings.HasPrefix(d.User, "-")) {
			t.Fatalf("ParseDest(%q) = %+v: an ssh option could pass for a host", s, d)
		}
	})
}

// TestShellQuote runs quoted words through sh: each comes back as one word, unchanged.
func TestShellQuote(t *testing.T) {
	words := []string{"/usr/sbin/vpsctl", "--root", "/srv/host b", "it's", "$(touch /tmp/x)", "`id`", "a;b", "", "--dest=x:y"}
	var line []string
	for _, w := range words {
		line = append(line, shellQuote(w))
	}
	out, err := exec.Command("sh", "-c", `printf '%s\0' `+strings.Join(line, " ")).Output()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	if strings.Join(got, "|") != strings.Join(words, "|") {
		t.Errorf("through sh: %q, want %q", got, words)
	}
}

func TestConn(t *testing.T) {
	var wire bytes.Buffer
	w := newConn(nil, &wire)
	if err := w.send(wireMsg{Op: "hello", ID: 601, Live: true}); err != nil {
		t.Fatal(err)
	}
	sw := streamWriter{c: w}
	big := bytes.Repeat([]byte("x"), maxFrame+10) // two frames
	if _, err := sw.Write(big); err != nil {
		t.Fatal(err)
	}
	if err := sw.Close(); err != nil {
		t.Fatal(err)
	}
	w.send(errorMsg(errors.Join(errors.New("198.18.0.61: held by VPS 7"), network.ErrIPInUse)))
	r := newConn(bytes.NewReader(wire.Bytes()), io.Discard)
	m, err := r.recv("hello")
	if err != nil || m.ID != 601 || !m.Live {
		t.Fatalf("recv hello = %+v, %v", m, err)
	}
	sr := &streamReader{c: r}
	got, err := io.ReadAll(sr)
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("stream: %d bytes, %v", len(got), err)
	}
	_, err = r.recv("ready")
	if !errors.Is(err, network.ErrIPInUse) || !strings.Contains(err.Error(), "held by VPS 7") {
		t.Errorf("an error message: %v", err)
	}
	if _, err := r.recv("ready"); !errors.Is(err, errProtocol) {
		t.Errorf("recv at the end: %v, want errProtocol", err)
	}
}

func TestConnRefuses(t *testing.T) {
	frame := func(kind byte, payload []byte) []byte {
		b := []byte{kind, 0, 0, 0, 0}
		binary.BigEndian.PutUint32(b[1:], uint32(len(payload)))
		return append(b, payload...)
	}
	huge := []byte{'M', 0xff, 0xff, 0xff, 0xff}
	for name, c := range map[string]struct {
		wire []byte
		op   string
	}{
		"oversized frame":     {huge, "hello"},
		"data for a message":  {frame('D', []byte("x")), "hello"},
		"another message":     {frame('M', []byte(`{"op":"go"}`)), "hello"},
		"not json":            {frame('M', []byte(`{`)), "hello"},
		"cut frame":           {frame('M', []byte(`{"op":"hello"}`))[:8], "hello"},
		"message in a stream": {frame('M', []byte(`{"op":"ok"}`)), ""},
	} {
		r := newConn(bytes.NewReader(c.wire), io.Discard)
		var err error
		if c.op == "" {
			_, err = io.ReadAll(&streamReader{c: r})
		} else {
			_, err = r.recv(c.op)
		}
		if !errors.Is(err, errProtocol) {
			t.Errorf("%s: %v, want errProtocol", name, err)
		}
	}
}
