package fql

import "unicode/utf8"

// maxDepth bounds the nesting of parentheses, lists, function calls and '!'
// so that hostile expressions cannot exhaust the stack.
const maxDepth = 100

// parser is a recursive-descent parser over the token slice. Grammar, from
// loosest to tightest binding:
//
//	expr    = and { "or" and }
//	and     = not { "and" not }
//	not     = "!" not | compare
//	compare = operand [ ( "=" | "!=" | "<" | "<=" | ">" | ">=" | "in" ) operand ]
//	operand = string | number | "true" | "false" | "null" | path
//	        | name "(" [ expr { "," expr } ] ")"
//	        | "[" [ expr { "," expr } ] "]"
//	        | "(" expr ")"
type parser struct {
	src   string
	toks  []token
	i     int
	depth int
	// inSeq is set while parsing list elements and function arguments,
	// where a missing ',' is a likelier mistake than a missing operator.
	inSeq bool
}

func (p *parser) tok() token { return p.toks[p.i] }

// prev describes the token before the current one, for "after …" messages.
func (p *parser) prev() string {
	if p.i == 0 {
		return ""
	}
	return p.describe(p.toks[p.i-1])
}

func (p *parser) next() { p.i++ }

func (p *parser) errorf(pos int, format string, args ...any) *Error {
	return newError(p.src, pos, format, args...)
}

// describe names a token for error messages: "')'", "'and'", "string 'x'",
// "field properties.x", "end of expression".
func (p *parser) describe(t token) string {
	raw := clip(p.src[t.pos:t.end])
	switch t.kind {
	case tEOF:
		return "end of expression"
	case tString:
		return "string " + raw
	case tNumber:
		return "number " + raw
	case tPath:
		return "field " + raw
	}
	return "'" + raw + "'"
}

