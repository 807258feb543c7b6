package config

import (
	"cmp"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/confluxcdp/conflux/internal/store"
)

// ErrNotFound means the source or destination named in a [Repo] call does
// not exist. The Config API answers it with 404.
var ErrNotFound = errors.New("not found")

// ErrConflict means a [Repo] change clashes with the stored workspace: the
// id or write key is taken, a source is still used by destinations, or a
// file-declared object collides with one created through the API. The
// Config API answers it with 409.
var ErrConflict = errors.New("conflict")

// ValidationError is every problem found in the shape of a source or
// destination handed to a [Repo], or of a [Config] handed to
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
// write keys, destinations, a few meta values, and the config version that
// every change bumps. It is safe for concurrent use; on both engines writes
// are serialised (SQLite's write lock, a row lock on PostgreSQL), so each
// write sees the effect of the previous one.
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
	query := `SELECT s.id, s.name, s.origin, s.file_hash, s.created_at, s.updated_at, k.write_key, k.expires_at
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
			s                storedSource
			fileHash, key    sql.NullString
			created, updated int64
			expiresAt        sql.NullInt64
		)
		if err := rows.Scan(&s.ID, &s.Name, &s.Origin, &fileHash, &created, &updated, &key, &expiresAt); err != nil {
			return nil, err
		}
		if n := len(out); n == 0 || out[n-1].ID != s.ID {
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

func (r *Repo) insertSource(ctx context.Context, tx *sql.Tx, s Source, fileHash string, now int64) error {
	var hash any
	if fileHash != "" {
		hash = fileHash
	}
	_, err := tx.ExecContext(ctx, r.db.Rebind(`INSERT INTO sources (id, name, origin, file_hash, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)`),
		s.ID, s.Name, s.Origin, hash, now, now)
	if store.IsUniqueViolation(err) {
		return fmt.Errorf("source %q already exists: %w", s.ID, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("inserting source %q: %w", s.ID, err)
	}
	return r.insertCurrentKey(ctx, tx, s.ID, s.WriteKey, now)
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
// are ignored. Shape problems are a [*ValidationError]; an id or write key
// already in use (by any source, as current or unexpired retired key)
// matches [ErrConflict].
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
		if err := r.insertSource(ctx, tx, s, "", now); err != nil {
			return false, err
		}
		var err error
		out, err = r.getSource(ctx, tx, now, s.ID)
		return true, err
	})
	if err != nil {
		return Source{}, fmt.Errorf("creating source %q: %w", s.ID, err)
	}
	return out.Source, nil
}

// UpdateSource changes a source's name and, when s.WriteKey is non-empty and
// differs from the current key, its write key: the old current key stops
// working at once (use [Repo.RotateWriteKey] for a grace period). An empty
// Name resets it to the ID. Origin, retired keys and CreatedAt are kept.
// It returns the source as stored, an error matching [ErrNotFound] or
// [ErrConflict] (the new key belongs to another source), or a
// [*ValidationError]. Updating with unchanged values changes nothing.
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
		changed := false
		if s.Name != cur.Name {
			if _, err := tx.ExecContext(ctx, r.db.Rebind(`UPDATE sources SET name = ? WHERE id = ?`), s.Name, s.ID); err != nil {
				return false, fmt.Errorf("updating source %q: %w", s.ID, err)
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
// error matching [ErrNotFound], or [ErrConflict] naming the destinations
// that still send its events somewhere (remove it from them first).
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

// deleteSource deletes an existing source unless destinations use it.
func (r *Repo) deleteSource(ctx context.Context, tx *sql.Tx, id string) error {
	users, err := r.destinationsUsing(ctx, tx, id)
	if err != nil {
		return err
	}
	if len(users) > 0 {
		return fmt.Errorf("source %q is used by destinations %s: %w", id, quoteList(users), ErrConflict)
	}
	if _, err := tx.ExecContext(ctx, r.db.Rebind(`DELETE FROM sources WHERE id = ?`), id); err != nil {
		return fmt.Errorf("deleting source %q: %w", id, err)
	}
	return nil
}

func (r *Repo) destinationsUsing(ctx context.Context, tx *sql.Tx, sourceID string) ([]string, error) {
	rows, err := tx.QueryContext(ctx, r.db.Rebind(`SELECT destination_id FROM destination_sources WHERE source_id = ?`), sourceID)
	if err != nil {
		return nil, fmt.Errorf("finding destinations of source %q: %w", sourceID, err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("finding destinations of source %q: %w", sourceID, err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("finding destinations of source %q: %w", sourceID, err)
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
	query := `SELECT d.id, d.name, d.type, d.enabled, d.settings, d.origin, d.file_hash, d.created_at, d.updated_at, ds.source_id
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
			d                  storedDestination
			settings           string
			fileHash, sourceID sql.NullString
			created, updated   int64
		)
		if err := rows.Scan(&d.ID, &d.Name, &d.Type, &d.Enabled, &settings, &d.Origin, &fileHash, &created, &updated, &sourceID); err != nil {
			return nil, err
		}
		if n := len(out); n == 0 || out[n-1].ID != d.ID {
			if err := json.Unmarshal([]byte(settings), &d.Settings); err != nil {
				return nil, fmt.Errorf("decoding settings of destination %q: %w", d.ID, err)
			}
			if d.Settings == nil {
				d.Settings = map[string]any{}
			}
			d.Sources = []string{}
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

// validateDestination checks d's shape and encodes its settings.
func validateDestination(d *Destination, prefix string) (settings string, errs []*FieldError) {
	errs = d.Validate(prefix)
	if m := checkOrigin(d.Origin); m != "" {
		errs = append(errs, &FieldError{Path: join(prefix, "origin"), Message: m})
	}
	settings, err := settingsJSON(d.Settings)
	if err != nil {
		errs = append(errs, &FieldError{Path: join(prefix, "settings"), Message: "cannot be encoded as JSON: " + err.Error()})
	}
	return settings, errs
}

// missingSources reports each of d's sources that is not stored, as a
// FieldError on prefix.sources[i].
func (r *Repo) missingSources(ctx context.Context, tx *sql.Tx, d *Destination, prefix string) ([]*FieldError, error) {
	var errs []*FieldError
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

func (r *Repo) insertDestination(ctx context.Context, tx *sql.Tx, d Destination, settings, fileHash string, now int64) error {
	var hash any
	if fileHash != "" {
		hash = fileHash
	}
	_, err := tx.ExecContext(ctx, r.db.Rebind(`INSERT INTO destinations (id, name, type, enabled, settings, origin, file_hash, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`), d.ID, d.Name, d.Type, d.Enabled, settings, d.Origin, hash, now, now)
	if store.IsUniqueViolation(err) {
		return fmt.Errorf("destination %q already exists: %w", d.ID, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("inserting destination %q: %w", d.ID, err)
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
// origin and created_at; fileHash nil keeps the stored hash.
func (r *Repo) updateDestination(ctx context.Context, tx *sql.Tx, d Destination, settings string, fileHash *string, now int64) error {
	query := `UPDATE destinations SET name = ?, type = ?, enabled = ?, settings = ?, updated_at = ?`
	args := []any{d.Name, d.Type, d.Enabled, settings, now}
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
// empty Origin defaults to [OriginAPI]; nil Settings is stored as {}. Shape
// problems, and sources that do not exist (on "sources[i]"), are a
// [*ValidationError]; an id in use matches [ErrConflict].
func (r *Repo) CreateDestination(ctx context.Context, d Destination) (Destination, error) {
	settings, errs := validateDestination(&d, "")
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
		if err := r.insertDestination(ctx, tx, d, settings, "", now); err != nil {
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
// sources and settings with d's; origin and CreatedAt are kept. It returns
// the destination as stored, an error matching [ErrNotFound], or a
// [*ValidationError]. Updating with unchanged values changes nothing. As
// with [Repo.UpdateSource], the stored file hash is kept.
func (r *Repo) UpdateDestination(ctx context.Context, d Destination) (Destination, error) {
	d.Origin = "" // kept from the store; not the caller's to change
	settings, errs := validateDestination(&d, "")
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
		if cur.Name == d.Name && cur.Type == d.Type && cur.Enabled == d.Enabled &&
			curSettings == settings && slices.Equal(cur.Sources, sortedCopy(d.Sources)) {
			out = cur
			return false, nil
		}
		if err := r.updateDestination(ctx, tx, d, settings, nil, now); err != nil {
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
// [ErrNotFound].
func (r *Repo) DeleteDestination(ctx context.Context, id string) error {
	err := r.write(ctx, func(tx *sql.Tx, _ int64) (bool, error) {
		res, err := tx.ExecContext(ctx, r.db.Rebind(`DELETE FROM destinations WHERE id = ?`), id)
		if err != nil {
			return false, err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return false, err
		}
		if n == 0 {
			return false, fmt.Errorf("destination %q: %w", id, ErrNotFound)
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("deleting destination %q: %w", id, err)
	}
	return nil
}

// ApplyReport says what [Repo.ApplyFile] did, by object id.
type ApplyReport struct {
	Sources      ApplyChanges
	Destinations ApplyChanges
}

// Changed reports whether ApplyFile changed the workspace.
func (r ApplyReport) Changed() bool { return r.Sources.changed() || r.Destinations.changed() }

// ApplyChanges lists the ids of one kind of object by what ApplyFile did
// to them. Created, Updated and Unchanged follow the file's order; Deleted
// is ordered by id.
type ApplyChanges struct {
	// Created were declared in the file and absent from the store.
	Created []string
	// Updated had a file declaration that changed since it was last
	// applied, and were overwritten from the file.
	Updated []string
	// Deleted had origin file and are no longer in the file.
	Deleted []string
	// Unchanged have the same file declaration as when last applied; any
	// change made through the API since stands.
	Unchanged []string
}

func (c ApplyChanges) changed() bool {
	return len(c.Created)+len(c.Updated)+len(c.Deleted) > 0
}

// sourceDecl is what the config file declares about a source: its
// canonical JSON is what file_hash covers.
type sourceDecl struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	WriteKey string `json:"write_key"`
}

// destinationDecl is what the config file declares about a destination.
// Sources are sorted: their order means nothing.
type destinationDecl struct {
	ID       string         `json:"id"`
	Name     string         `json:"name"`
	Type     string         `json:"type"`
	Enabled  bool           `json:"enabled"`
	Sources  []string       `json:"sources"`
	Settings map[string]any `json:"settings"`
}

// declHash is the sha256 of v's JSON encoding (map keys sorted), in hex.
func declHash(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// ApplyFile makes the stored workspace follow a config file, in one
// transaction, and bumps the config version if anything changed.
//
// It compares each declared object with the declaration last applied (its
// stored file hash, a sha256 of the declaration's canonical JSON):
//   - not in the store: created, with origin file;
//   - same declaration as last applied: left alone, so that changes made
//     through the API since (a rotated key, a new name) stand;
//   - declaration changed: overwritten from the file. A source whose file
//     write_key is empty keeps its current key; one with a different key
//     gets it, and its old current key stops working at once. Unexpired
//     retired keys are kept.
//
// Objects with origin file that the file no longer declares are deleted,
// destinations first. Objects with origin api are never touched: one that
// the file declares too is an [ErrConflict] error, as is a source still used
// by an API destination when the file drops it, and a write key held by
// another source (the error names both). Shape problems, duplicate ids or
// keys, and destinations naming a source that neither the file nor the
// store's API sources hold are a [*ValidationError]. On any error nothing
// is changed.
func (r *Repo) ApplyFile(ctx context.Context, cfg *Config) (ApplyReport, error) {
	if cfg == nil {
		return ApplyReport{}, errors.New("applying config file: nil config")
	}
	srcHashes, dstHashes, settings, err := checkFile(cfg)
	if err != nil {
		return ApplyReport{}, fmt.Errorf("applying config file: %w", err)
	}
	var rep ApplyReport
	err = r.write(ctx, func(tx *sql.Tx, now int64) (bool, error) {
		rep = ApplyReport{}
		a := &applier{r: r, tx: tx, now: now, cfg: cfg, rep: &rep,
			srcHashes: srcHashes, dstHashes: dstHashes, settings: settings}
		if err := a.run(ctx); err != nil {
			return false, err
		}
		return rep.Changed(), nil
	})
	if err != nil {
		return ApplyReport{}, fmt.Errorf("applying config file: %w", err)
	}
	return rep, nil
}

// checkFile validates cfg on its own and returns the declaration hashes of
// its sources and destinations and the destinations' encoded settings.
func checkFile(cfg *Config) (srcHashes, dstHashes, settings []string, err error) {
	var errs []*FieldError
	ids := make(map[string]int)
	keys := make(map[string]int)
	srcHashes = make([]string, len(cfg.Sources))
	for i := range cfg.Sources {
		s := &cfg.Sources[i]
		p := fmt.Sprintf("sources[%d]", i)
		errs = append(errs, s.Validate(p)...)
		if j, dup := ids[s.ID]; dup {
			errs = append(errs, &FieldError{Path: p + ".id", Message: fmt.Sprintf("duplicate source id %q (also sources[%d])", s.ID, j)})
		}
		ids[s.ID] = i
		if j, dup := keys[s.WriteKey]; dup && s.WriteKey != "" {
			errs = append(errs, &FieldError{Path: p + ".write_key", Message: fmt.Sprintf("same write key as sources[%d]", j)})
		}
		keys[s.WriteKey] = i
		// Cannot fail: three strings.
		srcHashes[i], _ = declHash(sourceDecl{ID: s.ID, Name: s.Name, WriteKey: s.WriteKey})
	}
	dstIDs := make(map[string]int)
	dstHashes = make([]string, len(cfg.Destinations))
	settings = make([]string, len(cfg.Destinations))
	for i := range cfg.Destinations {
		d := &cfg.Destinations[i]
		p := fmt.Sprintf("destinations[%d]", i)
		var derrs []*FieldError
		settings[i], derrs = validateDestination(d, p)
		errs = append(errs, derrs...)
		if j, dup := dstIDs[d.ID]; dup {
			errs = append(errs, &FieldError{Path: p + ".id", Message: fmt.Sprintf("duplicate destination id %q (also destinations[%d])", d.ID, j)})
		}
		dstIDs[d.ID] = i
		decl := destinationDecl{ID: d.ID, Name: d.Name, Type: d.Type, Enabled: d.Enabled,
			Sources: sortedCopy(d.Sources), Settings: d.Settings}
		if decl.Settings == nil {
			decl.Settings = map[string]any{}
		}
		h, err := declHash(decl)
		if err != nil {
			// Reported above by validateDestination.
			continue
		}
		dstHashes[i] = h
	}
	if len(errs) > 0 {
		return nil, nil, nil, &ValidationError{Errors: errs}
	}
	return srcHashes, dstHashes, settings, nil
}

// applier is the state of one ApplyFile transaction.
type applier struct {
	r   *Repo
	tx  *sql.Tx
	now int64
	cfg *Config
	rep *ApplyReport

	srcHashes, dstHashes, settings []string

	sources      map[string]storedSource
	destinations map[string]storedDestination
}

func (a *applier) run(ctx context.Context) error {
	if err := a.load(ctx); err != nil {
		return err
	}
	if err := a.check(); err != nil {
		return err
	}
	fileSources, fileDests := a.fileSourceIDs(), a.fileDestinationIDs()
	var removedSources, removedDests []string
	for _, id := range slices.Sorted(maps.Keys(a.sources)) {
		if a.sources[id].Origin == OriginFile && !fileSources[id] {
			removedSources = append(removedSources, id)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(a.destinations)) {
		if a.destinations[id].Origin == OriginFile && !fileDests[id] {
			removedDests = append(removedDests, id)
		}
	}

	// Free the keys that go away before any key is assigned, so that a
	// source renamed in the file can keep its key, and two can swap.
	for _, id := range removedSources {
		if _, err := a.tx.ExecContext(ctx, a.r.db.Rebind(`DELETE FROM source_write_keys WHERE source_id = ?`), id); err != nil {
			return fmt.Errorf("dropping the write keys of source %q: %w", id, err)
		}
	}
	for i, s := range a.cfg.Sources {
		cur, ok := a.sources[s.ID]
		if ok && cur.fileHash != a.srcHashes[i] && s.WriteKey != "" && s.WriteKey != cur.WriteKey {
			if _, err := a.tx.ExecContext(ctx, a.r.db.Rebind(`DELETE FROM source_write_keys WHERE source_id = ? AND expires_at IS NULL`), s.ID); err != nil {
				return fmt.Errorf("dropping the write key of source %q: %w", s.ID, err)
			}
		}
	}

	for i := range a.cfg.Sources {
		if err := a.applySource(ctx, i); err != nil {
			return err
		}
	}
	for i := range a.cfg.Destinations {
		if err := a.applyDestination(ctx, i); err != nil {
			return err
		}
	}
	for _, id := range removedDests {
		if _, err := a.tx.ExecContext(ctx, a.r.db.Rebind(`DELETE FROM destinations WHERE id = ?`), id); err != nil {
			return fmt.Errorf("deleting destination %q: %w", id, err)
		}
		a.rep.Destinations.Deleted = append(a.rep.Destinations.Deleted, id)
	}
	for _, id := range removedSources {
		if err := a.r.deleteSource(ctx, a.tx, id); err != nil {
			return fmt.Errorf("removing source %q, no longer in the file: %w", id, err)
		}
		a.rep.Sources.Deleted = append(a.rep.Sources.Deleted, id)
	}
	return nil
}

func (a *applier) load(ctx context.Context) error {
	srcs, err := a.r.loadSources(ctx, a.tx, a.now, "")
	if err != nil {
		return fmt.Errorf("reading sources: %w", err)
	}
	a.sources = make(map[string]storedSource, len(srcs))
	for _, s := range srcs {
		a.sources[s.ID] = s
	}
	dsts, err := a.r.loadDestinations(ctx, a.tx, "")
	if err != nil {
		return fmt.Errorf("reading destinations: %w", err)
	}
	a.destinations = make(map[string]storedDestination, len(dsts))
	for _, d := range dsts {
		a.destinations[d.ID] = d
	}
	return nil
}

// check rejects file objects that collide with API objects, and destination
// sources that will not exist once the file is applied.
func (a *applier) check() error {
	for i, s := range a.cfg.Sources {
		if cur, ok := a.sources[s.ID]; ok && cur.Origin != OriginFile {
			return fmt.Errorf("sources[%d]: source %q was created through the API; delete it there or rename it in the file: %w", i, s.ID, ErrConflict)
		}
	}
	for i, d := range a.cfg.Destinations {
		if cur, ok := a.destinations[d.ID]; ok && cur.Origin != OriginFile {
			return fmt.Errorf("destinations[%d]: destination %q was created through the API; delete it there or rename it in the file: %w", i, d.ID, ErrConflict)
		}
	}
	fileSources := a.fileSourceIDs()
	var errs []*FieldError
	for i, d := range a.cfg.Destinations {
		for j, src := range d.Sources {
			cur, stored := a.sources[src]
			if !fileSources[src] && (!stored || cur.Origin == OriginFile) {
				errs = append(errs, &FieldError{
					Path:    fmt.Sprintf("destinations[%d].sources[%d]", i, j),
					Message: fmt.Sprintf("source %q is not declared in the file nor created through the API", src),
				})
			}
		}
	}
	if len(errs) > 0 {
		return &ValidationError{Errors: errs}
	}
	return nil
}

func (a *applier) fileSourceIDs() map[string]bool {
	ids := make(map[string]bool, len(a.cfg.Sources))
	for _, s := range a.cfg.Sources {
		ids[s.ID] = true
	}
	return ids
}

func (a *applier) fileDestinationIDs() map[string]bool {
	ids := make(map[string]bool, len(a.cfg.Destinations))
	for _, d := range a.cfg.Destinations {
		ids[d.ID] = true
	}
	return ids
}

func (a *applier) applySource(ctx context.Context, i int) error {
	s, hash := a.cfg.Sources[i], a.srcHashes[i]
	cur, ok := a.sources[s.ID]
	switch {
	case !ok:
		s.Origin = OriginFile
		if s.WriteKey == "" {
			s.WriteKey = NewWriteKey()
		}
		if err := a.checkKey(ctx, i, s.ID, s.WriteKey); err != nil {
			return err
		}
		if err := a.r.insertSource(ctx, a.tx, s, hash, a.now); err != nil {
			return err
		}
		a.rep.Sources.Created = append(a.rep.Sources.Created, s.ID)
	case cur.fileHash == hash:
		a.rep.Sources.Unchanged = append(a.rep.Sources.Unchanged, s.ID)
	default:
		if _, err := a.tx.ExecContext(ctx, a.r.db.Rebind(`UPDATE sources SET name = ?, file_hash = ?, updated_at = ? WHERE id = ?`),
			s.Name, hash, a.now, s.ID); err != nil {
			return fmt.Errorf("updating source %q: %w", s.ID, err)
		}
		if s.WriteKey != "" && s.WriteKey != cur.WriteKey {
			// run already dropped the old current key.
			if err := a.checkKey(ctx, i, s.ID, s.WriteKey); err != nil {
				return err
			}
			if err := a.r.insertCurrentKey(ctx, a.tx, s.ID, s.WriteKey, a.now); err != nil {
				return err
			}
		}
		a.rep.Sources.Updated = append(a.rep.Sources.Updated, s.ID)
	}
	return nil
}

// checkKey returns an ErrConflict error naming both sources if another
// source holds key.
func (a *applier) checkKey(ctx context.Context, i int, id, key string) error {
	owner, err := a.r.keyOwner(ctx, a.tx, key)
	if err != nil {
		return err
	}
	if owner != "" && owner != id {
		return fmt.Errorf("sources[%d]: the write key of source %q is already used by source %q: %w", i, id, owner, ErrConflict)
	}
	return nil
}

func (a *applier) applyDestination(ctx context.Context, i int) error {
	d, hash, settings := a.cfg.Destinations[i], a.dstHashes[i], a.settings[i]
	cur, ok := a.destinations[d.ID]
	switch {
	case !ok:
		d.Origin = OriginFile
		if err := a.r.insertDestination(ctx, a.tx, d, settings, hash, a.now); err != nil {
			return err
		}
		a.rep.Destinations.Created = append(a.rep.Destinations.Created, d.ID)
	case cur.fileHash == hash:
		a.rep.Destinations.Unchanged = append(a.rep.Destinations.Unchanged, d.ID)
	default:
		if err := a.r.updateDestination(ctx, a.tx, d, settings, &hash, a.now); err != nil {
			return err
		}
		a.rep.Destinations.Updated = append(a.rep.Destinations.Updated, d.ID)
	}
	return nil
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
