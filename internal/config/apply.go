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

	"github.com/confluxcdp/conflux/internal/aggregate/identity"
	"github.com/confluxcdp/conflux/internal/process/transform"
)

// ApplyReport says what [Repo.ApplyFile] did, by object id.
type ApplyReport struct {
	Sources         ApplyChanges
	Destinations    ApplyChanges
	TrackingPlans   ApplyChanges
	Transformations ApplyChanges
	Alerts          ApplyChanges
	// Functions are the declared functions: a created one has its version
	// 1 deployed; an updated one, whose declaration changed, has the
	// file's content deployed (saved as a new version when it differs from
	// the latest).
	Functions ApplyChanges
	// Identity holds the one id "identity" when the file's identity block
	// was stored (Created, Updated), left alone (Unchanged) or, no longer
	// in the file, deleted (Deleted).
	Identity ApplyChanges
}

// Changed reports whether ApplyFile changed the workspace.
func (r ApplyReport) Changed() bool {
	return r.Sources.changed() || r.Destinations.changed() || r.TrackingPlans.changed() || r.Transformations.changed() ||
		r.Alerts.changed() || r.Identity.changed() || r.Functions.changed()
}

// ApplyChanges lists the ids of one kind of object by what ApplyFile did
// to them. Created, Updated, Unchanged and Moved follow the file's order;
// Deleted is ordered by id.
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
	// Moved (transformations only) are also in Unchanged: their
	// declaration is the same but their place in the file, which is the
	// order they apply in, changed, and was updated.
	Moved []string
}

func (c ApplyChanges) changed() bool {
	return len(c.Created)+len(c.Updated)+len(c.Deleted)+len(c.Moved) > 0
}

// sourceDecl is what the config file declares about a source: its
// canonical JSON is what file_hash covers. The fields added after the first
// release are left out when empty, so that the hash of a source declared
// without them is what it was, and upgrading does not count as a change.
type sourceDecl struct {
	ID           string        `json:"id"`
	Name         string        `json:"name"`
	WriteKey     string        `json:"write_key"`
	TrackingPlan string        `json:"tracking_plan,omitempty"`
	Schema       *SourceSchema `json:"schema,omitempty"`
	// Function and InsertFunction are the ids of its functions; their
	// content is each function's own declaration.
	Function       string `json:"function,omitempty"`
	InsertFunction string `json:"insert_function,omitempty"`
}

// destinationDecl is what the config file declares about a destination.
// Sources are sorted: their order means nothing. Filters and Delivery are
// left out when empty, as in sourceDecl.
type destinationDecl struct {
	ID       string             `json:"id"`
	Name     string             `json:"name"`
	Type     string             `json:"type"`
	Enabled  bool               `json:"enabled"`
	Sources  []string           `json:"sources"`
	Settings map[string]any     `json:"settings"`
	Filters  []transform.Filter `json:"filters,omitempty"`
	Delivery *DeliveryOptions   `json:"delivery,omitempty"`
	// InsertFunction is the id of its insert function.
	InsertFunction string `json:"insert_function,omitempty"`
}

// trackingPlanDecl is what the config file declares about a tracking plan.
type trackingPlanDecl struct {
	ID    string    `json:"id"`
	Name  string    `json:"name"`
	Rules PlanRules `json:"rules"`
}

// transformationDecl is what the config file declares about a
// transformation. Its place in the file is not part of it: moving a
// transformation reorders it without discarding API edits.
type transformationDecl struct {
	Transformation transform.Transformation `json:"transformation"`
	Source         string                   `json:"source"`
	Destination    string                   `json:"destination"`
}

