package plan

import (
	"encoding/json"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// quick is a fast check that an event certainly meets a rule, for the
// schemas most tracking plans hold: types, string enums, required keys,
// nested properties, additionalProperties: false, items, numeric bounds
// and lengths. It never reports a violation: when it cannot vouch for an
// event it says so, and the JSON Schema validator decides (and describes
// what is wrong). Most events are valid, so most never reach the
// validator. A schema using any other keyword has no quick form.
//
// It is only ever allowed to say "valid" where the validator would;
// TestQuickAgreesWithValidator checks that over many generated events.
type quick struct {
	types    uint8 // bit set of jsonType; 0: any
	enum     map[string]struct{}
	props    map[string]*quick
	required []string
	closed   bool // additionalProperties: false
	items    *quick
	min, max *float64
	exclMin  *float64
	exclMax  *float64
	minLen   int // -1: none
	maxLen   int
	minItems int
	maxItems int
	// strings checks format and pattern: a schema of just those keywords,
	// compiled by the validator itself, so that quick agrees with it by
	// construction (same date-time rules, same regular expressions).
	strings *jsonschema.Schema
}

type jsonType uint8

const (
	tString jsonType = 1 << iota
	tNumber
	tInteger
	tBoolean
	tObject
	tArray
	tNull
)

var typeNames = map[string]jsonType{
	"string": tString, "number": tNumber, "integer": tInteger, "boolean": tBoolean,
	"object": tObject, "array": tArray, "null": tNull,
}

// compileQuick returns the quick form of a schema decoded by
// jsonschema.UnmarshalJSON, or nil when it uses anything quick does not
// handle exactly.
func compileQuick(s any) *quick {
	m, ok := s.(map[string]any)
	if !ok {
		return nil // true/false schemas: leave them to the validator
	}
	q := &quick{minLen: -1, maxLen: -1, minItems: -1, maxItems: -1}
	var stringKeywords map[string]any
	for k, v := range m {
		switch k {
		case "format", "pattern":
			if stringKeywords == nil {
				stringKeywords = map[string]any{}
			}
			stringKeywords[k] = v
		case "$schema", "$comment", "title", "description", "examples", "default":
			// Annotations: no effect on validity.
		case "type":
			switch t := v.(type) {
			case string:
				bit, ok := typeNames[t]
				if !ok {
					return nil
				}
				q.types |= uint8(bit)
			case []any:
				for _, e := range t {
					name, _ := e.(string)
					bit, ok := typeNames[name]
					if !ok {
						return nil
					}
					q.types |= uint8(bit)
				}
			default:
				return nil
			}
		case "enum":
			l, ok := v.([]any)
			if !ok || len(l) == 0 {
				return nil
			}
			q.enum = make(map[string]struct{}, len(l))
			for _, e := range l {
				s, ok := e.(string)
				if !ok {
					return nil
				}
				q.enum[s] = struct{}{}
			}
		case "properties":
			pm, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			q.props = make(map[string]*quick, len(pm))
			for name, sub := range pm {
				if q.props[name] = compileQuick(sub); q.props[name] == nil {
					return nil
				}
			}
		case "required":
			l, ok := v.([]any)
			if !ok {
				return nil
			}
			for _, e := range l {
				s, ok := e.(string)
				if !ok {
					return nil
				}
				q.required = append(q.required, s)
			}
		case "additionalProperties":
			b, ok := v.(bool)
			if !ok {
				return nil
			}
			q.closed = !b
		case "items":
			if q.items = compileQuick(v); q.items == nil {
				return nil
			}
		case "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum":
			f, ok := exactFloat(v)
			if !ok {
				return nil // draft-04's boolean exclusive bounds, or too many digits
			}
			switch k {
			case "minimum":
				q.min = &f
			case "maximum":
				q.max = &f
			case "exclusiveMinimum":
				q.exclMin = &f
			default:
				q.exclMax = &f
			}
		case "minLength", "maxLength", "minItems", "maxItems":
			n, ok := count(v)
			if !ok {
				return nil
			}
			switch k {
			case "minLength":
				q.minLen = n
			case "maxLength":
				q.maxLen = n
			case "minItems":
				q.minItems = n
			default:
				q.maxItems = n
			}
		default:
			return nil
		}
	}
	if stringKeywords != nil {
		if d, ok := m["$schema"]; ok {
			stringKeywords["$schema"] = d
		}
		sch, err := compileSchema(stringKeywords)
		if err != nil {
			return nil
		}
		q.strings = sch
	}
	return q
}

// exactFloat reads a schema or event number as a float64 when the
// conversion cannot change a comparison's outcome: at most 15 significant
// digits, so that the float holds the decimal exactly enough.
func exactFloat(v any) (float64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	digits := 0
	for i := 0; i < len(n); i++ {
		c := n[i]
		if c == 'e' || c == 'E' {
			break
		}
		if c >= '0' && c <= '9' {
			digits++
		}
	}
	if digits > 15 {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(n), 64)
	return f, err == nil
}

func count(v any) (int, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(string(n))
	return i, err == nil && i >= 0
}

// valid reports whether v certainly meets the schema. False means "not
// certain", not "invalid".
func (q *quick) valid(v any) bool {
	if q.enum != nil {
		s, ok := v.(string)
		if !ok {
			return false
		}
		if _, ok := q.enum[s]; !ok {
			return false
		}
	}
	switch t := v.(type) {
	case nil:
		return q.allows(tNull)
	case bool:
		return q.allows(tBoolean)
	case string:
		if !q.allows(tString) {
			return false
		}
		if q.strings != nil && q.strings.Validate(t) != nil {
			return false
		}
		if q.minLen >= 0 || q.maxLen >= 0 {
			n := utf8.RuneCountInString(t)
			if (q.minLen >= 0 && n < q.minLen) || (q.maxLen >= 0 && n > q.maxLen) {
				return false
			}
		}
		return true
	case json.Number:
		return q.validNumber(t)
	case map[string]any:
		return q.validObject(t)
	case []any:
		if !q.allows(tArray) {
			return false
		}
		if (q.minItems >= 0 && len(t) < q.minItems) || (q.maxItems >= 0 && len(t) > q.maxItems) {
			return false
		}
		if q.items != nil {
			for _, e := range t {
				if !q.items.valid(e) {
					return false
				}
			}
		}
		return true
	}
	return false // a Go type events decoded by event.Decode never hold
}

func (q *quick) allows(t jsonType) bool { return q.types == 0 || q.types&uint8(t) != 0 }

func (q *quick) validNumber(n json.Number) bool {
	switch {
	case q.types == 0 || q.types&uint8(tNumber) != 0:
	case q.types&uint8(tInteger) != 0:
		// Only plain integer text is certainly an integer (1.0 is one
		// too, for the validator: leave that to it).
		for i := 0; i < len(n); i++ {
			if c := n[i]; !(c >= '0' && c <= '9' || c == '-' && i == 0) {
				return false
			}
		}
	default:
		return false
	}
	if q.min == nil && q.max == nil && q.exclMin == nil && q.exclMax == nil {
		return true
	}
	f, ok := exactFloat(n)
	if !ok {
		return false
	}
	return (q.min == nil || f >= *q.min) && (q.max == nil || f <= *q.max) &&
		(q.exclMin == nil || f > *q.exclMin) && (q.exclMax == nil || f < *q.exclMax)
}

func (q *quick) validObject(m map[string]any) bool {
	if !q.allows(tObject) {
		return false
	}
	for _, k := range q.required {
		if _, ok := m[k]; !ok {
			return false
		}
	}
	if q.closed {
		for k := range m {
			if _, ok := q.props[k]; !ok {
				return false
			}
		}
	}
	for k, sub := range q.props {
		if v, ok := m[k]; ok && !sub.valid(v) {
			return false
		}
	}
	return true
}

// Reads returns the top-level fields of an event that Check may read, or
// nil when it may read any: when a rule has no quick form (its keywords
// may look anywhere), or closes the event's top level. A caller may leave
// the other fields undecoded; Check then writes context.protocols into a
// new context object, which the caller merges into the event's own.
func (c *Compiled) Reads() []string {
	out := []string{"type", "event", "properties", "traits"}
	rules := []*rule{c.identify, c.group, c.common}
	for _, r := range c.events {
		rules = append(rules, r)
	}
	for _, r := range rules {
		if r == nil || r.schema == nil {
			continue
		}
		if r.quick == nil || r.quick.closed {
			return nil
		}
		for k := range r.quick.props {
			if !slices.Contains(out, k) {
				out = append(out, k)
			}
		}
		for _, k := range r.quick.required {
			if !slices.Contains(out, k) {
				out = append(out, k)
			}
		}
	}
	return out
}
