package warehouse

import (
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/confluxcdp/conflux/internal/event"
)

// FuzzRows: any event gives rows whose table and column names are usable
// as they are (non-empty, at most 63 bytes, valid UTF-8, lowercase letters,
// digits and "_", not starting with a digit) and whose values have a type.
func FuzzRows(f *testing.F) {
	for _, s := range []string{
		`{"type":"track","event":"Order Completed","messageId":"m","properties":{"A b":{"C":[1,{"d":2}]},"9":true,"user":{"id":1}}}`,
		`{"type":"identify","messageId":"m","userId":7,"traits":{"createdAt":"2026-12-01T00:00:00Z","n":1e400}}`,
		`{"type":"group","messageId":"m","groupId":"g","context":{"traits":{"x":"y"}}}`,
		`{"type":"page","messageId":"m","name":"","properties":{"":1,"ÀÉ":"2026-13-45T99:99:99Z"}}`,
	} {
		f.Add([]byte(s))
	}
	valid := func(name string) bool {
		if name == "" || len(name) > MaxNameLength || !utf8.ValidString(name) {
			return false
		}
		for i, r := range name {
			if (i == 0 && unicode.IsDigit(r)) || !(r == '_' || unicode.IsDigit(r) || (unicode.IsLetter(r) && !unicode.IsUpper(r))) {
				return false
			}
		}
		return true
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		doc, err := event.Decode(b)
		if err != nil {
			return
		}
		for _, r := range Rows(doc, time.Unix(0, 0)) {
			if !valid(r.Table) {
				t.Fatalf("table %q from %s", r.Table, b)
			}
			for col, v := range r.Values {
				if !valid(col) || v.Type == "" {
					t.Fatalf("column %q (%s) of %s from %s", col, v.Type, r.Table, b)
				}
			}
		}
	})
}
