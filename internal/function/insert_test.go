package function

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestInsertEnrich(t *testing.T) {
	profiles := newFakeAPI(t, serving(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tk" {
			w.WriteHeader(401)
			return
		}
		switch r.URL.Path {
		case "/profiles/u1":
			io.WriteString(w, `{"plan":"business","ltv":1250.5}`)
		case "/profiles/down":
			w.WriteHeader(502)
		default:
			w.WriteHeader(404)
		}
	}))

	r := newRunner(t)
	p := compile(t, KindInsert, testdata(t, "insert_enrich.js"),
		withSettings(map[string]any{"environment": "production", "profiles": profiles.URL, "token": "tk"}), withHosts(profiles.host()))
	sum := sha256.Sum256([]byte("ana@shop.io"))
	for _, tc := range []struct {
		name   string
		ev     EventIn
		status Status
		class  string
		want   string // the event returned, when OK
	}{
		{"track enriched, a property removed",
			EventIn{Type: "track", JSON: []byte(`{"type":"track","event":"Order Completed","userId":"u1","properties":{"revenue":25.5,"credit_card":"4242"},"context":{"ip":"203.0.113.7"}}`)},
			OK, "", `{"type":"track","event":"Order Completed","userId":"u1","properties":{"revenue":25.5,"environment":"production","revenue_cents":2550},"context":{"ip":"203.0.113.7","enriched_by":"insert"}}`},
		{"track without properties",
			EventIn{Type: "track", JSON: []byte(`{"type":"track","event":"Ping","anonymousId":"a"}`)},
			OK, "", `{"type":"track","event":"Ping","anonymousId":"a","properties":{"environment":"production","revenue_cents":0},"context":{"enriched_by":"insert"}}`},
		{"a test event is dropped with DropEvent",
			EventIn{Type: "track", JSON: []byte(`{"type":"track","event":"Order Completed","properties":{"test":true}}`)},
			Drop, "DropEvent", ""},
		{"identify enriched from the profile service, the email hashed",
			EventIn{Type: "identify", JSON: []byte(`{"type":"identify","userId":"u1","traits":{"email":" Ana@Shop.io ","name":"Ana"}}`)},
			OK, "", `{"type":"identify","userId":"u1","traits":{"name":"Ana","plan":"business","lifetime_value":1250.5,"email_sha256":"` + hex.EncodeToString(sum[:]) + `"}}`},
		{"identify of an unknown profile passes unchanged",
			EventIn{Type: "identify", JSON: []byte(`{"type":"identify","userId":"nobody","traits":{"email":"x@y.z"}}`)},
			OK, "", `{"type":"identify","userId":"nobody","traits":{"email":"x@y.z"}}`},
		{"identify when the profile service fails retries",
			EventIn{Type: "identify", JSON: []byte(`{"type":"identify","userId":"down","traits":{"email":"x@y.z"}}`)},
			Retry, "RetryError", ""},
		{"an internal user: returning nothing drops it",
			EventIn{Type: "identify", JSON: []byte(`{"type":"identify","userId":"u2","traits":{"email":"dev@example.com"}}`)},
			Drop, "DropEvent", ""},
		{"page passes unchanged",
			EventIn{Type: "page", JSON: []byte(`{"type":"page","name":"Home","properties":{"path":"/"}}`)},
			OK, "", `{"type":"page","name":"Home","properties":{"path":"/"}}`},
		{"screen has no handler: dropped",
			EventIn{Type: "screen", JSON: []byte(`{"type":"screen","name":"Home"}`)},
			Drop, ClassNoHandler, ""},
		{"group has no handler: dropped",
			EventIn{Type: "group", JSON: []byte(`{"type":"group","groupId":"g"}`)},
			Drop, ClassNoHandler, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := r.Insert(context.Background(), p, tc.ev)
			wantOutcome(t, res.Outcome, tc.status, tc.class)
			if tc.status == OK {
				wantJSON(t, res.JSON, tc.want)
				// The event keeps its keys' order, as JSON.stringify writes them.
				if !strings.HasPrefix(string(res.JSON), `{"type":"`) {
					t.Errorf("order lost: %s", res.JSON)
				}
			} else if res.JSON != nil {
				t.Errorf("a %v event came back: %s", res.Status, res.JSON)
			}
		})
	}
}

