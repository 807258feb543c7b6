package server_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/archive"
	"github.com/confluxcdp/conflux/internal/server"
	"github.com/confluxcdp/conflux/internal/server/servertest"
	"github.com/confluxcdp/conflux/internal/store/storetest"
	"github.com/jackc/pgx/v5"
	"github.com/parquet-go/parquet-go"
)

// TestWarehouseEndToEnd sends events through the Tracking API to a
// PostgreSQL warehouse destination (interval 1s) and reads them back from
// the machine's PostgreSQL: Segment's tables, columns and types, a new
// property adding a column, and each event once.
func TestWarehouseEndToEnd(t *testing.T) {
	url := storetest.PostgresSchema(t) // skips or fails when there is no PostgreSQL
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	source := fmt.Sprintf("wh%d", time.Now().UnixNano())
	t.Cleanup(func() { _, _ = conn.Exec(context.Background(), `DROP SCHEMA IF EXISTS `+source+` CASCADE`) })
	cfg := filepath.Join(t.TempDir(), "conflux.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, `
sources:
  - id: %s
    write_key: warehouse-test-write-key-000000000
destinations:
  - id: dw
    type: postgres
    sources: [%s]
    settings: {url: %q, interval: 1s}
`, source, source, url), 0o600); err != nil {
		t.Fatal(err)
	}
	s := servertest.Start(t, server.Options{ConfigPath: cfg})
	key := "warehouse-test-write-key-000000000"
	for _, c := range []struct{ path, body string }{
		{"/v1/track", `{"messageId":"w1","userId":"ada","event":"Order Completed","properties":{"revenue":19.5,"items":2,"coupon":"X"},"context":{"app":{"version":"1.2"}}}`},
		{"/v1/track", `{"messageId":"w1","userId":"ada","event":"Order Completed","properties":{"revenue":19.5,"items":2,"coupon":"X"}}`},
		{"/v1/identify", `{"messageId":"w2","userId":"ada","traits":{"email":"ada@example.com","plan":"pro"}}`},
		{"/v1/page", `{"messageId":"w3","anonymousId":"an","name":"Home","properties":{"path":"/"}}`},
	} {
		if got := send(t, s.URL, key, c.path, c.body); got != 200 {
			t.Fatalf("%s: %d", c.path, got)
		}
	}
	count := func(table string) int {
		var n int
		if err := conn.QueryRow(t.Context(), `SELECT count(*) FROM `+source+`.`+table).Scan(&n); err != nil {
			return -1
		}
		return n
	}
	wait := func(table string, n int) {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); count(table) != n; time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s.%s has %d rows, want %d", source, table, count(table), n)
			}
		}
	}
	wait("order_completed", 1) // the repeated messageId was a duplicate
	wait("tracks", 1)
	wait("identifies", 1)
	wait("users", 1)
	wait("pages", 1)
	var revenue float64
	var items int64
	var version, plan string
	if err := conn.QueryRow(t.Context(), `SELECT revenue, items, context_app_version FROM `+source+`.order_completed`).Scan(&revenue, &items, &version); err != nil {
		t.Fatal(err)
	}
	if revenue != 19.5 || items != 2 || version != "1.2" {
		t.Errorf("order_completed: %v %v %q", revenue, items, version)
	}
	if err := conn.QueryRow(t.Context(), `SELECT plan FROM `+source+`.users WHERE id = 'ada'`).Scan(&plan); err != nil || plan != "pro" {
		t.Errorf("users: %q %v", plan, err)
	}
	// A new property: a new column, without a stop.
	if got := send(t, s.URL, key, "/v1/track", `{"messageId":"w4","userId":"ada","event":"Order Completed","properties":{"revenue":5,"giftWrap":true}}`); got != 200 {
		t.Fatal(got)
	}
	wait("order_completed", 2)
	// The sync history: every load, with the rows it wrote (recorded just
	// after the load commits, so it may trail the rows by a moment):
	// tracks ×2, order_completed ×2, identifies, users, pages.
	var written float64
	for deadline := time.Now().Add(10 * time.Second); written != 7; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the syncs wrote %v rows, want 7", written)
		}
		st, body := admin(t, s, "GET", "/api/v1/destinations/dw/syncs", "")
		syncs, _ := body["syncs"].([]any)
		if st != 200 {
			t.Fatalf("syncs: %d %v", st, body)
		}
		written = 0
		for _, x := range syncs {
			sy := x.(map[string]any)
			if sy["status"] != "success" || sy["source_id"] != source {
				t.Errorf("sync %v", sy)
			}
			for _, n := range sy["rows"].(map[string]any) {
				written += n.(float64)
			}
		}
	}
	var gift bool
	if err := conn.QueryRow(t.Context(), `SELECT gift_wrap FROM `+source+`.order_completed WHERE id = 'w4'`).Scan(&gift); err != nil || !gift {
		t.Errorf("gift_wrap: %v %v", gift, err)
	}
}

// TestArchiveEndToEnd: events through the Tracking API land in the
// Parquet archive under the data directory, by source and hour, each once,
// and a stop flushes what waits.
func TestArchiveEndToEnd(t *testing.T) {
	dir := t.TempDir()
	s := servertest.Start(t, server.Options{DataDir: dir, NoProfiles: true})
	for i := range 5 {
		if got := send(t, s.URL, s.WriteKey, "/v1/track", fmt.Sprintf(`{"messageId":"arc-%d","userId":"u","event":"Archived"}`, i)); got != 200 {
			t.Fatal(got)
		}
	}
	s.WaitMetric(t, `conflux_process_events_total{outcome="processed",source="default"}`, 5)
	s.Stop(t) // flushes the archive
	files, err := filepath.Glob(filepath.Join(dir, "archive", "source=default", "hour=*", "part-*.parquet"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no archive parts: %v %v", files, err)
	}
	seen := map[string]int{}
	for _, f := range files {
		rows, err := parquet.ReadFile[archive.Row](f)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			seen[r.MessageID]++
			if r.Event != "Archived" || r.SourceID != "default" || r.ReceivedAt == 0 {
				t.Errorf("row %+v", r)
			}
		}
	}
	if len(seen) != 5 {
		t.Errorf("archived %v, want the 5 events once each", seen)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s archived %d times", id, n)
		}
	}
}
