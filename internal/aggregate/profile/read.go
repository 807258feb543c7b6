package profile

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/confluxcdp/conflux/internal/aggregate/identity"
	"github.com/confluxcdp/conflux/internal/store"
)

// ErrNotFound means no live profile has the identifier asked for.
var ErrNotFound = errors.New("profile not found")

// Reader answers questions about profiles from the state store. It is
// safe for concurrent use, on any node.
type Reader struct {
	db *store.DB
}

// NewReader returns a reader of db.
func NewReader(db *store.DB) *Reader { return &Reader{db: db} }

// Lookup returns the profile of collection coll that has identifier id.
func (r *Reader) Lookup(ctx context.Context, coll string, id identity.ID) (identity.ProfileID, error) {
	var p identity.ProfileID
	err := r.db.SQL().QueryRowContext(ctx, r.db.Rebind(`SELECT profile_id FROM profile_ids WHERE collection = ? AND type = ? AND value = ?`),
		coll, id.Type, id.Value).Scan(&p)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, ErrNotFound
	}
	if err != nil {
		return 0, fmt.Errorf("looking up %s in %s: %w", id, coll, err)
	}
	return p, nil
}

// ExternalID is one identifier of a profile, in the Profile API's shape.
type ExternalID struct {
	ID         string    `json:"id"`
	Type       string    `json:"type"`
	SourceID   string    `json:"source_id"`
	Collection string    `json:"collection"`
	CreatedAt  time.Time `json:"created_at"`
	Encoding   string    `json:"encoding"`
}

// IDCursor is where a page of external ids ends: the last one's creation
// time, type and value (newest first).
type IDCursor struct {
	At          int64
	Type, Value string
}

// ExternalIDs returns up to limit of p's identifiers, newest first, after
// the cursor when it is set, of the types in include when it is not empty.
func (r *Reader) ExternalIDs(ctx context.Context, coll string, p identity.ProfileID, include []string, after *IDCursor, limit int) ([]ExternalID, bool, error) {
	q := `SELECT type, value, source_id, created_at FROM profile_ids WHERE profile_id = ? AND collection = ?`
	args := []any{p, coll}
	if after != nil {
		q += ` AND (created_at < ? OR (created_at = ? AND (type > ? OR (type = ? AND value > ?))))`
		args = append(args, after.At, after.At, after.Type, after.Type, after.Value)
	}
	if len(include) > 0 {
		q += ` AND type IN (` + store.Placeholders(len(include)) + `)`
		for _, t := range include {
			args = append(args, t)
		}
	}
	q += ` ORDER BY created_at DESC, type, value LIMIT ?`
	args = append(args, limit+1)
	out, err := store.Query(ctx, r.db.SQL(), r.db.Rebind(q), args, func(rows *sql.Rows) (ExternalID, error) {
		e := ExternalID{Collection: coll, Encoding: "none"}
		var at int64
		err := rows.Scan(&e.Type, &e.ID, &e.SourceID, &at)
		e.CreatedAt = time.UnixMilli(at).UTC()
		return e, err
	})
	if err != nil {
		return nil, false, fmt.Errorf("reading identifiers of profile %s: %w", p, err)
	}
	return page(out, limit)
}

// page splits the limit+1 rows a list query read into a page and whether
// more follow.
func page[T any](rows []T, limit int) ([]T, bool, error) {
	if len(rows) > limit {
		return rows[:limit], true, nil
	}
	return rows, false, nil
}

// StoredEvent is one event of a profile's history.
type StoredEvent struct {
	Seq      int64
	At       int64
	SourceID string
	Body     []byte
}

// EventQuery selects history events.
type EventQuery struct {
	From, To time.Time // event time, inclusive
	Asc      bool
	// After is the cursor: the (At, Seq) of the last event of the previous
	// page, in the query's order; nil for the first page.
	After *StoredEvent
	Limit int
}

// Events returns a page of p's history.
func (r *Reader) Events(ctx context.Context, p identity.ProfileID, q EventQuery) ([]StoredEvent, bool, error) {
	query := `SELECT seq, ts, source_id, body FROM profile_events WHERE profile_id = ? AND ts >= ? AND ts <= ?`
	args := []any{p, q.From.UnixMilli(), q.To.UnixMilli()}
	order := ` ORDER BY ts DESC, seq DESC`
	if q.After != nil {
		if q.Asc {
			query += ` AND (ts > ? OR (ts = ? AND seq > ?))`
		} else {
			query += ` AND (ts < ? OR (ts = ? AND seq < ?))`
		}
		args = append(args, q.After.At, q.After.At, q.After.Seq)
	}
	if q.Asc {
		order = ` ORDER BY ts, seq`
	}
	query += order + ` LIMIT ?`
	args = append(args, q.Limit+1)
	out, err := store.Query(ctx, r.db.SQL(), r.db.Rebind(query), args, func(rows *sql.Rows) (StoredEvent, error) {
		var e StoredEvent
		err := rows.Scan(&e.Seq, &e.At, &e.SourceID, &e.Body)
		return e, err
	})
	if err != nil {
		return nil, false, fmt.Errorf("reading events of profile %s: %w", p, err)
	}
	return page(out, q.Limit)
}

