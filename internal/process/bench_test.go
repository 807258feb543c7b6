package process

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/config"
	"github.com/confluxcdp/conflux/internal/event"
	"github.com/confluxcdp/conflux/internal/process/dedup"
	"github.com/confluxcdp/conflux/internal/process/plan"
	"github.com/confluxcdp/conflux/internal/process/transform"
	"github.com/confluxcdp/conflux/internal/stream"
	"github.com/confluxcdp/conflux/internal/stream/streamtest"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// benchPlan plans the benchmark's event with every property it carries.
var benchPlan = config.TrackingPlan{ID: "shop", Name: "Shop", Rules: config.PlanRules{Events: map[string]json.RawMessage{
	"Order Completed": json.RawMessage(`{"type":"object","properties":{"properties":{"type":"object","properties":{
		"order_id":{"type":"string"},"total":{"type":"number"},"revenue":{"type":"number"},"currency":{"type":"string","enum":["USD","EUR"]},
		"coupon":{"type":"string"},"discount":{"type":"number"},"shipping":{"type":"number"},"tax":{"type":"number"},
		"affiliation":{"type":"string"},"products":{"type":"array"}},"required":["order_id","total"]}}}`),
}}}

// benchTimes are the benchmark events' times, from now rather than a
// fixed day: the dedup index does not record (skips) an id whose
// receivedAt is past its 30-day window, and with a fixed day the
// benchmarks would, a month later, stop measuring the index's writes.
var benchTimes = func() string {
	const ms = "2006-01-02T15:04:05.000Z"
	at := time.Now().UTC()
	return fmt.Sprintf(`"timestamp":%q,"receivedAt":%q,"sentAt":%q,"originalTimestamp":%q`,
		at.Format(ms), at.Add(120*time.Millisecond).Format(ms), at.Add(100*time.Millisecond).Format(ms), at.Add(-20*time.Millisecond).Format(ms))
}()

// benchEvent is a ~650-byte Order Completed event, as the Tracking API
// stores it.
func benchEvent(i int) []byte {
	return fmt.Appendf(nil, `{"type":"track","event":"Order Completed","messageId":"bench-%08d","userId":"user-%d","anonymousId":"anon-%d",`+
		`"properties":{"order_id":"o-%d","total":27.50,"revenue":25.00,"currency":"USD","coupon":"SPRING","discount":2.5,"shipping":3,"tax":2.0,`+
		`"affiliation":"web","products":[{"sku":"45790-32","name":"Monopoly","price":19.99,"quantity":1}]},`+
		`"context":{"library":{"name":"analytics.js","version":"2.11.1"},"page":{"path":"/checkout","url":"https://shop.example.com/checkout"},"ip":"203.0.113.9",`+
		`"userAgent":"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36"},`+
		`%s}`,
		i, i%100000, i%100000, i, benchTimes)
}

// skippedIDs counts the ids s's indexes skipped as past their window: a
// benchmark that has any did not measure their writes.
func skippedIDs(s *Stage) int64 {
	var n int64
	for _, p := range s.parts {
		n += p.index.Stats().Skipped
	}
	return n
}

// benchRules is the benchmark's pipeline: the plan enforced (unplanned
// events blocked, unplanned properties omitted, violations block) and one
// transformation (a rename, gated by the event name).
func benchRules(b *testing.B) *Rules {
	enabled := true
	c := config.Contents{
		Sources: []config.Source{{ID: "web", WriteKey: "k", TrackingPlan: "shop", Schema: config.SourceSchema{Enforcement: plan.Enforcement{
			TrackUnplannedEvents: plan.Block, TrackUnplannedProperties: plan.Omit, TrackViolations: plan.Block,
		}}}},
		TrackingPlans: []config.TrackingPlan{benchPlan},
		Transformations: []config.Transformation{{Source: "web", Transformation: transform.Transformation{
			ID: "t", If: "event = 'Order Completed'", Enabled: &enabled,
			PropertyRenames: []transform.PropertyRename{{OldName: "affiliation", NewName: "store"}},
		}}},
	}
	ws := config.BuildWorkspace(1, config.Settings{}, c)
	if p := ws.Problems(); len(p) > 0 {
		b.Fatalf("workspace problems: %v", p)
	}
	return NewRules(func() *config.Workspace { return ws }, nil, nil)
}

