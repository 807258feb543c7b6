package fql

import "slices"

// Fields returns the top-level fields of an event that e reads, in the
// order they first appear (properties for properties.total), so that a
// caller may decode only those. An expression without field paths reads
// none.
func (e *Expr) Fields() []string {
	var out []string
	walk(e.root, func(n node) {
		if p, ok := n.(*pathNode); ok && !slices.Contains(out, p.segs[0].key) {
			out = append(out, p.segs[0].key)
		}
	})
	return out
}

// walk calls fn for n and every node below it.
func walk(n node, fn func(node)) {
	fn(n)
	switch t := n.(type) {
	case *listNode:
		for _, e := range t.elems {
			walk(e, fn)
		}
	case *notNode:
		walk(t.x, fn)
	case *andNode:
		for _, e := range t.terms {
			walk(e, fn)
		}
	case *orNode:
		for _, e := range t.terms {
			walk(e, fn)
		}
	case *compareNode:
		walk(t.l, fn)
		walk(t.r, fn)
	case *inListNode:
		walk(t.x, fn)
	case *inNode:
		walk(t.x, fn)
		walk(t.list, fn)
	case *call1Node:
		walk(t.a, fn)
	case *call2Node:
		walk(t.a, fn)
		walk(t.b, fn)
	}
}
