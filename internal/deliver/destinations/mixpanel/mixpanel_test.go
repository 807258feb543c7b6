package mixpanel

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/confluxcdp/conflux/internal/deliver"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The time every test event happened: 2025-01-15T12:00:00.123Z.
const (
	ts   = "2025-01-15T12:00:00.123Z"
	tsMS = 1736942400123
)

// newDest builds a destination that sends to f with a service account,
// the project token, and settings over those (a nil value removes one).
func newDest(t *testing.T, f *fake, settings map[string]any) *destination {
	t.Helper()
	s := map[string]any{"url": f.srv.URL, "project_id": f.projectID, "service_account_username": f.user,
		"service_account_secret": f.password, "project_token": f.token}
	for k, v := range settings {
		if v == nil {
			delete(s, k)
		} else {
			s[k] = v
		}
	}
	d, err := New(t.Context(), deliver.Config{ID: "mp", Settings: s, HTTP: f.srv.Client(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d.(*destination)
}

// ev makes an event from its JSON, as the engine hands it over.
func ev(t *testing.T, js string) *deliver.Event {
	t.Helper()
	var head struct{ Type, MessageID string }
	if err := json.Unmarshal([]byte(js), &head); err != nil {
		t.Fatalf("test event %s: %v", js, err)
	}
	return &deliver.Event{MessageID: head.MessageID, SourceID: "src", Type: head.Type,
		ReceivedAt: time.Date(2025, 1, 15, 12, 0, 1, 0, time.UTC), JSON: []byte(js), Attempt: 1}
}

// track makes a track call with a distinct messageId and userId.
func track(t *testing.T, i int, extra string) *deliver.Event {
	return ev(t, fmt.Sprintf(`{"type":"track","event":"Order Completed","messageId":"msg-%d","userId":"user-%d","timestamp":%q,"properties":{"n":%d%s}}`, i, i, ts, i, extra))
}

// canonical re-encodes JSON with sorted keys, for comparison and for
// readable failure messages.
func canonical(t *testing.T, b []byte) string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("not JSON: %v: %s", err, b)
	}
	out, _ := json.MarshalIndent(v, "", "  ")
	return string(out)
}

func wantOutcomes(t *testing.T, got []deliver.Result, want ...deliver.Outcome) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d results, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].Outcome != want[i] {
			t.Errorf("result %d: outcome %v (reason %q, error %q), want %v", i, got[i].Outcome, got[i].Reason, got[i].Error, want[i])
		}
	}
}

