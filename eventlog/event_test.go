package eventlog

import (
	"encoding/json"
	"errors"
	"os"
	"os/user"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"10m":                         now.Add(-10 * time.Minute),
		"2h30m":                       now.Add(-150 * time.Minute),
		"0s":                          now,
		"7d":                          now.AddDate(0, 0, -7),
		"2026-03-01":                  time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC),
		"2026-03-01T08:09":            time.Date(2026, 3, 1, 8, 9, 0, 0, time.UTC),
		"2026-03-01 08:09:10":         time.Date(2026, 3, 1, 8, 9, 10, 0, time.UTC),
		"2026-03-01T08:09:10":         time.Date(2026, 3, 1, 8, 9, 10, 0, time.UTC),
		"2026-03-01T08:09:10.5+02:00": time.Date(2026, 3, 1, 6, 9, 10, 5e8, time.UTC),
	} {
		got, err := ParseSince(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("%q: %v %v, want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-5m", "yesterday", "10", "99999999d", "2026-13-01", "d"} {
		if _, err := ParseSince(in, now); !errors.Is(err, ErrBadSince) {
			t.Errorf("%q: %v", in, err)
		}
	}
}

func FuzzParseSince(f *testing.F) {
	for _, s := range []string{"10m", "7d", "2026-03-01", "2026-03-01T08:09:10Z", "x", "-1h"} {
		f.Add(s)
	}
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseSince(s, now)
		if err != nil {
			if !errors.Is(err, ErrBadSince) {
				t.Fatalf("%q: %v", s, err)
			}
			return
		}
		// A relative --since never points into the future.
		if _, derr := time.ParseDuration(s); derr == nil && got.After(now) {
			t.Fatalf("%q: %v is after now", s, got)
		}
	})
}

func TestRises(t *testing.T) {
	if Rises(nil, map[string]uint64{"numproc": 5}) != nil {
		t.Fatal("rise without a baseline")
	}
	got := Rises(map[string]uint64{"numproc": 2, "physpages": 9, "swappages": 1}, map[string]uint64{"numproc": 5, "physpages": 3, "oom_kill": 1, "swappages": 1})
	want := []Rise{{"numproc", 2, 5}, {"oom_kill", 0, 1}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%+v", got)
	}
	evs := CounterEvents(7, "web", map[string]uint64{}, map[string]uint64{"numproc": 3, OOMCounter: 2})
	if len(evs) != 2 || evs[0].Event != Failcnt || evs[0].Resource != "numproc" || evs[0].Delta != 3 ||
		evs[1].Event != OOMKill || evs[1].Resource != "" || evs[1].Value != 2 || evs[1].ID != 7 || evs[1].Name != "web" {
		t.Fatalf("%+v", evs)
	}
	for _, e := range evs {
		if err := e.Check(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestText(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 600e6, time.UTC)
	for _, tc := range []struct {
		e    Event
		want string
	}{
		{Event{Time: at, ID: 501, Name: "web", Event: Started, Cause: "start --all"}, "2026-01-02T03:04:05.600Z 501 web started: start --all"},
		{Event{Time: at, ID: 5, Event: Set, Keys: []string{"MEMORY", "SWAP"}}, "2026-01-02T03:04:05.600Z 5 set MEMORY,SWAP"},
		{Event{Time: at, ID: 5, Event: Failcnt, Resource: "numproc", Value: 9, Delta: 2}, "2026-01-02T03:04:05.600Z 5 failcnt numproc failcnt 9 (+2)"},
		{Event{Time: at, ID: 5, Event: OOMKill, Value: 3, Delta: 1}, "2026-01-02T03:04:05.600Z 5 oom-kill 3 (+1)"},
	} {
		if got := tc.e.Text(); got != tc.want {
			t.Errorf("%q, want %q", got, tc.want)
		}
	}
}

func TestRedact(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"vpsctl set 101 --userpasswd root:hunter2 --save", "vpsctl set 101 --userpasswd root:*** --save"},
		{"vpsctl set 101 --userpasswd=alice:pw:with:colons", "vpsctl set 101 --userpasswd=alice:***"},
		{"vpsctl set 101 --userpasswd nocolon", "vpsctl set 101 --userpasswd ***"},
		{"vpsctl set 101 --userpasswd", "vpsctl set 101 --userpasswd"},
		{"vpsctl migrate 101 --tls-key /etc/vpsctl/key.pem --api-token abc", "vpsctl migrate 101 --tls-key /etc/vpsctl/key.pem --api-token ***"},
		{"vpsctl x --db-password=s3cret --secret-file f", "vpsctl x --db-password=*** --secret-file ***"},
		{"vpsctl exec 101 -e DB_PASSWORD=x -e HOME=/root --env=API_KEY=k -- env", "vpsctl exec 101 -e DB_PASSWORD=*** -e HOME=/root --env=API_KEY=*** -- env"},
		{"vpsctl exec 101 -- passwd --userpasswd root:x", "vpsctl exec 101 -- passwd --userpasswd root:x"},
		{"vpsctl create 503 --template busybox --plan small", "vpsctl create 503 --template busybox --plan small"},
		{"vpsctl exec 1 -e", "vpsctl exec 1 -e"},
	} {
		in := strings.Fields(tc.in)
		orig := append([]string(nil), in...)
		if got := strings.Join(Redact(in), " "); got != tc.want {
			t.Errorf("%q:\n got %q\nwant %q", tc.in, got, tc.want)
		}
		if !reflect.DeepEqual(in, orig) {
			t.Fatal("Redact changed its argument")
		}
	}
	if Redact(nil) == nil || len(Redact(nil)) != 0 {
		t.Fatal("nil argv")
	}
}

