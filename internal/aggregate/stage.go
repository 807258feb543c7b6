package aggregate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/confluxcdp/conflux/internal/aggregate/identity"
	"github.com/confluxcdp/conflux/internal/aggregate/profile"
	"github.com/confluxcdp/conflux/internal/event"
	"github.com/confluxcdp/conflux/internal/store"
	"github.com/confluxcdp/conflux/internal/stream"
	"github.com/prometheus/client_golang/prometheus"
)

// positionName is the stage's row in profile_positions.
const positionName = "aggregate"

// Options configure a [Stage]. Zero values take the documented defaults.
type Options struct {
	Log *stream.Log
	DB  *store.DB
	// Rules returns the identity rules in force (read once per batch).
	Rules func() *identity.Rules
	// Retention returns how long the event history is kept. Default: 14 days.
	Retention func() time.Duration
	// NoHistory, when it returns true, keeps events out of the history.
	NoHistory func() bool
	// Cache sizes the identity graph's caches.
	Cache identity.Options
	// MaxBatchBytes bounds the processed bytes of one transaction.
	// Default: 1 MiB.
	MaxBatchBytes int
	// Linger is how long a batch waits for one more message. Default: 20ms.
	Linger time.Duration
	// PruneEvery is how often history past the retention is deleted.
	// Default: 1 minute.
	PruneEvery time.Duration
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	Now        func() time.Time
}

// Stage is the aggregation stage of one node.
type Stage struct {
	opts     Options
	resolver *Resolver
	m        *metrics
	pos      atomic.Uint64
}

