package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/confluxcdp/conflux/internal/loadgen"
)

// benchDeliver measures delivery end to end: load into the Tracking API of
// an in-process Conflux, out through webhook destinations to receivers in
// this process, until every accepted event has arrived. With -isolation it
// runs twice, the healthy destination alone and then beside one whose
// receiver never answers in time, and prints the ratio of the healthy
// destination's throughput.
func benchDeliver(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flagSet("bench deliver", stderr)
	duration := fs.Duration("duration", 5*time.Second, "how long the load generator sends")
	batch := fs.Int("batch", loadgen.DefaultBatch, "events per Tracking API request")
	webhookBatch := fs.Int("webhook-batch", 100, "the webhook's batch_size: events per delivery request")
	concurrency := fs.Int("concurrency", 8, "the webhook destination's concurrency")
	shards := fs.Int("shards", 1, "the webhook destination's delivery.shards (on one node: what splitting its queue costs)")
	connections := fs.Int("connections", 16, "load generator connections")
	rate := fs.Float64("rate", 0, "events/s the load generator sends (open loop); 0: as fast as it can")
	isolation := fs.Bool("isolation", false, "run twice: alone, then beside a destination whose receiver times out; print the ratio")
	noMetrics := fs.Bool("no-metrics", false, "turn the delivery metrics off (compare with and without to see what they cost)")
	noProfiles := fs.Bool("no-profiles", false, "turn identity resolution and profiles off (compare with and without to see what they cost)")
	noArchive := fs.Bool("no-archive", false, "turn the Parquet event archive off (compare with and without to see what it costs)")
	insertFn := fs.Bool("insert-function", false, "give the source a trivial insert function (sets a property, returns the event)")
	destFn := fs.Bool("function", false, "deliver through a destination function (onBatch posting the batch with fetch) instead of a webhook")
	runs := fs.Int("runs", 3, "with -isolation, how many alternating pairs of runs; the ratio is of the medians")
	bad := fs.String("bad", "timeout", "with -isolation, what the second destination does: timeout (answers after its 2s timeout) or slow (10x the healthy receiver's time)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	run := func(withBad bool) (float64, error) {
		r, err := deliverRun(ctx, deliverRunOptions{
			duration: *duration, batch: *batch, webhookBatch: *webhookBatch, concurrency: *concurrency, shards: *shards,
			connections: *connections, rate: *rate, bad: map[bool]string{true: *bad}[withBad], noMetrics: *noMetrics, noProfiles: *noProfiles, noArchive: *noArchive,
			insertFunction: *insertFn, destinationFunction: *destFn,
		}, stdout)
		if err != nil {
			return 0, err
		}
		return r, nil
	}
	if !*isolation {
		_, err := run(false)
		return err
	}
	// The machine is noisy: alternate the two and compare medians.
	var alone, beside []float64
	for range max(*runs, 1) {
		a, err := run(false)
		if err != nil {
			return err
		}
		b, err := run(true)
		if err != nil {
			return err
		}
		alone, beside = append(alone, a), append(beside, b)
	}
	ma, mb := median(alone), median(beside)
	fmt.Fprintf(stdout, "isolation: healthy destination %.0f events/s beside a %s one, %.0f alone (medians of %d): ratio %.2f (target ≥ 0.9)\n",
		mb, *bad, ma, len(alone), mb/ma)
	return nil
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

type deliverRunOptions struct {
	duration                                      time.Duration
	batch, webhookBatch, concurrency, connections int
	shards                                        int
	rate                                          float64
	bad                                           string // "", "timeout" or "slow"
	noMetrics, noProfiles, noArchive              bool
	insertFunction, destinationFunction           bool
}

// The functions of `bench deliver -insert-function` and `-function`.
const (
	benchInsertFunction = `
    insert_function:
      code: |
        async function onTrack(event) { event.properties.checked = true; return event; }
`
	benchDestinationFunction = `
    code: |
      async function onBatch(events, settings) {
        const res = await fetch(settings.url, {
          method: "POST",
          headers: { "Content-Type": "application/json", Authorization: "Basic " + btoa(settings.key + ":") },
          body: JSON.stringify(events.map(e => ({ messageId: e.messageId, name: e.event, user: e.userId, at: e.timestamp, props: e.properties }))),
        });
        if (!res.ok) throw new RetryError("the receiver answered " + res.status);
      }
`
)

// benchReceiver counts the messageIds it is sent.
type benchReceiver struct {
	delay time.Duration // before answering
	mu    sync.Mutex
	ids   map[string]int
	last  time.Time
	srv   *http.Server
	url   string
}

func startBenchReceiver(delay time.Duration) (*benchReceiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listening for the webhook receiver: %w", err)
	}
	r := &benchReceiver{delay: delay, ids: make(map[string]int), url: "http://" + ln.Addr().String() + "/hook"}
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

func (r *benchReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	if r.delay > 0 {
		select {
		case <-time.After(r.delay):
		case <-req.Context().Done():
			return
		}
	}
	r.mu.Lock()
	loadgen.EachMessageID(body, func(id []byte) { r.ids[string(id)]++ })
	r.last = time.Now()
	r.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (r *benchReceiver) counts() (distinct, total int, last time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range r.ids {
		total += n
	}
	return len(r.ids), total, r.last
}

func (r *benchReceiver) close() { _ = r.srv.Close() }

// deliverRun runs one measurement and returns the healthy destination's
// end-to-end events/s.
func deliverRun(ctx context.Context, o deliverRunOptions, stdout io.Writer) (float64, error) {
	dir, err := os.MkdirTemp("", "conflux-bench-deliver-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	good, err := startBenchReceiver(0)
	if err != nil {
		return 0, err
	}
	defer good.close()
	cfg := fmt.Sprintf(`sources:
  - id: bench
    write_key: benchWriteKey0000000000000000001
admin_token: benchAdminToken000000000000000000000001
destinations:
  - id: good
    type: webhook
    sources: [bench]
    settings: {url: %q, batch_size: %d, timeout: 10s}
    delivery: {concurrency: %d, shards: %d}
`, good.url, o.webhookBatch, o.concurrency, max(o.shards, 1))
	if o.insertFunction {
		cfg = strings.Replace(cfg, "    write_key: benchWriteKey0000000000000000001\n", "    write_key: benchWriteKey0000000000000000001\n"+benchInsertFunction[1:], 1)
	}
	if o.destinationFunction {
		u, _ := url.Parse(good.url)
		cfg = strings.Replace(cfg, fmt.Sprintf("    type: webhook\n    sources: [bench]\n    settings: {url: %q, batch_size: %d, timeout: 10s}\n", good.url, o.webhookBatch),
			fmt.Sprintf("    type: function\n    sources: [bench]\n    allowed_hosts: [%q]\n    settings: {url: %q, key: k, batch_size: %d}\n", u.Host, good.url, min(o.webhookBatch, 400))+benchDestinationFunction[1:], 1)
	}
	if o.bad != "" {
		delay := 5 * time.Second // beyond its 2s timeout
		if o.bad == "slow" {
			delay = 20 * time.Millisecond
		}
		badRcv, err := startBenchReceiver(delay)
		if err != nil {
			return 0, err
		}
		defer badRcv.close()
		cfg += fmt.Sprintf(`  - id: bad
    type: webhook
    sources: [bench]
    settings: {url: %q, batch_size: %d, timeout: 2s}
    delivery: {concurrency: %d}
`, badRcv.url, o.webhookBatch, o.concurrency)
	}
	path := filepath.Join(dir, "conflux.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return 0, err
	}
	target, err := loadgen.StartConflux(ctx, loadgen.ConfluxOptions{DataDir: filepath.Join(dir, "data"), ConfigPath: path, NoDeliveryMetrics: o.noMetrics, NoProfiles: o.noProfiles, NoArchive: o.noArchive})
	if err != nil {
		return 0, err
	}
	defer target.Close()
	if err := waitQueue(ctx, target.URL, "benchAdminToken000000000000000000000001", "good"); err != nil {
		return 0, err
	}

	start := time.Now()
	res, err := loadgen.Run(ctx, loadgen.Options{URL: target.URL, WriteKey: target.WriteKey, Target: target.Name,
		Connections: o.connections, Duration: o.duration, Rate: o.rate, Body: loadgen.BodyOptions{Batch: o.batch}})
	if err != nil {
		return 0, err
	}
	sent := time.Since(start)
	// Wait until the receiver has every accepted event, or stops getting any.
	var distinct, total int
	var last time.Time
	for {
		distinct, total, last = good.counts()
		if int64(distinct) >= res.Events || (!last.IsZero() && time.Since(last) > 10*time.Second) {
			break
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		time.Sleep(10 * time.Millisecond)
	}
	took := last.Sub(start)
	eps := float64(distinct) / took.Seconds()
	label := "healthy destination alone"
	if o.bad != "" {
		label = "healthy destination beside a " + o.bad + " one"
	}
	fmt.Fprintf(stdout, "%s: accepted %d events in %s (%.0f events/s in), delivered %d distinct (%d requests' worth, %d repeats) by %s: %.0f events/s end to end (webhook batch %d, concurrency %d)\n",
		label, res.Events, sent.Round(time.Millisecond), float64(res.Events)/sent.Seconds(), distinct, total, total-distinct,
		took.Round(time.Millisecond), eps, o.webhookBatch, o.concurrency)
	if res.Failed > 0 || sent > o.duration*3/2 {
		fmt.Fprintf(stdout, "  load generator: %s", res.Text())
	}
	if int64(distinct) < res.Events {
		return eps, fmt.Errorf("only %d of %d accepted events were delivered", distinct, res.Events)
	}
	return eps, nil
}
