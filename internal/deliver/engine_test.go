package deliver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/config"
	"github.com/confluxcdp/conflux/internal/deliver"
	"github.com/confluxcdp/conflux/internal/deliver/destinations/webhook"
	"github.com/confluxcdp/conflux/internal/event"
	"github.com/confluxcdp/conflux/internal/store"
	"github.com/confluxcdp/conflux/internal/store/storetest"
	"github.com/confluxcdp/conflux/internal/stream"
	"github.com/confluxcdp/conflux/internal/stream/streamtest"
	"github.com/prometheus/client_golang/prometheus"
)

// fakeClock is a controllable deliver.Clock: time moves only when the
// test advances it, and timers fire then.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeTimer
}

type fakeTimer struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock(start time.Time) *fakeClock { return &fakeClock{now: start} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, fakeTimer{at: c.now.Add(d), ch: ch})
	return ch
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(c.now) {
			w.ch <- c.now
			continue
		}
		kept = append(kept, w)
	}
	c.waiters = kept
}

// script is what the test endpoint does on each attempt of an event.
type script []string

// endpoint is a local HTTP destination that fails on purpose: for each
// messageId, attempt n follows script[n] (the last step repeats):
// "200", "500", "400", "408", "429:<seconds>" (Retry-After), "reset"
// (the connection is closed without an answer) and "timeout" (the answer
// comes after the client gave up).
type endpoint struct {
	t       *testing.T
	clock   *fakeClock
	scripts map[string]script
	mu      sync.Mutex
	// attempts[id] are the fake times of each attempt; delivered[id]
	// counts the 200s answered in time.
	attempts  map[string][]time.Time
	delivered map[string]int
	srv       *httptest.Server
}

func newEndpoint(t *testing.T, clock *fakeClock, scripts map[string]script) *endpoint {
	e := &endpoint{t: t, clock: clock, scripts: scripts, attempts: map[string][]time.Time{}, delivered: map[string]int{}}
	e.srv = httptest.NewServer(http.HandlerFunc(e.serve))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *endpoint) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var ev struct {
		MessageID string `json:"messageId"`
	}
	if err := json.Unmarshal(body, &ev); err != nil || ev.MessageID == "" {
		e.t.Errorf("request body %q is not an event: %v", body, err)
		w.WriteHeader(500)
		return
	}
	if got := r.Header.Get("Idempotency-Key"); got != ev.MessageID {
		e.t.Errorf("Idempotency-Key %q, want %q", got, ev.MessageID)
	}
	e.mu.Lock()
	n := len(e.attempts[ev.MessageID])
	e.attempts[ev.MessageID] = append(e.attempts[ev.MessageID], e.clock.Now())
	steps := e.scripts[ev.MessageID]
	step := "200"
	if len(steps) > 0 {
		step = steps[min(n, len(steps)-1)]
	}
	if step == "200" {
		e.delivered[ev.MessageID]++
	}
	e.mu.Unlock()
	switch {
	case step == "reset":
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	case step == "timeout":
		time.Sleep(1500 * time.Millisecond) // TestRetrySchedule's timeout is 500ms
		w.WriteHeader(200)
	case strings.HasPrefix(step, "429:"):
		w.Header().Set("Retry-After", strings.TrimPrefix(step, "429:"))
		w.WriteHeader(429)
		io.WriteString(w, `{"error":"slow down"}`)
	default:
		var code int
		fmt.Sscan(step, &code)
		w.WriteHeader(code)
		fmt.Fprintf(w, `{"error":"scripted %d"}`, code)
	}
}

func (e *endpoint) times(id string) []time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]time.Time(nil), e.attempts[id]...)
}

// harness runs an engine over a real embedded log and SQLite store.
type harness struct {
	log    *stream.Log
	db     *store.DB
	engine *deliver.Engine
	clock  *fakeClock
	ws     *config.Workspace
	mux    *http.ServeMux
	cancel context.CancelFunc
	done   chan error
}

