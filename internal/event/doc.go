package event

import (
	"encoding/json"
	"fmt"
	"unsafe"
)

// Doc is a stored event decoded for the stages that change or inspect it as
// a whole (tracking plans, transformations, filters): a JSON object as
// encoding/json decodes it into any, except that numbers are json.Number,
// so that encoding it again keeps every number's digits (an id of 2^63
// survives, where float64 would round it).
type Doc = map[string]any

// Decode decodes a record's JSON into a Doc. It fails when the JSON is not
// one object, is invalid, or holds invalid UTF-8.
//
// The Doc's strings and numbers share memory with rec where they need no
// unescaping: rec must not be modified while the Doc, or a string taken
// from it, is in use. (Records read from the log are never modified.)
//
// It is the processing stage's hot path, so it does not go through
// encoding/json's reflection: it walks the bytes with the same validating
// scanner as the Tracking API and builds the maps directly, reusing
// constant strings for the keys every event has.
func Decode(rec []byte) (Doc, error) { return decodeTop(rec, nil, nil) }

// decodeTop decodes rec, which must be one JSON object and nothing else;
// member and want are decodeObject's, for the top level.
func decodeTop(rec []byte, member memberSpan, want func(string) bool) (Doc, error) {
	i := skipSpace(rec, 0)
	if i >= len(rec) || rec[i] != '{' {
		return nil, fmt.Errorf("decoding event: %w", errAt(i, "not a JSON object"))
	}
	doc, end, err := decodeObject(rec, i, 0, member, want)
	if err != nil {
		return nil, fmt.Errorf("decoding event: %w", err)
	}
	if skipSpace(rec, end) != len(rec) {
		return nil, fmt.Errorf("decoding event: %w", errAt(end, "data after the JSON object"))
	}
	return doc, nil
}

// Members are the top-level members of a decoded record, in order, with
// where their bytes are, so that [EncodeSplice] can copy the members a
// stage did not change instead of encoding them again.
type Members struct {
	rec  []byte
	list []docMember
	// dups is set when a key appears twice at the top level.
	dups bool
}

// docMember is one top-level member: its key, the span from its key's
// opening quote to the end of its value, and whether its value was left
// undecoded (DecodeSelected).
type docMember struct {
	key        string
	ks, vs, ve int
	raw        bool
}

// DecodeMembers is [Decode] that also returns the record's top-level
// members, for [EncodeSplice]. The same sharing rule applies: rec must not
// be modified while the Doc or the Members are in use.
func DecodeMembers(rec []byte) (Doc, Members, error) {
	return DecodeSelected(rec, nil)
}

// DecodeSelected is [DecodeMembers] that decodes only the top-level
// members whose keys want reports (nil: all of them). The others are left
// out of the Doc, and [EncodeSplice] copies them as they were — unless the
// Doc has gained a member of the same key, which then replaces them.
//
// The members it leaves undecoded are skipped, not validated: rec must be
// valid JSON, as every record of the log is (the Tracking API validated it,
// and the processing stage checks it again with [PeekKeys] before it
// routes it). On invalid input it fails or copies the invalid bytes; it
// never reads out of bounds.
func DecodeSelected(rec []byte, want func(key string) bool) (Doc, Members, error) {
	m := Members{rec: rec, list: make([]docMember, 0, 16)}
	decoded := 0
	doc, err := decodeTop(rec, func(key string, ks, vs, ve int, wasDecoded bool) {
		m.list = append(m.list, docMember{key: key, ks: ks, vs: vs, ve: ve, raw: !wasDecoded})
		if wasDecoded {
			decoded++
		}
	}, want)
	if err != nil {
		return nil, m, err
	}
	m.dups = len(doc) < decoded
	return doc, m, nil
}

// Undecoded returns the bytes of the top-level member key when
// DecodeSelected left it undecoded (the last one, if key is repeated).
func (m Members) Undecoded(key string) ([]byte, bool) {
	for j := len(m.list) - 1; j >= 0; j-- {
		if mb := m.list[j]; mb.key == key {
			return m.rec[mb.vs:mb.ve], mb.raw
		}
	}
	return nil, false
}

