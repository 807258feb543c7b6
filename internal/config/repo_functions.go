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

	"github.com/confluxcdp/conflux/internal/function"
	"github.com/confluxcdp/conflux/internal/store"
)

// storedFunction is a function as stored, with what only the repository
// needs.
type storedFunction struct {
	Function
	fileHash string
}

// functionContent is one version's content as its columns hold it.
type functionContent struct {
	code, settings, hosts string
	timeoutMS             int64
}

// encodeContent encodes the versioned part of f as stored.
func encodeContent(f *Function) (functionContent, error) {
	settings, err := settingsJSON(f.Settings)
	if err != nil {
		return functionContent{}, err
	}
	hosts := f.AllowedHosts
	if hosts == nil {
		hosts = []string{}
	}
	b, err := json.Marshal(hosts)
	if err != nil {
		return functionContent{}, err
	}
	return functionContent{code: f.Code, settings: settings, hosts: string(b), timeoutMS: time.Duration(f.Timeout).Milliseconds()}, nil
}

// decodeContent sets the versioned fields of f from c.
func decodeContent(f *Function, c functionContent) error {
	f.Code = c.code
	if err := json.Unmarshal([]byte(c.settings), &f.Settings); err != nil {
		return fmt.Errorf("decoding the settings of function %q: %w", f.ID, err)
	}
	if err := json.Unmarshal([]byte(c.hosts), &f.AllowedHosts); err != nil {
		return fmt.Errorf("decoding the allowed hosts of function %q: %w", f.ID, err)
	}
	if f.Settings == nil {
		f.Settings = map[string]any{}
	}
	if f.AllowedHosts == nil {
		f.AllowedHosts = []string{}
	}
	f.Timeout = Duration(time.Duration(c.timeoutMS) * time.Millisecond)
	return nil
}

// checkFunction reports f's problems with paths under prefix and encodes
// its content.
func checkFunction(f *Function, prefix string) (functionContent, []*FieldError) {
	errs := f.Validate(prefix)
	if m := checkOrigin(f.Origin); m != "" {
		errs = append(errs, &FieldError{Path: join(prefix, "origin"), Message: m})
	}
	c, err := encodeContent(f)
	if err != nil {
		errs = append(errs, &FieldError{Path: join(prefix, "settings"), Message: "cannot be encoded as JSON: " + err.Error()})
	}
	return c, errs
}

