package webhook_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/deliver"
	"github.com/confluxcdp/conflux/internal/deliver/destinations/webhook"
)

// newDest builds a webhook destination with settings, sending with client.
func newDest(t *testing.T, client *http.Client, settings map[string]any) deliver.Destination {
	t.Helper()
	d, err := webhook.Type.New(t.Context(), deliver.Config{ID: "hook", Settings: settings, HTTP: client,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("New(%v): %v", settings, err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return d
}

func TestSettings(t *testing.T) {
	const u = "https://hooks.example.com/conflux"
	cases := []struct {
		name     string
		settings map[string]any
		wantErr  string // "" when New must succeed; else a substring of the error
	}{
		{name: "url only", settings: map[string]any{"url": u}},
		{name: "http url", settings: map[string]any{"url": "http://127.0.0.1:8080/in?x=1"}},
		{name: "everything", settings: map[string]any{"url": u, "headers": map[string]any{"Authorization": "Bearer t", "X-Team": "growth"},
			"secret": "s3cr3t", "timeout": "2s", "batch_size": 100}},
		{name: "batch size as JSON number", settings: map[string]any{"url": u, "batch_size": float64(1000)}},
		{name: "batch size int64", settings: map[string]any{"url": u, "batch_size": int64(1)}},
		{name: "timeout at the bounds", settings: map[string]any{"url": u, "timeout": "5m"}},
		{name: "timeout at the lower bound", settings: map[string]any{"url": u, "timeout": "1ms"}},
		{name: "empty headers", settings: map[string]any{"url": u, "headers": map[string]any{}}},

		{name: "nil settings", settings: nil, wantErr: "settings.url"},
		{name: "missing url", settings: map[string]any{"secret": "s"}, wantErr: "settings.url"},
		{name: "empty url", settings: map[string]any{"url": ""}, wantErr: "settings.url"},
		{name: "url not a string", settings: map[string]any{"url": 42}, wantErr: "settings.url"},
		{name: "url unparsable", settings: map[string]any{"url": "http://[::1"}, wantErr: "settings.url"},
		{name: "url without scheme", settings: map[string]any{"url": "hooks.example.com/in"}, wantErr: "settings.url"},
		{name: "url ftp", settings: map[string]any{"url": "ftp://example.com/in"}, wantErr: "settings.url"},
		{name: "url file", settings: map[string]any{"url": "file:///etc/passwd"}, wantErr: "settings.url"},
		{name: "url without host", settings: map[string]any{"url": "http:///in"}, wantErr: "settings.url"},
		{name: "headers a list", settings: map[string]any{"url": u, "headers": []any{"X-A: 1"}}, wantErr: "settings.headers"},
		{name: "headers a string", settings: map[string]any{"url": u, "headers": "X-A: 1"}, wantErr: "settings.headers"},
		{name: "headers null", settings: map[string]any{"url": u, "headers": nil}, wantErr: "settings.headers"},
		{name: "header value a number", settings: map[string]any{"url": u, "headers": map[string]any{"X-Count": 3}},
			wantErr: "settings.headers.X-Count"},
		{name: "header value a mapping", settings: map[string]any{"url": u, "headers": map[string]any{"X-A": map[string]any{"b": "c"}}},
			wantErr: "settings.headers.X-A"},
		{name: "header value with CRLF", settings: map[string]any{"url": u, "headers": map[string]any{"X-A": "1\r\nX-Injected: yes"}},
			wantErr: "settings.headers.X-A"},
		{name: "header value with LF", settings: map[string]any{"url": u, "headers": map[string]any{"X-A": "1\nX-Injected: yes"}},
			wantErr: "settings.headers.X-A"},
		{name: "header name with CRLF", settings: map[string]any{"url": u, "headers": map[string]any{"X-A\r\nX-Injected": "yes"}},
			wantErr: "settings.headers."},
		{name: "header name with colon", settings: map[string]any{"url": u, "headers": map[string]any{"X-A:": "yes"}},
			wantErr: "settings.headers.X-A:"},
		{name: "header name empty", settings: map[string]any{"url": u, "headers": map[string]any{"": "yes"}},
			wantErr: "settings.headers."},
		{name: "secret not a string", settings: map[string]any{"url": u, "secret": 1234}, wantErr: "settings.secret"},
		{name: "timeout zero", settings: map[string]any{"url": u, "timeout": "0s"}, wantErr: "settings.timeout"},
		{name: "timeout negative", settings: map[string]any{"url": u, "timeout": "-1s"}, wantErr: "settings.timeout"},
		{name: "timeout too long", settings: map[string]any{"url": u, "timeout": "5m1s"}, wantErr: "settings.timeout"},
		{name: "timeout without unit", settings: map[string]any{"url": u, "timeout": "10"}, wantErr: "settings.timeout"},
		{name: "timeout not a duration", settings: map[string]any{"url": u, "timeout": "soon"}, wantErr: "settings.timeout"},
		{name: "timeout a number", settings: map[string]any{"url": u, "timeout": float64(10)}, wantErr: "settings.timeout"},
		{name: "timeout a Go int", settings: map[string]any{"url": u, "timeout": 10}, wantErr: "settings.timeout"},
		{name: "batch size 0", settings: map[string]any{"url": u, "batch_size": 0}, wantErr: "settings.batch_size"},
		{name: "batch size negative", settings: map[string]any{"url": u, "batch_size": float64(-1)}, wantErr: "settings.batch_size"},
		{name: "batch size 1001", settings: map[string]any{"url": u, "batch_size": 1001}, wantErr: "settings.batch_size"},
		{name: "batch size 1001 as JSON", settings: map[string]any{"url": u, "batch_size": float64(1001)}, wantErr: "settings.batch_size"},
		{name: "batch size 1.5", settings: map[string]any{"url": u, "batch_size": 1.5}, wantErr: "settings.batch_size"},
		{name: "batch size text", settings: map[string]any{"url": u, "batch_size": "x"}, wantErr: "settings.batch_size"},
		{name: "batch size bool", settings: map[string]any{"url": u, "batch_size": true}, wantErr: "settings.batch_size"},
		{name: "unknown key", settings: map[string]any{"url": u, "method": "PUT"}, wantErr: "settings.method: unknown setting"},
		{name: "misspelt key", settings: map[string]any{"url": u, "batchsize": 10}, wantErr: "settings.batchsize: unknown setting"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, err := webhook.Type.New(t.Context(), deliver.Config{ID: "hook", Settings: tc.settings,
				HTTP: http.DefaultClient, Logger: slog.New(slog.DiscardHandler)})
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("New: %v, want success", err)
				}
				if err := d.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
				return
			}
			if err == nil {
				_ = d.Close()
				t.Fatalf("New succeeded, want an error containing %q", tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("New: %q, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestTypeBatchSize(t *testing.T) {
	cases := []struct {
		settings map[string]any
		want     int
	}{
		{map[string]any{"url": "http://x"}, 1},
		{map[string]any{"batch_size": 25}, 25},
		{map[string]any{"batch_size": float64(1000)}, 1000},
		{map[string]any{"batch_size": 1001}, 1}, // invalid: New refuses it
	}
	for _, tc := range cases {
		if got := webhook.Type.BatchSize(tc.settings); got != tc.want {
			t.Errorf("BatchSize(%v) = %d, want %d", tc.settings, got, tc.want)
		}
	}
	if webhook.Type.MaxBatch != webhook.MaxBatchSize {
		t.Errorf("MaxBatch = %d, want %d", webhook.Type.MaxBatch, webhook.MaxBatchSize)
	}
}

// received is one request the receiver got.
type received struct {
	method, path string
	header       http.Header
	body         []byte
}

// receiver is an httptest server that records every request and answers
// with respond (200 when nil).
type receiver struct {
	srv     *httptest.Server
	mu      sync.Mutex
	got     []received
	respond func(w http.ResponseWriter, r *http.Request)
}

func newReceiver(t *testing.T, respond func(w http.ResponseWriter, r *http.Request)) *receiver {
	t.Helper()
	rc := &receiver{respond: respond}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("reading the request body: %v", err)
		}
		rc.mu.Lock()
		rc.got = append(rc.got, received{method: r.Method, path: r.URL.Path, header: r.Header.Clone(), body: body})
		rc.mu.Unlock()
		if rc.respond == nil {
			w.WriteHeader(http.StatusOK)
			return
		}
		rc.respond(w, r)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) requests() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.got...)
}

// client is a fresh client for the receiver, so that no test shares
// connections with another.
func (rc *receiver) client(t *testing.T) *http.Client {
	c := rc.srv.Client()
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func event(id, name string) *deliver.Event {
	return &deliver.Event{MessageID: id, SourceID: "web", Type: "track", Attempt: 1, ReceivedAt: time.Date(2026, 3, 1, 10, 20, 30, 0, time.UTC),
		JSON: fmt.Appendf(nil, `{"type":"track","event":%q,"userId":"user-1","messageId":%q,"properties":{"plan":"pro","note":"caf\u00e9 \u2603 <&>"}}`, name, id)}
}

func sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

func checkDelivered(t *testing.T, rs []deliver.Result, n int) {
	t.Helper()
	if len(rs) != n {
		t.Fatalf("%d results, want %d", len(rs), n)
	}
	for i, r := range rs {
		if r.Outcome != deliver.Delivered {
			t.Errorf("result %d: %v (%s: %s), want delivered", i, r.Outcome, r.Reason, r.Error)
		}
	}
}

func TestSendOneEventPerRequest(t *testing.T) {
	rc := newReceiver(t, nil)
	const secret = "whsec_9f8e7d"
	d := newDest(t, rc.client(t), map[string]any{"url": rc.srv.URL + "/hooks/in", "secret": secret,
		"headers": map[string]any{"x-team": "growth", "X-Env": "prod"}})
	events := []*deliver.Event{event("m-1", "Signed Up"), event("m-2", "Upgraded"), event("m-3", "Churned")}

	checkDelivered(t, d.Send(t.Context(), events), 3)

	got := rc.requests()
	if len(got) != len(events) {
		t.Fatalf("%d requests, want one per event (%d)", len(got), len(events))
	}
	for i, r := range got {
		ev := events[i]
		if r.method != http.MethodPost || r.path != "/hooks/in" {
			t.Errorf("request %d: %s %s, want POST /hooks/in", i, r.method, r.path)
		}
		if !bytes.Equal(r.body, ev.JSON) {
			t.Errorf("request %d body:\n%s\nwant the event byte for byte:\n%s", i, r.body, ev.JSON)
		}
		for k, want := range map[string]string{
			"Content-Type":    "application/json",
			"Idempotency-Key": ev.MessageID,
			"X-Team":          "growth",
			"X-Env":           "prod",
		} {
			if v := r.header.Get(k); v != want {
				t.Errorf("request %d: %s = %q, want %q", i, k, v, want)
			}
		}
		sig := r.header.Get(webhook.SignatureHeader)
		if want := sign(secret, r.body); sig != want {
			t.Errorf("request %d: %s = %q, want HMAC-SHA256 of the body %q", i, webhook.SignatureHeader, sig, want)
		}
		mac, err := hex.DecodeString(sig)
		if err != nil {
			t.Fatalf("request %d: %s %q is not hex: %v", i, webhook.SignatureHeader, sig, err)
		}
		m := hmac.New(sha256.New, []byte(secret))
		m.Write(ev.JSON)
		if !hmac.Equal(mac, m.Sum(nil)) {
			t.Errorf("request %d: the signature does not verify against the event", i)
		}
	}
}

func TestSendWithoutSecretIsUnsigned(t *testing.T) {
	rc := newReceiver(t, nil)
	d := newDest(t, rc.client(t), map[string]any{"url": rc.srv.URL})
	checkDelivered(t, d.Send(t.Context(), []*deliver.Event{event("m-1", "Signed Up")}), 1)
	got := rc.requests()
	if len(got) != 1 {
		t.Fatalf("%d requests, want 1", len(got))
	}
	if v, ok := got[0].header[webhook.SignatureHeader]; ok {
		t.Errorf("%s = %q without a secret, want no such header", webhook.SignatureHeader, v)
	}
	if v := got[0].header.Get("Idempotency-Key"); v != "m-1" {
		t.Errorf("Idempotency-Key = %q, want m-1", v)
	}
}

// TestHeadersCannotOverrideTheProtocol checks that custom headers do not
// replace the ones the webhook owns.
func TestHeadersCannotOverrideTheProtocol(t *testing.T) {
	rc := newReceiver(t, nil)
	d := newDest(t, rc.client(t), map[string]any{"url": rc.srv.URL, "secret": "k",
		"headers": map[string]any{"Content-Type": "text/plain", "Idempotency-Key": "fixed", "X-Signature": "forged"}})
	ev := event("m-1", "Signed Up")
	checkDelivered(t, d.Send(t.Context(), []*deliver.Event{ev}), 1)
	h := rc.requests()[0].header
	for k, want := range map[string]string{"Content-Type": "application/json", "Idempotency-Key": "m-1",
		webhook.SignatureHeader: sign("k", ev.JSON)} {
		if vs := h.Values(k); len(vs) != 1 || vs[0] != want {
			t.Errorf("%s = %q, want [%q]", k, vs, want)
		}
	}
}

func TestSendBatch(t *testing.T) {
	rc := newReceiver(t, nil)
	const secret = "batch-secret"
	d := newDest(t, rc.client(t), map[string]any{"url": rc.srv.URL, "batch_size": 3, "secret": secret})
	events := []*deliver.Event{event("m-1", "Signed Up"), event("m-2", "Upgraded"), event("m-3", "Churned")}

	checkDelivered(t, d.Send(t.Context(), events), 3)
	got := rc.requests()
	if len(got) != 1 {
		t.Fatalf("%d requests for a batch of 3, want 1", len(got))
	}
	r := got[0]
	want := []byte("[" + string(events[0].JSON) + "," + string(events[1].JSON) + "," + string(events[2].JSON) + "]")
	if !bytes.Equal(r.body, want) {
		t.Errorf("body:\n%s\nwant the JSON array of the events:\n%s", r.body, want)
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(r.body, &elems); err != nil {
		t.Fatalf("the body is not a JSON array: %v", err)
	}
	if len(elems) != 3 {
		t.Fatalf("%d elements, want 3", len(elems))
	}
	for i, e := range elems {
		if !bytes.Equal(e, events[i].JSON) {
			t.Errorf("element %d: %s, want %s", i, e, events[i].JSON)
		}
	}
	if v := r.header.Get("Content-Type"); v != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", v)
	}
	if v, w := r.header.Get(webhook.SignatureHeader), sign(secret, r.body); v != w {
		t.Errorf("%s = %q, want %q", webhook.SignatureHeader, v, w)
	}
	key := r.header.Get("Idempotency-Key")
	if !strings.HasPrefix(key, "batch-") || len(key) <= len("batch-") {
		t.Fatalf("Idempotency-Key = %q, want batch-…", key)
	}

	// The same events again (a retry, even as new values) carry the same
	// key; other events, or the same in another order, another one.
	again := []*deliver.Event{event("m-1", "Signed Up"), event("m-2", "Upgraded"), event("m-3", "Churned")}
	checkDelivered(t, d.Send(t.Context(), again), 3)
	checkDelivered(t, d.Send(t.Context(), []*deliver.Event{event("m-1", "Signed Up"), event("m-2", "Upgraded"), event("m-4", "Churned")}), 3)
	checkDelivered(t, d.Send(t.Context(), []*deliver.Event{events[2], events[1], events[0]}), 3)
	checkDelivered(t, d.Send(t.Context(), events[:2]), 2)
	// The messageIds are kept apart: "ab","c" is not "a","bc".
	checkDelivered(t, d.Send(t.Context(), []*deliver.Event{event("ab", "A"), event("c", "B")}), 2)
	checkDelivered(t, d.Send(t.Context(), []*deliver.Event{event("a", "A"), event("bc", "B")}), 2)
	got = rc.requests()
	if len(got) != 7 {
		t.Fatalf("%d requests, want 7", len(got))
	}
	if k := got[1].header.Get("Idempotency-Key"); k != key {
		t.Errorf("the same events again: Idempotency-Key %q, want %q", k, key)
	}
	seen := map[string]int{key: 0}
	for i := 2; i < 7; i++ {
		k := got[i].header.Get("Idempotency-Key")
		if !strings.HasPrefix(k, "batch-") {
			t.Errorf("request %d: Idempotency-Key %q, want batch-…", i, k)
		}
		if j, dup := seen[k]; dup {
			t.Errorf("request %d (other events) has the Idempotency-Key %q of request %d", i, k, j)
		}
		seen[k] = i
	}
	if !bytes.Equal(got[4].body, []byte("["+string(events[0].JSON)+","+string(events[1].JSON)+"]")) {
		t.Errorf("a batch of 2: body %s", got[4].body)
	}
}

func TestSendBatchFailureAppliesToEveryEvent(t *testing.T) {
	rc := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadGateway) })
	d := newDest(t, rc.client(t), map[string]any{"url": rc.srv.URL, "batch_size": 3})
	rs := d.Send(t.Context(), []*deliver.Event{event("m-1", "A"), event("m-2", "B"), event("m-3", "C")})
	if len(rs) != 3 {
		t.Fatalf("%d results, want 3", len(rs))
	}
	for i, r := range rs {
		if r.Outcome != deliver.Retry || r.StatusCode != http.StatusBadGateway || r.Reason != "http_502" {
			t.Errorf("result %d: %v %d %q, want retry 502 http_502", i, r.Outcome, r.StatusCode, r.Reason)
		}
	}
	if n := len(rc.requests()); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}

func TestSendOutcomes(t *testing.T) {
	cases := []struct {
		status     int
		header     map[string]string
		body       string
		want       deliver.Outcome
		retryAfter time.Duration
	}{
		{status: http.StatusOK, body: `{"ok":true}`, want: deliver.Delivered},
		{status: http.StatusCreated, want: deliver.Delivered},
		{status: http.StatusNoContent, want: deliver.Delivered},
		{status: http.StatusInternalServerError, body: "boom", want: deliver.Retry},
		{status: http.StatusBadGateway, body: "bad gateway", want: deliver.Retry},
		{status: http.StatusServiceUnavailable, body: "down for maintenance", want: deliver.Retry},
		{status: http.StatusRequestTimeout, want: deliver.Retry},
		// A 429 that does not say how long to wait pauses the destination
		// for the engine's default.
		{status: http.StatusTooManyRequests, body: "slow down", want: deliver.Retry, retryAfter: deliver.DefaultThrottle},
		{status: http.StatusServiceUnavailable, header: map[string]string{"Retry-After": "3"}, want: deliver.Retry,
			retryAfter: 3 * time.Second},
		{status: http.StatusTooManyRequests, header: map[string]string{"Retry-After": "7"}, body: "slow down", want: deliver.Retry,
			retryAfter: 7 * time.Second},
		{status: http.StatusBadRequest, body: `{"error":"invalid payload: userId"}`, want: deliver.Discard},
		{status: http.StatusUnauthorized, body: `{"error":"bad token"}`, want: deliver.Discard},
		{status: http.StatusNotFound, body: "no such hook", want: deliver.Discard},
		{status: http.StatusUnprocessableEntity, body: `{"error":"unprocessable"}`, want: deliver.Discard},
	}
	for _, tc := range cases {
		name := fmt.Sprintf("%d", tc.status)
		if tc.header != nil {
			name += " with Retry-After"
		}
		t.Run(name, func(t *testing.T) {
			rc := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) {
				for k, v := range tc.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, tc.body)
			})
			d := newDest(t, rc.client(t), map[string]any{"url": rc.srv.URL})
			rs := d.Send(t.Context(), []*deliver.Event{event("m-1", "Signed Up")})
			if len(rs) != 1 {
				t.Fatalf("%d results, want 1", len(rs))
			}
			r := rs[0]
			if r.Outcome != tc.want {
				t.Errorf("outcome %v, want %v", r.Outcome, tc.want)
			}
			if r.StatusCode != tc.status {
				t.Errorf("status %d, want %d", r.StatusCode, tc.status)
			}
			if r.RetryAfter != tc.retryAfter {
				t.Errorf("RetryAfter %v, want %v", r.RetryAfter, tc.retryAfter)
			}
			if tc.want == deliver.Delivered {
				if r.Reason != "" {
					t.Errorf("reason %q for a delivered event, want none", r.Reason)
				}
				return
			}
			if want := fmt.Sprintf("http_%d", tc.status); r.Reason != want {
				t.Errorf("reason %q, want %q", r.Reason, want)
			}
			if !bytes.Contains(r.Response, []byte(tc.body)) {
				t.Errorf("recorded response %q does not contain the body %q", r.Response, tc.body)
			}
			if !bytes.Contains(r.Response, []byte(fmt.Sprint(tc.status))) {
				t.Errorf("recorded response %q does not contain the status", r.Response)
			}
			if tc.body != "" && !strings.Contains(r.Error, tc.body) {
				t.Errorf("error %q does not quote the body %q", r.Error, tc.body)
			}
		})
	}
}

