package deliver_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/config"
	"github.com/confluxcdp/conflux/internal/deliver"
	"github.com/confluxcdp/conflux/internal/event"
	"github.com/confluxcdp/conflux/internal/loadgen"
	"github.com/confluxcdp/conflux/internal/stream"
)

// countingReceiver is a webhook receiver that counts messageIds and can be
// told to answer 503.
type countingReceiver struct {
	down atomic.Bool
	mu   sync.Mutex
	ids  map[string]int
	// refused counts the 503s per messageId.
	refused map[string]int
	srv     *httptest.Server
}

func newCountingReceiver(tb testing.TB) *countingReceiver {
	r := &countingReceiver{ids: map[string]int{}, refused: map[string]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		if r.down.Load() {
			loadgen.EachMessageID(body, func(id []byte) { r.refused[string(id)]++ })
			r.mu.Unlock()
			w.WriteHeader(503)
			return
		}
		loadgen.EachMessageID(body, func(id []byte) { r.ids[string(id)]++ })
		r.mu.Unlock()
	}))
	tb.Cleanup(r.srv.Close)
	return r
}

func (r *countingReceiver) count() (distinct, total int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range r.ids {
		total += n
	}
	return len(r.ids), total
}

// waitDistinct waits until r has n distinct events, advancing clock by a
// second every few milliseconds so that any retry comes due.
func waitDistinct(tb testing.TB, r *countingReceiver, clock *fakeClock, n int) time.Duration {
	start := time.Now()
	for deadline := start.Add(5 * time.Minute); ; time.Sleep(2 * time.Millisecond) {
		clock.Advance(time.Second)
		if d, _ := r.count(); d >= n {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			d, _ := r.count()
			tb.Fatalf("receiver has %d of %d events", d, n)
		}
	}
}

// BenchmarkRecovery is the recovery run: a destination healthy, then down
// for a simulated hour while events keep arriving, then back. It checks
// that every event is delivered and counts repeats, and reports the
// backlog's drain rate beside the healthy rate.
//
//	go test ./internal/deliver/ -run '^$' -bench Recovery -benchtime 1x
func BenchmarkRecovery(b *testing.B) {
	const healthy, backlog = 50_000, 200_000
	for range b.N {
		start := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
		clock := newFakeClock(start)
		rcv := newCountingReceiver(b)
		h := startEngine(b, clock, deliver.Options{BreakerMinOpen: 5 * time.Second, BreakerMaxOpen: time.Minute, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: benchLogLevel()}))},
			hook(rcv.srv.URL, config.DeliveryOptions{Concurrency: 8}, map[string]any{"batch_size": 100, "timeout": "10s"}))

		healthyStart := time.Now()
		publishMany(b, h.log, "healthy", 0, healthy, start)
		waitDistinct(b, rcv, clock, healthy)
		healthyTook := time.Since(healthyStart)

		// Down for an hour of the engine's time; events keep arriving.
		rcv.down.Store(true)
		for step := range 60 {
			if step%6 == 0 { // every ten minutes, a tenth of the backlog
				publishMany(b, h.log, "backlog", step/6*backlog/10, backlog/10, clock.Now())
			}
			clock.Advance(time.Minute)
			time.Sleep(5 * time.Millisecond)
		}
		st := h.get(b, "/api/v1/destinations/hook/delivery")
		if st["breaker"] != "open" && st["breaker"] != "half_open" {
			b.Errorf("after an hour down the breaker is %v", st["breaker"])
		}
		parked := st["awaiting_retry"].(float64)

		// Back: the next probe closes the breaker and the backlog drains.
		rcv.down.Store(false)
		drainStart := time.Now()
		waitDistinct(b, rcv, clock, healthy+backlog)
		drainTook := time.Since(drainStart)
		distinct, total := rcv.count()
		b.ReportMetric(float64(healthy)/healthyTook.Seconds(), "healthy-events/s")
		b.ReportMetric(float64(backlog)/drainTook.Seconds(), "drain-events/s")
		b.ReportMetric((float64(backlog)/drainTook.Seconds())/(float64(healthy)/healthyTook.Seconds()), "drain/healthy")
		b.ReportMetric(float64(total-distinct), "repeats")
		b.ReportMetric(parked, "parked-in-retry-store")
		if testing.Verbose() {
			rcv.mu.Lock()
			shown := 0
			for id, n := range rcv.ids {
				if n > 1 && shown < 10 {
					b.Logf("repeated: %s ×%d (refused %d times)", id, n, rcv.refused[id])
					shown++
				}
			}
			rcv.mu.Unlock()
		}
		if distinct != healthy+backlog {
			b.Errorf("delivered %d distinct events, want %d", distinct, healthy+backlog)
		}
		h.stop()
	}
}

// publishMany writes the events prefix-from … prefix-(from+n-1), received
// at t, as messages of 100.
func publishMany(tb testing.TB, l *stream.Log, prefix string, from, n int, t time.Time) {
	ts := t.Format(time.RFC3339Nano)
	for first := from; first < from+n; first += 100 {
		var data []byte
		for i := first; i < min(first+100, from+n); i++ {
			data = event.AppendRecord(data, "web", fmt.Appendf(nil,
				`{"type":"track","event":"Order Completed","messageId":"%s-%07d","userId":"u%d","properties":{"total":%d,"currency":"EUR"},"context":{"library":{"name":"analytics-go"}},"timestamp":%q,"receivedAt":%q}`,
				prefix, i, i%1000, i, ts, ts))
		}
		if _, err := l.JetStream().Publish(context.Background(), stream.ProcessedSubject, data); err != nil {
			tb.Fatal(err)
		}
	}
}

// benchLogLevel is Warn, or Debug when CONFLUX_BENCH_DEBUG is set.
func benchLogLevel() slog.Level {
	if os.Getenv("CONFLUX_BENCH_DEBUG") != "" {
		return slog.LevelDebug
	}
	return slog.LevelWarn
}
