package event

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"
)

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