func TestSendConnectionClosed(t *testing.T) {
	rc := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijacking: %v", err)
			return
		}
		_ = conn.Close()
	})
	d := newDest(t, rc.client(t), map[string]any{"url": rc.srv.URL})
	rs := d.Send(t.Context(), []*deliver.Event{event("m-1", "Signed Up")})
	if len(rs) != 1 {
		t.Fatalf("%d results, want 1", len(rs))
	}
	r := rs[0]
	if r.Outcome != deliver.Retry || r.Reason != deliver.ReasonConnection || r.StatusCode != 0 {
		t.Errorf("result %v %q status %d (%s), want retry %q status 0", r.Outcome, r.Reason, r.StatusCode, r.Error, deliver.ReasonConnection)
	}
	if len(rc.requests()) == 0 {
		t.Errorf("the server got no request")
	}
}

func TestSendConnectionRefused(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	d := newDest(t, &http.Client{}, map[string]any{"url": url})
	r := d.Send(t.Context(), []*deliver.Event{event("m-1", "Signed Up")})[0]
	if r.Outcome != deliver.Retry || r.Reason != deliver.ReasonConnection {
		t.Errorf("result %v %q (%s), want retry %q", r.Outcome, r.Reason, r.Error, deliver.ReasonConnection)
	}
}

