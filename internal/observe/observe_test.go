package observe

import (
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/store"
	"github.com/confluxcdp/conflux/internal/store/storetest"
)

func TestWindowResolve(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 30, 20, 0, time.UTC)
	tests := []struct {
		name       string
		w          Window
		start, end string
		err        string
	}{
		{name: "minute default", w: Window{}, start: "2026-12-01T09:30:00Z", end: "2026-12-01T10:31:00Z"},
		{name: "hour default", w: Window{Granularity: Hour}, start: "2026-11-24T10:00:00Z", end: "2026-12-01T11:00:00Z"},
		{name: "day default", w: Window{Granularity: Day}, start: "2026-11-01T00:00:00Z", end: "2026-12-02T00:00:00Z"},
		{name: "minute range too long", w: Window{Start: now.Add(-5 * time.Hour)}, err: "at most 4h0m0s"},
		{name: "day range too long", w: Window{Granularity: Day, Start: now.Add(-29 * 24 * time.Hour), End: now.Add(2 * 24 * time.Hour)}, err: "at most 720h0m0s"},
		{name: "minute start too old", w: Window{Start: now.Add(-50 * time.Hour), End: now.Add(-49 * time.Hour)}, err: "at most 48h0m0s ago"},
		{name: "hour range too long", w: Window{Granularity: Hour, Start: now.Add(-15 * 24 * time.Hour)}, err: "at most 336h0m0s"},
		{name: "start after end", w: Window{Start: now, End: now.Add(-time.Hour)}, err: "is not before end"},
		{name: "bad granularity", w: Window{Granularity: "WEEK"}, err: "want MINUTE, HOUR or DAY"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.w.Resolve(now)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := tt.w.Start.Format(time.RFC3339); got != tt.start {
				t.Errorf("start %s, want %s", got, tt.start)
			}
			if got := tt.w.End.Format(time.RFC3339); got != tt.end {
				t.Errorf("end %s, want %s", got, tt.end)
			}
		})
	}
}

func TestPercentiles(t *testing.T) {
	var h [len(LatencyBounds) + 1]int64
	h[0] = 50 // ≤ 10 ms
	h[3] = 45 // 50–100 ms
	h[5] = 5  // 250–500 ms
	n, p50, p95, p99 := percentiles(&h)
	if n != 100 || p50 != 10 || math.Abs(p95-100) > 1e-9 || math.Abs(p99-450) > 1e-9 {
		t.Errorf("count %d p50 %v p95 %v p99 %v, want 100 10 100 450", n, p50, p95, p99)
	}
}

// TestFlushAndQuery counts a known mix over two minutes of one hour, with
// a failed flush in between, and checks every total, breakdown, series
// point and latency at the three granularities, on both engines.
func TestFlushAndQuery(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		now := time.Date(2026, 12, 1, 10, 5, 30, 0, time.UTC)
		r := NewRecorder(db, Options{Now: func() time.Time { return now }, MaxEventNames: 2})
		k := Key{Source: "web", Destination: "hook", EventType: "track", EventName: "Order Completed"}
		for range 3 {
			r.Delivered(k, 40*time.Millisecond)
		}
		r.Add(Key{Source: "web", Destination: "hook", EventType: "track", EventName: "A", Outcome: Discarded, Reason: "http_400"}, 2)
		r.Add(Key{Source: "web", Destination: "hook", EventType: "track", EventName: "B", Outcome: Retried, Reason: "attempt.1"}, 1)
		r.Add(Key{Source: "web", Destination: "other", EventType: "track", EventName: "A", Outcome: Discarded, Reason: "http_500"}, 7)
		if err := r.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
		now = now.Add(time.Minute)
		r.Delivered(k, 300*time.Millisecond)
		r.Add(Key{Source: "web", Destination: "hook", EventType: "track", EventName: "C", Outcome: Discarded, Reason: "http_400"}, 1)
		if err := r.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := r.Flush(t.Context()); err != nil { // nothing new: nothing added twice
			t.Fatal(err)
		}
		for _, g := range []string{Minute, Hour, Day} {
			w := Window{Destination: "hook", Granularity: g, End: now}
			if err := w.Resolve(now); err != nil {
				t.Fatal(err)
			}
			res, err := r.Query(t.Context(), w)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]int64{}
			for _, m := range res.Metrics {
				got[m.Name] = m.Total
				var sum int64
				for _, p := range m.Series {
					sum += p.Count
				}
				if sum != m.Total {
					t.Errorf("%s %s: series sum %d, total %d", g, m.Name, sum, m.Total)
				}
			}
			if got["successes"] != 4 || got["discarded"] != 3 || got["retried"] != 1 || got["expired"] != 0 {
				t.Errorf("%s: totals %v, want successes 4 discarded 3 retried 1 expired 0", g, got)
			}
			if d := res.Metrics[1].Breakdown; len(d) != 1 || d[0] != (Breakdown{"http_400", 3}) {
				t.Errorf("%s: discard breakdown %v", g, d)
			}
			// 3 at 25–50 ms, 1 at 250–500 ms: the median is two thirds
			// into the first bucket, the p99 nine tenths into the second.
			if math.Abs(res.P50-(25+25*2.0/3)) > 1e-9 || math.Abs(res.P99-490) > 1e-9 {
				t.Errorf("%s: p50 %v p99 %v", g, res.P50, res.P99)
			}
			if g == Minute {
				last := res.Metrics[0].Series[len(res.Metrics[0].Series)-1]
				prev := res.Metrics[0].Series[len(res.Metrics[0].Series)-2]
				if last.Count != 1 || prev.Count != 3 || !last.Time.Equal(time.Date(2026, 12, 1, 10, 6, 0, 0, time.UTC)) {
					t.Errorf("minute series ends %v, %v", prev, last)
				}
			}
		}
		// Names beyond the limit fold into (other): "Order Completed" and A
		// were kept, B and C were not.
		var other int64
		if err := db.SQL().QueryRowContext(t.Context(), db.Rebind(`SELECT COALESCE(SUM(count), 0) FROM delivery_metrics WHERE granularity = 'MINUTE' AND destination_id <> '*' AND event_name = ?`), Other).Scan(&other); err != nil {
			t.Fatal(err)
		}
		if other != 2 {
			t.Errorf("(other) counts %d, want 2 (events B and C)", other)
		}
	})
}

func TestAPIErrors(t *testing.T) {
	db := storetest.SQLite(t)
	r := NewRecorder(db, Options{})
	mux := http.NewServeMux()
	r.Register(mux, func(h http.Handler) http.Handler { return h })
	for q, want := range map[string]string{
		"granularity=WEEK": "want MINUTE, HOUR or DAY",
		"start=yesterday":  "want an RFC 3339 time",
		"destination_id=x": "unknown parameter",
		"granularity=MINUTE&start=2026-01-01T00:00:00Z&end=2026-01-01T01:00:00Z": "at most 48h0m0s ago",
	} {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/delivery-metrics?"+q, nil))
		if rec.Code != 400 || !strings.Contains(rec.Body.String(), want) {
			t.Errorf("%s: %d %s, want 400 naming %q", q, rec.Code, rec.Body, want)
		}
	}
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/delivery-metrics?granularity=hour", nil))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"metric_name":"successes"`) {
		t.Errorf("a good query: %d %s", rec.Code, rec.Body)
	}
}
