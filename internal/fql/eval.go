package fql

import "fmt"

// node is a compiled expression. eval must not modify the event and must
// not retain it.
type node interface {
	eval(ev map[string]any) (Value, error)
}

// posError is an evaluation error at a byte offset; Expr.Eval turns it into
// an *Error with line and column.
type posError struct {
	pos int
	msg string
}

func (e *posError) Error() string { return e.msg }

func errAt(pos int, format string, args ...any) error {
	return &posError{pos: pos, msg: fmt.Sprintf(format, args...)}
}

// constNode is a literal.
type constNode struct{ v Value }

func (n *constNode) eval(map[string]any) (Value, error) { return n.v, nil }

// pathNode looks a field path up in the event. A missing field, or a path
// that runs into a value that is neither an object nor a list, is null.
// A segment applied to a list is an index; a segment that is not a
// canonical non-negative integer, or is out of range, gives null.
type pathNode struct {
	segs []pathSeg
	pos  int
}

func (n *pathNode) eval(ev map[string]any) (Value, error) {
	cur, ok := ev[n.segs[0].key]
	if !ok {
		return Value{}, nil
	}
	for _, s := range n.segs[1:] {
		switch c := cur.(type) {
		case map[string]any:
			if cur, ok = c[s.key]; !ok {
				return Value{}, nil
			}
		case []any:
			if s.idx < 0 || s.idx >= len(c) {
				return Value{}, nil
			}
			cur = c[s.idx]
		default:
			return Value{}, nil
		}
	}
	v := fromAny(cur)
	if v.kind == kindInvalid {
		return Value{}, errAt(n.pos, "field holds a value of Go type %T, which FQL does not support", cur)
	}
	return v, nil
}

// listNode is a list literal with elements that are not all constants.
type listNode struct{ elems []node }

func (n *listNode) eval(ev map[string]any) (Value, error) {
	list := make([]any, len(n.elems))
	for i, e := range n.elems {
		v, err := e.eval(ev)
		if err != nil {
			return Value{}, err
		}
		list[i] = v.Interface()
	}
	return Value{kind: KindList, ref: list}, nil
}

// notNode is "!x": it negates a bool, and null counts as false.
type notNode struct {
	x   node
	pos int
}

func (n *notNode) eval(ev map[string]any) (Value, error) {
	v, err := n.x.eval(ev)
	if err != nil {
		return Value{}, err
	}
	switch v.kind {
	case KindBool:
		return Bool(!v.b), nil
	case KindNull:
		return Bool(true), nil
	}
	return Value{}, errAt(n.pos, "'!' needs a bool or null operand, found %s", v.kind)
}

// andNode is "a and b and …", evaluated left to right until a term is
// false or null.
type andNode struct {
	terms []node
	poss  []int
}

func (n *andNode) eval(ev map[string]any) (Value, error) {
	for i, t := range n.terms {
		v, err := t.eval(ev)
		if err != nil {
			return Value{}, err
		}
		switch v.kind {
		case KindBool:
			if !v.b {
				return Bool(false), nil
			}
		case KindNull:
			return Bool(false), nil
		default:
			return Value{}, errAt(n.poss[i], "'and' needs bool or null operands, found %s", v.kind)
		}
	}
	return Bool(true), nil
}

// orNode is "a or b or …", evaluated left to right until a term is true.
type orNode struct {
	terms []node
	poss  []int
}

func (n *orNode) eval(ev map[string]any) (Value, error) {
	for i, t := range n.terms {
		v, err := t.eval(ev)
		if err != nil {
			return Value{}, err
		}
		switch v.kind {
		case KindBool:
			if v.b {
				return Bool(true), nil
			}
		case KindNull:
		default:
			return Value{}, errAt(n.poss[i], "'or' needs bool or null operands, found %s", v.kind)
		}
	}
	return Bool(false), nil
}

// compareNode is one of = != < <= > >=.
type compareNode struct {
	op   tokKind
	l, r node
}

func (n *compareNode) eval(ev map[string]any) (Value, error) {
	l, err := n.l.eval(ev)
	if err != nil {
		return Value{}, err
	}
	r, err := n.r.eval(ev)
	if err != nil {
		return Value{}, err
	}
	switch n.op {
	case tEq:
		return Bool(equal(l, r)), nil
	case tNe:
		return Bool(!equal(l, r)), nil
	}
	if l.kind != KindNumber || r.kind != KindNumber {
		return Bool(false), nil
	}
	switch n.op {
	case tLt:
		return Bool(l.num < r.num), nil
	case tLe:
		return Bool(l.num <= r.num), nil
	case tGt:
		return Bool(l.num > r.num), nil
	default: // tGe
		return Bool(l.num >= r.num), nil
	}
}

// inListNode is "x in [literal, …]" with a constant list.
type inListNode struct {
	x    node
	vals []Value
}

func (n *inListNode) eval(ev map[string]any) (Value, error) {
	v, err := n.x.eval(ev)
	if err != nil {
		return Value{}, err
	}
	for _, w := range n.vals {
		if equal(v, w) {
			return Bool(true), nil
		}
	}
	return Bool(false), nil
}

// inNode is "x in list" where list is computed, typically a field. If it
// is not a list the result is false.
type inNode struct {
	x, list node
}

func (n *inNode) eval(ev map[string]any) (Value, error) {
	v, err := n.x.eval(ev)
	if err != nil {
		return Value{}, err
	}
	l, err := n.list.eval(ev)
	if err != nil {
		return Value{}, err
	}
	for _, e := range l.items() { // empty unless l is a list
		if equal(v, fromAny(e)) {
			return Bool(true), nil
		}
	}
	return Bool(false), nil
}

// call1Node calls a function of one argument.
type call1Node struct {
	name string
	fn   func(Value) (Value, error)
	a    node
	pos  int
}

func (n *call1Node) eval(ev map[string]any) (Value, error) {
	a, err := n.a.eval(ev)
	if err != nil {
		return Value{}, err
	}
	v, err := n.fn(a)
	if err != nil {
		return Value{}, errAt(n.pos, "%s(): %v", n.name, err)
	}
	return v, nil
}

// call2Node calls a function of two arguments.
type call2Node struct {
	name string
	fn   func(Value, Value) (Value, error)
	a, b node
	pos  int
}

func (n *call2Node) eval(ev map[string]any) (Value, error) {
	a, err := n.a.eval(ev)
	if err != nil {
		return Value{}, err
	}
	b, err := n.b.eval(ev)
	if err != nil {
		return Value{}, err
	}
	v, err := n.fn(a, b)
	if err != nil {
		return Value{}, errAt(n.pos, "%s(): %v", n.name, err)
	}
	return v, nil
}
