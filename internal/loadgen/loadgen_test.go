package loadgen_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/event"
	"github.com/confluxcdp/conflux/internal/loadgen"
	"github.com/confluxcdp/conflux/internal/server"
	"github.com/confluxcdp/conflux/internal/server/servertest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/nats-io/nats.go.(*Conn).flusher"))
}

// tracked is what the tests read back from a normalized event.
type tracked struct {
	Type        string `json:"type"`
	Event       string `json:"event"`
	MessageID   string `json:"messageId"`
	UserID      string `json:"userId"`
	AnonymousID string `json:"anonymousId"`
}

func TestBodiesParse(t *testing.T) {
	tests := []struct {
		name string
		opts loadgen.BodyOptions
	}{
		{"batch of 100", loadgen.BodyOptions{}},
		{"single events", loadgen.BodyOptions{Batch: 1}},
		{"gzip batch of 100", loadgen.BodyOptions{Gzip: true}},
		{"gzip single events", loadgen.BodyOptions{Batch: 1, Gzip: true, Pool: 50}},
		{"large events", loadgen.BodyOptions{Batch: 7, EventBytes: 2000, Users: 10}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := loadgen.NewBodies(tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			batch := b.Events()
			pathType, wantPath := "", "/v1/batch"
			if batch == 1 {
				pathType, wantPath = "track", "/v1/track"
			}
			if b.Path() != wantPath {
				t.Errorf("Path() = %q, want %q", b.Path(), wantPath)
			}
			wantEvent := max(tt.opts.EventBytes, loadgen.DefaultEventBytes)
			if plain, _ := b.Size(); math.Abs(float64(plain)/float64(batch)-float64(wantEvent)) > 0.05*float64(wantEvent) {
				t.Errorf("mean body %d bytes for %d events; want ~%d bytes per event", plain, batch, wantEvent)
			}

			lim := event.DefaultLimits()
			meta := event.Meta{SourceID: "src", ReceivedAt: time.Now()}
			ids := map[string]bool{}
			users := map[string]bool{}
			var s loadgen.Scratch
			var p event.Payload
			bodies := max(300/batch, 3) * 2 // enough to wrap around the pool
			for k := range uint64(bodies) {
				wire := b.Build(&s, k, k*uint64(batch))
				body := wire
				if tt.opts.Gzip {
					zr, err := gzip.NewReader(bytes.NewReader(wire))
					if err != nil {
						t.Fatalf("body %d: %v", k, err)
					}
					if body, err = io.ReadAll(zr); err != nil {
						t.Fatalf("body %d: %v", k, err)
					}
				}
				if !json.Valid(body) {
					t.Fatalf("body %d is not valid JSON: %.300s", k, body)
				}
				if err := p.Parse(body, pathType, lim); err != nil {
					t.Fatalf("body %d: %v", k, err)
				}
				recs, n, rej := p.AppendRecords(nil, meta, lim, nil)
				if n != batch || len(rej) != 0 {
					t.Fatalf("body %d: %d records, rejections %+v; want %d and none", k, n, rej, batch)
				}
				for r, err := range event.Records(recs) {
					if err != nil {
						t.Fatal(err)
					}
					var e tracked
					if err := json.Unmarshal(r.JSON, &e); err != nil {
						t.Fatal(err)
					}
					if e.Type != "track" || e.Event == "" || e.UserID == "" || e.AnonymousID == "" {
						t.Fatalf("event %+v: want a track event with event, userId and anonymousId", e)
					}
					if ids[e.MessageID] {
						t.Fatalf("messageId %q appears twice", e.MessageID)
					}
					ids[e.MessageID] = true
					users[e.UserID] = true
				}
			}
			if len(ids) != bodies*batch {
				t.Errorf("%d distinct messageIds, want %d", len(ids), bodies*batch)
			}
			nUsers := tt.opts.Users
			if nUsers == 0 {
				nUsers = loadgen.DefaultUsers
			}
			if want := min(nUsers, len(ids)) / 2; len(users) < want {
				t.Errorf("%d distinct users over %d events, want at least %d", len(users), len(ids), want)
			}
		})
	}
}

