package transform

import (
	"errors"
	"testing"

	"github.com/confluxcdp/conflux/internal/event"
)

// decode turns JSON into a Doc, the way the stages decode stored events.
func decode(t testing.TB, s string) event.Doc {
	t.Helper()
	d, err := event.Decode([]byte(s))
	if err != nil {
		t.Fatalf("decoding %s: %v", s, err)
	}
	return d
}

// encode turns a Doc into compact JSON with sorted keys.
func encode(t testing.TB, d event.Doc) string {
	t.Helper()
	b, err := event.Encode(nil, d)
	if err != nil {
		t.Fatalf("encoding: %v", err)
	}
	return string(b)
}

// canon re-encodes a JSON object so that it compares with encode's output.
func canon(t testing.TB, s string) string {
	t.Helper()
	return encode(t, decode(t, s))
}

// fieldErrors returns the FieldErrors inside err, in order.
func fieldErrors(t testing.TB, err error) []*FieldError {
	t.Helper()
	var out []*FieldError
	var walk func(error)
	walk = func(e error) {
		if fe, ok := e.(*FieldError); ok {
			out = append(out, fe)
			return
		}
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
			return
		}
		if u := errors.Unwrap(e); u != nil {
			walk(u)
			return
		}
		t.Errorf("error %q is not made of FieldErrors", e)
	}
	walk(err)
	return out
}

func ptr[T any](v T) *T { return &v }
