package function

import (
	"math"
	"math/big"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/dop251/goja"
)

// JSON.parse and JSON.stringify in Go, for the interpreters: the events in
// and out of every call pass through them, and goja's own are several times
// slower (its JSON.parse reads through encoding/json's token decoder) and
// its JSON.stringify takes time quadratic in the nesting depth, without
// looking at the call's deadline. These keep JSON.parse and JSON.stringify
// semantics (reviver, replacer, space, toJSON, wrapper objects, cycles),
// bound the nesting depth and the result's length, and stop when the
// call's time is up.

// maxJSONDepth bounds how deeply values nest in JSON text read or written:
// deeper is an error rather than a goroutine stack grown without limit.
const maxJSONDepth = 10000

// jsonError is a SyntaxError of JSON text.
type jsonError struct{ msg string }

func (e *jsonError) Error() string { return e.msg }

// jsonParser reads JSON text into values of one interpreter.
type jsonParser struct {
	rt    *goja.Runtime
	proto *goja.Object // Object.prototype
	s     string
	i     int
	depth int
	buf   []byte
	items []any
}

// parseJSON is JSON.parse(s) without a reviver; objectProto is the
// interpreter's Object.prototype.
func parseJSON(rt *goja.Runtime, objectProto *goja.Object, s string) (goja.Value, error) {
	p := jsonParser{rt: rt, proto: objectProto, s: s}
	p.space()
	v, err := p.value()
	if err != nil {
		return nil, err
	}
	p.space()
	if p.i < len(p.s) {
		return nil, p.unexpected()
	}
	return v, nil
}

func (p *jsonParser) unexpected() error {
	if p.i >= len(p.s) {
		return &jsonError{"Unexpected end of JSON input"}
	}
	r, _ := utf8.DecodeRuneInString(p.s[p.i:])
	return &jsonError{"Unexpected token " + strconv.QuoteRune(r) + " in JSON at position " + strconv.Itoa(p.i)}
}

func (p *jsonParser) space() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *jsonParser) value() (goja.Value, error) {
	if p.i >= len(p.s) {
		return nil, p.unexpected()
	}
	switch c := p.s[p.i]; {
	case c == '{':
		return p.object()
	case c == '[':
		return p.array()
	case c == '"':
		s, err := p.str()
		if err != nil {
			return nil, err
		}
		return s, nil
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	case strings.HasPrefix(p.s[p.i:], "true"):
		p.i += 4
		return p.rt.ToValue(true), nil
	case strings.HasPrefix(p.s[p.i:], "false"):
		p.i += 5
		return p.rt.ToValue(false), nil
	case strings.HasPrefix(p.s[p.i:], "null"):
		p.i += 4
		return goja.Null(), nil
	}
	return nil, p.unexpected()
}

func (p *jsonParser) enter() error {
	p.depth++
	if p.depth > maxJSONDepth {
		return &jsonError{"JSON nests deeper than " + strconv.Itoa(maxJSONDepth) + " levels"}
	}
	return nil
}

func (p *jsonParser) object() (goja.Value, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	// The object is filled without a prototype, then given
	// Object.prototype: setting its properties is cheaper so (no setter to
	// look for up the chain), and __proto__ is a data property, as
	// JSON.parse makes it.
	obj := p.rt.CreateObject(nil)
	err := p.members(func(key string) error {
		val, err := p.value()
		if err != nil {
			return err
		}
		return obj.Set(key, val)
	})
	if err != nil {
		return nil, err
	}
	return obj, obj.SetPrototype(p.proto)
}

// members reads the object at p.i, calling member with each key when p
// is at its value; member reads the value (or moves past it).
func (p *jsonParser) members(member func(key string) error) error {
	p.i++ // {
	p.space()
	if p.i < len(p.s) && p.s[p.i] == '}' {
		p.i++
		return nil
	}
	for {
		if p.i >= len(p.s) || p.s[p.i] != '"' {
			return p.unexpected()
		}
		key, err := p.key()
		if err != nil {
			return err
		}
		p.space()
		if p.i >= len(p.s) || p.s[p.i] != ':' {
			return p.unexpected()
		}
		p.i++
		p.space()
		if err := member(key); err != nil {
			return err
		}
		p.space()
		if p.i >= len(p.s) {
			return p.unexpected()
		}
		switch p.s[p.i] {
		case ',':
			p.i++
			p.space()
		case '}':
			p.i++
			return nil
		default:
			return p.unexpected()
		}
	}
}

