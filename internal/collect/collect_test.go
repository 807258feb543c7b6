package collect_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/collect"
	"github.com/confluxcdp/conflux/internal/config"
	"github.com/confluxcdp/conflux/internal/event"
	"github.com/confluxcdp/conflux/internal/stream"
	"github.com/confluxcdp/conflux/internal/stream/streamtest"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/nats-io/nats.go.(*Conn).flusher"))
}

const (
	key        = "wk-web-1234567890"
	retiredKey = "wk-old"
	expiredKey = "wk-expired"
)

var now = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

// fixture is a Tracking API over a real embedded log.
type fixture struct {
	url  string
	log  *stream.Log
	reg  *prometheus.Registry
	gate *fakeGate
	ws   *config.Workspace
}

type fakeGate struct {
	mu  sync.Mutex
	err error
}

func (g *fakeGate) Writable() error { g.mu.Lock(); defer g.mu.Unlock(); return g.err }

func newFixture(t *testing.T, settings config.Settings) *fixture {
	t.Helper()
	l := streamtest.New(t)
	app := stream.NewAppender(l.JetStream(), stream.AppenderOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = app.Run(ctx) })
	ws := config.NewWorkspace(1, settings, []config.Source{
		{ID: "web", Name: "Web", WriteKey: key, RetiredKeys: []config.RetiredKey{
			{WriteKey: retiredKey, ExpiresAt: now.Add(time.Hour)},
			{WriteKey: expiredKey, ExpiresAt: now.Add(-time.Second)},
		}},
	}, nil)
	f := &fixture{log: l, reg: prometheus.NewRegistry(), gate: &fakeGate{}, ws: ws}
	api := collect.New(collect.Options{Registerer: f.reg, Now: func() time.Time { return now }, RetryAfter: 7 * time.Second},
		func() *config.Workspace { return ws }, app, f.gate)
	mux := http.NewServeMux()
	api.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() { srv.Close(); cancel(); wg.Wait() })
	f.url = srv.URL
	return f
}

type req struct {
	method, path, body string
	header             map[string]string
	basic              *string // write key as Basic user, with colon
}

func (f *fixture) do(t *testing.T, r req) (int, http.Header, map[string]any) {
	t.Helper()
	if r.method == "" {
		r.method = http.MethodPost
	}
	hr, err := http.NewRequest(r.method, f.url+r.path, strings.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range r.header {
		hr.Header.Set(k, v)
	}
	if r.basic != nil {
		hr.SetBasicAuth(*r.basic, "")
	}
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var body map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &body); err != nil {
			t.Fatalf("%s %s: response is not JSON: %q", r.method, r.path, raw)
		}
	}
	return resp.StatusCode, resp.Header, body
}