func startEngine(t testing.TB, clock *fakeClock, opts deliver.Options, dests ...config.Destination) *harness {
	t.Helper()
	h := &harness{log: streamtest.New(t), db: storetest.SQLite(t), clock: clock, done: make(chan error, 1)}
	h.ws = config.NewWorkspace(1, config.Settings{}, []config.Source{{ID: "web", WriteKey: "k"}}, dests)
	opts.Log, opts.DB, opts.Workspace = h.log, h.db, func() *config.Workspace { return h.ws }
	if opts.Registry == nil {
		opts.Registry = deliver.NewRegistry(webhook.Type)
	}
	if opts.Clock == nil {
		opts.Clock = clock
	}
	opts.RetryPoll = 5 * time.Millisecond
	opts.ConfigPoll = 10 * time.Millisecond
	opts.Registerer = prometheus.NewRegistry()
	h.engine = deliver.New(opts)
	h.mux = http.NewServeMux()
	h.engine.Register(h.mux, func(h http.Handler) http.Handler { return h })
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- h.engine.Run(ctx) }()
	t.Cleanup(h.stop)
	for _, d := range dests {
		h.waitRunning(t, d.ID)
	}
	return h
}

func (h *harness) stop() {
	if h.cancel != nil {
		h.cancel()
		<-h.done
		h.cancel = nil
	}
}

// get calls the delivery API.
func (h *harness) get(t testing.TB, path string) map[string]any {
	t.Helper()
	rec := httptest.NewRecorder()
	h.mux.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	var out map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body)
	}
	return out
}

func (h *harness) waitRunning(t testing.TB, dest string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if h.get(t, "/api/v1/destinations/"+dest+"/delivery")["running"] == true {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue of %s does not run", dest)
		}
	}
}

// publish writes one processed message holding an event per id.
func (h *harness) publish(t *testing.T, received time.Time, ids ...string) {
	t.Helper()
	var data []byte
	for i, id := range ids {
		data = event.AppendRecord(data, "web", fmt.Appendf(nil,
			`{"type":"track","event":"E","messageId":%q,"userId":"u%d","context":{},"timestamp":%q,"receivedAt":%q}`,
			id, i%7, received.Format(time.RFC3339Nano), received.Format(time.RFC3339Nano)))
	}
	if _, err := h.log.JetStream().Publish(context.Background(), stream.ProcessedSubject, data); err != nil {
		t.Fatal(err)
	}
}

func hook(url string, delivery config.DeliveryOptions, settings map[string]any) config.Destination {
	s := map[string]any{"url": url, "timeout": "2s"}
	for k, v := range settings {
		s[k] = v
	}
	return config.Destination{ID: "hook", Type: "webhook", Enabled: true, Sources: []string{"web"}, Settings: s, Delivery: delivery}
}

// jobs returns the job states of an event.
func (h *harness) jobs(t *testing.T, id string) []map[string]any {
	var out []map[string]any
	for _, j := range h.get(t, "/api/v1/jobs?message_id="+id)["jobs"].([]any) {
		out = append(out, j.(map[string]any))
	}
	return out
}

