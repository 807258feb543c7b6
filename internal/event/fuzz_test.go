package event

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"unicode/utf8"
)

func addSeeds(f *testing.F) {
	f.Helper()
	files, _ := filepath.Glob("testdata/*.json")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{`{}`, `[]`, `"\ud83d\ude00"`, `-0.1e+5`, `{"a":[1,2,{"b":null}]}`, "{\"a\":\"\xff\"}"} {
		f.Add([]byte(s))
	}
}

// FuzzValid checks the scanner against encoding/json: they agree on every
// input, except that Conflux also refuses strings that are not UTF-8.
func FuzzValid(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		got := Valid(b)
		want := json.Valid(b) && utf8.Valid(b)
		if got != want {
			t.Fatalf("Valid(%q) = %v, encoding/json says %v", b, got, want)
		}
	})
}

// FuzzParse feeds arbitrary bodies to both endpoints: parsing never panics,
// and every record it produces is valid JSON carrying the fields Conflux
// promises.
func FuzzParse(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, pathType := range []string{"", Track, Alias} {
			var p Payload
			if err := p.Parse(body, pathType, DefaultLimits()); err != nil {
				continue
			}
			if !Valid(body) {
				t.Fatalf("Parse accepted invalid JSON %q", body)
			}
			out, n, rej := p.AppendRecords(nil, Meta{SourceID: "s", ReceivedAt: recv, IP: "192.0.2.1"}, DefaultLimits(), nil)
			if n+len(rej) != p.Len() {
				t.Fatalf("%d records + %d rejections != %d events", n, len(rej), p.Len())
			}
			for r, err := range Records(out) {
				if err != nil {
					t.Fatal(err)
				}
				var e map[string]any
				if err := json.Unmarshal(r.JSON, &e); err != nil || !Valid(r.JSON) {
					t.Fatalf("record %q from body %q: %v", r.JSON, body, err)
				}
				for _, k := range []string{"type", "messageId", "receivedAt", "timestamp", "context"} {
					if _, ok := e[k]; !ok {
						t.Fatalf("record %s lacks %s", r.JSON, k)
					}
				}
				if _, ok := e["writeKey"]; ok {
					t.Fatalf("record %s keeps writeKey", r.JSON)
				}
			}
		}
	})
}