// records returns what the log holds, decoded.
func (f *fixture) records(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, r := range streamtest.Records(t, f.log) {
		if r.SourceID != "web" {
			t.Errorf("record source %q", r.SourceID)
		}
		var e map[string]any
		if err := json.Unmarshal(r.JSON, &e); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

func errCode(body map[string]any) string {
	e, _ := body["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func ptr(s string) *string { return &s }

func basicNoColon(k string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(k)) }

func TestEndpointsAndAuth(t *testing.T) {
	f := newFixture(t, config.Settings{})
	track := `{"userId":"u","event":"E"}`
	tests := []struct {
		name     string
		r        req
		status   int
		code     string
		wantType string // type of the record written, "" for none
	}{
		{"track basic with colon", req{path: "/v1/track", body: track, basic: ptr(key)}, 200, "", "track"},
		{"t basic without colon", req{path: "/v1/t", body: track, header: map[string]string{"Authorization": basicNoColon(key)}}, 200, "", "track"},
		{"identify body write key", req{path: "/v1/identify", body: `{"userId":"u","writeKey":"` + key + `"}`}, 200, "", "identify"},
		{"i text/plain like analytics-next", req{path: "/v1/i", body: `{"userId":"u","writeKey":"` + key + `"}`, header: map[string]string{"Content-Type": "text/plain"}}, 200, "", "identify"},
		{"page bearer plus body key", req{path: "/v1/page", body: `{"anonymousId":"a","writeKey":"` + key + `"}`, header: map[string]string{"Authorization": "Bearer some-oauth-token"}}, 200, "", "page"},
		{"p", req{path: "/v1/p", body: `{"anonymousId":"a"}`, basic: ptr(key)}, 200, "", "page"},
		{"screen", req{path: "/v1/screen", body: `{"anonymousId":"a","name":"Home"}`, basic: ptr(key)}, 200, "", "screen"},
		{"s", req{path: "/v1/s", body: `{"anonymousId":"a"}`, basic: ptr(key)}, 200, "", "screen"},
		{"group", req{path: "/v1/group", body: `{"userId":"u","groupId":"g"}`, basic: ptr(key)}, 200, "", "group"},
		{"g", req{path: "/v1/g", body: `{"userId":"u","groupId":"g"}`, basic: ptr(key)}, 200, "", "group"},
		{"alias", req{path: "/v1/alias", body: `{"userId":"u","previousId":"p"}`, basic: ptr(key)}, 200, "", "alias"},
		{"a", req{path: "/v1/a", body: `{"userId":"u","previousId":"p"}`, basic: ptr(key)}, 200, "", "alias"},
		{"batch", req{path: "/v1/batch", body: `{"batch":[{"type":"track","userId":"u","event":"B"}]}`, basic: ptr(key)}, 200, "", "track"},
		{"b", req{path: "/v1/b", body: `{"writeKey":"` + key + `","batch":[{"type":"screen","anonymousId":"a"}]}`}, 200, "", "screen"},
		{"import", req{path: "/v1/import", body: `{"batch":[{"type":"group","userId":"u","groupId":"g"}]}`, basic: ptr(key)}, 200, "", "group"},
		{"retired key in grace", req{path: "/v1/track", body: track, basic: ptr(retiredKey)}, 200, "", "track"},
		{"expired key", req{path: "/v1/track", body: track, basic: ptr(expiredKey)}, 401, "unauthorized", ""},
		{"unknown key", req{path: "/v1/track", body: track, basic: ptr("nope")}, 401, "unauthorized", ""},
		{"no key", req{path: "/v1/track", body: track}, 401, "unauthorized", ""},
		{"bearer without body key", req{path: "/v1/track", body: track, header: map[string]string{"Authorization": "Bearer x"}}, 401, "unauthorized", ""},
		{"basic not base64", req{path: "/v1/track", body: track, header: map[string]string{"Authorization": "Basic %%%"}}, 401, "unauthorized", ""},
		{"unknown endpoint", req{path: "/v1/launch", body: track, basic: ptr(key)}, 404, "not_found", ""},
		{"telemetry accepted", req{path: "/v1/m", body: `{"series":[{"type":"Counter","metric":"x","value":1}]}`, header: map[string]string{"Content-Type": "text/plain"}}, 200, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(f.records(t))
			status, _, body := f.do(t, tt.r)
			if status != tt.status {
				t.Fatalf("status %d, want %d (%v)", status, tt.status, body)
			}
			if tt.code != "" && errCode(body) != tt.code {
				t.Errorf("error code %q, want %q (%v)", errCode(body), tt.code, body)
			}
			if tt.status == 200 && body["success"] != true {
				t.Errorf("body %v, want success true", body)
			}
			recs := f.records(t)
			if tt.wantType == "" {
				if len(recs) != before {
					t.Errorf("log grew by %d records, want 0", len(recs)-before)
				}
				return
			}
			if len(recs) != before+1 {
				t.Fatalf("log grew by %d records, want 1", len(recs)-before)
			}
			last := recs[len(recs)-1]
			if last["type"] != tt.wantType {
				t.Errorf("type %v, want %s", last["type"], tt.wantType)
			}
			if _, ok := last["writeKey"]; ok {
				t.Error("writeKey kept in the stored event")
			}
		})
	}
}

func TestBadInput(t *testing.T) {
	f := newFixture(t, config.Settings{})
	big := `{"userId":"u","event":"E","properties":{"s":"` + strings.Repeat("x", 33<<10) + `"}}`
	bigBatch := `{"batch":[` + strings.TrimSuffix(strings.Repeat(`{"type":"track","userId":"u","event":"`+strings.Repeat("x", 1000)+`"},`, 520), ",") + `]}`
	manyEvents := `{"batch":[` + strings.TrimSuffix(strings.Repeat(`{"type":"track","userId":"u","event":"E"},`, 2501), ",") + `]}`
	tests := []struct {
		name   string
		r      req
		status int
		code   string
	}{
		{"invalid json", req{path: "/v1/track", body: `{"userId":"u",`}, 400, event.CodeInvalidJSON},
		{"empty body", req{path: "/v1/track", body: ``}, 400, event.CodeInvalidJSON},
		{"array body", req{path: "/v1/batch", body: `[1]`}, 400, event.CodeInvalidBody},
		{"single event over 32 KiB", req{path: "/v1/track", body: big}, 400, event.CodeTooLarge},
		{"batch over 500 KiB", req{path: "/v1/batch", body: bigBatch}, 400, event.CodeTooLarge},
		{"batch over 2500 events", req{path: "/v1/batch", body: manyEvents}, 400, event.CodeTooManyEvents},
		{"single missing ids", req{path: "/v1/track", body: `{"event":"E"}`}, 400, event.ReasonNoUserAnonID},
		{"single track without event", req{path: "/v1/track", body: `{"userId":"u"}`}, 400, event.ReasonMissingEvent},
		{"unsupported encoding", req{path: "/v1/track", body: `{}`, header: map[string]string{"Content-Encoding": "br"}}, 415, "unsupported_encoding"},
		{"gzip header, plain body", req{path: "/v1/track", body: `{"userId":"u","event":"E"}`, header: map[string]string{"Content-Encoding": "gzip"}}, 400, event.CodeInvalidBody},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.r.basic = ptr(key)
			status, _, body := f.do(t, tt.r)
			if status != tt.status || errCode(body) != tt.code {
				t.Fatalf("got %d %q, want %d %q (%v)", status, errCode(body), tt.status, tt.code, body)
			}
			e := body["error"].(map[string]any)
			if msg, _ := e["message"].(string); msg == "" {
				t.Error("error without a message")
			}
		})
	}
	if n := len(f.records(t)); n != 0 {
		t.Errorf("bad requests wrote %d records", n)
	}
}

