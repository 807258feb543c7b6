package postgres

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/confluxcdp/conflux/internal/deliver"
	"github.com/confluxcdp/conflux/internal/deliver/settings"
	"github.com/confluxcdp/conflux/internal/deliver/warehouse"
	"github.com/confluxcdp/conflux/internal/event"
	"github.com/confluxcdp/conflux/internal/store"
)

// MaxBatch is the most events the engine hands one Send; a load takes
// every batch waiting.
const MaxBatch = 10_000

// Type is the PostgreSQL warehouse destination type: settings url (a
// PostgreSQL connection string) and interval (how often it loads; default
// 1m, 1s to 24h).
var Type = &deliver.Type{
	Name:         "postgres",
	Integrations: []string{"Postgres", "PostgreSQL"},
	MaxBatch:     MaxBatch,
	New:          newDestination,
}

var knownSettings = []string{"url", "interval"}

// destination loads what the engine sends in micro-batches: each Send
// waits, like a request in a group commit, until the interval has passed
// since the last load, a full batch's worth of events waits, or every
// sender of the engine waits; one load then takes every waiting batch and
// answers them all. So loads keep
// to the schedule when events are few, and grow with the backlog when they
// are many; the engine keeps its retries, dead letters and position.
type destination struct {
	id       string
	db       *store.DB // nil: no sync history (checking settings)
	loader   *Loader
	interval time.Duration
	// senders is the engine's concurrency: when that many Sends wait, no
	// more can come, and waiting longer only delays.
	senders int
	log     *slog.Logger

	mu      sync.Mutex
	waiting []*waiter
	events  int
	wake    chan struct{}
	stop    chan struct{}
	done    chan struct{}
}

type waiter struct {
	events  []*deliver.Event
	results chan []deliver.Result
}

func newDestination(_ context.Context, cfg deliver.Config) (deliver.Destination, error) {
	cfg = cfg.WithDefaults()
	r := settings.New(cfg.Settings, knownSettings...)
	url := r.String("url", "")
	if url == "" {
		r.Problemf("url", "required: a PostgreSQL connection string, postgres://user:password@host:5432/db")
	}
	interval := r.Duration("interval", time.Minute)
	r.CheckDuration("interval", interval, time.Second, 24*time.Hour)
	if err := r.Err(); err != nil {
		return nil, err
	}
	l, err := New(url)
	if err != nil {
		return nil, fmt.Errorf("settings.url: %w", err)
	}
	d := &destination{id: cfg.ID, db: cfg.DB, loader: l, interval: interval, senders: max(cfg.Concurrency, 1), log: cfg.Logger,
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go d.run()
	return d, nil
}

// Send waits for the load that takes events and returns its results; when
// ctx ends first, the events are to be retried (a load that finishes later
// wrote them, and the retry then adds nothing: loads are by id).
func (d *destination) Send(ctx context.Context, events []*deliver.Event) []deliver.Result {
	w := &waiter{events: events, results: make(chan []deliver.Result, 1)}
	d.mu.Lock()
	d.waiting = append(d.waiting, w)
	d.events += len(events)
	full := d.events >= MaxBatch || len(d.waiting) >= d.senders
	d.mu.Unlock()
	if full {
		select {
		case d.wake <- struct{}{}:
		default:
		}
	}
	select {
	case res := <-w.results:
		return res
	case <-ctx.Done():
		return all(len(events), deliver.Result{Outcome: deliver.Retry, Reason: deliver.ReasonTimeout, Error: "stopped before the load"})
	case <-d.done:
		return all(len(events), deliver.Result{Outcome: deliver.Retry, Reason: deliver.ReasonConnection, Error: "destination closed"})
	}
}

// run loads on the schedule, or sooner when enough events wait.
func (d *destination) run() {
	defer close(d.done)
	t := time.NewTimer(d.interval)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-d.wake:
		case <-t.C:
		}
		d.mu.Lock()
		batch := d.waiting
		d.waiting, d.events = nil, 0
		d.mu.Unlock()
		if len(batch) > 0 {
			d.load(batch)
		}
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		t.Reset(d.interval)
	}
}

// load writes the waiting batches, one transaction per source, and
// answers every waiter.
func (d *destination) load(batch []*waiter) {
	type ref struct {
		w *waiter
		i int
	}
	results := make([][]deliver.Result, len(batch))
	bySource := map[string][]warehouse.Row{}
	refs := map[string][]ref{}
	now := time.Now()
	for wi, w := range batch {
		results[wi] = make([]deliver.Result, len(w.events))
		for i, ev := range w.events {
			doc, err := event.Decode(ev.JSON)
			var rows []warehouse.Row
			if err == nil {
				rows = warehouse.Rows(doc, now)
			}
			if len(rows) == 0 {
				results[wi][i] = deliver.Result{Outcome: deliver.Discard, Reason: deliver.ReasonInvalidEvent,
					Error: "the event has no row in the warehouse layout (no messageId, or a track without an event name)"}
				continue
			}
			bySource[ev.SourceID] = append(bySource[ev.SourceID], rows...)
			refs[ev.SourceID] = append(refs[ev.SourceID], ref{w, i})
			results[wi][i] = deliver.Result{Outcome: deliver.Delivered}
		}
	}
	index := map[*waiter]int{}
	for wi, w := range batch {
		index[w] = wi
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for src, rows := range bySource {
		start := time.Now()
		st, err := d.loader.Load(ctx, src, rows)
		sync := warehouse.Sync{DestinationID: d.id, SourceID: src, StartedAt: start, FinishedAt: time.Now(), Status: "success",
			Events: int64(len(refs[src])), Rows: st.Rows}
		if err != nil {
			d.log.Warn("warehouse load failed; its events will be retried", "source", src, "rows", len(rows), "err", err)
			for _, r := range refs[src] {
				results[index[r.w]][r.i] = deliver.Result{Outcome: deliver.Retry, Reason: deliver.ReasonDestinationError, Error: err.Error()}
			}
			sync.Status, sync.Error, sync.Rows = "failure", err.Error(), map[string]int64{}
		} else {
			d.log.Info("warehouse load", "source", src, "events", len(refs[src]), "rows", st.Rows, "took", time.Since(start).Round(time.Millisecond))
		}
		if d.db != nil {
			if err := warehouse.Record(ctx, d.db, sync); err != nil {
				d.log.Warn("recording a warehouse sync", "err", err)
			}
		}
	}
	for wi, w := range batch {
		w.results <- results[wi]
	}
}

// Close stops the loads and closes the connections.
func (d *destination) Close() error {
	close(d.stop)
	<-d.done
	d.loader.Close()
	return nil
}

func all(n int, r deliver.Result) []deliver.Result {
	out := make([]deliver.Result, n)
	for i := range out {
		out[i] = r
	}
	return out
}
