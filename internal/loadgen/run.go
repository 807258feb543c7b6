package loadgen

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure a load run. Zero values take the documented defaults.
type Options struct {
	// URL is the target's base URL, e.g. http://127.0.0.1:8088. Required.
	URL string
	// WriteKey is sent as the user name of Basic auth.
	WriteKey string
	// Target describes the target in the report. Default: URL.
	Target string
	// Connections is the number of concurrent connections, each with one
	// request in flight. Default: 32.
	Connections int
	// Duration of the measured window. Default: 10s.
	Duration time.Duration
	// Warmup runs before the measured window and is not counted. Default: 0.
	Warmup time.Duration
	// Body shapes the request bodies (batch size, event size, users, gzip).
	Body BodyOptions
	// Rate is the target in events per second. 0 sends as fast as the
	// connections allow (closed loop); more sends on an open-loop schedule
	// and measures latency from each request's due time.
	Rate float64
	// RequestTimeout bounds one request. Default: 30s.
	RequestTimeout time.Duration
	// CPUProfile, if set, receives a CPU profile of this process over the
	// measured window. With an in-process target it covers the server too.
	CPUProfile io.Writer
}

func (o *Options) defaults() error {
	if o.Connections == 0 {
		o.Connections = DefaultConnections
	}
	if o.Duration == 0 {
		o.Duration = DefaultDuration
	}
	if o.RequestTimeout == 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
	if o.Target == "" {
		o.Target = o.URL
	}
	u, err := url.Parse(o.URL)
	switch {
	case err != nil:
		return fmt.Errorf("target URL: %w", err)
	case u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
		return fmt.Errorf("target URL %q: want http://host:port", o.URL)
	case o.Connections < 1 || o.Connections > 10_000:
		return fmt.Errorf("connections %d: want 1 to 10000", o.Connections)
	case o.Duration < 0 || o.Warmup < 0 || o.RequestTimeout < 0:
		return errors.New("duration, warmup and request timeout must not be negative")
	case o.Rate < 0 || math.IsNaN(o.Rate) || math.IsInf(o.Rate, 0):
		return fmt.Errorf("rate %v: want 0 (as fast as possible) or more events/s", o.Rate)
	}
	return o.Body.defaults()
}

// Result is what a run measured. Counts cover requests due (open loop) or
// sent (closed loop) within the measured window.
type Result struct {
	// Options as run, with defaults applied.
	Options Options
	// Path is the endpoint the requests went to.
	Path string
	// BodyBytes and WireBytes are the mean body size as JSON and as sent.
	BodyBytes, WireBytes int
	// OK counts requests answered 200; Failed all others, including
	// transport errors.
	OK, Failed int64
	// Status counts answers by HTTP status; 0 counts transport errors.
	Status map[int]int64
	// Errors holds a few distinct failures (transport errors, non-200
	// answers) and rejection reasons.
	Errors []string
	// Events is the number of events accepted: those of requests answered
	// 200 less RejectedEvents, which the server listed as "rejected".
	Events, RejectedEvents int64
	// Bytes and Wire sum the body sizes of the requests answered 200, as
	// JSON and as sent.
	Bytes, Wire int64
	// Latency of requests answered 200.
	Latency *Histogram
}

// EventsPerSecond is the accepted event throughput.
func (r *Result) EventsPerSecond() float64 { return float64(r.Events) / r.Options.Duration.Seconds() }

// RequestsPerSecond is the successful request throughput.
func (r *Result) RequestsPerSecond() float64 { return float64(r.OK) / r.Options.Duration.Seconds() }

// MBPerSecond is the accepted JSON throughput in 10^6 bytes per second.
func (r *Result) MBPerSecond() float64 { return float64(r.Bytes) / 1e6 / r.Options.Duration.Seconds() }

// FailedFraction is the fraction of requests that failed (0 without requests).
func (r *Result) FailedFraction() float64 {
	if r.OK+r.Failed == 0 {
		return 0
	}
	return float64(r.Failed) / float64(r.OK+r.Failed)
}