// TestMapping sends one event of each kind and checks the exact record
// Mixpanel gets.
func TestMapping(t *testing.T) {
	const fullContext = `"context":{"ip":"203.0.113.9",
		"userAgent":"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.6478.127 Safari/537.36",
		"os":{"name":"Mac OS X","version":"10.15.7"},"device":{"manufacturer":"Apple","model":"MacBookPro18,3","name":"mbp"},
		"app":{"name":"Shop","version":"2.3.1","build":"231"},"screen":{"width":1512,"height":982},
		"network":{"carrier":"T-Mobile","wifi":true},"library":{"name":"analytics.js","version":"2.11.1"},
		"page":{"url":"https://shop.example/cart","referrer":"https://search.example/"},
		"campaign":{"name":"spring","source":"newsletter","medium":"email","term":"shoes","content":"hero"},"locale":"en-US"}`
	tests := []struct {
		name     string
		settings map[string]any
		event    string
		path     string
		want     string
	}{{
		name: "track with the full context",
		event: `{"type":"track","event":"Order Completed","messageId":"4f1c2a9e-77d0-4d38-9a51-0c2b5d7e8f90",
			"userId":"u-42","anonymousId":"a-7","timestamp":"` + ts + `",` + fullContext + `,
			"properties":{"revenue":19.99,"order_id":"o-1","big":12345678901234567890}}`,
		path: "/import",
		want: `{"event":"Order Completed","properties":{
			"time":1736942400123,"distinct_id":"u-42","$insert_id":"4f1c2a9e-77d0-4d38-9a51-0c2b5d7e8f90",
			"$user_id":"u-42","$device_id":"a-7","ip":"203.0.113.9",
			"$browser":"Chrome","$browser_version":"126.0.6478.127","$os":"Mac OS X","$os_version":"10.15.7",
			"$manufacturer":"Apple","$model":"MacBookPro18,3","$device":"mbp",
			"$app_version_string":"2.3.1","$app_build_number":"231","$screen_width":1512,"$screen_height":982,
			"$carrier":"T-Mobile","$wifi":true,"mp_lib":"analytics.js","$lib_version":"2.11.1",
			"$current_url":"https://shop.example/cart","$referrer":"https://search.example/",
			"utm_campaign":"spring","utm_source":"newsletter","utm_medium":"email","utm_term":"shoes","utm_content":"hero",
			"revenue":19.99,"order_id":"o-1","big":12345678901234567890}}`,
	}, {
		name:  "anonymous track: distinct_id is the anonymousId, no $user_id",
		event: `{"type":"track","event":"Viewed Product","messageId":"m-1","anonymousId":"a-7","timestamp":"` + ts + `"}`,
		path:  "/import",
		want:  `{"event":"Viewed Product","properties":{"time":1736942400123,"distinct_id":"a-7","$insert_id":"m-1","$device_id":"a-7"}}`,
	}, {
		name:  "a messageId Mixpanel would refuse becomes a hash",
		event: `{"type":"track","event":"E","messageId":"ajs-next-1736942400123-4f1c2a9e-77d0-4d38-9a51-0c2b5d7e8f90","userId":"u","timestamp":"` + ts + `"}`,
		path:  "/import",
		want:  `{"event":"E","properties":{"time":1736942400123,"distinct_id":"u","$insert_id":"81f18e065a23defd5d5800384b822556785f","$user_id":"u"}}`,
	}, {
		name: "properties override context defaults but not the identity fields",
		event: `{"type":"track","event":"E","messageId":"m-2","userId":"u","timestamp":"` + ts + `","context":{"os":{"name":"iOS"}},
			"properties":{"$os":"visionOS","time":1,"distinct_id":"someone else","$insert_id":"x","$user_id":"y","$device_id":"z"}}`,
		path: "/import",
		want: `{"event":"E","properties":{"time":1736942400123,"distinct_id":"u","$insert_id":"m-2","$user_id":"u","$os":"visionOS"}}`,
	}, {
		name: "page, consolidated",
		event: `{"type":"page","name":"Home","category":"Docs","messageId":"m-3","userId":"u","timestamp":"` + ts + `",
			"properties":{"url":"https://docs.example/","path":"/","title":"Docs"}}`,
		path: "/import",
		want: `{"event":"Loaded a Page","properties":{"time":1736942400123,"distinct_id":"u","$insert_id":"m-3","$user_id":"u",
			"$current_url":"https://docs.example/","url":"https://docs.example/","path":"/","title":"Docs","name":"Home","category":"Docs"}}`,
	}, {
		name:     "page, named",
		settings: map[string]any{"consolidated_page_calls": false},
		event:    `{"type":"page","name":"Home","category":"Docs","messageId":"m-4","userId":"u","timestamp":"` + ts + `"}`,
		path:     "/import",
		want:     `{"event":"Viewed Docs Home Page","properties":{"time":1736942400123,"distinct_id":"u","$insert_id":"m-4","$user_id":"u","name":"Home","category":"Docs"}}`,
	}, {
		name:     "page without a name keeps the consolidated name",
		settings: map[string]any{"consolidated_page_calls": false},
		event:    `{"type":"page","messageId":"m-5","userId":"u","timestamp":"` + ts + `"}`,
		path:     "/import",
		want:     `{"event":"Loaded a Page","properties":{"time":1736942400123,"distinct_id":"u","$insert_id":"m-5","$user_id":"u"}}`,
	}, {
		name:  "screen, consolidated",
		event: `{"type":"screen","name":"Settings","messageId":"m-6","userId":"u","timestamp":"` + ts + `","properties":{"tab":"privacy"}}`,
		path:  "/import",
		want:  `{"event":"Loaded a Screen","properties":{"time":1736942400123,"distinct_id":"u","$insert_id":"m-6","$user_id":"u","tab":"privacy","name":"Settings"}}`,
	}, {
		name:     "screen, named",
		settings: map[string]any{"consolidated_page_calls": false},
		event:    `{"type":"screen","name":"Settings","messageId":"m-7","userId":"u","timestamp":"` + ts + `"}`,
		path:     "/import",
		want:     `{"event":"Viewed Settings Screen","properties":{"time":1736942400123,"distinct_id":"u","$insert_id":"m-7","$user_id":"u","name":"Settings"}}`,
	}, {
		name: "identify",
		event: `{"type":"identify","messageId":"m-8","userId":"u-42","anonymousId":"a-7","timestamp":"` + ts + `","context":{"ip":"203.0.113.9"},
			"traits":{"email":"ada@example.com","firstName":"Ada","lastName":"Lovelace","phone":"+44 20 7946 0000",
			"avatar":"https://img.example/a.png","createdAt":"2024-05-01T00:00:00Z","plan":"pro","first_name":"ignored"}}`,
		path: "/engage",
		want: `{"$token":"tok123","$distinct_id":"u-42","$ip":"203.0.113.9","$set":{"$email":"ada@example.com",
			"$first_name":"Ada","$last_name":"Lovelace","$name":"Ada Lovelace","$phone":"+44 20 7946 0000",
			"$avatar":"https://img.example/a.png","$created":"2024-05-01T00:00:00Z","plan":"pro"}}`,
	}, {
		name:  "identify without an ip, inactive, traits in the context",
		event: `{"type":"identify","messageId":"m-9","anonymousId":"a-7","timestamp":"` + ts + `","context":{"active":false,"traits":{"name":"Ada","n":1}}}`,
		path:  "/engage",
		want:  `{"$token":"tok123","$distinct_id":"a-7","$ip":"0","$ignore_time":true,"$set":{"$name":"Ada","n":1}}`,
	}, {
		name:     "group",
		settings: map[string]any{"group_key": "company_id"},
		event:    `{"type":"group","messageId":"m-10","userId":"u","groupId":"acme","timestamp":"` + ts + `","traits":{"name":"Acme","employees":120}}`,
		path:     "/groups",
		want:     `{"$token":"tok123","$group_key":"company_id","$group_id":"acme","$set":{"$name":"Acme","employees":120}}`,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			d := newDest(t, f, tt.settings)
			res := d.Send(t.Context(), []*deliver.Event{ev(t, strings.Join(strings.Fields(tt.event), " "))})
			wantOutcomes(t, res, deliver.Delivered)
			reqs, _, _ := f.snapshot()
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1", len(reqs))
			}
			if reqs[0].Path != tt.path {
				t.Errorf("sent to %s, want %s", reqs[0].Path, tt.path)
			}
			var got []json.RawMessage
			if err := json.Unmarshal(reqs[0].Body, &got); err != nil || len(got) != 1 {
				t.Fatalf("body is not an array of one record (%v): %s", err, reqs[0].Body)
			}
			if g, w := canonical(t, got[0]), canonical(t, []byte(tt.want)); g != w {
				t.Errorf("record:\n%s\nwant:\n%s", g, w)
			}
		})
	}
}

