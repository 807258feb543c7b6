// Package suppress holds GDPR/CCPA regulations (spec §5): the Regulations
// API records them in the state store, and the suppression list they build
// is kept in memory on every node so that the Tracking API can drop a
// suppressed user's events before they are stored, from every source.
//
// Suppression takes effect on the node that received the regulation before
// the API answers, and on other nodes sharing the store within their poll
// interval (250 ms), by replaying the ordered suppression_log. Deletion
// regulations are accepted and recorded here; carrying out the deletion in
// warehouses and destinations is not this package's job.
package suppress

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/confluxcdp/conflux/internal/store"
)

// Regulation types (Segment's regulationType values).
const (
	SuppressOnly               = "SUPPRESS_ONLY"
	Unsuppress                 = "UNSUPPRESS"
	SuppressWithDelete         = "SUPPRESS_WITH_DELETE"
	DeleteOnly                 = "DELETE_ONLY"
	DeleteInternal             = "DELETE_INTERNAL"
	SuppressWithDeleteInternal = "SUPPRESS_WITH_DELETE_INTERNAL"
)

// Overall statuses of a regulation.
const (
	StatusInitialized = "INITIALIZED" // recorded; a deletion still to be carried out
	StatusFinished    = "FINISHED"    // done
)

// SubjectUserID is the only subject type Conflux regulates (OBJECT_ID is
// for Segment's cloud sources).
const SubjectUserID = "USER_ID"

// MaxSubjects is the most subject ids one regulation may carry.
const MaxSubjects = 5000

// maxSubjectLen bounds one subject id.
const maxSubjectLen = 1024

// Regulation is one request to suppress, unsuppress or delete users' data.
type Regulation struct {
	ID          string    `json:"id"`
	Type        string    `json:"regulationType"`
	SubjectType string    `json:"subjectType"`
	SubjectIDs  []string  `json:"subjectIds"`
	Status      string    `json:"overallStatus"`
	CreatedAt   time.Time `json:"createdAt"`
	UpdatedAt   time.Time `json:"updatedAt"`
}

// ErrInvalid marks a regulation request that cannot be accepted.
var ErrInvalid = errors.New("invalid regulation")

// ErrNotFound means no regulation has the given id.
var ErrNotFound = errors.New("regulation not found")

// normalizeType maps Segment's legacy names to the current ones and
// reports whether t is known.
func normalizeType(t string) (string, bool) {
	switch t {
	case "SUPPRESS":
		return SuppressOnly, true
	case "SUPPRESS_AND_DELETE":
		return SuppressWithDelete, true
	case SuppressOnly, Unsuppress, SuppressWithDelete, DeleteOnly, DeleteInternal, SuppressWithDeleteInternal:
		return t, true
	}
	return "", false
}

func suppresses(t string) bool {
	return t == SuppressOnly || t == SuppressWithDelete || t == SuppressWithDeleteInternal
}

// ForwardDeletions makes the regulations that delete data in
// destinations (SUPPRESS_WITH_DELETE, DELETE_ONLY; not the _INTERNAL ones)
// go to f once recorded: it hands them to the destinations that take
// deletion requests. Call it before the API serves.
func (l *List) ForwardDeletions(f func(ctx context.Context, r Regulation) error) { l.forward = f }

// forwards reports whether regulations of type t are sent to destinations.
func forwards(t string) bool { return t == SuppressWithDelete || t == DeleteOnly }

func deletes(t string) bool {
	return t == SuppressWithDelete || t == SuppressWithDeleteInternal || t == DeleteOnly || t == DeleteInternal
}

// List is the live suppression list of one node, backed by the state store.
// Suppressed may be called concurrently with everything else.
type List struct {
	db     *store.DB
	logger *slog.Logger
	// forward, when set, is given every regulation that deletes users'
	// data in destinations too (SUPPRESS_WITH_DELETE, DELETE_ONLY), once
	// it is recorded.
	forward   func(ctx context.Context, r Regulation) error
	pollEvery time.Duration
	now       func() time.Time

	mu   sync.RWMutex
	set  map[string]struct{}
	seq  int64 // last suppression_log seq applied
	size atomic.Int64

	syncMu sync.Mutex // one sync at a time
}

// New returns the list over db. Call Load before serving.
func New(db *store.DB, logger *slog.Logger) *List {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &List{db: db, logger: logger, pollEvery: 250 * time.Millisecond, now: time.Now, set: map[string]struct{}{}}
}

// Empty reports whether nobody is suppressed: the Tracking API then skips
// the per-event lookup altogether.
func (l *List) Empty() bool { return l.size.Load() == 0 }

// Len is the number of suppressed users.
func (l *List) Len() int { return int(l.size.Load()) }

// Suppressed reports whether the user is suppressed.
func (l *List) Suppressed(userID []byte) bool {
	l.mu.RLock()
	_, ok := l.set[string(userID)]
	l.mu.RUnlock()
	return ok
}

