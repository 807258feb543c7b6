package deliver

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/confluxcdp/conflux/internal/config"
	"github.com/confluxcdp/conflux/internal/event"
	"github.com/confluxcdp/conflux/internal/stream"
)

// ErrUnknownDestination means no destination has the id asked for.
var ErrUnknownDestination = errors.New("unknown destination")

// Enqueue puts events back into destination dest's queue as a replay
// under replayID, due now: each first goes through the destination's
// routing (its sources, the integrations object, its transformations and
// filters) as if read from the log, and its maximum retry age starts now.
// It is how events older than the log (the archive) are replayed; the
// replay's progress is GET /api/v1/replays/{id}. It returns how many
// events it queued. A replay may take several calls, each with other
// events: an event given twice under one replay id is queued once but
// counted twice.
func (e *Engine) Enqueue(ctx context.Context, dest string, recs []event.Record, replayID string) (int, error) {
	ws := e.opts.Workspace()
	var d *config.Destination
	for i := range ws.Destinations {
		if ws.Destinations[i].ID == dest {
			d = &ws.Destinations[i]
		}
	}
	if d == nil {
		return 0, fmt.Errorf("%w: no destination %q", ErrUnknownDestination, dest)
	}
	typ, ok := e.opts.Registry.Lookup(d.Type)
	if !ok {
		return 0, fmt.Errorf("destination %q has the unknown type %q", dest, d.Type)
	}
	route := newRouting(d, typ)
	now := e.clock.Now()
	var ops []op
	for _, rec := range recs {
		if !route.sources[rec.SourceID] {
			continue
		}
		ev, skip, err := route.prepare(ws, rec)
		if err != nil || skip != skipNone {
			continue
		}
		ops = append(ops, op{kind: opSchedule, job: job{
			ID: "a:" + replayID + ":" + ev.MessageID, MessageID: ev.MessageID, SourceID: ev.SourceID, Type: ev.Type,
			Event: ev.JSON, ReceivedAt: ev.ReceivedAt, FirstAttemptAt: now, NextAttemptAt: now, ReplayID: replayID,
			Shard: int(spread(fnvHash(ev.MessageID)) >> 34), // spread over the shards
		}})
	}
	err := e.jobs.db.InTx(ctx, func(tx *sql.Tx) error {
		for i := range ops {
			if err := e.jobs.applyOne(ctx, tx, dest, &ops[i]); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, e.jobs.db.Rebind(`
INSERT INTO delivery_replays (id, moved, created_at, updated_at) VALUES (?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET moved = delivery_replays.moved + excluded.moved, updated_at = excluded.updated_at`),
			replayID, len(ops), ms(now), ms(now))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("queuing %d events for %s: %w", len(ops), dest, err)
	}
	return len(ops), nil
}

// Prime gives every enabled destination without a stored position the
// end of the processed log as its start, now. A new destination starts
// there (it is not sent what came before it); calling Prime before the
// Tracking API serves makes that "before the server was up" rather than
// "before its queue happened to start", so that a destination declared in
// the config file gets every event accepted after start-up.
func (e *Engine) Prime(ctx context.Context) error {
	var last uint64
	read := false
	for _, d := range e.opts.Workspace().Destinations {
		if !d.Enabled {
			continue
		}
		rows, err := e.jobs.positions(ctx, e.jobs.db.SQL(), d.ID)
		if err != nil {
			return err
		}
		if len(rows) > 0 {
			continue
		}
		if !read {
			if last, err = e.log.LastSeq(ctx, stream.ProcessedStream); err != nil {
				return err
			}
			read = true
		}
		if err := e.jobs.initShards(ctx, d.ID, shardCount(&d), last, e.clock.Now()); err != nil {
			return err
		}
	}
	return nil
}

// ForwardDeletion queues a delete event for each user, as a replay under
// regulationID, to every enabled destination whose type takes deletion
// requests (Type.Deletes: a destination function with onDelete), under its
// first source: {"type": "delete", "userId", "messageId":
// "delete-<regulation>-<user>", "receivedAt", "timestamp", "context": {}}.
// Its progress is GET /api/v1/replays/{regulationID}. It returns how many
// events it queued in all.
func (e *Engine) ForwardDeletion(ctx context.Context, regulationID string, userIDs []string) (int, error) {
	ws := e.opts.Workspace()
	now := e.clock.Now().UTC().Format(event.TimeLayout)
	total := 0
	for i := range ws.Destinations {
		d := &ws.Destinations[i]
		typ, ok := e.opts.Registry.Lookup(d.Type)
		if !d.Enabled || !ok || typ.Deletes == nil || !typ.Deletes(d.Settings) || len(d.Sources) == 0 {
			continue
		}
		recs := make([]event.Record, len(userIDs))
		for j, u := range userIDs {
			b, err := json.Marshal(map[string]any{"type": "delete", "userId": u, "messageId": "delete-" + regulationID + "-" + u,
				"receivedAt": now, "timestamp": now, "context": map[string]any{}})
			if err != nil {
				return total, fmt.Errorf("encoding the deletion of %q: %w", u, err)
			}
			recs[j] = event.Record{SourceID: d.Sources[0], JSON: b}
		}
		n, err := e.Enqueue(ctx, d.ID, recs, regulationID)
		total += n
		if err != nil {
			return total, fmt.Errorf("forwarding regulation %s to %s: %w", regulationID, d.ID, err)
		}
	}
	return total, nil
}
