package observe

import (
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/store"
	"github.com/confluxcdp/conflux/internal/store/storetest"
)

// The workspace of BenchmarkQuery30Days: 20 destinations fed by one source
// with four event names, every bucket of every granularity holding every
// row (the densest a store gets at these dimensions). Per destination,
// event name and bucket there are four count rows: delivered, discarded
// http_400, discarded timeout, retried attempt.1; per destination and
// bucket, six latency-histogram rows. The store holds what [Retention]
// keeps once Conflux has run for 400 days:
//
//	MINUTE 49 h   =  2,940 buckets:  940,800 count rows, 352,800 latency rows
//	HOUR   31 d   =    744 buckets:  238,080 count rows,  89,280 latency rows
//	DAY    400 d  =    400 buckets:  128,000 count rows,  48,000 latency rows
//	total                          1,306,880 count rows, 490,080 latency rows
const (
	benchDestinations = 20
	benchSource       = "web"
)

var (
	benchNow    = time.Date(2026, 12, 1, 10, 30, 30, 0, time.UTC)
	benchEvents = []struct{ typ, name string }{
		{"track", "Order Completed"}, {"track", "Product Viewed"}, {"page", "Home"}, {"identify", ""},
	}
	// benchOutcomes are the count rows of one destination, event and
	// minute; an hour holds 60 times as many, a day 1,440 times.
	benchOutcomes = []struct {
		outcome, reason string
		perMinute       int64
	}{
		{Delivered, "", 100}, {Discarded, "http_400", 2}, {Discarded, "timeout", 1}, {Retried, "attempt.1", 3},
	}
	// benchLatency is one destination's latency histogram of a minute:
	// bucket index in LatencyBounds, count (sums to 400, the minute's
	// delivered events of the four names).
	benchLatency = []struct {
		le    int
		count int64
	}{{1, 40}, {2, 120}, {3, 160}, {4, 60}, {5, 16}, {7, 4}}
)

// benchBuckets returns the bucket starts of granularity g that retention
// keeps at benchNow, oldest first, and how many minutes each holds.
func benchBuckets(g string) (buckets []int64, minutes int64) {
	end := bucketStart(g, minuteOf(benchNow))      // the bucket holding now
	cut := benchNow.Add(-Retention[g]).UnixMilli() // Expire deletes buckets before it
	first := bucketStart(g, minuteOf(benchNow.Add(-Retention[g])))
	if first < cut {
		first += step(g).Milliseconds()
	}
	for b := first; b <= end; b += step(g).Milliseconds() {
		buckets = append(buckets, b)
	}
	return buckets, int64(step(g) / time.Minute)
}

func benchDestination(i int) string { return fmt.Sprintf("dest-%02d", i) }

// fillBench writes the benchmark's workspace with multi-row INSERTs in one
// transaction, and returns the rows it wrote to each table.
func fillBench(b *testing.B, db *store.DB) (counts, latency int) {
	b.Helper()
	const rowsPerInsert = 500
	type table struct {
		head string
		cols int
		rows []any
		n    int
	}
	metrics := &table{head: `INSERT INTO delivery_metrics (granularity, destination_id, source_id, bucket, event_type, event_name, outcome, reason, count) VALUES `, cols: 9}
	lat := &table{head: `INSERT INTO delivery_latency (granularity, destination_id, source_id, bucket, le, count) VALUES `, cols: 6}
	stmts := make(map[string]string)
	flush := func(tx *sql.Tx, t *table) error {
		n := len(t.rows) / t.cols
		if n == 0 {
			return nil
		}
		key := fmt.Sprint(t.cols, n)
		q, ok := stmts[key]
		if !ok {
			row := "(" + strings.TrimSuffix(strings.Repeat("?, ", t.cols), ", ") + ")"
			q = db.Rebind(t.head + strings.TrimSuffix(strings.Repeat(row+", ", n), ", "))
			stmts[key] = q
		}
		if _, err := tx.ExecContext(b.Context(), q, t.rows...); err != nil {
			return err
		}
		t.n += n
		t.rows = t.rows[:0]
		return nil
	}
	add := func(tx *sql.Tx, t *table, vals ...any) error {
		t.rows = append(t.rows, vals...)
		if len(t.rows) >= rowsPerInsert*t.cols {
			return flush(tx, t)
		}
		return nil
	}
	start := time.Now()
	err := db.InTx(b.Context(), func(tx *sql.Tx) error {
		for _, g := range []string{Minute, Hour, Day} {
			buckets, minutes := benchBuckets(g)
			// Each destination's rows, then the roll-up across them that
			// the recorder's flush writes too.
			for d := range benchDestinations + 1 {
				dest, times := benchDestination(d), int64(1)
				if d == benchDestinations {
					dest, times = AllDestinations, benchDestinations
				}
				for _, bucket := range buckets {
					for _, ev := range benchEvents {
						for _, o := range benchOutcomes {
							if err := add(tx, metrics, g, dest, benchSource, bucket, ev.typ, ev.name, o.outcome, o.reason, o.perMinute*minutes*times); err != nil {
								return err
							}
						}
					}
					for _, l := range benchLatency {
						if err := add(tx, lat, g, dest, benchSource, bucket, l.le, l.count*minutes*times); err != nil {
							return err
						}
					}
				}
			}
		}
		if err := flush(tx, metrics); err != nil {
			return err
		}
		return flush(tx, lat)
	})
	if err != nil {
		b.Fatalf("filling the delivery metrics: %v", err)
	}
	if db.Dialect() == store.Postgres {
		// As autovacuum would soon after such an insert.
		if _, err := db.SQL().ExecContext(b.Context(), `ANALYZE delivery_metrics; ANALYZE delivery_latency`); err != nil {
			b.Fatalf("analyzing: %v", err)
		}
	}
	b.Logf("%s: wrote %d count rows and %d latency rows in %s", db.Dialect(), metrics.n, lat.n, time.Since(start).Round(time.Millisecond))
	return metrics.n, lat.n
}