// alertDecl is what the config file declares about an alert rule, with
// its defaults filled in.
type alertDecl struct {
	ID          string      `json:"id"`
	Name        string      `json:"name"`
	Destination string      `json:"destination"`
	Source      string      `json:"source"`
	Enabled     bool        `json:"enabled"`
	Kind        AlertKind   `json:"kind"`
	Threshold   float64     `json:"threshold"`
	Window      Duration    `json:"window"`
	MinEvents   int64       `json:"min_events"`
	Notify      AlertNotify `json:"notify"`
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
//     through the API since (a rotated key, a new name, edited rules)
//     stand;
//   - declaration changed: overwritten from the file. A source whose file
//     write_key is empty keeps its current key; one with a different key
//     gets it, and its old current key stops working at once. Unexpired
//     retired keys are kept.
//
// The identity settings follow the same rules as one object: the file's
// identity block is stored when it is new or changed since last applied
// (replacing settings set through the API), left alone while it is
// unchanged (so that [Repo.SetIdentitySettings] and
// [Repo.ResetIdentitySettings] stand), and the stored settings are deleted
// when the file no longer has the block and they came from the file.
//
// File transformations are placed in file order (ahead of those created
// through the API) even when their declaration is unchanged; see
// [ApplyChanges].Moved.
//
// A file function follows the same rules, its declaration being its name,
// kind and content: a new one is stored as version 1 and deployed; a
// changed one has the file's content deployed, saved as a new version if it
// differs from the latest (so that versions saved through the API are kept
// in the history); an unchanged one is left alone, whatever version the API
// has deployed since. Its kind cannot change (an [ErrConflict]).
//
// Objects with origin file that the file no longer declares are deleted,
// alerts and transformations first, tracking plans and then functions
// last. Objects with origin api are never touched: one that the file
// declares too is an [ErrConflict] error, as is an object the file drops
// while an object it does not control still uses it (a source used by an
// API destination, a tracking plan used by an API source, a destination
// watched by an API alert, a function used by an API source, …), and a
// write key held by another source
// (the error names both). Shape problems, duplicate ids or keys, and
// references to objects that neither the file nor the store's API objects
// hold are a [*ValidationError]. On any error nothing is changed.
func (r *Repo) ApplyFile(ctx context.Context, cfg *Config) (ApplyReport, error) {
	if cfg == nil {
		return ApplyReport{}, errors.New("applying config file: nil config")
	}
	f, err := checkFile(cfg)
	if err != nil {
		return ApplyReport{}, fmt.Errorf("applying config file: %w", err)
	}
	var rep ApplyReport
	err = r.write(ctx, func(tx *sql.Tx, now int64) (bool, error) {
		rep = ApplyReport{}
		a := &applier{r: r, tx: tx, now: now, f: f, rep: &rep}
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

// checkedFile is a config file validated on its own, normalized as stored,
// with the declaration hash of each object.
type checkedFile struct {
	sources         []Source
	destinations    []Destination
	plans           []TrackingPlan
	transformations []Transformation
	alerts          []Alert
	functions       []Function

	srcHashes, dstHashes, planHashes, trHashes, alertHashes []string
	// alertNotify are the alerts' encoded notify blocks.
	alertNotify []string
	// dstEnc are the destinations' encoded settings, filters and delivery
	// options; trDefs the transformations' encoded definitions.
	dstEnc []encodedDestination
	trDefs []string
	// identity is the file's identity block, nil for none, with its
	// declaration hash.
	identity     *identity.Settings
	identityHash string
	// fnHashes are the functions' declaration hashes, fnContent their
	// encoded content, fnPaths the paths that declared them.
	fnHashes  []string
	fnContent []functionContent
	fnPaths   []string
}

// checkFile validates cfg on its own and returns it normalized and hashed.
func checkFile(cfg *Config) (*checkedFile, error) {
	f := &checkedFile{
		sources:         slices.Clone(cfg.Sources),
		destinations:    slices.Clone(cfg.Destinations),
		plans:           slices.Clone(cfg.TrackingPlans),
		transformations: slices.Clone(cfg.Transformations),
		alerts:          slices.Clone(cfg.Alerts),
	}
	errs := f.checkFunctions(cfg)
	ids := make(map[string]int)
	keys := make(map[string]int)
	f.srcHashes = make([]string, len(f.sources))
	for i := range f.sources {
		s := &f.sources[i]
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
		decl := sourceDecl{ID: s.ID, Name: s.Name, WriteKey: s.WriteKey, TrackingPlan: s.TrackingPlan,
			Function: s.Function, InsertFunction: s.InsertFunction}
		if s.Schema != (SourceSchema{}) {
			decl.Schema = &s.Schema
		}
		// Cannot fail: strings only.
		f.srcHashes[i], _ = declHash(decl)
	}

	dstIDs := make(map[string]int)
	f.dstHashes = make([]string, len(f.destinations))
	f.dstEnc = make([]encodedDestination, len(f.destinations))
	for i := range f.destinations {
		d := &f.destinations[i]
		p := fmt.Sprintf("destinations[%d]", i)
		var derrs []*FieldError
		f.dstEnc[i], derrs = validateDestination(d, p)
		errs = append(errs, derrs...)
		if j, dup := dstIDs[d.ID]; dup {
			errs = append(errs, &FieldError{Path: p + ".id", Message: fmt.Sprintf("duplicate destination id %q (also destinations[%d])", d.ID, j)})
		}
		dstIDs[d.ID] = i
		decl := destinationDecl{ID: d.ID, Name: d.Name, Type: d.Type, Enabled: d.Enabled,
			Sources: sortedCopy(d.Sources), Settings: d.Settings, Filters: d.Filters, InsertFunction: d.InsertFunction}
		if decl.Settings == nil {
			decl.Settings = map[string]any{}
		}
		if d.Delivery != (DeliveryOptions{}) {
			decl.Delivery = &d.Delivery
		}
		h, err := declHash(decl)
		if err != nil {
			// Reported above by validateDestination.
			continue
		}
		f.dstHashes[i] = h
	}

	planIDs := make(map[string]int)
	f.planHashes = make([]string, len(f.plans))
	for i := range f.plans {
		pl := &f.plans[i]
		p := fmt.Sprintf("tracking_plans[%d]", i)
		var rerrs []*FieldError
		pl.Rules, rerrs = CanonicalRules(p, pl.Rules)
		pl.Name = cmp.Or(pl.Name, pl.ID)
		if len(rerrs) > 0 {
			errs = append(errs, rerrs...)
		} else {
			errs = append(errs, pl.Validate(p)...)
		}
		if j, dup := planIDs[pl.ID]; dup {
			errs = append(errs, &FieldError{Path: p + ".id", Message: fmt.Sprintf("duplicate tracking plan id %q (also tracking_plans[%d])", pl.ID, j)})
		}
		planIDs[pl.ID] = i
		h, err := declHash(trackingPlanDecl{ID: pl.ID, Name: pl.Name, Rules: pl.Rules})
		if err != nil {
			continue // reported by CanonicalRules
		}
		f.planHashes[i] = h
	}

	trIDs := make(map[string]int)
	f.trHashes = make([]string, len(f.transformations))
	f.trDefs = make([]string, len(f.transformations))
	for i := range f.transformations {
		t := &f.transformations[i]
		p := fmt.Sprintf("transformations[%d]", i)
		normalizeTransformation(t)
		errs = append(errs, t.Validate(p)...)
		if j, dup := trIDs[t.ID]; dup {
			errs = append(errs, &FieldError{Path: p + ".id", Message: fmt.Sprintf("duplicate transformation id %q (also transformations[%d])", t.ID, j)})
		}
		trIDs[t.ID] = i
		def, err := definitionJSON(t.Transformation)
		if err != nil {
			errs = append(errs, &FieldError{Path: p, Message: "cannot be encoded as JSON: " + err.Error()})
			continue
		}
		f.trDefs[i] = def
		f.trHashes[i], _ = declHash(transformationDecl{Transformation: t.Transformation, Source: t.Source, Destination: t.Destination})
	}

	alertIDs := make(map[string]int)
	f.alertHashes = make([]string, len(f.alerts))
	f.alertNotify = make([]string, len(f.alerts))
	for i := range f.alerts {
		a := &f.alerts[i]
		p := fmt.Sprintf("alerts[%d]", i)
		var aerrs []*FieldError
		f.alertNotify[i], aerrs = checkAlert(a, p)
		errs = append(errs, aerrs...)
		if j, dup := alertIDs[a.ID]; dup {
			errs = append(errs, &FieldError{Path: p + ".id", Message: fmt.Sprintf("duplicate alert id %q (also alerts[%d])", a.ID, j)})
		}
		alertIDs[a.ID] = i
		h, err := declHash(alertDecl{ID: a.ID, Name: a.Name, Destination: a.Destination, Source: a.Source, Enabled: a.Enabled,
			Kind: a.Kind, Threshold: a.Threshold, Window: a.Window, MinEvents: a.MinEvents, Notify: a.Notify})
		if err != nil {
			continue // a NaN threshold, reported by checkAlert
		}
		f.alertHashes[i] = h
	}
	if cfg.Identity != nil {
		f.identity = cfg.Identity
		errs = append(errs, identityProblems(*cfg.Identity, "identity")...)
		// Cannot fail: a string.
		f.identityHash, _ = declHash(json.RawMessage(identityJSON(*cfg.Identity)))
	}
	if len(errs) > 0 {
		return nil, &ValidationError{Errors: errs}
	}
	return f, nil
}

// applier is the state of one ApplyFile transaction.
type applier struct {
	r   *Repo
	tx  *sql.Tx
	now int64
	f   *checkedFile
	rep *ApplyReport

	sources         map[string]storedSource
	destinations    map[string]storedDestination
	plans           map[string]storedPlan
	transformations map[string]storedTransformation
	alerts          map[string]storedAlert
	functions       map[string]storedFunction
}

// removed returns the ids of the stored objects with origin file that the
// file does not declare, sorted.
func removed[T any](stored map[string]T, origin func(T) string, declared map[string]bool) []string {
	var ids []string
	for _, id := range slices.Sorted(maps.Keys(stored)) {
		if origin(stored[id]) == OriginFile && !declared[id] {
			ids = append(ids, id)
		}
	}
	return ids
}

// idSet returns the ids of objects as a set.
func idSet[T any](objs []T, id func(T) string) map[string]bool {
	set := make(map[string]bool, len(objs))
	for _, o := range objs {
		set[id(o)] = true
	}
	return set
}

func (a *applier) run(ctx context.Context) error {
	if err := a.load(ctx); err != nil {
		return err
	}
	if err := a.check(); err != nil {
		return err
	}
	f := a.f
	removedSources := removed(a.sources, func(s storedSource) string { return s.Origin },
		idSet(f.sources, func(s Source) string { return s.ID }))
	removedDests := removed(a.destinations, func(d storedDestination) string { return d.Origin },
		idSet(f.destinations, func(d Destination) string { return d.ID }))
	removedPlans := removed(a.plans, func(p storedPlan) string { return p.Origin },
		idSet(f.plans, func(p TrackingPlan) string { return p.ID }))
	removedTransformations := removed(a.transformations, func(t storedTransformation) string { return t.Origin },
		idSet(f.transformations, func(t Transformation) string { return t.ID }))
	removedAlerts := removed(a.alerts, func(al storedAlert) string { return al.Origin },
		idSet(f.alerts, func(al Alert) string { return al.ID }))
	removedFunctions := removed(a.functions, func(fn storedFunction) string { return fn.Origin },
		idSet(f.functions, func(fn Function) string { return fn.ID }))

	// Alerts go first too: they refer to sources and destinations.
	for _, id := range removedAlerts {
		if _, err := a.tx.ExecContext(ctx, a.r.db.Rebind(`DELETE FROM alerts WHERE id = ?`), id); err != nil {
			return fmt.Errorf("deleting alert %q: %w", id, err)
		}
		a.rep.Alerts.Deleted = append(a.rep.Alerts.Deleted, id)
	}

	// Transformations go first: they refer to sources and destinations.
	for _, id := range removedTransformations {
		if _, err := a.tx.ExecContext(ctx, a.r.db.Rebind(`DELETE FROM transformations WHERE id = ?`), id); err != nil {
			return fmt.Errorf("deleting transformation %q: %w", id, err)
		}
		a.rep.Transformations.Deleted = append(a.rep.Transformations.Deleted, id)
	}

	// Free the keys that go away before any key is assigned, so that a
	// source renamed in the file can keep its key, and two can swap.
	for _, id := range removedSources {
		if _, err := a.tx.ExecContext(ctx, a.r.db.Rebind(`DELETE FROM source_write_keys WHERE source_id = ?`), id); err != nil {
			return fmt.Errorf("dropping the write keys of source %q: %w", id, err)
		}
	}
	for i, s := range f.sources {
		cur, ok := a.sources[s.ID]
		if ok && cur.fileHash != f.srcHashes[i] && s.WriteKey != "" && s.WriteKey != cur.WriteKey {
			if _, err := a.tx.ExecContext(ctx, a.r.db.Rebind(`DELETE FROM source_write_keys WHERE source_id = ? AND expires_at IS NULL`), s.ID); err != nil {
				return fmt.Errorf("dropping the write key of source %q: %w", s.ID, err)
			}
		}
	}

	// Functions and plans before the sources and destinations that use
	// them.
	for i := range f.functions {
		if err := a.applyFunction(ctx, i); err != nil {
			return err
		}
	}
	for i := range f.plans {
		if err := a.applyPlan(ctx, i); err != nil {
			return err
		}
	}
	var written []Source // created or updated, whose forwards are set below
	for i := range f.sources {
		w, err := a.applySource(ctx, i)
		if err != nil {
			return err
		}
		if w {
			written = append(written, f.sources[i])
		}
	}
	// Forwards once every source of the file exists.
	for _, s := range written {
		if err := a.r.setForwards(ctx, a.tx, s); err != nil {
			return err
		}
	}
	for i := range f.destinations {
		if err := a.applyDestination(ctx, i); err != nil {
			return err
		}
	}
	for i := range f.transformations {
		if err := a.applyTransformation(ctx, i); err != nil {
			return err
		}
	}
	for i := range f.alerts {
		if err := a.applyAlert(ctx, i); err != nil {
			return err
		}
	}
	if err := a.applyIdentity(ctx); err != nil {
		return err
	}

	for _, id := range removedDests {
		if err := a.r.deleteDestination(ctx, a.tx, id); err != nil {
			return fmt.Errorf("removing destination %q, no longer in the file: %w", id, err)
		}
		a.rep.Destinations.Deleted = append(a.rep.Destinations.Deleted, id)
	}
	// Sources that go away together may forward to each other.
	for _, id := range removedSources {
		if err := a.r.setForwards(ctx, a.tx, Source{ID: id}); err != nil {
			return err
		}
	}
	for _, id := range removedSources {
		if err := a.r.deleteSource(ctx, a.tx, id); err != nil {
			return fmt.Errorf("removing source %q, no longer in the file: %w", id, err)
		}
		a.rep.Sources.Deleted = append(a.rep.Sources.Deleted, id)
	}
	for _, id := range removedPlans {
		if err := a.r.deleteTrackingPlan(ctx, a.tx, id); err != nil {
			return fmt.Errorf("removing tracking plan %q, no longer in the file: %w", id, err)
		}
		a.rep.TrackingPlans.Deleted = append(a.rep.TrackingPlans.Deleted, id)
	}
	// Functions last: sources and destinations refer to them.
	for _, id := range removedFunctions {
		if err := a.r.deleteFunction(ctx, a.tx, id); err != nil {
			return fmt.Errorf("removing function %q, no longer in the file: %w", id, err)
		}
		a.rep.Functions.Deleted = append(a.rep.Functions.Deleted, id)
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
	plans, err := a.r.loadPlans(ctx, a.tx, "")
	if err != nil {
		return fmt.Errorf("reading tracking plans: %w", err)
	}
	a.plans = make(map[string]storedPlan, len(plans))
	for _, p := range plans {
		a.plans[p.ID] = p
	}
	trs, err := a.r.loadTransformations(ctx, a.tx, "")
	if err != nil {
		return fmt.Errorf("reading transformations: %w", err)
	}
	a.transformations = make(map[string]storedTransformation, len(trs))
	for _, t := range trs {
		a.transformations[t.ID] = t
	}
	alerts, err := a.r.loadAlerts(ctx, a.tx, "")
	if err != nil {
		return fmt.Errorf("reading alerts: %w", err)
	}
	a.alerts = make(map[string]storedAlert, len(alerts))
	for _, al := range alerts {
		a.alerts[al.ID] = al
	}
	fns, err := a.r.loadFunctions(ctx, a.tx, "", false)
	if err != nil {
		return fmt.Errorf("reading functions: %w", err)
	}
	a.functions = make(map[string]storedFunction, len(fns))
	for _, fn := range fns {
		a.functions[fn.ID] = fn
	}
	return nil
}

// check rejects file objects that collide with API objects, and references
// to objects that will not exist once the file is applied.
func (a *applier) check() error {
	f := a.f
	for i, s := range f.sources {
		if cur, ok := a.sources[s.ID]; ok && cur.Origin != OriginFile {
			return fmt.Errorf("sources[%d]: source %q was created through the API; delete it there or rename it in the file: %w", i, s.ID, ErrConflict)
		}
	}
	for i, d := range f.destinations {
		if cur, ok := a.destinations[d.ID]; ok && cur.Origin != OriginFile {
			return fmt.Errorf("destinations[%d]: destination %q was created through the API; delete it there or rename it in the file: %w", i, d.ID, ErrConflict)
		}
	}
	for i, p := range f.plans {
		if cur, ok := a.plans[p.ID]; ok && cur.Origin != OriginFile {
			return fmt.Errorf("tracking_plans[%d]: tracking plan %q was created through the API; delete it there or rename it in the file: %w", i, p.ID, ErrConflict)
		}
	}
	for i, t := range f.transformations {
		if cur, ok := a.transformations[t.ID]; ok && cur.Origin != OriginFile {
			return fmt.Errorf("transformations[%d]: transformation %q was created through the API; delete it there or rename it in the file: %w", i, t.ID, ErrConflict)
		}
	}
	for i, al := range f.alerts {
		if cur, ok := a.alerts[al.ID]; ok && cur.Origin != OriginFile {
			return fmt.Errorf("alerts[%d]: alert %q was created through the API; delete it there or rename it in the file: %w", i, al.ID, ErrConflict)
		}
	}
	if err := a.checkFunctions(); err != nil {
		return err
	}

	// A reference is good if the file declares the object, or the store
	// holds it with origin api (file objects not in the file go away).
	fileSources := idSet(f.sources, func(s Source) string { return s.ID })
	fileDests := idSet(f.destinations, func(d Destination) string { return d.ID })
	filePlans := idSet(f.plans, func(p TrackingPlan) string { return p.ID })
	hasSource := func(id string) bool {
		cur, ok := a.sources[id]
		return fileSources[id] || ok && cur.Origin != OriginFile
	}
	var errs []*FieldError
	missing := func(path, what, id string) {
		errs = append(errs, &FieldError{Path: path, Message: fmt.Sprintf("%s %q is not declared in the file nor created through the API", what, id)})
	}
	for i, d := range f.destinations {
		for j, src := range d.Sources {
			if !hasSource(src) {
				missing(fmt.Sprintf("destinations[%d].sources[%d]", i, j), "source", src)
			}
		}
	}
	for i, s := range f.sources {
		if id := s.TrackingPlan; id != "" {
			if cur, ok := a.plans[id]; !filePlans[id] && (!ok || cur.Origin == OriginFile) {
				missing(fmt.Sprintf("sources[%d].tracking_plan", i), "tracking plan", id)
			}
		}
		for _, fw := range []struct{ key, id string }{
			{"forward_violations_to", s.Schema.ForwardViolationsTo},
			{"forward_blocked_to", s.Schema.ForwardBlockedTo},
		} {
			if fw.id != "" && !hasSource(fw.id) {
				missing(fmt.Sprintf("sources[%d].schema.%s", i, fw.key), "source", fw.id)
			}
		}
	}
	hasDest := func(id string) bool {
		cur, ok := a.destinations[id]
		return fileDests[id] || ok && cur.Origin != OriginFile
	}
	for i, t := range f.transformations {
		if !hasSource(t.Source) {
			missing(fmt.Sprintf("transformations[%d].source", i), "source", t.Source)
		}
		if id := t.Destination; id != "" && !hasDest(id) {
			missing(fmt.Sprintf("transformations[%d].destination", i), "destination", id)
		}
	}
	for i, al := range f.alerts {
		if id := al.Source; id != "" && !hasSource(id) {
			missing(fmt.Sprintf("alerts[%d].source", i), "source", id)
		}
		if id := al.Destination; id != "" && !hasDest(id) {
			missing(fmt.Sprintf("alerts[%d].destination", i), "destination", id)
		}
	}
	errs = append(errs, a.missingFunctions()...)
	if len(errs) > 0 {
		return &ValidationError{Errors: errs}
	}
	return nil
}

func (a *applier) applyPlan(ctx context.Context, i int) error {
	p, hash := a.f.plans[i], a.f.planHashes[i]
	cur, ok := a.plans[p.ID]
	switch {
	case !ok:
		p.Origin = OriginFile
		if err := a.r.insertPlan(ctx, a.tx, p, hash, a.now); err != nil {
			return err
		}
		a.rep.TrackingPlans.Created = append(a.rep.TrackingPlans.Created, p.ID)
	case cur.fileHash == hash:
		a.rep.TrackingPlans.Unchanged = append(a.rep.TrackingPlans.Unchanged, p.ID)
	default:
		if err := a.r.updatePlan(ctx, a.tx, p, &hash, a.now); err != nil {
			return err
		}
		a.rep.TrackingPlans.Updated = append(a.rep.TrackingPlans.Updated, p.ID)
	}
	return nil
}

// applySource creates or updates source i of the file, all but its
// forwards, and reports whether it did.
func (a *applier) applySource(ctx context.Context, i int) (bool, error) {
	s, hash := a.f.sources[i], a.f.srcHashes[i]
	cur, ok := a.sources[s.ID]
	switch {
	case !ok:
		s.Origin = OriginFile
		if s.WriteKey == "" {
			s.WriteKey = NewWriteKey()
		}
		if err := a.checkKey(ctx, i, s.ID, s.WriteKey); err != nil {
			return false, err
		}
		if err := a.r.insertSource(ctx, a.tx, s, hash, a.now); err != nil {
			return false, err
		}
		a.rep.Sources.Created = append(a.rep.Sources.Created, s.ID)
		return true, nil
	case cur.fileHash == hash:
		a.rep.Sources.Unchanged = append(a.rep.Sources.Unchanged, s.ID)
		return false, nil
	}
	if _, err := a.tx.ExecContext(ctx, a.r.db.Rebind(`UPDATE sources SET name = ?, file_hash = ?, updated_at = ? WHERE id = ?`),
		s.Name, hash, a.now, s.ID); err != nil {
		return false, fmt.Errorf("updating source %q: %w", s.ID, err)
	}
	if err := a.r.setRules(ctx, a.tx, s); err != nil {
		return false, err
	}
	if s.WriteKey != "" && s.WriteKey != cur.WriteKey {
		// run already dropped the old current key.
		if err := a.checkKey(ctx, i, s.ID, s.WriteKey); err != nil {
			return false, err
		}
		if err := a.r.insertCurrentKey(ctx, a.tx, s.ID, s.WriteKey, a.now); err != nil {
			return false, err
		}
	}
	a.rep.Sources.Updated = append(a.rep.Sources.Updated, s.ID)
	return true, nil
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
	d, hash, enc := a.f.destinations[i], a.f.dstHashes[i], a.f.dstEnc[i]
	cur, ok := a.destinations[d.ID]
	switch {
	case !ok:
		d.Origin = OriginFile
		if err := a.r.insertDestination(ctx, a.tx, d, enc, hash, a.now); err != nil {
			return err
		}
		a.rep.Destinations.Created = append(a.rep.Destinations.Created, d.ID)
	case cur.fileHash == hash:
		a.rep.Destinations.Unchanged = append(a.rep.Destinations.Unchanged, d.ID)
	default:
		if err := a.r.updateDestination(ctx, a.tx, d, enc, &hash, a.now); err != nil {
			return err
		}
		a.rep.Destinations.Updated = append(a.rep.Destinations.Updated, d.ID)
	}
	return nil
}

// applyTransformation creates or updates transformation i of the file and
// gives it position i.
func (a *applier) applyTransformation(ctx context.Context, i int) error {
	t, hash, def := a.f.transformations[i], a.f.trHashes[i], a.f.trDefs[i]
	pos := int64(i)
	cur, ok := a.transformations[t.ID]
	switch {
	case !ok:
		t.Origin = OriginFile
		if err := a.r.insertTransformation(ctx, a.tx, t, def, pos, hash, a.now); err != nil {
			return err
		}
		a.rep.Transformations.Created = append(a.rep.Transformations.Created, t.ID)
	case cur.fileHash == hash:
		a.rep.Transformations.Unchanged = append(a.rep.Transformations.Unchanged, t.ID)
		if cur.position != pos {
			if _, err := a.tx.ExecContext(ctx, a.r.db.Rebind(`UPDATE transformations SET position = ? WHERE id = ?`), pos, t.ID); err != nil {
				return fmt.Errorf("moving transformation %q: %w", t.ID, err)
			}
			a.rep.Transformations.Moved = append(a.rep.Transformations.Moved, t.ID)
		}
	default:
		if err := a.r.updateTransformation(ctx, a.tx, t, def, &hash, a.now); err != nil {
			return err
		}
		if _, err := a.tx.ExecContext(ctx, a.r.db.Rebind(`UPDATE transformations SET position = ? WHERE id = ?`), pos, t.ID); err != nil {
			return fmt.Errorf("moving transformation %q: %w", t.ID, err)
		}
		a.rep.Transformations.Updated = append(a.rep.Transformations.Updated, t.ID)
	}
	return nil
}

// applyAlert creates or updates alert rule i of the file.
func (a *applier) applyAlert(ctx context.Context, i int) error {
	al, hash, notify := a.f.alerts[i], a.f.alertHashes[i], a.f.alertNotify[i]
	cur, ok := a.alerts[al.ID]
	switch {
	case !ok:
		al.Origin = OriginFile
		if err := a.r.insertAlert(ctx, a.tx, al, notify, hash, a.now); err != nil {
			return err
		}
		a.rep.Alerts.Created = append(a.rep.Alerts.Created, al.ID)
	case cur.fileHash == hash:
		a.rep.Alerts.Unchanged = append(a.rep.Alerts.Unchanged, al.ID)
	default:
		if err := a.r.updateAlert(ctx, a.tx, al, notify, &hash, a.now); err != nil {
			return err
		}
		a.rep.Alerts.Updated = append(a.rep.Alerts.Updated, al.ID)
	}
	return nil
}
