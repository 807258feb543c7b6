package amplitude

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/confluxcdp/conflux/internal/deliver"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got (JSON) with testdata/name.golden.json, indented; with
// -update it rewrites the file instead.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	var ind bytes.Buffer
	if err := json.Indent(&ind, got, "", "  "); err != nil {
		t.Fatalf("%s: not JSON: %v\n%s", name, err, got)
	}
	ind.WriteByte('\n')
	path := filepath.Join("testdata", name+".golden.json")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, ind.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/deliver/destinations/amplitude -update to create it)", err)
	}
	if !bytes.Equal(ind.Bytes(), want) {
		t.Errorf("%s differs from %s (if the change is intended, run go test ./internal/deliver/destinations/amplitude -update):\ngot:\n%s\nwant:\n%s",
			name, path, ind.Bytes(), want)
	}
}

// webContext is what analytics.js sends as context.
const webContext = `{"ip":"203.0.113.7","library":{"name":"analytics.js","version":"next-1.84.3"},` +
	`"locale":"en-US","page":{"path":"/pricing","url":"https://example.com/pricing"},` +
	`"userAgent":"Mozilla/5.0 (X11; Linux x86_64)"}`

// mobileContext is what a mobile SDK sends as context.
const mobileContext = `{"ip":"198.51.100.4","library":{"name":"analytics-ios","version":"4.1.8"},` +
	`"locale":"fr-FR","app":{"name":"Shop","version":"3.5.1","build":"351"},` +
	`"device":{"id":"B5372DB0-C21E-11E4-8DFC-AA07A5B093DB","advertisingId":"7A3CBEA0-BDF5-11E4-8DFC-AA07A5B093DB",` +
	`"type":"ios","manufacturer":"Apple","model":"iPhone7,2","brand":"Apple"},` +
	`"os":{"name":"iOS","version":"17.4"},"network":{"carrier":"T-Mobile","wifi":true},` +
	`"location":{"country":"France","region":"Île-de-France","city":"Paris","latitude":48.8566,"longitude":"2.3522"}}`

