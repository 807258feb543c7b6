package event

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Doc is a stored event decoded for the stages that change or inspect it as
// a whole (tracking plans, transformations, filters): a JSON object whose
// numbers are json.Number, so that encoding it again keeps every number's
// digits (an id of 2^63 survives, where float64 would round it).
type Doc = map[string]any

// Decode decodes a record's JSON into a Doc. It fails when the JSON is not
// one object.
func Decode(rec []byte) (Doc, error) {
	d := json.NewDecoder(bytes.NewReader(rec))
	d.UseNumber()
	var doc Doc
	if err := d.Decode(&doc); err != nil {
		return nil, fmt.Errorf("decoding event: %w", err)
	}
	if doc == nil {
		return nil, fmt.Errorf("decoding event: not a JSON object")
	}
	if d.More() {
		return nil, fmt.Errorf("decoding event: data after the JSON object")
	}
	return doc, nil
}

// Encode appends doc as compact JSON to dst. Keys come out sorted and
// '<', '>' and '&' are not escaped (the stored event keeps the characters
// the client sent).
func Encode(dst []byte, doc Doc) ([]byte, error) {
	buf := bytes.NewBuffer(dst)
	e := json.NewEncoder(buf)
	e.SetEscapeHTML(false)
	if err := e.Encode(doc); err != nil {
		return dst, fmt.Errorf("encoding event: %w", err)
	}
	out := buf.Bytes()
	return out[:len(out)-1], nil // Encode ends with a newline
}