// Metadata is a profile's metadata in the Profile API's shape.
type Metadata struct {
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
	ExpiresAt      *time.Time `json:"expires_at"`
	FirstMessageID string     `json:"first_message_id"`
	FirstSourceID  string     `json:"first_source_id"`
	LastMessageID  string     `json:"last_message_id"`
	LastSourceID   string     `json:"last_source_id"`
}

// Metadata returns p's metadata. The last event is the newest of its
// history by event time, or, once that is pruned, the one the profile
// row kept; updated_at is the later of the row's (creation, merges) and
// the newest event's arrival.
func (r *Reader) Metadata(ctx context.Context, p identity.ProfileID) (Metadata, error) {
	var m Metadata
	var created, updated, lastAt int64
	err := r.db.SQL().QueryRowContext(ctx, r.db.Rebind(`SELECT created_at, updated_at, first_message_id, first_source_id, last_at, last_message_id, last_source_id
	FROM profiles WHERE id = ?`), p).Scan(&created, &updated, &m.FirstMessageID, &m.FirstSourceID, &lastAt, &m.LastMessageID, &m.LastSourceID)
	if errors.Is(err, sql.ErrNoRows) {
		return m, ErrNotFound
	}
	if err != nil {
		return m, fmt.Errorf("reading metadata of profile %s: %w", p, err)
	}
	var at, received int64
	var src, msg string
	err = r.db.SQL().QueryRowContext(ctx, r.db.Rebind(`SELECT ts, received_at, source_id, message_id FROM profile_events
	WHERE profile_id = ? ORDER BY ts DESC, seq DESC LIMIT 1`), p).Scan(&at, &received, &src, &msg)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return m, fmt.Errorf("reading the last event of profile %s: %w", p, err)
	case at >= lastAt:
		m.LastMessageID, m.LastSourceID = msg, src
		updated = max(updated, received)
	}
	m.CreatedAt, m.UpdatedAt = time.UnixMilli(created).UTC(), time.UnixMilli(updated).UTC()
	return m, nil
}

// Links returns up to limit profiles of the other collection linked to p
// (accounts of a user, users of an account), after the profile after (0
// for the first page), in id order.
func (r *Reader) Links(ctx context.Context, coll string, p identity.ProfileID, after identity.ProfileID, limit int) ([]identity.ProfileID, bool, error) {
	q := `SELECT account_id FROM profile_links WHERE user_id = ? AND account_id > ? ORDER BY account_id LIMIT ?`
	if coll == identity.Accounts {
		q = `SELECT user_id FROM profile_links WHERE account_id = ? AND user_id > ? ORDER BY user_id LIMIT ?`
	}
	out, err := store.Query(ctx, r.db.SQL(), r.db.Rebind(q), []any{p, after, limit + 1}, func(rows *sql.Rows) (identity.ProfileID, error) {
		var id identity.ProfileID
		err := rows.Scan(&id)
		return id, err
	})
	if err != nil {
		return nil, false, fmt.Errorf("reading links of profile %s: %w", p, err)
	}
	return page(out, limit)
}

// Survivor returns the live profile p is (p itself) or was merged into.
func (r *Reader) Survivor(ctx context.Context, p identity.ProfileID) (identity.ProfileID, string, error) {
	var into sql.NullInt64
	var coll string
	err := r.db.SQL().QueryRowContext(ctx, r.db.Rebind(`SELECT merged_into, collection FROM profiles WHERE id = ?`), p).Scan(&into, &coll)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, "", ErrNotFound
	}
	if err != nil {
		return 0, "", fmt.Errorf("reading profile %s: %w", p, err)
	}
	if into.Valid {
		return identity.ProfileID(into.Int64), coll, nil
	}
	return p, coll, nil
}

// MergeRecord is one recorded merge.
type MergeRecord struct {
	Into       string    `json:"into"`
	From       string    `json:"from"`
	MessageID  string    `json:"message_id"`
	SourceID   string    `json:"source_id"`
	Identifier string    `json:"identifier"`
	At         time.Time `json:"at"`
}

// Merges returns the merges into p (and into the profiles merged into it),
// newest first, up to limit.
func (r *Reader) Merges(ctx context.Context, p identity.ProfileID, limit int) ([]MergeRecord, error) {
	out, err := store.Query(ctx, r.db.SQL(), r.db.Rebind(`SELECT into_id, from_id, message_id, source_id, id_type, id_value, at FROM profile_merges
	WHERE into_id = ? OR into_id IN (SELECT id FROM profiles WHERE merged_into = ?) ORDER BY id DESC LIMIT ?`), []any{p, p, limit},
		func(rows *sql.Rows) (MergeRecord, error) {
			var into, from identity.ProfileID
			var m MergeRecord
			var typ, val string
			var at int64
			err := rows.Scan(&into, &from, &m.MessageID, &m.SourceID, &typ, &val, &at)
			m.Into, m.From, m.Identifier, m.At = into.String(), from.String(), typ+":"+val, time.UnixMilli(at).UTC()
			return m, err
		})
	if err != nil {
		return nil, fmt.Errorf("reading merges of profile %s: %w", p, err)
	}
	return out, nil
}
