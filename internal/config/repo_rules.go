package config

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/confluxcdp/conflux/internal/process/transform"
	"github.com/confluxcdp/conflux/internal/store"
)

// storedPlan is a tracking plan as stored, with what only the repository
// needs.
type storedPlan struct {
	TrackingPlan
	fileHash string
}

// rulesJSON encodes canonical rules as stored.
func rulesJSON(r PlanRules) (string, error) {
	if r.Events == nil {
		r.Events = map[string]json.RawMessage{}
	}
	b, err := json.Marshal(r)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// loadPlans reads tracking plans (all, or the one with id) ordered by id.
func (r *Repo) loadPlans(ctx context.Context, q queryer, id string) ([]storedPlan, error) {
	query := `SELECT id, name, rules, origin, file_hash, created_at, updated_at FROM tracking_plans`
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
	var out []storedPlan
	for rows.Next() {
		var (
			p                storedPlan
			rules            string
			fileHash         sql.NullString
			created, updated int64
		)
		if err := rows.Scan(&p.ID, &p.Name, &rules, &p.Origin, &fileHash, &created, &updated); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(rules), &p.Rules); err != nil {
			return nil, fmt.Errorf("decoding the rules of tracking plan %q: %w", p.ID, err)
		}
		if p.Rules.Events == nil {
			p.Rules.Events = map[string]json.RawMessage{}
		}
		p.fileHash = fileHash.String
		p.CreatedAt, p.UpdatedAt = fromMillis(created), fromMillis(updated)
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	// As in loadSources, the order is made in Go.
	slices.SortFunc(out, func(a, b storedPlan) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

func (r *Repo) getPlan(ctx context.Context, q queryer, id string) (storedPlan, error) {
	list, err := r.loadPlans(ctx, q, id)
	if err != nil {
		return storedPlan{}, fmt.Errorf("reading tracking plan %q: %w", id, err)
	}
	if len(list) == 0 {
		return storedPlan{}, fmt.Errorf("tracking plan %q: %w", id, ErrNotFound)
	}
	return list[0], nil
}

// ListTrackingPlans returns every tracking plan ordered by id.
func (r *Repo) ListTrackingPlans(ctx context.Context) ([]TrackingPlan, error) {
	list, err := r.loadPlans(ctx, r.db.SQL(), "")
	if err != nil {
		return nil, fmt.Errorf("listing tracking plans: %w", err)
	}
	out := make([]TrackingPlan, len(list))
	for i, p := range list {
		out[i] = p.TrackingPlan
	}
	return out, nil
}

// GetTrackingPlan returns the tracking plan with id, or an error matching
// [ErrNotFound].
func (r *Repo) GetTrackingPlan(ctx context.Context, id string) (TrackingPlan, error) {
	p, err := r.getPlan(ctx, r.db.SQL(), id)
	return p.TrackingPlan, err
}

// checkPlan puts p's rules in canonical form, defaults its name to its id,
// and reports its problems.
func checkPlan(p *TrackingPlan) []*FieldError {
	var errs []*FieldError
	p.Rules, errs = CanonicalRules("", p.Rules)
	p.Name = cmp.Or(p.Name, p.ID)
	if m := checkOrigin(p.Origin); m != "" {
		errs = append(errs, &FieldError{Path: "origin", Message: m})
	}
	if len(errs) > 0 {
		// Rules that are not JSON objects cannot be compiled.
		if m := ValidateID(p.ID); m != "" {
			errs = append(errs, &FieldError{Path: "id", Message: m})
		}
		return errs
	}
	return p.Validate("")
}

func (r *Repo) insertPlan(ctx context.Context, tx *sql.Tx, p TrackingPlan, fileHash string, now int64) error {
	rules, err := rulesJSON(p.Rules)
	if err != nil {
		return fmt.Errorf("encoding the rules of tracking plan %q: %w", p.ID, err)
	}
	_, err = tx.ExecContext(ctx, r.db.Rebind(`INSERT INTO tracking_plans (id, name, rules, origin, file_hash, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?)`), p.ID, p.Name, rules, p.Origin, nullable(fileHash), now, now)
	if store.IsUniqueViolation(err) {
		return fmt.Errorf("tracking plan %q already exists: %w", p.ID, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("inserting tracking plan %q: %w", p.ID, err)
	}
	return nil
}

// updatePlan replaces the name and rules of stored plan p; fileHash nil
// keeps the stored hash.
func (r *Repo) updatePlan(ctx context.Context, tx *sql.Tx, p TrackingPlan, fileHash *string, now int64) error {
	rules, err := rulesJSON(p.Rules)
	if err != nil {
		return fmt.Errorf("encoding the rules of tracking plan %q: %w", p.ID, err)
	}
	query := `UPDATE tracking_plans SET name = ?, rules = ?, updated_at = ?`
	args := []any{p.Name, rules, now}
	if fileHash != nil {
		query += `, file_hash = ?`
		args = append(args, *fileHash)
	}
	query += ` WHERE id = ?`
	args = append(args, p.ID)
	if _, err := tx.ExecContext(ctx, r.db.Rebind(query), args...); err != nil {
		return fmt.Errorf("updating tracking plan %q: %w", p.ID, err)
	}
	return nil
}

// CreateTrackingPlan stores a new tracking plan and returns it as stored.
// An empty Name defaults to the ID, an empty Origin to [OriginAPI]; the
// rules are stored in canonical form (see [CanonicalRules]). Shape
// problems, and rules that do not compile (each at its path, such as
// "rules.events.Order Completed"), are a [*ValidationError]; an id in use
// matches [ErrConflict].
func (r *Repo) CreateTrackingPlan(ctx context.Context, p TrackingPlan) (TrackingPlan, error) {
	if errs := checkPlan(&p); len(errs) > 0 {
		return TrackingPlan{}, fmt.Errorf("creating tracking plan %q: %w", p.ID, &ValidationError{Errors: errs})
	}
	p.Origin = cmp.Or(p.Origin, OriginAPI)
	var out storedPlan
	err := r.write(ctx, func(tx *sql.Tx, now int64) (bool, error) {
		if err := r.insertPlan(ctx, tx, p, "", now); err != nil {
			return false, err
		}
		var err error
		out, err = r.getPlan(ctx, tx, p.ID)
		return true, err
	})
	if err != nil {
		return TrackingPlan{}, fmt.Errorf("creating tracking plan %q: %w", p.ID, err)
	}
	return out.TrackingPlan, nil
}

// UpdateTrackingPlan replaces the name and the rules of tracking plan p.ID
// with p's (an empty Name resets it to the ID); origin and CreatedAt are
// kept. It returns the plan as stored, an error matching [ErrNotFound], or
// a [*ValidationError]. Updating with unchanged values changes nothing. As
// with [Repo.UpdateSource], the stored file hash is kept.
func (r *Repo) UpdateTrackingPlan(ctx context.Context, p TrackingPlan) (TrackingPlan, error) {
	p.Origin = ""
	if errs := checkPlan(&p); len(errs) > 0 {
		return TrackingPlan{}, fmt.Errorf("updating tracking plan %q: %w", p.ID, &ValidationError{Errors: errs})
	}
	var out storedPlan
	err := r.write(ctx, func(tx *sql.Tx, now int64) (bool, error) {
		cur, err := r.getPlan(ctx, tx, p.ID)
		if err != nil {
			return false, err
		}
		curRules, err := rulesJSON(cur.Rules)
		if err != nil {
			return false, err
		}
		newRules, err := rulesJSON(p.Rules)
		if err != nil {
			return false, err
		}
		if cur.Name == p.Name && curRules == newRules {
			out = cur
			return false, nil
		}
		if err := r.updatePlan(ctx, tx, p, nil, now); err != nil {
			return false, err
		}
		out, err = r.getPlan(ctx, tx, p.ID)
		return true, err
	})
	if err != nil {
		return TrackingPlan{}, fmt.Errorf("updating tracking plan %q: %w", p.ID, err)
	}
	return out.TrackingPlan, nil
}

// DeleteTrackingPlan deletes tracking plan id. It returns an error
// matching [ErrNotFound], or [ErrConflict] naming the sources that use the
// plan (detach it from them first).
func (r *Repo) DeleteTrackingPlan(ctx context.Context, id string) error {
	return r.deleteByID(ctx, "tracking_plans", "tracking plan", id, r.deleteTrackingPlan)
}

// deleteTrackingPlan deletes an existing plan unless sources use it.
func (r *Repo) deleteTrackingPlan(ctx context.Context, tx *sql.Tx, id string) error {
	users, err := r.ids(ctx, tx, `SELECT id FROM sources WHERE tracking_plan_id = ?`, id)
	if err != nil {
		return fmt.Errorf("finding the sources of tracking plan %q: %w", id, err)
	}
	if len(users) > 0 {
		return fmt.Errorf("tracking plan %q is used by sources %s: %w", id, quoteList(users), ErrConflict)
	}
	if _, err := tx.ExecContext(ctx, r.db.Rebind(`DELETE FROM tracking_plans WHERE id = ?`), id); err != nil {
		return fmt.Errorf("deleting tracking plan %q: %w", id, err)
	}
	return nil
}

// storedTransformation is a transformation as stored, with what only the
// repository needs.
type storedTransformation struct {
	Transformation
	position int64
	fileHash string
}

// normalizeTransformation makes Enabled explicit, so that a stored
// transformation always says whether it is on.
func normalizeTransformation(t *Transformation) {
	if t.Enabled == nil {
		on := true
		t.Enabled = &on
	}
}

// definitionJSON encodes what a transformation does, as stored.
func definitionJSON(t transform.Transformation) (string, error) {
	b, err := json.Marshal(t)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// compareTransformations orders transformations as they apply: file ones
// first, then API ones; each by position.
func compareTransformations(a, b storedTransformation) int {
	return cmp.Or(
		cmp.Compare(originRank(a.Origin), originRank(b.Origin)),
		cmp.Compare(a.position, b.position),
		strings.Compare(a.ID, b.ID),
	)
}

func originRank(origin string) int {
	if origin == OriginFile {
		return 0
	}
	return 1
}

// loadTransformations reads transformations (all, or the one with id) in
// the order they apply.
func (r *Repo) loadTransformations(ctx context.Context, q queryer, id string) ([]storedTransformation, error) {
	query := `SELECT id, source_id, destination_id, position, definition, origin, file_hash, created_at, updated_at FROM transformations`
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
	var out []storedTransformation
	for rows.Next() {
		var (
			t                     storedTransformation
			def                   string
			destination, fileHash sql.NullString
			created, updated      int64
		)
		if err := rows.Scan(&t.ID, &t.Source, &destination, &t.position, &def, &t.Origin, &fileHash, &created, &updated); err != nil {
			return nil, err
		}
		id := t.ID
		if err := json.Unmarshal([]byte(def), &t.Transformation.Transformation); err != nil {
			return nil, fmt.Errorf("decoding transformation %q: %w", id, err)
		}
		t.ID = id // the column is authoritative
		normalizeTransformation(&t.Transformation)
		t.Destination = destination.String
		t.fileHash = fileHash.String
		t.CreatedAt, t.UpdatedAt = fromMillis(created), fromMillis(updated)
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	slices.SortFunc(out, compareTransformations)
	return out, nil
}

func (r *Repo) getTransformation(ctx context.Context, q queryer, id string) (storedTransformation, error) {
	list, err := r.loadTransformations(ctx, q, id)
	if err != nil {
		return storedTransformation{}, fmt.Errorf("reading transformation %q: %w", id, err)
	}
	if len(list) == 0 {
		return storedTransformation{}, fmt.Errorf("transformation %q: %w", id, ErrNotFound)
	}
	return list[0], nil
}

// ListTransformations returns every transformation in the order they
// apply: those declared in the config file first, in file order, then
// those created through the API, in creation order.
func (r *Repo) ListTransformations(ctx context.Context) ([]Transformation, error) {
	list, err := r.loadTransformations(ctx, r.db.SQL(), "")
	if err != nil {
		return nil, fmt.Errorf("listing transformations: %w", err)
	}
	out := make([]Transformation, len(list))
	for i, t := range list {
		out[i] = t.Transformation
	}
	return out, nil
}

// GetTransformation returns the transformation with id, or an error
// matching [ErrNotFound].
func (r *Repo) GetTransformation(ctx context.Context, id string) (Transformation, error) {
	t, err := r.getTransformation(ctx, r.db.SQL(), id)
	return t.Transformation, err
}

// checkTransformation normalizes t, reports its problems and encodes its
// definition.
func checkTransformation(t *Transformation) (string, []*FieldError) {
	normalizeTransformation(t)
	errs := t.Validate("")
	if m := checkOrigin(t.Origin); m != "" {
		errs = append(errs, &FieldError{Path: "origin", Message: m})
	}
	def, err := definitionJSON(t.Transformation)
	if err != nil {
		errs = append(errs, &FieldError{Message: "cannot be encoded as JSON: " + err.Error()})
	}
	return def, errs
}

// missingScope reports t's source or destination that is not stored.
func (r *Repo) missingScope(ctx context.Context, tx *sql.Tx, t *Transformation) ([]*FieldError, error) {
	var errs []*FieldError
	ok, err := r.exists(ctx, tx, "sources", t.Source)
	if err != nil {
		return nil, err
	}
	if !ok {
		errs = append(errs, &FieldError{Path: "source", Message: fmt.Sprintf("source %q does not exist", t.Source)})
	}
	if t.Destination != "" {
		ok, err := r.exists(ctx, tx, "destinations", t.Destination)
		if err != nil {
			return nil, err
		}
		if !ok {
			errs = append(errs, &FieldError{Path: "destination", Message: fmt.Sprintf("destination %q does not exist", t.Destination)})
		}
	}
	return errs, nil
}

func (r *Repo) insertTransformation(ctx context.Context, tx *sql.Tx, t Transformation, def string, position int64, fileHash string, now int64) error {
	_, err := tx.ExecContext(ctx, r.db.Rebind(`INSERT INTO transformations (id, source_id, destination_id, position, definition, origin, file_hash, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`), t.ID, t.Source, nullable(t.Destination), position, def, t.Origin, nullable(fileHash), now, now)
	if store.IsUniqueViolation(err) {
		return fmt.Errorf("transformation %q already exists: %w", t.ID, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("inserting transformation %q: %w", t.ID, err)
	}
	return nil
}

// updateTransformation replaces the definition and scope of stored
// transformation t; fileHash nil keeps the stored hash. Its position is
// kept.
func (r *Repo) updateTransformation(ctx context.Context, tx *sql.Tx, t Transformation, def string, fileHash *string, now int64) error {
	query := `UPDATE transformations SET source_id = ?, destination_id = ?, definition = ?, updated_at = ?`
	args := []any{t.Source, nullable(t.Destination), def, now}
	if fileHash != nil {
		query += `, file_hash = ?`
		args = append(args, *fileHash)
	}
	query += ` WHERE id = ?`
	args = append(args, t.ID)
	if _, err := tx.ExecContext(ctx, r.db.Rebind(query), args...); err != nil {
		return fmt.Errorf("updating transformation %q: %w", t.ID, err)
	}
	return nil
}

// CreateTransformation stores a new transformation, after every other of
// its origin, and returns it as stored. An empty Origin defaults to
// [OriginAPI], a nil Enabled to true. Shape problems, what
// [transform.Compile] finds (at the field's path, such as
// "fqlDefinedProperties[0].fql"), and a source or destination that does
// not exist are a [*ValidationError]; an id in use matches [ErrConflict].
func (r *Repo) CreateTransformation(ctx context.Context, t Transformation) (Transformation, error) {
	def, errs := checkTransformation(&t)
	if len(errs) > 0 {
		return Transformation{}, fmt.Errorf("creating transformation %q: %w", t.ID, &ValidationError{Errors: errs})
	}
	t.Origin = cmp.Or(t.Origin, OriginAPI)
	var out storedTransformation
	err := r.write(ctx, func(tx *sql.Tx, now int64) (bool, error) {
		errs, err := r.missingScope(ctx, tx, &t)
		if err != nil {
			return false, err
		}
		if len(errs) > 0 {
			return false, &ValidationError{Errors: errs}
		}
		var last sql.NullInt64
		if err := tx.QueryRowContext(ctx, r.db.Rebind(`SELECT MAX(position) FROM transformations WHERE origin = ?`), t.Origin).Scan(&last); err != nil {
			return false, fmt.Errorf("finding the last transformation: %w", err)
		}
		pos := int64(0)
		if last.Valid {
			pos = last.Int64 + 1
		}
		if err := r.insertTransformation(ctx, tx, t, def, pos, "", now); err != nil {
			return false, err
		}
		out, err = r.getTransformation(ctx, tx, t.ID)
		return true, err
	})
	if err != nil {
		return Transformation{}, fmt.Errorf("creating transformation %q: %w", t.ID, err)
	}
	return out.Transformation, nil
}

// UpdateTransformation replaces what transformation t.ID does and its
// scope (Source, Destination) with t's; origin, place in the order and
// CreatedAt are kept. It returns the transformation as stored, an error
// matching [ErrNotFound], or a [*ValidationError]. Updating with unchanged
// values changes nothing. As with [Repo.UpdateSource], the stored file
// hash is kept.
func (r *Repo) UpdateTransformation(ctx context.Context, t Transformation) (Transformation, error) {
	t.Origin = ""
	def, errs := checkTransformation(&t)
	if len(errs) > 0 {
		return Transformation{}, fmt.Errorf("updating transformation %q: %w", t.ID, &ValidationError{Errors: errs})
	}
	var out storedTransformation
	err := r.write(ctx, func(tx *sql.Tx, now int64) (bool, error) {
		cur, err := r.getTransformation(ctx, tx, t.ID)
		if err != nil {
			return false, err
		}
		errs, err := r.missingScope(ctx, tx, &t)
		if err != nil {
			return false, err
		}
		if len(errs) > 0 {
			return false, &ValidationError{Errors: errs}
		}
		curDef, err := definitionJSON(cur.Transformation.Transformation)
		if err != nil {
			return false, err
		}
		if curDef == def && cur.Source == t.Source && cur.Destination == t.Destination {
			out = cur
			return false, nil
		}
		if err := r.updateTransformation(ctx, tx, t, def, nil, now); err != nil {
			return false, err
		}
		out, err = r.getTransformation(ctx, tx, t.ID)
		return true, err
	})
	if err != nil {
		return Transformation{}, fmt.Errorf("updating transformation %q: %w", t.ID, err)
	}
	return out.Transformation, nil
}

// DeleteTransformation deletes transformation id, or returns an error
// matching [ErrNotFound].
func (r *Repo) DeleteTransformation(ctx context.Context, id string) error {
	err := r.write(ctx, func(tx *sql.Tx, _ int64) (bool, error) {
		res, err := tx.ExecContext(ctx, r.db.Rebind(`DELETE FROM transformations WHERE id = ?`), id)
		if err != nil {
			return false, err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return false, err
		}
		if n == 0 {
			return false, fmt.Errorf("transformation %q: %w", id, ErrNotFound)
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("deleting transformation %q: %w", id, err)
	}
	return nil
}
