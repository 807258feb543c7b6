package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/server"
	"github.com/confluxcdp/conflux/internal/server/servertest"
	"github.com/confluxcdp/conflux/internal/store/storetest"
	"github.com/confluxcdp/conflux/internal/stream/streamtest"
)

func send(t *testing.T, base, key, path, body string) int {
	t.Helper()
	req, _ := http.NewRequest("POST", base+path, strings.NewReader(body))
	req.SetBasicAuth(key, "")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func admin(t *testing.T, s *servertest.Server, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, s.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+s.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out
}

func TestServeEndToEnd(t *testing.T) {
	dir := t.TempDir()
	s := servertest.Start(t, server.Options{DataDir: dir})
	if s.SourceID != "default" || len(s.WriteKey) != 32 || len(s.AdminToken) != 64 {
		t.Fatalf("default source %q key %q token %q", s.SourceID, s.WriteKey, s.AdminToken)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(s.URL + path)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %v %v", path, resp, err)
		}
		resp.Body.Close()
	}
	if got := send(t, s.URL, s.WriteKey, "/v1/track", `{"userId":"u","event":"First"}`); got != 200 {
		t.Fatalf("track: %d", got)
	}

	// A source created through the API takes events at once.
	st, src := admin(t, s, "POST", "/api/v1/sources", `{"id":"app","name":"App"}`)
	if st != 201 {
		t.Fatalf("create source: %d %v", st, src)
	}
	appKey := src["write_key"].(string)
	if got := send(t, s.URL, appKey, "/v1/screen", `{"anonymousId":"a","name":"Home"}`); got != 200 {
		t.Fatalf("new source's key: %d", got)
	}
	// Rotation without grace: the old key stops at once.
	_, rot := admin(t, s, "POST", "/api/v1/sources/app/rotate-write-key", ``)
	newKey := rot["write_key"].(string)
	if got := send(t, s.URL, appKey, "/v1/screen", `{"anonymousId":"a"}`); got != 401 {
		t.Errorf("rotated-out key: %d, want 401", got)
	}
	if got := send(t, s.URL, newKey, "/v1/screen", `{"anonymousId":"a","name":"Second"}`); got != 200 {
		t.Errorf("rotated-in key: %d", got)
	}

	// The debugger shows the source's events, newest first.
	st, dbg := admin(t, s, "GET", "/api/v1/sources/app/events?limit=5", "")
	events, _ := dbg["events"].([]any)
	if st != 200 || len(events) != 2 || events[0].(map[string]any)["name"] != "Second" {
		t.Fatalf("debugger: %d %v", st, dbg)
	}
	if st, _ := admin(t, s, "GET", "/api/v1/sources/app/events?limit=0", ""); st != 400 {
		t.Errorf("limit=0: %d, want 400", st)
	}
	if st, _ := admin(t, s, "GET", "/api/v1/sources/nope/events", ""); st != 404 {
		t.Errorf("unknown source: %d, want 404", st)
	}

	// Follow: recent events, then a live one.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.URL+"/api/v1/sources/default/events?follow=true&limit=1", nil)
	req.Header.Set("Authorization", "Bearer "+s.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	lines := bufio.NewScanner(resp.Body)
	if !lines.Scan() || !strings.Contains(lines.Text(), `"First"`) {
		t.Fatalf("follow: first line %q", lines.Text())
	}
	send(t, s.URL, s.WriteKey, "/v1/track", `{"userId":"u","event":"Live"}`)
	if !lines.Scan() || !strings.Contains(lines.Text(), `"Live"`) {
		t.Fatalf("follow: live line %q (%v)", lines.Text(), lines.Err())
	}
	cancel()

	// Metrics count what happened.
	mresp, err := http.Get(s.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	for _, want := range []string{`conflux_ingest_events_total{source="app"} 2`, `conflux_ingest_requests_total{code="401",endpoint="screen"} 1`, "conflux_log_appends_total"} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// Unknown paths answer JSON.
	if st, b := admin(t, s, "GET", "/nope", ""); st != 404 || b["error"] == nil {
		t.Errorf("unknown path: %d %v", st, b)
	}

	// Restart on the same data: same default key, same admin token, the
	// API's source and its rotated key persist.
	s.Stop(t)
	s2 := servertest.Start(t, server.Options{DataDir: dir})
	if s2.WriteKey != s.WriteKey || s2.AdminToken != s.AdminToken {
		t.Errorf("after restart: key %q token %q, want the first start's", s2.WriteKey, s2.AdminToken)
	}
	if got := send(t, s2.URL, newKey, "/v1/screen", `{"anonymousId":"a"}`); got != 200 {
		t.Errorf("API source after restart: %d", got)
	}
	s2.Stop(t)
	recs := servertest.ReadIngest(t, dir)
	if len(recs) != 5 {
		t.Errorf("log holds %d records, want 5", len(recs))
	}
}

func TestReadyzFailsWhenDiskIsLow(t *testing.T) {
	s := servertest.Start(t, server.Options{MinFreeDisk: 1 << 62})
	resp, err := http.Get(s.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != 503 || body["ready"] != false {
		t.Fatalf("readyz: %d %v", resp.StatusCode, body)
	}
	if got := send(t, s.URL, s.WriteKey, "/v1/track", `{"userId":"u","event":"E"}`); got != 503 {
		t.Errorf("ingest with a full disk: %d, want 503", got)
	}
}

func TestConfigFileErrorStopsStartup(t *testing.T) {
	path := t.TempDir() + "/conflux.yaml"
	if err := writeFile(path, "sources:\n  - id: web\n    writekey: abc\n"); err != nil {
		t.Fatal(err)
	}
	_, err := server.New(t.Context(), server.Options{Addr: "127.0.0.1:0", DataDir: t.TempDir(), ConfigPath: path})
	if err == nil || !strings.Contains(err.Error(), "conflux.yaml:3:5") || !strings.Contains(err.Error(), "writekey") {
		t.Fatalf("err = %v, want one naming conflux.yaml:3:5 and the field", err)
	}
}

func writeFile(path, content string) error {
	return os.WriteFile(path, []byte(content), 0o600)
}

// TestServeOnExternalEngines runs the same binary code on the machine's
// NATS JetStream (--nats-url) and PostgreSQL (--postgres-url).
func TestServeOnExternalEngines(t *testing.T) {
	natsURL := streamtest.External(t)
	pgURL := storetest.PostgresSchema(t)
	dir := t.TempDir()
	s := servertest.Start(t, server.Options{DataDir: dir, NATSURL: natsURL, PostgresURL: pgURL})
	if got := send(t, s.URL, s.WriteKey, "/v1/track", `{"userId":"u","event":"On External"}`); got != 200 {
		t.Fatalf("track: %d", got)
	}
	st, src := admin(t, s, "POST", "/api/v1/sources", `{"id":"ext"}`)
	if st != 201 {
		t.Fatalf("create source: %d %v", st, src)
	}
	if got := send(t, s.URL, src["write_key"].(string), "/v1/identify", `{"userId":"u"}`); got != 200 {
		t.Fatalf("identify with the new key: %d", got)
	}
	_, dbg := admin(t, s, "GET", "/api/v1/sources/default/events", "")
	events, _ := dbg["events"].([]any)
	if len(events) != 1 || events[0].(map[string]any)["event"] != "On External" {
		t.Fatalf("debugger on the external log: %v", dbg)
	}
	// The state is in PostgreSQL, not in the data directory.
	if _, err := os.Stat(dir + "/conflux.db"); !os.IsNotExist(err) {
		t.Errorf("SQLite file created although --postgres-url was given: %v", err)
	}
	s.Stop(t)
	s2 := servertest.Start(t, server.Options{DataDir: t.TempDir(), NATSURL: natsURL, PostgresURL: pgURL})
	if s2.WriteKey != s.WriteKey || s2.AdminToken != s.AdminToken {
		t.Error("a second node on the same PostgreSQL sees another default source or admin token")
	}
}

// TestSuppression: a regulation drops the user's events at collection, from
// every source, before they are stored, and survives a restart.
func TestSuppression(t *testing.T) {
	dir := t.TempDir()
	s := servertest.Start(t, server.Options{DataDir: dir})
	st, b := admin(t, s, "POST", "/api/v1/regulations", `{"regulationType":"SUPPRESS_ONLY","subjectType":"USER_ID","subjectIds":["gone"]}`)
	if st != 200 {
		t.Fatalf("regulation: %d %v", st, b)
	}
	if got := send(t, s.URL, s.WriteKey, "/v1/track", `{"userId":"gone","event":"Hidden"}`); got != 200 {
		t.Errorf("suppressed user's call: %d, want 200 (dropped silently, as Segment does)", got)
	}
	send(t, s.URL, s.WriteKey, "/v1/batch", `{"batch":[{"type":"identify","userId":"gone"},{"type":"identify","userId":"kept"}]}`)
	s.Stop(t)

	s2 := servertest.Start(t, server.Options{DataDir: dir})
	send(t, s2.URL, s2.WriteKey, "/v1/track", `{"userId":"gone","event":"After Restart"}`)
	send(t, s2.URL, s2.WriteKey, "/v1/track", `{"userId":"kept","event":"Visible"}`)
	resp, err := http.Get(s2.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), `conflux_ingest_events_suppressed_total{source="default"} 1`) {
		t.Errorf("suppressed counter missing after restart:\n%s", metrics)
	}
	s2.Stop(t)
	for _, r := range servertest.ReadIngest(t, dir) {
		if strings.Contains(string(r.JSON), `"gone"`) {
			t.Errorf("suppressed user's event stored: %s", r.JSON)
		}
	}
	if n := len(servertest.ReadIngest(t, dir)); n != 2 {
		t.Errorf("log holds %d events, want the 2 of the unsuppressed user", n)
	}
}
