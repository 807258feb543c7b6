package server_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/server"
	"github.com/confluxcdp/conflux/internal/server/servertest"
)

// receiver is a webhook endpoint that records what it gets and answers
// with status(messageId).
type receiver struct {
	mu     sync.Mutex
	got    map[string]int // messageId → requests carrying it
	header map[string]http.Header
	status func(id string) int
}

func newReceiver(t *testing.T, status func(id string) int) (*receiver, *httptest.Server) {
	r := &receiver{got: map[string]int{}, header: map[string]http.Header{}, status: status}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		var ev struct {
			MessageID string `json:"messageId"`
		}
		if err := json.Unmarshal(body, &ev); err != nil {
			t.Errorf("webhook body %q: %v", body, err)
		}
		code := 200
		if r.status != nil {
			code = r.status(ev.MessageID)
		}
		r.mu.Lock()
		if code == 200 {
			r.got[ev.MessageID]++
		}
		h := req.Header.Clone()
		h.Set("X-Body", string(body))
		r.header[ev.MessageID] = h
		r.mu.Unlock()
		w.WriteHeader(code)
		fmt.Fprintf(w, `{"status":%d}`, code)
	}))
	t.Cleanup(srv.Close)
	return r, srv
}

func (r *receiver) wait(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r.mu.Lock()
		have := len(r.got)
		r.mu.Unlock()
		if have >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("receiver has %d distinct events, want %d", have, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func startWithConfig(t *testing.T, cfg string) *servertest.Server {
	dir := t.TempDir()
	path := filepath.Join(dir, "conflux.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return servertest.Start(t, server.Options{DataDir: filepath.Join(dir, "data"), ConfigPath: path})
}

// TestWebhookDelivery sends events through the Tracking API and checks
// that the webhook gets each once, signed and keyed by its messageId; that
// a 400 is dead-lettered with the response; and that a replay resends it.
func TestWebhookDelivery(t *testing.T) {
	var mu sync.Mutex
	reject := map[string]bool{"bad-1": true}
	rcv, hook := newReceiver(t, func(id string) int {
		mu.Lock()
		defer mu.Unlock()
		if reject[id] {
			return 400
		}
		return 200
	})
	s := startWithConfig(t, fmt.Sprintf(`
sources:
  - id: web
    write_key: webWriteKey000000000000000000001
destinations:
  - id: hook
    type: webhook
    sources: [web]
    settings: {url: %q, secret: s3cret, headers: {X-Team: growth}}
`, hook.URL))
	key := "webWriteKey000000000000000000001"
	// The queue starts at the stream's end when it first runs: wait for it.
	waitQueue(t, s, "hook")
	for i := range 20 {
		if got := send(t, s.URL, key, "/v1/track", fmt.Sprintf(`{"messageId":"m-%d","userId":"u%d","event":"E"}`, i, i%3)); got != 200 {
			t.Fatalf("track: %d", got)
		}
	}
	if got := send(t, s.URL, key, "/v1/track", `{"messageId":"bad-1","userId":"u1","event":"E"}`); got != 200 {
		t.Fatalf("track: %d", got)
	}
	rcv.wait(t, 20)
	h := rcv.header["m-3"]
	if h.Get("Idempotency-Key") != "m-3" || h.Get("X-Team") != "growth" {
		t.Errorf("headers %v", h)
	}
	mac := hmac.New(sha256.New, []byte("s3cret"))
	mac.Write([]byte(h.Get("X-Body")))
	if h.Get("X-Signature") != hex.EncodeToString(mac.Sum(nil)) {
		t.Errorf("signature %q does not match the body", h.Get("X-Signature"))
	}

	// The rejected event is a dead letter with the destination's answer.
	var dead []any
	for deadline := time.Now().Add(10 * time.Second); len(dead) == 0 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		st, out := admin(t, s, "GET", "/api/v1/dead-letters?destination=hook", "")
		if st != 200 {
			t.Fatalf("dead letters: %d %v", st, out)
		}
		dead, _ = out["dead_letters"].([]any)
	}
	if len(dead) != 1 {
		t.Fatalf("dead letters %v, want bad-1", dead)
	}
	d := dead[0].(map[string]any)
	if d["message_id"] != "bad-1" || d["reason"] != "discarded" || d["status_code"] != float64(400) || d["error_reason"] != "http_400" {
		t.Errorf("dead letter %v", d)
	}
	st, out := admin(t, s, "GET", "/api/v1/jobs?message_id=bad-1", "")
	if jobs, _ := out["jobs"].([]any); st != 200 || len(jobs) != 1 || jobs[0].(map[string]any)["state"] != "discarded" {
		t.Errorf("job state of bad-1: %d %v", st, out)
	}

	// Fixed at the receiver, replayed.
	mu.Lock()
	delete(reject, "bad-1")
	mu.Unlock()
	st, out = admin(t, s, "POST", "/api/v1/dead-letters/replay", `{"destination":"hook"}`)
	if st != 200 || out["moved"] != float64(1) || out["remaining"] != float64(0) {
		t.Fatalf("replay: %d %v", st, out)
	}
	rcv.wait(t, 21)
	id, _ := out["replay_id"].(string)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		_, out = admin(t, s, "GET", "/api/v1/replays/"+id, "")
		if out["delivered"] == float64(1) || time.Now().After(deadline) {
			break
		}
	}
	if out["delivered"] != float64(1) || out["pending"] != float64(0) {
		t.Errorf("replay status %v", out)
	}
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	for id, n := range rcv.got {
		if n != 1 {
			t.Errorf("%s delivered %d times", id, n)
		}
	}
}

// waitQueue waits until a destination's queue runs.
func waitQueue(t *testing.T, s *servertest.Server, id string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		st, out := admin(t, s, "GET", "/api/v1/destinations/"+id+"/delivery", "")
		if st == 200 && out["running"] == true {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue of %s not running: %d %v", id, st, out)
		}
	}
}

