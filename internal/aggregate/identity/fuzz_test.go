package identity

import (
	"slices"
	"testing"

	"github.com/confluxcdp/conflux/internal/event"
)

// FuzzExtract feeds arbitrary events to Extract: it must not panic, and
// every identifier it returns must be promotable (not blocked, typed,
// non-empty), whatever shape the fields have.
func FuzzExtract(f *testing.F) {
	for _, s := range []string{
		`{"type":"identify","userId":"u","anonymousId":"a","traits":{"email":"e@x.io","phone":"1"}}`,
		`{"type":"track","userId":7,"context":{"device":{"type":"ios","id":"d","advertisingId":"x","adTrackingEnabled":true,"token":"t"},"externalIds":[{"id":"1","type":"crm","collection":"users","encoding":"none"}]}}`,
		`{"type":"group","groupId":"g","context":{"externalIds":"not a list","traits":[]}}`,
		`{"type":"alias","previousId":{"a":1},"userId":null,"integrations":{"Google Analytics":"x"}}`,
		`{"type":"page","anonymousId":"00000000-0000-0000-0000-000000000000","properties":{"email":["a"]}}`,
	} {
		f.Add([]byte(s))
	}
	rules, err := Settings{Identifiers: []IdentifierRule{{Type: "phone"}, {Type: "org", Collection: Accounts}}}.Compile()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		doc, err := event.Decode(b)
		if err != nil {
			return
		}
		ex := rules.Extract(doc)
		// Decode leaves out what cannot hold an identifier: extracting from
		// it must find the same.
		part, err := rules.Decode(b)
		if err != nil {
			t.Fatalf("Decode failed where event.Decode did not: %v", err)
		}
		if got := rules.Extract(part); !slices.Equal(got.Users, ex.Users) || !slices.Equal(got.Accounts, ex.Accounts) || got.PreviousID != ex.PreviousID {
			t.Fatalf("from %s: Decode then Extract %+v, full decode %+v", b, got, ex)
		}
		for _, list := range [][]ID{ex.Users, ex.Accounts} {
			for _, id := range list {
				if id.Type == "" || id.Value == "" || rules.Blocked(id.Type, id.Value) {
					t.Fatalf("extracted %q from %s", id, b)
				}
			}
		}
	})
}