// clip shortens s for an error message.
func clip(s string) string {
	const limit = 32
	if len(s) <= limit {
		return s
	}
	n := limit
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func (p *parser) enter(pos int) *Error {
	p.depth++
	if p.depth > maxDepth {
		return p.errorf(pos, "expression nested more than %d levels deep", maxDepth)
	}
	return nil
}

func (p *parser) leave() { p.depth-- }

// parse parses the whole expression.
func (p *parser) parse() (node, *Error) {
	n, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	if t := p.tok(); t.kind != tEOF {
		return nil, p.errorf(t.pos, "expected 'and', 'or' or end of expression, found %s", p.describe(t))
	}
	return n, nil
}

func (p *parser) parseOr() (node, *Error) {
	start := p.tok().pos
	first, err := p.parseAnd()
	if err != nil || p.tok().kind != tOr {
		return first, err
	}
	n := &orNode{terms: []node{first}, poss: []int{start}}
	for p.tok().kind == tOr {
		p.next()
		pos := p.tok().pos
		t, err := p.parseAnd()
		if err != nil {
			return nil, err
		}
		n.terms = append(n.terms, t)
		n.poss = append(n.poss, pos)
	}
	return n, nil
}

func (p *parser) parseAnd() (node, *Error) {
	start := p.tok().pos
	first, err := p.parseNot()
	if err != nil || p.tok().kind != tAnd {
		return first, err
	}
	n := &andNode{terms: []node{first}, poss: []int{start}}
	for p.tok().kind == tAnd {
		p.next()
		pos := p.tok().pos
		t, err := p.parseNot()
		if err != nil {
			return nil, err
		}
		n.terms = append(n.terms, t)
		n.poss = append(n.poss, pos)
	}
	return n, nil
}

func (p *parser) parseNot() (node, *Error) {
	t := p.tok()
	if t.kind != tNot {
		return p.parseCompare()
	}
	if err := p.enter(t.pos); err != nil {
		return nil, err
	}
	defer p.leave()
	p.next()
	x, err := p.parseNot()
	if err != nil {
		return nil, err
	}
	return &notNode{x: x, pos: t.pos}, nil
}

func isCompare(k tokKind) bool {
	switch k {
	case tEq, tNe, tLt, tLe, tGt, tGe, tIn:
		return true
	}
	return false
}

// startsOperand reports whether a token of kind k can begin an operand.
func startsOperand(k tokKind) bool {
	switch k {
	case tPath, tString, tNumber, tTrue, tFalse, tNull, tLParen, tLBrack, tNot:
		return true
	}
	return false
}

func (p *parser) parseCompare() (node, *Error) {
	left, err := p.parseOperand()
	if err != nil {
		return nil, err
	}
	op := p.tok()
	if !isCompare(op.kind) {
		if startsOperand(op.kind) && !p.inSeq {
			return nil, p.errorf(op.pos, "expected an operator such as '=' after %s, found %s", p.prev(), p.describe(op))
		}
		return left, nil
	}
	p.next()
	right, err := p.parseOperand()
	if err != nil {
		return nil, err
	}
	if t := p.tok(); isCompare(t.kind) {
		return nil, p.errorf(t.pos, "cannot chain %s after a comparison; join comparisons with 'and' or 'or'", p.describe(t))
	}
	if op.kind == tIn {
		if c, ok := right.(*constNode); ok && c.v.kind == KindList {
			vals := make([]Value, len(c.v.items()))
			for i, x := range c.v.items() {
				vals[i] = fromAny(x)
			}
			return &inListNode{x: left, vals: vals}, nil
		}
		return &inNode{x: left, list: right}, nil
	}
	return &compareNode{op: op.kind, l: left, r: right}, nil
}

func (p *parser) parseOperand() (node, *Error) {
	t := p.tok()
	switch t.kind {
	case tString:
		p.next()
		return &constNode{v: String(t.str)}, nil
	case tNumber:
		p.next()
		return &constNode{v: Number(t.num)}, nil
	case tTrue, tFalse:
		p.next()
		return &constNode{v: Bool(t.kind == tTrue)}, nil
	case tNull:
		p.next()
		return &constNode{}, nil
	case tPath:
		p.next()
		if p.tok().kind == tLParen {
			if !t.plain {
				return nil, p.errorf(p.tok().pos, "unexpected '(' after field %s: only functions take arguments", clip(p.src[t.pos:t.end]))
			}
			return p.parseCall(t)
		}
		return &pathNode{segs: t.segs, pos: t.pos}, nil
	case tLParen:
		if err := p.enter(t.pos); err != nil {
			return nil, err
		}
		defer p.leave()
		p.next()
		inSeq := p.inSeq
		p.inSeq = false
		x, err := p.parseOr()
		p.inSeq = inSeq
		if err != nil {
			return nil, err
		}
		switch c := p.tok(); c.kind {
		case tRParen:
			p.next()
			return x, nil
		case tEOF:
			return nil, p.errorf(t.pos, "unclosed '(': expected ')', found end of expression")
		default:
			return nil, p.errorf(c.pos, "expected 'and', 'or' or ')', found %s", p.describe(c))
		}
	case tLBrack:
		return p.parseList()
	}
	if p.i == 0 {
		return nil, p.errorf(t.pos, "expected an expression, found %s", p.describe(t))
	}
	return nil, p.errorf(t.pos, "expected a value after %s, found %s", p.prev(), p.describe(t))
}

// parseArgs parses "expr { , expr } close" after an opening token at open,
// which the caller has consumed. what names the construct in messages.
func (p *parser) parseArgs(open token, close tokKind, what string) ([]node, *Error) {
	inSeq := p.inSeq
	p.inSeq = true
	defer func() { p.inSeq = inSeq }()
	var xs []node
	if p.tok().kind == close {
		p.next()
		return xs, nil
	}
	closing := "')'"
	if close == tRBrack {
		closing = "']'"
	}
	for {
		x, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		xs = append(xs, x)
		switch t := p.tok(); t.kind {
		case tComma:
			p.next()
		case close:
			p.next()
			return xs, nil
		case tEOF:
			return nil, p.errorf(open.pos, "unterminated %s: expected ',' or %s, found end of expression", what, closing)
		default:
			return nil, p.errorf(t.pos, "expected ',' or %s in %s, found %s", closing, what, p.describe(t))
		}
	}
}

func (p *parser) parseList() (node, *Error) {
	open := p.tok()
	if err := p.enter(open.pos); err != nil {
		return nil, err
	}
	defer p.leave()
	p.next()
	elems, err := p.parseArgs(open, tRBrack, "list")
	if err != nil {
		return nil, err
	}
	list := make([]any, len(elems))
	for i, e := range elems {
		c, ok := e.(*constNode)
		if !ok {
			return &listNode{elems: elems}, nil
		}
		list[i] = c.v.Interface()
	}
	return &constNode{v: Value{kind: KindList, ref: list}}, nil
}

func (p *parser) parseCall(name token) (node, *Error) {
	fname := p.src[name.pos:name.end]
	spec, ok := lookupFunc(fname)
	if !ok {
		return nil, p.errorf(name.pos, "unknown function %q", fname)
	}
	open := p.tok()
	if err := p.enter(open.pos); err != nil {
		return nil, err
	}
	defer p.leave()
	p.next()
	args, err := p.parseArgs(open, tRParen, "arguments of "+fname+"()")
	if err != nil {
		return nil, err
	}
	if len(args) != spec.arity {
		plural := "s"
		if spec.arity == 1 {
			plural = ""
		}
		return nil, p.errorf(name.pos, "%s() takes %d argument%s, found %d", fname, spec.arity, plural, len(args))
	}
	if spec.arity == 1 {
		return &call1Node{name: fname, fn: spec.f1, a: args[0], pos: name.pos}, nil
	}
	return &call2Node{name: fname, fn: spec.f2, a: args[0], b: args[1], pos: name.pos}, nil
}
