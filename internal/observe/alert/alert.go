// Package alert evaluates the workspace's alert rules over the delivery
// metrics and tells a webhook when one fires and when it resolves.
//
// Every [Options].Every the [Evaluator] reads the rules from the live
// workspace snapshot and, for each enabled one, the counts that
// internal/observe stores in delivery_metrics (minute buckets; the window
// is the last N of them, the current minute included). A rule's state
// (ok or firing, since when, the last value) is kept in the state store,
// so a restart neither forgets a firing alert nor sends it again. Each
// transition is recorded in the same transaction as the state, with the
// JSON body of its notification; notifications are then POSTed, in order
// per rule, with a few attempts, and a failed one stays pending for the
// next evaluation (for up to [Options].GiveUpAfter). Nodes sharing a store
// may each run an evaluator: a transition is recorded by one of them, and
// a notification is sent by the node that leases it.
//
// It deliberately does not count anything itself, nor hold alerts in
// memory: the store is the one place of truth, so that any node answers
// the API alike.
package alert

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/confluxcdp/conflux/internal/config"
	"github.com/confluxcdp/conflux/internal/observe"
	"github.com/confluxcdp/conflux/internal/store"
)

// Statuses of an alert event.
const (
	Firing   = "firing"
	Resolved = "resolved"
)

// Options configure an [Evaluator]. Zero fields take their defaults.
type Options struct {
	// Every is how often the rules are evaluated. Default: 30s.
	Every time.Duration
	// Now is the clock. Default: time.Now.
	Now func() time.Time
	// Client sends the notifications. Default: a client with a 10 s
	// timeout that follows no redirects.
	Client *http.Client
	// Attempts is how many times one evaluation tries to send a
	// notification before leaving it to the next. Default: 3.
	Attempts int
	// Backoff is the wait before the second attempt, doubled before each
	// later one. Default: 1s.
	Backoff time.Duration
	// GiveUpAfter is how long after its transition a notification that
	// could not be sent is abandoned (recorded as failed). Default: 24h.
	GiveUpAfter time.Duration
	// KeepEvents is how long the history of transitions is kept.
	// Default: 720h (30 days).
	KeepEvents time.Duration
	Logger     *slog.Logger
}

// lease is how long a node holds a notification it is sending before
// another may take it over; it is longer than every attempt of one
// evaluation together.
const lease = 5 * time.Minute

// Evaluator evaluates alert rules and sends their notifications. Its
// methods are safe for concurrent use.
type Evaluator struct {
	db        *store.DB
	workspace func() *config.Workspace
	opts      Options
}

