package server_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/confluxcdp/conflux/internal/event"
	"github.com/confluxcdp/conflux/internal/server"
	"github.com/confluxcdp/conflux/internal/server/servertest"
	"github.com/confluxcdp/conflux/internal/stream"
)

// TestRetriedRequestsAreProcessedOnce sends what SDK retries after a lost
// response look like — the same batch again, the same single call again —
// on both sides of a restart, and checks that processed holds each event
// once while ingest holds every copy.
func TestRetriedRequestsAreProcessedOnce(t *testing.T) {
	dir := t.TempDir()
	s := servertest.Start(t, server.Options{DataDir: dir})
	batch := `{"batch":[
		{"type":"track","messageId":"b-1","userId":"u1","event":"A"},
		{"type":"identify","messageId":"b-2","userId":"u2","traits":{"plan":"pro"}},
		{"type":"page","messageId":"b-3","anonymousId":"anon-3","name":"Home"}]}`
	for range 2 {
		if got := send(t, s.URL, s.WriteKey, "/v1/batch", batch); got != 200 {
			t.Fatalf("batch: %d", got)
		}
	}
	single := `{"messageId":"s-1","userId":"u1","event":"B"}`
	if got := send(t, s.URL, s.WriteKey, "/v1/track", single); got != 200 {
		t.Fatalf("track: %d", got)
	}
	s.WaitMetric(t, `conflux_process_events_total{outcome="processed",source="default"}`, 4)
	s.WaitMetric(t, `conflux_process_events_total{outcome="duplicate",source="default"}`, 3)
	s.Stop(t)

	s2 := servertest.Start(t, server.Options{DataDir: dir})
	for _, body := range []string{single, `{"messageId":"s-2","userId":"u3","event":"C"}`} {
		if got := send(t, s2.URL, s2.WriteKey, "/v1/track", body); got != 200 {
			t.Fatalf("track after restart: %d", got)
		}
	}
	if got := send(t, s2.URL, s2.WriteKey, "/v1/batch", batch); got != 200 {
		t.Fatalf("batch after restart: %d", got)
	}
	s2.WaitMetric(t, `conflux_process_events_total{outcome="processed",source="default"}`, 1)
	s2.WaitMetric(t, `conflux_process_events_total{outcome="duplicate",source="default"}`, 4)
	s2.Stop(t)

	if n := len(servertest.ReadIngest(t, dir)); n != 12 {
		t.Errorf("ingest holds %d records, want all 12 sent", n)
	}
	var ids []string
	for _, rec := range servertest.ReadStream(t, dir, stream.ProcessedStream) {
		k, err := event.PeekKeys(rec.JSON)
		if err != nil {
			t.Fatalf("processed record %s: %v", rec.JSON, err)
		}
		ids = append(ids, string(k.MessageID))
	}
	count := map[string]int{}
	for _, id := range ids {
		count[id]++
	}
	for _, id := range []string{"b-1", "b-2", "b-3", "s-1", "s-2"} {
		if count[id] != 1 {
			t.Errorf("%s is in processed %d times, want 1", id, count[id])
		}
	}
	if len(ids) != 5 {
		t.Errorf("processed holds %s, want 5 events", strings.Join(ids, ","))
	}
}

const planConfig = `
sources:
  - id: web
    write_key: webWriteKey000000000000000000001
    tracking_plan: shop
    schema:
      track_unplanned_events: block
      track_unplanned_properties: omit
      track_violations: block
      forward_blocked_to: quarantine
  - id: quarantine
tracking_plans:
  - id: shop
    rules:
      events:
        Order Completed:
          type: object
          properties:
            properties:
              type: object
              properties: {order_id: {type: string}, total: {type: number}}
              required: [order_id]
transformations:
  - id: rename-total
    source: web
    if: event = 'Order Completed'
    propertyRenames: [{oldName: total, newName: revenue}]
`

// TestTrackingPlanEndToEnd loads a plan from the config file and checks,
// through the HTTP APIs and the processed log, that events are blocked,
// forwarded, trimmed and transformed, and that violations are listed.
func TestTrackingPlanEndToEnd(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "conflux.yaml")
	if err := os.WriteFile(path, []byte(planConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	s := servertest.Start(t, server.Options{DataDir: filepath.Join(dir, "data"), ConfigPath: path})
	key := "webWriteKey000000000000000000001"
	for _, body := range []string{
		`{"messageId":"ok","userId":"u1","event":"Order Completed","properties":{"order_id":"o1","total":12.5,"coupon":"X"}}`,
		`{"messageId":"no-id","userId":"u1","event":"Order Completed","properties":{"total":3}}`,
		`{"messageId":"unplanned","userId":"u2","event":"Clicked"}`,
	} {
		if got := send(t, s.URL, key, "/v1/track", body); got != 200 {
			t.Fatalf("track %s: %d", body, got)
		}
	}
	s.WaitMetric(t, `conflux_process_events_total{outcome="blocked",source="web"}`, 2)
	s.WaitMetric(t, `conflux_process_events_total{outcome="processed",source="web"}`, 1)

	// The violations API, before and after the counts reach the store.
	st, out := admin(t, s, "GET", "/api/v1/sources/web/violations", "")
	if st != 200 {
		t.Fatalf("violations: %d %v", st, out)
	}
	list, _ := out["violations"].([]any)
	kinds := map[string]bool{}
	for _, v := range list {
		m := v.(map[string]any)
		kinds[m["violation_type"].(string)+" "+m["event_name"].(string)] = true
	}
	for _, want := range []string{"Required Order Completed", "Unplanned Event Clicked"} {
		if !kinds[want] {
			t.Errorf("violations %v lack %q", list, want)
		}
	}
	if st, _ := admin(t, s, "GET", "/api/v1/sources/nope/violations", ""); st != 404 {
		t.Errorf("violations of an unknown source: %d, want 404", st)
	}
	if st, _ := admin(t, s, "GET", "/api/v1/sources/web/violations?limit=0", ""); st != 400 {
		t.Errorf("limit=0: %d, want 400", st)
	}
	s.Stop(t)

	by := map[string][]string{}
	for _, rec := range servertest.ReadStream(t, filepath.Join(dir, "data"), stream.ProcessedStream) {
		by[rec.SourceID] = append(by[rec.SourceID], string(rec.JSON))
	}
	if len(by["web"]) != 1 || !strings.Contains(by["web"][0], `"properties":{"order_id":"o1","revenue":12.5}`) || !strings.Contains(by["web"][0], `"omitted":["coupon"]`) {
		t.Errorf("web in processed: %v, want the order with revenue and without coupon", by["web"])
	}
	if len(by["quarantine"]) != 2 {
		t.Errorf("quarantine in processed: %v, want the two blocked events", by["quarantine"])
	}
}
