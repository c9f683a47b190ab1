package hostconf

import (
	"errors"
	"fmt"
	"strings"
)

// ErrBadConfig reports a host configuration or plan that cannot be used: a malformed line, an
// unknown key, a value out of range, a missing file that was asked for by name, a bad plan
// name. The CLI maps it to exit code 21 (bad value), before it has changed anything.
var ErrBadConfig = errors.New("bad host configuration")

// ErrNoPlan reports a plan name with no file in the plans directory. It also matches
// ErrBadConfig (a plan asked for is a value given), so callers that only map exit codes need
// not know it; callers that list plans branch on it.
var ErrNoPlan = errors.New("no such plan")

// LineError is a configuration or plan file's line that cannot be used. Its text is
// "FILE:LINE: what", the form editors and compilers use, so an administrator can jump to it.
// It matches ErrBadConfig with errors.Is, and unwraps to the underlying cause, if any.
type LineError struct {
	File string // the file's path as given to the parser
	Line int    // 1-based
	Msg  string
	Err  error // the cause (a size parser's error, say); nil if Msg says it all
}

func (e *LineError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s:%d: %s: %v", e.File, e.Line, e.Msg, e.Err)
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// Is makes every LineError an ErrBadConfig.
func (e *LineError) Is(target error) bool { return target == ErrBadConfig }

// Unwrap returns the cause.
func (e *LineError) Unwrap() error { return e.Err }

// Entry is one KEY="value" assignment of a file.
type Entry struct {
	Key   string
	Value string // unquoted
	Line  int    // 1-based
}

// Lex splits text in vps.conf's syntax into its assignments, in file order. Blank lines and
// lines whose first non-blank character is '#' are skipped; every other line must be
// KEY="value" (KEY is [A-Z_][A-Z0-9_]*; inside the quotes \" \\ and \n are the only escapes) or
// KEY=value with no blanks, quotes or backslashes. This is exactly store.ParseConfig's syntax
// (a differential fuzz test holds the two together): one syntax for every vpsctl file an
// administrator edits. Errors are *LineError naming name and the line.
//
// Lex is pure: it reads nothing but text.
func Lex(name string, text []byte) ([]Entry, error) {
	var out []Entry
	rest := string(text)
	n := 0
	for rest != "" {
		var line string
		line, rest, _ = strings.Cut(rest, "\n")
		n++
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		k, raw, ok := strings.Cut(line, "=")
		if !ok || !validKey(k) {
			return nil, &LineError{File: name, Line: n, Msg: fmt.Sprintf("want KEY=\"value\", got %q", clip(line))}
		}
		v, err := unquote(raw)
		if err != nil {
			return nil, &LineError{File: name, Line: n, Msg: k + ": " + err.Error()}
		}
		out = append(out, Entry{Key: k, Value: v, Line: n})
	}
	return out, nil
}

// clip shortens a quoted line in an error message: a binary file given as a config should
// not fill the terminal.
func clip(s string) string {
	if len(s) > 80 {
		return s[:77] + "..."
	}
	return s
}

func validKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		ch := k[i]
		if !(ch >= 'A' && ch <= 'Z' || ch == '_' || i > 0 && ch >= '0' && ch <= '9') {
			return false
		}
	}
	return true
}

// unquote is store's unquote (unexported there): the same rules, the same refusals.
func unquote(s string) (string, error) {
	if !strings.HasPrefix(s, `"`) {
		if strings.ContainsAny(s, "\" \t\\") {
			return "", errors.New("unquoted value with spaces, quotes or backslashes")
		}
		return s, nil
	}
	if len(s) < 2 || !strings.HasSuffix(s, `"`) {
		return "", errors.New("unterminated quote")
	}
	var b strings.Builder
	body := s[1 : len(s)-1]
	for i := 0; i < len(body); i++ {
		ch := body[i]
		switch ch {
		case '"':
			return "", errors.New("unescaped quote inside value")
		case '\\':
			i++
			if i >= len(body) {
				return "", errors.New("dangling backslash")
			}
			switch body[i] {
			case '\\', '"':
				b.WriteByte(body[i])
			case 'n':
				b.WriteByte('\n')
			default:
				return "", fmt.Errorf("unknown escape \\%c", body[i])
			}
		default:
			b.WriteByte(ch)
		}
	}
	return b.String(), nil
}

// Quote renders v as a value Lex reads back unchanged.
func Quote(v string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(v) + `"`
}
