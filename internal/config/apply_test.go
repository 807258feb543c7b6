package config

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

// TestDeclHashUnchangedByUpgrade: the declaration hashes of sources and
// destinations that use none of the fields added with tracking plans are
// what the previous version stored, so that upgrading does not count as a
// change of every file object (which would undo API edits to them).
func TestDeclHashUnchangedByUpgrade(t *testing.T) {
	sum := func(s string) string {
		h := sha256.Sum256([]byte(s))
		return hex.EncodeToString(h[:])
	}
	for _, tc := range []struct {
		name string
		decl any
		old  string // the JSON the previous version hashed
	}{
		{"source", sourceDecl{ID: "web", Name: "Web", WriteKey: "k"}, `{"id":"web","name":"Web","write_key":"k"}`},
		{"destination", destinationDecl{ID: "d", Name: "", Type: "webhook", Enabled: true, Sources: []string{"web"}, Settings: map[string]any{"url": "x"}},
			`{"id":"d","name":"","type":"webhook","enabled":true,"sources":["web"],"settings":{"url":"x"}}`},
	} {
		got, err := declHash(tc.decl)
		if err != nil {
			t.Fatal(err)
		}
		if got != sum(tc.old) {
			t.Errorf("%s: hash changed: %s is no longer the hash of %s", tc.name, got, tc.old)
		}
	}
	// And a source that does use them hashes differently.
	a, _ := declHash(sourceDecl{ID: "web", Name: "Web", WriteKey: "k", TrackingPlan: "p"})
	if a == sum(`{"id":"web","name":"Web","write_key":"k"}`) {
		t.Error("the tracking plan is not part of a source's declaration")
	}
}
