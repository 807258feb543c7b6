package fql

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"
)

// Kind is the FQL type of a [Value].
type Kind uint8

// The FQL types. KindObject is the type of a JSON object taken from the
// event; FQL has no object literals.
const (
	KindNull Kind = iota
	KindBool
	KindNumber
	KindString
	KindList
	KindObject
	kindInvalid // a Go value of a type an event decoded by encoding/json never holds
)

// String returns the name typeof() gives the kind: "null", "bool",
// "number", "string", "list" or "object".
func (k Kind) String() string {
	switch k {
	case KindNull:
		return "null"
	case KindBool:
		return "bool"
	case KindNumber:
		return "number"
	case KindString:
		return "string"
	case KindList:
		return "list"
	case KindObject:
		return "object"
	}
	return "invalid"
}

// Value is the result of evaluating an FQL expression or sub-expression. The
// zero Value is null. Values are small and are passed by value; a list or an
// object shares its elements with the event it came from, which must not be
// modified while the Value is in use.
type Value struct {
	kind Kind
	b    bool
	num  float64
	str  string
	ref  any // KindList: []any; KindObject: map[string]any
}

// items returns the elements of a list, and nil for any other kind.
func (v Value) items() []any {
	l, _ := v.ref.([]any)
	return l
}

// fields returns the fields of an object, and nil for any other kind.
func (v Value) fields() map[string]any {
	m, _ := v.ref.(map[string]any)
	return m
}

// Null is the null Value.
func Null() Value { return Value{} }

// Bool returns a bool Value.
func Bool(b bool) Value { return Value{kind: KindBool, b: b} }

// Number returns a number Value.
func Number(f float64) Value { return Value{kind: KindNumber, num: f} }

// String returns a string Value.
func String(s string) Value { return Value{kind: KindString, str: s} }

// Kind returns the type of v.
func (v Value) Kind() Kind { return v.kind }

// IsNull reports whether v is null.
func (v Value) IsNull() bool { return v.kind == KindNull }

// AsBool returns v's boolean and true, or false and false if v is not a
// bool.
func (v Value) AsBool() (b, ok bool) { return v.b, v.kind == KindBool }

// AsNumber returns v's number and true, or 0 and false if v is not a
// number.
func (v Value) AsNumber() (float64, bool) { return v.num, v.kind == KindNumber }

// AsString returns v's string and true, or "" and false if v is not a
// string.
func (v Value) AsString() (string, bool) { return v.str, v.kind == KindString }

// AsList returns v's elements and true, or nil and false if v is not a list.
// The elements are in the form encoding/json decodes into any.
func (v Value) AsList() ([]any, bool) { return v.items(), v.kind == KindList }

// AsObject returns v's object and true, or nil and false if v is not an
// object.
func (v Value) AsObject() (map[string]any, bool) { return v.fields(), v.kind == KindObject }

// Interface returns v in the form encoding/json decodes into any: nil,
// bool, float64, string, []any or map[string]any.
func (v Value) Interface() any {
	switch v.kind {
	case KindBool:
		return v.b
	case KindNumber:
		return v.num
	case KindString:
		return v.str
	case KindList, KindObject:
		return v.ref
	}
	return nil
}

// String returns v as JSON text: strings are quoted, numbers are formatted
// the way JavaScript and string() format them.
func (v Value) String() string {
	if v.kind == KindString {
		b, err := marshalJSON(v.str)
		if err != nil {
			return strconv.Quote(v.str)
		}
		return string(b)
	}
	s, err := toText(v)
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return s
}

// fromAny converts a value of a decoded event to a Value. Besides the types
// encoding/json produces it accepts Go's other numeric types and
// json.Number, so events built by hand work too; anything else is
// kindInvalid.
func fromAny(x any) Value {
	switch t := x.(type) {
	case nil:
		return Value{}
	case string:
		return Value{kind: KindString, str: t}
	case float64:
		return Value{kind: KindNumber, num: t}
	case bool:
		return Value{kind: KindBool, b: t}
	case map[string]any:
		if t == nil {
			return Value{}
		}
		return Value{kind: KindObject, ref: x}
	case []any:
		if t == nil {
			return Value{}
		}
		return Value{kind: KindList, ref: x}
	case int:
		return Number(float64(t))
	case int64:
		return Number(float64(t))
	case int32:
		return Number(float64(t))
	case int16:
		return Number(float64(t))
	case int8:
		return Number(float64(t))
	case uint:
		return Number(float64(t))
	case uint64:
		return Number(float64(t))
	case uint32:
		return Number(float64(t))
	case uint16:
		return Number(float64(t))
	case uint8:
		return Number(float64(t))
	case float32:
		return Number(float64(t))
	case json.Number:
		f, err := strconv.ParseFloat(string(t), 64)
		if err != nil {
			return Value{kind: kindInvalid}
		}
		return Number(f)
	}
	return Value{kind: kindInvalid}
}

// equal is FQL's strict equality: same type and same value. Lists are equal
// when they have equal elements in the same order, objects when they have
// the same keys with equal values.
func equal(a, b Value) bool {
	if a.kind != b.kind {
		return false
	}
	switch a.kind {
	case KindNull:
		return true
	case KindBool:
		return a.b == b.b
	case KindNumber:
		return a.num == b.num
	case KindString:
		return a.str == b.str
	case KindList:
		al, bl := a.items(), b.items()
		if len(al) != len(bl) {
			return false
		}
		for i := range al {
			if !equal(fromAny(al[i]), fromAny(bl[i])) {
				return false
			}
		}
		return true
	case KindObject:
		am, bm := a.fields(), b.fields()
		if len(am) != len(bm) {
			return false
		}
		for k, x := range am {
			y, ok := bm[k]
			if !ok || !equal(fromAny(x), fromAny(y)) {
				return false
			}
		}
		return true
	}
	return false
}

// formatNumber formats f the way JavaScript's Number#toString and
// encoding/json do: plain decimal notation between 1e-6 and 1e21, the
// shortest exponent form outside it, and "0" for negative zero.
func formatNumber(f float64) string {
	if f == 0 {
		return "0"
	}
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return strconv.FormatFloat(f, 'g', -1, 64)
	}
	abs := math.Abs(f)
	if abs >= 1e-6 && abs < 1e21 {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	s := strconv.FormatFloat(f, 'e', -1, 64)
	// Go writes e-07 and e+21; JavaScript writes e-7 and e+21.
	if i := strings.LastIndexByte(s, 'e'); i >= 0 && i+3 < len(s) && s[i+2] == '0' {
		s = s[:i+2] + s[i+3:]
	}
	return s
}

// toText is string() for every kind: strings as they are, everything else
// as JSON text.
func toText(v Value) (string, error) {
	switch v.kind {
	case KindNull:
		return "null", nil
	case KindBool:
		if v.b {
			return "true", nil
		}
		return "false", nil
	case KindNumber:
		return formatNumber(v.num), nil
	case KindString:
		return v.str, nil
	case KindList, KindObject:
		b, err := marshalJSON(v.Interface())
		if err != nil {
			return "", err
		}
		return string(b), nil
	}
	return "", errUnsupported
}

// marshalJSON encodes x without escaping <, > and &, as JSON.stringify
// does.
func marshalJSON(x any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(x); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
