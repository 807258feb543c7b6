package config

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/confluxcdp/conflux/internal/store"
)

// storedAlert is an alert rule as stored, with what only the repository
// needs.
type storedAlert struct {
	Alert
	fileHash string
}

// notifyJSON encodes a notification webhook as stored.
func notifyJSON(n AlertNotify) (string, error) {
	b, err := json.Marshal(n)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// loadAlerts reads alert rules (all, or the one with id) ordered by id.
func (r *Repo) loadAlerts(ctx context.Context, q queryer, id string) ([]storedAlert, error) {
	query := `SELECT id, name, destination_id, source_id, enabled, kind, threshold, window_ms, min_events, notify, origin, file_hash, created_at, updated_at FROM alerts`
	var args []any
	if id != "" {
		query += ` WHERE id = ?`
		args = append(args, id)
	}
	rows, err := q.QueryContext(ctx, r.db.Rebind(query), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []storedAlert
	for rows.Next() {
		var (
			a                             storedAlert
			destination, source, fileHash sql.NullString
			kind, notify                  string
			window, created, updated      int64
		)
		if err := rows.Scan(&a.ID, &a.Name, &destination, &source, &a.Enabled, &kind, &a.Threshold, &window, &a.MinEvents,
			&notify, &a.Origin, &fileHash, &created, &updated); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(notify), &a.Notify); err != nil {
			return nil, fmt.Errorf("decoding the notify block of alert %q: %w", a.ID, err)
		}
		a.Kind = AlertKind(kind)
		a.Window = Duration(time.Duration(window) * time.Millisecond)
		a.Destination, a.Source = destination.String, source.String
		a.fileHash = fileHash.String
		a.CreatedAt, a.UpdatedAt = fromMillis(created), fromMillis(updated)
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	// As in loadSources, the order is made in Go.
	slices.SortFunc(out, func(a, b storedAlert) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

func (r *Repo) getAlert(ctx context.Context, q queryer, id string) (storedAlert, error) {
	list, err := r.loadAlerts(ctx, q, id)
	if err != nil {
		return storedAlert{}, fmt.Errorf("reading alert %q: %w", id, err)
	}
	if len(list) == 0 {
		return storedAlert{}, fmt.Errorf("alert %q: %w", id, ErrNotFound)
	}
	return list[0], nil
}

// ListAlerts returns every alert rule ordered by id.
func (r *Repo) ListAlerts(ctx context.Context) ([]Alert, error) {
	list, err := r.loadAlerts(ctx, r.db.SQL(), "")
	if err != nil {
		return nil, fmt.Errorf("listing alerts: %w", err)
	}
	out := make([]Alert, len(list))
	for i, a := range list {
		out[i] = a.Alert
	}
	return out, nil
}

// GetAlert returns the alert rule with id, or an error matching
// [ErrNotFound].
func (r *Repo) GetAlert(ctx context.Context, id string) (Alert, error) {
	a, err := r.getAlert(ctx, r.db.SQL(), id)
	return a.Alert, err
}

// checkAlert fills a's defaults, reports its problems with paths under
// prefix, and encodes its notify block.
func checkAlert(a *Alert, prefix string) (string, []*FieldError) {
	a.normalize()
	errs := a.Validate(prefix)
	if m := checkOrigin(a.Origin); m != "" {
		errs = append(errs, &FieldError{Path: join(prefix, "origin"), Message: m})
	}
	notify, err := notifyJSON(a.Notify)
	if err != nil {
		errs = append(errs, &FieldError{Path: join(prefix, "notify"), Message: "cannot be encoded as JSON: " + err.Error()})
	}
	return notify, errs
}

// missingAlertScope reports a's destination or source that is not stored.
func (r *Repo) missingAlertScope(ctx context.Context, tx *sql.Tx, a *Alert) ([]*FieldError, error) {
	var errs []*FieldError
	for _, ref := range []struct{ field, table, what, id string }{
		{"destination", "destinations", "destination", a.Destination},
		{"source", "sources", "source", a.Source},
	} {
		if ref.id == "" {
			continue
		}
		ok, err := r.exists(ctx, tx, ref.table, ref.id)
		if err != nil {
			return nil, err
		}
		if !ok {
			errs = append(errs, &FieldError{Path: ref.field, Message: fmt.Sprintf("%s %q does not exist", ref.what, ref.id)})
		}
	}
	return errs, nil
}

func (r *Repo) insertAlert(ctx context.Context, tx *sql.Tx, a Alert, notify, fileHash string, now int64) error {
	_, err := tx.ExecContext(ctx, r.db.Rebind(`INSERT INTO alerts (id, name, destination_id, source_id, enabled, kind, threshold, window_ms, min_events, notify, origin, file_hash, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		a.ID, a.Name, nullable(a.Destination), nullable(a.Source), a.Enabled, string(a.Kind), a.Threshold,
		time.Duration(a.Window).Milliseconds(), a.MinEvents, notify, a.Origin, nullable(fileHash), now, now)
	if store.IsUniqueViolation(err) {
		return fmt.Errorf("alert %q already exists: %w", a.ID, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("inserting alert %q: %w", a.ID, err)
	}
	return nil
}

// updateAlert replaces every field of stored alert a but its origin and
// created_at; fileHash nil keeps the stored hash.
func (r *Repo) updateAlert(ctx context.Context, tx *sql.Tx, a Alert, notify string, fileHash *string, now int64) error {
	query := `UPDATE alerts SET name = ?, destination_id = ?, source_id = ?, enabled = ?, kind = ?, threshold = ?, window_ms = ?, min_events = ?, notify = ?, updated_at = ?`
	args := []any{a.Name, nullable(a.Destination), nullable(a.Source), a.Enabled, string(a.Kind), a.Threshold,
		time.Duration(a.Window).Milliseconds(), a.MinEvents, notify, now}
	if fileHash != nil {
		query += `, file_hash = ?`
		args = append(args, *fileHash)
	}
	query += ` WHERE id = ?`
	args = append(args, a.ID)
	if _, err := tx.ExecContext(ctx, r.db.Rebind(query), args...); err != nil {
		return fmt.Errorf("updating alert %q: %w", a.ID, err)
	}
	return nil
}

// sameAlert reports whether two rules declare the same thing (ignoring
// origin and timestamps).
func sameAlert(a, b *Alert) bool {
	return a.Name == b.Name && a.Destination == b.Destination && a.Source == b.Source && a.Enabled == b.Enabled &&
		a.Kind == b.Kind && a.Threshold == b.Threshold && a.Window == b.Window && a.MinEvents == b.MinEvents &&
		a.Notify.URL == b.Notify.URL && maps.Equal(a.Notify.Headers, b.Notify.Headers)
}

// CreateAlert stores a new alert rule and returns it as stored. An empty
// Name defaults to the ID, a zero MinEvents to [DefaultAlertMinEvents]
// where it applies, an empty Origin to [OriginAPI]. Shape problems and a
// destination or source that does not exist are a [*ValidationError]; an
// id in use matches [ErrConflict].
func (r *Repo) CreateAlert(ctx context.Context, a Alert) (Alert, error) {
	notify, errs := checkAlert(&a, "")
	if len(errs) > 0 {
		return Alert{}, fmt.Errorf("creating alert %q: %w", a.ID, &ValidationError{Errors: errs})
	}
	a.Origin = cmp.Or(a.Origin, OriginAPI)
	var out storedAlert
	err := r.write(ctx, func(tx *sql.Tx, now int64) (bool, error) {
		errs, err := r.missingAlertScope(ctx, tx, &a)
		if err != nil {
			return false, err
		}
		if len(errs) > 0 {
			return false, &ValidationError{Errors: errs}
		}
		if err := r.insertAlert(ctx, tx, a, notify, "", now); err != nil {
			return false, err
		}
		out, err = r.getAlert(ctx, tx, a.ID)
		return true, err
	})
	if err != nil {
		return Alert{}, fmt.Errorf("creating alert %q: %w", a.ID, err)
	}
	return out.Alert, nil
}

// UpdateAlert replaces every field of alert rule a.ID with a's; origin and
// CreatedAt are kept. It returns the rule as stored, an error matching
// [ErrNotFound], or a [*ValidationError]. Updating with unchanged values
// changes nothing. As with [Repo.UpdateSource], the stored file hash is
// kept.
func (r *Repo) UpdateAlert(ctx context.Context, a Alert) (Alert, error) {
	a.Origin = ""
	notify, errs := checkAlert(&a, "")
	if len(errs) > 0 {
		return Alert{}, fmt.Errorf("updating alert %q: %w", a.ID, &ValidationError{Errors: errs})
	}
	var out storedAlert
	err := r.write(ctx, func(tx *sql.Tx, now int64) (bool, error) {
		cur, err := r.getAlert(ctx, tx, a.ID)
		if err != nil {
			return false, err
		}
		errs, err := r.missingAlertScope(ctx, tx, &a)
		if err != nil {
			return false, err
		}
		if len(errs) > 0 {
			return false, &ValidationError{Errors: errs}
		}
		if sameAlert(&cur.Alert, &a) {
			out = cur
			return false, nil
		}
		if err := r.updateAlert(ctx, tx, a, notify, nil, now); err != nil {
			return false, err
		}
		out, err = r.getAlert(ctx, tx, a.ID)
		return true, err
	})
	if err != nil {
		return Alert{}, fmt.Errorf("updating alert %q: %w", a.ID, err)
	}
	return out.Alert, nil
}

// DeleteAlert deletes alert rule id, or returns an error matching
// [ErrNotFound]. Its state and history are the evaluator's to drop.
func (r *Repo) DeleteAlert(ctx context.Context, id string) error {
	err := r.write(ctx, func(tx *sql.Tx, _ int64) (bool, error) {
		res, err := tx.ExecContext(ctx, r.db.Rebind(`DELETE FROM alerts WHERE id = ?`), id)
		if err != nil {
			return false, err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return false, err
		}
		if n == 0 {
			return false, fmt.Errorf("alert %q: %w", id, ErrNotFound)
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("deleting alert %q: %w", id, err)
	}
	return nil
}
