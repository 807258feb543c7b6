package event

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"
)

// syntaxError is invalid JSON at a byte offset of the body.
type syntaxError struct {
	off int
	msg string
}

func (e *syntaxError) Error() string { return fmt.Sprintf("invalid JSON at byte %d: %s", e.off, e.msg) }

func errAt(off int, format string, args ...any) error {
	return &syntaxError{off: off, msg: fmt.Sprintf(format, args...)}
}

// maxDepth bounds nesting so that a hostile body cannot exhaust the stack.
const maxDepth = 128

// plainString marks the bytes a string may hold without a closer look:
// everything but '"', '\\', control characters and non-ASCII.
var plainString = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// plainWord reports whether all eight bytes of x are plainString bytes: no
// byte below 0x20, none at or above 0x80, no '"' and no '\\'.
func plainWord(x uint64) bool {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	hasZero := func(v uint64) uint64 { return (v - lo) & ^v & hi }
	bad := x&hi | (x-lo*0x20)&^x&hi | hasZero(x^(lo*'"')) | hasZero(x^(lo*'\\'))
	return bad == 0
}

func isSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\r' || c == '\t' }

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// scanValue validates the JSON value starting at b[i] (no leading space) and
// returns the offset just past it. It checks the full grammar of RFC 8259 and
// that strings are valid UTF-8, so that what is stored downstream is always
// JSON every consumer can read.
func scanValue(b []byte, i, depth int) (int, error) {
	if i >= len(b) {
		return i, errAt(i, "unexpected end of input")
	}
	switch c := b[i]; {
	case c == '"':
		end, _, err := scanString(b, i)
		return end, err
	case c == '{':
		return scanObject(b, i, depth, nil)
	case c == '[':
		return scanArray(b, i, depth, nil)
	case c == 't':
		return scanLiteral(b, i, "true")
	case c == 'f':
		return scanLiteral(b, i, "false")
	case c == 'n':
		return scanLiteral(b, i, "null")
	case c == '-' || (c >= '0' && c <= '9'):
		return scanNumber(b, i)
	default:
		return i, errAt(i, "unexpected character %q", c)
	}
}

func scanLiteral(b []byte, i int, lit string) (int, error) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return i, errAt(i, "invalid literal, expected %s", lit)
	}
	return i + len(lit), nil
}

func scanNumber(b []byte, i int) (int, error) {
	start := i
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return i, errAt(start, "invalid number")
	}
	if i < len(b) && b[i] == '.' {
		i++
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return i, errAt(start, "invalid number")
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return i, errAt(start, "invalid number")
		}
	}
	return i, nil
}

// scanString validates the string starting at b[i] == '"' and returns the
// offset past its closing quote and whether it contains escapes.
func scanString(b []byte, i int) (end int, escaped bool, err error) {
	start := i
	i++
	for {
		// Fast path: plain ASCII, eight bytes at a time.
		for i+8 <= len(b) && plainWord(binary.LittleEndian.Uint64(b[i:])) {
			i += 8
		}
		for i < len(b) && plainString[b[i]] {
			i++
		}
		if i >= len(b) {
			return i, escaped, errAt(start, "unterminated string")
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1, escaped, nil
		case c == '\\':
			escaped = true
			if i+1 >= len(b) {
				return i, escaped, errAt(start, "unterminated string")
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) || !isHex4(b[i+2:i+6]) {
					return i, escaped, errAt(i, "invalid \\u escape")
				}
				i += 6
			default:
				return i, escaped, errAt(i, "invalid escape \\%c", b[i+1])
			}
		case c < 0x20:
			return i, escaped, errAt(i, "control character in string")
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size <= 1 {
				return i, escaped, errAt(i, "invalid UTF-8 in string")
			}
			i += size
		}
	}
}