// Text is the human report: target and shape, request counts, throughput
// and latency, one line each.
func (r *Result) Text() string {
	o := &r.Options
	var b []byte
	size := fmt.Sprintf("~%s", kb(r.BodyBytes))
	if o.Body.Gzip {
		size += fmt.Sprintf(", %s gzip", kb(r.WireBytes))
	}
	b = fmt.Appendf(b, "target: %s   connections: %d   ", o.Target, o.Connections)
	if o.Body.Batch == 1 {
		b = fmt.Appendf(b, "single events to %s (%s)", r.Path, size)
	} else {
		b = fmt.Appendf(b, "batch: %d events (%s)", o.Body.Batch, size)
	}
	b = fmt.Appendf(b, "   duration: %s", o.Duration)
	if o.Rate > 0 {
		b = fmt.Appendf(b, "   rate: %.0f events/s (open loop)", o.Rate)
	}
	codes := slices.Sorted(func(yield func(int) bool) {
		for c := range r.Status {
			if !yield(c) {
				return
			}
		}
	})
	var counts []string
	for _, c := range codes {
		name := fmt.Sprint(c)
		if c == 0 {
			name = "error"
		}
		counts = append(counts, fmt.Sprintf("%s=%d", name, r.Status[c]))
	}
	b = fmt.Appendf(b, "\nrequests: %d ok, %d failed (status counts: %s)\n", r.OK, r.Failed, strings.Join(counts, " "))
	if r.RejectedEvents > 0 {
		b = fmt.Appendf(b, "rejected events: %d (in 200 answers; not counted below)\n", r.RejectedEvents)
	}
	b = fmt.Appendf(b, "events/s: %.0f   requests/s: %.0f   MB/s: %.1f", r.EventsPerSecond(), r.RequestsPerSecond(), r.MBPerSecond())
	if o.Body.Gzip {
		b = fmt.Appendf(b, " (%.1f on the wire)", float64(r.Wire)/1e6/o.Duration.Seconds())
	}
	if h := r.Latency; h.Count() > 0 {
		b = fmt.Appendf(b, "\nlatency p50: %s  p99: %s  p99.9: %s  max: %s\n",
			ms(h.Quantile(0.5)), ms(h.Quantile(0.99)), ms(h.Quantile(0.999)), ms(h.Max()))
	} else {
		b = append(b, "\nlatency: none measured (no request succeeded)\n"...)
	}
	for _, e := range r.Errors {
		b = fmt.Appendf(b, "error: %s\n", e)
	}
	return string(b)
}

func kb(n int) string {
	if n < 1000 {
		return fmt.Sprintf("%d B", n)
	}
	return fmt.Sprintf("%.0f KB", float64(n)/1000)
}

func ms(d time.Duration) string {
	v := float64(d) / 1e6
	if v < 10 {
		return fmt.Sprintf("%.2fms", v)
	}
	return fmt.Sprintf("%.1fms", v)
}

// Run sends load to o.URL for o.Warmup + o.Duration and returns what it
// measured. It returns early with ctx's error if ctx ends first. A failed
// request is counted, never retried; Run's error is for a run that could
// not be made or was interrupted.
func Run(ctx context.Context, o Options) (*Result, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	bodies, err := NewBodies(o.Body)
	if err != nil {
		return nil, err
	}
	o.Body = bodies.opts
	endpoint := strings.TrimRight(o.URL, "/") + bodies.Path()
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(o.WriteKey+":"))

	tr := &http.Transport{
		Proxy:               nil, // never an environment proxy
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        o.Connections,
		MaxIdleConnsPerHost: o.Connections,
		MaxConnsPerHost:     o.Connections,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		WriteBufferSize:     64 << 10,
		ReadBufferSize:      16 << 10,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{
		Transport: tr,
		Timeout:   o.RequestTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}

	start := time.Now()
	r := &runner{
		opts: &o, bodies: bodies, client: client, endpoint: endpoint, auth: auth,
		start: start, from: start.Add(o.Warmup), until: start.Add(o.Warmup + o.Duration),
	}
	if o.Rate > 0 {
		r.interval = float64(time.Second) * float64(o.Body.Batch) / o.Rate
	}
	runCtx, cancel := context.WithDeadline(ctx, r.until.Add(o.RequestTimeout+time.Second))
	defer cancel()

	workers := make([]*worker, o.Connections)
	var wg sync.WaitGroup
	for i := range workers {
		w := &worker{r: r, hist: new(Histogram), status: map[int]int64{}}
		workers[i] = w
		wg.Go(func() {
			pprof.Do(runCtx, pprof.Labels("loadgen", "client"), w.loop)
		})
	}
	profErr := r.profile(runCtx)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if profErr != nil {
		return nil, profErr
	}

	res := &Result{Options: o, Path: bodies.Path(), Status: map[int]int64{}, Latency: new(Histogram)}
	res.BodyBytes, res.WireBytes = bodies.Size()
	for _, w := range workers {
		res.OK += w.ok
		res.Failed += w.failed
		res.Events += w.events
		res.RejectedEvents += w.rejected
		res.Bytes += w.bytes
		res.Wire += w.wire
		for c, n := range w.status {
			res.Status[c] += n
		}
		for _, e := range w.errs {
			if len(res.Errors) < 5 && !slices.Contains(res.Errors, e) {
				res.Errors = append(res.Errors, e)
			}
		}
		res.Latency.Merge(w.hist)
	}
	return res, nil
}