// TestNotSent covers the events that end without a request.
func TestNotSent(t *testing.T) {
	big := strings.Repeat("x", maxRecord)
	tests := []struct {
		name     string
		settings map[string]any
		event    string
		reason   string
		errWant  string
	}{
		{"alias", nil, `{"type":"alias","userId":"u","previousId":"a","messageId":"m"}`, deliver.ReasonUnsupportedEventType, "Simplified ID Merge"},
		{"group without a group key", nil, `{"type":"group","userId":"u","groupId":"g","messageId":"m"}`, deliver.ReasonUnsupportedEventType, "group_key"},
		{"group without a token", map[string]any{"group_key": "company", "project_token": nil}, `{"type":"group","userId":"u","groupId":"g","messageId":"m"}`, deliver.ReasonInvalidSettings, "project_token"},
		{"identify without a token", map[string]any{"project_token": nil}, `{"type":"identify","userId":"u","messageId":"m"}`, deliver.ReasonInvalidSettings, "project_token"},
		{"unknown type", nil, `{"type":"delete","userId":"u","messageId":"m"}`, deliver.ReasonUnsupportedEventType, `"delete"`},
		{"track without a name", nil, `{"type":"track","userId":"u","messageId":"m","timestamp":"` + ts + `"}`, deliver.ReasonInvalidEvent, "event name"},
		{"identify without ids", nil, `{"type":"identify","messageId":"m"}`, deliver.ReasonInvalidEvent, "userId"},
		{"group without a groupId", map[string]any{"group_key": "company"}, `{"type":"group","userId":"u","messageId":"m"}`, deliver.ReasonInvalidEvent, "groupId"},
		{"an event of 1 MB", nil, `{"type":"track","event":"E","userId":"u","messageId":"m","timestamp":"` + ts + `","properties":{"x":"` + big + `"}}`, deliver.ReasonInvalidEvent, "1 MB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			d := newDest(t, f, tt.settings)
			res := d.Send(t.Context(), []*deliver.Event{ev(t, tt.event)})
			wantOutcomes(t, res, deliver.Discard)
			if res[0].Reason != tt.reason || !strings.Contains(res[0].Error, tt.errWant) {
				t.Errorf("reason %q error %q, want %q with %q", res[0].Reason, res[0].Error, tt.reason, tt.errWant)
			}
			if reqs, _, _ := f.snapshot(); len(reqs) != 0 {
				t.Errorf("%d requests sent, want none", len(reqs))
			}
		})
	}
	t.Run("not JSON", func(t *testing.T) {
		f := newFake(t)
		d := newDest(t, f, nil)
		res := d.Send(t.Context(), []*deliver.Event{{MessageID: "m", Type: "track", JSON: []byte(`{"type":`)}})
		wantOutcomes(t, res, deliver.Discard)
		if res[0].Reason != deliver.ReasonInvalidEvent {
			t.Errorf("reason %q, want %q", res[0].Reason, deliver.ReasonInvalidEvent)
		}
	})
}

