package transform

import (
	"encoding/json"
	"strconv"

	"github.com/confluxcdp/conflux/internal/event"
)

// sampled reports whether a sample_event action keeps doc: whether the
// hash of the value at path (of messageId when path is nil), read as a
// number in [0, 1), is below percent. The verdict depends only on that
// value, so a retried or replayed event gets the same one, and two sample
// actions on the same field keep the events the smaller percent keeps
// (not the product of the two).
func sampled(doc event.Doc, path []string, percent float64) bool {
	if percent >= 1 {
		return true
	}
	if percent <= 0 {
		return false
	}
	var v any
	if path == nil {
		v = doc["messageId"]
	} else {
		v = lookup(doc, path)
	}
	return unit(v) < percent
}

// lookup returns the value at path in doc, or nil.
func lookup(doc event.Doc, path []string) any {
	var cur any = map[string]any(doc)
	for _, s := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		if cur, ok = m[s]; !ok {
			return nil
		}
	}
	return cur
}

// unit maps a value to a number in [0, 1), uniformly for distinct values:
// the top 53 bits of a 64-bit FNV-1a hash of its text, mixed with
// MurmurHash3's finalizer so that ids differing in one character spread
// over the whole range.
func unit(v any) float64 {
	var h uint64
	switch t := v.(type) {
	case string:
		h = hash(t)
	case json.Number:
		h = hash(string(t))
	case bool:
		h = hash(strconv.FormatBool(t))
	case nil:
		h = hash("null")
	default:
		b, err := json.Marshal(t)
		if err != nil {
			b = nil
		}
		h = hash(string(b))
	}
	return float64(h>>11) / (1 << 53)
}

func hash(s string) uint64 {
	h := uint64(14695981039346656037) // FNV-1a 64 offset basis
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211 // FNV-1a 64 prime
	}
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}