// TestDeliveryMetrics runs a known mix through the real pipeline — some
// delivered, one retried then delivered, one discarded with a 400, one
// skipped by its integrations object — and checks the delivery-metrics
// API's counts.
func TestDeliveryMetrics(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	_, hook := newReceiver(t, func(id string) int {
		mu.Lock()
		defer mu.Unlock()
		seen[id]++
		switch {
		case id == "bad":
			return 400
		case id == "flaky" && seen[id] == 1:
			return 503
		}
		return 200
	})
	dir := t.TempDir()
	path := filepath.Join(dir, "conflux.yaml")
	cfg := fmt.Sprintf(`
sources:
  - id: web
    write_key: webWriteKey000000000000000000001
destinations:
  - id: hook
    type: webhook
    sources: [web]
    settings: {url: %q}
`, hook.URL)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	s := servertest.Start(t, server.Options{DataDir: filepath.Join(dir, "data"), ConfigPath: path, MetricsFlushEvery: 50 * time.Millisecond})
	waitQueue(t, s, "hook")
	if st, b := admin(t, s, "POST", "/api/v1/regulations", `{"regulationType":"SUPPRESS_ONLY","subjectType":"USER_ID","subjectIds":["gone"]}`); st != 200 {
		t.Fatalf("regulation: %d %v", st, b)
	}
	key := "webWriteKey000000000000000000001"
	for _, body := range []string{
		`{"messageId":"gone-1","userId":"gone","event":"Signed Up"}`, // suppressed
		`{"messageId":"ok-1","userId":"u1","event":"Signed Up"}`,
		`{"messageId":"ok-2","userId":"u2","event":"Signed Up"}`,
		`{"messageId":"bad","userId":"u3","event":"Order Completed"}`,
		`{"messageId":"flaky","userId":"u4","event":"Order Completed"}`,
		`{"messageId":"skip","userId":"u5","event":"Signed Up","integrations":{"All":false}}`,
		`{"messageId":"ok-1","userId":"u1","event":"Signed Up"}`, // a duplicate
	} {
		if got := send(t, s.URL, key, "/v1/track", body); got != 200 {
			t.Fatalf("track: %d", got)
		}
	}
	// A batch with one event the Tracking API rejects (and reports).
	if got := send(t, s.URL, key, "/v1/batch", `{"batch":[{"type":"track","userId":"u6","event":"Bad","timestamp":"yesterday"}]}`); got != 200 {
		t.Fatalf("batch: %d", got)
	}
	// And a single call the API refuses (400): counted too.
	if got := send(t, s.URL, key, "/v1/track", `{"userId":"u7","event":"Bad","timestamp":"yesterday"}`); got != 400 {
		t.Fatalf("bad track: %d", got)
	}
	// flaky's retry comes 2.5–5 s later (the default backoff).
	want := map[string]float64{"successes": 3, "discarded": 1, "retried": 1, "expired": 0}
	var got map[string]float64
	var out map[string]any
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		_, out = admin(t, s, "GET", "/api/v1/delivery-metrics?destination=hook&source=web", "")
		got = map[string]float64{}
		metrics, _ := out["metrics"].([]any)
		for _, m := range metrics {
			m := m.(map[string]any)
			got[m["metric_name"].(string)] = m["total"].(float64)
		}
		if fmt.Sprint(got) == fmt.Sprint(want) {
			break
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("delivery metrics %v, want %v (%v)", got, want, out)
	}
	for _, m := range out["metrics"].([]any) {
		m := m.(map[string]any)
		switch m["metric_name"] {
		case "discarded":
			if b := m["breakdown"].([]any); len(b) != 1 || b[0].(map[string]any)["reason"] != "http_400" {
				t.Errorf("discard breakdown %v", b)
			}
		case "retried":
			if b := m["breakdown"].([]any); len(b) != 1 || b[0].(map[string]any)["reason"] != "attempt.1" {
				t.Errorf("retry breakdown %v", b)
			}
		}
	}
	if p99, _ := out["p99_ms"].(float64); p99 <= 0 {
		t.Errorf("no latency: %v", out["p99_ms"])
	}

	// The funnel: received → removed before delivery → per destination.
	_, ov := admin(t, s, "GET", "/api/v1/delivery-overview?source=web", "")
	funnel := map[string]float64{}
	for _, st := range ov["stages"].([]any) {
		st := st.(map[string]any)
		funnel[st["outcome"].(string)] = st["total"].(float64)
	}
	for _, d := range ov["destinations"].([]any) {
		for _, st := range d.(map[string]any)["stages"].([]any) {
			st := st.(map[string]any)
			funnel["hook."+st["outcome"].(string)] = st["total"].(float64)
		}
	}
	wantFunnel := map[string]float64{"received": 6, "rejected": 2, "suppressed": 1, "duplicate": 1, "blocked": 0,
		"hook.filtered": 1, "hook.delivered": 3, "hook.retried": 1, "hook.discarded": 1, "hook.expired": 0}
	if fmt.Sprint(funnel) != fmt.Sprint(wantFunnel) {
		t.Errorf("overview %v, want %v (%v)", funnel, wantFunnel, ov)
	}
	// received = delivered + every reason it was not: 6 = 3 + 1 (duplicate)
	// + 1 (filtered) + 1 (discarded); the retried one was delivered.

	// The same counts at every granularity, and one latency observation
	// per delivered event.
	for _, g := range []string{"MINUTE", "HOUR", "DAY"} {
		_, out := admin(t, s, "GET", "/api/v1/delivery-metrics?destination=hook&granularity="+g, "")
		got := map[string]float64{}
		for _, m := range out["metrics"].([]any) {
			m := m.(map[string]any)
			got[m["metric_name"].(string)] = m["total"].(float64)
		}
		var observed float64
		for _, p := range out["latency"].([]any) {
			observed += p.(map[string]any)["count"].(float64)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) || observed != 3 {
			t.Errorf("%s: metrics %v with %v latency observations, want %v and 3", g, got, observed, want)
		}
	}
}

