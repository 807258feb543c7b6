package event

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

var recv = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

// normalize runs a body through Parse and AppendRecords and decodes the
// records back into maps.
func normalize(t *testing.T, body, pathType string, m Meta) ([]map[string]any, []Rejection, error) {
	t.Helper()
	var p Payload
	if err := p.Parse([]byte(body), pathType, DefaultLimits()); err != nil {
		return nil, nil, err
	}
	if m.ReceivedAt.IsZero() {
		m.ReceivedAt = recv
	}
	if m.SourceID == "" {
		m.SourceID = "src"
	}
	out, n, rej := p.AppendRecords(nil, m, DefaultLimits(), nil)
	var events []map[string]any
	for r, err := range Records(out) {
		if err != nil {
			t.Fatalf("reading records: %v", err)
		}
		if r.SourceID != m.SourceID {
			t.Fatalf("record source = %q, want %q", r.SourceID, m.SourceID)
		}
		if !json.Valid(r.JSON) {
			t.Fatalf("record is not valid JSON: %s", r.JSON)
		}
		var e map[string]any
		if err := json.Unmarshal(r.JSON, &e); err != nil {
			t.Fatal(err)
		}
		events = append(events, e)
	}
	if n != len(events) {
		t.Fatalf("AppendRecords reported %d records, framed %d", n, len(events))
	}
	return events, rej, nil
}

func get(m map[string]any, path string) any {
	var cur any = m
	for _, k := range strings.Split(path, ".") {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[k]
	}
	return cur
}

func TestNormalizeSingle(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		pathType string
		meta     Meta
		want     map[string]any // path -> value; nil value means "absent"
	}{
		{
			name:     "track gets messageId receivedAt timestamp and type from path",
			body:     `{"userId":"u1","event":"Signed Up","properties":{"plan":"pro","n":1.50},"writeKey":"wk"}`,
			pathType: Track,
			want: map[string]any{
				"type": "track", "event": "Signed Up", "userId": "u1", "properties.plan": "pro", "properties.n": 1.5,
				"receivedAt": "2026-11-22T10:00:00.000Z", "timestamp": "2026-11-22T10:00:00.000Z",
				"writeKey": nil, "originalTimestamp": nil,
			},
		},
		{
			name:     "clock skew corrected from sentAt and timestamp",
			body:     `{"anonymousId":"a","timestamp":"2026-11-22T09:00:00.000Z","sentAt":"2026-11-22T09:00:10.000Z"}`,
			pathType: Page,
			want: map[string]any{
				"type": "page", "originalTimestamp": "2026-11-22T09:00:00.000Z", "sentAt": "2026-11-22T09:00:10.000Z",
				"timestamp": "2026-11-22T09:59:50.000Z", "receivedAt": "2026-11-22T10:00:00.000Z",
			},
		},
		{
			name:     "originalTimestamp wins over timestamp",
			body:     `{"userId":"u","originalTimestamp":"2026-11-22T08:00:00+01:00","timestamp":"2020-01-01T00:00:00Z"}`,
			pathType: Identify,
			want:     map[string]any{"originalTimestamp": "2026-11-22T08:00:00+01:00", "timestamp": "2026-11-22T07:00:00.000Z"},
		},
		{
			name:     "client messageId kept and ip added for a browser library",
			body:     `{"userId":"u","messageId":"ajs-1","context":{"library":{"name":"analytics.js","version":"next-1.0"}}}`,
			pathType: Screen,
			meta:     Meta{IP: "203.0.113.9"},
			want:     map[string]any{"messageId": "ajs-1", "context.ip": "203.0.113.9", "context.library.name": "analytics.js"},
		},
		{
			name:     "server library does not get the server address",
			body:     `{"userId":"u","context":{"library":{"name":"analytics-go","version":"3.3.0"}}}`,
			pathType: Identify,
			meta:     Meta{IP: "203.0.113.9"},
			want:     map[string]any{"context.ip": nil, "context.library.name": "analytics-go"},
		},
		{
			name:     "server library with context.direct gets it",
			body:     `{"userId":"u","context":{"direct":true,"library":{"name":"analytics-node"}}}`,
			pathType: Identify,
			meta:     Meta{IP: "2001:db8::1"},
			want:     map[string]any{"context.ip": "2001:db8::1"},
		},
		{
			name:     "client ip kept",
			body:     `{"userId":"u","context":{"ip":"198.51.100.1"}}`,
			pathType: Identify,
			meta:     Meta{IP: "203.0.113.9"},
			want:     map[string]any{"context.ip": "198.51.100.1"},
		},
		{
			name:     "numeric ids become strings",
			body:     `{"userId":42,"anonymousId":null,"groupId":7,"messageId":99}`,
			pathType: Group,
			want:     map[string]any{"userId": "42", "groupId": "7", "messageId": "99"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			events, rej, err := normalize(t, tt.body, tt.pathType, tt.meta)
			if err != nil || len(rej) != 0 || len(events) != 1 {
				t.Fatalf("got %d events, rejections %v, err %v", len(events), rej, err)
			}
			e := events[0]
			if id, _ := e["messageId"].(string); id == "" {
				t.Errorf("messageId missing: %v", e)
			}
			for path, want := range tt.want {
				if got := get(e, path); got != want {
					t.Errorf("%s = %#v, want %#v", path, got, want)
				}
			}
		})
	}
}

