package safetext

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestEscape(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"sshd", "sshd"},
		{"nginx: worker process", "nginx: worker process"},
		{"\x1b]0;pwned\x07", `\x1b]0;pwned\x07`},
		{"\x1b[2J\x1b[H", `\x1b[2J\x1b[H`},
		{"a\tb\nc\rd", `a\x09b\x0ac\x0dd`},
		{"del\x7f", `del\x7f`},
		{"nul\x00", `nul\x00`},
		{`back\slash`, `back\\slash`},
		{`\x1b`, `\\x1b`}, // the text a tenant types to look like an escape stays distinguishable
		{"csi\u009b31m", `csi\u009b31m`},
		{"evil\u202etxt.exe", `evil\u202etxt.exe`},
		{"zero\u200bwidth", `zero\u200bwidth`},
		{"line\u2028sep", `line\u2028sep`},
		{"tag\U000e0041", `tag\U000e0041`},
		{"bad\xff\xfeutf8", `bad\xff\xfeutf8`},
		{"café ünïcødé 日本語 🙂", "café ünïcødé 日本語 🙂"},
		{"", ""},
	} {
		if got := Escape(c.in); got != c.want {
			t.Errorf("Escape(%q) = %q, want %q", c.in, got, c.want)
		}
		if (Escape(c.in) != c.in) != (c.in != c.want) {
			t.Errorf("Escape(%q) changed it: %v", c.in, Escape(c.in) != c.in)
		}
		if got := unescape(t, Escape(c.in)); got != c.in {
			t.Errorf("unescape(Escape(%q)) = %q", c.in, got)
		}
	}
}

func TestEscapeLog(t *testing.T) {
	in := "Welcome\tto\n\x1b[31mred\x1b[0m\rhidden\n"
	want := "Welcome\tto\n\\x1b[31mred\\x1b[0m\\x0dhidden\n"
	if got := string(EscapeLog([]byte(in))); got != want {
		t.Errorf("EscapeLog = %q, want %q", got, want)
	}
}

func TestTextJSON(t *testing.T) {
	type row struct {
		Name Text `json:"name"`
	}
	for _, in := range []string{"\x1b]0;x\x07", "a\"b\\c", "\u009b\u202e\u2028\U000e0041", "plain 日本", "\x7f"} {
		b, err := json.Marshal(row{Text(in)})
		if err != nil {
			t.Fatal(err)
		}
		if !json.Valid(b) {
			t.Fatalf("%q: invalid JSON %s", in, b)
		}
		var back struct{ Name string }
		if err := json.Unmarshal(b, &back); err != nil || back.Name != in {
			t.Errorf("%q: round trip gave %q, %v (%s)", in, back.Name, err, b)
		}
		checkSafe(t, string(b), false)
	}
	b, _ := json.Marshal(Text("x\xffy"))
	if string(b) != `"x\ufffdy"` {
		t.Errorf("invalid UTF-8: %s", b)
	}
	if s := Text("\x1b[2J").String(); s != `\x1b[2J` {
		t.Errorf("String() = %q", s)
	}
}

// checkSafe fails t if s holds anything that may act on a terminal.
func checkSafe(t *testing.T, s string, log bool) {
	t.Helper()
	if !utf8.ValidString(s) {
		t.Fatalf("not UTF-8: %q", s)
	}
	for _, c := range s {
		if log && (c == '\n' || c == '\t') {
			continue
		}
		if c < 0x20 || c == 0x7f || c >= 0x80 && c <= 0x9f || unicode.In(c, unicode.Cf, unicode.Zl, unicode.Zp) {
			t.Fatalf("%q holds %U", s, c)
		}
	}
}

// unescape inverts Escape (a test's own decoder, so the two are checked against each other).
func unescape(t *testing.T, s string) string {
	t.Helper()
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 >= len(s) {
			t.Fatalf("dangling backslash in %q", s)
		}
		width := map[byte]int{'x': 2, 'u': 4, 'U': 8}
		switch k := s[i+1]; k {
		case '\\':
			b.WriteByte('\\')
			i++
		case 'x', 'u', 'U':
			w := width[k]
			if i+2+w > len(s) {
				t.Fatalf("short escape in %q", s)
			}
			v, err := strconv.ParseUint(s[i+2:i+2+w], 16, 32)
			if err != nil {
				t.Fatalf("bad escape in %q", s)
			}
			if k == 'x' {
				b.WriteByte(byte(v))
			} else {
				b.WriteRune(rune(v))
			}
			i += 1 + w
		default:
			t.Fatalf("unknown escape \\%c in %q", k, s)
		}
	}
	return b.String()
}

func FuzzEscape(f *testing.F) {
	for _, s := range []string{"\x1b]0;t\x07", "ok", "\\x41", "\xc2\x9b", "\u202e", "a\nb\tc", "\xed\xa0\x80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e := Escape(s)
		checkSafe(t, e, false)
		if got := unescape(t, e); got != s {
			t.Fatalf("unescape(Escape(%q)) = %q", s, got)
		}
		l := EscapeLog([]byte(s))
		checkSafe(t, string(l), true)
		if got := unescape(t, string(l)); got != s {
			t.Fatalf("unescape(EscapeLog(%q)) = %q", s, got)
		}
		j, err := json.Marshal(Text(s))
		if err != nil || !json.Valid(j) {
			t.Fatalf("JSON of %q: %s %v", s, j, err)
		}
		checkSafe(t, string(j), false)
		var back string
		if err := json.Unmarshal(j, &back); err != nil {
			t.Fatal(err)
		}
		if utf8.ValidString(s) && back != s {
			t.Fatalf("JSON round trip of %q gave %q", s, back)
		}
	})
}
