// Package browser_test checks the dashboard (package web) in a real
// headless chromium, driven through the Chrome DevTools Protocol, against
// a real server that has delivered a known mix of events.
//
// It needs Debian's chromium on PATH (test/browser/install.sh installs it;
// CONFLUX_CHROMIUM names another binary). Without it the tests skip, or
// fail under CONFLUX_REQUIRE_SERVICES=1. Screenshots are written under
// $CONFLUX_TEST_ARTIFACTS/browser when it is set, else in a temporary
// directory, and their paths logged.
package browser_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/confluxcdp/conflux/internal/server"
	"github.com/confluxcdp/conflux/internal/server/servertest"
	"github.com/confluxcdp/conflux/internal/testenv"
	"github.com/confluxcdp/conflux/web"
)

const writeKey = "webWriteKey000000000000000000001"

// xss is a property value that would become an element if the page ever
// put API data into HTML.
const xss = `<img src=x onerror="window.__xss=1">`

// hook is the webhook receiver: it rejects bad-* with a 400 until
// accept is set, fails flaky's first attempt with a 503, and takes the
// rest.
type hook struct {
	mu     sync.Mutex
	accept bool
	tries  map[string]int
	got    map[string]bool
}

func (h *hook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var ev struct {
		MessageID string `json:"messageId"`
	}
	body, _ := io.ReadAll(r.Body)
	_ = json.Unmarshal(body, &ev)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.tries[ev.MessageID]++
	w.Header().Set("Content-Type", "application/json")
	switch {
	case strings.HasPrefix(ev.MessageID, "bad-") && !h.accept:
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":"invalid email address"}`)
	case ev.MessageID == "flaky" && h.tries[ev.MessageID] == 1:
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"error":"try later"}`)
	default:
		h.got[ev.MessageID] = true
		io.WriteString(w, `{"ok":true}`)
	}
}

// cardView is what the page shows for one destination, read by readCard.
type cardView struct {
	Granularity   string   `json:"granularity"`
	SuccessRate   string   `json:"success_rate"`
	Successes     string   `json:"successes"`
	Discarded     string   `json:"discarded"`
	Retried       string   `json:"retried"`
	Expired       string   `json:"expired"`
	P50           string   `json:"p50"`
	P95           string   `json:"p95"`
	P99           string   `json:"p99"`
	Discards      []string `json:"discards"`
	Retries       []string `json:"retries"`
	Breaker       string   `json:"breaker"`
	DeadLetters   string   `json:"dead_letters"`
	AwaitingRetry string   `json:"awaiting_retry"`
	Position      string   `json:"position"`
	Marks         int      `json:"marks"` // polylines and dots drawn in its charts
}

const readCard = `(() => {
  const card = document.querySelector('[data-destination="hook"]');
  if (!card) return null;
  const text = (sel) => { const e = card.querySelector(sel); return e ? e.textContent.trim() : ""; };
  const all = (sel) => [...card.querySelectorAll(sel)].map((e) => e.textContent.trim());
  const v = { granularity: card.dataset.granularity };
  for (const k of ["success_rate", "successes", "discarded", "retried", "expired", "p50", "p95", "p99"])
    v[k] = text('[data-metric="' + k + '"] .value');
  v.discards = all('[data-breakdown="discarded"] [data-reason]');
  v.retries = all('[data-breakdown="retried"] [data-reason]');
  for (const k of ["breaker", "dead_letters", "awaiting_retry", "position"])
    v[k] = text('[data-queue-item="' + k + '"] dd');
  v.marks = card.querySelectorAll("svg polyline, svg circle").length;
  return v;
})()`

// deadView is one dead letter of the drill-down.
type deadView struct {
	Reason      string `json:"reason"`
	Status      string `json:"status_code"`
	ErrorReason string `json:"error_reason"`
	Event       string `json:"event"`
	Request     string `json:"request"`
	Response    string `json:"response"`
}

const readDeadLetters = `[...document.querySelectorAll("#dead-letters [data-dead-letter]")].map((d) => {
  const v = {};
  for (const k of ["reason", "status_code", "error_reason", "event", "request", "response"]) {
    const e = d.querySelector('[data-field="' + k + '"]');
    v[k] = e ? e.textContent : "";
  }
  return v;
})`

func TestDashboard(t *testing.T) {
	chromium := findChromium(t)
	began := time.Now()

	h := &hook{tries: map[string]int{}, got: map[string]bool{}}
	receiver := httptest.NewServer(h)
	t.Cleanup(receiver.Close)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "conflux.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, `
sources:
  - id: web
    name: Website
    write_key: %s
destinations:
  - id: hook
    name: Order webhook
    type: webhook
    sources: [web]
    settings: {url: %q, headers: {Authorization: "Bearer hook-credential"}}
`, writeKey, receiver.URL+"/events"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := servertest.Start(t, server.Options{DataDir: filepath.Join(dir, "data"), ConfigPath: cfg, MetricsFlushEvery: 100 * time.Millisecond})
	base := dashboardURL(t, s)
	waitFor(t, "the queue of hook to run", 10*time.Second, func() (bool, string) {
		st, out := apiGet(t, s, "/api/v1/destinations/hook/delivery")
		return st == 200 && out["running"] == true, fmt.Sprint(st, out)
	})

	// The mix: five delivered, two rejected with a 400 (one carrying
	// markup), one delivered on its second attempt.
	events := []string{
		`{"messageId":"ok-1","userId":"u1","event":"Signed Up"}`,
		`{"messageId":"ok-2","userId":"u2","event":"Signed Up"}`,
		`{"messageId":"ok-3","userId":"u3","event":"Order Completed"}`,
		`{"messageId":"ok-4","userId":"u4","event":"Order Completed"}`,
		`{"messageId":"ok-5","userId":"u5","event":"Order Completed"}`,
		`{"messageId":"bad-1","userId":"u6","event":"Order Completed","properties":{"email":"not-an-email"}}`,
		fmt.Sprintf(`{"messageId":"bad-2","userId":"u7","event":"Signed Up","properties":{"name":%q}}`, xss),
		`{"messageId":"flaky","userId":"u8","event":"Signed Up"}`,
	}
	for _, ev := range events {
		track(t, s, ev)
	}
	// flaky's retry comes 2.5–5 s later (the default backoff).
	want := map[string]float64{"successes": 6, "discarded": 2, "retried": 1, "expired": 0}
	var api map[string]any
	waitFor(t, "the delivery-metrics API to count the mix", 20*time.Second, func() (bool, string) {
		_, api = apiGet(t, s, "/api/v1/delivery-metrics?destination=hook")
		got := map[string]float64{}
		ms, _ := api["metrics"].([]any)
		for _, m := range ms {
			m := m.(map[string]any)
			got[m["metric_name"].(string)] = m["total"].(float64)
		}
		return fmt.Sprint(got) == fmt.Sprint(want), fmt.Sprint(got)
	})
	t.Logf("mix delivered and counted after %s", time.Since(began).Round(time.Millisecond))

	ctx := newTab(t, chromium)
	messages := collectConsole(t, ctx)

	// A wrong token in the fragment: the API's 401 is shown, and the
	// fragment leaves the address bar.
	do(t, ctx, chromedp.Navigate(base+"/#token=wrong-token"), chromedp.WaitVisible(chromedp.CSS("#login-error")))
	if msg := eval[string](t, ctx, `document.getElementById("login-error").textContent`); msg != "401 unauthorized: invalid admin token" {
		t.Errorf("login error %q, want the API's 401 and its message", msg)
	}
	if hash := eval[string](t, ctx, `location.hash`); hash != "" {
		t.Errorf("the token stays in the address bar: %q", hash)
	}
	// Signing in with the right one shows the dashboard.
	do(t, ctx, chromedp.SendKeys(chromedp.CSS("#token"), s.AdminToken), chromedp.Click(chromedp.CSS(`#login button[type="submit"]`)))
	wantCard := cardView{
		Granularity: "MINUTE", SuccessRate: "75.0%", Successes: "6", Discarded: "2", Retried: "1", Expired: "0",
		Discards: []string{"http_400 2"}, Retries: []string{"attempt.1 1"},
		Breaker: "closed", DeadLetters: "2", AwaitingRetry: "0",
	}
	card := waitCard(t, ctx, wantCard)
	checkLatency(t, card, api)
	if !strings.HasSuffix(card.Position, "caught up") {
		t.Errorf("queue position %q, want caught up", card.Position)
	}
	if card.Marks == 0 {
		t.Error("the charts draw nothing")
	}
	// The token is kept in the tab: a reload needs no sign-in.
	do(t, ctx, chromedp.Reload())
	waitCard(t, ctx, wantCard)

	// The same figures at hour and day granularity (the latency too: the
	// histograms of every granularity hold the same deliveries).
	for _, r := range []struct{ button, granularity string }{{"day", "HOUR"}, {"month", "DAY"}, {"hour", "MINUTE"}} {
		do(t, ctx, chromedp.Click(chromedp.CSS(`[data-range="`+r.button+`"]`)))
		want := wantCard
		want.Granularity = r.granularity
		checkLatency(t, waitCard(t, ctx, want), api)
	}
	screenshot(t, ctx, "dashboard.png")

	// Drill down: the two rejected events with what was sent and answered.
	do(t, ctx, chromedp.Click(chromedp.CSS(`[data-destination="hook"] .dest-name`)))
	dead := map[string]deadView{} // by messageId: delivery runs concurrently, so either may fail first
	for _, d := range waitDeadLetters(t, ctx, 2) {
		var ev struct {
			MessageID string `json:"messageId"`
		}
		if err := json.Unmarshal([]byte(d.Event), &ev); err != nil {
			t.Errorf("dead letter: event %q is not JSON: %v", d.Event, err)
		}
		dead[ev.MessageID] = d
	}
	for _, id := range []string{"bad-1", "bad-2"} {
		d, ok := dead[id]
		if !ok {
			t.Errorf("no dead letter shows %s's event", id)
			continue
		}
		if d.Reason != "discarded" || d.Status != "HTTP 400" || d.ErrorReason != "http_400" {
			t.Errorf("dead letter %s: reason %q, status %q, error reason %q", id, d.Reason, d.Status, d.ErrorReason)
		}
		if !strings.HasPrefix(d.Request, "POST "+receiver.URL+"/events\n") || !strings.Contains(d.Request, "Idempotency-Key: "+id) ||
			!strings.Contains(d.Request, "Authorization: xxxxx") {
			t.Errorf("dead letter %s: request\n%s", id, d.Request)
		}
		if !strings.HasPrefix(d.Response, "400 Bad Request\n") || !strings.HasSuffix(d.Response, `{"error":"invalid email address"}`) {
			t.Errorf("dead letter %s: response\n%s", id, d.Response)
		}
	}
	if !strings.Contains(dead["bad-2"].Event, `"name": "`+strings.ReplaceAll(xss, `"`, `\"`)+`"`) {
		t.Errorf("bad-2's markup is not shown as text: %s", dead["bad-2"].Event)
	}
	if n := eval[int](t, ctx, `document.querySelectorAll("img").length + (window.__xss ? 1000 : 0)`); n != 0 {
		t.Errorf("API data became HTML: %d img elements, or their script ran", n)
	}
	if eval[bool](t, ctx, `document.body.textContent.includes("hook-credential")`) {
		t.Error("the page shows the destination's credential")
	}
	screenshot(t, ctx, "errors.png")

	// Fixed at the receiver, replayed from the page.
	h.mu.Lock()
	h.accept = true
	h.mu.Unlock()
	do(t, ctx, chromedp.Click(chromedp.CSS("#replay")), chromedp.WaitVisible(chromedp.CSS("#replay-confirm")),
		chromedp.Click(chromedp.CSS("#replay-go")))
	progress := regexp.MustCompile(`^replay \S+: 2 moved · 2 delivered · 0 failed again · 0 pending$`)
	waitFor(t, "the replay's progress to show both delivered", 10*time.Second, func() (bool, string) {
		text := eval[string](t, ctx, `document.getElementById("replay-text").textContent`)
		return progress.MatchString(text), text
	})
	waitFor(t, "the drill-down to empty", 5*time.Second, func() (bool, string) {
		text := eval[string](t, ctx, `document.getElementById("drill-summary").textContent`)
		return strings.HasPrefix(text, "No dead letters"), text
	})
	h.mu.Lock()
	if !h.got["bad-1"] || !h.got["bad-2"] {
		t.Errorf("the receiver did not get the replayed events: %v", h.got)
	}
	h.mu.Unlock()
	// The replayed deliveries count as successes.
	wantCard.Successes, wantCard.SuccessRate, wantCard.DeadLetters = "8", "80.0%", "0"
	waitFor(t, "the card to count the replay", 10*time.Second, func() (bool, string) {
		do(t, ctx, chromedp.Click(chromedp.CSS("#refresh")))
		time.Sleep(200 * time.Millisecond)
		c := eval[*cardView](t, ctx, readCard)
		return c != nil && c.Successes == wantCard.Successes && c.SuccessRate == wantCard.SuccessRate && c.DeadLetters == "0", fmt.Sprintf("%+v", c)
	})

	for _, m := range messages() {
		if m.IsException() || m.Source == "security" || strings.Contains(m.Text, "Content Security Policy") {
			t.Errorf("page console: %s (%s:%d)", m, m.URL, m.Line+1)
		}
	}
	t.Logf("dashboard checked in %s", time.Since(began).Round(time.Millisecond))
}

