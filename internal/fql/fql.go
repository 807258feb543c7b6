package fql

import "errors"

// Expr is a compiled FQL expression. It is immutable and safe for
// concurrent use by multiple goroutines.
type Expr struct {
	src  string
	root node
}

// Compile parses expr once, checking its syntax, the names of the functions
// it calls and their numbers of arguments. An invalid expression returns an
// *[Error] giving the position and what was expected there.
func Compile(expr string) (*Expr, error) {
	toks, lerr := lex(expr)
	if lerr != nil {
		return nil, lerr
	}
	p := parser{src: expr, toks: toks}
	root, perr := p.parse()
	if perr != nil {
		return nil, perr
	}
	return &Expr{src: expr, root: root}, nil
}

// String returns the source of e, as given to [Compile].
func (e *Expr) String() string { return e.src }

// Eval evaluates e against event, a Segment message decoded by
// encoding/json into map[string]any (numbers are float64). It neither
// modifies nor retains the event, and a nil event has no fields.
//
// An evaluation error is an *[Error] at the operator or function that
// rejected its operands, for example "'and' needs bool or null operands,
// found string".
func (e *Expr) Eval(event map[string]any) (Value, error) {
	v, err := e.root.eval(event)
	if err != nil {
		if pe, ok := errors.AsType[*posError](err); ok {
			return Value{}, newError(e.src, pe.pos, "%s", pe.msg)
		}
		return Value{}, err
	}
	return v, nil
}

// Match reports whether e evaluates to exactly the boolean true for event.
// Any other result, and any evaluation error, is false. Callers that must
// fail closed in the other direction (a drop filter whose condition cannot
// be evaluated) should call [Expr.Eval] and handle the error themselves.
func (e *Expr) Match(event map[string]any) bool {
	v, err := e.root.eval(event)
	return err == nil && v.kind == KindBool && v.b
}