// TestAuth checks each way of authenticating /import, and that the
// recorded request hides the credentials.
func TestAuth(t *testing.T) {
	tests := []struct {
		name        string
		settings    map[string]any
		wantUser    string
		wantProject bool
		want        deliver.Outcome
	}{
		{"service account", nil, "conflux.sa", true, deliver.Delivered},
		{"api secret", map[string]any{"service_account_username": nil, "service_account_secret": nil, "api_secret": "api-secret"}, "api-secret", false, deliver.Delivered},
		{"project token", map[string]any{"service_account_username": nil, "service_account_secret": nil}, "tok123", false, deliver.Delivered},
		{"wrong secret", map[string]any{"service_account_secret": "guess"}, "conflux.sa", true, deliver.Discard},
		{"wrong project", map[string]any{"project_id": "1"}, "conflux.sa", true, deliver.Discard},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			d := newDest(t, f, tt.settings)
			res := d.Send(t.Context(), []*deliver.Event{track(t, 1, ""), track(t, 2, "")})
			wantOutcomes(t, res, tt.want, tt.want)
			reqs, _, _ := f.snapshot()
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1", len(reqs))
			}
			r := http.Request{Header: reqs[0].Header}
			if user, _, ok := r.BasicAuth(); !ok || user != tt.wantUser {
				t.Errorf("Basic user %q (%v), want %q", user, ok, tt.wantUser)
			}
			if got := strings.Contains(reqs[0].Query, "project_id="); got != tt.wantProject {
				t.Errorf("query %q: project_id present %v, want %v", reqs[0].Query, got, tt.wantProject)
			}
			for _, s := range []string{"sa-secret", "api-secret", "guess"} {
				if bytes.Contains(res[0].Request, []byte(s)) {
					t.Errorf("the recorded request reveals %q:\n%s", s, res[0].Request)
				}
			}
			if tt.want != deliver.Delivered && !bytes.Contains(res[0].Request, []byte("Authorization: xxxxx")) { // only failures are recorded
				t.Errorf("the recorded request does not show the masked Authorization header:\n%s", res[0].Request)
			}
			if tt.want == deliver.Discard && (res[0].Reason != "http_401" || !strings.Contains(res[0].Error, "credentials")) {
				t.Errorf("reason %q error %q, want http_401 about credentials", res[0].Reason, res[0].Error)
			}
		})
	}
}