func (p *jsonParser) array() (goja.Value, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	p.i++ // [
	p.space()
	if p.i < len(p.s) && p.s[p.i] == ']' {
		p.i++
		return p.rt.NewArray(), nil
	}
	// The items go on a stack shared by the nested arrays; NewArray copies
	// them out.
	mark := len(p.items)
	defer func() { p.items = p.items[:mark] }()
	for {
		val, err := p.value()
		if err != nil {
			return nil, err
		}
		p.items = append(p.items, val)
		p.space()
		if p.i >= len(p.s) {
			return nil, p.unexpected()
		}
		switch p.s[p.i] {
		case ',':
			p.i++
			p.space()
		case ']':
			p.i++
			return p.rt.NewArray(p.items[mark:]...), nil
		default:
			return nil, p.unexpected()
		}
	}
}

// key reads a string for an object key, as a Go string.
func (p *jsonParser) key() (string, error) {
	start := p.i + 1
	for j := start; j < len(p.s); j++ {
		switch c := p.s[j]; {
		case c == '"':
			p.i = j + 1
			return p.s[start:j], nil
		case c == '\\' || c < 0x20:
			v, err := p.str()
			if err != nil {
				return "", err
			}
			return v.String(), nil
		}
	}
	p.i = len(p.s)
	return "", p.unexpected()
}

// str reads a string. Without escapes it is a part of the text; lone
// surrogates escaped (\ud800) are kept as JSON.parse keeps them.
func (p *jsonParser) str() (goja.Value, error) {
	start := p.i + 1
	j := start
	for ; j < len(p.s); j++ {
		c := p.s[j]
		if c == '"' {
			p.i = j + 1
			return p.rt.ToValue(p.s[start:j]), nil
		}
		if c == '\\' || c < 0x20 {
			break
		}
	}
	buf := append(p.buf[:0], p.s[start:j]...)
	var units []uint16 // set once a lone surrogate is seen
	for j < len(p.s) {
		c := p.s[j]
		switch {
		case c == '"':
			p.i = j + 1
			p.buf = buf
			if units != nil {
				return goja.StringFromUTF16(append(units, utf16.Encode([]rune(string(buf)))...)), nil
			}
			return p.rt.ToValue(string(buf)), nil
		case c < 0x20:
			p.i = j
			return nil, p.unexpected()
		case c != '\\':
			buf = append(buf, c)
			j++
			continue
		}
		if j+1 >= len(p.s) {
			p.i = len(p.s)
			return nil, p.unexpected()
		}
		e := p.s[j+1]
		j += 2
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := hex4(p.s, j)
			if !ok {
				p.i = j
				return nil, &jsonError{"Bad Unicode escape in JSON at position " + strconv.Itoa(j-2)}
			}
			j += 4
			if utf16.IsSurrogate(r) {
				if r < 0xdc00 && j+6 <= len(p.s) && p.s[j] == '\\' && p.s[j+1] == 'u' {
					if r2, ok := hex4(p.s, j+2); ok && r2 >= 0xdc00 && r2 <= 0xdfff {
						buf = utf8.AppendRune(buf, utf16.DecodeRune(r, r2))
						j += 6
						continue
					}
				}
				// A lone surrogate: UTF-8 cannot hold it.
				units = append(units, utf16.Encode([]rune(string(buf)))...)
				units = append(units, uint16(r))
				buf = buf[:0]
				continue
			}
			buf = utf8.AppendRune(buf, r)
		default:
			p.i = j - 1
			return nil, p.unexpected()
		}
	}
	p.i = len(p.s)
	return nil, p.unexpected()
}