func TestMapEvent(t *testing.T) {
	cases := []struct {
		name string
		json string
	}{
		{"track_web", `{"type":"track","event":"Order Completed","userId":"user-20391","anonymousId":"anon-5f2c",` +
			`"messageId":"msg-0001","timestamp":"2026-03-01T10:20:30.123Z","properties":{"orderId":"o-1","total":30},` +
			`"context":` + webContext + `}`},
		{"track_mobile", `{"type":"track","event":"Product Viewed","userId":"user-20391","anonymousId":"anon-5f2c",` +
			`"messageId":"msg-0002","timestamp":"2026-03-01T12:20:30+02:00","properties":{"sku":"45790-32"},` +
			`"context":` + mobileContext + `}`},
		{"track_anonymous_minimal", `{"type":"track","event":"Signed Up","anonymousId":"anon-5f2c","messageId":"msg-0003",` +
			`"timestamp":"2026-03-01T10:20:30Z","context":{}}`},
		{"track_revenue", `{"type":"track","event":"Subscription Started","userId":12345678,"messageId":"msg-0004",` +
			`"timestamp":"2026-03-01T10:20:30Z","properties":{"plan":"Basic","revenue":"32","price":16,"quantity":2,` +
			`"productId":"plan-basic","revenueType":"subscription"}}`},
		{"track_integration_options", `{"type":"track","event":"Video Played","userId":"user-20391","messageId":"msg-0005",` +
			`"timestamp":"2026-03-01T10:20:30Z","properties":{},"integrations":{"All":true,"Amplitude":{"session_id":1772360400000,` +
			`"groups":{"company":"Acme"}}}}`},
		{"page_named_with_category", `{"type":"page","name":"Settings","properties":{"category":"Merchant","path":"/settings"},` +
			`"userId":"user-20391","messageId":"msg-0006","timestamp":"2026-03-01T10:20:30Z","context":` + webContext + `}`},
		{"page_named", `{"type":"page","name":"Home","properties":{"title":"Welcome | Initech"},` +
			`"anonymousId":"anon-5f2c","messageId":"msg-0007","timestamp":"2026-03-01T10:20:30Z"}`},
		{"page_category_only", `{"type":"page","category":"Docs","anonymousId":"anon-5f2c","messageId":"msg-0008",` +
			`"timestamp":"2026-03-01T10:20:30Z"}`},
		{"page_unnamed", `{"type":"page","properties":{"url":"https://example.com/"},"anonymousId":"anon-5f2c",` +
			`"messageId":"msg-0009","timestamp":"2026-03-01T10:20:30Z"}`},
		{"screen_named", `{"type":"screen","name":"Checkout","userId":"user-20391","messageId":"msg-0010",` +
			`"timestamp":"2026-03-01T10:20:30Z","context":` + mobileContext + `}`},
		{"screen_unnamed", `{"type":"screen","userId":"user-20391","messageId":"msg-0011","timestamp":"2026-03-01T10:20:30Z"}`},
		{"identify", `{"type":"identify","userId":"user-20391","anonymousId":"anon-5f2c","messageId":"msg-0012",` +
			`"timestamp":"2026-03-01T10:20:30Z","traits":{"email":"derek@example.com","name":"Derek Sivers","plan":"pro"},` +
			`"context":` + webContext + `}`},
		{"identify_without_traits", `{"type":"identify","userId":"user-20391","messageId":"msg-0013","timestamp":"2026-03-01T10:20:30Z"}`},
		{"group", `{"type":"group","groupId":"082108c8-f51e","userId":"user-20391","messageId":"msg-0014",` +
			`"timestamp":"2026-03-01T10:20:30Z","traits":{"name":"ExampleCorp, LLC","employees":20}}`},
		{"short_user_id_dropped", `{"type":"track","event":"Clicked","userId":"u1","anonymousId":"anon-5f2c",` +
			`"messageId":"msg-0015","timestamp":"2026-03-01T10:20:30Z"}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, res, ok := mapEvent(&deliver.Event{JSON: []byte(c.json)}, DefaultMinIDLength)
			if !ok {
				t.Fatalf("mapEvent refused the event: %+v", res)
			}
			golden(t, "event_"+c.name, m.json)
		})
	}
}

func TestMapEventRefusals(t *testing.T) {
	cases := []struct {
		name, json string
		reason     string
		errHas     string
	}{
		{"alias", `{"type":"alias","userId":"user-20391","previousId":"anon-5f2c","messageId":"m"}`,
			deliver.ReasonUnsupportedEventType, "alias"},
		{"unknown type", `{"type":"delete","userId":"user-20391"}`, deliver.ReasonUnsupportedEventType, `"delete"`},
		{"no ids", `{"type":"track","event":"Clicked","messageId":"m","timestamp":"2026-03-01T10:20:30Z"}`,
			deliver.ReasonInvalidEvent, "at least 5 characters"},
		{"ids too short", `{"type":"track","event":"Clicked","userId":"u1","anonymousId":"a2"}`,
			deliver.ReasonInvalidEvent, "at least 5 characters"},
		{"track without name", `{"type":"track","event":"  ","userId":"user-20391"}`, deliver.ReasonInvalidEvent, "event name"},
		{"bad timestamp", `{"type":"track","event":"Clicked","userId":"user-20391","timestamp":"yesterday"}`,
			deliver.ReasonInvalidEvent, "yesterday"},
		{"group without groupId", `{"type":"group","userId":"user-20391"}`, deliver.ReasonInvalidEvent, "groupId"},
		{"not JSON", `{"type":`, deliver.ReasonInvalidEvent, "not a Segment event"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, res, ok := mapEvent(&deliver.Event{JSON: []byte(c.json)}, DefaultMinIDLength)
			if ok {
				t.Fatal("mapEvent accepted the event")
			}
			if res.Outcome != deliver.Discard || res.Reason != c.reason || !strings.Contains(res.Error, c.errHas) {
				t.Errorf("got %v %q %q, want discard %q with an error containing %q", res.Outcome, res.Reason, res.Error, c.reason, c.errHas)
			}
		})
	}
}

func TestMapEventMinIDLength(t *testing.T) {
	e := &deliver.Event{JSON: []byte(`{"type":"track","event":"Clicked","userId":"abc","messageId":"m-1"}`)}
	if _, _, ok := mapEvent(e, DefaultMinIDLength); ok {
		t.Fatal("a 3-character userId passed the default minimum of 5")
	}
	m, res, ok := mapEvent(e, 3)
	if !ok {
		t.Fatalf("a 3-character userId failed a minimum of 3: %+v", res)
	}
	if want := `{"user_id":"abc","event_type":"Clicked","insert_id":"m-1"}`; string(m.json) != want {
		t.Errorf("got %s, want %s", m.json, want)
	}
}

func TestMapEventMessageIDFallback(t *testing.T) {
	e := &deliver.Event{MessageID: "from-envelope", Type: "track",
		JSON: []byte(`{"event":"Clicked","userId":"user-20391"}`)}
	m, res, ok := mapEvent(e, DefaultMinIDLength)
	if !ok {
		t.Fatalf("refused: %+v", res)
	}
	if want := `{"user_id":"user-20391","event_type":"Clicked","insert_id":"from-envelope"}`; string(m.json) != want {
		t.Errorf("got %s, want %s", m.json, want)
	}
}

// FuzzMapEvent: whatever the event JSON, mapEvent does not panic, and it
// either refuses the event with Discard or produces valid JSON with an
// event type and an ID.
func FuzzMapEvent(f *testing.F) {
	for _, s := range []string{
		`{"type":"track","event":"Clicked","userId":"user-20391","properties":{"revenue":"3.5","quantity":2}}`,
		`{"type":"page","name":"Home","anonymousId":12345,"context":` + webContext + `}`,
		`{"type":"identify","userId":"user-20391","traits":{"a":1},"context":` + mobileContext + `}`,
		`{"type":"group","groupId":42,"userId":"user-20391"}`,
		`{"type":"track","event":"x","userId":"user-20391","integrations":{"Amplitude":{"session_id":"17","groups":[]}}}`,
		`{"type":"alias"}`, `[]`, `null`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, res, ok := mapEvent(&deliver.Event{JSON: b}, DefaultMinIDLength)
		if !ok {
			if res.Outcome != deliver.Discard || res.Reason == "" || res.Error == "" {
				t.Fatalf("refusal without a discard reason: %+v", res)
			}
			return
		}
		var ev struct {
			EventType string `json:"event_type"`
			UserID    string `json:"user_id"`
			DeviceID  string `json:"device_id"`
		}
		if err := json.Unmarshal(m.json, &ev); err != nil {
			t.Fatalf("invalid JSON %s: %v", m.json, err)
		}
		if ev.EventType == "" || (ev.UserID == "" && ev.DeviceID == "") || ev.UserID != m.userID || ev.DeviceID != m.deviceID {
			t.Fatalf("incomplete event %s", m.json)
		}
	})
}
