package transform

import (
	"errors"
	"strings"

	"github.com/confluxcdp/conflux/internal/event"
	"github.com/confluxcdp/conflux/internal/fql"
)

// matchAll is the condition Segment's Public API writes for a filter or a
// transformation that applies to every event.
const matchAll = "all"

// condition is a compiled "if": an FQL expression, or "all".
type condition struct {
	all  bool
	expr *fql.Expr
}

// compileCondition compiles an "if". It is required; "all" (alone, spaces
// around allowed) matches every event.
func compileCondition(src string) (condition, error) {
	if strings.TrimSpace(src) == "" {
		return condition{}, errors.New("required (an FQL condition, or \"all\")")
	}
	if strings.TrimSpace(src) == matchAll {
		return condition{all: true}, nil
	}
	e, err := fql.Compile(src)
	if err != nil {
		return condition{}, err
	}
	return condition{expr: e}, nil
}

// match reports whether the condition holds for doc: the expression
// evaluates to exactly true. A result of another type is false, as in
// [fql.Expr.Match]; an evaluation error is returned, for the caller to
// decide which way to fail.
func (c condition) match(doc event.Doc) (bool, error) {
	if c.all {
		return true, nil
	}
	v, err := c.expr.Eval(doc)
	if err != nil {
		return false, err
	}
	b, ok := v.AsBool()
	return ok && b, nil
}
