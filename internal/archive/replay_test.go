package archive

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/deliver"
	"github.com/confluxcdp/conflux/internal/event"
)

// TestReplayAPIBadInput: every bad request gets its status and a JSON
// error, and queues nothing.
func TestReplayAPIBadInput(t *testing.T) {
	queued := 0
	enqueue := func(_ context.Context, dest string, recs []event.Record, _ string) (int, error) {
		if dest != "hook" {
			return 0, fmt.Errorf("%w: no destination %q", deliver.ErrUnknownDestination, dest)
		}
		queued += len(recs)
		return len(recs), nil
	}
	dir := t.TempDir()
	if err := os.MkdirAll(dir+"/source=web/hour=2026-12-01T10", 0o750); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(dir+"/source=web/hour=2026-12-01T10/part-1-1.parquet",
		[]Row{{MessageID: "m1", SourceID: "web", ReceivedAt: time.Date(2026, 12, 1, 10, 30, 0, 0, time.UTC).UnixMilli(), JSON: `{"messageId":"m1"}`}}); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	RegisterAPI(mux, func(h http.Handler) http.Handler { return h }, dir, enqueue, nil)
	for _, tc := range []struct {
		body string
		want int
	}{
		{``, 400},
		{`{"destination":"hook","from":"2026-12-01T00:00:00Z"} {}`, 400},
		{`{"destination":"hook","from":"2026-12-01T00:00:00Z","limit":5}`, 400},
		{`{"destination":"hook"}`, 400},
		{`{"destination":"hook","from":"yesterday"}`, 400},
		{`{"from":"2026-12-01T00:00:00Z"}`, 400},
		{`{"destination":"hook","from":"2026-12-02T00:00:00Z","to":"2026-12-01T00:00:00Z"}`, 400},
		{`{"destination":"nope","from":"2026-12-01T00:00:00Z"}`, 404},
		{`{"destination":"hook","from":"2026-12-01T00:00:00Z","to":"2026-12-01T11:00:00Z"}`, 200},
	} {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("POST", "/api/v1/archive/replay", strings.NewReader(tc.body)))
		if rec.Code != tc.want || !strings.Contains(rec.Body.String(), `"`) {
			t.Errorf("%s: %d %s, want %d", tc.body, rec.Code, rec.Body, tc.want)
		}
		if tc.want != 200 && !strings.Contains(rec.Body.String(), `"error"`) {
			t.Errorf("%s: no error body: %s", tc.body, rec.Body)
		}
	}
	if queued != 1 {
		t.Errorf("%d events queued, want the 1 of the good request", queued)
	}
}