func TestBatchKeepsValidEventsAndCountsRejected(t *testing.T) {
	f := newFixture(t, config.Settings{})
	status, _, body := f.do(t, req{path: "/v1/batch", basic: ptr(key), body: `{"batch":[
		{"type":"track","userId":"u","event":"Kept 1"},
		{"type":"track","userId":"u"},
		{"type":"identify"},
		{"type":"nope","userId":"u"},
		{"type":"track","anonymousId":"a","event":"Kept 2"}]}`})
	if status != 200 || body["success"] != true {
		t.Fatalf("status %d body %v", status, body)
	}
	rejected, _ := body["rejected"].([]any)
	if len(rejected) != 3 {
		t.Fatalf("rejected = %v, want 3 entries", body["rejected"])
	}
	recs := f.records(t)
	if len(recs) != 2 || recs[0]["event"] != "Kept 1" || recs[1]["event"] != "Kept 2" {
		t.Fatalf("log holds %v", recs)
	}
	for reason, want := range map[string]float64{event.ReasonMissingEvent: 1, event.ReasonNoUserAnonID: 1, event.ReasonInvalidType: 1} {
		got := counterValue(t, f.reg, "conflux_ingest_events_rejected_total", map[string]string{"source": "web", "reason": reason})
		if got != want {
			t.Errorf("rejected{reason=%s} = %v, want %v", reason, got, want)
		}
	}
}

// counterValue returns the value of one counter series in a registry.
func counterValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no %s%v", name, labels)
	return 0
}

