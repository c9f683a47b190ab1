package uid

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Account is a name for a guest ID, from a VPS's /etc/passwd or /etc/group.
type Account struct {
	Name string
	ID   GuestID
}

// maxLine bounds one line of passwd or group. The files belong to a possibly hostile tenant:
// a longer line is skipped as garbage instead of being buffered whole.
const maxLine = 64 << 10

// ParsePasswd reads passwd(5) lines "name:password:UID:GID:GECOS:home:shell" and returns
// (name, UID) in file order. Like the tolerant readers of libc, it skips what it cannot use
// instead of failing: comments, blank lines, NIS "+"/"-" entries, lines with fewer than 7
// fields, empty names or names with control characters or invalid UTF-8 (they end up on an
// operator's terminal, where escape sequences from a tenant do not belong), UIDs that are not plain decimal uint32s, the invalid ID 4294967295, and
// lines longer than 64 KiB. The only errors are the reader's.
func ParsePasswd(r io.Reader) ([]Account, error) { return parseAccounts(r, 7) }

// ParseGroup reads group(5) lines "name:password:GID:members" and returns (name, GID) in file
// order, skipping what ParsePasswd skips (lines with fewer than 4 fields).
func ParseGroup(r io.Reader) ([]Account, error) { return parseAccounts(r, 4) }

func parseAccounts(r io.Reader, fields int) ([]Account, error) {
	var out []Account
	br := bufio.NewReaderSize(r, 4096)
	for {
		line, err := readLine(br)
		if line != "" {
			if a, ok := parseAccount(line, fields); ok {
				out = append(out, a)
			}
		}
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

// readLine returns the next line without its newline, or "" for a line longer than maxLine
// (which is consumed and dropped).
func readLine(br *bufio.Reader) (string, error) {
	var b []byte
	tooLong := false
	for {
		chunk, err := br.ReadSlice('\n')
		if !tooLong {
			if len(b)+len(chunk) > maxLine {
				tooLong, b = true, nil
			} else {
				b = append(b, chunk...)
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if tooLong {
			return "", err
		}
		return strings.TrimSuffix(string(b), "\n"), err
	}
}

func parseAccount(line string, fields int) (Account, bool) {
	line = strings.TrimSuffix(line, "\r")
	if line == "" || line[0] == '#' || line[0] == '+' || line[0] == '-' {
		return Account{}, false
	}
	f := strings.SplitN(line, ":", fields)
	if len(f) < fields || !printableName(f[0]) {
		return Account{}, false
	}
	id, err := parseID(f[2])
	if err != nil || id == NoID {
		return Account{}, false
	}
	return Account{Name: f[0], ID: GuestID(id)}, true
}

func printableName(s string) bool {
	if s == "" || !utf8.ValidString(s) {
		return false
	}
	for _, c := range s {
		if unicode.IsControl(c) || unicode.Is(unicode.Cf, c) { // Cf: bidi overrides reorder what the operator reads
			return false
		}
	}
	return true
}