// TestRetrySchedule drives every failure kind through the engine on a
// controllable clock and checks each event's final state and when each
// attempt came.
func TestRetrySchedule(t *testing.T) {
	start := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	clock := newFakeClock(start)
	scripts := map[string]script{
		"ok":         {"200"},
		"flaky":      {"500", "502", "200"},
		"reset":      {"reset", "200"},
		"timeout":    {"timeout", "200"},
		"again":      {"408", "200"},
		"bad":        {"400"},
		"auth":       {"401"},
		"down":       {"500"},
		"down-later": {"503", "503", "503", "400"},
	}
	ep := newEndpoint(t, clock, scripts)
	h := startEngine(t, clock, deliver.Options{
		Backoff: deliver.Backoff{Min: 10 * time.Second, Max: 10 * time.Minute}, MaxRetryAge: time.Hour,
		BreakerThreshold: 1000,
	}, hook(ep.srv.URL, config.DeliveryOptions{Concurrency: 4}, map[string]any{"timeout": "500ms"}))
	ids := make([]string, 0, len(scripts))
	for id := range scripts {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	h.publish(t, start, ids...)

	// Fine steps for the first minutes, coarse ones after, to two hours;
	// after each, the queue makes every attempt due by then.
	for clock.Now().Sub(start) < 2*time.Hour {
		step := time.Second
		if clock.Now().Sub(start) > 3*time.Minute {
			step = time.Minute
		}
		if !h.engine.Settle(t.Context(), "hook", 10*time.Second) {
			t.Fatalf("the queue did not settle at +%v", clock.Now().Sub(start))
		}
		clock.Advance(step)
	}
	h.engine.Settle(t.Context(), "hook", 10*time.Second)
	waitFor(t, func() bool { return h.get(t, "/api/v1/destinations/hook/delivery")["awaiting_retry"] == float64(0) })

	for _, id := range []string{"ok", "flaky", "reset", "timeout", "again"} {
		ep.mu.Lock()
		n := ep.delivered[id]
		ep.mu.Unlock()
		if n != 1 {
			t.Errorf("%s: delivered %d times, want once (attempts %v)", id, n, ep.times(id))
		}
		if js := h.jobs(t, id); len(js) != 0 {
			t.Errorf("%s: delivered but has jobs %v", id, js)
		}
	}
	for id, want := range map[string]int{"ok": 1, "flaky": 3, "reset": 2, "timeout": 2, "again": 2, "bad": 1, "auth": 1, "down-later": 4} {
		if got := len(ep.times(id)); got != want {
			t.Errorf("%s: %d attempts, want %d", id, got, want)
		}
	}
	// Randomized exponential backoff: retry n comes within [d/2, d] of the
	// failure, d = 10s·2^(n-1), give or take the clock's step.
	at := ep.times("flaky")
	for n, gap := range []time.Duration{at[1].Sub(at[0]), at[2].Sub(at[1])} {
		d := 10 * time.Second << n
		if gap < d/2 || gap > d+2*time.Second {
			t.Errorf("flaky: retry %d came %v after the failure, want within [%v, %v]", n+1, gap, d/2, d)
		}
	}
	// A destination down for longer than the maximum age: tried with
	// growing gaps, then expired, never tried after the hour.
	down := ep.times("down")
	if len(down) < 5 || len(down) > 15 {
		t.Errorf("down: %d attempts in the hour, want a handful with backoff: %v", len(down), down)
	}
	if last := down[len(down)-1]; last.Sub(start) > time.Hour {
		t.Errorf("down: attempt at +%v, after the maximum age", last.Sub(start))
	}

	dead := map[string]map[string]any{}
	for _, d := range h.get(t, "/api/v1/dead-letters?destination=hook")["dead_letters"].([]any) {
		m := d.(map[string]any)
		dead[m["message_id"].(string)] = m
	}
	for id, want := range map[string]struct {
		reason string
		status float64
		cause  string
	}{
		"bad": {"discarded", 400, "http_400"}, "auth": {"discarded", 401, "http_401"},
		"down": {"expired", 500, "http_500"}, "down-later": {"discarded", 400, "http_400"},
	} {
		d, ok := dead[id]
		if !ok {
			t.Errorf("%s: no dead letter", id)
			continue
		}
		if d["reason"] != want.reason || d["status_code"] != want.status || d["error_reason"] != want.cause {
			t.Errorf("%s: dead letter %v, want %+v", id, d, want)
		}
		if !strings.Contains(d["response"].(string), "scripted") || !strings.Contains(d["request"].(string), "POST ") {
			t.Errorf("%s: dead letter keeps request %q and response %q", id, d["request"], d["response"])
		}
		if js := h.jobs(t, id); len(js) != 1 || js[0]["state"] != want.reason {
			t.Errorf("%s: job state %v, want %s", id, js, want.reason)
		}
	}
	if len(dead) != 4 {
		t.Errorf("dead letters for %v, want bad, auth, down, down-later", keys(dead))
	}
	// Newest first, a page of two, then the next page.
	page := h.get(t, "/api/v1/dead-letters?destination=hook&order=newest&limit=2")
	first := page["dead_letters"].([]any)
	next, _ := page["next"].(string)
	rest := h.get(t, "/api/v1/dead-letters?destination=hook&order=newest&limit=2&before="+next)["dead_letters"].([]any)
	var deadIDs []float64
	for _, d := range append(first, rest...) {
		deadIDs = append(deadIDs, d.(map[string]any)["id"].(float64))
	}
	if len(deadIDs) != 4 || !sort.SliceIsSorted(deadIDs, func(i, j int) bool { return deadIDs[i] > deadIDs[j] }) {
		t.Errorf("newest first, two pages: ids %v", deadIDs)
	}
	if h.get(t, "/api/v1/dead-letters?order=random")["error"] == nil {
		t.Error("order=random was accepted")
	}
	if d := dead["down"]; d != nil && d["attempts"].(float64) != float64(len(down)) {
		t.Errorf("down: dead letter counts %v attempts, the endpoint saw %d", d["attempts"], len(down))
	}
}

// TestRetryAfterPausesTheDestination checks that a 429 with Retry-After
// holds back the whole destination, not only the throttled event.
func TestRetryAfterPausesTheDestination(t *testing.T) {
	start := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	clock := newFakeClock(start)
	ep := newEndpoint(t, clock, map[string]script{"throttled": {"429:120", "200"}})
	h := startEngine(t, clock, deliver.Options{Backoff: deliver.Backoff{Min: 10 * time.Second, Max: time.Minute}},
		hook(ep.srv.URL, config.DeliveryOptions{Concurrency: 1}, nil))
	h.publish(t, start, "throttled")
	waitFor(t, func() bool { return len(h.jobs(t, "throttled")) == 1 })
	h.publish(t, start, "later")
	for range 200 {
		clock.Advance(time.Second)
		time.Sleep(2 * time.Millisecond)
	}
	waitFor(t, func() bool { return len(ep.times("later")) == 1 && len(ep.times("throttled")) == 2 })
	if at := ep.times("throttled"); at[1].Sub(at[0]) < 120*time.Second {
		t.Errorf("throttled: retried %v after a 429 with Retry-After: 120", at[1].Sub(at[0]))
	}
	if at := ep.times("later")[0]; at.Sub(start) < 120*time.Second {
		t.Errorf("later: sent %v after the 429, within its Retry-After of 120s", at.Sub(start))
	}
}

// TestJobStateWhileRetrying checks what the API says of an event awaiting
// retry: attempts, next retry time, last error.
func TestJobStateWhileRetrying(t *testing.T) {
	start := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	clock := newFakeClock(start)
	ep := newEndpoint(t, clock, map[string]script{"x": {"503"}})
	h := startEngine(t, clock, deliver.Options{Backoff: deliver.Backoff{Min: time.Minute, Max: time.Hour}},
		hook(ep.srv.URL, config.DeliveryOptions{}, nil))
	h.publish(t, start, "x")
	var js []map[string]any
	waitFor(t, func() bool {
		js = h.jobs(t, "x")
		return len(js) == 1 && js[0]["state"] == "awaiting_retry"
	})
	j := js[0]
	next, _ := time.Parse(time.RFC3339, j["next_retry_at"].(string))
	if j["destination_id"] != "hook" || j["attempts"] != float64(1) || j["last_status_code"] != float64(503) ||
		j["last_reason"] != "http_503" || !strings.Contains(j["last_error"].(string), "503") ||
		next.Before(start.Add(30*time.Second)) || next.After(start.Add(time.Minute)) {
		t.Errorf("job state %v", j)
	}
}

// TestBreakerHoldsTheBacklogInTheLog opens the breaker of a destination
// that answers 503 to everything, checks that it then gets only probes
// while events keep arriving, and that once it recovers every event is
// delivered once.
func TestBreakerHoldsTheBacklogInTheLog(t *testing.T) {
	start := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	clock := newFakeClock(start)
	var mu sync.Mutex
	down := true
	requests := 0
	got := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev struct{ MessageID string }
		body, _ := io.ReadAll(r.Body)
		json.Unmarshal(body, &ev)
		mu.Lock()
		defer mu.Unlock()
		requests++
		if down {
			w.WriteHeader(503)
			return
		}
		got[ev.MessageID]++
	}))
	defer srv.Close()
	h := startEngine(t, clock, deliver.Options{
		Backoff: deliver.Backoff{Min: time.Hour, Max: time.Hour}, MaxRetryAge: 4 * time.Hour,
		BreakerThreshold: 3, BreakerMinOpen: 10 * time.Second, BreakerMaxOpen: time.Minute,
	}, hook(srv.URL, config.DeliveryOptions{Concurrency: 2}, nil))
	var ids []string
	for i := range 200 {
		ids = append(ids, fmt.Sprintf("e-%03d", i))
	}
	h.publish(t, start, ids[:100]...)
	waitFor(t, func() bool { return h.get(t, "/api/v1/destinations/hook/delivery")["breaker"] == "open" })
	time.Sleep(100 * time.Millisecond)
	mu.Lock()
	opened := requests
	mu.Unlock()
	if opened > 3+2 { // the threshold, plus what was in flight
		t.Errorf("%d requests before the breaker opened, want about 3", opened)
	}
	h.publish(t, start, ids[100:]...)
	// Ten simulated minutes while down: only probes, at growing gaps.
	for range 600 {
		clock.Advance(time.Second)
		time.Sleep(time.Millisecond)
	}
	mu.Lock()
	probes := requests - opened
	mu.Unlock()
	if probes < 3 || probes > 20 {
		t.Errorf("%d requests in ten minutes with the breaker open, want a probe every 10s–1m", probes)
	}
	st := h.get(t, "/api/v1/destinations/hook/delivery")
	if st["awaiting_retry"].(float64) > float64(opened+probes) {
		t.Errorf("the open breaker moved the backlog into the retry store: %v", st)
	}
	mu.Lock()
	down = false
	mu.Unlock()
	// Recovered: the next probe closes the breaker; the log backlog goes
	// at once, the few retry jobs when their hour comes.
	for range 200 {
		clock.Advance(time.Second)
		time.Sleep(time.Millisecond)
	}
	clock.Advance(time.Hour)
	waitFor(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == len(ids)
	})
	mu.Lock()
	defer mu.Unlock()
	for _, id := range ids {
		if got[id] != 1 {
			t.Errorf("%s delivered %d times", id, got[id])
		}
	}
}

