// Package safetext prints strings that come from inside a VPS (process names, user names,
// host names read back, console output) on an operator's terminal or in JSON without letting
// them act on the terminal: an ESC ]0;...BEL in a process name must show as text, not retitle
// or clear the admin's terminal.
//
// Invariants (fuzzed):
//   - Escape's and EscapeLog's output is valid UTF-8 holding no C0 control (but the newline and
//     tab EscapeLog keeps), no DEL, no C1 control (U+0080-U+009F: a UTF-8 terminal may take
//     U+009B as CSI), no format character (Unicode Cf: bidi overrides reorder what the
//     operator reads, zero-width ones hide text) and no line or paragraph separator.
//   - Escaping is reversible: a backslash is written as \\, so a tenant cannot spell an
//     escaped byte to pass one thing off as another.
//   - Printable UTF-8, spaces included, is kept as it is.
//   - Text's JSON encoding decodes to the same string (for valid UTF-8; invalid bytes become
//     U+FFFD, as encoding/json does) and carries none of the above raw either.
package safetext

import (
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// unsafe reports whether rune c must not reach a terminal raw.
func unsafe(c rune) bool {
	return c < 0x20 || c == 0x7f || c >= 0x80 && c <= 0x9f ||
		unicode.Is(unicode.Cf, c) || unicode.Is(unicode.Zl, c) || unicode.Is(unicode.Zp, c)
}

// Escape returns s with every byte or rune that could act on a terminal escaped: C0 controls,
// DEL and bytes that are not UTF-8 as \xNN, other unsafe runes as \uNNNN or \UNNNNNNNN, and a
// backslash as \\. For table cells and one-line messages.
func Escape(s string) string { return string(appendEscaped(nil, s, false)) }

// EscapeLog is Escape for lines of console output written to a log: it keeps newlines and
// tabs, so the log reads as the console did, and escapes everything else Escape does
// (carriage returns included: they would let a line hide what came before it).
func EscapeLog(b []byte) []byte { return appendEscaped(nil, string(b), true) }

const hex = "0123456789abcdef"

func appendEscaped(dst []byte, s string, log bool) []byte {
	for i := 0; i < len(s); {
		c, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case c == utf8.RuneError && n <= 1:
			dst = append(dst, '\\', 'x', hex[s[i]>>4], hex[s[i]&0xf])
		case c == '\\':
			dst = append(dst, '\\', '\\')
		case log && (c == '\n' || c == '\t'):
			dst = append(dst, byte(c))
		case c < 0x80 && unsafe(c):
			dst = append(dst, '\\', 'x', hex[c>>4], hex[c&0xf])
		case unsafe(c) && c <= 0xffff:
			dst = append(dst, '\\', 'u')
			dst = appendHex(dst, uint32(c), 4)
		case unsafe(c):
			dst = append(dst, '\\', 'U')
			dst = appendHex(dst, uint32(c), 8)
		default:
			dst = append(dst, s[i:i+n]...)
		}
		i += n
	}
	return dst
}

func appendHex(dst []byte, v uint32, digits int) []byte {
	for d := digits - 1; d >= 0; d-- {
		dst = append(dst, hex[(v>>(4*d))&0xf])
	}
	return dst
}

// Text is a string from inside a VPS. Its String is Escape's; it marshals to a JSON string
// that decodes to the original but escapes, as \uNNNN, every rune Escape would, so that a
// JSON document printed on a terminal is as harmless as a table. Use it for such fields of
// the structures commands print:
//
//	type Proc struct { Name safetext.Text `json:"name"` }
type Text string

func (t Text) String() string { return Escape(string(t)) }

// MarshalJSON implements json.Marshaler.
func (t Text) MarshalJSON() ([]byte, error) {
	s := string(t)
	b := make([]byte, 0, len(s)+2)
	b = append(b, '"')
	for i := 0; i < len(s); {
		c, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case c == utf8.RuneError && n <= 1:
			b = append(b, `\ufffd`...)
		case c == '"' || c == '\\':
			b = append(b, '\\', byte(c))
		case unsafe(c) || c == 0x2028 || c == 0x2029:
			if c > 0xffff {
				r1, r2 := utf16.EncodeRune(c)
				b = append(b, '\\', 'u')
				b = appendHex(b, uint32(r1), 4)
				b = append(b, '\\', 'u')
				b = appendHex(b, uint32(r2), 4)
			} else {
				b = append(b, '\\', 'u')
				b = appendHex(b, uint32(c), 4)
			}
		default:
			b = append(b, s[i:i+n]...)
		}
		i += n
	}
	return append(b, '"'), nil
}
