package fql

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// Error is a compile or evaluation error. It gives the position in the
// expression that the message is about.
type Error struct {
	// Pos is the byte offset in the expression.
	Pos int
	// Line and Col are Pos as a 1-based line and column; the column counts
	// characters (runes), not bytes.
	Line, Col int
	// Msg says what went wrong, lowercase and without trailing punctuation.
	Msg string
}

// Error returns "fql: line:col: message".
func (e *Error) Error() string {
	return fmt.Sprintf("fql: %d:%d: %s", e.Line, e.Col, e.Msg)
}

// errUnsupported reports a value in the event of a Go type encoding/json
// never produces (a struct, a []string, …).
var errUnsupported = errors.New("unsupported Go type in event")

// newError builds an *Error at byte offset pos of src.
func newError(src string, pos int, format string, args ...any) *Error {
	pos = min(max(pos, 0), len(src))
	line, col := 1, 1
	for i := 0; i < pos; {
		r, n := utf8.DecodeRuneInString(src[i:])
		i += n
		if r == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	return &Error{Pos: pos, Line: line, Col: col, Msg: fmt.Sprintf(format, args...)}
}