// TestMixedBatch sends every kind of call in one Send: each endpoint gets
// one request and every event its own result, in order.
func TestMixedBatch(t *testing.T) {
	f := newFake(t)
	d := newDest(t, f, map[string]any{"group_key": "company_id"})
	events := []*deliver.Event{
		track(t, 1, ""),
		ev(t, `{"type":"identify","messageId":"m-i","userId":"u-1","traits":{"plan":"pro"}}`),
		ev(t, `{"type":"alias","messageId":"m-a","userId":"u-1","previousId":"a-1"}`),
		ev(t, `{"type":"page","name":"Home","messageId":"m-p","userId":"u-1","timestamp":"`+ts+`"}`),
		ev(t, `{"type":"group","messageId":"m-g","userId":"u-1","groupId":"acme","traits":{"name":"Acme"}}`),
		ev(t, `{"type":"track","event":"E","messageId":"m-bad","userId":"null","timestamp":"`+ts+`"}`),
		ev(t, `{"type":"identify","messageId":"m-i2","userId":"u-2","traits":{"plan":"free"}}`),
	}
	res := d.Send(t.Context(), events)
	wantOutcomes(t, res, deliver.Delivered, deliver.Delivered, deliver.Discard, deliver.Delivered,
		deliver.Delivered, deliver.Discard, deliver.Delivered)
	if res[2].Reason != deliver.ReasonUnsupportedEventType {
		t.Errorf("alias: reason %q", res[2].Reason)
	}
	if res[5].Reason != "http_400" || !strings.Contains(res[5].Error, "distinct_id") {
		t.Errorf("bad track: reason %q error %q, want http_400 about distinct_id", res[5].Reason, res[5].Error)
	}
	reqs, imported, profiles := f.snapshot()
	paths := make(map[string]int)
	for _, r := range reqs {
		paths[r.Path]++
	}
	if want := map[string]int{"/import": 1, "/engage": 1, "/groups": 1}; !reflect.DeepEqual(paths, want) {
		t.Errorf("requests %v, want %v", paths, want)
	}
	if len(imported) != 2 || len(profiles) != 3 {
		t.Errorf("imported %d events and %d profile updates, want 2 and 3", len(imported), len(profiles))
	}
}

// TestPartialFailure: a strict 400 discards exactly the events it names.
func TestPartialFailure(t *testing.T) {
	f := newFake(t)
	d := newDest(t, f, nil)
	events := []*deliver.Event{
		track(t, 0, ""),
		ev(t, `{"type":"track","event":"E","messageId":"m-1","userId":"undefined","timestamp":"`+ts+`"}`),
		track(t, 2, ""),
		ev(t, `{"type":"track","event":"E","messageId":"m-3","userId":"u","timestamp":"1960-01-01T00:00:00Z"}`),
		track(t, 4, ""),
	}
	res := d.Send(t.Context(), events)
	wantOutcomes(t, res, deliver.Delivered, deliver.Discard, deliver.Delivered, deliver.Discard, deliver.Delivered)
	for i, want := range map[int]string{1: "distinct_id", 3: "properties.time"} {
		if res[i].Reason != "http_400" || res[i].StatusCode != 400 || !strings.Contains(res[i].Error, want) {
			t.Errorf("event %d: reason %q status %d error %q, want http_400 naming %s", i, res[i].Reason, res[i].StatusCode, res[i].Error, want)
		}
		if len(res[i].Response) == 0 {
			t.Errorf("event %d: no recorded response", i)
		}
	}
	_, imported, _ := f.snapshot()
	var ids []string
	for _, raw := range imported {
		var e struct {
			Properties struct {
				ID string `json:"$insert_id"`
			} `json:"properties"`
		}
		json.Unmarshal(raw, &e)
		ids = append(ids, e.Properties.ID)
	}
	if want := []string{"msg-0", "msg-2", "msg-4"}; !reflect.DeepEqual(ids, want) {
		t.Errorf("Mixpanel imported %v, want %v", ids, want)
	}
}