// runner is the shared, read-only state of a run plus its request counter.
type runner struct {
	opts        *Options
	bodies      *Bodies
	client      *http.Client
	endpoint    string
	auth        string
	start       time.Time
	from, until time.Time // the measured window
	interval    float64   // ns between due times; 0 for a closed loop
	next        atomic.Uint64
}

// profile waits for the measured window and writes a CPU profile of it.
func (r *runner) profile(ctx context.Context) error {
	if r.opts.CPUProfile == nil {
		return nil
	}
	if !sleepUntil(ctx, nil, r.from) {
		return nil
	}
	if err := pprof.StartCPUProfile(r.opts.CPUProfile); err != nil {
		return fmt.Errorf("starting CPU profile: %w", err)
	}
	defer pprof.StopCPUProfile()
	sleepUntil(ctx, nil, r.until)
	return nil
}

// sleepUntil waits until t or ctx's end and reports whether t came. A
// non-nil timer is reused.
func sleepUntil(ctx context.Context, timer *time.Timer, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	if timer == nil {
		timer = time.NewTimer(d)
		defer timer.Stop()
	} else {
		timer.Reset(d)
	}
	select {
	case <-ctx.Done():
		timer.Stop()
		return false
	case <-timer.C:
		return true
	}
}

// worker is one connection's sender and its private counts.
type worker struct {
	r       *runner
	scratch Scratch
	resp    bytes.Buffer
	header  http.Header

	ok, failed, events, rejected, bytes, wire int64
	status                                    map[int]int64
	errs                                      []string
	hist                                      *Histogram
}

// loop sends requests until the run's end: in a closed loop one after the
// other, in an open loop each at its due time.
func (w *worker) loop(ctx context.Context) {
	r := w.r
	w.header = http.Header{
		"Content-Type":  {"application/json"},
		"Authorization": {r.auth},
		"User-Agent":    {"conflux-bench"},
	}
	if r.opts.Body.Gzip {
		w.header["Content-Encoding"] = []string{"gzip"}
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for ctx.Err() == nil {
		k := r.next.Add(1) - 1
		var due time.Time
		if r.interval > 0 {
			due = r.start.Add(time.Duration(float64(k) * r.interval))
			if !due.Before(r.until) || !sleepUntil(ctx, timer, due) {
				return
			}
		} else if due = time.Now(); !due.Before(r.until) {
			return
		}
		w.send(ctx, k, due)
	}
}

// send makes request k, due at due, and counts it if due falls in the
// measured window.
func (w *worker) send(ctx context.Context, k uint64, due time.Time) {
	r := w.r
	batch := uint64(r.opts.Body.Batch)
	body := r.bodies.Build(&w.scratch, k, k*batch)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.endpoint, bytes.NewReader(body))
	if err != nil {
		w.fail(0, err.Error(), due)
		return
	}
	req.Header = w.header
	resp, err := r.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return // the run is over or interrupted: not the server's failure
		}
		w.fail(0, err.Error(), due)
		return
	}
	w.resp.Reset()
	_, rerr := io.Copy(&w.resp, io.LimitReader(resp.Body, 1<<20))
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	end := time.Now()
	if due.Before(r.from) || !due.Before(r.until) {
		return
	}
	if resp.StatusCode != http.StatusOK || rerr != nil {
		msg := ""
		if rerr != nil {
			msg = "reading the answer: " + rerr.Error()
		} else if resp.StatusCode != http.StatusOK {
			msg = fmt.Sprintf("%d: %s", resp.StatusCode, truncate(w.resp.String(), 200))
		}
		w.fail(resp.StatusCode, msg, due)
		return
	}
	w.ok++
	w.status[http.StatusOK]++
	w.events += int64(batch)
	w.bytes += int64(len(w.scratch.plain))
	w.wire += int64(len(body))
	w.hist.Record(end.Sub(due))
	if bytes.Contains(w.resp.Bytes(), []byte(`"rejected"`)) {
		var ans struct {
			Rejected []struct {
				Reason, Message string
			} `json:"rejected"`
		}
		if json.Unmarshal(w.resp.Bytes(), &ans) == nil && len(ans.Rejected) > 0 {
			w.rejected += int64(len(ans.Rejected))
			w.events -= int64(len(ans.Rejected))
			w.note("rejected: " + ans.Rejected[0].Reason + ": " + ans.Rejected[0].Message)
		}
	}
}

// fail counts a failed request if it was due in the measured window.
func (w *worker) fail(status int, msg string, due time.Time) {
	if due.Before(w.r.from) || !due.Before(w.r.until) {
		return
	}
	w.failed++
	w.status[status]++
	w.note(msg)
}

func (w *worker) note(msg string) {
	if msg != "" && len(w.errs) < 3 && !slices.Contains(w.errs, msg) {
		w.errs = append(w.errs, msg)
	}
}

func truncate(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
