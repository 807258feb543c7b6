// Package observe answers the question users ask of a CDP: exactly how
// fast and how reliably is my data delivered? It counts every outcome of
// every event per source × destination × event type × event name, with
// end-to-end latency, in minute buckets in memory; flushes them to the
// state store with the hour and day roll-ups in the same transaction;
// and serves them as Segment's delivery-metrics time series.
package observe

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/confluxcdp/conflux/internal/store"
)

// Outcomes counted. Delivery outcomes carry a destination; the stages
// before it (received, rejected, duplicate, suppressed, blocked) do not.
const (
	Received   = "received"
	Rejected   = "rejected"
	Duplicate  = "duplicate"
	Suppressed = "suppressed"
	Blocked    = "blocked"
	Filtered   = "filtered"
	Delivered  = "delivered"
	Retried    = "retried"
	Discarded  = "discarded"
	Expired    = "expired"
)

// Other is the event name that names beyond a source's limit fold into.
const Other = "(other)"

// AllDestinations is the destination id of the roll-up rows that every
// delivery count is also added to at flush, so that a query across all
// destinations reads as few rows as a query of one. No destination can
// have it as its id.
const AllDestinations = "*"

// Key is what one count is kept by.
type Key struct {
	Source      string
	Destination string
	EventType   string
	EventName   string
	Outcome     string
	// Reason narrows the outcome: the status code or reason of a discard
	// ("http_400"), the attempt number of a retry ("attempt.2"), why an
	// event was filtered ("integrations", "sampled"), …; "" for none.
	Reason string
}

// Granularities of the stored series.
const (
	Minute = "MINUTE"
	Hour   = "HOUR"
	Day    = "DAY"
)

// LatencyBounds are the upper bounds, in milliseconds, of the latency
// histogram's buckets; the last bucket has no bound.
var LatencyBounds = [...]int64{10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 1800000, 3600000, 14400000}

type latencyKey struct{ source, destination string }

// minuteCounts are one minute's unflushed counts.
type minuteCounts struct {
	counts  map[Key]int64
	latency map[latencyKey]*[len(LatencyBounds) + 1]int64
}

