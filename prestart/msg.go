package prestart

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
)

// Msg is a message to one of the C programs (msg.h): NUL-terminated "key=value" strings ended
// by an empty string. It is the one format C reads, whoever sends it: the init child's config,
// the joiner's, the spawner's requests, the reaper's and the remover's jobs, and the join record
// a running VPS's monitor leaves for `vpsctl exec` (see JoinRecord). Keys never contain '=';
// values never contain NUL (Add refuses them: see Err).
type Msg struct {
	b   []byte
	err error
}

// Add appends key=value.
func (m *Msg) Add(key, value string) *Msg {
	if m.err == nil && (bytes.ContainsAny([]byte(key), "=\x00") || key == "" || bytes.IndexByte([]byte(value), 0) >= 0) {
		m.err = fmt.Errorf("message key %q: %w", key, ErrBadMsg)
	}
	m.b = append(append(append(append(m.b, key...), '='), value...), 0)
	return m
}

// AddInt appends key=decimal n.
func (m *Msg) AddInt(key string, n int) *Msg { return m.Add(key, strconv.Itoa(n)) }

// AddHex appends key=hexadecimal n.
func (m *Msg) AddHex(key string, n uint64) *Msg { return m.Add(key, strconv.FormatUint(n, 16)) }

// AddAll appends key=v for every v.
func (m *Msg) AddAll(key string, vs []string) *Msg {
	for _, v := range vs {
		m.Add(key, v)
	}
	return m
}

// Bytes is the whole message, terminated; or the first error of an Add.
func (m *Msg) Bytes() ([]byte, error) {
	if m.err != nil {
		return nil, m.err
	}
	return append(m.b[:len(m.b):len(m.b)], 0), nil
}

// ErrBadMsg: a message that is not in the format (or a value it cannot carry).
var ErrBadMsg = errors.New("malformed message")

// KV is one key and value of a parsed message.
type KV struct{ Key, Value string }

// ParseMsg is the Go reader of the format, for the messages Go reads back (a spare's claim, the
// join record in tests): the inverse of Msg.Bytes.
func ParseMsg(b []byte) ([]KV, error) {
	var kvs []KV
	for len(b) > 0 && b[0] != 0 {
		s, rest, ok := bytes.Cut(b, []byte{0})
		if !ok {
			return nil, fmt.Errorf("%w: unterminated", ErrBadMsg)
		}
		k, v, ok := bytes.Cut(s, []byte{'='})
		if !ok || len(k) == 0 {
			return nil, fmt.Errorf("%w: %q has no key", ErrBadMsg, s)
		}
		kvs = append(kvs, KV{string(k), string(v)})
		b = rest
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: no end", ErrBadMsg)
	}
	return kvs, nil
}