// TestIncompleteAnswer: when a 400 does not account for every event, the
// ones it does not name are retried rather than taken as delivered.
func TestIncompleteAnswer(t *testing.T) {
	long := strings.Repeat("y", 2*deliver.MaxRecorded)
	tests := []struct {
		name string
		body string
	}{
		{"body cut by the recording bound", `{"code":400,"failed_records":[{"index":0,"insert_id":"msg-0","field":"properties.time","message":"bad time"},` +
			`{"index":1,"insert_id":"msg-1","field":"f","message":"` + long + `"}],"num_records_imported":1,"status":"Bad Request"}`},
		{"num_records_imported short", `{"code":400,"failed_records":[{"index":0,"insert_id":"msg-0","field":"properties.time","message":"bad time"}],"num_records_imported":0,"status":"Bad Request"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			d := newDest(t, f, nil)
			f.answer(scripted{path: "/import", status: 400, body: tt.body})
			res := d.Send(t.Context(), []*deliver.Event{track(t, 0, ""), track(t, 1, ""), track(t, 2, "")})
			wantOutcomes(t, res, deliver.Discard, deliver.Retry, deliver.Retry)
			if !strings.Contains(res[0].Error, "bad time") {
				t.Errorf("error %q, want Mixpanel's message", res[0].Error)
			}
		})
	}
}

// TestAnswers classifies Mixpanel's whole-request answers.
func TestAnswers(t *testing.T) {
	tests := []struct {
		name       string
		answer     scripted
		want       deliver.Outcome
		reason     string
		retryAfter time.Duration
	}{
		{"429 with Retry-After", scripted{status: 429, header: http.Header{"Retry-After": {"7"}},
			body: `{"code":429,"error":"Project exceeded rate limits. Please retry the request with exponential backoff.","status":"Too Many Requests"}`},
			deliver.Retry, "http_429", 7 * time.Second},
		{"429 without Retry-After", scripted{status: 429, body: `{"code":429}`}, deliver.Retry, "http_429", deliver.DefaultThrottle},
		{"500", scripted{status: 500, body: `oops`}, deliver.Retry, "http_500", 0},
		{"502", scripted{status: 502}, deliver.Retry, "http_502", 0},
		{"503 with Retry-After", scripted{status: 503, header: http.Header{"Retry-After": {"30"}}}, deliver.Retry, "http_503", 30 * time.Second},
		{"403", scripted{status: 403, body: `{"error":"forbidden","status":"error"}`}, deliver.Discard, "http_403", 0},
		{"400 that is not JSON", scripted{status: 400, body: `bad request`}, deliver.Discard, "http_400", 0},
		{"400 naming no event", scripted{status: 400, body: `{"code":400,"error":"strict mode needs a JSON array","status":"Bad Request"}`}, deliver.Discard, "http_400", 0},
		{"400 naming events not sent", scripted{status: 400, body: `{"code":400,"failed_records":[{"index":7,"insert_id":"other","message":"x"}]}`}, deliver.Discard, "http_400", 0},
		{"200", scripted{status: 200, body: `{"code":200,"num_records_imported":2,"status":"OK"}`}, deliver.Delivered, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			d := newDest(t, f, nil)
			tt.answer.path = "/import"
			f.answer(tt.answer)
			res := d.Send(t.Context(), []*deliver.Event{track(t, 1, ""), track(t, 2, "")})
			wantOutcomes(t, res, tt.want, tt.want)
			for i, r := range res {
				if r.Reason != tt.reason || r.RetryAfter != tt.retryAfter || r.StatusCode != tt.answer.status {
					t.Errorf("result %d: reason %q retry after %v status %d, want %q %v %d", i, r.Reason, r.RetryAfter, r.StatusCode, tt.reason, tt.retryAfter, tt.answer.status)
				}
			}
		})
	}
}

// TestProfileRefused: /engage answers 200 with status 0 for a wrong token.
func TestProfileRefused(t *testing.T) {
	f := newFake(t)
	d := newDest(t, f, map[string]any{"project_token": "wrong"})
	res := d.Send(t.Context(), []*deliver.Event{
		ev(t, `{"type":"identify","messageId":"m","userId":"u","traits":{"a":1}}`),
		ev(t, `{"type":"identify","messageId":"m2","userId":"u2","traits":{"a":2}}`),
	})
	wantOutcomes(t, res, deliver.Discard, deliver.Discard)
	if res[0].Reason != deliver.ReasonDestinationError || !strings.Contains(res[0].Error, "token") {
		t.Errorf("reason %q error %q, want destination_error about the token", res[0].Reason, res[0].Error)
	}
	t.Run("plain 0", func(t *testing.T) {
		f := newFake(t)
		d := newDest(t, f, nil)
		f.answer(scripted{path: "/engage", status: 200, body: "0"})
		res := d.Send(t.Context(), []*deliver.Event{ev(t, `{"type":"identify","messageId":"m","userId":"u"}`)})
		wantOutcomes(t, res, deliver.Discard)
	})
	t.Run("plain 1", func(t *testing.T) {
		f := newFake(t)
		d := newDest(t, f, nil)
		f.answer(scripted{path: "/engage", status: 200, body: "1"})
		res := d.Send(t.Context(), []*deliver.Event{ev(t, `{"type":"identify","messageId":"m","userId":"u"}`)})
		wantOutcomes(t, res, deliver.Delivered)
	})
}

// TestSizeBatching: a Send over the body limit goes in several requests,
// in order, each under the limit.
func TestSizeBatching(t *testing.T) {
	f := newFake(t)
	d := newDest(t, f, nil)
	d.maxBody[importAPI] = 1500
	var events []*deliver.Event
	for i := range 10 {
		events = append(events, track(t, i, `,"pad":"`+strings.Repeat("p", 200)+`"`))
	}
	res := d.Send(t.Context(), events)
	for i, r := range res {
		if r.Outcome != deliver.Delivered {
			t.Errorf("event %d: %v %s", i, r.Outcome, r.Error)
		}
	}
	reqs, imported, _ := f.snapshot()
	if len(reqs) < 3 {
		t.Errorf("%d requests, want at least 3 for 10 events of ~400 bytes under 1500", len(reqs))
	}
	var order []string
	for _, r := range reqs {
		if len(r.Body) > 1500 {
			t.Errorf("a request of %d bytes, over the limit", len(r.Body))
		}
		var recs []struct {
			Properties struct {
				ID string `json:"$insert_id"`
			} `json:"properties"`
		}
		json.Unmarshal(r.Body, &recs)
		for _, rec := range recs {
			order = append(order, rec.Properties.ID)
		}
	}
	for i, id := range order {
		if id != fmt.Sprintf("msg-%d", i) {
			t.Fatalf("records sent in order %v", order)
		}
	}
	if len(imported) != 10 {
		t.Errorf("imported %d, want 10", len(imported))
	}
}

// TestRetryStopsTheSend: after a 429, the rest of the Send is not sent.
func TestRetryStopsTheSend(t *testing.T) {
	f := newFake(t)
	d := newDest(t, f, nil)
	d.maxBody[importAPI] = 600
	f.answer(scripted{path: "/import", status: 429, header: http.Header{"Retry-After": {"3"}}})
	var events []*deliver.Event
	for i := range 4 {
		events = append(events, track(t, i, `,"pad":"`+strings.Repeat("p", 200)+`"`))
	}
	res := d.Send(t.Context(), events)
	wantOutcomes(t, res, deliver.Retry, deliver.Retry, deliver.Retry, deliver.Retry)
	if reqs, _, _ := f.snapshot(); len(reqs) != 1 {
		t.Errorf("%d requests, want 1", len(reqs))
	}
	last := res[3]
	if last.RetryAfter != 3*time.Second || !strings.Contains(last.Error, "not sent") {
		t.Errorf("unsent event: retry after %v error %q", last.RetryAfter, last.Error)
	}
}

// Test413 halves a request Mixpanel finds too large, down to one event.
func Test413(t *testing.T) {
	t.Run("too many events", func(t *testing.T) {
		f := newFake(t)
		f.maxEvents = 2
		d := newDest(t, f, nil)
		var events []*deliver.Event
		for i := range 5 {
			events = append(events, track(t, i, ""))
		}
		res := d.Send(t.Context(), events)
		wantOutcomes(t, res, deliver.Delivered, deliver.Delivered, deliver.Delivered, deliver.Delivered, deliver.Delivered)
		reqs, imported, _ := f.snapshot()
		// [0..4] 413; [0,1] ok; [2,3,4] 413; [2] ok; [3,4] ok.
		if len(reqs) != 5 || len(imported) != 5 {
			t.Errorf("%d requests and %d imported, want 5 and 5", len(reqs), len(imported))
		}
	})
	t.Run("one event too large", func(t *testing.T) {
		f := newFake(t)
		f.maxBytes = 2000
		d := newDest(t, f, nil)
		events := []*deliver.Event{track(t, 0, ""), track(t, 1, `,"pad":"`+strings.Repeat("p", 3000)+`"`), track(t, 2, "")}
		res := d.Send(t.Context(), events)
		wantOutcomes(t, res, deliver.Delivered, deliver.Discard, deliver.Delivered)
		if res[1].Reason != "http_413" || !strings.Contains(res[1].Error, "alone") {
			t.Errorf("reason %q error %q", res[1].Reason, res[1].Error)
		}
	})
}

// TestContext: what a Send cannot finish is retried.
func TestContext(t *testing.T) {
	t.Run("done before", func(t *testing.T) {
		f := newFake(t)
		d := newDest(t, f, nil)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		res := d.Send(ctx, []*deliver.Event{track(t, 1, ""), ev(t, `{"type":"identify","messageId":"m","userId":"u"}`)})
		wantOutcomes(t, res, deliver.Retry, deliver.Retry)
		if reqs, _, _ := f.snapshot(); len(reqs) != 0 {
			t.Errorf("%d requests after ctx ended, want none", len(reqs))
		}
	})
	t.Run("cancelled while waiting", func(t *testing.T) {
		f := newFake(t)
		d := newDest(t, f, nil)
		hold := make(chan struct{})
		defer close(hold)
		f.answer(scripted{path: "/import", status: 200, hold: hold})
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		res := d.Send(ctx, []*deliver.Event{track(t, 1, ""), track(t, 2, "")})
		wantOutcomes(t, res, deliver.Retry, deliver.Retry)
	})
	t.Run("request timeout", func(t *testing.T) {
		f := newFake(t)
		d := newDest(t, f, map[string]any{"timeout": "50ms"})
		hold := make(chan struct{})
		defer close(hold)
		f.answer(scripted{path: "/import", status: 200, hold: hold})
		start := time.Now()
		res := d.Send(t.Context(), []*deliver.Event{track(t, 1, "")})
		wantOutcomes(t, res, deliver.Retry)
		if res[0].Reason != deliver.ReasonTimeout {
			t.Errorf("reason %q, want %q", res[0].Reason, deliver.ReasonTimeout)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("took %v; the timeout is 50ms", d)
		}
	})
}

func TestType(t *testing.T) {
	r := deliver.NewRegistry(Type) // panics when incomplete
	if _, ok := r.Lookup("mixpanel"); !ok {
		t.Fatal("mixpanel is not registered")
	}
	if Type.MaxBatch != 2000 {
		t.Errorf("MaxBatch %d, want Mixpanel's 2000", Type.MaxBatch)
	}
	for _, tt := range []struct {
		settings map[string]any
		want     int
	}{
		{nil, 1000},
		{map[string]any{"batch_size": 50}, 50},
		{map[string]any{"batch_size": float64(2000)}, 2000},
		{map[string]any{"batch_size": "10"}, 10},
		{map[string]any{"batch_size": 5000}, 2000},
		{map[string]any{"batch_size": "lots"}, 1000},
	} {
		if got := Type.BatchSize(tt.settings); got != tt.want {
			t.Errorf("BatchSize(%v) = %d, want %d", tt.settings, got, tt.want)
		}
	}
	if err := r.Check(t.Context(), "mixpanel", map[string]any{"project_token": "t"}); err != nil {
		t.Errorf("Check with a token: %v", err)
	}
	if err := r.Check(t.Context(), "mixpanel", map[string]any{}); err == nil {
		t.Error("Check without credentials passed")
	}
}

func TestParseUserAgent(t *testing.T) {
	for _, tt := range []struct{ ua, name, version string }{
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.2592.87", "Microsoft Edge", "126.0.2592.87"},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0", "Firefox", "127.0"},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1", "Mobile Safari", "17.5"},
		{"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15", "Safari", "17.5"},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/126.0.6478.54 Mobile/15E148 Safari/604.1", "Chrome iOS", "126.0.6478.54"},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 OPR/111.0.0.0", "Opera", "111.0.0.0"},
		{"Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36", "Samsung Internet", "25.0"},
		{"Mozilla/5.0 (Windows NT 10.0; Trident/7.0; rv:11.0) like Gecko", "Internet Explorer", "11.0"},
		{"curl/8.5.0", "", ""},
	} {
		name, version := parseUserAgent(tt.ua)
		if name != tt.name || version != tt.version {
			t.Errorf("%s:\n got %q %q, want %q %q", tt.ua, name, version, tt.name, tt.version)
		}
	}
}