// TestDiscardAlert declares an alert on discards in the config file, sends
// an event the webhook refuses, and checks that the alert's webhook is
// told it fires, and that the API lists it firing.
func TestDiscardAlert(t *testing.T) {
	_, hook := newReceiver(t, func(string) int { return 400 })
	notes := make(chan map[string]any, 4)
	notify := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n map[string]any
		if err := json.NewDecoder(r.Body).Decode(&n); err != nil {
			t.Errorf("notification: %v", err)
		}
		notes <- n
	}))
	defer notify.Close()
	dir := t.TempDir()
	path := filepath.Join(dir, "conflux.yaml")
	cfg := fmt.Sprintf(`
sources:
  - id: web
    write_key: webWriteKey000000000000000000001
destinations:
  - id: hook
    type: webhook
    sources: [web]
    settings: {url: %q}
alerts:
  - id: hook-discards
    name: Hook refuses events
    kind: discards_above
    destination: hook
    threshold: 0
    window: 5m
    notify: {url: %q}
`, hook.URL, notify.URL)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	s := servertest.Start(t, server.Options{DataDir: filepath.Join(dir, "data"), ConfigPath: path,
		MetricsFlushEvery: 50 * time.Millisecond, AlertEvery: 100 * time.Millisecond})
	waitQueue(t, s, "hook")
	if got := send(t, s.URL, "webWriteKey000000000000000000001", "/v1/track", `{"messageId":"refused","userId":"u1","event":"E"}`); got != 200 {
		t.Fatalf("track: %d", got)
	}
	select {
	case n := <-notes:
		if n["alert_id"] != "hook-discards" || n["status"] != "firing" || n["destination"] != "hook" || n["value"] != float64(1) {
			t.Errorf("notification %v", n)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no alert notification within 15s")
	}
	_, out := admin(t, s, "GET", "/api/v1/alerts/hook-discards", "")
	if out["state"] != "firing" {
		t.Errorf("alert %v, want firing", out)
	}
}