func FuzzRedact(f *testing.F) {
	f.Add("set\x00101\x00--userpasswd\x00root:pw")
	f.Add("set\x00--userpasswd=u:p\x00--\x00--userpasswd\x00x")
	f.Add("exec\x00-e\x00TOKEN=t")
	f.Fuzz(func(t *testing.T, s string) {
		argv := append([]string{"vpsctl"}, strings.Split(s, "\x00")...)
		out := Redact(argv)
		if len(out) != len(argv) {
			t.Fatal("length changed")
		}
		// A password given to --userpasswd before "--" never survives.
		for i := 1; i < len(argv); i++ {
			if argv[i] == "--" {
				break
			}
			if argv[i] == "--userpasswd" && i+1 < len(argv) {
				if _, pw, ok := strings.Cut(argv[i+1], ":"); ok && pw != "***" && strings.Contains(out[i+1], ":"+pw) && pw != "" {
					t.Fatalf("%q -> %q", argv, out)
				}
				i++
			}
		}
	})
}

func TestQuoteArgs(t *testing.T) {
	got := QuoteArgs([]string{"vpsctl", "exec", "101", "--", "sh", "-c", "echo 'hi' there", "", "a=b"})
	want := `vpsctl exec 101 -- sh -c 'echo '\''hi'\'' there' '' a=b`
	if got != want {
		t.Fatalf("%s", got)
	}
}

func TestNewRecordAndAudit(t *testing.T) {
	root := t.TempDir()
	l := Audit(root, 1<<20, 2)
	env := map[string]string{"SUDO_USER": "alice"}
	r := NewRecord([]string{"/usr/local/sbin/vpsctl", "create", "503", "--template", "busybox", "--plan", "small"}, 0, func(k string) string { return env[k] })
	if r.Cmd != "vpsctl create 503 --template busybox --plan small" || r.SudoUser != "alice" || r.UID != os.Getuid() || r.PID != os.Getpid() || r.Exit != 0 {
		t.Fatalf("%+v", r)
	}
	if u, err := user.Current(); err == nil && r.User != u.Username {
		t.Fatalf("user %q, want %q", r.User, u.Username)
	}
	if err := l.AppendRecord(r); err != nil {
		t.Fatal(err)
	}
	r2 := NewRecord([]string{"vpsctl", "set", "503", "--userpasswd", "root:pw"}, 21, func(string) string { return "" })
	if err := l.AppendRecord(r2); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(root, AuditFile))
	if err != nil {
		t.Fatal(err)
	}
	// The acceptance check of issue 25 greps the audit log for the command.
	if n := strings.Count(string(raw), "create 503"); n != 1 {
		t.Fatalf("'create 503' %d times in %s", n, raw)
	}
	if strings.Contains(string(raw), "root:pw") || !strings.Contains(string(raw), `"cmd":"vpsctl set 503 --userpasswd 'root:***'","exit":21`) {
		t.Fatalf("%s", raw)
	}
	st, _ := os.Stat(filepath.Join(root, AuditFile))
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("audit log mode %v", st.Mode())
	}
	var back Record
	line, _, _ := strings.Cut(string(raw), "\n")
	if err := json.Unmarshal([]byte(line), &back); err != nil || back.Cmd != r.Cmd || !back.Time.Equal(r.Time) {
		t.Fatalf("%+v %v", back, err)
	}
	long := NewRecord([]string{"vpsctl", strings.Repeat("x", maxLine)}, 0, func(string) string { return "" })
	if err := l.AppendRecord(long); err != nil {
		t.Fatalf("an overlong argv must still be audited (shortened): %v", err)
	}
	if lu := loginUID(); lu != nil && *lu < 0 {
		t.Fatal(strconv.Itoa(*lu))
	}
}

func TestEventsPaths(t *testing.T) {
	if l := Events("/s", 5, 2); l.Path != "/s/events.log" || l.MaxSize != 5 || l.Keep != 2 || l.Mode != 0o640 || l.Generation(2) != "/s/events.log.2" {
		t.Fatalf("%+v", l)
	}
}

// BenchmarkEmit: one event, as a command appends it (open, lock, check, write, close).
func BenchmarkEmit(b *testing.B) {
	l := Events(b.TempDir(), 10<<20, 3)
	b.ReportAllocs()
	for b.Loop() {
		if err := l.Emit(Event{ID: 501, Name: "web", Event: Started, Cause: "vpsctl start"}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAudit: the audit line a changing command appends when it ends, user look-up included.
func BenchmarkAudit(b *testing.B) {
	l := Audit(b.TempDir(), 10<<20, 3)
	argv := []string{"/usr/local/sbin/vpsctl", "create", "503", "--template", "busybox", "--plan", "small"}
	b.ReportAllocs()
	for b.Loop() {
		if err := l.AppendRecord(NewRecord(argv, 0, os.Getenv)); err != nil {
			b.Fatal(err)
		}
	}
}