// loadFunctions reads functions (all, or the one with id) ordered by id,
// each with the content of its latest version or, when deployed is set,
// of its deployed version (leaving out the functions without one).
func (r *Repo) loadFunctions(ctx context.Context, q queryer, id string, deployed bool) ([]storedFunction, error) {
	which := "f.version"
	if deployed {
		which = "f.deployed_version"
	}
	query := `SELECT f.id, f.name, f.kind, f.version, f.deployed_version, f.origin, f.file_hash, f.created_at, f.updated_at,
	v.code, v.settings, v.allowed_hosts, v.timeout_ms
FROM functions f JOIN function_versions v ON v.function_id = f.id AND v.version = ` + which
	var args []any
	if id != "" {
		query += ` WHERE f.id = ?`
		args = append(args, id)
	}
	rows, err := q.QueryContext(ctx, r.db.Rebind(query), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []storedFunction
	for rows.Next() {
		var (
			f                storedFunction
			kind             string
			fileHash         sql.NullString
			created, updated int64
			c                functionContent
		)
		if err := rows.Scan(&f.ID, &f.Name, &kind, &f.Version, &f.DeployedVersion, &f.Origin, &fileHash, &created, &updated,
			&c.code, &c.settings, &c.hosts, &c.timeoutMS); err != nil {
			return nil, err
		}
		f.Kind = function.Kind(kind)
		if err := decodeContent(&f.Function, c); err != nil {
			return nil, err
		}
		f.fileHash = fileHash.String
		f.CreatedAt, f.UpdatedAt = fromMillis(created), fromMillis(updated)
		out = append(out, f)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	// As in loadSources, the order is made in Go.
	slices.SortFunc(out, func(a, b storedFunction) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// getFunction reads one function with its latest content, or returns
// ErrNotFound.
func (r *Repo) getFunction(ctx context.Context, q queryer, id string) (storedFunction, error) {
	list, err := r.loadFunctions(ctx, q, id, false)
	if err != nil {
		return storedFunction{}, fmt.Errorf("reading function %q: %w", id, err)
	}
	if len(list) == 0 {
		return storedFunction{}, fmt.Errorf("function %q: %w", id, ErrNotFound)
	}
	return list[0], nil
}

// ListFunctions returns every function ordered by id, each with its latest
// saved version's content (see DeployedVersion for the one that runs).
func (r *Repo) ListFunctions(ctx context.Context) ([]Function, error) {
	return r.listFunctions(ctx, false)
}

// ListDeployedFunctions returns every function that has a deployed version,
// ordered by id, each with that version's content: what runs, and what
// [Manager.Reload] builds the workspace from. Version is still the latest
// saved version.
func (r *Repo) ListDeployedFunctions(ctx context.Context) ([]Function, error) {
	return r.listFunctions(ctx, true)
}

func (r *Repo) listFunctions(ctx context.Context, deployed bool) ([]Function, error) {
	list, err := r.loadFunctions(ctx, r.db.SQL(), "", deployed)
	if err != nil {
		return nil, fmt.Errorf("listing functions: %w", err)
	}
	out := make([]Function, len(list))
	for i, f := range list {
		out[i] = f.Function
	}
	return out, nil
}

// GetFunction returns the function with id, with its latest saved
// version's content, or an error matching [ErrNotFound].
func (r *Repo) GetFunction(ctx context.Context, id string) (Function, error) {
	f, err := r.getFunction(ctx, r.db.SQL(), id)
	return f.Function, err
}

// insertFunction stores a new function with c as its version 1, deployed
// when deploy is set.
func (r *Repo) insertFunction(ctx context.Context, tx *sql.Tx, f Function, c functionContent, deploy bool, fileHash string, now int64) error {
	deployed := 0
	if deploy {
		deployed = 1
	}
	_, err := tx.ExecContext(ctx, r.db.Rebind(`INSERT INTO functions (id, name, kind, version, deployed_version, origin, file_hash, created_at, updated_at)
VALUES (?, ?, ?, 1, ?, ?, ?, ?, ?)`), f.ID, f.Name, string(f.Kind), deployed, f.Origin, nullable(fileHash), now, now)
	if store.IsUniqueViolation(err) {
		return fmt.Errorf("function %q already exists: %w", f.ID, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("inserting function %q: %w", f.ID, err)
	}
	return r.insertVersion(ctx, tx, f.ID, 1, c, now)
}

func (r *Repo) insertVersion(ctx context.Context, tx *sql.Tx, id string, version int, c functionContent, now int64) error {
	_, err := tx.ExecContext(ctx, r.db.Rebind(`INSERT INTO function_versions (function_id, version, code, settings, allowed_hosts, timeout_ms, created_at)
VALUES (?, ?, ?, ?, ?, ?, ?)`), id, version, c.code, c.settings, c.hosts, c.timeoutMS, now)
	if err != nil {
		return fmt.Errorf("storing version %d of function %q: %w", version, id, err)
	}
	return nil
}

// saveFunction stores f's name and, when its content c differs from the
// latest version of stored function cur, c as a new version; it deploys
// the version that is then latest when deploy is set. fileHash nil keeps
// the stored hash. It reports whether anything changed.
func (r *Repo) saveFunction(ctx context.Context, tx *sql.Tx, cur storedFunction, f Function, c functionContent, deploy bool, fileHash *string, now int64) (bool, error) {
	curContent, err := encodeContent(&cur.Function)
	if err != nil {
		return false, err
	}
	version, deployed := cur.Version, cur.DeployedVersion
	if c != curContent {
		version++
		if err := r.insertVersion(ctx, tx, f.ID, version, c, now); err != nil {
			return false, err
		}
	}
	if deploy {
		deployed = version
	}
	if version == cur.Version && deployed == cur.DeployedVersion && f.Name == cur.Name &&
		(fileHash == nil || *fileHash == cur.fileHash) {
		return false, nil
	}
	query := `UPDATE functions SET name = ?, version = ?, deployed_version = ?, updated_at = ?`
	args := []any{f.Name, version, deployed, now}
	if fileHash != nil {
		query += `, file_hash = ?`
		args = append(args, *fileHash)
	}
	query += ` WHERE id = ?`
	args = append(args, f.ID)
	if _, err := tx.ExecContext(ctx, r.db.Rebind(query), args...); err != nil {
		return false, fmt.Errorf("updating function %q: %w", f.ID, err)
	}
	return true, nil
}

// CreateFunction stores a new function as its version 1 and returns it as
// stored; deploy makes version 1 the deployed version at once (false
// leaves the function undeployed: DeployedVersion 0). An empty Origin
// defaults to [OriginAPI]; nil Settings is stored as {}, nil AllowedHosts
// as []. Shape problems, a kind that is not one, a timeout out of range,
// a host that is not one, and code that does not compile or lacks the
// handlers its kind needs (at "code", with the compiler's message) are a
// [*ValidationError]; an id in use matches [ErrConflict].
func (r *Repo) CreateFunction(ctx context.Context, f Function, deploy bool) (Function, error) {
	c, errs := checkFunction(&f, "")
	if len(errs) > 0 {
		return Function{}, fmt.Errorf("creating function %q: %w", f.ID, &ValidationError{Errors: errs})
	}
	f.Origin = cmp.Or(f.Origin, OriginAPI)
	var out storedFunction
	err := r.write(ctx, func(tx *sql.Tx, now int64) (bool, error) {
		if err := r.insertFunction(ctx, tx, f, c, deploy, "", now); err != nil {
			return false, err
		}
		var err error
		out, err = r.getFunction(ctx, tx, f.ID)
		return true, err
	})
	if err != nil {
		return Function{}, fmt.Errorf("creating function %q: %w", f.ID, err)
	}
	return out.Function, nil
}

// UpdateFunction saves f's content (code, settings, allowed hosts,
// timeout) as a new version of function f.ID when it differs from the
// latest saved version, and replaces its name (which is not versioned).
// The new version runs only once deployed: deploy true deploys it (or the
// latest version, if the content did not change) in the same change;
// otherwise see [Repo.DeployFunction]. Its kind cannot change: an empty
// Kind keeps it, another is a [*ValidationError] at "kind". Origin and
// CreatedAt are kept, and so is the stored file hash, as with
// [Repo.UpdateSource]. It returns the function as stored (with its latest
// content), an error matching [ErrNotFound], or a [*ValidationError] as
// [Repo.CreateFunction] does. Updating with unchanged values changes
// nothing.
func (r *Repo) UpdateFunction(ctx context.Context, f Function, deploy bool) (Function, error) {
	cur, err := r.GetFunction(ctx, f.ID)
	if err != nil {
		return Function{}, fmt.Errorf("updating function %q: %w", f.ID, err)
	}
	f.Origin = ""
	if f.Kind == "" {
		f.Kind = cur.Kind
	}
	if f.Kind != cur.Kind {
		return Function{}, fmt.Errorf("updating function %q: %w", f.ID, &ValidationError{Errors: []*FieldError{
			{Path: "kind", Message: fmt.Sprintf("cannot be changed (function %q is %s function): create another function", f.ID, aKind(cur.Kind))}}})
	}
	c, errs := checkFunction(&f, "")
	if len(errs) > 0 {
		return Function{}, fmt.Errorf("updating function %q: %w", f.ID, &ValidationError{Errors: errs})
	}
	var out storedFunction
	err = r.write(ctx, func(tx *sql.Tx, now int64) (bool, error) {
		cur, err := r.getFunction(ctx, tx, f.ID)
		if err != nil {
			return false, err
		}
		if cur.Kind != f.Kind {
			return false, fmt.Errorf("its kind changed meanwhile: %w", ErrConflict)
		}
		changed, err := r.saveFunction(ctx, tx, cur, f, c, deploy, nil, now)
		if err != nil {
			return false, err
		}
		out, err = r.getFunction(ctx, tx, f.ID)
		return changed, err
	})
	if err != nil {
		return Function{}, fmt.Errorf("updating function %q: %w", f.ID, err)
	}
	return out.Function, nil
}

// DeployFunction makes version of function id the one that runs; version 0
// is the latest saved version. Deploying an older version is a rollback.
// It returns the function as stored, or an error matching [ErrNotFound]
// (for the function or the version). Deploying the deployed version
// changes nothing.
func (r *Repo) DeployFunction(ctx context.Context, id string, version int) (Function, error) {
	var out storedFunction
	err := r.write(ctx, func(tx *sql.Tx, now int64) (bool, error) {
		cur, err := r.getFunction(ctx, tx, id)
		if err != nil {
			return false, err
		}
		if version == 0 {
			version = cur.Version
		}
		if version < 0 || version > cur.Version {
			return false, fmt.Errorf("function %q has no version %d (its versions are 1 to %d): %w", id, version, cur.Version, ErrNotFound)
		}
		if version == cur.DeployedVersion {
			out = cur
			return false, nil
		}
		if _, err := tx.ExecContext(ctx, r.db.Rebind(`UPDATE functions SET deployed_version = ?, updated_at = ? WHERE id = ?`), version, now, id); err != nil {
			return false, fmt.Errorf("deploying version %d: %w", version, err)
		}
		out, err = r.getFunction(ctx, tx, id)
		return true, err
	})
	if err != nil {
		return Function{}, fmt.Errorf("deploying function %q: %w", id, err)
	}
	return out.Function, nil
}

// ListFunctionVersions returns every saved version of function id, newest
// first, without their code (see [Repo.GetFunctionVersion]), or an error
// matching [ErrNotFound].
func (r *Repo) ListFunctionVersions(ctx context.Context, id string) ([]FunctionVersion, error) {
	out, err := r.loadVersions(ctx, id, 0)
	if err != nil {
		return nil, fmt.Errorf("listing the versions of function %q: %w", id, err)
	}
	for i := range out {
		out[i].Code = ""
	}
	return out, nil
}

// GetFunctionVersion returns version of function id, with its code;
// version 0 is the latest. A function or version that does not exist is
// an error matching [ErrNotFound].
func (r *Repo) GetFunctionVersion(ctx context.Context, id string, version int) (FunctionVersion, error) {
	out, err := r.loadVersions(ctx, id, version)
	if err != nil {
		return FunctionVersion{}, fmt.Errorf("reading version %d of function %q: %w", version, id, err)
	}
	return out[0], nil
}

// FunctionSpec returns version of function id in the form
// [function.Compile] takes, for running a version that is not (or not
// yet) deployed, as a test endpoint does; version 0 is the latest saved
// version. A function or version that does not exist is an error matching
// [ErrNotFound].
func (r *Repo) FunctionSpec(ctx context.Context, id string, version int) (function.Spec, error) {
	var kind string
	err := r.db.SQL().QueryRowContext(ctx, r.db.Rebind(`SELECT kind FROM functions WHERE id = ?`), id).Scan(&kind)
	if errors.Is(err, sql.ErrNoRows) {
		return function.Spec{}, fmt.Errorf("function %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return function.Spec{}, fmt.Errorf("reading function %q: %w", id, err)
	}
	v, err := r.GetFunctionVersion(ctx, id, version)
	if err != nil {
		return function.Spec{}, err
	}
	f := Function{ID: id, Kind: function.Kind(kind), Version: v.Version, Code: v.Code,
		Settings: v.Settings, AllowedHosts: v.AllowedHosts, Timeout: v.Timeout}
	return f.Spec(), nil
}

// loadVersions reads the versions of function id, newest first: all of
// them, or only version one (0: the latest). No function, or no such
// version, is ErrNotFound.
func (r *Repo) loadVersions(ctx context.Context, id string, one int) ([]FunctionVersion, error) {
	q := r.db.SQL()
	var latest, deployed int
	err := q.QueryRowContext(ctx, r.db.Rebind(`SELECT version, deployed_version FROM functions WHERE id = ?`), id).Scan(&latest, &deployed)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("function %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	query := `SELECT version, code, settings, allowed_hosts, timeout_ms, created_at FROM function_versions WHERE function_id = ?`
	args := []any{id}
	if one != 0 {
		query += ` AND version = ?`
		args = append(args, one)
	} else {
		query += ` ORDER BY version DESC`
	}
	rows, err := q.QueryContext(ctx, r.db.Rebind(query), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []FunctionVersion
	for rows.Next() {
		var (
			v       FunctionVersion
			c       functionContent
			created int64
		)
		if err := rows.Scan(&v.Version, &c.code, &c.settings, &c.hosts, &c.timeoutMS, &created); err != nil {
			return nil, err
		}
		f := Function{ID: id}
		if err := decodeContent(&f, c); err != nil {
			return nil, err
		}
		v.Function, v.Code, v.Settings, v.AllowedHosts, v.Timeout = id, f.Code, f.Settings, f.AllowedHosts, f.Timeout
		v.Deployed = v.Version == deployed
		v.CreatedAt = fromMillis(created)
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("function %q has no version %d (its versions are 1 to %d): %w", id, one, latest, ErrNotFound)
	}
	return out, nil
}

// DeleteFunction deletes function id and all its versions. It returns an
// error matching [ErrNotFound], or [ErrConflict] naming the sources and
// destinations that use it (change them first).
func (r *Repo) DeleteFunction(ctx context.Context, id string) error {
	return r.deleteByID(ctx, "functions", "function", id, r.deleteFunction)
}

// deleteFunction deletes an existing function unless sources or
// destinations use it.
func (r *Repo) deleteFunction(ctx context.Context, tx *sql.Tx, id string) error {
	users, err := r.functionUsers(ctx, tx, id)
	if err != nil {
		return fmt.Errorf("finding the users of function %q: %w", id, err)
	}
	if len(users) > 0 {
		return fmt.Errorf("function %q is used by %s: %w", id, strings.Join(users, "; "), ErrConflict)
	}
	if _, err := tx.ExecContext(ctx, r.db.Rebind(`DELETE FROM function_versions WHERE function_id = ?`), id); err != nil {
		return fmt.Errorf("deleting the versions of function %q: %w", id, err)
	}
	if _, err := tx.ExecContext(ctx, r.db.Rebind(`DELETE FROM functions WHERE id = ?`), id); err != nil {
		return fmt.Errorf("deleting function %q: %w", id, err)
	}
	return nil
}

// functionUsers names the sources and destinations that use function id,
// as "sources "a", "b"" and "destinations "c"", for a conflict message.
func (r *Repo) functionUsers(ctx context.Context, q queryer, id string) ([]string, error) {
	sources, err := r.ids(ctx, q, `SELECT id FROM sources WHERE function_id = ? OR insert_function_id = ?`, id, id)
	if err != nil {
		return nil, err
	}
	dests, err := r.ids(ctx, q, `SELECT id FROM destinations WHERE insert_function_id = ?`, id)
	if err != nil {
		return nil, err
	}
	// A destination function is named in its destination's settings.
	rows, err := q.QueryContext(ctx, r.db.Rebind(`SELECT id, settings FROM destinations WHERE type = ?`), FunctionDestinationType)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var d Destination
		var settings string
		if err := rows.Scan(&d.ID, &settings); err != nil {
			return nil, err
		}
		d.Type = FunctionDestinationType
		if err := json.Unmarshal([]byte(settings), &d.Settings); err != nil {
			return nil, fmt.Errorf("decoding settings of destination %q: %w", d.ID, err)
		}
		if d.DestinationFunction() == id && !slices.Contains(dests, d.ID) {
			dests = append(dests, d.ID)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	slices.Sort(dests)
	var users []string
	if len(sources) > 0 {
		users = append(users, "sources "+quoteList(sources))
	}
	if len(dests) > 0 {
		users = append(users, "destinations "+quoteList(dests))
	}
	return users, nil
}

// missingFunctions reports each reference of refs to a function that is
// not stored, or is of another kind than the reference needs.
func (r *Repo) missingFunctions(ctx context.Context, q queryer, refs []functionRef) ([]*FieldError, error) {
	var errs []*FieldError
	for _, ref := range refs {
		var kind string
		err := q.QueryRowContext(ctx, r.db.Rebind(`SELECT kind FROM functions WHERE id = ?`), ref.id).Scan(&kind)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			errs = append(errs, &FieldError{Path: ref.path, Message: fmt.Sprintf("function %q does not exist", ref.id)})
		case err != nil:
			return nil, fmt.Errorf("looking up function %q: %w", ref.id, err)
		case function.Kind(kind) != ref.kind:
			errs = append(errs, &FieldError{Path: ref.path, Message: wrongKind(ref.id, function.Kind(kind), ref.kind)})
		}
	}
	return errs, nil
}