func hex4(s string, i int) (rune, bool) {
	if i+4 > len(s) {
		return 0, false
	}
	var r rune
	for _, c := range []byte(s[i : i+4]) {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	return r, true
}

func (p *jsonParser) number() (goja.Value, error) {
	start := p.i
	j := p.i
	if p.s[j] == '-' {
		j++
	}
	digits := func() int {
		n := 0
		for j < len(p.s) && p.s[j] >= '0' && p.s[j] <= '9' {
			j++
			n++
		}
		return n
	}
	if j < len(p.s) && p.s[j] == '0' {
		j++
	} else if digits() == 0 {
		p.i = j
		return nil, p.unexpected()
	}
	integer := true
	if j < len(p.s) && p.s[j] == '.' {
		j++
		integer = false
		if digits() == 0 {
			p.i = j
			return nil, p.unexpected()
		}
	}
	if j < len(p.s) && (p.s[j] == 'e' || p.s[j] == 'E') {
		j++
		integer = false
		if j < len(p.s) && (p.s[j] == '+' || p.s[j] == '-') {
			j++
		}
		if digits() == 0 {
			p.i = j
			return nil, p.unexpected()
		}
	}
	p.i = j
	text := p.s[start:j]
	if integer && len(text) <= 15 && text != "-0" {
		n, err := strconv.ParseInt(text, 10, 64)
		if err == nil {
			return p.rt.ToValue(n), nil
		}
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil && !math.IsInf(f, 0) && f != 0 {
		return nil, &jsonError{"Bad number " + text + " in JSON"}
	}
	return p.rt.ToValue(f), nil
}

// jsonWriter is JSON.stringify.
type jsonWriter struct {
	v        *vm
	buf      []byte
	stack    []*goja.Object
	onStack  map[*goja.Object]bool // the stack, once it is deep
	replacer goja.Callable
	props    []string // the replacer's property list
	hasProps bool
	gap      string
	indent   string
	visits   int
}

var (
	proxyType  = reflect.TypeOf(goja.Proxy{})
	bigIntType = reflect.TypeOf((*big.Int)(nil))
)

// stringify is JSON.stringify(val, replacer, space): ok is false when the
// result is undefined. It throws (panics with) what JSON.stringify throws.
func (v *vm) stringify(val, replacer, space goja.Value) (out string, ok bool) {
	// The interpreter's buffer, unless a stringify running (a toJSON
	// calling JSON.stringify) has it.
	w := jsonWriter{v: v, buf: v.jsonBuf[:0]}
	v.jsonBuf = nil
	defer func() {
		if cap(w.buf) <= 1<<20 {
			v.jsonBuf = w.buf
		}
	}()
	if obj, isObj := replacer.(*goja.Object); isObj {
		if f, isFn := goja.AssertFunction(obj); isFn {
			w.replacer = f
		} else if v.isArray(obj) {
			w.hasProps = true
			seen := map[string]bool{}
			n := obj.Get("length").ToInteger()
			for i := int64(0); i < n; i++ {
				item := obj.Get(strconv.FormatInt(i, 10))
				var name string
				switch {
				case goja.IsString(item) || goja.IsNumber(item):
					name = item.String()
				case isObjectOfClass(item, "String", "Number"):
					name = item.String()
				default:
					continue
				}
				if !seen[name] {
					seen[name] = true
					w.props = append(w.props, name)
				}
			}
		}
	}
	if space != nil {
		if isObjectOfClass(space, "Number") {
			space = space.ToNumber()
		} else if isObjectOfClass(space, "String") {
			space = space.ToString()
		}
		switch {
		case goja.IsNumber(space):
			if n := min(space.ToFloat(), 10); n >= 1 {
				w.gap = strings.Repeat(" ", int(n))
			}
		case goja.IsString(space):
			w.gap = space.String()
			if utf8.RuneCountInString(w.gap) > 10 {
				w.gap = string([]rune(w.gap)[:10])
			}
		}
	}
	var holder *goja.Object
	if w.replacer != nil {
		holder = v.rt.NewObject()
		must(holder.Set("", val))
	}
	if !w.property(holder, "", val) {
		return "", false
	}
	return string(w.buf), true
}

func isObjectOfClass(val goja.Value, classes ...string) bool {
	obj, ok := val.(*goja.Object)
	if !ok {
		return false
	}
	c := obj.ClassName()
	for _, want := range classes {
		if c == want {
			return true
		}
	}
	return false
}

// isArray is Array.isArray(obj): an array, or a proxy of one.
func (v *vm) isArray(obj *goja.Object) bool {
	if obj.ClassName() == "Array" {
		return true
	}
	if obj.ExportType() == proxyType {
		return callJS(v.arrayIsArray, goja.Undefined(), obj).ToBoolean()
	}
	return false
}

func callJS(f goja.Callable, this goja.Value, args ...goja.Value) goja.Value {
	res, err := f(this, args...)
	if err != nil {
		panic(err)
	}
	return res
}

// property writes the property key of holder, whose value is val (holder
// is nil unless there is a replacer function); false: it is undefined.
func (w *jsonWriter) property(holder *goja.Object, key string, val goja.Value) bool {
	w.visits++
	if w.visits&1023 == 0 {
		w.checkTime()
	}
	if obj, ok := val.(*goja.Object); ok || goja.IsBigInt(val) {
		if !ok {
			obj = val.ToObject(w.v.rt)
		}
		if f, ok := goja.AssertFunction(obj.Get("toJSON")); ok {
			val = callJS(f, val, w.v.rt.ToValue(key))
		}
	}
	if w.replacer != nil {
		val = callJS(w.replacer, holder, w.v.rt.ToValue(key), val)
	}
	if obj, ok := val.(*goja.Object); ok {
		switch obj.ClassName() {
		case "Number":
			val = obj.ToNumber()
		case "String":
			val = obj.ToString()
		case "Boolean":
			if b, ok := obj.Export().(bool); ok {
				val = w.v.rt.ToValue(b)
			}
		case "BigInt":
			panic(w.v.rt.NewTypeError("Do not know how to serialize a BigInt"))
		case "RawJSON":
			w.buf = append(w.buf, obj.Get("rawJSON").String()...)
			return true
		case "Object":
			if obj.ExportType() == bigIntType { // Object(1n)
				panic(w.v.rt.NewTypeError("Do not know how to serialize a BigInt"))
			}
		}
	}
	switch {
	case val == nil || goja.IsUndefined(val):
		return false
	case goja.IsNull(val):
		w.buf = append(w.buf, "null"...)
	case goja.IsString(val):
		w.quote(val)
	case goja.IsNumber(val):
		if val.ExportType().Kind() == reflect.Int64 {
			w.buf = strconv.AppendInt(w.buf, val.ToInteger(), 10)
		} else if f := val.ToFloat(); math.IsNaN(f) || math.IsInf(f, 0) {
			w.buf = append(w.buf, "null"...)
		} else {
			w.buf = append(w.buf, val.String()...)
		}
	case goja.IsBigInt(val):
		panic(w.v.rt.NewTypeError("Do not know how to serialize a BigInt"))
	default:
		obj, ok := val.(*goja.Object)
		if !ok {
			if b, isBool := val.Export().(bool); isBool {
				w.buf = strconv.AppendBool(w.buf, b)
				break
			}
			return false // a symbol
		}
		if _, callable := goja.AssertFunction(obj); callable {
			return false
		}
		if obj.ExportType() == lazyType && w.gap == "" && w.replacer == nil && !w.hasProps {
			w.push(obj)
			obj.Export().(*lazyObject).write(w)
			w.pop()
			break
		}
		w.push(obj)
		if w.v.isArray(obj) {
			w.array(obj)
		} else {
			w.object(obj)
		}
		w.pop()
	}
	w.checkLength()
	return true
}

// checkTime ends the call, as the runner's monitor does, once its time is
// up: uncatchable, the same interruption.
func (w *jsonWriter) checkTime() {
	if c := w.v.call; c != nil && c.expired(time.Now()) {
		panic(&goja.InterruptedError{})
	}
}

func (w *jsonWriter) checkLength() {
	if len(w.buf) > maxStringLength {
		panic(w.v.rangeError("Invalid string length: JSON.stringify's result would exceed the function's memory limit"))
	}
}

func (w *jsonWriter) push(obj *goja.Object) {
	if w.onStack == nil {
		for _, o := range w.stack {
			if o == obj {
				panic(w.v.rt.NewTypeError("Converting circular structure to JSON"))
			}
		}
		if len(w.stack) >= 64 {
			w.onStack = make(map[*goja.Object]bool, 2*len(w.stack))
			for _, o := range w.stack {
				w.onStack[o] = true
			}
		}
	} else if w.onStack[obj] {
		panic(w.v.rt.NewTypeError("Converting circular structure to JSON"))
	}
	if len(w.stack) >= maxJSONDepth {
		panic(w.v.rangeError("Maximum call stack size exceeded: JSON.stringify nests deeper than " + strconv.Itoa(maxJSONDepth) + " levels"))
	}
	w.stack = append(w.stack, obj)
	if w.onStack != nil {
		w.onStack[obj] = true
	}
}

func (w *jsonWriter) pop() {
	obj := w.stack[len(w.stack)-1]
	w.stack = w.stack[:len(w.stack)-1]
	if w.onStack != nil {
		delete(w.onStack, obj)
	}
}

func (w *jsonWriter) newline() {
	w.buf = append(w.buf, '\n')
	w.buf = append(w.buf, w.indent...)
}

func (w *jsonWriter) object(obj *goja.Object) {
	keys := w.props
	if !w.hasProps {
		keys = obj.Keys()
	}
	stepback := w.indent
	w.indent += w.gap
	w.buf = append(w.buf, '{')
	mark := len(w.buf)
	empty := true
	var holder *goja.Object
	if w.replacer != nil {
		holder = obj
	}
	for _, k := range keys {
		off := len(w.buf)
		if !empty {
			w.buf = append(w.buf, ',')
		}
		if w.gap != "" {
			w.newline()
		}
		w.quoteString(k)
		w.buf = append(w.buf, ':')
		if w.gap != "" {
			w.buf = append(w.buf, ' ')
		}
		if w.property(holder, k, obj.Get(k)) {
			empty = false
		} else {
			w.buf = w.buf[:off]
		}
	}
	w.indent = stepback
	if empty {
		w.buf = w.buf[:mark]
	} else if w.gap != "" {
		w.newline()
	}
	w.buf = append(w.buf, '}')
}

func (w *jsonWriter) array(arr *goja.Object) {
	n := arr.Get("length").ToInteger()
	if n == 0 {
		w.buf = append(w.buf, "[]"...)
		return
	}
	stepback := w.indent
	w.indent += w.gap
	w.buf = append(w.buf, '[')
	var holder *goja.Object
	if w.replacer != nil {
		holder = arr
	}
	for i := int64(0); i < n; i++ {
		if i > 0 {
			w.buf = append(w.buf, ',')
		}
		if w.gap != "" {
			w.newline()
		}
		k := index(i)
		if !w.property(holder, k, arr.Get(k)) {
			w.buf = append(w.buf, "null"...)
		}
	}
	w.indent = stepback
	if w.gap != "" {
		w.newline()
	}
	w.buf = append(w.buf, ']')
}

const hexDigits = "0123456789abcdef"

// quote writes a string value. Its Go string holds U+FFFD in place of a
// lone surrogate; only then are its UTF-16 units read, to write the
// surrogate escaped as JSON.stringify does.
func (w *jsonWriter) quote(val goja.Value) {
	s := val.String()
	if !strings.Contains(s, "\uFFFD") {
		w.quoteString(s)
		return
	}
	str, ok := val.(goja.String)
	if !ok {
		w.quoteString(s)
		return
	}
	units := make([]uint16, str.Length())
	for i := range units {
		units[i] = str.CharAt(i)
	}
	w.buf = append(w.buf, '"')
	for i := 0; i < len(units); i++ {
		u := units[i]
		switch {
		case utf16.IsSurrogate(rune(u)):
			if u < 0xdc00 && i+1 < len(units) && units[i+1] >= 0xdc00 && units[i+1] <= 0xdfff {
				w.buf = utf8.AppendRune(w.buf, utf16.DecodeRune(rune(u), rune(units[i+1])))
				i++
				continue
			}
			w.buf = append(w.buf, '\\', 'u', hexDigits[u>>12], hexDigits[u>>8&15], hexDigits[u>>4&15], hexDigits[u&15])
		case u < utf8.RuneSelf:
			w.escapeByte(byte(u))
		default:
			w.buf = utf8.AppendRune(w.buf, rune(u))
		}
	}
	w.buf = append(w.buf, '"')
}

// quoteString writes s quoted as JSON.stringify quotes.
func (w *jsonWriter) quoteString(s string) {
	w.buf = append(w.buf, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' {
			w.buf = append(w.buf, s[start:i]...)
			w.escapeByte(c)
			start = i + 1
		}
	}
	w.buf = append(w.buf, s[start:]...)
	w.buf = append(w.buf, '"')
}

func (w *jsonWriter) escapeByte(c byte) {
	switch c {
	case '"':
		w.buf = append(w.buf, '\\', '"')
	case '\\':
		w.buf = append(w.buf, '\\', '\\')
	case '\b':
		w.buf = append(w.buf, '\\', 'b')
	case '\f':
		w.buf = append(w.buf, '\\', 'f')
	case '\n':
		w.buf = append(w.buf, '\\', 'n')
	case '\r':
		w.buf = append(w.buf, '\\', 'r')
	case '\t':
		w.buf = append(w.buf, '\\', 't')
	default:
		if c < 0x20 {
			w.buf = append(w.buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&15])
		} else {
			w.buf = append(w.buf, c)
		}
	}
}

// maxStringLength bounds the strings natives build in one step (the
// prelude's allocation guards use the same bound).
const maxStringLength = 1 << 26

// indexes are the first array indexes as strings.
var indexes = func() []string {
	s := make([]string, 256)
	for i := range s {
		s[i] = strconv.Itoa(i)
	}
	return s
}()

func index(i int64) string {
	if i < int64(len(indexes)) {
		return indexes[i]
	}
	return strconv.FormatInt(i, 10)
}