// findChromium returns the browser to drive, or skips (fails under
// CONFLUX_REQUIRE_SERVICES=1) when there is none.
func findChromium(t *testing.T) string {
	if p := os.Getenv("CONFLUX_CHROMIUM"); p != "" {
		return p
	}
	p, err := exec.LookPath("chromium")
	if err != nil {
		testenv.Unavailable(t, "chromium is not on PATH: run test/browser/install.sh (as root: apt-get install chromium), or set CONFLUX_CHROMIUM to a Chrome or Chromium binary")
	}
	return p
}

// dashboardURL is where the browser loads the page: the server itself
// once it mounts the dashboard, else a server of the test's own that
// serves web.Register and passes /api/ to the real server.
func dashboardURL(t *testing.T, s *servertest.Server) string {
	resp, err := http.Get(s.URL + "/ui/app.js")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == 200 {
		t.Log("the server mounts the dashboard: testing it there")
		return s.URL
	}
	target, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	web.Register(mux)
	mux.Handle("/api/", httputil.NewSingleHostReverseProxy(target))
	front := httptest.NewServer(mux)
	t.Cleanup(front.Close)
	t.Log("the server does not mount the dashboard yet: serving it from the test, with /api/ passed to the server")
	return front.URL
}

// newTab starts chromium and returns the context of one tab, all of it
// ended when the test ends.
func newTab(t *testing.T, chromium string) context.Context {
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.WindowSize(1280, 900))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// The first run starts the browser, which then lives as long as ctx.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", chromium, err)
	}
	return ctx
}