// TestRateLimit checks that a destination's requests per second hold.
func TestRateLimit(t *testing.T) {
	var mu sync.Mutex
	var times []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		times = append(times, time.Now())
		mu.Unlock()
	}))
	defer srv.Close()
	h := startEngine(t, nil, deliver.Options{Clock: deliver.RealClock{}},
		hook(srv.URL, config.DeliveryOptions{Concurrency: 8, RateLimit: 50}, nil))
	ids := make([]string, 100)
	for i := range ids {
		ids[i] = fmt.Sprintf("r-%d", i)
	}
	h.publish(t, time.Now(), ids...)
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(times) == len(ids) })
	mu.Lock()
	defer mu.Unlock()
	// A burst of 50, then 50 per second: the 100th no sooner than ~1s.
	if span := times[len(times)-1].Sub(times[0]); span < 900*time.Millisecond {
		t.Errorf("100 requests at 50/s took %v", span)
	}
}

// TestIntegrationsAndFilters checks routing: the integrations object, the
// destination's filters, and its sources.
func TestIntegrationsAndFilters(t *testing.T) {
	clock := newFakeClock(time.Now())
	ep := newEndpoint(t, clock, nil)
	d := hook(ep.srv.URL, config.DeliveryOptions{}, nil)
	d.Name = "My Hook"
	h := startEngine(t, clock, deliver.Options{}, d)
	var data []byte
	// receivedAt is now: an older one expires past the 4 h retry age.
	at := clock.Now().UTC().Format(time.RFC3339)
	for _, e := range []struct{ src, id, extra string }{
		{"web", "plain", ``},
		{"web", "all-off", `,"integrations":{"All":false}`},
		{"web", "all-off-named", `,"integrations":{"All":false,"Webhooks":true}`},
		{"web", "named-off", `,"integrations":{"Webhooks":false}`},
		{"web", "by-name", `,"integrations":{"All":false,"My Hook":{"opt":1}}`},
		{"web", "by-id-off", `,"integrations":{"hook":false}`},
		{"other", "other-source", ``},
	} {
		data = event.AppendRecord(data, e.src, fmt.Appendf(nil,
			`{"type":"track","event":"E","messageId":%q,"userId":"u","context":{},"timestamp":%q,"receivedAt":%q%s}`, e.id, at, at, e.extra))
	}
	if _, err := h.log.JetStream().Publish(context.Background(), stream.ProcessedSubject, data); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		ep.mu.Lock()
		defer ep.mu.Unlock()
		return len(ep.delivered) == 3
	})
	time.Sleep(50 * time.Millisecond)
	ep.mu.Lock()
	defer ep.mu.Unlock()
	if got := keys(ep.delivered); strings.Join(got, ",") != "all-off-named,by-name,plain" {
		t.Errorf("delivered %v, want all-off-named, by-name, plain", got)
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 15s")
		}
	}
}

