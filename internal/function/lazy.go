package function

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"unicode/utf8"

	"github.com/dop251/goja"
)

// lazyObject is an object of the event a handler is given: the code sees
// a plain object, but a value is read from the event's JSON only when the
// code reads it, and an object the code left unchanged is written back as
// its JSON. An insert function that sets one property so converts one
// object's keys and writes the rest of the event as it came, instead of
// building and reading back a JavaScript value for every field (most of a
// call's time when the event is read whole).
//
// Objects are lazy all the way down; an array, once read, is a plain
// JavaScript array (and written back in full, since the code may have
// changed it in place).
type lazyObject struct {
	v    *vm
	raw  string // the object's JSON
	keys []string
	// spans are the JSON values of the keys the code has not replaced.
	spans map[string]span
	// vals are the values read or set; set marks those set (or read as
	// arrays, which may have been changed in place).
	vals    map[string]goja.Value
	set     map[string]bool
	kids    map[string]*lazyObject // the objects read, by key
	deleted bool                   // a key was deleted or set
}

type span struct{ start, end int }

// lazyValue returns the JSON text s as the handler's value: a lazy object
// for an object; a plain value otherwise, or when s does not scan.
func (v *vm) lazyValue(s string) (goja.Value, error) {
	p := jsonParser{rt: v.rt, proto: v.objectProto, s: s}
	p.space()
	// Valid whole, so that what is written back unread is JSON.
	if p.i < len(s) && s[p.i] == '{' && json.Valid([]byte(s)) {
		if l, ok := v.newLazy(s[p.i:]); ok {
			return l.object(), nil
		}
	}
	return parseJSON(v.rt, v.objectProto, s)
}

// newLazy scans the top level of object s; false when s is not one
// whole JSON object (the eager parser then says what is wrong).
func (v *vm) newLazy(s string) (*lazyObject, bool) {
	l := &lazyObject{v: v, raw: s, spans: map[string]span{}}
	p := jsonParser{rt: v.rt, s: s}
	err := p.members(func(key string) error {
		if !utf8.ValidString(key) {
			key = string([]rune(key)) // as JavaScript reads it: U+FFFD for each bad byte
			l.deleted = true          // and written so
		}
		start := p.i
		if !skipValue(&p) {
			return errNoValue
		}
		if _, dup := l.spans[key]; !dup {
			l.keys = append(l.keys, key)
		} else {
			l.deleted = true // written again without the duplicate
		}
		l.spans[key] = span{start, p.i} // the last of duplicates wins, as in JSON.parse
		return nil
	})
	if p.space(); err != nil || p.i != len(s) {
		return nil, false
	}
	if orderKeys(l.keys) {
		l.deleted = true // written again in JavaScript's order
	}
	return l, true
}

// errNoValue is a member without a value, for newLazy.
var errNoValue = errors.New("no JSON value")

// orderKeys puts keys in the order JavaScript gives an object's own
// keys: array indexes ascending, then the others as they were added. It
// reports whether that moved any.
func orderKeys(keys []string) bool {
	moved := false
	for i := 1; i < len(keys); i++ {
		if _, ok := arrayIndex(keys[i]); !ok {
			continue
		}
		// Insertion: indexes are few, where there are any.
		for j := i; j > 0; j-- {
			a, aIdx := arrayIndex(keys[j-1])
			b, _ := arrayIndex(keys[j])
			if aIdx && a <= b {
				break
			}
			keys[j-1], keys[j] = keys[j], keys[j-1]
			moved = true
		}
	}
	return moved
}

