package amplitude

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/deliver"
)

// newDest builds a destination sending to f at path, with settings over
// the fake's API key.
func newDest(t *testing.T, f *fake, path string, settings map[string]any) deliver.Destination {
	t.Helper()
	s := map[string]any{"api_key": f.apiKey, "url": f.url(path)}
	for k, v := range settings {
		s[k] = v
	}
	d, err := Type.New(t.Context(), deliver.Config{ID: "amp", Settings: s, HTTP: f.srv.Client(),
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// track is a track event of user with messageId id.
func track(id, user string) *deliver.Event {
	return &deliver.Event{MessageID: id, Type: "track", Attempt: 1, JSON: []byte(fmt.Sprintf(
		`{"type":"track","event":"Clicked","userId":%q,"messageId":%q,"timestamp":"2026-03-01T10:20:30Z","properties":{"n":1}}`, user, id))}
}

// bigTrack is a track event with a property of size bytes.
func bigTrack(id, user string, size int) *deliver.Event {
	return &deliver.Event{MessageID: id, Type: "track", JSON: []byte(fmt.Sprintf(
		`{"type":"track","event":"Clicked","userId":%q,"messageId":%q,"properties":{"blob":%q}}`, user, id, strings.Repeat("x", size)))}
}

func alias(id string) *deliver.Event {
	return &deliver.Event{MessageID: id, Type: "alias", JSON: []byte(fmt.Sprintf(
		`{"type":"alias","userId":"user-20391","previousId":"anon-5f2c","messageId":%q}`, id))}
}

func tracks(n int, user string) []*deliver.Event {
	out := make([]*deliver.Event, n)
	for i := range out {
		out[i] = track(fmt.Sprintf("m-%02d", i), user)
	}
	return out
}

// want is the expected result of one event.
type want struct {
	outcome    deliver.Outcome
	reason     string
	status     int
	retryAfter time.Duration
	errHas     string
}

func (w want) check(t *testing.T, i int, got deliver.Result) {
	t.Helper()
	if got.Outcome != w.outcome || got.Reason != w.reason || got.StatusCode != w.status || got.RetryAfter != w.retryAfter {
		t.Errorf("event %d: got %v reason %q status %d retry-after %s (error %q); want %v reason %q status %d retry-after %s",
			i, got.Outcome, got.Reason, got.StatusCode, got.RetryAfter, got.Error, w.outcome, w.reason, w.status, w.retryAfter)
	}
	if !strings.Contains(got.Error, w.errHas) {
		t.Errorf("event %d: error %q does not contain %q", i, got.Error, w.errHas)
	}
	if w.outcome != deliver.Delivered && w.status != 0 && got.Error == "" {
		t.Errorf("event %d: a failed attempt has no error", i)
	}
}

var (
	delivered = want{outcome: deliver.Delivered, status: 200}
	throttled = want{outcome: deliver.Retry, reason: "http_429", status: 429, retryAfter: 30 * time.Second,
		errHas: "Amplitude throttled the event's user or device: 127.0.0.1"}
)

func TestSend(t *testing.T) {
	cases := []struct {
		name         string
		path         string
		settings     map[string]any
		setup        func(f *fake)
		events       []*deliver.Event
		want         []want
		wantBatches  []int    // events per request, in order
		wantStatuses string   // the fake's answers, in order
		wantIngested []string // insert_ids Amplitude holds afterwards
	}{
		{
			name:        "one request for the batch",
			events:      tracks(3, "user-20391"),
			want:        []want{delivered, delivered, delivered},
			wantBatches: []int{3}, wantStatuses: "200", wantIngested: []string{"m-00", "m-01", "m-02"},
		},
		{
			name:        "batch API path",
			path:        "/batch",
			events:      tracks(2, "user-20391"),
			want:        []want{delivered, delivered},
			wantBatches: []int{2}, wantStatuses: "200", wantIngested: []string{"m-00", "m-01"},
		},
		{
			name:   "refused events stay out of the request",
			events: []*deliver.Event{track("m-00", "user-20391"), alias("m-01"), track("m-02", "u1"), track("m-03", "user-20391")},
			want: []want{delivered,
				{outcome: deliver.Discard, reason: deliver.ReasonUnsupportedEventType, errHas: "alias"},
				{outcome: deliver.Discard, reason: deliver.ReasonInvalidEvent, errHas: "at least 5 characters"},
				delivered},
			wantBatches: []int{2}, wantStatuses: "200", wantIngested: []string{"m-00", "m-03"},
		},
		{
			name:        "nothing to send makes no request",
			events:      []*deliver.Event{alias("m-00")},
			want:        []want{{outcome: deliver.Discard, reason: deliver.ReasonUnsupportedEventType, errHas: "alias"}},
			wantBatches: nil, wantStatuses: "",
		},
		{
			name:   "500 retries the batch",
			setup:  func(f *fake) { f.script(scripted{status: 500, body: `{"code":500,"error":"Internal error"}`}) },
			events: tracks(2, "user-20391"),
			want: []want{{outcome: deliver.Retry, reason: "http_500", status: 500, errHas: "Internal error"},
				{outcome: deliver.Retry, reason: "http_500", status: 500, errHas: "Internal error"}},
			wantBatches: []int{2}, wantStatuses: "500",
		},
		{
			name: "503 with Retry-After",
			setup: func(f *fake) {
				f.script(scripted{status: 503, header: http.Header{"Retry-After": {"7"}}, body: `{"code":503,"error":"Service Unavailable"}`})
			},
			events:      tracks(1, "user-20391"),
			want:        []want{{outcome: deliver.Retry, reason: "http_503", status: 503, retryAfter: 7 * time.Second, errHas: "Service Unavailable"}},
			wantBatches: []int{1}, wantStatuses: "503",
		},
		{
			name:        "an unknown 4xx discards",
			setup:       func(f *fake) { f.script(scripted{status: 403, body: `{"code":403,"error":"Forbidden"}`}) },
			events:      tracks(1, "user-20391"),
			want:        []want{{outcome: deliver.Discard, reason: "http_403", status: 403, errHas: "Forbidden"}},
			wantBatches: []int{1}, wantStatuses: "403",
		},
		{
			name:   "400 names invalid events: those are discarded, the rest sent again",
			setup:  func(f *fake) { f.invalidField["m-01"] = "event_properties" },
			events: tracks(3, "user-20391"),
			want: []want{delivered,
				{outcome: deliver.Discard, reason: "http_400", status: 400,
					errHas: "Amplitude rejected this event (invalid event_properties): 127.0.0.1"},
				delivered},
			wantBatches: []int{3, 2}, wantStatuses: "400 200", wantIngested: []string{"m-00", "m-02"},
		},
		{
			name: "400 SilencedDeviceID: silenced discarded, throttled retried later",
			setup: func(f *fake) {
				f.script(scripted{status: 400, body: `{"code":400,"eps_threshold":100,"error":"Events silenced for device_id",` +
					`"exceeded_daily_quota_devices":{},"silenced_devices":["d"],"silenced_events":[1],` +
					`"throttled_devices":{"x":100},"throttled_events":[2]}`})
			},
			events: tracks(4, "user-20391"),
			want: []want{delivered,
				{outcome: deliver.Discard, reason: "http_400", status: 400, errHas: "device_id silenced by Amplitude"},
				{outcome: deliver.Retry, reason: "http_400", status: 400, retryAfter: 30 * time.Second, errHas: "throttled"},
				delivered},
			wantBatches: []int{4, 2}, wantStatuses: "400 200", wantIngested: []string{"m-00", "m-03"},
		},
		{
			name: "400 about the request discards the batch",
			setup: func(f *fake) {
				f.script(scripted{status: 400, body: `{"code":400,"error":"Invalid JSON request body"}`})
			},
			events: tracks(2, "user-20391"),
			want: []want{{outcome: deliver.Discard, reason: "http_400", status: 400, errHas: "Invalid JSON request body"},
				{outcome: deliver.Discard, reason: "http_400", status: 400, errHas: "Invalid JSON request body"}},
			wantBatches: []int{2}, wantStatuses: "400",
		},
		{
			name: "400 with a body too long to read is bisected",
			setup: func(f *fake) {
				long := `{"code":400,"error":"Invalid field values on some events","events_with_invalid_fields":{"time":[` +
					strings.Repeat("0,", deliver.MaxRecorded) + `0]}}`
				f.script(scripted{status: 400, body: long})
			},
			events:      tracks(4, "user-20391"),
			want:        []want{delivered, delivered, delivered, delivered},
			wantBatches: []int{4, 2, 2}, wantStatuses: "400 200 200", wantIngested: []string{"m-00", "m-01", "m-02", "m-03"},
		},
		{
			name:  "429: throttled user's events retried after 30s, the others sent again",
			setup: func(f *fake) { f.throttled["user-hot01"] = true },
			events: []*deliver.Event{track("m-00", "user-cool1"), track("m-01", "user-hot01"),
				track("m-02", "user-cool2"), track("m-03", "user-hot01")},
			want:        []want{delivered, throttled, delivered, throttled},
			wantBatches: []int{4, 2}, wantStatuses: "429 200", wantIngested: []string{"m-00", "m-02"},
		},
		{
			name:   "429 daily quota: retried after an hour",
			setup:  func(f *fake) { f.overQuota["user-spam1"] = true },
			events: []*deliver.Event{track("m-00", "user-spam1"), track("m-01", "user-cool1")},
			want: []want{{outcome: deliver.Retry, reason: "http_429", status: 429, retryAfter: time.Hour, errHas: "daily quota"},
				delivered},
			wantBatches: []int{2, 1}, wantStatuses: "429 200", wantIngested: []string{"m-01"},
		},
		{
			name: "429 naming users but no event indexes",
			setup: func(f *fake) {
				f.script(scripted{status: 429, body: `{"code":429,"error":"Too many requests for some devices and users",` +
					`"eps_threshold":30,"throttled_users":{"user-hot01":31}}`})
			},
			events:      []*deliver.Event{track("m-00", "user-hot01"), track("m-01", "user-cool1")},
			want:        []want{throttled, delivered},
			wantBatches: []int{2, 1}, wantStatuses: "429 200", wantIngested: []string{"m-01"},
		},
		{
			name:   "429 naming nothing retries the batch",
			setup:  func(f *fake) { f.script(scripted{status: 429, body: `{"code":429,"error":"Too many requests"}`}) },
			events: tracks(2, "user-20391"),
			want: []want{{outcome: deliver.Retry, reason: "http_429", status: 429, retryAfter: 30 * time.Second, errHas: "Too many requests"},
				{outcome: deliver.Retry, reason: "http_429", status: 429, retryAfter: 30 * time.Second, errHas: "Too many requests"}},
			wantBatches: []int{2}, wantStatuses: "429",
		},
		{
			name: "resending stops after three rounds",
			setup: func(f *fake) {
				for i := range 4 {
					f.script(scripted{status: 429, body: fmt.Sprintf(`{"code":429,"error":"Too many requests","throttled_events":[0],"round":%d}`, i)})
				}
			},
			events: tracks(5, "user-20391"),
			want: []want{throttled, throttled, throttled, throttled,
				{outcome: deliver.Retry, reason: "http_429", status: 429, errHas: "not sent again: Amplitude rejected other events of the batch 4 times"}},
			wantBatches: []int{5, 4, 3, 2}, wantStatuses: "429 429 429 429",
		},
		{
			name:   "413 splits the batch in halves until it fits",
			setup:  func(f *fake) { f.maxEvents = 2 },
			events: tracks(5, "user-20391"),
			want:   []want{delivered, delivered, delivered, delivered, delivered},
			// 5 → 413; 2 → 200; 3 → 413; 1 → 200; 2 → 200
			wantBatches: []int{5, 2, 3, 1, 2}, wantStatuses: "413 200 413 200 200",
			wantIngested: []string{"m-00", "m-01", "m-02", "m-03", "m-04"},
		},
		{
			name:   "413 for one event alone discards it",
			setup:  func(f *fake) { f.maxBytes = 4000 },
			events: []*deliver.Event{track("m-00", "user-20391"), bigTrack("m-01", "user-20391", 5000), track("m-02", "user-20391")},
			want: []want{delivered,
				{outcome: deliver.Discard, reason: "http_413", status: 413, errHas: "Payload too large"},
				delivered},
			wantBatches: []int{3, 1, 2, 1, 1}, wantStatuses: "413 200 413 413 200",
			wantIngested: []string{"m-00", "m-02"},
		},
		{
			name: "a body over 1 MB is split before sending",
			// the fake takes up to 1 MiB, so a 413 here would mean the split did not happen
			events: []*deliver.Event{bigTrack("m-00", "user-20391", 300_000), bigTrack("m-01", "user-20391", 300_000),
				bigTrack("m-02", "user-20391", 300_000), bigTrack("m-03", "user-20391", 300_000)},
			want:        []want{delivered, delivered, delivered, delivered},
			wantBatches: []int{2, 2}, wantStatuses: "200 200", wantIngested: []string{"m-00", "m-01", "m-02", "m-03"},
		},
		{
			name:        "the Batch API takes 20 MB",
			path:        "/batch",
			setup:       func(f *fake) { f.maxBytes = 20_000_000 },
			events:      []*deliver.Event{bigTrack("m-00", "user-20391", 600_000), bigTrack("m-01", "user-20391", 600_000)},
			want:        []want{delivered, delivered},
			wantBatches: []int{2}, wantStatuses: "200", wantIngested: []string{"m-00", "m-01"},
		},
		{
			name:   "an event over the limit alone is discarded without a request",
			events: []*deliver.Event{bigTrack("m-00", "user-20391", 1_100_000), track("m-01", "user-20391")},
			want: []want{{outcome: deliver.Discard, reason: deliver.ReasonInvalidEvent, errHas: "more than the 1000000 bytes"},
				delivered},
			wantBatches: []int{1}, wantStatuses: "200", wantIngested: []string{"m-01"},
		},
		{
			name:        "min_id_length is sent and honoured",
			settings:    map[string]any{"min_id_length": float64(3)},
			events:      []*deliver.Event{track("m-00", "abc")},
			want:        []want{delivered},
			wantBatches: []int{1}, wantStatuses: "200", wantIngested: []string{"m-00"},
		},
		{
			name:        "repeats are dropped by insert_id",
			events:      []*deliver.Event{track("m-00", "user-20391"), track("m-00", "user-20391")},
			want:        []want{delivered, delivered},
			wantBatches: []int{2}, wantStatuses: "200", wantIngested: []string{"m-00"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFake(t)
			if c.setup != nil {
				f.configure(c.setup)
			}
			path := c.path
			if path == "" {
				path = "/2/httpapi"
			}
			d := newDest(t, f, path, c.settings)
			results := d.Send(t.Context(), c.events)
			if len(results) != len(c.events) {
				t.Fatalf("%d results for %d events", len(results), len(c.events))
			}
			for i, w := range c.want {
				w.check(t, i, results[i])
			}
			if got := f.batchSizes(); !slices.Equal(got, c.wantBatches) {
				t.Errorf("requests carried %v events, want %v", got, c.wantBatches)
			}
			if got := f.statusesSeen(); got != c.wantStatuses {
				t.Errorf("the fake answered %q, want %q", got, c.wantStatuses)
			}
			if got := f.ingestedIDs(); !slices.Equal(got, c.wantIngested) && (len(got) > 0 || len(c.wantIngested) > 0) {
				t.Errorf("Amplitude holds %v, want %v", got, c.wantIngested)
			}
			for i, r := range results {
				if r.Request != nil && bytes.Contains(r.Request, []byte(f.apiKey)) {
					t.Errorf("event %d: the recorded request holds the API key", i)
				}
			}
		})
	}
}

// TestSendRequest pins the exact request: body (golden), headers, and the
// recorded copy with the API key masked.
func TestSendRequest(t *testing.T) {
	f := newFake(t)
	d := newDest(t, f, "/2/httpapi", map[string]any{"min_id_length": float64(4)})
	events := []*deliver.Event{
		{MessageID: "msg-1", JSON: []byte(`{"type":"track","event":"Order Completed","userId":"user-20391","anonymousId":"anon-5f2c",` +
			`"messageId":"msg-1","timestamp":"2026-03-01T10:20:30.123Z","properties":{"orderId":"o-1","revenue":25},"context":` + webContext + `}`)},
		{MessageID: "msg-2", JSON: []byte(`{"type":"identify","userId":"user-20391","messageId":"msg-2",` +
			`"timestamp":"2026-03-01T10:20:31Z","traits":{"plan":"pro"}}`)},
		{MessageID: "msg-3", JSON: []byte(`{"type":"screen","name":"Cart","anonymousId":"anon","messageId":"msg-3",` +
			`"timestamp":"2026-03-01T10:20:32Z","context":` + mobileContext + `}`)},
	}
	results := d.Send(t.Context(), events)
	for i, r := range results {
		delivered.check(t, i, r)
	}
	reqs := f.received()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	golden(t, "request", reqs[0].Body)
	if ct := reqs[0].Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	// Only failures are recorded (they are what the dead-letter store
	// keeps): send the same events to a failing API.
	f.configure(func(f *fake) { f.script(scripted{status: 500, body: `{"code":500,"error":"Internal error"}`}) })
	results = d.Send(t.Context(), events)
	rec := results[0].Request
	if !bytes.HasPrefix(rec, []byte("POST "+f.url("/2/httpapi")+"\n")) {
		t.Errorf("recorded request starts %q", rec[:min(len(rec), 80)])
	}
	if bytes.Contains(rec, []byte(f.apiKey)) || !bytes.Contains(rec, []byte(`{"api_key":"xxxxx","events":[{"user_id":"user-20391"`)) {
		t.Errorf("the recorded request does not mask the API key:\n%s", rec)
	}
	if !bytes.Contains(results[0].Response, []byte(`Internal error`)) {
		t.Errorf("recorded response %q", results[0].Response)
	}
}

// TestSendInvalidAPIKey: Amplitude's answer quotes the key it got; no
// recorded byte may hold it.
func TestSendInvalidAPIKey(t *testing.T) {
	f := newFake(t)
	d := newDest(t, f, "/2/httpapi", map[string]any{"api_key": "wrong-key-0123456789"})
	results := d.Send(t.Context(), tracks(2, "user-20391"))
	for i, r := range results {
		want{outcome: deliver.Discard, reason: "http_400", status: 400, errHas: "Invalid API key: xxxxx"}.check(t, i, r)
		for what, b := range map[string][]byte{"request": r.Request, "response": r.Response, "error": []byte(r.Error)} {
			if bytes.Contains(b, []byte("wrong-key-0123456789")) {
				t.Errorf("event %d: the recorded %s holds the API key: %s", i, what, b)
			}
		}
	}
	if n := len(f.received()); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}

func TestSendContext(t *testing.T) {
	t.Run("cancelled before sending", func(t *testing.T) {
		f := newFake(t)
		d := newDest(t, f, "/2/httpapi", nil)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		for i, r := range d.Send(ctx, tracks(2, "user-20391")) {
			want{outcome: deliver.Retry, reason: deliver.ReasonConnection, errHas: "canceled"}.check(t, i, r)
		}
		if n := len(f.received()); n != 0 {
			t.Errorf("%d requests after cancellation, want 0", n)
		}
	})
	t.Run("cancelled while Amplitude is answering", func(t *testing.T) {
		f := newFake(t)
		f.configure(func(f *fake) { f.hang = true })
		d := newDest(t, f, "/2/httpapi", nil)
		ctx, cancel := context.WithCancel(t.Context())
		go func() {
			for len(f.received()) == 0 {
				time.Sleep(time.Millisecond)
			}
			cancel()
		}()
		for i, r := range d.Send(ctx, tracks(2, "user-20391")) {
			want{outcome: deliver.Retry, reason: deliver.ReasonConnection, errHas: "canceled"}.check(t, i, r)
		}
	})
	t.Run("the timeout setting bounds a request", func(t *testing.T) {
		f := newFake(t)
		f.configure(func(f *fake) { f.hang = true })
		d := newDest(t, f, "/2/httpapi", map[string]any{"timeout": "50ms"})
		start := time.Now()
		for i, r := range d.Send(t.Context(), tracks(2, "user-20391")) {
			want{outcome: deliver.Retry, reason: deliver.ReasonTimeout, errHas: "deadline exceeded"}.check(t, i, r)
		}
		if el := time.Since(start); el > 5*time.Second {
			t.Errorf("Send took %s with a 50ms timeout", el)
		}
	})
	t.Run("connection refused", func(t *testing.T) {
		f := newFake(t)
		d := newDest(t, f, "/2/httpapi", nil)
		f.srv.Close()
		for i, r := range d.Send(t.Context(), tracks(1, "user-20391")) {
			want{outcome: deliver.Retry, reason: deliver.ReasonConnection, errHas: "refused"}.check(t, i, r)
			if bytes.Contains(r.Request, []byte(f.apiKey)) {
				t.Error("the recorded request holds the API key")
			}
		}
	})
}

// TestSendConcurrently runs Sends in parallel (run with -race).
func TestSendConcurrently(t *testing.T) {
	f := newFake(t)
	d := newDest(t, f, "/2/httpapi", nil)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			events := make([]*deliver.Event, 10)
			for i := range events {
				events[i] = track(fmt.Sprintf("g%d-%d", g, i), "user-20391")
			}
			for i, r := range d.Send(t.Context(), events) {
				if r.Outcome != deliver.Delivered {
					t.Errorf("goroutine %d event %d: %v %s", g, i, r.Outcome, r.Error)
				}
			}
		})
	}
	wg.Wait()
	if n := len(f.ingestedIDs()); n != 80 {
		t.Errorf("Amplitude holds %d events, want 80", n)
	}
}
