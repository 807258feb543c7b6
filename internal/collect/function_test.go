package collect_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/confluxcdp/conflux/internal/collect"
	"github.com/confluxcdp/conflux/internal/config"
	"github.com/confluxcdp/conflux/internal/function"
	"github.com/confluxcdp/conflux/internal/stream"
	"github.com/confluxcdp/conflux/internal/stream/streamtest"
	"github.com/prometheus/client_golang/prometheus"
)

// TestSourceFunction posts requests to a source function and checks the
// answer and what reached the log: the emitted events, all or nothing.
func TestSourceFunction(t *testing.T) {
	const code = `
async function onRequest(request, settings) {
  const body = request.json();
  switch (body.kind) {
  case "retry": throw new RetryError("the provider is down");
  case "invalid": throw new InvalidEventPayload("no kind we know");
  case "type": null.x; break;
  case "none": return;
  case "bad-emit":
    Segment.track({ userId: "u1", event: "Fine" });
    Segment.track({ event: "No user" });
    return;
  }
  Segment.identify({ userId: body.user, traits: { plan: settings.plan } });
  Segment.track({ userId: body.user, event: "Webhook Received", properties: { path: request.url.pathname, q: request.url.searchParams.get("q") } });
  Segment.set({ collection: "rooms", id: "r1", properties: { n: 1 } });
}`
	l := streamtest.New(t)
	app := stream.NewAppender(l.JetStream(), stream.AppenderOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = app.Run(ctx) })
	ws := config.BuildWorkspace(1, config.Settings{}, config.Contents{
		Sources:   []config.Source{{ID: "hooks", WriteKey: "wk-hooks", Function: "fn"}, {ID: "web", WriteKey: "wk-web"}},
		Functions: []config.Function{{ID: "fn", Kind: function.KindSource, Code: code, Settings: map[string]any{"plan": "pro"}, Version: 1, DeployedVersion: 1}},
	})
	if p := ws.Problems(); len(p) > 0 {
		t.Fatalf("workspace problems: %v", p)
	}
	run := function.NewRunner(function.Options{})
	api := collect.New(collect.Options{Registerer: prometheus.NewRegistry(), Functions: run}, func() *config.Workspace { return ws }, app, nil)
	mux := http.NewServeMux()
	api.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() { srv.Close(); cancel(); wg.Wait(); run.Close() })

	written := 0
	for _, tc := range []struct {
		name, path, body string
		status           int
		code             string
		records          int
	}{
		{"emits an identify and a track", "/v1/functions/hooks?q=1", `{"user":"u1"}`, 200, "", 2},
		{"emits nothing", "/v1/functions/hooks", `{"kind":"none"}`, 200, "", 0},
		{"RetryError", "/v1/functions/hooks", `{"kind":"retry"}`, 503, "function_retry", 0},
		{"InvalidEventPayload", "/v1/functions/hooks", `{"kind":"invalid"}`, 400, "InvalidEventPayload", 0},
		{"a TypeError", "/v1/functions/hooks", `{"kind":"type"}`, 500, "function_error", 0},
		{"a body that is not JSON", "/v1/functions/hooks", `not json`, 500, "function_error", 0},
		{"one invalid message: nothing written", "/v1/functions/hooks", `{"kind":"bad-emit"}`, 400, "invalid_emitted_event", 0},
		{"a source without a function", "/v1/functions/web", `{}`, 404, "not_found", 0},
		{"an unknown source", "/v1/functions/nope", `{}`, 404, "not_found", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.Post(srv.URL+tc.path, "application/json", strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var out struct {
				Error struct{ Code, Message string } `json:"error"`
			}
			_ = json.Unmarshal(raw, &out)
			if resp.StatusCode != tc.status || out.Error.Code != tc.code {
				t.Fatalf("%d %s, want %d %q", resp.StatusCode, raw, tc.status, tc.code)
			}
			if tc.status == 503 && resp.Header.Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
			written += tc.records
			if got := len(streamtest.StreamRecords(t, l, stream.IngestStream)); got != written {
				t.Errorf("the log holds %d records, want %d", got, written)
			}
		})
	}
	recs := streamtest.StreamRecords(t, l, stream.IngestStream)
	if len(recs) != 2 {
		t.Fatalf("records %d", len(recs))
	}
	for _, want := range []string{`"type":"identify"`, `"plan":"pro"`, `"messageId":`, `"receivedAt":`} {
		if !strings.Contains(string(recs[0].JSON), want) {
			t.Errorf("identify %s lacks %s", recs[0].JSON, want)
		}
	}
	if s := string(recs[1].JSON); !strings.Contains(s, `"event":"Webhook Received"`) || !strings.Contains(s, `"path":"/v1/functions/hooks"`) ||
		!strings.Contains(s, `"q":"1"`) || recs[1].SourceID != "hooks" {
		t.Errorf("track %s of %s", s, recs[1].SourceID)
	}
}