// New returns the stage; Run runs it.
func New(opts Options) *Stage {
	if opts.Retention == nil {
		opts.Retention = func() time.Duration { return 14 * 24 * time.Hour }
	}
	if opts.MaxBatchBytes <= 0 {
		opts.MaxBatchBytes = 1 << 20
	}
	if opts.Linger <= 0 {
		opts.Linger = 20 * time.Millisecond
	}
	if opts.PruneEvery <= 0 {
		opts.PruneEvery = time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	r := NewResolver(opts.DB, opts.Rules, opts.Cache, opts.Logger)
	r.now, r.NoHistory = opts.Now, opts.NoHistory
	return &Stage{opts: opts, resolver: r, m: newMetrics(opts.Registerer)}
}

// Position is the last processed sequence applied. Safe from any goroutine.
func (s *Stage) Position() uint64 { return s.pos.Load() }

// Run applies the processed log until ctx ends, and prunes the history.
// A failing store or log is retried with backoff; nothing is skipped.
func (s *Stage) Run(ctx context.Context) error {
	pruned := make(chan struct{})
	go func() { defer close(pruned); s.prune(ctx) }()
	defer func() { <-pruned }() // nothing writes after Run returns
	delay := 100 * time.Millisecond
	for ctx.Err() == nil {
		from := s.pos.Load()
		err := s.read(ctx)
		if ctx.Err() != nil {
			break
		}
		if s.pos.Load() != from {
			delay = 100 * time.Millisecond
		}
		level := slog.LevelWarn
		if errors.Is(err, ErrMoved) {
			level = slog.LevelInfo // another node applied it: expected with several nodes
		}
		s.opts.Logger.Log(ctx, level, "aggregation interrupted; retrying", "err", err, "position", s.pos.Load())
		select {
		case <-ctx.Done():
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
	s.opts.Logger.Info("aggregation stage stopped", "position", s.pos.Load())
	return nil
}

// read applies the log from the stored position until reading or
// applying fails.
func (s *Stage) read(ctx context.Context) error {
	pos, err := LoadPosition(ctx, s.opts.DB)
	if err != nil {
		return err
	}
	s.pos.Store(pos)
	// Another node may have applied batches meanwhile: what the caches
	// hold may be out of date.
	s.resolver.reset()
	r, err := s.opts.Log.ReadAlone(ctx, "conflux-aggregate", stream.ProcessedStream, pos+1)
	if err != nil {
		return err
	}
	defer r.Close()
	var recs []Record
	for {
		msgs, err := r.Next(ctx, s.opts.MaxBatchBytes, s.opts.Linger)
		if err != nil {
			return err
		}
		if want := s.pos.Load() + 1; msgs[0].Seq > want {
			// The log's retention removed them before they were applied.
			s.opts.Logger.Error("processed messages expired before they were applied to profiles", "from", want, "to", msgs[0].Seq-1)
			s.m.expired.Add(float64(msgs[0].Seq - want))
		}
		recs = recs[:0]
		for _, m := range msgs {
			for rec, err := range event.Records(m.Data) {
				if err != nil {
					// The processing stage wrote it; a broken one is said and skipped.
					s.opts.Logger.Error("processed message not readable; its rest is not applied to profiles", "seq", m.Seq, "err", err)
					break
				}
				recs = append(recs, Record{Source: rec.SourceID, JSON: rec.JSON})
			}
		}
		last := msgs[len(msgs)-1]
		start := time.Now()
		c, err := s.resolver.Apply(ctx, recs, func(ctx context.Context, tx *sql.Tx) error {
			return movePosition(ctx, s.opts.DB, tx, s.pos.Load(), last.Seq, s.opts.Now())
		})
		if err != nil {
			return fmt.Errorf("applying processed messages %d-%d to profiles: %w", msgs[0].Seq, last.Seq, err)
		}
		s.pos.Store(last.Seq)
		s.m.count(c, last, time.Since(start))
	}
}

// LoadPosition returns the last processed sequence the stage applied (0
// for none).
func LoadPosition(ctx context.Context, db *store.DB) (uint64, error) {
	var seq int64
	err := db.SQL().QueryRowContext(ctx, db.Rebind(`SELECT seq FROM profile_positions WHERE name = ?`), positionName).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading the aggregation stage's position: %w", err)
	}
	return uint64(seq), nil
}

// ErrMoved means another node moved the stage's position: what this node
// read is stale, and it reads again from the stored position.
var ErrMoved = errors.New("the aggregation position was moved by another node")

// movePosition moves the stored position from from to to, in tx, after
// checking (with the row locked on PostgreSQL; SQLite's transaction holds
// the write lock already) that it is still from.
func movePosition(ctx context.Context, db *store.DB, tx *sql.Tx, from, to uint64, now time.Time) error {
	lock := ""
	if db.Dialect() == store.Postgres {
		lock = " FOR UPDATE"
	}
	if _, err := tx.ExecContext(ctx, db.Rebind(`INSERT INTO profile_positions (name, seq, updated_at) VALUES (?, 0, ?)
	ON CONFLICT (name) DO NOTHING`), positionName, now.UnixMilli()); err != nil {
		return fmt.Errorf("creating the aggregation stage's position: %w", err)
	}
	var have int64
	if err := tx.QueryRowContext(ctx, db.Rebind(`SELECT seq FROM profile_positions WHERE name = ?`+lock), positionName).Scan(&have); err != nil {
		return fmt.Errorf("reading the aggregation stage's position: %w", err)
	}
	if uint64(have) != from {
		return fmt.Errorf("%w: at %d, this node was at %d", ErrMoved, have, from)
	}
	if _, err := tx.ExecContext(ctx, db.Rebind(`UPDATE profile_positions SET seq = ?, updated_at = ? WHERE name = ?`),
		int64(to), now.UnixMilli(), positionName); err != nil {
		return fmt.Errorf("saving the aggregation stage's position %d: %w", to, err)
	}
	return nil
}

// prune deletes history past the retention, in small transactions so as
// not to hold the store's write lock long.
func (s *Stage) prune(ctx context.Context) {
	t := time.NewTicker(s.opts.PruneEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cutoff := s.opts.Now().Add(-s.opts.Retention())
		for ctx.Err() == nil {
			n, err := profile.Prune(ctx, s.opts.DB, cutoff, 2000)
			if err != nil {
				s.opts.Logger.Warn("pruning profile history", "err", err)
				break
			}
			s.m.pruned.Add(float64(n))
			if n == 0 {
				break
			}
		}
	}
}

type metrics struct {
	events   *prometheus.CounterVec
	created  prometheus.Counter
	merges   prometheus.Counter
	dropped  prometheus.Counter
	capped   prometheus.Counter
	pruned   prometheus.Counter
	expired  prometheus.Counter
	batch    prometheus.Histogram
	lag      prometheus.Gauge
	position prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "conflux_aggregate_events_total",
			Help: "Processed events handled by the aggregation stage, by outcome (resolved, unresolved: no identifier left, invalid).",
		}, []string{"outcome"}),
		created: prometheus.NewCounter(prometheus.CounterOpts{Name: "conflux_identity_profiles_created_total", Help: "Profiles created by identity resolution."}),
		merges:  prometheus.NewCounter(prometheus.CounterOpts{Name: "conflux_identity_merges_total", Help: "Profiles merged into another."}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "conflux_identity_dropped_identifiers_total", Help: "Identifiers left out of an event to keep a limit."}),
		capped:  prometheus.NewCounter(prometheus.CounterOpts{Name: "conflux_identity_capped_total", Help: "Events kept from merging or adding identifiers by the per-profile caps."}),
		pruned:  prometheus.NewCounter(prometheus.CounterOpts{Name: "conflux_profile_events_pruned_total", Help: "History events deleted past the retention."}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "conflux_aggregate_expired_messages_total",
			Help: "Processed messages the log's retention removed before the aggregation stage applied them.",
		}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "conflux_aggregate_batch_duration_seconds", Help: "Time to apply one batch of processed messages.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		lag:      prometheus.NewGauge(prometheus.GaugeOpts{Name: "conflux_aggregate_lag_messages", Help: "Processed messages not yet applied to profiles."}),
		position: prometheus.NewGauge(prometheus.GaugeOpts{Name: "conflux_aggregate_position", Help: "Last processed sequence applied to profiles."}),
	}
	if reg != nil {
		reg.MustRegister(m.events, m.created, m.merges, m.dropped, m.capped, m.pruned, m.expired, m.batch, m.lag, m.position)
	}
	return m
}

func (m *metrics) count(c Counts, last stream.Msg, took time.Duration) {
	m.events.WithLabelValues("resolved").Add(float64(c.Events))
	m.events.WithLabelValues("unresolved").Add(float64(c.Unresolved))
	m.events.WithLabelValues("invalid").Add(float64(c.Invalid))
	m.created.Add(float64(c.Created))
	m.merges.Add(float64(c.Merges))
	m.dropped.Add(float64(c.Dropped))
	m.capped.Add(float64(c.Capped))
	m.batch.Observe(took.Seconds())
	m.lag.Set(float64(last.Pending))
	m.position.Set(float64(last.Seq))
}