func TestInsertReturns(t *testing.T) {
	r := newRunner(t)
	ev := EventIn{Type: "track", JSON: []byte(`{"type":"track","event":"E","properties":{"a":1},"userId":"u"}`)}
	for _, tc := range []struct {
		name   string
		code   string
		status Status
		class  string
		want   string
	}{
		{"the event unchanged", `function onTrack(e) { return e }`, OK, "", `{"type":"track","event":"E","properties":{"a":1},"userId":"u"}`},
		{"the event changed, async", `async function onTrack(e) { e.event = 'Renamed'; e.properties.b = [1, {c: null}]; delete e.userId; return e }`, OK, "",
			`{"type":"track","event":"Renamed","properties":{"a":1,"b":[1,{"c":null}]}}`},
		{"a new object", `async function onTrack(e) { return { type: 'track', event: e.event + '!', anonymousId: 'x', sentAt: new Date(0) } }`, OK, "",
			`{"type":"track","event":"E!","anonymousId":"x","sentAt":"1970-01-01T00:00:00.000Z"}`},
		{"a promise of the event", `function onTrack(e) { return new Promise((resolve) => setTimeout(() => resolve(e), 5)) }`, OK, "", `{"type":"track","event":"E","properties":{"a":1},"userId":"u"}`},
		{"undefined values and functions are left out", `function onTrack(e) { e.properties = { u: undefined, f() {}, n: NaN, i: -Infinity }; return e }`, OK, "",
			`{"type":"track","event":"E","properties":{"n":null,"i":null},"userId":"u"}`},
		{"unicode survives", `function onTrack(e) { e.properties.name = 'Zoë 日本 😀 \u2028'; return e }`, OK, "",
			`{"type":"track","event":"E","properties":{"a":1,"name":"Zoë 日本 😀 ` + "\u2028" + `"},"userId":"u"}`},
		{"nothing: dropped", `async function onTrack(e) {}`, Drop, "DropEvent", ""},
		{"null: dropped", `function onTrack(e) { return null }`, Drop, "DropEvent", ""},
		{"DropEvent", `async function onTrack(e) { throw new DropEvent('not wanted') }`, Drop, "DropEvent", ""},
		{"a subclass of DropEvent", `class Filtered extends DropEvent {} async function onTrack(e) { throw new Filtered('x') }`, Drop, "DropEvent", ""},
		{"a string is not an event", `function onTrack(e) { return 'event' }`, Discard, ClassBadReturn, ""},
		{"a number is not an event", `function onTrack(e) { return 1 }`, Discard, ClassBadReturn, ""},
		{"an array is not an event", `function onTrack(e) { return [e] }`, Discard, ClassBadReturn, ""},
		{"a cycle cannot be written", `function onTrack(e) { e.self = e; return e }`, Discard, "TypeError", ""},
		{"a BigInt cannot be written", `function onTrack(e) { e.n = 10n; return e }`, Discard, "TypeError", ""},
		{"a getter that throws", `function onTrack(e) { return { get x() { throw new ValidationError('no x') } } }`, Discard, "ValidationError", ""},
		{"RetryError", `async function onTrack(e) { throw new RetryError('later') }`, Retry, "RetryError", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := r.Insert(context.Background(), compile(t, KindInsert, tc.code), ev)
			wantOutcome(t, res.Outcome, tc.status, tc.class)
			if tc.want != "" && string(res.JSON) != tc.want {
				t.Errorf("got  %s\nwant %s", res.JSON, tc.want)
			}
		})
	}
}

// TestSourceInsertFunction: the same insert function on a source's events
// (Segment's source insert functions): each handler returns the event to
// keep it.
func TestSourceInsertFunction(t *testing.T) {
	r := newRunner(t)
	p := compile(t, KindInsert, `
async function onIdentify(event) { event.traits.source = 'crm'; return event }
async function onTrack(event) {
  if (!event.event) throw new InvalidEventPayload('a track needs an event name')
  if (event.event.startsWith('Debug')) throw new DropEvent()
  return event
}
async function onAlias(event) { throw new EventNotSupported('no aliases') }
async function onGroup(event) { throw new ValidationError('no groups') }`)
	for _, tc := range []struct {
		ev     EventIn
		status Status
		class  string
	}{
		{event("identify", map[string]any{"userId": "u", "traits": map[string]any{}}), OK, ""},
		{track("Signed Up", nil), OK, ""},
		{event("track", map[string]any{"userId": "u"}), Discard, "InvalidEventPayload"},
		{track("Debug Click", nil), Drop, "DropEvent"},
		{event("alias", map[string]any{"userId": "u"}), Discard, "EventNotSupported"},
		{event("group", map[string]any{"groupId": "g"}), Discard, "ValidationError"},
		{event("page", nil), Drop, ClassNoHandler},
	} {
		res := r.Insert(context.Background(), p, tc.ev)
		wantOutcome(t, res.Outcome, tc.status, tc.class)
	}
}