// BenchmarkQuery30Days measures Recorder.Query on a store holding what
// retention keeps for 20 destinations (see benchDestinations), on SQLite
// and, when reachable, PostgreSQL. Each sub-benchmark times every query
// and reports the p50 and p99 latency; run each query 200 times with
//
//	go test ./internal/observe/ -run '^$' -bench Query30Days -benchtime 200x
//
// The target is a p99 under 50 ms.
func BenchmarkQuery30Days(b *testing.B) {
	wantCounts, wantLatency := 0, 0
	for _, g := range []string{Minute, Hour, Day} {
		buckets, _ := benchBuckets(g)
		wantCounts += len(buckets) * (benchDestinations + 1) * len(benchEvents) * len(benchOutcomes) // + the roll-up
		wantLatency += len(buckets) * (benchDestinations + 1) * len(benchLatency)
	}
	kinds := []struct {
		name string
		w    Window
	}{
		{"minute-4h-one", Window{Granularity: Minute, Destination: benchDestination(7), Start: benchNow.Add(-4 * time.Hour)}},
		{"hour-14d-one", Window{Granularity: Hour, Destination: benchDestination(7), Start: benchNow.Add(-14 * 24 * time.Hour)}},
		{"day-30d-one", Window{Granularity: Day, Destination: benchDestination(7), Start: benchNow.Add(-30 * 24 * time.Hour)}},
		{"day-30d-all", Window{Granularity: Day, Start: benchNow.Add(-30 * 24 * time.Hour)}},
		{"minute-4h-all", Window{Granularity: Minute, Start: benchNow.Add(-4 * time.Hour)}},
		{"hour-14d-all", Window{Granularity: Hour, Start: benchNow.Add(-14 * 24 * time.Hour)}},
	}
	for _, engine := range []struct {
		name string
		open func(testing.TB) *store.DB
	}{{"sqlite", storetest.SQLite}, {"postgres", storetest.Postgres}} {
		b.Run(engine.name, func(b *testing.B) {
			db := engine.open(b)
			if counts, latency := fillBench(b, db); counts != wantCounts || latency != wantLatency {
				b.Fatalf("wrote %d count and %d latency rows, want %d and %d", counts, latency, wantCounts, wantLatency)
			}
			r := NewRecorder(db, Options{Now: func() time.Time { return benchNow }})
			for _, k := range kinds {
				b.Run(k.name, func(b *testing.B) {
					w := k.w
					if err := w.Resolve(benchNow); err != nil {
						b.Fatal(err)
					}
					res, err := r.Query(b.Context(), w)
					if err != nil {
						b.Fatal(err)
					}
					checkBenchResult(b, w, res)
					var took []time.Duration
					for b.Loop() {
						start := time.Now()
						if _, err := r.Query(b.Context(), w); err != nil {
							b.Fatal(err)
						}
						took = append(took, time.Since(start))
					}
					slices.Sort(took)
					at := func(p float64) float64 {
						return float64(took[min(len(took)-1, int(p*float64(len(took))))]) / float64(time.Millisecond)
					}
					b.ReportMetric(at(0.50), "p50-ms")
					b.ReportMetric(at(0.99), "p99-ms")
					b.ReportMetric(float64(len(res.Metrics[0].Series)), "buckets")
				})
			}
		})
	}
}

// checkBenchResult fails the benchmark unless the answer counts every
// bucket of the window that the store holds: a query that found nothing
// would be fast for the wrong reason.
func checkBenchResult(b *testing.B, w Window, res *Result) {
	b.Helper()
	buckets, minutes := benchBuckets(w.Granularity)
	n := int64(0)
	for _, bucket := range buckets {
		if bucket >= w.Start.UnixMilli() && bucket < w.End.UnixMilli() {
			n++
		}
	}
	dests := int64(1)
	if w.Destination == "" {
		dests = benchDestinations
	}
	events := int64(len(benchEvents))
	want := map[string]int64{
		"successes": n * dests * events * 100 * minutes,
		"discarded": n * dests * events * 3 * minutes,
		"retried":   n * dests * events * 3 * minutes,
		"expired":   0,
	}
	for _, m := range res.Metrics {
		if m.Total != want[m.Name] {
			b.Fatalf("%s over %d buckets: %d, want %d", m.Name, n, m.Total, want[m.Name])
		}
	}
	if n == 0 || len(res.Latency) == 0 || res.P50 <= 0 {
		b.Fatalf("%d buckets of data, %d latency points, p50 %v: the window misses the data", n, len(res.Latency), res.P50)
	}
}

// BenchmarkRecorderAdd measures what counting costs a delivery: Add and
// Delivered from as many goroutines as GOMAXPROCS, over 20 destinations
// and four event names.
func BenchmarkRecorderAdd(b *testing.B) {
	keys := make([]Key, 0, benchDestinations*len(benchEvents))
	for d := range benchDestinations {
		for _, ev := range benchEvents {
			keys = append(keys, Key{Source: benchSource, Destination: benchDestination(d), EventType: ev.typ, EventName: ev.name})
		}
	}
	b.Run("Add", func(b *testing.B) {
		r := NewRecorder(nil, Options{})
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				k := keys[i%len(keys)]
				k.Outcome, k.Reason = Discarded, "http_400"
				r.Add(k, 1)
				i++
			}
		})
	})
	b.Run("Delivered", func(b *testing.B) {
		r := NewRecorder(nil, Options{})
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				r.Delivered(keys[i%len(keys)], time.Duration(i%500)*time.Millisecond)
				i++
			}
		})
	})
}