// Options configure a [Recorder].
type Options struct {
	// MaxEventNames bounds the distinct event names kept per source; the
	// others count as [Other]. Default: 200.
	MaxEventNames int
	// FlushEvery is how often counts reach the store. Default: 10s.
	FlushEvery time.Duration
	// Now is the clock. Default: time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Recorder aggregates outcomes in memory and flushes them to the store.
// It is safe for concurrent use; Add costs a map increment under a lock.
type Recorder struct {
	db   *store.DB
	opts Options

	// flushMu makes flushes one at a time.
	flushMu sync.Mutex
	mu      sync.Mutex
	minutes map[int64]*minuteCounts // by minute start, unix ms
	names   map[string]map[string]bool
	// flushing holds what a failed flush took, for the next one.
	flushing map[int64]*minuteCounts
}

// NewRecorder returns a recorder writing to db.
func NewRecorder(db *store.DB, opts Options) *Recorder {
	if opts.MaxEventNames <= 0 {
		opts.MaxEventNames = 200
	}
	if opts.FlushEvery <= 0 {
		opts.FlushEvery = 10 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Recorder{db: db, opts: opts, minutes: make(map[int64]*minuteCounts), names: make(map[string]map[string]bool)}
}

func minuteOf(t time.Time) int64 { return t.UTC().Truncate(time.Minute).UnixMilli() }

// foldName returns name, or Other once the source has MaxEventNames
// others. Called with r.mu held.
func (r *Recorder) foldName(source, name string) string {
	seen, ok := r.names[source]
	if !ok {
		seen = make(map[string]bool)
		r.names[source] = seen
	}
	if seen[name] {
		return name
	}
	if len(seen) >= r.opts.MaxEventNames {
		return Other
	}
	seen[name] = true
	return name
}

func (r *Recorder) minute(at time.Time) *minuteCounts {
	m := minuteOf(at)
	c, ok := r.minutes[m]
	if !ok {
		c = &minuteCounts{counts: make(map[Key]int64), latency: make(map[latencyKey]*[len(LatencyBounds) + 1]int64)}
		r.minutes[m] = c
	}
	return c
}

// Add counts n events with key k now.
func (r *Recorder) Add(k Key, n int64) {
	if n <= 0 {
		return
	}
	now := r.opts.Now()
	r.mu.Lock()
	k.EventName = r.foldName(k.Source, k.EventName)
	r.minute(now).counts[k] += n
	r.mu.Unlock()
}

// AddAll counts each key's n events now, under one lock: what a request
// or a batch counts at once.
func (r *Recorder) AddAll(counts map[Key]int64) {
	if len(counts) == 0 {
		return
	}
	now := r.opts.Now()
	r.mu.Lock()
	c := r.minute(now)
	for k, n := range counts {
		if n > 0 {
			k.EventName = r.foldName(k.Source, k.EventName)
			c.counts[k] += n
		}
	}
	r.mu.Unlock()
}

// Delivered counts one delivered event and its end-to-end latency
// (receivedAt to the destination's acknowledgement).
func (r *Recorder) Delivered(k Key, latency time.Duration) {
	now := r.opts.Now()
	k.Outcome = Delivered
	i := sort.Search(len(LatencyBounds), func(i int) bool { return latency.Milliseconds() <= LatencyBounds[i] })
	r.mu.Lock()
	k.EventName = r.foldName(k.Source, k.EventName)
	c := r.minute(now)
	c.counts[k]++
	lk := latencyKey{k.Source, k.Destination}
	h, ok := c.latency[lk]
	if !ok {
		h = new([len(LatencyBounds) + 1]int64)
		c.latency[lk] = h
	}
	h[i]++
	r.mu.Unlock()
}

// Run flushes every FlushEvery until ctx ends, then once more.
func (r *Recorder) Run(ctx context.Context) error {
	t := time.NewTicker(r.opts.FlushEvery)
	defer t.Stop()
	expire := time.NewTicker(10 * time.Minute)
	defer expire.Stop()
	for {
		select {
		case <-expire.C:
			if err := r.Expire(ctx, r.opts.Now()); err != nil && ctx.Err() == nil {
				r.opts.Logger.Warn("expiring delivery metrics failed", "err", err)
			}
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			return r.Flush(fctx)
		case <-t.C:
			if err := r.Flush(ctx); err != nil && ctx.Err() == nil {
				r.opts.Logger.Warn("flushing delivery metrics failed; they are kept for the next flush", "err", err)
			}
		}
	}
}

// Flush adds every unflushed count to the store, at the three
// granularities, in one transaction. On failure the counts stay for the
// next flush; on success they are forgotten, so a restart never counts
// them twice. A crash loses what was not flushed yet.
func (r *Recorder) Flush(ctx context.Context) error {
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	r.mu.Lock()
	if r.flushing == nil {
		r.flushing, r.minutes = r.minutes, make(map[int64]*minuteCounts)
	} else {
		// A failed flush left counts: fold the new ones into them.
		for m, c := range r.minutes {
			merge(r.flushing, m, c)
		}
		r.minutes = make(map[int64]*minuteCounts)
	}
	taken := r.flushing
	r.mu.Unlock()
	if len(taken) == 0 {
		r.mu.Lock()
		r.flushing = nil
		r.mu.Unlock()
		return nil
	}
	err := r.write(ctx, taken)
	r.mu.Lock()
	if err == nil {
		r.flushing = nil
	}
	r.mu.Unlock()
	return err
}

func merge(into map[int64]*minuteCounts, m int64, c *minuteCounts) {
	dst, ok := into[m]
	if !ok {
		into[m] = c
		return
	}
	for k, n := range c.counts {
		dst.counts[k] += n
	}
	for k, h := range c.latency {
		d, ok := dst.latency[k]
		if !ok {
			dst.latency[k] = h
			continue
		}
		for i := range h {
			d[i] += h[i]
		}
	}
}

// bucketStart returns the start of the bucket of granularity g holding
// the minute m (unix ms, UTC).
func bucketStart(g string, m int64) int64 {
	t := time.UnixMilli(m).UTC()
	switch g {
	case Hour:
		return t.Truncate(time.Hour).UnixMilli()
	case Day:
		return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC).UnixMilli()
	}
	return m
}

func (r *Recorder) write(ctx context.Context, taken map[int64]*minuteCounts) error {
	// Sum into each granularity's buckets first: an hour gets one upsert
	// per key however many minutes it has.
	type row struct {
		g      string
		bucket int64
		k      Key
	}
	counts := make(map[row]int64)
	type lrow struct {
		g      string
		bucket int64
		k      latencyKey
		le     int
	}
	lat := make(map[lrow]int64)
	for m, c := range taken {
		for _, g := range []string{Minute, Hour, Day} {
			b := bucketStart(g, m)
			for k, n := range c.counts {
				counts[row{g, b, k}] += n
				if k.Destination != "" {
					k.Destination = AllDestinations
					counts[row{g, b, k}] += n
				}
			}
			for k, h := range c.latency {
				all := latencyKey{k.source, AllDestinations}
				for i, n := range h {
					if n > 0 {
						lat[lrow{g, b, k, i}] += n
						lat[lrow{g, b, all, i}] += n
					}
				}
			}
		}
	}
	cq := r.db.Rebind(`
INSERT INTO delivery_metrics (granularity, destination_id, source_id, bucket, event_type, event_name, outcome, reason, count)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (granularity, destination_id, source_id, bucket, event_type, event_name, outcome, reason)
DO UPDATE SET count = delivery_metrics.count + excluded.count`)
	lq := r.db.Rebind(`
INSERT INTO delivery_latency (granularity, destination_id, source_id, bucket, le, count) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (granularity, destination_id, source_id, bucket, le) DO UPDATE SET count = delivery_latency.count + excluded.count`)
	err := r.db.InTx(ctx, func(tx *sql.Tx) error {
		cs, err := tx.PrepareContext(ctx, cq)
		if err != nil {
			return err
		}
		defer cs.Close()
		for k, n := range counts {
			if _, err := cs.ExecContext(ctx, k.g, k.k.Destination, k.k.Source, k.bucket, k.k.EventType, k.k.EventName, k.k.Outcome, k.k.Reason, n); err != nil {
				return err
			}
		}
		ls, err := tx.PrepareContext(ctx, lq)
		if err != nil {
			return err
		}
		defer ls.Close()
		for k, n := range lat {
			if _, err := ls.ExecContext(ctx, k.g, k.k.destination, k.k.source, k.bucket, k.le, n); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("writing %d delivery-metric counts: %w", len(counts), err)
	}
	return nil
}
