package config

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/confluxcdp/conflux/internal/process/plan"
	"github.com/confluxcdp/conflux/internal/process/transform"
	"github.com/confluxcdp/conflux/internal/store"
)

// ErrNotFound means the workspace object named in a [Repo] call does not
// exist. The Config API answers it with 404.
var ErrNotFound = errors.New("not found")

// ErrConflict means a [Repo] change clashes with the stored workspace: the
// id or write key is taken, an object is still used by another (a source
// by destinations, a tracking plan by sources, …), or a file-declared
// object collides with one created through the API. The Config API
// answers it with 409.
var ErrConflict = errors.New("conflict")

// ValidationError is every problem found in the shape of a workspace
// object handed to a [Repo], or of a [Config] handed to
// [Repo.ApplyFile]. The Config API answers it with 400 and the list.
// Match it with errors.AsType[*config.ValidationError].
type ValidationError struct {
	Errors []*FieldError
}

// Error renders the problems as "path: message", joined with "; ".
func (e *ValidationError) Error() string {
	msgs := make([]string, len(e.Errors))
	for i, fe := range e.Errors {
		msgs[i] = fe.Error()
	}
	return strings.Join(msgs, "; ")
}

// Unwrap returns the individual problems, so that errors.AsType[*FieldError]
// finds the first of them.
func (e *ValidationError) Unwrap() []error {
	errs := make([]error, len(e.Errors))
	for i, fe := range e.Errors {
		errs[i] = fe
	}
	return errs
}

// Repo is the workspace persisted in the state store: sources with their
// write keys, destinations, tracking plans, transformations, functions
// with their versions, alert rules, a few meta values, and the config
// version that every change bumps. It is safe for concurrent use; on both
// engines writes are serialised (SQLite's write lock, a row lock on
// PostgreSQL), so each write sees the effect of the previous one.
//
// Retired write keys past their expiry are invisible to every method, and
// are deleted by the next write.
type Repo struct {
	db *store.DB

	// Now returns the current time. It stamps created_at and updated_at and
	// decides when retired write keys expire. [NewRepo] sets time.Now; tests
	// replace it to move the clock. Set it before the Repo is shared.
	Now func() time.Time
}

// NewRepo returns a Repo on a migrated state store.
func NewRepo(db *store.DB) *Repo {
	return &Repo{db: db, Now: time.Now}
}

// queryer is what both *sql.DB and *sql.Tx offer.
type queryer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// nowMillis is the current time as stored: unix milliseconds.
func (r *Repo) nowMillis() int64 {
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	return now().UnixMilli()
}

func fromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// write runs fn in a transaction that holds the workspace write lock, after
// deleting expired write keys; if fn reports a change, the config version is
// bumped in the same transaction.
func (r *Repo) write(ctx context.Context, fn func(tx *sql.Tx, now int64) (changed bool, err error)) error {
	return r.db.InTx(ctx, func(tx *sql.Tx) error {
		if r.db.Dialect() == store.Postgres {
			// SQLite's BEGIN IMMEDIATE already excludes other writers; on
			// PostgreSQL the config_version row lock does the same for every
			// workspace write, so check-then-write sequences cannot race.
			if _, err := tx.ExecContext(ctx, `SELECT version FROM config_version WHERE singleton = 1 FOR UPDATE`); err != nil {
				return fmt.Errorf("locking the workspace: %w", err)
			}
		}
		// Read the clock once the lock is held, so that timestamps follow
		// the order in which writes commit.
		now := r.nowMillis()
		if _, err := tx.ExecContext(ctx, r.db.Rebind(`DELETE FROM source_write_keys WHERE expires_at IS NOT NULL AND expires_at <= ?`), now); err != nil {
			return fmt.Errorf("deleting expired write keys: %w", err)
		}
		changed, err := fn(tx, now)
		if err != nil || !changed {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE config_version SET version = version + 1 WHERE singleton = 1`); err != nil {
			return fmt.Errorf("bumping the config version: %w", err)
		}
		return nil
	})
}

// ConfigVersion returns the workspace's version, which every committed
// change increases. Readers compare it to decide whether to reload.
func (r *Repo) ConfigVersion(ctx context.Context) (int64, error) {
	var v int64
	if err := r.db.SQL().QueryRowContext(ctx, `SELECT version FROM config_version WHERE singleton = 1`).Scan(&v); err != nil {
		return 0, fmt.Errorf("reading the config version: %w", err)
	}
	return v, nil
}

// Meta returns the value stored under key, and whether there is one. Meta
// holds small pieces of workspace state such as the admin token's hash.
func (r *Repo) Meta(ctx context.Context, key string) (string, bool, error) {
	var v string
	err := r.db.SQL().QueryRowContext(ctx, r.db.Rebind(`SELECT value FROM meta WHERE key = ?`), key).Scan(&v)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", false, nil
	case err != nil:
		return "", false, fmt.Errorf("reading meta %q: %w", key, err)
	}
	return v, true, nil
}

// SetMeta stores value under key, replacing any previous value. It bumps
// the config version unless the value was already stored.
func (r *Repo) SetMeta(ctx context.Context, key, value string) error {
	err := r.write(ctx, func(tx *sql.Tx, _ int64) (bool, error) {
		var old string
		err := tx.QueryRowContext(ctx, r.db.Rebind(`SELECT value FROM meta WHERE key = ?`), key).Scan(&old)
		switch {
		case err == nil && old == value:
			return false, nil
		case err != nil && !errors.Is(err, sql.ErrNoRows):
			return false, err
		}
		_, err = tx.ExecContext(ctx, r.db.Rebind(`INSERT INTO meta (key, value) VALUES (?, ?)
ON CONFLICT (key) DO UPDATE SET value = excluded.value`), key, value)
		return true, err
	})
	if err != nil {
		return fmt.Errorf("setting meta %q: %w", key, err)
	}
	return nil
}

// storedSource is a source as stored, with what only the repository needs.
type storedSource struct {
	Source
	fileHash string
}

// loadSources reads sources (all, or the one with id) with their current
// and unexpired retired keys, ordered by id.
func (r *Repo) loadSources(ctx context.Context, q queryer, now int64, id string) ([]storedSource, error) {
	query := `SELECT s.id, s.name, s.origin, s.file_hash, s.created_at, s.updated_at,
	s.tracking_plan_id, s.enforcement, s.forward_violations_to, s.forward_blocked_to, s.function_id, s.insert_function_id,
	k.write_key, k.expires_at
FROM sources s
LEFT JOIN source_write_keys k ON k.source_id = s.id AND (k.expires_at IS NULL OR k.expires_at > ?)`
	args := []any{now}
	if id != "" {
		query += ` WHERE s.id = ?`
		args = append(args, id)
	}
	// ORDER BY only groups each source's rows; the final order is made in
	// Go, because PostgreSQL's collation may not order ids by bytes.
	query += ` ORDER BY s.id`
	rows, err := q.QueryContext(ctx, r.db.Rebind(query), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []storedSource
	for rows.Next() {
		var (
			s                               storedSource
			fileHash, key                   sql.NullString
			trackingPlan, fwdViol, fwdBlock sql.NullString
			fn, insertFn                    sql.NullString
			enforcement                     string
			created, updated                int64
			expiresAt                       sql.NullInt64
		)
		if err := rows.Scan(&s.ID, &s.Name, &s.Origin, &fileHash, &created, &updated,
			&trackingPlan, &enforcement, &fwdViol, &fwdBlock, &fn, &insertFn, &key, &expiresAt); err != nil {
			return nil, err
		}
		if n := len(out); n == 0 || out[n-1].ID != s.ID {
			if err := json.Unmarshal([]byte(enforcement), &s.Schema.Enforcement); err != nil {
				return nil, fmt.Errorf("decoding the schema of source %q: %w", s.ID, err)
			}
			s.TrackingPlan = trackingPlan.String
			s.Schema.ForwardViolationsTo, s.Schema.ForwardBlockedTo = fwdViol.String, fwdBlock.String
			s.Function, s.InsertFunction = fn.String, insertFn.String
			s.fileHash = fileHash.String
			s.CreatedAt, s.UpdatedAt = fromMillis(created), fromMillis(updated)
			out = append(out, s)
		}
		cur := &out[len(out)-1]
		switch {
		case !key.Valid:
		case !expiresAt.Valid:
			cur.WriteKey = key.String
		default:
			cur.RetiredKeys = append(cur.RetiredKeys, RetiredKey{WriteKey: key.String, ExpiresAt: fromMillis(expiresAt.Int64)})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b storedSource) int { return strings.Compare(a.ID, b.ID) })
	for _, s := range out {
		slices.SortFunc(s.RetiredKeys, func(a, b RetiredKey) int {
			return cmp.Or(a.ExpiresAt.Compare(b.ExpiresAt), strings.Compare(a.WriteKey, b.WriteKey))
		})
	}
	return out, nil
}

// getSource reads one source, or returns ErrNotFound.
func (r *Repo) getSource(ctx context.Context, q queryer, now int64, id string) (storedSource, error) {
	list, err := r.loadSources(ctx, q, now, id)
	if err != nil {
		return storedSource{}, fmt.Errorf("reading source %q: %w", id, err)
	}
	if len(list) == 0 {
		return storedSource{}, fmt.Errorf("source %q: %w", id, ErrNotFound)
	}
	return list[0], nil
}

// ListSources returns every source ordered by id, each with its current
// write key and its unexpired retired keys.
func (r *Repo) ListSources(ctx context.Context) ([]Source, error) {
	list, err := r.loadSources(ctx, r.db.SQL(), r.nowMillis(), "")
	if err != nil {
		return nil, fmt.Errorf("listing sources: %w", err)
	}
	out := make([]Source, len(list))
	for i, s := range list {
		out[i] = s.Source
	}
	return out, nil
}

// GetSource returns the source with id, or an error matching [ErrNotFound].
func (r *Repo) GetSource(ctx context.Context, id string) (Source, error) {
	s, err := r.getSource(ctx, r.db.SQL(), r.nowMillis(), id)
	return s.Source, err
}

// keyOwner returns the source holding write key as its current or retired
// key, or "" if none does. Expired keys are deleted by [Repo.write] first.
func (r *Repo) keyOwner(ctx context.Context, tx *sql.Tx, key string) (string, error) {
	var owner string
	err := tx.QueryRowContext(ctx, r.db.Rebind(`SELECT source_id FROM source_write_keys WHERE write_key = ?`), key).Scan(&owner)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("looking up a write key: %w", err)
	}
	return owner, nil
}

// insertCurrentKey makes key the current key of source id. The caller has
// removed the previous current key and checked that no other source holds
// key; if key is one of id's own retired keys, it is promoted.
func (r *Repo) insertCurrentKey(ctx context.Context, tx *sql.Tx, id, key string, now int64) error {
	if _, err := tx.ExecContext(ctx, r.db.Rebind(`DELETE FROM source_write_keys WHERE write_key = ? AND source_id = ?`), key, id); err != nil {
		return fmt.Errorf("promoting a retired write key of source %q: %w", id, err)
	}
	_, err := tx.ExecContext(ctx, r.db.Rebind(`INSERT INTO source_write_keys (write_key, source_id, created_at, expires_at) VALUES (?, ?, ?, NULL)`), key, id, now)
	if store.IsUniqueViolation(err) {
		return fmt.Errorf("write key of source %q is already in use: %w", id, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("storing the write key of source %q: %w", id, err)
	}
	return nil
}

// checkKeyFree returns an ErrConflict error if a source other than id holds
// key.
func (r *Repo) checkKeyFree(ctx context.Context, tx *sql.Tx, id, key string) error {
	owner, err := r.keyOwner(ctx, tx, key)
	if err != nil {
		return err
	}
	if owner != "" && owner != id {
		return fmt.Errorf("write key of source %q is already used by source %q: %w", id, owner, ErrConflict)
	}
	return nil
}

// insertSource stores a new source with its tracking plan, enforcement and
// functions but without its forwards, which may name sources not stored
// yet: see [Repo.setForwards].
func (r *Repo) insertSource(ctx context.Context, tx *sql.Tx, s Source, fileHash string, now int64) error {
	_, err := tx.ExecContext(ctx, r.db.Rebind(`INSERT INTO sources (id, name, origin, file_hash, created_at, updated_at, tracking_plan_id, enforcement,
	function_id, insert_function_id)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		s.ID, s.Name, s.Origin, nullable(fileHash), now, now, nullable(s.TrackingPlan), enforcementJSON(s.Schema.Enforcement),
		nullable(s.Function), nullable(s.InsertFunction))
	if store.IsUniqueViolation(err) {
		return fmt.Errorf("source %q already exists: %w", s.ID, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("inserting source %q: %w", s.ID, err)
	}
	return r.insertCurrentKey(ctx, tx, s.ID, s.WriteKey, now)
}

// setForwards stores the forwards of s's schema block.
func (r *Repo) setForwards(ctx context.Context, tx *sql.Tx, s Source) error {
	if _, err := tx.ExecContext(ctx, r.db.Rebind(`UPDATE sources SET forward_violations_to = ?, forward_blocked_to = ? WHERE id = ?`),
		nullable(s.Schema.ForwardViolationsTo), nullable(s.Schema.ForwardBlockedTo), s.ID); err != nil {
		return fmt.Errorf("updating the forwards of source %q: %w", s.ID, err)
	}
	return nil
}

// setRules stores s's tracking plan, enforcement and functions.
func (r *Repo) setRules(ctx context.Context, tx *sql.Tx, s Source) error {
	if _, err := tx.ExecContext(ctx, r.db.Rebind(`UPDATE sources SET tracking_plan_id = ?, enforcement = ?, function_id = ?, insert_function_id = ? WHERE id = ?`),
		nullable(s.TrackingPlan), enforcementJSON(s.Schema.Enforcement), nullable(s.Function), nullable(s.InsertFunction), s.ID); err != nil {
		return fmt.Errorf("updating the tracking plan of source %q: %w", s.ID, err)
	}
	return nil
}

// enforcementJSON encodes an enforcement as stored. It cannot fail: the
// fields are strings.
func enforcementJSON(e plan.Enforcement) string {
	b, _ := json.Marshal(e)
	return string(b)
}

// nullable stores "" as NULL.
func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// missingRefs reports each of s's references (its tracking plan, the
// sources it forwards to, its functions) that is not stored, or is a
// function of the wrong kind, as FieldErrors under prefix.
func (r *Repo) missingRefs(ctx context.Context, tx *sql.Tx, s *Source, prefix string) ([]*FieldError, error) {
	errs, err := r.missingFunctions(ctx, tx, s.functionRefs(prefix))
	if err != nil {
		return nil, err
	}
	if s.TrackingPlan != "" {
		ok, err := r.exists(ctx, tx, "tracking_plans", s.TrackingPlan)
		if err != nil {
			return nil, err
		}
		if !ok {
			errs = append(errs, &FieldError{Path: join(prefix, "tracking_plan"), Message: fmt.Sprintf("tracking plan %q does not exist", s.TrackingPlan)})
		}
	}
	for _, f := range []struct{ key, id string }{
		{"forward_violations_to", s.Schema.ForwardViolationsTo},
		{"forward_blocked_to", s.Schema.ForwardBlockedTo},
	} {
		if f.id == "" {
			continue
		}
		ok, err := r.exists(ctx, tx, "sources", f.id)
		if err != nil {
			return nil, err
		}
		if !ok {
			errs = append(errs, &FieldError{Path: join(join(prefix, "schema"), f.key), Message: fmt.Sprintf("source %q does not exist", f.id)})
		}
	}
	return errs, nil
}

// exists reports whether table holds a row with id. table is one of the
// workspace tables, never user input.
func (r *Repo) exists(ctx context.Context, q queryer, table, id string) (bool, error) {
	var n int
	if err := q.QueryRowContext(ctx, r.db.Rebind(`SELECT COUNT(*) FROM `+table+` WHERE id = ?`), id).Scan(&n); err != nil {
		return false, fmt.Errorf("looking up %q in %s: %w", id, table, err)
	}
	return n > 0, nil
}

func checkOrigin(origin string) string {
	switch origin {
	case "", OriginAPI, OriginFile:
		return ""
	}
	return fmt.Sprintf("%q is not an origin: use %q or %q", origin, OriginAPI, OriginFile)
}

// CreateSource stores a new source and returns it as stored. An empty
// WriteKey gets a generated one, an empty Name defaults to the ID (as in the
// config file), an empty Origin to [OriginAPI]; RetiredKeys and timestamps
// are ignored. Shape problems, a tracking plan or forward source that does
// not exist, and a function that does not exist or is not of the kind its
// field needs (source for Function, insert for InsertFunction), are a
// [*ValidationError]; an id or write key already in
// use (by any source, as current or unexpired retired key) matches
// [ErrConflict].
func (r *Repo) CreateSource(ctx context.Context, s Source) (Source, error) {
	errs := s.Validate("")
	if m := checkOrigin(s.Origin); m != "" {
		errs = append(errs, &FieldError{Path: "origin", Message: m})
	}
	if len(errs) > 0 {
		return Source{}, fmt.Errorf("creating source %q: %w", s.ID, &ValidationError{Errors: errs})
	}
	s.Origin = cmp.Or(s.Origin, OriginAPI)
	s.Name = cmp.Or(s.Name, s.ID)
	if s.WriteKey == "" {
		s.WriteKey = NewWriteKey()
	}
	var out storedSource
	err := r.write(ctx, func(tx *sql.Tx, now int64) (bool, error) {
		if err := r.checkKeyFree(ctx, tx, s.ID, s.WriteKey); err != nil {
			return false, err
		}
		errs, err := r.missingRefs(ctx, tx, &s, "")
		if err != nil {
			return false, err
		}
		if len(errs) > 0 {
			return false, &ValidationError{Errors: errs}
		}
		if err := r.insertSource(ctx, tx, s, "", now); err != nil {
			return false, err
		}
		if err := r.setForwards(ctx, tx, s); err != nil {
			return false, err
		}
		out, err = r.getSource(ctx, tx, now, s.ID)
		return true, err
	})
	if err != nil {
		return Source{}, fmt.Errorf("creating source %q: %w", s.ID, err)
	}
	return out.Source, nil
}

// UpdateSource changes a source's name, tracking plan, schema block and
// functions to s's (all are replaced: an empty TrackingPlan detaches the
// plan, an empty Function or InsertFunction the function)
// and, when s.WriteKey is non-empty and differs from the current key, its
// write key: the old current key stops working at once (use
// [Repo.RotateWriteKey] for a grace period). An empty Name resets it to the
// ID. Origin, retired keys and CreatedAt are kept. It returns the source as
// stored, an error matching [ErrNotFound] or [ErrConflict] (the new key
// belongs to another source), or a [*ValidationError] (including a
// tracking plan or forward source that does not exist). Updating with
// unchanged values changes nothing.
//
// The stored file hash is kept: if the config file's declaration of the
// source has not changed since it was last applied, [Repo.ApplyFile] leaves
// this edit in place; once the file's declaration changes, the file wins.
func (r *Repo) UpdateSource(ctx context.Context, s Source) (Source, error) {
	if errs := s.Validate(""); len(errs) > 0 {
		return Source{}, fmt.Errorf("updating source %q: %w", s.ID, &ValidationError{Errors: errs})
	}
	s.Name = cmp.Or(s.Name, s.ID)
	var out storedSource
	err := r.write(ctx, func(tx *sql.Tx, now int64) (bool, error) {
		cur, err := r.getSource(ctx, tx, now, s.ID)
		if err != nil {
			return false, err
		}
		errs, err := r.missingRefs(ctx, tx, &s, "")
		if err != nil {
			return false, err
		}
		if len(errs) > 0 {
			return false, &ValidationError{Errors: errs}
		}
		changed := false
		if s.Name != cur.Name {
			if _, err := tx.ExecContext(ctx, r.db.Rebind(`UPDATE sources SET name = ? WHERE id = ?`), s.Name, s.ID); err != nil {
				return false, fmt.Errorf("updating source %q: %w", s.ID, err)
			}
			changed = true
		}
		if s.TrackingPlan != cur.TrackingPlan || s.Schema.Enforcement != cur.Schema.Enforcement ||
			s.Function != cur.Function || s.InsertFunction != cur.InsertFunction {
			if err := r.setRules(ctx, tx, s); err != nil {
				return false, err
			}
			changed = true
		}
		if s.Schema.ForwardViolationsTo != cur.Schema.ForwardViolationsTo || s.Schema.ForwardBlockedTo != cur.Schema.ForwardBlockedTo {
			if err := r.setForwards(ctx, tx, s); err != nil {
				return false, err
			}
			changed = true
		}
		if s.WriteKey != "" && s.WriteKey != cur.WriteKey {
			if err := r.replaceCurrentKey(ctx, tx, s.ID, s.WriteKey, now); err != nil {
				return false, err
			}
			changed = true
		}
		if changed {
			if _, err := tx.ExecContext(ctx, r.db.Rebind(`UPDATE sources SET updated_at = ? WHERE id = ?`), now, s.ID); err != nil {
				return false, fmt.Errorf("updating source %q: %w", s.ID, err)
			}
		}
		out, err = r.getSource(ctx, tx, now, s.ID)
		return changed, err
	})
	if err != nil {
		return Source{}, fmt.Errorf("updating source %q: %w", s.ID, err)
	}
	return out.Source, nil
}

// replaceCurrentKey drops source id's current key and makes key current.
func (r *Repo) replaceCurrentKey(ctx context.Context, tx *sql.Tx, id, key string, now int64) error {
	if err := r.checkKeyFree(ctx, tx, id, key); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, r.db.Rebind(`DELETE FROM source_write_keys WHERE source_id = ? AND expires_at IS NULL`), id); err != nil {
		return fmt.Errorf("dropping the write key of source %q: %w", id, err)
	}
	return r.insertCurrentKey(ctx, tx, id, key, now)
}

// RotateWriteKey gives source id a new, generated current write key. The old
// current key keeps working for grace and is then ignored; with grace 0 it
// stops working at once. It returns the source as stored (its RetiredKeys
// show the old key and its expiry) or an error matching [ErrNotFound].
func (r *Repo) RotateWriteKey(ctx context.Context, id string, grace time.Duration) (Source, error) {
	if grace < 0 {
		return Source{}, fmt.Errorf("rotating the write key of source %q: negative grace period %s", id, grace)
	}
	var out storedSource
	err := r.write(ctx, func(tx *sql.Tx, now int64) (bool, error) {
		if _, err := r.getSource(ctx, tx, now, id); err != nil {
			return false, err
		}
		var err error
		if grace == 0 {
			_, err = tx.ExecContext(ctx, r.db.Rebind(`DELETE FROM source_write_keys WHERE source_id = ? AND expires_at IS NULL`), id)
		} else {
			_, err = tx.ExecContext(ctx, r.db.Rebind(`UPDATE source_write_keys SET expires_at = ? WHERE source_id = ? AND expires_at IS NULL`),
				now+grace.Milliseconds(), id)
		}
		if err != nil {
			return false, fmt.Errorf("retiring the current write key: %w", err)
		}
		if err := r.insertCurrentKey(ctx, tx, id, NewWriteKey(), now); err != nil {
			return false, err
		}
		if _, err := tx.ExecContext(ctx, r.db.Rebind(`UPDATE sources SET updated_at = ? WHERE id = ?`), now, id); err != nil {
			return false, fmt.Errorf("updating source %q: %w", id, err)
		}
		out, err = r.getSource(ctx, tx, now, id)
		return true, err
	})
	if err != nil {
		return Source{}, fmt.Errorf("rotating the write key of source %q: %w", id, err)
	}
	return out.Source, nil
}

// DeleteSource deletes source id and all its write keys. It returns an
// error matching [ErrNotFound], or [ErrConflict] naming what still uses it
// (change or delete that first): destinations that receive its events,
// transformations of its events, sources that forward their violations
// or blocked events to it, and alert rules watching it.
func (r *Repo) DeleteSource(ctx context.Context, id string) error {
	err := r.write(ctx, func(tx *sql.Tx, now int64) (bool, error) {
		if _, err := r.getSource(ctx, tx, now, id); err != nil {
			return false, err
		}
		return true, r.deleteSource(ctx, tx, id)
	})
	if err != nil {
		return fmt.Errorf("deleting source %q: %w", id, err)
	}
	return nil
}

// deleteSource deletes an existing source unless something uses it.
func (r *Repo) deleteSource(ctx context.Context, tx *sql.Tx, id string) error {
	var uses []string
	for _, u := range []struct {
		what, query string
		args        []any
	}{
		{"destinations", `SELECT destination_id FROM destination_sources WHERE source_id = ?`, []any{id}},
		{"transformations", `SELECT id FROM transformations WHERE source_id = ?`, []any{id}},
		{"sources forwarding to it", `SELECT id FROM sources WHERE (forward_violations_to = ? OR forward_blocked_to = ?) AND id <> ?`, []any{id, id, id}},
		{"alerts", `SELECT id FROM alerts WHERE source_id = ?`, []any{id}},
	} {
		ids, err := r.ids(ctx, tx, u.query, u.args...)
		if err != nil {
			return fmt.Errorf("finding the users of source %q: %w", id, err)
		}
		if len(ids) > 0 {
			uses = append(uses, u.what+" "+quoteList(ids))
		}
	}
	if len(uses) > 0 {
		return fmt.Errorf("source %q is used by %s: %w", id, strings.Join(uses, "; "), ErrConflict)
	}
	if _, err := tx.ExecContext(ctx, r.db.Rebind(`DELETE FROM sources WHERE id = ?`), id); err != nil {
		return fmt.Errorf("deleting source %q: %w", id, err)
	}
	return nil
}

// ids runs a query that selects one text column and returns the values,
// sorted.
func (r *Repo) ids(ctx context.Context, q queryer, query string, args ...any) ([]string, error) {
	rows, err := q.QueryContext(ctx, r.db.Rebind(query), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	slices.Sort(ids)
	return ids, nil
}

// EnsureDefaultSource makes sure the workspace has a source, so that a
// fresh install accepts events at once. With no sources at all it creates
// source "default" (name "Default", origin api, a generated write key) and
// returns it with created true. Otherwise it returns source "default" if it
// exists, else the first source by id, with created false.
func (r *Repo) EnsureDefaultSource(ctx context.Context) (Source, bool, error) {
	var (
		out     storedSource
		created bool
	)
	err := r.write(ctx, func(tx *sql.Tx, now int64) (bool, error) {
		all, err := r.loadSources(ctx, tx, now, "")
		if err != nil {
			return false, fmt.Errorf("listing sources: %w", err)
		}
		if len(all) > 0 {
			// all is ordered by id.
			i := max(0, slices.IndexFunc(all, func(s storedSource) bool { return s.ID == "default" }))
			out = all[i]
			return false, nil
		}
		s := Source{ID: "default", Name: "Default", WriteKey: NewWriteKey(), Origin: OriginAPI}
		if err := r.insertSource(ctx, tx, s, "", now); err != nil {
			return false, err
		}
		created = true
		out, err = r.getSource(ctx, tx, now, s.ID)
		return true, err
	})
	if err != nil {
		return Source{}, false, fmt.Errorf("ensuring a default source: %w", err)
	}
	return out.Source, created, nil
}

// storedDestination is a destination as stored, with what only the
// repository needs.
type storedDestination struct {
	Destination
	fileHash string
}

// loadDestinations reads destinations (all, or the one with id) ordered by
// id, each with its sources ordered by id.
func (r *Repo) loadDestinations(ctx context.Context, q queryer, id string) ([]storedDestination, error) {
	query := `SELECT d.id, d.name, d.type, d.enabled, d.settings, d.filters, d.delivery, d.insert_function_id, d.origin, d.file_hash,
	d.created_at, d.updated_at, ds.source_id
FROM destinations d
LEFT JOIN destination_sources ds ON ds.destination_id = d.id`
	var args []any
	if id != "" {
		query += ` WHERE d.id = ?`
		args = append(args, id)
	}
	// As in loadSources, the final order is made in Go.
	query += ` ORDER BY d.id`
	rows, err := q.QueryContext(ctx, r.db.Rebind(query), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []storedDestination
	for rows.Next() {
		var (
			d                            storedDestination
			settings, filters, delivery  string
			fileHash, sourceID, insertFn sql.NullString
			created, updated             int64
		)
		if err := rows.Scan(&d.ID, &d.Name, &d.Type, &d.Enabled, &settings, &filters, &delivery, &insertFn, &d.Origin, &fileHash,
			&created, &updated, &sourceID); err != nil {
			return nil, err
		}
		if n := len(out); n == 0 || out[n-1].ID != d.ID {
			if err := json.Unmarshal([]byte(settings), &d.Settings); err != nil {
				return nil, fmt.Errorf("decoding settings of destination %q: %w", d.ID, err)
			}
			if d.Settings == nil {
				d.Settings = map[string]any{}
			}
			if err := json.Unmarshal([]byte(filters), &d.Filters); err != nil {
				return nil, fmt.Errorf("decoding filters of destination %q: %w", d.ID, err)
			}
			if d.Filters == nil {
				d.Filters = []transform.Filter{}
			}
			if err := json.Unmarshal([]byte(delivery), &d.Delivery); err != nil {
				return nil, fmt.Errorf("decoding delivery options of destination %q: %w", d.ID, err)
			}
			d.Sources = []string{}
			d.InsertFunction = insertFn.String
			d.fileHash = fileHash.String
			d.CreatedAt, d.UpdatedAt = fromMillis(created), fromMillis(updated)
			out = append(out, d)
		}
		if sourceID.Valid {
			cur := &out[len(out)-1]
			cur.Sources = append(cur.Sources, sourceID.String)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b storedDestination) int { return strings.Compare(a.ID, b.ID) })
	for _, d := range out {
		slices.Sort(d.Sources)
	}
	return out, nil
}

// getDestination reads one destination, or returns ErrNotFound.
func (r *Repo) getDestination(ctx context.Context, q queryer, id string) (storedDestination, error) {
	list, err := r.loadDestinations(ctx, q, id)
	if err != nil {
		return storedDestination{}, fmt.Errorf("reading destination %q: %w", id, err)
	}
	if len(list) == 0 {
		return storedDestination{}, fmt.Errorf("destination %q: %w", id, ErrNotFound)
	}
	return list[0], nil
}

// ListDestinations returns every destination ordered by id. Sources are
// ordered by id; Settings is never nil.
func (r *Repo) ListDestinations(ctx context.Context) ([]Destination, error) {
	list, err := r.loadDestinations(ctx, r.db.SQL(), "")
	if err != nil {
		return nil, fmt.Errorf("listing destinations: %w", err)
	}
	out := make([]Destination, len(list))
	for i, d := range list {
		out[i] = d.Destination
	}
	return out, nil
}

// GetDestination returns the destination with id, or an error matching
// [ErrNotFound].
func (r *Repo) GetDestination(ctx context.Context, id string) (Destination, error) {
	d, err := r.getDestination(ctx, r.db.SQL(), id)
	return d.Destination, err
}

// settingsJSON encodes settings as stored: a JSON object, {} for nil.
func settingsJSON(settings map[string]any) (string, error) {
	if settings == nil {
		return "{}", nil
	}
	b, err := json.Marshal(settings)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// filtersJSON encodes filters as stored: a JSON list, [] for nil.
func filtersJSON(filters []transform.Filter) (string, error) {
	if len(filters) == 0 {
		return "[]", nil
	}
	b, err := json.Marshal(filters)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// deliveryJSON encodes delivery options as stored: a JSON object without
// the fields left at their defaults, {} for none.
func deliveryJSON(o DeliveryOptions) (string, error) {
	b, err := json.Marshal(o)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// encodedDestination is what a destination's JSON columns hold.
type encodedDestination struct {
	settings, filters, delivery string
}

// validateDestination checks d's shape and encodes its settings, filters
// and delivery options.
func validateDestination(d *Destination, prefix string) (enc encodedDestination, errs []*FieldError) {
	errs = d.Validate(prefix)
	if m := checkOrigin(d.Origin); m != "" {
		errs = append(errs, &FieldError{Path: join(prefix, "origin"), Message: m})
	}
	var err error
	if enc.settings, err = settingsJSON(d.Settings); err != nil {
		errs = append(errs, &FieldError{Path: join(prefix, "settings"), Message: "cannot be encoded as JSON: " + err.Error()})
	}
	if enc.filters, err = filtersJSON(d.Filters); err != nil {
		errs = append(errs, &FieldError{Path: join(prefix, "filters"), Message: "cannot be encoded as JSON: " + err.Error()})
	}
	// Only a rate limit that Validate refused (NaN, ±Inf) cannot be encoded.
	if enc.delivery, err = deliveryJSON(d.Delivery); err != nil && len(d.Delivery.validate(join(prefix, "delivery"))) == 0 {
		errs = append(errs, &FieldError{Path: join(prefix, "delivery"), Message: "cannot be encoded as JSON: " + err.Error()})
	}
	return enc, errs
}

// missingSources reports each of d's sources that is not stored, as a
// FieldError on prefix.sources[i], and each function it uses that is not
// stored or is of the wrong kind.
func (r *Repo) missingSources(ctx context.Context, tx *sql.Tx, d *Destination, prefix string) ([]*FieldError, error) {
	errs, err := r.missingFunctions(ctx, tx, d.functionRefs(prefix))
	if err != nil {
		return nil, err
	}
	for i, src := range d.Sources {
		var n int
		if err := tx.QueryRowContext(ctx, r.db.Rebind(`SELECT COUNT(*) FROM sources WHERE id = ?`), src).Scan(&n); err != nil {
			return nil, fmt.Errorf("looking up source %q: %w", src, err)
		}
		if n == 0 {
			errs = append(errs, &FieldError{Path: fmt.Sprintf("%s[%d]", join(prefix, "sources"), i), Message: fmt.Sprintf("source %q does not exist", src)})
		}
	}
	return errs, nil
}

func (r *Repo) insertDestination(ctx context.Context, tx *sql.Tx, d Destination, enc encodedDestination, fileHash string, now int64) error {
	_, err := tx.ExecContext(ctx, r.db.Rebind(`INSERT INTO destinations (id, name, type, enabled, settings, filters, delivery, insert_function_id, origin, file_hash,
	created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`), d.ID, d.Name, d.Type, d.Enabled, enc.settings, enc.filters, enc.delivery, nullable(d.InsertFunction),
		d.Origin, nullable(fileHash), now, now)
	if store.IsUniqueViolation(err) {
		return fmt.Errorf("destination %q already exists: %w", d.ID, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("inserting destination %q: %w", d.ID, err)
	}
	// What a node's queue of an earlier destination of this id stored
	// after that one was deleted does not carry over: a new destination
	// starts at the end of the log.
	if err := r.db.ForgetDelivery(ctx, tx, d.ID, false); err != nil {
		return err
	}
	return r.insertDestinationSources(ctx, tx, d)
}

func (r *Repo) insertDestinationSources(ctx context.Context, tx *sql.Tx, d Destination) error {
	for _, src := range d.Sources {
		_, err := tx.ExecContext(ctx, r.db.Rebind(`INSERT INTO destination_sources (destination_id, source_id) VALUES (?, ?)`), d.ID, src)
		if err != nil {
			return fmt.Errorf("linking destination %q to source %q: %w", d.ID, src, err)
		}
	}
	return nil
}

// updateDestination replaces every field of stored destination d but its
// origin and created_at; fileHash nil keeps the stored hash. A disabled
// destination enabled again starts with the events that arrive from now
// on: its delivery positions are reset in the same transaction (its
// retries are kept).
func (r *Repo) updateDestination(ctx context.Context, tx *sql.Tx, d Destination, enc encodedDestination, fileHash *string, now int64) error {
	var wasEnabled bool
	if err := tx.QueryRowContext(ctx, r.db.Rebind(`SELECT enabled FROM destinations WHERE id = ?`), d.ID).Scan(&wasEnabled); err != nil {
		return fmt.Errorf("reading destination %q: %w", d.ID, err)
	}
	if d.Enabled && !wasEnabled {
		if err := r.db.ForgetDelivery(ctx, tx, d.ID, true); err != nil {
			return err
		}
	}
	query := `UPDATE destinations SET name = ?, type = ?, enabled = ?, settings = ?, filters = ?, delivery = ?, insert_function_id = ?, updated_at = ?`
	args := []any{d.Name, d.Type, d.Enabled, enc.settings, enc.filters, enc.delivery, nullable(d.InsertFunction), now}
	if fileHash != nil {
		query += `, file_hash = ?`
		args = append(args, *fileHash)
	}
	query += ` WHERE id = ?`
	args = append(args, d.ID)
	if _, err := tx.ExecContext(ctx, r.db.Rebind(query), args...); err != nil {
		return fmt.Errorf("updating destination %q: %w", d.ID, err)
	}
	if _, err := tx.ExecContext(ctx, r.db.Rebind(`DELETE FROM destination_sources WHERE destination_id = ?`), d.ID); err != nil {
		return fmt.Errorf("unlinking the sources of destination %q: %w", d.ID, err)
	}
	return r.insertDestinationSources(ctx, tx, d)
}

// CreateDestination stores a new destination and returns it as stored. An
// empty Origin defaults to [OriginAPI]; nil Settings is stored as {}, nil
// Filters as []. Shape problems (filters that do not compile among them,
// on "filters[i]…", delivery options out of range on "delivery.…"),
// sources that do not exist (on "sources[i]"), and functions that do not
// exist or are of the wrong kind (an insert function on
// "insert_function"; for type [FunctionDestinationType], a destination
// function on "settings.function"), are a [*ValidationError];
// an id in use matches [ErrConflict].
func (r *Repo) CreateDestination(ctx context.Context, d Destination) (Destination, error) {
	enc, errs := validateDestination(&d, "")
	if len(errs) > 0 {
		return Destination{}, fmt.Errorf("creating destination %q: %w", d.ID, &ValidationError{Errors: errs})
	}
	d.Origin = cmp.Or(d.Origin, OriginAPI)
	var out storedDestination
	err := r.write(ctx, func(tx *sql.Tx, now int64) (bool, error) {
		errs, err := r.missingSources(ctx, tx, &d, "")
		if err != nil {
			return false, err
		}
		if len(errs) > 0 {
			return false, &ValidationError{Errors: errs}
		}
		if err := r.insertDestination(ctx, tx, d, enc, "", now); err != nil {
			return false, err
		}
		out, err = r.getDestination(ctx, tx, d.ID)
		return true, err
	})
	if err != nil {
		return Destination{}, fmt.Errorf("creating destination %q: %w", d.ID, err)
	}
	return out.Destination, nil
}

// UpdateDestination replaces destination d.ID's name, type, enabled flag,
// sources, settings, filters, delivery options and insert function with
// d's; origin and
// CreatedAt are kept.
// It returns the destination as stored, an error matching [ErrNotFound],
// or a [*ValidationError]. Updating with unchanged values changes nothing.
// As with [Repo.UpdateSource], the stored file hash is kept.
func (r *Repo) UpdateDestination(ctx context.Context, d Destination) (Destination, error) {
	d.Origin = "" // kept from the store; not the caller's to change
	enc, errs := validateDestination(&d, "")
	if len(errs) > 0 {
		return Destination{}, fmt.Errorf("updating destination %q: %w", d.ID, &ValidationError{Errors: errs})
	}
	var out storedDestination
	err := r.write(ctx, func(tx *sql.Tx, now int64) (bool, error) {
		cur, err := r.getDestination(ctx, tx, d.ID)
		if err != nil {
			return false, err
		}
		errs, err := r.missingSources(ctx, tx, &d, "")
		if err != nil {
			return false, err
		}
		if len(errs) > 0 {
			return false, &ValidationError{Errors: errs}
		}
		curSettings, err := settingsJSON(cur.Settings)
		if err != nil {
			return false, err
		}
		curFilters, err := filtersJSON(cur.Filters)
		if err != nil {
			return false, err
		}
		curDelivery, err := deliveryJSON(cur.Delivery)
		if err != nil {
			return false, err
		}
		if cur.Name == d.Name && cur.Type == d.Type && cur.Enabled == d.Enabled && curSettings == enc.settings && cur.InsertFunction == d.InsertFunction &&
			curFilters == enc.filters && curDelivery == enc.delivery && slices.Equal(cur.Sources, sortedCopy(d.Sources)) {
			out = cur
			return false, nil
		}
		if err := r.updateDestination(ctx, tx, d, enc, nil, now); err != nil {
			return false, err
		}
		out, err = r.getDestination(ctx, tx, d.ID)
		return true, err
	})
	if err != nil {
		return Destination{}, fmt.Errorf("updating destination %q: %w", d.ID, err)
	}
	return out.Destination, nil
}

// DeleteDestination deletes destination id, or returns an error matching
// [ErrNotFound], or [ErrConflict] naming the transformations scoped to it
// and the alert rules watching it (delete them first).
func (r *Repo) DeleteDestination(ctx context.Context, id string) error {
	return r.deleteByID(ctx, "destinations", "destination", id, r.deleteDestination)
}

// deleteByID deletes object id of table (what, for errors: "destination")
// with del, in one write: an error matching [ErrNotFound] when there is no
// such object, else del's.
func (r *Repo) deleteByID(ctx context.Context, table, what, id string, del func(ctx context.Context, tx *sql.Tx, id string) error) error {
	err := r.write(ctx, func(tx *sql.Tx, _ int64) (bool, error) {
		ok, err := r.exists(ctx, tx, table, id)
		if err != nil {
			return false, err
		}
		if !ok {
			return false, fmt.Errorf("%s %q: %w", what, id, ErrNotFound)
		}
		return true, del(ctx, tx, id)
	})
	if err != nil {
		return fmt.Errorf("deleting %s %q: %w", what, id, err)
	}
	return nil
}

// deleteDestination deletes an existing destination unless transformations
// are scoped to it or alert rules watch it.
func (r *Repo) deleteDestination(ctx context.Context, tx *sql.Tx, id string) error {
	var uses []string
	for _, u := range []struct{ what, query string }{
		{"transformations", `SELECT id FROM transformations WHERE destination_id = ?`},
		{"alerts", `SELECT id FROM alerts WHERE destination_id = ?`},
	} {
		ids, err := r.ids(ctx, tx, u.query, id)
		if err != nil {
			return fmt.Errorf("finding the users of destination %q: %w", id, err)
		}
		if len(ids) > 0 {
			uses = append(uses, u.what+" "+quoteList(ids))
		}
	}
	if len(uses) > 0 {
		return fmt.Errorf("destination %q is used by %s: %w", id, strings.Join(uses, "; "), ErrConflict)
	}
	if _, err := tx.ExecContext(ctx, r.db.Rebind(`DELETE FROM destinations WHERE id = ?`), id); err != nil {
		return fmt.Errorf("deleting destination %q: %w", id, err)
	}
	// Its position and retries go with it (a new destination of the same
	// id starts afresh); its dead letters stay.
	return r.db.ForgetDelivery(ctx, tx, id, false)
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	if c == nil {
		c = []string{}
	}
	slices.Sort(c)
	return c
}

func quoteList(ids []string) string {
	q := make([]string, len(ids))
	for i, id := range ids {
		q[i] = fmt.Sprintf("%q", id)
	}
	return strings.Join(q, ", ")
}
