package process

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/confluxcdp/conflux/internal/process/plan"
	"github.com/confluxcdp/conflux/internal/store"
)

// Violations counts tracking-plan violations per source, event, violation
// type and field, for the violations API. Counts are gathered in memory and
// added to the state store every flush interval, so that every node
// sharing the store adds to the same totals and a restart keeps them; a
// crash loses at most the last interval's counts.
type Violations struct {
	db     *store.DB
	logger *slog.Logger
	every  time.Duration

	mu      sync.Mutex
	pending map[violationKey]*violationDelta
}

type violationKey struct {
	source, eventType, eventName, violationType, field string
}

type violationDelta struct {
	count       int64
	first, last time.Time
	description string
}

// maxPendingViolations bounds the distinct keys held between flushes;
// beyond it, new keys of the interval are folded into one "(other)" line
// per source.
const maxPendingViolations = 10000

const other = "(other)"

// NewViolations returns a recorder writing to db.
func NewViolations(db *store.DB, logger *slog.Logger) *Violations {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Violations{db: db, logger: logger, every: 2 * time.Second, pending: map[violationKey]*violationDelta{}}
}

// Record counts one violation of an event of source src. It never blocks
// on the store.
func (v *Violations) Record(src, eventType, eventName string, viol plan.Violation, at time.Time) {
	// Clone: the strings may share memory with a log message (event.Decode).
	k := violationKey{strings.Clone(src), strings.Clone(eventType), strings.Clone(eventName), strings.Clone(string(viol.Type)), strings.Clone(viol.Field)}
	v.mu.Lock()
	defer v.mu.Unlock()
	d, ok := v.pending[k]
	if !ok {
		if len(v.pending) >= maxPendingViolations {
			// One line per source for the rest of the interval, so that a
			// client inventing event names cannot grow the map or the table.
			k = violationKey{k.source, other, other, other, other}
			d, ok = v.pending[k]
		}
		if !ok {
			d = &violationDelta{first: at}
			v.pending[k] = d
		}
	}
	d.count++
	d.last = at
	d.description = strings.Clone(viol.Description)
}

// Run flushes the counts every interval until ctx ends, then once more.
func (v *Violations) Run(ctx context.Context) error {
	t := time.NewTicker(v.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := v.Flush(fctx); err != nil {
				v.logger.Warn("flushing violation counts at shutdown", "err", err)
			}
			return nil
		case <-t.C:
			if err := v.Flush(ctx); err != nil && ctx.Err() == nil {
				v.logger.Warn("flushing violation counts", "err", err)
			}
		}
	}
}

// Flush adds the counts gathered since the last flush to the store. On
// failure they are kept for the next one.
func (v *Violations) Flush(ctx context.Context) error {
	v.mu.Lock()
	batch := v.pending
	v.pending = map[violationKey]*violationDelta{}
	v.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	q := v.db.Rebind(`
INSERT INTO plan_violations (source_id, event_type, event_name, violation_type, field, count, first_seen, last_seen, description)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (source_id, event_type, event_name, violation_type, field) DO UPDATE SET
	count = plan_violations.count + excluded.count,
	last_seen = CASE WHEN excluded.last_seen > plan_violations.last_seen THEN excluded.last_seen ELSE plan_violations.last_seen END,
	description = excluded.description`)
	err := v.db.InTx(ctx, func(tx *sql.Tx) error {
		for k, d := range batch {
			if _, err := tx.ExecContext(ctx, q, k.source, k.eventType, k.eventName, k.violationType, k.field,
				d.count, d.first.UnixMilli(), d.last.UnixMilli(), d.description); err != nil {
				return fmt.Errorf("adding %d violations of %s/%s: %w", d.count, k.source, k.eventName, err)
			}
		}
		return nil
	})
	if err != nil {
		v.mu.Lock()
		for k, d := range batch {
			if p, ok := v.pending[k]; ok {
				p.count += d.count
				p.first = d.first
			} else {
				v.pending[k] = d
			}
		}
		v.mu.Unlock()
	}
	return err
}

// ViolationCount is one line of the violations API: how often a violation
// of one field of one event of a source was seen.
type ViolationCount struct {
	EventType     string    `json:"event_type"`
	EventName     string    `json:"event_name"`
	ViolationType string    `json:"violation_type"`
	Field         string    `json:"field"`
	Count         int64     `json:"count"`
	FirstSeen     time.Time `json:"first_seen"`
	LastSeen      time.Time `json:"last_seen"`
	Description   string    `json:"description"`
}

// List returns the violations of a source seen since since (zero: ever),
// optionally of one event name, most recent first, at most limit.
// Counts not yet flushed are included.
func (v *Violations) List(ctx context.Context, src, eventName string, since time.Time, limit int) ([]ViolationCount, error) {
	q := `SELECT event_type, event_name, violation_type, field, count, first_seen, last_seen, description
FROM plan_violations WHERE source_id = ? AND last_seen >= ?`
	args := []any{src, since.UnixMilli()}
	if eventName != "" {
		q += ` AND event_name = ?`
		args = append(args, eventName)
	}
	rows, err := v.db.SQL().QueryContext(ctx, v.db.Rebind(q), args...)
	if err != nil {
		return nil, fmt.Errorf("listing violations of source %q: %w", src, err)
	}
	defer rows.Close()
	merged := map[violationKey]*ViolationCount{}
	for rows.Next() {
		var c ViolationCount
		var first, last int64
		if err := rows.Scan(&c.EventType, &c.EventName, &c.ViolationType, &c.Field, &c.Count, &first, &last, &c.Description); err != nil {
			return nil, fmt.Errorf("listing violations of source %q: %w", src, err)
		}
		c.FirstSeen, c.LastSeen = time.UnixMilli(first).UTC(), time.UnixMilli(last).UTC()
		merged[violationKey{src, c.EventType, c.EventName, c.ViolationType, c.Field}] = &c
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing violations of source %q: %w", src, err)
	}
	v.mu.Lock()
	for k, d := range v.pending {
		if k.source != src || (eventName != "" && k.eventName != eventName) || d.last.Before(since) {
			continue
		}
		c, ok := merged[k]
		if !ok {
			c = &ViolationCount{EventType: k.eventType, EventName: k.eventName, ViolationType: k.violationType, Field: k.field, FirstSeen: d.first.UTC()}
			merged[k] = c
		}
		c.Count += d.count
		if d.last.After(c.LastSeen) {
			c.LastSeen, c.Description = d.last.UTC(), d.description
		}
	}
	v.mu.Unlock()
	out := make([]ViolationCount, 0, len(merged))
	for _, c := range merged {
		out = append(out, *c)
	}
	slices.SortFunc(out, func(a, b ViolationCount) int {
		if c := b.LastSeen.Compare(a.LastSeen); c != 0 {
			return c
		}
		return cmp.Or(cmp.Compare(a.EventName, b.EventName), cmp.Compare(a.Field, b.Field), cmp.Compare(a.ViolationType, b.ViolationType))
	})
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}
