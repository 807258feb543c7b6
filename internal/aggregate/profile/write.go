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
	"fmt"
	"time"

	"github.com/confluxcdp/conflux/internal/aggregate/identity"
	"github.com/confluxcdp/conflux/internal/store"
)

// MaxTraits is the most traits an identify or group call may set: one with
// more is recorded in the history but does not change the traits (spec
// §6.3).
const MaxTraits = 300

// Writer writes profile data in the aggregate stage's transactions. It
// buffers a transaction's rows and writes them at Flush in a few bulk
// statements; a merge re-points what is buffered, so the order of calls
// within a transaction does not matter.
type Writer struct {
	db     *store.DB
	events []eventRow
	traits map[identity.ProfileID]traitDoc
	links  map[link]int64

	eventBulk, traitBulk, linkBulk *store.Bulk
}

type eventRow struct {
	profile        identity.ProfileID
	at, receivedAt int64
	source, msgID  string
	body           []byte
}

type link struct{ user, account identity.ProfileID }

// NewWriter returns a writer of db.
func NewWriter(db *store.DB) *Writer {
	return &Writer{
		db: db, traits: map[identity.ProfileID]traitDoc{}, links: map[link]int64{},
		eventBulk: db.NewBulk("profile events", `INSERT INTO profile_events (profile_id, ts, received_at, source_id, message_id, body) VALUES `, `(?, ?, ?, ?, ?, ?)`, ``),
		traitBulk: db.NewBulk("profile traits", `INSERT INTO profile_traits (profile_id, traits) VALUES `, `(?, ?)`,
			` ON CONFLICT (profile_id) DO UPDATE SET traits = excluded.traits`),
		linkBulk: db.NewBulk("profile links", `INSERT INTO profile_links (user_id, account_id, created_at) VALUES `, `(?, ?, ?)`,
			` ON CONFLICT (user_id, account_id) DO NOTHING`),
	}
}

// Reset drops what is buffered (after a failed transaction).
func (w *Writer) Reset() {
	clear(w.events) // the bodies share their log messages' memory
	w.events = w.events[:0]
	clear(w.traits)
	clear(w.links)
	w.eventBulk.Reset()
	w.traitBulk.Reset()
	w.linkBulk.Reset()
}

// Event adds an event (its stored JSON, from source src) to profile p's
// history. body must stay unchanged until Flush.
func (w *Writer) Event(p identity.ProfileID, at, receivedAt int64, src, msgID string, body []byte) {
	w.events = append(w.events, eventRow{profile: p, at: at, receivedAt: receivedAt, source: src, msgID: msgID, body: body})
}

// TraitSource says which event set traits.
type TraitSource struct {
	At        int64
	MessageID string
	SourceID  string
}

// Link links user profile user to account profile account.
func (w *Writer) Link(user, account identity.ProfileID, now int64) {
	if _, ok := w.links[link{user, account}]; !ok {
		w.links[link{user, account}] = now
	}
}

// Merge moves what profile from holds into profile into (of collection
// coll), in the store and in what is buffered: traits (the later value of
// each key wins), event history and links.
func (w *Writer) Merge(ctx context.Context, tx *sql.Tx, coll string, into, from identity.ProfileID) error {
	for i := range w.events {
		if w.events[i].profile == from {
			w.events[i].profile = into
		}
	}
	if err := w.mergeTraits(ctx, tx, into, from); err != nil {
		return err
	}
	for l, at := range w.links {
		moved := l
		if coll == identity.Users && l.user == from {
			moved.user = into
		} else if coll == identity.Accounts && l.account == from {
			moved.account = into
		} else {
			continue
		}
		delete(w.links, l)
		w.links[moved] = at
	}
	linkCol, otherCol := "user_id", "account_id"
	if coll == identity.Accounts {
		linkCol, otherCol = "account_id", "user_id"
	}
	stmts := []struct {
		q    string
		args []any
	}{
		{`UPDATE profile_events SET profile_id = ? WHERE profile_id = ?`, []any{into, from}},
		{`INSERT INTO profile_links (` + linkCol + `, ` + otherCol + `, created_at)
	SELECT ?, ` + otherCol + `, created_at FROM profile_links WHERE ` + linkCol + ` = ?
	ON CONFLICT (user_id, account_id) DO NOTHING`, []any{into, from}},
		{`DELETE FROM profile_links WHERE ` + linkCol + ` = ?`, []any{from}},
	}
	for _, s := range stmts {
		if _, err := tx.ExecContext(ctx, w.db.Rebind(s.q), s.args...); err != nil {
			return fmt.Errorf("moving the data of profile %s into %s: %w", from, into, err)
		}
	}
	return nil
}

// Flush writes what is buffered in tx and empties the buffers. On error
// the transaction must be dropped, and Reset called.
func (w *Writer) Flush(ctx context.Context, tx *sql.Tx) error {
	if err := w.flushTraits(ctx, tx); err != nil {
		return err
	}
	for _, e := range w.events {
		w.eventBulk.Add(e.profile, e.at, e.receivedAt, e.source, e.msgID, e.body)
	}
	if err := w.eventBulk.Flush(ctx, tx); err != nil {
		return err
	}
	for l, at := range w.links {
		w.linkBulk.Add(l.user, l.account, at)
	}
	if err := w.linkBulk.Flush(ctx, tx); err != nil {
		return err
	}
	w.Reset()
	return nil
}

// Prune deletes up to limit history events received before cutoff, oldest
// first, and returns how many it deleted. The history is appended in
// arrival order, so the oldest are the lowest sequences. Each profile
// keeps, in its row, the newest of its pruned events when it is newer
// than the one kept before, so that metadata still knows a profile's last
// event once its history is gone.
func Prune(ctx context.Context, db *store.DB, cutoff time.Time, limit int) (int64, error) {
	var n int64
	err := db.InTx(ctx, func(tx *sql.Tx) error {
		var top sql.NullInt64
		if err := tx.QueryRowContext(ctx, db.Rebind(`SELECT MAX(seq) FROM (SELECT seq, received_at FROM profile_events ORDER BY seq LIMIT ?) AS head
	WHERE received_at < ?`), limit, cutoff.UnixMilli()).Scan(&top); err != nil || !top.Valid {
			return err
		}
		// The newest pruned event of each profile (by event time, then
		// arrival), where it is newer than the profile's kept one.
		if _, err := tx.ExecContext(ctx, db.Rebind(`UPDATE profiles SET last_at = e.ts, last_source_id = e.source_id, last_message_id = e.message_id,
	updated_at = CASE WHEN e.received_at > profiles.updated_at THEN e.received_at ELSE profiles.updated_at END
	FROM (SELECT profile_id, ts, received_at, source_id, message_id FROM profile_events p WHERE seq <= ? AND received_at < ?
	      AND NOT EXISTS (SELECT 1 FROM profile_events o WHERE o.profile_id = p.profile_id AND o.seq <= ? AND o.received_at < ?
	                      AND (o.ts > p.ts OR (o.ts = p.ts AND o.seq > p.seq)))) AS e
	WHERE profiles.id = e.profile_id AND e.ts >= profiles.last_at`),
			top.Int64, cutoff.UnixMilli(), top.Int64, cutoff.UnixMilli()); err != nil {
			return fmt.Errorf("keeping the last events of pruned profiles: %w", err)
		}
		res, err := tx.ExecContext(ctx, db.Rebind(`DELETE FROM profile_events WHERE seq <= ? AND received_at < ?`), top.Int64, cutoff.UnixMilli())
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("pruning profile history before %s: %w", cutoff.Format(time.RFC3339), err)
	}
	return n, nil
}
