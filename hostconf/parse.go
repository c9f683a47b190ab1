package hostconf

import (
	"errors"
	"fmt"

	"github.com/vpsctl/vpsctl/store"
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

// Lex splits text in vps.conf's syntax (store.Lex: one syntax for every vpsctl file an
// administrator edits) into its assignments, in file order. Errors are *LineError naming name
// and the line.
//
// Lex is pure: it reads nothing but text.
func Lex(name string, text []byte) ([]Entry, error) {
	var out []Entry
	err := store.Lex(text, func(n int, k, v string) error {
		out = append(out, Entry{Key: k, Value: v, Line: n})
		return nil
	})
	var se *store.SyntaxError
	if errors.As(err, &se) {
		if se.Key == "" {
			return nil, &LineError{File: name, Line: se.Line, Msg: fmt.Sprintf("want KEY=\"value\", got %q", clip(se.Text))}
		}
		return nil, &LineError{File: name, Line: se.Line, Msg: se.Key + ": " + se.Err.Error()}
	}
	return out, err
}

// clip shortens a quoted line in an error message: a binary file given as a config should
// not fill the terminal.
func clip(s string) string {
	if len(s) > 80 {
		return s[:77] + "..."
	}
	return s
}
