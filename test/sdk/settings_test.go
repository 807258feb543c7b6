package sdk_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/server"
	"github.com/confluxcdp/conflux/internal/server/servertest"
)

// TestSettingsAsAnalyticsNext fetches the settings the way analytics-next
// does (GET ${cdnURL}/v1/projects/${writeKey}/settings, spec §2.1), checks
// what it reads from them (§2.2), then sends a track call the way it
// would: to ${protocol}://${apiHost}/t, text/plain, write key in the body.
func TestSettingsAsAnalyticsNext(t *testing.T) {
	srv := servertest.Start(t, server.Options{})
	host := strings.TrimPrefix(srv.URL, "http://")

	t.Run("unknown write key", func(t *testing.T) {
		resp := get(t, srv.URL+"/v1/projects/not-a-write-key/settings", "")
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("status = %d, want 404", resp.StatusCode)
		}
	})

	resp := get(t, srv.URL+"/v1/projects/"+srv.WriteKey+"/settings", "https://shop.example.com")
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status = %d, want 200: %s", resp.StatusCode, b)
	}
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "https://shop.example.com" && got != "*" {
		t.Errorf("Access-Control-Allow-Origin = %q: a page on another origin could not read the settings", got)
	}
	var settings struct {
		Integrations map[string]json.RawMessage `json:"integrations"`
		Metrics      struct {
			SampleRate *float64 `json:"sampleRate"`
		} `json:"metrics"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&settings); err != nil {
		t.Fatalf("decoding settings: %v", err)
	}
	if len(settings.Integrations) != 1 {
		t.Errorf("integrations has %d keys, want only \"Segment.io\" (more makes analytics-next load classic destinations)", len(settings.Integrations))
	}
	var seg struct {
		APIKey   string `json:"apiKey"`
		APIHost  string `json:"apiHost"`
		Protocol string `json:"protocol"`
	}
	raw, ok := settings.Integrations["Segment.io"]
	if !ok {
		t.Fatal(`integrations["Segment.io"] is missing`)
	}
	if err := json.Unmarshal(raw, &seg); err != nil {
		t.Fatalf(`integrations["Segment.io"]: %v`, err)
	}
	if seg.APIKey != srv.WriteKey {
		t.Errorf("apiKey = %q, want the write key %q", seg.APIKey, srv.WriteKey)
	}
	if want := host + "/v1"; seg.APIHost != want {
		t.Errorf("apiHost = %q, want %q", seg.APIHost, want)
	}
	if seg.Protocol != "http" {
		t.Errorf("protocol = %q, want http", seg.Protocol)
	}
	if settings.Metrics.SampleRate == nil || *settings.Metrics.SampleRate != 0 {
		t.Errorf("metrics.sampleRate = %v, want 0 (no telemetry)", settings.Metrics.SampleRate)
	}

	// Send as analytics-next's standard delivery would, from what it read.
	body := `{"type":"track","event":"Settings Checked","anonymousId":"ajs-anon-1","properties":{"ok":true},` +
		`"messageId":"ajs-next-1700000000000-0d2b0c52-6b5e-4c4e-9a57-3a5e2b7c1f00","writeKey":"` + seg.APIKey + `",` +
		`"context":{"library":{"name":"analytics.js","version":"npm:next-1.70.0"},"page":{"path":"/"}},` +
		`"timestamp":"` + time.Now().UTC().Format("2006-01-02T15:04:05.000Z") + `","sentAt":"` + time.Now().UTC().Format("2006-01-02T15:04:05.000Z") + `"}`
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, seg.Protocol+"://"+seg.APIHost+"/t", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "text/plain")
	post, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", req.URL, err)
	}
	b, _ := io.ReadAll(post.Body)
	post.Body.Close()
	if post.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: status %d: %s", req.URL, post.StatusCode, b)
	}

	recs := readLog(t, srv)
	if len(recs) != 1 {
		t.Fatalf("log holds %d records, want 1", len(recs))
	}
	r := recs[0]
	if r.SourceID != srv.SourceID {
		t.Errorf("source id = %q, want %q", r.SourceID, srv.SourceID)
	}
	checkEqualJSON(t, r, "event", "Settings Checked")
	checkEqualJSON(t, r, "properties", map[string]any{"ok": true})
	// A browser library: the server records the caller's address.
	checkEqualJSON(t, r, "context", map[string]any{
		"library": map[string]any{"name": "analytics.js", "version": "npm:next-1.70.0"},
		"page":    map[string]any{"path": "/"},
		"ip":      "127.0.0.1",
	})
	if _, ok := r.Fields["writeKey"]; ok {
		t.Errorf("writeKey is in the log: %s", r.Raw)
	}
}

func get(t *testing.T, url, origin string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp
}