// New returns an evaluator of the rules of workspace() over the delivery
// metrics in db.
func New(db *store.DB, workspace func() *config.Workspace, opts Options) *Evaluator {
	if opts.Every <= 0 {
		opts.Every = 30 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Client == nil {
		opts.Client = &http.Client{
			Timeout:       10 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if opts.Attempts <= 0 {
		opts.Attempts = 3
	}
	if opts.Backoff <= 0 {
		opts.Backoff = time.Second
	}
	if opts.GiveUpAfter <= 0 {
		opts.GiveUpAfter = 24 * time.Hour
	}
	if opts.KeepEvents <= 0 {
		opts.KeepEvents = 30 * 24 * time.Hour
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Evaluator{db: db, workspace: workspace, opts: opts}
}

// Run evaluates the rules at once and then every Every until ctx ends;
// it returns nil then. A failed evaluation is logged and the next one
// tries again.
func (e *Evaluator) Run(ctx context.Context) error {
	t := time.NewTicker(e.opts.Every)
	defer t.Stop()
	for {
		if err := e.Evaluate(ctx); err != nil && ctx.Err() == nil {
			e.opts.Logger.Warn("evaluating alerts failed; the next evaluation tries again", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Evaluate runs one evaluation: it measures every enabled rule, records
// the transitions (a disabled rule that was firing resolves), forgets the
// state of deleted rules, and sends the pending notifications. It returns
// once they are sent or left for the next evaluation; the error joins what
// failed.
func (e *Evaluator) Evaluate(ctx context.Context) error {
	now := e.opts.Now().UTC().Truncate(time.Millisecond)
	ws := e.workspace()
	if ws == nil {
		return nil
	}
	var errs []error
	for i := range ws.Alerts {
		r := &ws.Alerts[i]
		if err := e.evaluate(ctx, r, now); err != nil {
			errs = append(errs, fmt.Errorf("evaluating alert %q: %w", r.ID, err))
		}
	}
	if err := e.forget(ctx, now); err != nil {
		errs = append(errs, err)
	}
	if err := e.notify(ctx, ws, now); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// measurement is what one evaluation found for a rule.
type measurement struct {
	// value is nil when there was nothing to measure.
	value  *float64
	firing bool
	// hold keeps the state as it is: too few final outcomes to judge while
	// events still await retry (a destination so far down that nothing
	// is delivered or discarded must not look resolved).
	hold bool
}

// evaluate measures rule r and records its transition, if any.
func (e *Evaluator) evaluate(ctx context.Context, r *config.Alert, now time.Time) error {
	if !r.Enabled {
		return e.record(ctx, r, now, nil)
	}
	m, err := e.measure(ctx, r, now)
	if err != nil {
		return err
	}
	return e.record(ctx, r, now, &m)
}

// measure computes r's value over its window ending at now.
func (e *Evaluator) measure(ctx context.Context, r *config.Alert, now time.Time) (measurement, error) {
	w := time.Duration(r.Window)
	end := now.Truncate(time.Minute).Add(time.Minute) // the current minute included
	start := end.Add(-w)
	cur, err := e.counts(ctx, r, start, end)
	if err != nil {
		return measurement{}, err
	}
	switch r.Kind {
	case config.SuccessRateBelow:
		final := cur[observe.Delivered] + cur[observe.Discarded] + cur[observe.Expired]
		if final == 0 || final < r.MinEvents {
			return measurement{hold: cur[observe.Retried] > 0}, nil
		}
		rate := float64(cur[observe.Delivered]) / float64(final)
		return measurement{value: &rate, firing: rate < r.Threshold}, nil
	case config.DiscardsAbove:
		v := float64(cur[observe.Discarded])
		return measurement{value: &v, firing: v > r.Threshold}, nil
	case config.DiscardsChange:
		prev, err := e.counts(ctx, r, start.Add(-w), start)
		if err != nil {
			return measurement{}, err
		}
		grew := cur[observe.Discarded] - prev[observe.Discarded]
		pct := 100 * float64(grew) / float64(max(prev[observe.Discarded], 1))
		return measurement{value: &pct, firing: grew >= r.MinEvents && pct >= r.Threshold}, nil
	}
	return measurement{}, fmt.Errorf("unknown kind %q", r.Kind)
}

// counts sums r's final delivery outcomes in the minute buckets from
// start (inclusive) to end (exclusive).
func (e *Evaluator) counts(ctx context.Context, r *config.Alert, start, end time.Time) (map[string]int64, error) {
	q := `SELECT outcome, SUM(count) FROM delivery_metrics
WHERE granularity = ? AND bucket >= ? AND bucket < ? AND outcome IN (?, ?, ?, ?)`
	args := []any{observe.Minute, start.UnixMilli(), end.UnixMilli(), observe.Delivered, observe.Discarded, observe.Expired, observe.Retried}
	if r.Destination != "" {
		q += ` AND destination_id = ?`
		args = append(args, r.Destination)
	} else {
		q += ` AND destination_id = ?` // the roll-up across destinations
		args = append(args, observe.AllDestinations)
	}
	if r.Source != "" {
		q += ` AND source_id = ?`
		args = append(args, r.Source)
	}
	q += ` GROUP BY outcome`
	rows, err := e.db.SQL().QueryContext(ctx, e.db.Rebind(q), args...)
	if err != nil {
		return nil, fmt.Errorf("reading delivery metrics: %w", err)
	}
	defer rows.Close()
	out := make(map[string]int64, 3)
	for rows.Next() {
		var outcome string
		var n int64
		if err := rows.Scan(&outcome, &n); err != nil {
			return nil, fmt.Errorf("reading delivery metrics: %w", err)
		}
		out[outcome] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading delivery metrics: %w", err)
	}
	return out, nil
}

// Notification is the JSON body POSTed to a rule's webhook on a
// transition.
type Notification struct {
	AlertID string `json:"alert_id"`
	Name    string `json:"name"`
	// Status is [Firing] or [Resolved].
	Status string           `json:"status"`
	Kind   config.AlertKind `json:"kind"`
	// Destination and Source are the rule's; "" for all.
	Destination string `json:"destination"`
	Source      string `json:"source"`
	// Value is what the evaluation measured: a success rate (a fraction),
	// a count of discards, or a change of discards in percent; null when
	// there was nothing to measure (too few events for a success rate, a
	// disabled rule).
	Value     *float64        `json:"value"`
	Threshold float64         `json:"threshold"`
	Window    config.Duration `json:"window"`
	// StartedAt is when the alert started firing: At for a firing
	// notification, the start of the episode that ended for a resolved
	// one.
	StartedAt time.Time `json:"started_at"`
	// At is when the transition was found.
	At time.Time `json:"at"`
}

// record stores the outcome of evaluating r at now: m nil means r is
// disabled (it resolves if it was firing, else nothing is written). On a
// transition it records an event with its notification, in the same
// transaction, so that exactly one of the nodes sharing the store does.
func (e *Evaluator) record(ctx context.Context, r *config.Alert, now time.Time, m *measurement) error {
	at := now.UnixMilli()
	var value *float64
	if m != nil {
		value = m.value
	}
	var transition *Notification
	err := e.db.InTx(ctx, func(tx *sql.Tx) error {
		if m != nil {
			if _, err := tx.ExecContext(ctx, e.db.Rebind(`INSERT INTO alert_states (alert_id, state, since, evaluated_at) VALUES (?, ?, ?, ?)
ON CONFLICT (alert_id) DO NOTHING`), r.ID, config.AlertOK, at, at); err != nil {
				return fmt.Errorf("storing the state: %w", err)
			}
		}
		q := `SELECT state, since, last_value FROM alert_states WHERE alert_id = ?`
		if e.db.Dialect() == store.Postgres {
			q += ` FOR UPDATE` // SQLite's BEGIN IMMEDIATE already excludes other writers
		}
		var (
			state string
			since int64
			last  sql.NullFloat64
		)
		err := tx.QueryRowContext(ctx, e.db.Rebind(q), r.ID).Scan(&state, &since, &last)
		if errors.Is(err, sql.ErrNoRows) && m == nil {
			return nil // disabled and never evaluated
		}
		if err != nil {
			return fmt.Errorf("reading the state: %w", err)
		}
		want := config.AlertOK
		switch {
		case m != nil && m.firing:
			want = config.AlertFiring
		case m != nil && m.hold:
			want = state
		}
		if m == nil {
			if state != config.AlertFiring {
				return nil
			}
			if last.Valid {
				value = &last.Float64
			}
		}
		if want == state {
			_, err := tx.ExecContext(ctx, e.db.Rebind(`UPDATE alert_states SET last_value = ?, evaluated_at = ? WHERE alert_id = ?`), nullFloat(value), at, r.ID)
			if err != nil {
				return fmt.Errorf("storing the state: %w", err)
			}
			return nil
		}
		n := &Notification{
			AlertID: r.ID, Name: r.Name, Status: Firing, Kind: r.Kind, Destination: r.Destination, Source: r.Source,
			Value: value, Threshold: r.Threshold, Window: r.Window, StartedAt: now, At: now,
		}
		if want == config.AlertOK {
			n.Status, n.StartedAt = Resolved, time.UnixMilli(since).UTC()
		}
		body, err := json.Marshal(n)
		if err != nil {
			return fmt.Errorf("encoding the notification: %w", err)
		}
		if _, err := tx.ExecContext(ctx, e.db.Rebind(`UPDATE alert_states SET state = ?, since = ?, last_value = ?, evaluated_at = ? WHERE alert_id = ?`),
			want, at, nullFloat(value), at, r.ID); err != nil {
			return fmt.Errorf("storing the state: %w", err)
		}
		if _, err := tx.ExecContext(ctx, e.db.Rebind(`INSERT INTO alert_events (alert_id, status, occurred_at, body, notify_status, attempts, next_attempt_at, last_error)
VALUES (?, ?, ?, ?, 'pending', 0, 0, '')`), r.ID, n.Status, at, string(body)); err != nil {
			return fmt.Errorf("recording the event: %w", err)
		}
		transition = n
		return nil
	})
	if err != nil {
		return err
	}
	if transition != nil {
		log := e.opts.Logger.Info
		if transition.Status == Firing {
			log = e.opts.Logger.Warn
		}
		args := []any{"alert_id", r.ID, "kind", r.Kind, "threshold", r.Threshold, "window", r.Window.String()}
		if transition.Value != nil {
			args = append(args, "value", *transition.Value)
		}
		log("alert "+transition.Status, args...)
	}
	return nil
}

// forget drops the state of deleted rules, abandons their pending
// notifications, and deletes the history past KeepEvents.
func (e *Evaluator) forget(ctx context.Context, now time.Time) error {
	for _, q := range []struct {
		what, sql string
		args      []any
	}{
		{"dropping the state of deleted alerts", `DELETE FROM alert_states WHERE alert_id NOT IN (SELECT id FROM alerts)`, nil},
		{"abandoning the notifications of deleted alerts", `UPDATE alert_events SET notify_status = 'failed', last_error = 'the alert rule was deleted'
WHERE notify_status = 'pending' AND alert_id NOT IN (SELECT id FROM alerts)`, nil},
		{"expiring alert events", `DELETE FROM alert_events WHERE occurred_at < ? AND notify_status <> 'pending'`,
			[]any{now.Add(-e.opts.KeepEvents).UnixMilli()}},
	} {
		if _, err := e.db.SQL().ExecContext(ctx, e.db.Rebind(q.sql), q.args...); err != nil {
			return fmt.Errorf("%s: %w", q.what, err)
		}
	}
	return nil
}

// nullFloat is v as a query argument: NULL when nil.
func nullFloat(v *float64) any {
	if v == nil {
		return nil
	}
	return *v
}