// TestRedirectIsNotFollowed checks that a 301 is the destination's answer
// (discarded with its Location), not a GET without the body.
func TestRedirectIsNotFollowed(t *testing.T) {
	clock := newFakeClock(time.Now())
	var gets atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "POST" {
			gets.Add(1)
			return
		}
		http.Redirect(w, r, "https://elsewhere.example/hook", http.StatusMovedPermanently)
	}))
	defer srv.Close()
	h := startEngine(t, clock, deliver.Options{}, hook(srv.URL, config.DeliveryOptions{}, nil))
	h.publish(t, clock.Now(), "moved")
	var js []map[string]any
	waitFor(t, func() bool { js = h.jobs(t, "moved"); return len(js) == 1 })
	if js[0]["state"] != "discarded" || js[0]["last_status_code"] != float64(301) || gets.Load() != 0 {
		t.Errorf("a 301: job %v, %d GETs followed", js[0], gets.Load())
	}
	d := h.get(t, "/api/v1/dead-letters?message_id=moved")["dead_letters"].([]any)[0].(map[string]any)
	if !strings.Contains(d["response"].(string), "Location: https://elsewhere.example/hook") {
		t.Errorf("the dead letter's response %q lacks the Location", d["response"])
	}
}

// TestReplayOfExpiredEvents checks that a replay gives expired events a
// new retry age: they are sent, not expired again at once.
func TestReplayOfExpiredEvents(t *testing.T) {
	start := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	clock := newFakeClock(start)
	ep := newEndpoint(t, clock, map[string]script{"old": {"500", "200"}})
	h := startEngine(t, clock, deliver.Options{Backoff: deliver.Backoff{Min: time.Hour, Max: time.Hour}, MaxRetryAge: 30 * time.Minute},
		hook(ep.srv.URL, config.DeliveryOptions{}, nil))
	h.publish(t, start, "old")
	waitFor(t, func() bool { js := h.jobs(t, "old"); return len(js) == 1 && js[0]["state"] == "expired" })
	clock.Advance(24 * time.Hour)
	rec := httptest.NewRecorder()
	h.mux.ServeHTTP(rec, httptest.NewRequest("POST", "/api/v1/dead-letters/replay", strings.NewReader(`{"reason":"expired"}`)))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"moved":1`) {
		t.Fatalf("replay: %d %s", rec.Code, rec.Body)
	}
	waitFor(t, func() bool { return len(ep.times("old")) == 2 })
	waitFor(t, func() bool { return len(h.jobs(t, "old")) == 0 })
}

// panicking is a destination type whose Send panics.
var panicking = &deliver.Type{Name: "panics", MaxBatch: 1,
	New: func(context.Context, deliver.Config) (deliver.Destination, error) { return panicDest{}, nil }}

type panicDest struct{}

func (panicDest) Send(context.Context, []*deliver.Event) []deliver.Result { panic("mapping bug") }
func (panicDest) Close() error                                            { return nil }

// TestPanickingDestination checks that a destination's panic becomes a
// retry of its events, and that another destination is not affected.
func TestPanickingDestination(t *testing.T) {
	clock := newFakeClock(time.Now())
	ep := newEndpoint(t, clock, nil)
	good := hook(ep.srv.URL, config.DeliveryOptions{}, nil)
	bad := config.Destination{ID: "bad", Type: "panics", Enabled: true, Sources: []string{"web"}}
	h := startEngine(t, clock, deliver.Options{Registry: deliver.NewRegistry(webhook.Type, panicking)}, good, bad)
	h.publish(t, clock.Now(), "p1", "p2")
	waitFor(t, func() bool { ep.mu.Lock(); defer ep.mu.Unlock(); return len(ep.delivered) == 2 })
	var js []map[string]any
	waitFor(t, func() bool { js = h.jobs(t, "p1"); return len(js) == 1 })
	if js[0]["destination_id"] != "bad" || js[0]["state"] != "awaiting_retry" || js[0]["last_reason"] != "destination_error" {
		t.Errorf("the panicking destination's job: %v", js[0])
	}
}
