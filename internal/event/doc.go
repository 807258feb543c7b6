package event

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"
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
func Decode(rec []byte) (Doc, error) {
	i := skipSpace(rec, 0)
	if i >= len(rec) || rec[i] != '{' {
		return nil, fmt.Errorf("decoding event: %w", errAt(i, "not a JSON object"))
	}
	doc, end, err := decodeObject(rec, i, 0, nil, nil)
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
	i := skipSpace(rec, 0)
	if i >= len(rec) || rec[i] != '{' {
		return nil, m, fmt.Errorf("decoding event: %w", errAt(i, "not a JSON object"))
	}
	doc, end, err := decodeObject(rec, i, 0, func(key string, ks, vs, ve int) {
		m.list = append(m.list, docMember{key: key, ks: ks, vs: vs, ve: ve})
	}, want)
	if err != nil {
		return nil, m, fmt.Errorf("decoding event: %w", err)
	}
	if skipSpace(rec, end) != len(rec) {
		return nil, m, fmt.Errorf("decoding event: %w", errAt(end, "data after the JSON object"))
	}
	decoded := 0
	for j := range m.list {
		if want != nil && !want(m.list[j].key) {
			m.list[j].raw = true
			continue
		}
		decoded++
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

// EncodeSplice appends doc to dst as JSON, keeping the record m came from
// wherever it can: the top-level members are written in their original
// order, those for which changed reports false are copied byte for byte
// from the record, the others are encoded from doc (as [Encode] does);
// members deleted from doc are left out, and members added to doc follow,
// sorted. The caller must report as changed every top-level field it may
// have modified, in place or not.
func EncodeSplice(dst []byte, doc Doc, m Members, changed func(key string) bool) ([]byte, error) {
	dst = append(dst, '{')
	n, kept := 0, 0
	for _, mb := range m.list {
		v, ok := doc[mb.key]
		if mb.raw && !ok {
			// Never decoded, and not replaced: as it was.
			if n > 0 {
				dst = append(dst, ',')
			}
			n++
			dst = append(dst, m.rec[mb.ks:mb.ve]...)
			continue
		}
		if !ok {
			continue
		}
		kept++
		if n > 0 {
			dst = append(dst, ',')
		}
		n++
		if !mb.raw && !changed(mb.key) {
			dst = append(dst, m.rec[mb.ks:mb.ve]...)
			continue
		}
		dst = appendDocString(dst, mb.key)
		dst = append(dst, ':')
		var err error
		if dst, err = appendDocValue(dst, v, 1); err != nil {
			return dst, err
		}
	}
	if kept < len(doc) || m.dups {
		var added []string
		for k := range doc {
			if !slices.ContainsFunc(m.list, func(mb docMember) bool { return mb.key == k }) {
				added = append(added, k)
			}
		}
		slices.Sort(added)
		for _, k := range added {
			if n > 0 {
				dst = append(dst, ',')
			}
			n++
			dst = appendDocString(dst, k)
			dst = append(dst, ':')
			var err error
			if dst, err = appendDocValue(dst, doc[k], 1); err != nil {
				return dst, err
			}
		}
	}
	return append(dst, '}'), nil
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

// decodeObject decodes the object at b[i]. When member is not nil it is
// called for each member with its key, where its key's quote and its value
// start, and where its value ends. When want is not nil, members whose
// keys it rejects are validated but not decoded (nor put in the Doc).
func decodeObject(b []byte, i, depth int, member func(key string, ks, vs, ve int), want func(string) bool) (Doc, int, error) {
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
		if want != nil && !want(key) {
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
			member(key, ks, vs, ve)
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

// Encode appends doc as compact JSON to dst. Keys come out sorted; strings
// are escaped as encoding/json escapes them, except that '<', '>' and '&'
// are kept (the stored event keeps the characters the client sent).
// Values are what Decode produces — maps, slices, strings, json.Number,
// bools, nil — plus float64 and Go integers, which FQL results and
// hand-built events hold; anything else is encoded by encoding/json.
func Encode(dst []byte, doc Doc) ([]byte, error) {
	return appendDocValue(dst, doc, 0)
}

func appendDocValue(dst []byte, v any, depth int) ([]byte, error) {
	if depth > maxDepth {
		return dst, fmt.Errorf("encoding event: nesting deeper than %d", maxDepth)
	}
	switch t := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case string:
		return appendDocString(dst, t), nil
	case json.Number:
		if !validNumber(t) {
			return dst, fmt.Errorf("encoding event: invalid number %q", string(t))
		}
		return append(dst, t...), nil
	case bool:
		return strconv.AppendBool(dst, t), nil
	case map[string]any:
		if t == nil {
			return append(dst, "null"...), nil
		}
		var stack [32]string
		keys := stack[:0]
		for k := range t {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		dst = append(dst, '{')
		for n, k := range keys {
			if n > 0 {
				dst = append(dst, ',')
			}
			dst = appendDocString(dst, k)
			dst = append(dst, ':')
			var err error
			if dst, err = appendDocValue(dst, t[k], depth+1); err != nil {
				return dst, err
			}
		}
		return append(dst, '}'), nil
	case []any:
		if t == nil {
			return append(dst, "null"...), nil
		}
		dst = append(dst, '[')
		for n, e := range t {
			if n > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = appendDocValue(dst, e, depth+1); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	case float64:
		return appendFloat(dst, t)
	case int:
		return strconv.AppendInt(dst, int64(t), 10), nil
	case int64:
		return strconv.AppendInt(dst, t, 10), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return dst, fmt.Errorf("encoding event: %w", err)
	}
	return append(dst, b...), nil
}

// validNumber reports whether n is a JSON number.
func validNumber(n json.Number) bool {
	if n == "" {
		return false
	}
	end, err := scanNumber([]byte(n), 0)
	return err == nil && end == len(n)
}

// appendFloat formats f as encoding/json does (the shortest text that
// reads back the same, exponent form outside [1e-6, 1e21)).
func appendFloat(dst []byte, f float64) ([]byte, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return dst, fmt.Errorf("encoding event: unsupported number %v", f)
	}
	format := byte('f')
	if a := math.Abs(f); a != 0 && (a < 1e-6 || a >= 1e21) {
		format = 'e'
	}
	mark := len(dst)
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		// Clean up e-09 to e-9, as encoding/json does.
		n := len(dst) - mark
		if n >= 4 && dst[len(dst)-4] == 'e' && dst[len(dst)-3] == '-' && dst[len(dst)-2] == '0' {
			dst[len(dst)-2] = dst[len(dst)-1]
			dst = dst[:len(dst)-1]
		}
	}
	return dst, nil
}

const hexDigits = "0123456789abcdef"

// appendDocString appends s as a JSON string: '"', '\\' and control
// characters escaped, invalid UTF-8 replaced by U+FFFD, and U+2028 and
// U+2029 escaped (as encoding/json does, for JavaScript).
func appendDocString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		// Fast path: eight plain ASCII bytes at a time.
		for i+8 <= len(s) && plainWord(uint64(s[i])|uint64(s[i+1])<<8|uint64(s[i+2])<<16|uint64(s[i+3])<<24|
			uint64(s[i+4])<<32|uint64(s[i+5])<<40|uint64(s[i+6])<<48|uint64(s[i+7])<<56) {
			i += 8
		}
		if i >= len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