// Load reads the whole list from the store, replacing what is in memory.
func (l *List) Load(ctx context.Context) error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	q := l.db.SQL()
	// Read the log position first: replaying the log from there on top of
	// the table is idempotent, so a change committed in between is not lost.
	var seq sql.NullInt64
	if err := q.QueryRowContext(ctx, `SELECT MAX(seq) FROM suppression_log`).Scan(&seq); err != nil {
		return fmt.Errorf("reading the suppression log position: %w", err)
	}
	rows, err := q.QueryContext(ctx, `SELECT user_id FROM suppressions`)
	if err != nil {
		return fmt.Errorf("loading suppressions: %w", err)
	}
	defer rows.Close()
	set := map[string]struct{}{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return fmt.Errorf("loading suppressions: %w", err)
		}
		set[id] = struct{}{}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("loading suppressions: %w", err)
	}
	l.mu.Lock()
	l.set, l.seq = set, seq.Int64
	l.size.Store(int64(len(set)))
	l.mu.Unlock()
	return l.syncLocked(ctx)
}

// sync applies the log entries written since the last sync.
func (l *List) sync(ctx context.Context) error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	return l.syncLocked(ctx)
}

func (l *List) syncLocked(ctx context.Context) error {
	for {
		l.mu.RLock()
		from := l.seq
		l.mu.RUnlock()
		rows, err := l.db.SQL().QueryContext(ctx, l.db.Rebind(
			`SELECT seq, user_id, suppressed FROM suppression_log WHERE seq > ? ORDER BY seq LIMIT 10000`), from)
		if err != nil {
			return fmt.Errorf("reading the suppression log after %d: %w", from, err)
		}
		type change struct {
			seq        int64
			user       string
			suppressed bool
		}
		var changes []change
		for rows.Next() {
			var c change
			if err := rows.Scan(&c.seq, &c.user, &c.suppressed); err != nil {
				rows.Close()
				return fmt.Errorf("reading the suppression log: %w", err)
			}
			changes = append(changes, c)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("reading the suppression log: %w", err)
		}
		if len(changes) == 0 {
			return nil
		}
		l.mu.Lock()
		for _, c := range changes {
			if c.suppressed {
				l.set[c.user] = struct{}{}
			} else {
				delete(l.set, c.user)
			}
			l.seq = c.seq
		}
		l.size.Store(int64(len(l.set)))
		l.mu.Unlock()
	}
}

// Run keeps the list in step with the store until ctx ends. A failed poll
// is logged and retried; the list in memory stays as it was.
func (l *List) Run(ctx context.Context) error {
	t := time.NewTicker(l.pollEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := l.sync(ctx); err != nil && ctx.Err() == nil {
			l.logger.Warn("syncing the suppression list", "err", err)
		}
	}
}