func isHex4(h []byte) bool {
	for _, c := range h {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// memberFunc is called for each member of an object with the key token
// (quotes included) starting at offset ks, whether it holds escapes, and
// the value's span [vs, ve).
type memberFunc func(keyTok []byte, ks int, escaped bool, vs, ve int) error

// scanObject validates the object at b[i] == '{' and calls fn (if not nil)
// for each member, in order.
func scanObject(b []byte, i, depth int, fn memberFunc) (int, error) {
	if depth >= maxDepth {
		return i, errAt(i, "nesting deeper than %d", maxDepth)
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return i, errAt(i, "expected a string key")
		}
		ks := i
		ke, esc, err := scanString(b, i)
		if err != nil {
			return ke, err
		}
		i = skipSpace(b, ke)
		if i >= len(b) || b[i] != ':' {
			return i, errAt(i, "expected ':' after key")
		}
		vs := skipSpace(b, i+1)
		ve, err := scanValue(b, vs, depth+1)
		if err != nil {
			return ve, err
		}
		if fn != nil {
			if err := fn(b[ks:ke], ks, esc, vs, ve); err != nil {
				return ve, err
			}
		}
		i = skipSpace(b, ve)
		if i >= len(b) {
			return i, errAt(i, "unterminated object")
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return i + 1, nil
		default:
			return i, errAt(i, "expected ',' or '}' in object")
		}
	}
}

// elementFunc is called for each element of an array with its span.
type elementFunc func(index, vs, ve int) error

// scanArray validates the array at b[i] == '[' and calls fn (if not nil)
// for each element, in order.
func scanArray(b []byte, i, depth int, fn elementFunc) (int, error) {
	if depth >= maxDepth {
		return i, errAt(i, "nesting deeper than %d", maxDepth)
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return i + 1, nil
	}
	for n := 0; ; n++ {
		vs := i
		ve, err := scanValue(b, vs, depth+1)
		if err != nil {
			return ve, err
		}
		if fn != nil {
			if err := fn(n, vs, ve); err != nil {
				return ve, err
			}
		}
		i = skipSpace(b, ve)
		if i >= len(b) {
			return i, errAt(i, "unterminated array")
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case ']':
			return i + 1, nil
		default:
			return i, errAt(i, "expected ',' or ']' in array")
		}
	}
}

// Valid reports whether b is exactly one valid JSON value (with optional
// surrounding space) whose strings are valid UTF-8.
func Valid(b []byte) bool {
	i := skipSpace(b, 0)
	end, err := scanValue(b, i, 0)
	return err == nil && skipSpace(b, end) == len(b)
}

// nextMember iterates the members of an object that is already known to be
// valid: it is the cheap second pass used while rewriting an event. It
// returns the key span (including quotes), the value span, and the offset
// from which to continue; ok is false after the last member.
func nextMember(b []byte, i int) (ks, ke, vs, ve, next int, ok bool) {
	i = skipSpace(b, i)
	if i < len(b) && (b[i] == '{' || b[i] == ',') {
		i = skipSpace(b, i+1)
	}
	if i >= len(b) || b[i] != '"' {
		return 0, 0, 0, 0, i, false
	}
	ks = i
	ke = skipString(b, i)
	vs = skipSpace(b, skipSpace(b, ke)+1) // past ':'
	ve = skipValid(b, vs)
	return ks, ke, vs, ve, skipSpace(b, ve), true
}

// skipString returns the offset past the valid string at b[i] == '"'.
func skipString(b []byte, i int) int {
	i++
	for {
		q := bytes.IndexByte(b[i:], '"')
		if q < 0 {
			return len(b)
		}
		i += q
		// The quote closes the string unless an odd number of
		// backslashes escapes it.
		n := 0
		for j := i - 1; j >= 0 && b[j] == '\\'; j-- {
			n++
		}
		i++
		if n%2 == 0 {
			return i
		}
	}
}

// skipValid returns the offset past the valid JSON value at b[i].
func skipValid(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	default:
		for i < len(b) {
			switch b[i] {
			case ',', '}', ']', ' ', '\n', '\r', '\t':
				return i
			}
			i++
		}
		return i
	}
}

var errNotString = errors.New("not a string")

// unquote returns the decoded content of the valid JSON string token s
// (including its quotes). Strings without escapes are returned without
// copying when possible.
func unquote(s []byte) (string, error) {
	if len(s) < 2 || s[0] != '"' {
		return "", errNotString
	}
	inner := s[1 : len(s)-1]
	hasEsc := false
	for _, c := range inner {
		if c == '\\' {
			hasEsc = true
			break
		}
	}
	if !hasEsc {
		return string(inner), nil
	}
	out := make([]byte, 0, len(inner))
	for i := 0; i < len(inner); i++ {
		c := inner[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		i++
		switch inner[i] {
		case '"', '\\', '/':
			out = append(out, inner[i])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r := hex4(inner[i+1 : i+5])
			i += 4
			if r >= 0xD800 && r < 0xDC00 && i+6 < len(inner) && inner[i+1] == '\\' && inner[i+2] == 'u' {
				r2 := hex4(inner[i+3 : i+7])
				if r2 >= 0xDC00 && r2 < 0xE000 {
					r = (r-0xD800)<<10 + (r2 - 0xDC00) + 0x10000
					i += 6
				}
			}
			if r >= 0xD800 && r < 0xE000 {
				r = utf8.RuneError
			}
			out = utf8.AppendRune(out, r)
		}
	}
	return string(out), nil
}

func hex4(h []byte) rune {
	var r rune
	for _, c := range h {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		default:
			r |= rune(c - 'A' + 10)
		}
	}
	return r
}
