// Package profile holds what Conflux keeps about each profile of the
// identity graph — traits, event history, links between users and
// accounts, metadata — and serves it through Segment's Profile API
// (spec §6.4).
//
// Writes happen in the aggregate stage's transactions ([Writer]); reads
// ([Reader]) may come from any node.
package profile

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/confluxcdp/conflux/internal/aggregate/identity"
	"github.com/confluxcdp/conflux/internal/store"
)

// MaxTraits is the most traits an identify or group call may set: one with
// more is recorded in the history but does not change the traits (spec
// §6.3).
const MaxTraits = 300

// Writer writes profile data inside a transaction of the aggregate stage.
type Writer struct {
	db  *store.DB
	ctx context.Context
	tx  *sql.Tx
	// statements prepared for this transaction, on first use
	event, trait *sql.Stmt
}

// NewWriter returns a writer in tx.
func NewWriter(ctx context.Context, db *store.DB, tx *sql.Tx) *Writer {
	return &Writer{db: db, ctx: ctx, tx: tx}
}

// Close releases the prepared statements.
func (w *Writer) Close() {
	for _, s := range []*sql.Stmt{w.event, w.trait} {
		if s != nil {
			_ = s.Close()
		}
	}
}

func (w *Writer) prepare(s **sql.Stmt, q string) (*sql.Stmt, error) {
	if *s != nil {
		return *s, nil
	}
	st, err := w.tx.PrepareContext(w.ctx, w.db.Rebind(q))
	if err != nil {
		return nil, err
	}
	*s = st
	return st, nil
}

// Event adds an event (its stored JSON) to profile p's history.
func (w *Writer) Event(p identity.ProfileID, at, receivedAt int64, body []byte) error {
	st, err := w.prepare(&w.event, `INSERT INTO profile_events (profile_id, ts, received_at, body) VALUES (?, ?, ?, ?)`)
	if err == nil {
		_, err = st.ExecContext(w.ctx, p, at, receivedAt, body)
	}
	if err != nil {
		return fmt.Errorf("adding an event to the history of profile %s: %w", p, err)
	}
	return nil
}

// TraitSource says which event set traits.
type TraitSource struct {
	At        int64
	MessageID string
	SourceID  string
}

// Traits sets profile p's traits from one event: each key takes the value
// of the latest event by event time (ties: the greater message id), so
// that the outcome does not depend on the order events arrive in.
func (w *Writer) Traits(p identity.ProfileID, traits map[string]any, src TraitSource) error {
	if len(traits) == 0 {
		return nil
	}
	st, err := w.prepare(&w.trait, `INSERT INTO profile_traits (profile_id, key, value, ts, message_id, source_id) VALUES (?, ?, ?, ?, ?, ?)
	ON CONFLICT (profile_id, key) DO UPDATE SET value = excluded.value, ts = excluded.ts, message_id = excluded.message_id, source_id = excluded.source_id
	WHERE excluded.ts > profile_traits.ts OR (excluded.ts = profile_traits.ts AND excluded.message_id > profile_traits.message_id)`)
	if err != nil {
		return fmt.Errorf("setting traits of profile %s: %w", p, err)
	}
	for k, v := range traits {
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("encoding trait %q of profile %s: %w", k, p, err)
		}
		if _, err := st.ExecContext(w.ctx, p, k, string(b), src.At, src.MessageID, src.SourceID); err != nil {
			return fmt.Errorf("setting trait %q of profile %s: %w", k, p, err)
		}
	}
	return nil
}

// Link links user profile user to account profile account.
func (w *Writer) Link(user, account identity.ProfileID, now int64) error {
	_, err := w.tx.ExecContext(w.ctx, w.db.Rebind(`INSERT INTO profile_links (user_id, account_id, created_at) VALUES (?, ?, ?)
	ON CONFLICT (user_id, account_id) DO NOTHING`), user, account, now)
	if err != nil {
		return fmt.Errorf("linking profile %s to account %s: %w", user, account, err)
	}
	return nil
}

// Merge moves what profile from holds into profile into (of collection
// coll): traits (the later value of each key wins), event history and
// links.
func (w *Writer) Merge(coll string, into, from identity.ProfileID) error {
	linkCol, otherCol := "user_id", "account_id"
	if coll == identity.Accounts {
		linkCol, otherCol = "account_id", "user_id"
	}
	stmts := []struct {
		q    string
		args []any
	}{
		{`INSERT INTO profile_traits (profile_id, key, value, ts, message_id, source_id)
	SELECT ?, key, value, ts, message_id, source_id FROM profile_traits WHERE profile_id = ?
	ON CONFLICT (profile_id, key) DO UPDATE SET value = excluded.value, ts = excluded.ts, message_id = excluded.message_id, source_id = excluded.source_id
	WHERE excluded.ts > profile_traits.ts OR (excluded.ts = profile_traits.ts AND excluded.message_id > profile_traits.message_id)`, []any{into, from}},
		{`DELETE FROM profile_traits WHERE profile_id = ?`, []any{from}},
		{`UPDATE profile_events SET profile_id = ? WHERE profile_id = ?`, []any{into, from}},
		{`INSERT INTO profile_links (` + linkCol + `, ` + otherCol + `, created_at)
	SELECT ?, ` + otherCol + `, created_at FROM profile_links WHERE ` + linkCol + ` = ?
	ON CONFLICT (user_id, account_id) DO NOTHING`, []any{into, from}},
		{`DELETE FROM profile_links WHERE ` + linkCol + ` = ?`, []any{from}},
	}
	for _, s := range stmts {
		if _, err := w.tx.ExecContext(w.ctx, w.db.Rebind(s.q), s.args...); err != nil {
			return fmt.Errorf("moving the data of profile %s into %s: %w", from, into, err)
		}
	}
	return nil
}

// Prune deletes up to limit history events received before cutoff, oldest
// first, and returns how many it deleted. The history is appended in
// arrival order, so the oldest are the lowest sequences.
func Prune(ctx context.Context, db *store.DB, cutoff time.Time, limit int) (int64, error) {
	res, err := db.SQL().ExecContext(ctx, db.Rebind(`DELETE FROM profile_events WHERE seq IN
	(SELECT seq FROM profile_events ORDER BY seq LIMIT ?) AND received_at < ?`), limit, cutoff.UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("pruning profile history before %s: %w", cutoff.Format(time.RFC3339), err)
	}
	return res.RowsAffected()
}
