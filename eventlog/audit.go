package eventlog

import (
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/vpsctl/vpsctl/internal/sysfile"
)

// Record is one line of STATE/audit.log: who ran which changing command, and how it ended.
type Record struct {
	Time     time.Time `json:"time"`
	UID      int       `json:"uid"`                 // real UID of the process
	User     string    `json:"user,omitempty"`      // its name, if it has one
	SudoUser string    `json:"sudo_user,omitempty"` // SUDO_USER: who ran sudo
	LoginUID *int      `json:"loginuid,omitempty"`  // the audit login UID (who logged in, through su and sudo)
	PID      int       `json:"pid"`
	Cmd      string    `json:"cmd"`            // argv, redacted, shell-quoted: "vpsctl create 503 --plan small"; the API's "API POST /v1/vps/503/start"
	Peer     string    `json:"peer,omitempty"` // the API over TCP: the client's address and certificate subject
	Exit     int       `json:"exit"`
}

// Audit returns the audit log of state root root with the given caps. It is 0600: argv is
// redacted, but what a command names (hosts, addresses, users) is for root's eyes.
func Audit(root string, maxSize int64, keep int) *Log {
	return &Log{Path: filepath.Join(root, AuditFile), MaxSize: maxSize, Keep: keep, Mode: 0o600}
}

// NewRecord describes the running process's command argv that exits with code exit. getenv
// supplies SUDO_USER (os.Getenv in the CLI); argv[0] is shortened to its base name.
func NewRecord(argv []string, exit int, getenv func(string) string) Record {
	r := Record{Time: time.Now(), UID: os.Getuid(), PID: os.Getpid(), Exit: exit, SudoUser: getenv("SUDO_USER")}
	r.User = UserName(r.UID)
	r.LoginUID = loginUID()
	args := Redact(argv)
	if len(args) > 0 {
		args[0] = filepath.Base(args[0])
	}
	r.Cmd = QuoteArgs(args)
	if len(r.Cmd) > maxLine/2 {
		r.Cmd = strings.ToValidUTF8(r.Cmd[:maxLine/2], "") + "..."
	}
	return r
}

// UserName is uid's name on this host, "" if it has none.
func UserName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return u.Username
	}
	return ""
}

// loginUID reads /proc/self/loginuid: the UID the session logged in as, which su and sudo do
// not change. (uid_t)-1 or no such file (no audit support): nil.
func loginUID() *int {
	b, err := sysfile.ReadFile("/proc/self/loginuid")
	if err != nil {
		return nil
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32)
	if err != nil || n == 1<<32-1 {
		return nil
	}
	v := int(n)
	return &v
}

// AppendRecord appends r to l.
func (l *Log) AppendRecord(r Record) error { return l.AppendJSON(r) }

// redacted replaces a secret.
const redacted = "***"

// secretFlags take a value that is a secret as a whole. --userpasswd's value is USER:PASSWORD
// and keeps its user name. Matching is on the flag's name, so --tls-key (a path) and --key
// are not secrets.
func secretFlag(name string) bool {
	n := strings.ToLower(strings.TrimLeft(name, "-"))
	return strings.Contains(n, "passw") || strings.Contains(n, "secret") || strings.Contains(n, "token")
}

// secretVar says whether an environment variable's value, given with -e/--env, is a secret.
func secretVar(name string) bool {
	n := strings.ToUpper(name)
	return strings.Contains(n, "PASSW") || strings.Contains(n, "SECRET") || strings.Contains(n, "TOKEN") ||
		strings.HasSuffix(n, "_KEY") || n == "KEY"
}

// Redact returns a copy of argv with secrets replaced: the value of --userpasswd (in either
// "--userpasswd V" or "--userpasswd=V" form) becomes USER:*** (or *** without a colon), the
// value of any flag whose name holds "passw", "secret" or "token" becomes ***, and so does
// VALUE in "-e NAME=VALUE" / "--env NAME=VALUE" when NAME holds PASSW, SECRET, TOKEN or ends
// in _KEY. After "--" nothing is a flag any more: the words of a command run in a VPS are
// kept, since they cannot be told apart from its arguments; put secrets in files, not argv.
// Redact is pure.
func Redact(argv []string) []string {
	out := make([]string, len(argv))
	copy(out, argv)
	for i := 1; i < len(out); i++ {
		a := out[i]
		if a == "--" {
			break
		}
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name, val, hasVal := strings.Cut(a, "=")
		switch {
		case name == "-e" || name == "--env":
			if hasVal { // --env=NAME=VALUE
				out[i] = name + "=" + redactVar(val)
			} else if i+1 < len(out) {
				out[i+1] = redactVar(out[i+1])
				i++
			}
		case secretFlag(name):
			if hasVal {
				out[i] = name + "=" + redactSecret(name, val)
			} else if i+1 < len(out) {
				out[i+1] = redactSecret(name, out[i+1])
				i++
			}
		}
	}
	return out
}

func redactSecret(flag, v string) string {
	if strings.TrimLeft(flag, "-") == "userpasswd" {
		if u, _, ok := strings.Cut(v, ":"); ok {
			return u + ":" + redacted
		}
	}
	return redacted
}

func redactVar(nv string) string {
	n, _, ok := strings.Cut(nv, "=")
	if ok && secretVar(n) {
		return n + "=" + redacted
	}
	return nv
}

// QuoteArgs joins argv into one line a POSIX shell would split back into argv: words made
// only of safe characters stay as they are, others are single-quoted.
func QuoteArgs(argv []string) string {
	var b strings.Builder
	for i, a := range argv {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(shellQuote(a))
	}
	return b.String()
}

func shellQuote(s string) string {
	if s == "" {
		return "''"
	}
	safe := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-_./:=,+@%^", c) >= 0) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