// Create validates and records a regulation, applies its suppression or
// unsuppression, and makes it live on this node before returning.
func (l *List) Create(ctx context.Context, regType, subjectType string, subjectIDs []string) (Regulation, error) {
	t, ok := normalizeType(regType)
	if !ok {
		return Regulation{}, fmt.Errorf("%w: regulationType %q: want one of SUPPRESS_ONLY, UNSUPPRESS, SUPPRESS_WITH_DELETE, DELETE_ONLY, DELETE_INTERNAL, SUPPRESS_WITH_DELETE_INTERNAL", ErrInvalid, regType)
	}
	if subjectType != SubjectUserID {
		return Regulation{}, fmt.Errorf("%w: subjectType %q: only USER_ID is supported", ErrInvalid, subjectType)
	}
	if len(subjectIDs) == 0 || len(subjectIDs) > MaxSubjects {
		return Regulation{}, fmt.Errorf("%w: subjectIds has %d ids: send 1 to %d", ErrInvalid, len(subjectIDs), MaxSubjects)
	}
	seen := make(map[string]bool, len(subjectIDs))
	ids := make([]string, 0, len(subjectIDs))
	for i, id := range subjectIDs {
		if strings.TrimSpace(id) == "" || len(id) > maxSubjectLen {
			return Regulation{}, fmt.Errorf("%w: subjectIds[%d]: want a non-empty id of at most %d bytes", ErrInvalid, i, maxSubjectLen)
		}
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	now := l.now().UTC().Truncate(time.Millisecond)
	r := Regulation{ID: newID(), Type: t, SubjectType: subjectType, SubjectIDs: ids, Status: StatusFinished, CreatedAt: now, UpdatedAt: now}
	if deletes(t) {
		r.Status = StatusInitialized // the deletion itself is carried out later
	}
	idsJSON, _ := json.Marshal(ids)
	err := l.db.InTx(ctx, func(tx *sql.Tx) error {
		if l.db.Dialect() == store.Postgres {
			if _, err := tx.ExecContext(ctx, `LOCK TABLE suppression_log IN EXCLUSIVE MODE`); err != nil {
				return fmt.Errorf("locking the suppression log: %w", err)
			}
		}
		if _, err := tx.ExecContext(ctx, l.db.Rebind(`INSERT INTO regulations (id, type, subject_type, subject_ids, status, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)`),
			r.ID, r.Type, r.SubjectType, string(idsJSON), r.Status, now.UnixMilli(), now.UnixMilli()); err != nil {
			return fmt.Errorf("recording regulation %s: %w", r.ID, err)
		}
		switch {
		case suppresses(t):
			return l.apply(ctx, tx, ids, true, r.ID, now)
		case t == Unsuppress:
			return l.apply(ctx, tx, ids, false, r.ID, now)
		}
		return nil
	})
	if err != nil {
		return Regulation{}, err
	}
	if l.forward != nil && forwards(t) {
		if err := l.forward(ctx, r); err != nil {
			return r, fmt.Errorf("regulation %s recorded, but not forwarded to destinations: %w", r.ID, err)
		}
	}
	if err := l.sync(ctx); err != nil {
		return r, fmt.Errorf("regulation %s recorded, but not yet live on this node: %w", r.ID, err)
	}
	return r, nil
}

// apply suppresses or unsuppresses users and appends the changes to the
// log, in chunks of multi-row statements.
func (l *List) apply(ctx context.Context, tx *sql.Tx, ids []string, suppressed bool, regID string, now time.Time) error {
	const chunk = 500
	for start := 0; start < len(ids); start += chunk {
		part := ids[start:min(start+chunk, len(ids))]
		var args, logArgs []any
		var rowsSQL, logSQL []string
		for _, id := range part {
			rowsSQL = append(rowsSQL, "(?, ?, ?)")
			args = append(args, id, regID, now.UnixMilli())
			logSQL = append(logSQL, "(?, ?)")
			logArgs = append(logArgs, id, suppressed)
		}
		var q string
		if suppressed {
			q = `INSERT INTO suppressions (user_id, regulation_id, created_at) VALUES ` + strings.Join(rowsSQL, ", ") + ` ON CONFLICT (user_id) DO NOTHING`
		} else {
			q = `DELETE FROM suppressions WHERE user_id IN (` + store.Placeholders(len(part)) + `)`
			args = make([]any, len(part))
			for i, id := range part {
				args[i] = id
			}
		}
		if _, err := tx.ExecContext(ctx, l.db.Rebind(q), args...); err != nil {
			return fmt.Errorf("updating suppressions for regulation %s: %w", regID, err)
		}
		if _, err := tx.ExecContext(ctx, l.db.Rebind(`INSERT INTO suppression_log (user_id, suppressed) VALUES `+strings.Join(logSQL, ", ")), logArgs...); err != nil {
			return fmt.Errorf("logging suppressions for regulation %s: %w", regID, err)
		}
	}
	return nil
}

// Get returns one regulation.
func (l *List) Get(ctx context.Context, id string) (Regulation, error) {
	rs, err := l.query(ctx, `SELECT id, type, subject_type, subject_ids, status, created_at, updated_at FROM regulations WHERE id = ?`, id)
	if err != nil {
		return Regulation{}, err
	}
	if len(rs) == 0 {
		return Regulation{}, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	return rs[0], nil
}

// ListRegulations returns up to limit regulations, newest first.
func (l *List) ListRegulations(ctx context.Context, limit int) ([]Regulation, error) {
	return l.query(ctx, `SELECT id, type, subject_type, subject_ids, status, created_at, updated_at FROM regulations ORDER BY created_at DESC, id DESC LIMIT ?`, limit)
}

func (l *List) query(ctx context.Context, q string, args ...any) ([]Regulation, error) {
	rows, err := l.db.SQL().QueryContext(ctx, l.db.Rebind(q), args...)
	if err != nil {
		return nil, fmt.Errorf("reading regulations: %w", err)
	}
	defer rows.Close()
	var out []Regulation
	for rows.Next() {
		var r Regulation
		var ids string
		var created, updated int64
		if err := rows.Scan(&r.ID, &r.Type, &r.SubjectType, &ids, &r.Status, &created, &updated); err != nil {
			return nil, fmt.Errorf("reading regulations: %w", err)
		}
		if err := json.Unmarshal([]byte(ids), &r.SubjectIDs); err != nil {
			return nil, fmt.Errorf("regulation %s: subject ids: %w", r.ID, err)
		}
		r.CreatedAt, r.UpdatedAt = time.UnixMilli(created).UTC(), time.UnixMilli(updated).UTC()
		out = append(out, r)
	}
	return out, rows.Err()
}

// Suppressions returns up to limit suppressed user ids after the cursor
// (a user id; "" starts at the beginning), in id order.
func (l *List) Suppressions(ctx context.Context, after string, limit int) ([]string, error) {
	rows, err := l.db.SQL().QueryContext(ctx, l.db.Rebind(`SELECT user_id FROM suppressions WHERE user_id > ? ORDER BY user_id LIMIT ?`), after, limit)
	if err != nil {
		return nil, fmt.Errorf("listing suppressions: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("listing suppressions: %w", err)
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "reg_" + hex.EncodeToString(b[:])
}