func TestEmptyContextTakesIP(t *testing.T) {
	events, _, err := normalize(t, `{"userId":"u","context":{ }, "event":"x"}`, Track, Meta{IP: "10.0.0.1"})
	if err != nil || len(events) != 1 {
		t.Fatalf("events %v err %v", events, err)
	}
	if got := get(events[0], "context.ip"); got != "10.0.0.1" {
		t.Errorf("context.ip = %v", got)
	}
}

func TestGeneratedMessageIDsDiffer(t *testing.T) {
	events, _, err := normalize(t, `{"batch":[{"type":"identify","userId":"a"},{"type":"identify","userId":"b"}]}`, "", Meta{})
	if err != nil {
		t.Fatal(err)
	}
	a, b := events[0]["messageId"].(string), events[1]["messageId"].(string)
	if len(a) != 36 || a == b {
		t.Errorf("messageIds %q and %q: want two distinct UUIDs", a, b)
	}
}

func TestNormalizeBatch(t *testing.T) {
	body := `{
	  "batch": [
	    {"type":"track","userId":"u1","event":"A","context":{"locale":"fr-FR"}},
	    {"type":"track","userId":"u1"},
	    {"type":"identify","traits":{"email":"x@example.com"}},
	    "not an object",
	    {"type":"launch","userId":"u"},
	    {"type":"alias","previousId":"anon","userId":"u"},
	    {"type":"alias","userId":"u"},
	    {"type":"group","userId":"u"},
	    {"type":"page","userId":"u","timestamp":"yesterday"},
	    {"type":"page","userId":{"id":1}},
	    {"type":"track","userId":"u","event":"B","integrations":{"Mixpanel":false},"sentAt":"2026-11-22T09:59:59.000Z"},
	    {"type":"screen","anonymousId":"a","messageId":"` + strings.Repeat("m", 101) + `"}
	  ],
	  "context": {"library":{"name":"analytics-go","version":"3.3.0"},"locale":"en-US"},
	  "integrations": {"All": true, "Mixpanel": true},
	  "sentAt": "2026-11-22T09:59:58.000Z",
	  "writeKey": "wk-batch"
	}`
	var p Payload
	if err := p.Parse([]byte(body), "", DefaultLimits()); err != nil {
		t.Fatal(err)
	}
	if p.WriteKey != "wk-batch" {
		t.Errorf("WriteKey = %q", p.WriteKey)
	}
	events, rej, err := normalize(t, body, "", Meta{IP: "203.0.113.9"})
	if err != nil {
		t.Fatal(err)
	}
	wantReasons := map[int]string{
		1: ReasonMissingEvent, 2: ReasonNoUserAnonID, 3: ReasonInvalidEvent, 4: ReasonInvalidType,
		6: ReasonMissingPrevious, 7: ReasonMissingGroupID, 8: ReasonInvalidTimestamp, 9: ReasonInvalidField,
		11: ReasonMessageIDTooLong,
	}
	if len(rej) != len(wantReasons) {
		t.Errorf("got %d rejections %+v, want %d", len(rej), rej, len(wantReasons))
	}
	for _, r := range rej {
		if wantReasons[r.Index] != r.Reason {
			t.Errorf("event %d rejected for %q, want %q (%s)", r.Index, r.Reason, wantReasons[r.Index], r.Message)
		}
		if r.Message == "" {
			t.Errorf("event %d: empty message", r.Index)
		}
	}
	if len(events) != 3 {
		t.Fatalf("got %d events, want 3", len(events))
	}
	first, alias, last := events[0], events[1], events[2]
	checks := []struct {
		e    map[string]any
		path string
		want any
	}{
		{first, "context.locale", "fr-FR"}, // event's own key wins
		{first, "context.library.name", "analytics-go"},
		{first, "context.ip", nil}, // server library
		{first, "integrations.Mixpanel", true},
		{first, "sentAt", "2026-11-22T09:59:58.000Z"},
		{alias, "type", "alias"},
		{alias, "previousId", "anon"},
		{last, "integrations.Mixpanel", false}, // event's own key wins
		{last, "integrations.All", true},
		{last, "sentAt", "2026-11-22T09:59:59.000Z"},
	}
	for _, c := range checks {
		if got := get(c.e, c.path); got != c.want {
			t.Errorf("%s = %#v, want %#v", c.path, got, c.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	lim := DefaultLimits()
	bigEvent := `{"userId":"u","event":"x","properties":{"s":"` + strings.Repeat("x", lim.MaxEventBytes) + `"}}`
	tooMany := `{"batch":[` + strings.TrimSuffix(strings.Repeat(`{"type":"track"},`, lim.MaxBatchEvents+1), ",") + `]}`
	tests := []struct {
		name, body, pathType, code, msg string
	}{
		{"empty", "", Track, CodeInvalidJSON, "empty"},
		{"spaces", "  \n", Track, CodeInvalidJSON, "empty"},
		{"truncated", `{"userId":"u"`, Track, CodeInvalidJSON, "byte"},
		{"trailing comma", `{"userId":"u",}`, Track, CodeInvalidJSON, "expected a string key"},
		{"trailing data", `{"userId":"u"} {}`, Track, CodeInvalidJSON, "after the JSON object"},
		{"bad escape", `{"userId":"\x"}`, Track, CodeInvalidJSON, "invalid escape"},
		{"bad utf8", "{\"userId\":\"\xff\"}", Track, CodeInvalidJSON, "UTF-8"},
		{"array body", `[{"userId":"u"}]`, Track, CodeInvalidBody, "object"},
		{"batch not array", `{"batch":{"type":"track"}}`, "", CodeInvalidBody, "array"},
		{"event too large", bigEvent, Track, CodeTooLarge, "limit"},
		{"too many events", tooMany, "", CodeTooManyEvents, "2500"},
		{"deep nesting", strings.Repeat(`{"a":`, 200) + "1" + strings.Repeat("}", 200), Track, CodeInvalidJSON, "nesting"},
		{"leading zero", `{"n":01}`, Track, CodeInvalidJSON, "expected ','"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p Payload
			err := p.Parse([]byte(tt.body), tt.pathType, lim)
			e, ok := errors.AsType[*Error](err)
			if !ok {
				t.Fatalf("err = %v, want *Error", err)
			}
			if e.Code != tt.code || !strings.Contains(e.Message, tt.msg) {
				t.Errorf("got %s: %s; want code %s and a message containing %q", e.Code, e.Message, tt.code, tt.msg)
			}
		})
	}
}

func TestBatchTooLarge(t *testing.T) {
	lim := DefaultLimits()
	body := `{"batch":[],"pad":"` + strings.Repeat("x", lim.MaxBatchBytes) + `"}`
	var p Payload
	err := p.Parse([]byte(body), "", lim)
	if e, ok := errors.AsType[*Error](err); !ok || e.Code != CodeTooLarge {
		t.Fatalf("err = %v, want %s", err, CodeTooLarge)
	}
}

func TestEventTooLargeInBatchIsRejectedAlone(t *testing.T) {
	lim := DefaultLimits()
	big := `{"type":"track","userId":"u","event":"big","properties":{"s":"` + strings.Repeat("x", lim.MaxEventBytes) + `"}}`
	events, rej, err := normalize(t, `{"batch":[`+big+`,{"type":"track","userId":"u","event":"small"}]}`, "", Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 || len(rej) != 1 || rej[0].Reason != ReasonEventTooLarge || rej[0].Index != 0 {
		t.Fatalf("events %d, rejections %+v", len(events), rej)
	}
}

func TestPropertiesKeptByteForByte(t *testing.T) {
	props := `{"price":1.10,"big":12345678901234567890,"s":"\u00e9\n","nested":{"a":[1,{"b":null}]}}`
	var p Payload
	if err := p.Parse([]byte(`{"userId":"u","event":"e","properties":`+props+`}`), Track, DefaultLimits()); err != nil {
		t.Fatal(err)
	}
	out, _, _ := p.AppendRecords(nil, Meta{SourceID: "s", ReceivedAt: recv}, DefaultLimits(), nil)
	if !strings.Contains(string(out), `"properties":`+props) {
		t.Errorf("properties not kept verbatim:\n%s", out)
	}
}

func TestRecordsRejectsCorruptMessages(t *testing.T) {
	good := AppendRecord(nil, "src", []byte(`{"a":1}`))
	for _, msg := range [][]byte{good[:3], good[:len(good)-1], {0, 0, 0, 0}, {0, 0, 0, 2, 5, 'a'}} {
		var sawErr bool
		for _, err := range Records(msg) {
			if err != nil {
				sawErr = true
			}
		}
		if !sawErr {
			t.Errorf("Records(%q): no error", msg)
		}
	}
}

func TestSuppressedUsersAreRefused(t *testing.T) {
	suppressed := map[string]bool{"blocked": true, "42": true, "é": true}
	m := Meta{Suppressed: func(id []byte) bool { return suppressed[string(id)] }}
	body := `{"batch":[
		{"type":"track","userId":"blocked","event":"A"},
		{"type":"track","userId":42,"event":"B"},
		{"type":"track","userId":"\u00e9","event":"C"},
		{"type":"track","userId":"free","event":"D"},
		{"type":"track","anonymousId":"blocked","event":"E"}]}`
	events, rej, err := normalize(t, body, "", m)
	if err != nil {
		t.Fatal(err)
	}
	if len(rej) != 3 {
		t.Fatalf("rejections %+v, want the three suppressed userIds", rej)
	}
	for _, r := range rej {
		if r.Reason != ReasonSuppressed || r.Index > 2 {
			t.Errorf("rejection %+v", r)
		}
	}
	if len(events) != 2 || events[0]["event"] != "D" || events[1]["event"] != "E" {
		t.Errorf("kept %v; want D and E (anonymousId is not a userId)", events)
	}
}

func TestPeekKeys(t *testing.T) {
	var p Payload
	body := `{"userId":"u\u00e9","anonymousId":"a1","event":"E","messageId":"m-1","integrations":{"All":false,"Webhooks":true}}`
	if err := p.Parse([]byte(body), Track, DefaultLimits()); err != nil {
		t.Fatal(err)
	}
	out, _, _ := p.AppendRecords(nil, Meta{SourceID: "s", ReceivedAt: recv}, DefaultLimits(), nil)
	for r := range Records(out) {
		k, err := PeekKeys(r.JSON)
		if err != nil {
			t.Fatal(err)
		}
		if string(k.MessageID) != "m-1" || string(k.UserID) != "ué" || string(k.AnonymousID) != "a1" || !k.ReceivedAt.Equal(recv) ||
			string(k.Type) != "track" || string(k.Integrations) != `{"All":false,"Webhooks":true}` {
			t.Errorf("keys %q %q %q %v %q %s", k.MessageID, k.UserID, k.AnonymousID, k.ReceivedAt, k.Type, k.Integrations)
		}
	}
	for _, bad := range []string{`{"userId":"u"}`, `[1]`, `{"messageId":"m"`, `{"messageId":"m"} x`} {
		if _, err := PeekKeys([]byte(bad)); err == nil {
			t.Errorf("PeekKeys(%s): no error", bad)
		}
	}
}

func TestDescribe(t *testing.T) {
	var p Payload
	body := `{"batch":[{"type":"track","event":"Order \u0043ompleted","userId":"u"},{"type":"page","name":"Home","userId":"u"},` +
		`{"type":"screen","name":7,"userId":"u"},{"type":"identify","name":"x","userId":"u"},{"type":"nope","userId":"u"}]}`
	if err := p.Parse([]byte(body), "", DefaultLimits()); err != nil {
		t.Fatal(err)
	}
	want := [][2]string{{"track", "Order Completed"}, {"page", "Home"}, {"screen", ""}, {"identify", ""}, {"", ""}}
	for i, w := range want {
		if typ, name := p.Describe(i); typ != w[0] || name != w[1] {
			t.Errorf("event %d: %q %q, want %q %q", i, typ, name, w[0], w[1])
		}
	}
}