// collectConsole gathers what the page writes to its console until the
// test ends; the returned func gives what has come so far.
func collectConsole(t *testing.T, ctx context.Context) func() []chromedp.ConsoleMessage {
	var mu sync.Mutex
	var got []chromedp.ConsoleMessage
	ctx, cancel := context.WithCancel(ctx)
	messages := chromedp.Console(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			mu.Lock()
			got = append(got, m)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return func() []chromedp.ConsoleMessage {
		mu.Lock()
		defer mu.Unlock()
		return append([]chromedp.ConsoleMessage(nil), got...)
	}
}

// do runs browser steps, each call bounded by 15 s.
func do(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("browser: %v", err)
	}
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluating %.60q: %v", expr, err)
	}
	return v
}

// waitCard waits until the hook card shows want's counts and queue
// figures (its latency and position are checked by the caller).
func waitCard(t *testing.T, ctx context.Context, want cardView) cardView {
	t.Helper()
	var got cardView
	waitFor(t, "the card ("+want.Granularity+") to show the mix", 10*time.Second, func() (bool, string) {
		c := eval[*cardView](t, ctx, readCard)
		if c == nil {
			return false, "no card"
		}
		got = *c
		cmp := got
		cmp.P50, cmp.P95, cmp.P99, cmp.Position, cmp.Marks = "", "", "", "", 0
		return fmt.Sprint(cmp) == fmt.Sprint(want), fmt.Sprintf("%+v", got)
	})
	return got
}