func TestSendTimeout(t *testing.T) {
	release := make(chan struct{})
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		case <-time.After(10 * time.Second):
		}
	})
	t.Cleanup(func() { close(release) }) // runs before the server's Close
	d := newDest(t, rc.client(t), map[string]any{"url": rc.srv.URL, "timeout": "50ms"})
	start := time.Now()
	rs := d.Send(t.Context(), []*deliver.Event{event("m-1", "Signed Up")})
	took := time.Since(start)
	if len(rs) != 1 {
		t.Fatalf("%d results, want 1", len(rs))
	}
	r := rs[0]
	if r.Outcome != deliver.Retry || r.Reason != deliver.ReasonTimeout || r.StatusCode != 0 {
		t.Errorf("result %v %q status %d (%s), want retry %q status 0", r.Outcome, r.Reason, r.StatusCode, r.Error, deliver.ReasonTimeout)
	}
	if took < 50*time.Millisecond || took > time.Second {
		t.Errorf("Send took %v, want about the 50ms timeout", took)
	}
}

func TestRequestRecordedWithCredentialsMasked(t *testing.T) {
	const token = "Bearer tok_live_51HxQ"
	rc := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"error":"nope"}`)
	})
	d := newDest(t, rc.client(t), map[string]any{"url": rc.srv.URL + "/in",
		"headers": map[string]any{"Authorization": token, "X-Team": "growth"}})
	ev := event("m-1", "Signed Up")
	r := d.Send(t.Context(), []*deliver.Event{ev})[0]
	if r.Outcome != deliver.Discard || r.StatusCode != http.StatusBadRequest || r.Reason != "http_400" {
		t.Fatalf("result %v %d %q, want discard 400 http_400", r.Outcome, r.StatusCode, r.Reason)
	}
	if got := rc.requests()[0].header.Get("Authorization"); got != token {
		t.Errorf("the receiver got Authorization %q, want %q", got, token)
	}
	req := string(r.Request)
	for _, want := range []string{"POST ", "/in", "Authorization: xxxxx", "X-Team: growth", "Idempotency-Key: m-1", string(ev.JSON)} {
		if !strings.Contains(req, want) {
			t.Errorf("recorded request does not contain %q:\n%s", want, req)
		}
	}
	if strings.Contains(req, "tok_live_51HxQ") {
		t.Errorf("recorded request leaks the Authorization header:\n%s", req)
	}
	if !strings.Contains(string(r.Response), `{"error":"nope"}`) {
		t.Errorf("recorded response %q does not contain the body", r.Response)
	}
}
