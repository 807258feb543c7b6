package transform

import (
	"errors"
	"fmt"
	"strings"
)

// maxLevels is how deep a property path may reach below properties,
// traits or context: Segment's transformations select "nested objects up
// to four levels deep".
const maxLevels = 4

// parsePath splits a field path at its dots. A backslash makes the next
// character, a dot or a backslash included, part of the name, as in FQL and
// Segment's transformation editor: `ingredients\.salad` is the one field
// "ingredients.salad". A path has at least one segment and no empty one.
func parsePath(s string) ([]string, error) {
	if s == "" {
		return nil, errors.New("empty path")
	}
	var segs []string
	var cur strings.Builder
	escaped := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case escaped:
			cur.WriteByte(c)
			escaped = false
		case c == '\\':
			escaped = true
		case c == '.':
			if cur.Len() == 0 {
				return nil, fmt.Errorf("path %q has an empty segment", s)
			}
			segs = append(segs, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	if escaped {
		return nil, fmt.Errorf("path %q ends with a lone backslash", s)
	}
	if cur.Len() == 0 {
		return nil, fmt.Errorf("path %q has an empty segment", s)
	}
	return append(segs, cur.String()), nil
}

// formatPath is the inverse of parsePath.
func formatPath(segs []string) string {
	var b strings.Builder
	for i, s := range segs {
		if i > 0 {
			b.WriteByte('.')
		}
		for j := 0; j < len(s); j++ {
			if s[j] == '.' || s[j] == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(s[j])
		}
	}
	return b.String()
}

// overlaps reports whether one path equals the other or lies inside it.
func overlaps(a, b []string) bool {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// strictPrefix reports whether a names an object that holds b.
func strictPrefix(a, b []string) bool { return len(a) < len(b) && overlaps(a, b) }

// parent returns the object that holds the last segment of segs below m.
// With create, missing objects on the way are made. It returns nil when a
// value on the way is not an object, or is missing and create is false;
// nothing is created in that case, because a missing object is only ever
// followed by objects this call made.
func parent(m map[string]any, segs []string, create bool) map[string]any {
	for _, s := range segs[:len(segs)-1] {
		next, ok := m[s]
		if !ok {
			if !create {
				return nil
			}
			n := make(map[string]any, 1)
			m[s] = n
			m = n
			continue
		}
		if m, ok = next.(map[string]any); !ok {
			return nil
		}
	}
	return m
}

// take removes the value at segs below m and returns it.
func take(m map[string]any, segs []string) (any, bool) {
	p := parent(m, segs, false)
	if p == nil {
		return nil, false
	}
	last := segs[len(segs)-1]
	v, ok := p[last]
	if ok {
		delete(p, last)
	}
	return v, ok
}

// set stores v at segs below m, making missing objects on the way. It
// reports false, changing nothing, when a value on the way is not an
// object: a write never replaces data it would have to walk through.
func set(m map[string]any, segs []string, v any) bool {
	p := parent(m, segs, true)
	if p == nil {
		return false
	}
	p[segs[len(segs)-1]] = v
	return true
}

// remove deletes the value at segs below m and reports whether there was
// one.
func remove(m map[string]any, segs []string) bool {
	_, ok := take(m, segs)
	return ok
}