// arrayIndex reports whether key is an array index ("0", "7", not "07"
// or "-1"), and its value.
func arrayIndex(key string) (uint64, bool) {
	if key == "" || len(key) > 10 || (key[0] == '0' && len(key) > 1) {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(key); i++ {
		c := key[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, n < 1<<32-1
}

// skipValue moves p past one JSON value; false if there is none.
func skipValue(p *jsonParser) bool {
	depth := 0
	for p.i < len(p.s) {
		switch c := p.s[p.i]; c {
		case '"':
			if !skipString(p) {
				return false
			}
		case '{', '[':
			depth++
			p.i++
		case '}', ']':
			if depth == 0 {
				return false
			}
			depth--
			p.i++
		case ',', ':', ' ', '\t', '\n', '\r':
			if depth == 0 {
				return false
			}
			p.i++
		default:
			if c < 0x20 || c >= 0x80 {
				return false
			}
			p.i++
			// A number or a literal: up to the next delimiter.
			for p.i < len(p.s) {
				if d := p.s[p.i]; d == ',' || d == '}' || d == ']' || d == ' ' || d == '\t' || d == '\n' || d == '\r' || d == ':' || d == '"' {
					break
				}
				p.i++
			}
		}
		if depth == 0 {
			return true
		}
	}
	return false
}

func skipString(p *jsonParser) bool {
	for j := p.i + 1; j < len(p.s); j++ {
		switch p.s[j] {
		case '\\':
			j++
		case '"':
			p.i = j + 1
			return true
		}
	}
	return false
}

func (l *lazyObject) object() *goja.Object { return l.v.rt.NewDynamicObject(l) }

// lazyType is the export type of a lazy object's JavaScript value.
var lazyType = reflect.TypeOf((*lazyObject)(nil))

// Get reads key's value from the JSON the first time.
func (l *lazyObject) Get(key string) goja.Value {
	if val, ok := l.vals[key]; ok {
		return val
	}
	sp, ok := l.spans[key]
	if !ok {
		return nil
	}
	text := l.raw[sp.start:sp.end]
	var val goja.Value
	if text[0] == '{' {
		if kid, ok := l.v.newLazy(text); ok {
			if l.kids == nil {
				l.kids = map[string]*lazyObject{}
			}
			l.kids[key] = kid
			val = kid.object()
		}
	}
	if val == nil {
		var err error
		if val, err = parseJSON(l.v.rt, l.v.objectProto, text); err != nil {
			panic(l.v.newError(l.v.syntaxError, err.Error()))
		}
		if text[0] == '[' || text[0] == '{' {
			l.mark(key) // changeable in place: written back in full
		}
	}
	if l.vals == nil {
		l.vals = map[string]goja.Value{}
	}
	l.vals[key] = val
	return val
}

func (l *lazyObject) mark(key string) {
	if l.set == nil {
		l.set = map[string]bool{}
	}
	l.set[key] = true
}

// Set replaces key's value (or adds the key, last).
func (l *lazyObject) Set(key string, val goja.Value) bool {
	if _, ok := l.spans[key]; !ok {
		if _, ok := l.vals[key]; !ok {
			l.keys = append(l.keys, key)
			orderKeys(l.keys)
		}
	}
	if l.vals == nil {
		l.vals = map[string]goja.Value{}
	}
	l.vals[key] = val
	l.mark(key)
	delete(l.kids, key)
	l.deleted = true
	return true
}

// Has reports whether the object has key.
func (l *lazyObject) Has(key string) bool {
	if _, ok := l.vals[key]; ok {
		return true
	}
	_, ok := l.spans[key]
	return ok
}

// Delete removes key.
func (l *lazyObject) Delete(key string) bool {
	if !l.Has(key) {
		return true
	}
	delete(l.spans, key)
	delete(l.vals, key)
	delete(l.set, key)
	delete(l.kids, key)
	l.keys = slices.DeleteFunc(l.keys, func(k string) bool { return k == key })
	l.deleted = true
	return true
}

// Keys are the object's keys in order.
func (l *lazyObject) Keys() []string { return slices.Clone(l.keys) }

// changed reports whether the object differs from its JSON.
func (l *lazyObject) changed() bool {
	if l.deleted || len(l.set) > 0 {
		return true
	}
	for _, kid := range l.kids {
		if kid.changed() {
			return true
		}
	}
	return false
}

// write writes the object: its JSON where nothing changed.
func (l *lazyObject) write(w *jsonWriter) {
	if !l.changed() {
		w.buf = append(w.buf, l.raw...)
		return
	}
	w.buf = append(w.buf, '{')
	empty := true
	for _, k := range l.keys {
		off := len(w.buf)
		if !empty {
			w.buf = append(w.buf, ',')
		}
		w.quoteString(k)
		w.buf = append(w.buf, ':')
		switch kid, sp := l.kids[k], l.spans[k]; {
		case l.set[k]:
			if !w.property(nil, k, l.vals[k]) {
				w.buf = w.buf[:off]
				continue
			}
		case kid != nil:
			w.push(l.vals[k].(*goja.Object))
			kid.write(w)
			w.pop()
		default:
			w.buf = append(w.buf, l.raw[sp.start:sp.end]...)
		}
		empty = false
		w.checkLength()
	}
	w.buf = append(w.buf, '}')
}