// checkLatency compares the latency the card shows with the API's.
func checkLatency(t *testing.T, card cardView, api map[string]any) {
	t.Helper()
	shown := regexp.MustCompile(`^(\d+(?:\.\d+)?) (ms|s)$`)
	for _, p := range []struct{ name, text string }{{"p50", card.P50}, {"p95", card.P95}, {"p99", card.P99}} {
		want, _ := api[p.name+"_ms"].(float64)
		m := shown.FindStringSubmatch(p.text)
		if m == nil || want <= 0 {
			t.Errorf("%s latency shown %q, API %v ms", p.name, p.text, api[p.name+"_ms"])
			continue
		}
		v, _ := strconv.ParseFloat(m[1], 64)
		if m[2] == "s" {
			v *= 1000
		}
		if math.Abs(v-want) > math.Max(0.06, want*0.01) {
			t.Errorf("%s latency shown %q, API %v ms", p.name, p.text, want)
		}
	}
}

func waitDeadLetters(t *testing.T, ctx context.Context, n int) []deadView {
	t.Helper()
	var got []deadView
	waitFor(t, "the drill-down to list the dead letters", 10*time.Second, func() (bool, string) {
		got = eval[[]deadView](t, ctx, readDeadLetters)
		return len(got) == n, fmt.Sprintf("%d dead letters", len(got))
	})
	return got
}

// screenshot saves the whole page as a PNG test artifact.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("CONFLUX_TEST_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	} else {
		dir = filepath.Join(dir, "browser")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

func track(t *testing.T, s *servertest.Server, body string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.URL+"/v1/track", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(writeKey, "")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("track %s: %d", body, resp.StatusCode)
	}
}

func apiGet(t *testing.T, s *servertest.Server, path string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, out
}

// waitFor polls cond every 100 ms until it holds, and fails the test with
// cond's last description after timeout.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: still %s after %s", what, last, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
