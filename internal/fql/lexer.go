package fql

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// tokKind is the kind of a lexical token.
type tokKind uint8

const (
	tEOF tokKind = iota
	tPath
	tString
	tNumber
	tTrue
	tFalse
	tNull
	tAnd
	tOr
	tIn
	tNot
	tEq
	tNe
	tLt
	tLe
	tGt
	tGe
	tLParen
	tRParen
	tLBrack
	tRBrack
	tComma
)

// pathSeg is one segment of a field path, unescaped. idx is the segment as
// a list index, or -1 if it is not a canonical non-negative integer.
type pathSeg struct {
	key string
	idx int
}

// token is a lexical token. pos and end delimit its source text.
type token struct {
	kind     tokKind
	pos, end int
	str      string    // tString: the decoded string
	num      float64   // tNumber
	segs     []pathSeg // tPath
	plain    bool      // tPath: one segment without escapes, so it may name a function
}

// maxIndex bounds path segments read as list indexes.
const maxIndex = 1 << 30

// lex splits src into tokens, ending with tEOF.
func lex(src string) ([]token, *Error) {
	var toks []token
	for i := 0; ; {
		t, err := lexOne(src, i)
		if err != nil {
			return nil, err
		}
		toks = append(toks, t)
		if t.kind == tEOF {
			return toks, nil
		}
		i = t.end
	}
}

// isIdentByte reports whether c may appear unescaped in a field name.
func isIdentByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// isPunct reports whether c is ASCII punctuation.
func isPunct(c byte) bool {
	return '!' <= c && c <= '/' || ':' <= c && c <= '@' || '[' <= c && c <= '`' || '{' <= c && c <= '~'
}

// lexOne reads the token starting at or after byte offset i.
func lexOne(src string, i int) (token, *Error) {
	for i < len(src) && isSpace(src[i]) {
		i++
	}
	if i == len(src) {
		return token{kind: tEOF, pos: i, end: i}, nil
	}
	c := src[i]
	op := func(k tokKind, n int) (token, *Error) { return token{kind: k, pos: i, end: i + n}, nil }
	switch c {
	case '\'', '"':
		return lexString(src, i)
	case '(':
		return op(tLParen, 1)
	case ')':
		return op(tRParen, 1)
	case '[':
		return op(tLBrack, 1)
	case ']':
		return op(tRBrack, 1)
	case ',':
		return op(tComma, 1)
	case '=':
		if strings.HasPrefix(src[i:], "==") {
			return token{}, newError(src, i, "'==' is not an operator; use '='")
		}
		return op(tEq, 1)
	case '!':
		if strings.HasPrefix(src[i:], "!=") {
			return op(tNe, 2)
		}
		return op(tNot, 1)
	case '<':
		if strings.HasPrefix(src[i:], "<=") {
			return op(tLe, 2)
		}
		return op(tLt, 1)
	case '>':
		if strings.HasPrefix(src[i:], ">=") {
			return op(tGe, 2)
		}
		return op(tGt, 1)
	case '&':
		if strings.HasPrefix(src[i:], "&&") {
			return token{}, newError(src, i, "'&&' is not an operator; use 'and'")
		}
	case '|':
		if strings.HasPrefix(src[i:], "||") {
			return token{}, newError(src, i, "'||' is not an operator; use 'or'")
		}
	case '+', '-':
		if i+1 < len(src) && isDigit(src[i+1]) {
			return lexNumber(src, i)
		}
	case '\\', '_':
		return lexPath(src, i)
	}
	switch {
	case isDigit(c):
		return lexNumber(src, i)
	case 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z':
		return lexPath(src, i)
	}
	r, _ := utf8.DecodeRuneInString(src[i:])
	if unicode.IsLetter(r) {
		return token{}, newError(src, i, "character %q in a field name must be escaped with '\\'", r)
	}
	return token{}, newError(src, i, "unexpected character %q", r)
}

// scanNumber returns the end of the number that starts at src[i]: an
// optional sign, digits, an optional fraction and an optional exponent. It
// returns a message instead if the number is malformed there.
func scanNumber(src string, i int) (end int, msg string) {
	if i < len(src) && (src[i] == '+' || src[i] == '-') {
		i++
	}
	start := i
	for i < len(src) && isDigit(src[i]) {
		i++
	}
	if i == start {
		return i, "needs a digit"
	}
	if i < len(src) && src[i] == '.' {
		i++
		if i == len(src) || !isDigit(src[i]) {
			return i, "needs a digit after the decimal point"
		}
		for i < len(src) && isDigit(src[i]) {
			i++
		}
	}
	if i < len(src) && (src[i] == 'e' || src[i] == 'E') {
		i++
		if i < len(src) && (src[i] == '+' || src[i] == '-') {
			i++
		}
		if i == len(src) || !isDigit(src[i]) {
			return i, "needs a digit in its exponent"
		}
		for i < len(src) && isDigit(src[i]) {
			i++
		}
	}
	return i, ""
}