// BenchmarkPipeline is the per-event work of the stage on one core: a
// dedup check and commit on a real index, then the tracking plan and one
// transformation (decode, check, transform, encode).
func BenchmarkPipeline(b *testing.B) {
	for _, name := range []string{"dedup+plan+transform", "dedup only"} {
		b.Run(name, func(b *testing.B) {
			l := streamtest.New(b)
			s, err := New(b.Context(), l, Options{Dir: b.TempDir(), Partitions: 1, ExpectedIDsPerDay: 1 << 22})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			var rules Pipeline = PassThrough{}
			if name != "dedup only" {
				rules = benchRules(b)
			}
			const n = 4096
			events := make([][]byte, n)
			for i := range events {
				events[i] = benchEvent(i)
			}
			p, sc := s.parts[0], s.parts[0].slots[0]
			emit := Emitter{source: "web", self: func(src string, rec []byte) { sc.out = event.AppendRecord(sc.out, src, rec) }, other: func(string, []byte) {}}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				rec := events[i%n]
				k, err := event.PeekKeys(rec)
				if err != nil {
					b.Fatal(err)
				}
				// Unique ids: rewrite the counter in place (8 digits).
				copy(k.MessageID[6:], fmt.Appendf(nil, "%08d", i%100000000))
				if dup, err := p.index.Contains(k.MessageID); err != nil || dup {
					b.Fatalf("Contains: %v %v", dup, err)
				}
				sc.entries = append(sc.entries, dedup.Entry{ID: k.MessageID, At: k.ReceivedAt})
				if o := rules.Process(b.Context(), "web", rec, emit); o != OutcomeProcessed {
					b.Fatalf("outcome %s", o)
				}
				if len(sc.entries) == 1000 {
					if err := p.index.Commit(sc.entries, uint64(i)); err != nil {
						b.Fatal(err)
					}
					sc.entries, sc.out = sc.entries[:0], sc.out[:0]
				}
				i++
			}
			if n := skippedIDs(s); n > 0 {
				b.Fatalf("the index skipped %d ids as older than its window: their writes were not measured", n)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkStage runs the whole stage against the embedded log: 200,000
// events already in ingest (100 per message, as the Tracking API groups
// them), processed through dedup, the plan and one transformation into
// processed, synced. Run with -cpu 1 for the figure per core.
func BenchmarkStage(b *testing.B) {
	b.Run("dedup+plan+transform", func(b *testing.B) { benchStage(b, benchRules(b)) })
	b.Run("dedup only", func(b *testing.B) { benchStage(b, PassThrough{}) })
}

func benchStage(b *testing.B, pipeline Pipeline) {
	const events, perMsg = 200_000, 100
	var total, cpu time.Duration
	for range b.N {
		b.StopTimer()
		l := streamtest.New(b)
		a := stream.NewAppender(l.JetStream(), stream.AppenderOptions{})
		actx, acancel := context.WithCancel(b.Context())
		var wg sync.WaitGroup
		wg.Go(func() { _ = a.Run(actx) })
		for m := 0; m < events/perMsg; m++ {
			var data []byte
			for i := range perMsg {
				data = event.AppendRecord(data, "web", benchEvent(m*perMsg+i))
			}
			if err := a.Append(b.Context(), data, perMsg); err != nil {
				b.Fatal(err)
			}
		}
		acancel()
		wg.Wait()
		last, _ := l.LastSeq(b.Context(), stream.IngestStream)
		s, err := New(b.Context(), l, Options{Dir: b.TempDir(), Pipeline: pipeline})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		b.StartTimer()
		cpu0 := cpuTime()
		start := time.Now()
		var run sync.WaitGroup
		run.Go(func() { _ = s.Run(ctx) })
		for s.Position() < last {
			time.Sleep(time.Millisecond)
		}
		total += time.Since(start)
		cpu += cpuTime() - cpu0
		b.StopTimer()
		skipped := skippedIDs(s) // before Run closes the indexes
		cancel()
		run.Wait()
		if skipped > 0 {
			b.Fatalf("the indexes skipped %d ids as older than their window: their writes were not measured", skipped)
		}
		if got := int(testutil.ToFloat64(s.m.events.WithLabelValues("web", string(OutcomeProcessed)))); got != events {
			b.Fatalf("processed %d events, want %d", got, events)
		}
	}
	b.ReportMetric(float64(events*b.N)/total.Seconds(), "events/s")
	// Per CPU-second of the whole process (stage, log server, indexes,
	// GC): the throughput one core would give if the stage never waited
	// for the disk.
	b.ReportMetric(float64(events*b.N)/cpu.Seconds(), "events/cpu-s")
}

// cpuTime is the CPU time (user and system) the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