// postGzip posts body gzip-compressed and returns the status.
func (f *fixture) postGzip(t *testing.T, path string, body ...[]byte) int {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	for _, b := range body {
		zw.Write(b)
	}
	zw.Close()
	hr, _ := http.NewRequest("POST", f.url+path, &buf)
	hr.SetBasicAuth(key, "")
	hr.Header.Set("Content-Encoding", "gzip")
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestGzip(t *testing.T) {
	f := newFixture(t, config.Settings{})
	if st := f.postGzip(t, "/v1/batch", []byte(`{"batch":[{"type":"track","userId":"u","event":"Zipped"}]}`)); st != 200 {
		t.Fatalf("status %d", st)
	}
	if recs := f.records(t); len(recs) != 1 || recs[0]["event"] != "Zipped" {
		t.Fatalf("log holds %v", recs)
	}
}

func TestGzipBombRefused(t *testing.T) {
	f := newFixture(t, config.Settings{})
	st := f.postGzip(t, "/v1/track", []byte(`{"userId":"u","event":"E","properties":{"s":"`), bytes.Repeat([]byte("a"), 10<<20), []byte(`"}}`))
	if st != 400 {
		t.Fatalf("10 MiB inflated body: status %d, want 400", st)
	}
	if n := len(f.records(t)); n != 0 {
		t.Errorf("log holds %d records", n)
	}
}

func TestNormalizationThroughHTTP(t *testing.T) {
	f := newFixture(t, config.Settings{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	status, _, _ := f.do(t, req{path: "/v1/batch", basic: ptr(key),
		header: map[string]string{"X-Forwarded-For": "203.0.113.7, 127.0.0.1"},
		body: `{"batch":[{"type":"track","userId":"u","event":"E","timestamp":"2026-11-22T09:00:00.000Z"}],
		        "sentAt":"2026-11-22T09:00:30.000Z","context":{"library":{"name":"analytics.js"}}}`})
	if status != 200 {
		t.Fatalf("status %d", status)
	}
	e := f.records(t)[0]
	want := map[string]any{
		"receivedAt": "2026-11-22T10:00:00.000Z", "timestamp": "2026-11-22T09:59:30.000Z",
		"originalTimestamp": "2026-11-22T09:00:00.000Z", "sentAt": "2026-11-22T09:00:30.000Z",
	}
	for k, v := range want {
		if e[k] != v {
			t.Errorf("%s = %v, want %v", k, e[k], v)
		}
	}
	ctx := e["context"].(map[string]any)
	if ctx["ip"] != "203.0.113.7" {
		t.Errorf("context.ip = %v, want the client behind the trusted proxy", ctx["ip"])
	}
	if id, _ := e["messageId"].(string); len(id) != 36 {
		t.Errorf("messageId = %v, want a generated UUID", e["messageId"])
	}
}

func TestForwardedForIgnoredFromUntrustedPeer(t *testing.T) {
	f := newFixture(t, config.Settings{})
	f.do(t, req{path: "/v1/track", basic: ptr(key), header: map[string]string{"X-Forwarded-For": "203.0.113.7"}, body: `{"userId":"u","event":"E"}`})
	ctx := f.records(t)[0]["context"].(map[string]any)
	if ctx["ip"] != "127.0.0.1" {
		t.Errorf("context.ip = %v, want the peer 127.0.0.1", ctx["ip"])
	}
}

func TestUnavailableAnswers503AndWritesNothing(t *testing.T) {
	f := newFixture(t, config.Settings{})
	f.gate.mu.Lock()
	f.gate.err = errors.New("data directory has 10 MiB free")
	f.gate.mu.Unlock()
	status, h, body := f.do(t, req{path: "/v1/track", basic: ptr(key), body: `{"userId":"u","event":"E"}`})
	if status != 503 || h.Get("Retry-After") != "7" || errCode(body) != "unavailable" {
		t.Fatalf("got %d Retry-After=%q %v", status, h.Get("Retry-After"), body)
	}
	if n := len(f.records(t)); n != 0 {
		t.Errorf("log holds %d records", n)
	}
}

func TestLogDownAnswers503(t *testing.T) {
	f := newFixture(t, config.Settings{})
	_ = f.log.Close()
	status, h, _ := f.do(t, req{path: "/v1/track", basic: ptr(key), body: `{"userId":"u","event":"E"}`})
	if status != 503 || h.Get("Retry-After") == "" {
		t.Fatalf("status %d Retry-After %q, want 503 with Retry-After", status, h.Get("Retry-After"))
	}
}

func TestCORS(t *testing.T) {
	f := newFixture(t, config.Settings{})
	status, h, _ := f.do(t, req{method: "OPTIONS", path: "/v1/t", header: map[string]string{
		"Origin": "https://shop.example", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type,authorization",
	}})
	if status != 204 || h.Get("Access-Control-Allow-Origin") != "https://shop.example" ||
		!strings.Contains(h.Get("Access-Control-Allow-Headers"), "authorization") || !strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") {
		t.Fatalf("preflight: %d %v", status, h)
	}
	_, h, _ = f.do(t, req{path: "/v1/t", basic: ptr(key), header: map[string]string{"Origin": "https://shop.example"}, body: `{"userId":"u","event":"E"}`})
	if h.Get("Access-Control-Allow-Origin") != "https://shop.example" {
		t.Errorf("POST response lacks CORS: %v", h)
	}
}

func TestSettings(t *testing.T) {
	tests := []struct {
		name      string
		settings  config.Settings
		header    map[string]string
		wantProto string
		wantHost  string // "" = the test server's host
	}{
		{"from request", config.Settings{}, nil, "http", ""},
		{"public url", config.Settings{PublicURL: "https://collect.example.com/cdp"}, nil, "https", "collect.example.com/cdp/v1"},
		{"forwarded from trusted proxy", config.Settings{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}},
			map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "edge.example"}, "https", "edge.example/v1"},
		{"forwarded from untrusted peer ignored", config.Settings{},
			map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "edge.example"}, "http", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.settings)
			status, _, body := f.do(t, req{method: "GET", path: "/v1/projects/" + key + "/settings", header: tt.header})
			if status != 200 {
				t.Fatalf("status %d", status)
			}
			seg := body["integrations"].(map[string]any)["Segment.io"].(map[string]any)
			want := tt.wantHost
			if want == "" {
				want = strings.TrimPrefix(f.url, "http://") + "/v1"
			}
			if seg["apiKey"] != key || seg["apiHost"] != want || seg["protocol"] != tt.wantProto {
				t.Errorf("Segment.io = %v, want apiHost %s protocol %s", seg, want, tt.wantProto)
			}
			if len(body["integrations"].(map[string]any)) != 1 {
				t.Error("settings name integrations besides Segment.io: analytics-next would load device-mode code")
			}
		})
	}
	f := newFixture(t, config.Settings{})
	if status, _, body := f.do(t, req{method: "GET", path: "/v1/projects/unknown/settings"}); status != 404 || errCode(body) != "not_found" {
		t.Errorf("unknown key: %d %v", status, body)
	}
}