// parseNumber converts the text of a well-formed number.
func parseNumber(s string) (float64, bool) {
	f, err := strconv.ParseFloat(s, 64)
	return f, err == nil
}

func lexNumber(src string, i int) (token, *Error) {
	end, msg := scanNumber(src, i)
	if msg != "" {
		return token{}, newError(src, end, "number %s %s", src[i:end], msg)
	}
	if end < len(src) && (isIdentByte(src[end]) || src[end] == '.' || src[end] == '\\') {
		r, _ := utf8.DecodeRuneInString(src[end:])
		return token{}, newError(src, end, "unexpected %q after number %s", r, src[i:end])
	}
	f, ok := parseNumber(src[i:end])
	if !ok {
		return token{}, newError(src, i, "number %s is out of range", src[i:end])
	}
	return token{kind: tNumber, pos: i, end: end, num: f}, nil
}

// lexString reads a quoted string. Both quote characters work. A backslash
// must be followed by ASCII punctuation: \\, \' and \" stand for the
// character itself, and any other escape (\*, \?, \[ …) is kept with its
// backslash, so that glob patterns reach match() unchanged.
func lexString(src string, i int) (token, *Error) {
	quote := src[i]
	j := i + 1
	// Fast path: no escapes.
	for j < len(src) && src[j] != quote && src[j] != '\\' {
		j++
	}
	if j < len(src) && src[j] == quote {
		return token{kind: tString, pos: i, end: j + 1, str: src[i+1 : j]}, nil
	}
	var b strings.Builder
	b.WriteString(src[i+1 : j])
	for j < len(src) {
		c := src[j]
		switch {
		case c == quote:
			return token{kind: tString, pos: i, end: j + 1, str: b.String()}, nil
		case c != '\\':
			b.WriteByte(c)
			j++
			continue
		}
		if j+1 == len(src) {
			break
		}
		e := src[j+1]
		switch {
		case e == '\\' || e == '\'' || e == '"':
			b.WriteByte(e)
		case isPunct(e):
			b.WriteByte('\\')
			b.WriteByte(e)
		default:
			r, _ := utf8.DecodeRuneInString(src[j+1:])
			return token{}, newError(src, j, "invalid escape '\\%c' in string: only \\\\, \\', \\\" and glob escapes such as \\* are allowed", r)
		}
		j += 2
	}
	return token{}, newError(src, i, "unterminated string: expected a closing %c", quote)
}

// lexPath reads a field path: segments of [A-Za-z0-9_-] and backslash
// escapes, separated by dots.
func lexPath(src string, i int) (token, *Error) {
	t := token{kind: tPath, pos: i, plain: true}
	j := i
	for {
		start := j
		var b []byte // the unescaped segment, once an escape was seen
		for j < len(src) {
			c := src[j]
			if isIdentByte(c) {
				if b != nil {
					b = append(b, c)
				}
				j++
				continue
			}
			if c == '\\' {
				if j+1 == len(src) {
					return token{}, newError(src, j, "expected a character after '\\' in field name")
				}
				if b == nil {
					b = append([]byte{}, src[start:j]...)
				}
				_, n := utf8.DecodeRuneInString(src[j+1:])
				b = append(b, src[j+1:j+1+n]...)
				j += 1 + n
				t.plain = false
				continue
			}
			if c >= utf8.RuneSelf {
				if r, _ := utf8.DecodeRuneInString(src[j:]); unicode.IsLetter(r) || unicode.IsDigit(r) {
					return token{}, newError(src, j, "character %q in a field name must be escaped with '\\'", r)
				}
			}
			break
		}
		if j == start {
			if j < len(src) {
				r, _ := utf8.DecodeRuneInString(src[j:])
				return token{}, newError(src, j, "expected a field name after '.', found %q", r)
			}
			return token{}, newError(src, j, "expected a field name after '.', found end of expression")
		}
		key := src[start:j]
		if b != nil {
			key = string(b)
		}
		t.segs = append(t.segs, pathSeg{key: key, idx: segIndex(key)})
		if j < len(src) && src[j] == '.' {
			j++
			t.plain = false
			continue
		}
		break
	}
	t.end = j
	if t.plain {
		switch src[i:j] {
		case "and":
			t.kind = tAnd
		case "or":
			t.kind = tOr
		case "in":
			t.kind = tIn
		case "true":
			t.kind = tTrue
		case "false":
			t.kind = tFalse
		case "null":
			t.kind = tNull
		}
		if t.kind != tPath {
			t.segs = nil
		}
	}
	return t, nil
}

// segIndex returns key as a list index, or -1 unless key is a canonical
// non-negative decimal integer ("0", "12", not "012" or "-1").
func segIndex(key string) int {
	if key == "" || len(key) > 1 && key[0] == '0' {
		return -1
	}
	n := 0
	for i := 0; i < len(key); i++ {
		if !isDigit(key[i]) {
			return -1
		}
		n = n*10 + int(key[i]-'0')
		if n > maxIndex {
			return -1
		}
	}
	return n
}