// decodeValue decodes the value at b[i] (no leading space) and returns it
// with the offset past it.
func decodeValue(b []byte, i, depth int) (any, int, error) {
	if i >= len(b) {
		return nil, i, errAt(i, "unexpected end of input")
	}
	switch c := b[i]; {
	case c == '{':
		return decodeObject(b, i, depth, nil, nil)
	case c == '[':
		return decodeArray(b, i, depth)
	case c == '"':
		end, esc, err := scanString(b, i)
		if err != nil {
			return nil, end, err
		}
		if !esc {
			return alias(b[i+1 : end-1]), end, nil
		}
		s, err := unquote(b[i:end])
		return s, end, err
	case c == '-' || c >= '0' && c <= '9':
		end, err := scanNumber(b, i)
		if err != nil {
			return nil, end, err
		}
		return json.Number(alias(b[i:end])), end, nil
	case c == 't':
		end, err := scanLiteral(b, i, "true")
		return true, end, err
	case c == 'f':
		end, err := scanLiteral(b, i, "false")
		return false, end, err
	case c == 'n':
		end, err := scanLiteral(b, i, "null")
		return nil, end, err
	}
	return nil, i, errAt(i, "unexpected character %q", b[i])
}

// memberSpan is told of each member of an object: its key, where its key's
// quote and its value start, where its value ends, and whether it was
// decoded into the Doc.
type memberSpan func(key string, ks, vs, ve int, decoded bool)

// decodeObject decodes the object at b[i]. When member is not nil it is
// called for each member. When want is not nil, members whose keys it
// rejects are skipped (see DecodeSelected), not decoded nor put in the Doc.
func decodeObject(b []byte, i, depth int, member memberSpan, want func(string) bool) (Doc, int, error) {
	if depth >= maxDepth {
		return nil, i, errAt(i, "nesting deeper than %d", maxDepth)
	}
	size := 8
	if depth == 1 || depth == 0 && want == nil {
		size = 16 // an event's whole top level (ids, timestamps, …), its properties and context
	}
	m := make(map[string]any, size)
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return m, i + 1, nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return nil, i, errAt(i, "expected a string key")
		}
		ks := i
		ke, esc, err := scanString(b, i)
		if err != nil {
			return nil, ke, err
		}
		var key string
		if esc {
			if key, err = unquote(b[i:ke]); err != nil {
				return nil, ke, err
			}
		} else {
			key = docKey(b[i+1 : ke-1])
		}
		i = skipSpace(b, ke)
		if i >= len(b) || b[i] != ':' {
			return nil, i, errAt(i, "expected ':' after key")
		}
		vs := skipSpace(b, i+1)
		var v any
		var ve int
		decode := want == nil || want(key)
		if !decode {
			// Left undecoded, and skipped without validation (see
			// DecodeSelected).
			if vs >= len(b) {
				return nil, vs, errAt(vs, "unexpected end of input")
			}
			ve = skipValid(b, vs)
		} else {
			if v, ve, err = decodeValue(b, vs, depth+1); err != nil {
				return nil, ve, err
			}
			m[key] = v
		}
		if member != nil {
			member(key, ks, vs, ve, decode)
		}
		i = skipSpace(b, ve)
		if i >= len(b) {
			return nil, i, errAt(i, "unterminated object")
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return m, i + 1, nil
		default:
			return nil, i, errAt(i, "expected ',' or '}' in object")
		}
	}
}

func decodeArray(b []byte, i, depth int) (any, int, error) {
	if depth >= maxDepth {
		return nil, i, errAt(i, "nesting deeper than %d", maxDepth)
	}
	l := []any{}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return l, i + 1, nil
	}
	for {
		v, ve, err := decodeValue(b, i, depth+1)
		if err != nil {
			return nil, ve, err
		}
		l = append(l, v)
		i = skipSpace(b, ve)
		if i >= len(b) {
			return nil, i, errAt(i, "unterminated array")
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case ']':
			return l, i + 1, nil
		default:
			return nil, i, errAt(i, "expected ',' or ']' in array")
		}
	}
}

// alias returns b as a string without copying it; see Decode.
func alias(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// docKey returns the key k, as a constant for the keys most events have,
// so that decoding them allocates nothing.
func docKey(k []byte) string {
	switch string(k) {
	case "type":
		return "type"
	case "event":
		return "event"
	case "name":
		return "name"
	case "messageId":
		return "messageId"
	case "userId":
		return "userId"
	case "anonymousId":
		return "anonymousId"
	case "groupId":
		return "groupId"
	case "previousId":
		return "previousId"
	case "properties":
		return "properties"
	case "traits":
		return "traits"
	case "context":
		return "context"
	case "integrations":
		return "integrations"
	case "timestamp":
		return "timestamp"
	case "receivedAt":
		return "receivedAt"
	case "sentAt":
		return "sentAt"
	case "originalTimestamp":
		return "originalTimestamp"
	case "library":
		return "library"
	case "version":
		return "version"
	case "page":
		return "page"
	case "ip":
		return "ip"
	case "userAgent":
		return "userAgent"
	case "locale":
		return "locale"
	case "protocols":
		return "protocols"
	}
	return alias(k)
}
