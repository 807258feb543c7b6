package config

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/confluxcdp/conflux/internal/aggregate/identity"
)

// OriginDefault is the origin of identity settings that neither the
// config file nor the API declared: every default applies.
const OriginDefault = "default"

// identityResetKey is the meta key under which [Repo.ResetIdentitySettings]
// keeps the file hash of the row it deleted, so that the next
// [Repo.ApplyFile] of the same declaration keeps the defaults, as it keeps
// any other API change, while a changed declaration applies.
const identityResetKey = "identity_settings.reset_file_hash"

// storedIdentity is the identity_settings row; exists is false when there
// is none. Settings stay encoded: [Repo.ApplyFile] needs only the origin
// and hash, and must not fail on settings it cannot decode.
type storedIdentity struct {
	exists    bool
	settings  string
	origin    string
	fileHash  string
	updatedAt time.Time
}

// identityJSON encodes s as stored. An empty identifiers list is stored
// as none, so that {} and {"identifiers": []} are the same settings.
func identityJSON(s identity.Settings) string {
	if len(s.Identifiers) == 0 {
		s.Identifiers = nil
	}
	b, err := json.Marshal(s)
	if err != nil {
		panic(err) // strings and numbers only
	}
	return string(b)
}

// identityProblems returns the problems of s, with paths under prefix.
func identityProblems(s identity.Settings, prefix string) []*FieldError {
	var errs []*FieldError
	for _, p := range s.Check() {
		errs = append(errs, &FieldError{Path: join(prefix, p.Path), Message: p.Message})
	}
	return errs
}

func (r *Repo) loadIdentity(ctx context.Context, q queryer) (storedIdentity, error) {
	st := storedIdentity{exists: true}
	var hash sql.NullString
	var updated int64
	err := q.QueryRowContext(ctx, `SELECT settings, origin, file_hash, updated_at FROM identity_settings WHERE singleton = 1`).
		Scan(&st.settings, &st.origin, &hash, &updated)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return storedIdentity{}, nil
	case err != nil:
		return storedIdentity{}, fmt.Errorf("reading the identity settings: %w", err)
	}
	st.fileHash, st.updatedAt = hash.String, fromMillis(updated)
	return st, nil
}

// resetHash returns the file hash [Repo.ResetIdentitySettings] kept, or "".
func (r *Repo) resetHash(ctx context.Context, tx *sql.Tx) (string, error) {
	var v string
	err := tx.QueryRowContext(ctx, r.db.Rebind(`SELECT value FROM meta WHERE key = ?`), identityResetKey).Scan(&v)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("reading meta %q: %w", identityResetKey, err)
	}
	return v, nil
}

// setResetHash keeps hash under identityResetKey, or forgets it when hash
// is "".
func (r *Repo) setResetHash(ctx context.Context, tx *sql.Tx, hash string) error {
	var err error
	if hash == "" {
		_, err = tx.ExecContext(ctx, r.db.Rebind(`DELETE FROM meta WHERE key = ?`), identityResetKey)
	} else {
		_, err = tx.ExecContext(ctx, r.db.Rebind(`INSERT INTO meta (key, value) VALUES (?, ?)
ON CONFLICT (key) DO UPDATE SET value = excluded.value`), identityResetKey, hash)
	}
	if err != nil {
		return fmt.Errorf("setting meta %q: %w", identityResetKey, err)
	}
	return nil
}

// writeIdentity stores the row, replacing any.
func (r *Repo) writeIdentity(ctx context.Context, tx *sql.Tx, settings, origin, fileHash string, now int64) error {
	_, err := tx.ExecContext(ctx, r.db.Rebind(`INSERT INTO identity_settings (singleton, settings, origin, file_hash, updated_at) VALUES (1, ?, ?, ?, ?)
ON CONFLICT (singleton) DO UPDATE SET settings = excluded.settings, origin = excluded.origin, file_hash = excluded.file_hash, updated_at = excluded.updated_at`),
		settings, origin, nullable(fileHash), now)
	if err != nil {
		return fmt.Errorf("storing the identity settings: %w", err)
	}
	return nil
}

// IdentitySettings returns the workspace's identity settings as stored,
// who wrote them last ([OriginFile] or [OriginAPI]) and when. With none
// stored it returns the zero Settings (every default), [OriginDefault]
// and the zero time.
func (r *Repo) IdentitySettings(ctx context.Context) (s identity.Settings, origin string, updatedAt time.Time, err error) {
	st, err := r.loadIdentity(ctx, r.db.SQL())
	if err != nil || !st.exists {
		return identity.Settings{}, OriginDefault, time.Time{}, err
	}
	if err := json.Unmarshal([]byte(st.settings), &s); err != nil {
		return identity.Settings{}, "", time.Time{}, fmt.Errorf("decoding the stored identity settings: %w", err)
	}
	return s, st.origin, st.updatedAt, nil
}