func TestBodiesOptions(t *testing.T) {
	for _, o := range []loadgen.BodyOptions{{Batch: 2501}, {Batch: -1}, {Users: -5}, {EventBytes: 40_000}} {
		if _, err := loadgen.NewBodies(o); err == nil {
			t.Errorf("NewBodies(%+v) succeeded, want an error", o)
		}
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var h, lo, hi loadgen.Histogram
	for i := 1; i <= 10_000; i++ {
		d := time.Duration(i) * time.Millisecond / 10 // 0.1 ms … 1 s
		h.Record(d)
		if i <= 5000 {
			lo.Record(d)
		} else {
			hi.Record(d)
		}
	}
	lo.Merge(&hi)
	for _, tt := range []struct {
		q    float64
		want time.Duration
	}{
		{0, 100 * time.Microsecond},
		{0.5, 500 * time.Millisecond},
		{0.9, 900 * time.Millisecond},
		{0.99, 990 * time.Millisecond},
		{0.999, 999 * time.Millisecond},
		{1, time.Second},
	} {
		for name, h := range map[string]*loadgen.Histogram{"recorded": &h, "merged": &lo} {
			got := h.Quantile(tt.q)
			if rel := math.Abs(float64(got-tt.want)) / float64(tt.want); rel > 0.005 {
				t.Errorf("%s: Quantile(%v) = %v, want %v within 0.5%%", name, tt.q, got, tt.want)
			}
		}
	}
	if h.Count() != 10_000 || lo.Count() != 10_000 || h.Max() != time.Second || lo.Max() != time.Second || h.Min() != 100*time.Microsecond {
		t.Errorf("count %d/%d, min %v, max %v/%v", h.Count(), lo.Count(), h.Min(), h.Max(), lo.Max())
	}

	var empty, one loadgen.Histogram
	one.Record(1234567 * time.Nanosecond)
	if empty.Quantile(0.99) != 0 || one.Quantile(0.5) != 1234567 || one.Quantile(0.999) != 1234567 {
		t.Errorf("empty p99 = %v, single p50 = %v", empty.Quantile(0.99), one.Quantile(0.5))
	}
	var small loadgen.Histogram
	for _, ns := range []time.Duration{5, 1, 3, 2, 4} {
		small.Record(ns)
	}
	if small.Quantile(0.5) != 3 || small.Quantile(0.8) != 4 || small.Quantile(0.81) != 5 {
		t.Errorf("small sample: p50 %v p80 %v p81 %v; want 3, 4, 5 (exact below 128ns)",
			small.Quantile(0.5), small.Quantile(0.8), small.Quantile(0.81))
	}
}

// checkRun asserts that a run succeeded and its counts agree.
func checkRun(t *testing.T, res *loadgen.Result) {
	t.Helper()
	t.Logf("\n%s", res.Text())
	if res.OK == 0 || res.Failed != 0 || res.RejectedEvents != 0 {
		t.Fatalf("ok %d, failed %d, rejected events %d; want ok > 0 and no failures\n%s", res.OK, res.Failed, res.RejectedEvents, res.Text())
	}
	if res.Events != res.OK*int64(res.Options.Body.Batch) || res.Latency.Count() != uint64(res.OK) || res.Status[200] != res.OK {
		t.Errorf("events %d, latencies %d, status %v for %d ok requests of %d events", res.Events, res.Latency.Count(), res.Status, res.OK, res.Options.Body.Batch)
	}
	if want := fmt.Sprintf("requests: %d ok, 0 failed (status counts: 200=%d)", res.OK, res.OK); !strings.Contains(res.Text(), want) {
		t.Errorf("report lacks %q:\n%s", want, res.Text())
	}
}

func TestRunNoop(t *testing.T) {
	target, err := loadgen.StartNoop()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := target.Close(); err != nil {
			t.Error(err)
		}
	})
	t.Run("closed loop", func(t *testing.T) {
		res, err := loadgen.Run(t.Context(), loadgen.Options{
			URL: target.URL, WriteKey: target.WriteKey, Target: target.Name,
			Connections: 2, Duration: time.Second, Warmup: 100 * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		checkRun(t, res)
	})
	t.Run("open loop", func(t *testing.T) {
		// 2,000 events/s in batches of 10: a request due every 5 ms.
		res, err := loadgen.Run(t.Context(), loadgen.Options{
			URL: target.URL, WriteKey: target.WriteKey, Connections: 2, Duration: time.Second,
			Rate: 2000, Body: loadgen.BodyOptions{Batch: 10, Gzip: true},
		})
		if err != nil {
			t.Fatal(err)
		}
		checkRun(t, res)
		if res.OK < 180 || res.OK > 201 {
			t.Errorf("%d requests in 1 s at 200 requests/s", res.OK)
		}
	})
}

func TestRunConflux(t *testing.T) {
	srv := servertest.Start(t, server.Options{})
	var sent int64
	for _, tt := range []struct {
		name     string
		duration time.Duration
		body     loadgen.BodyOptions
	}{
		{"batch", time.Second, loadgen.BodyOptions{}},
		{"gzip batch", 300 * time.Millisecond, loadgen.BodyOptions{Gzip: true}},
		{"single events", 300 * time.Millisecond, loadgen.BodyOptions{Batch: 1}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res, err := loadgen.Run(t.Context(), loadgen.Options{
				URL: srv.URL, WriteKey: srv.WriteKey, Connections: 2, Duration: tt.duration, Body: tt.body,
			})
			if err != nil {
				t.Fatal(err)
			}
			checkRun(t, res)
			sent += res.Events
		})
	}

	// Everything acknowledged is in the log, each messageId once.
	srv.Stop(t)
	recs := servertest.ReadIngest(t, srv.DataDir)
	if int64(len(recs)) < sent {
		t.Fatalf("the log holds %d records; %d were acknowledged", len(recs), sent)
	}
	ids := make(map[string]bool, len(recs))
	for _, r := range recs {
		var e tracked
		if err := json.Unmarshal(r.JSON, &e); err != nil {
			t.Fatal(err)
		}
		if ids[e.MessageID] {
			t.Fatalf("messageId %q is in the log twice", e.MessageID)
		}
		ids[e.MessageID] = true
	}
}

func TestRunBadWriteKey(t *testing.T) {
	srv := servertest.Start(t, server.Options{})
	res, err := loadgen.Run(t.Context(), loadgen.Options{
		URL: srv.URL, WriteKey: "wrong", Connections: 1, Duration: 200 * time.Millisecond, Body: loadgen.BodyOptions{Batch: 5},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK != 0 || res.Failed == 0 || res.Status[401] != res.Failed || res.FailedFraction() != 1 {
		t.Fatalf("ok %d, failed %d, status %v; want only 401s", res.OK, res.Failed, res.Status)
	}
	if !strings.Contains(res.Text(), "401=") || !strings.Contains(res.Text(), "error: 401: ") {
		t.Errorf("report:\n%s", res.Text())
	}
}
