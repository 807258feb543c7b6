package loadgen

import (
	"slices"
	"testing"
)

func TestEachMessageID(t *testing.T) {
	for body, want := range map[string][]string{
		`{"messageId":"a","type":"track"}`:            {"a"},
		`[{"messageId":"a"},{"x":1,"messageId":"b"}]`: {"a", "b"},
		`{"type":"track"}`:                            nil,
		`{"messageId":"cut`:                           nil,
	} {
		var got []string
		EachMessageID([]byte(body), func(id []byte) { got = append(got, string(id)) })
		if !slices.Equal(got, want) {
			t.Errorf("%s: %v, want %v", body, got, want)
		}
	}
}