// SetIdentitySettings stores s as the workspace's identity settings, with
// origin [OriginAPI], and bumps the config version. The problems
// [identity.Settings.Check] finds are a [*ValidationError] with their
// paths ("identifiers[1].frame"). Setting the stored settings again
// changes nothing. As with [Repo.UpdateSource], the file hash is kept:
// the setting stands until the config file's identity block changes.
func (r *Repo) SetIdentitySettings(ctx context.Context, s identity.Settings) error {
	if errs := identityProblems(s, ""); len(errs) > 0 {
		return fmt.Errorf("setting the identity settings: %w", &ValidationError{Errors: errs})
	}
	enc := identityJSON(s)
	err := r.write(ctx, func(tx *sql.Tx, now int64) (bool, error) {
		cur, err := r.loadIdentity(ctx, tx)
		if err != nil {
			return false, err
		}
		if cur.exists && cur.origin == OriginAPI && cur.settings == enc {
			return false, nil
		}
		hash := cur.fileHash
		if !cur.exists {
			if hash, err = r.resetHash(ctx, tx); err != nil {
				return false, err
			}
			if err := r.setResetHash(ctx, tx, ""); err != nil {
				return false, err
			}
		}
		return true, r.writeIdentity(ctx, tx, enc, OriginAPI, hash, now)
	})
	if err != nil {
		return fmt.Errorf("setting the identity settings: %w", err)
	}
	return nil
}

// ResetIdentitySettings deletes the stored identity settings, so that
// every default applies, and bumps the config version if there were any.
// Like any API change, the reset stands while the config file's identity
// block stays as it was last applied; once it changes, [Repo.ApplyFile]
// stores it again.
func (r *Repo) ResetIdentitySettings(ctx context.Context) error {
	err := r.write(ctx, func(tx *sql.Tx, _ int64) (bool, error) {
		cur, err := r.loadIdentity(ctx, tx)
		if err != nil || !cur.exists {
			return false, err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM identity_settings WHERE singleton = 1`); err != nil {
			return false, fmt.Errorf("deleting the identity settings: %w", err)
		}
		return true, r.setResetHash(ctx, tx, cur.fileHash)
	})
	if err != nil {
		return fmt.Errorf("resetting the identity settings: %w", err)
	}
	return nil
}

// identityID is the id of the identity settings in an [ApplyReport].
const identityID = "identity"

// applyIdentity makes the stored identity settings follow the file's
// identity block, with the file-hash rules of every file object (see
// [Repo.ApplyFile]).
func (a *applier) applyIdentity(ctx context.Context) error {
	cur, err := a.r.loadIdentity(ctx, a.tx)
	if err != nil {
		return err
	}
	reset, err := a.r.resetHash(ctx, a.tx)
	if err != nil {
		return err
	}
	rep, f := &a.rep.Identity, a.f
	if f.identity == nil {
		// No declaration: nothing to stand against.
		if err := a.r.setResetHash(ctx, a.tx, ""); err != nil {
			return err
		}
		switch {
		case cur.exists && cur.origin == OriginFile:
			if _, err := a.tx.ExecContext(ctx, `DELETE FROM identity_settings WHERE singleton = 1`); err != nil {
				return fmt.Errorf("deleting the identity settings: %w", err)
			}
			rep.Deleted = []string{identityID}
		case cur.fileHash != "":
			// The API's settings stay; a later declaration is a change.
			if _, err := a.tx.ExecContext(ctx, `UPDATE identity_settings SET file_hash = NULL WHERE singleton = 1`); err != nil {
				return fmt.Errorf("updating the identity settings: %w", err)
			}
		}
		return nil
	}
	switch {
	case cur.exists && cur.fileHash == f.identityHash, !cur.exists && reset == f.identityHash:
		rep.Unchanged = []string{identityID}
		return nil
	case cur.exists:
		rep.Updated = []string{identityID}
	default:
		rep.Created = []string{identityID}
		if err := a.r.setResetHash(ctx, a.tx, ""); err != nil {
			return err
		}
	}
	return a.r.writeIdentity(ctx, a.tx, identityJSON(*f.identity), OriginFile, f.identityHash, a.now)
}
