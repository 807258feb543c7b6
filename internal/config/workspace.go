package config

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/confluxcdp/conflux/internal/aggregate/identity"
	"github.com/confluxcdp/conflux/internal/function"
	"github.com/confluxcdp/conflux/internal/process/plan"
	"github.com/confluxcdp/conflux/internal/process/transform"
)

// Workspace is an immutable snapshot of the live workspace: what the state
// store holds (file declarations plus API changes) and the process-wide
// settings. Readers get it from [Manager.Current] on every request and
// never see it change under them; a change makes a new snapshot.
//
// Its tracking plans, transformations and filters are compiled once, when
// the snapshot is built, and served by [Workspace.SourceRules] and
// [Workspace.DestinationRules]; so are the deployed versions of its
// functions ([Workspace.Function], [Workspace.SourceFunction],
// [Workspace.DestinationInsertFunction]). Nothing in a snapshot may be
// modified.
type Workspace struct {
	// Version is the store's config_version this snapshot was built from.
	Version        int64
	AdminToken     Secret
	PublicURL      string
	TrustedProxies []netip.Prefix
	// DedupWindow is how long a messageId is remembered; never zero.
	DedupWindow  time.Duration
	Sources      []Source
	Destinations []Destination
	// TrackingPlans are ordered by id; Transformations in the order they
	// apply (see [Transformation]).
	TrackingPlans   []TrackingPlan
	Transformations []Transformation
	// Alerts are the alert rules, ordered by id; the evaluator reads them
	// on every evaluation.
	Alerts []Alert
	// Functions are the functions that have a deployed version, ordered
	// by id, each with that version's content.
	Functions []Function
	// Identity are the identity resolution rules the resolver applies,
	// compiled once per snapshot. Never nil: the stored settings, or
	// [identity.DefaultRules] when there are none or they do not compile
	// (see [Workspace.Problems]).
	Identity *identity.Rules
	// IdentitySettings are the stored identity settings Identity was
	// compiled from; the zero value is every default.
	IdentitySettings identity.Settings
	// Profiles is the Profile API's space, with the defaults filled in.
	Profiles Profiles

	byID  map[string]int
	byKey map[string]keyEntry

	sourceRules map[string]*SourceRules
	// destRules holds each destination's filters without transformations;
	// scopedRules each destination and source pair that has
	// destination-scoped transformations.
	destRules   map[string]*DestinationRules
	scopedRules map[scope]*DestinationRules
	// programs are the compiled deployed functions, by id; sourceFns and
	// destInserts the programs of each source's source function and each
	// destination's insert function.
	programs    map[string]*function.Program
	sourceFns   map[string]*function.Program
	destInserts map[string]*function.Program
	problems    []error
}

type keyEntry struct {
	index   int
	expires time.Time // zero: the source's current key
}

// scope is a destination and a source whose events go to it.
type scope struct{ destination, source string }

// SourceRules are what the processing stage applies to a source's events:
// its tracking plan with the source's enforcement, then its source-scoped
// transformations. They are shared and read-only.
type SourceRules struct {
	// Plan is the compiled tracking plan; nil when the source has none (or
	// its plan did not compile: see [Workspace.Problems]).
	Plan *plan.Compiled
	// Enforcement is the source's Schema Configuration.
	Enforcement plan.Enforcement
	// ForwardViolationsTo is the source that "Violation Generated" events
	// go to; "": violations are not forwarded.
	ForwardViolationsTo string
	// ForwardBlockedTo is the source that blocked events go to, unchanged;
	// "": blocked events are discarded.
	ForwardBlockedTo string
	// Transformations are the source-scoped transformations that are
	// enabled, in the order they apply; empty when there are none.
	Transformations transform.Chain
	// InsertFunction is the source's insert function, compiled, which runs
	// after the plan and the transformations; nil when the source has none
	// (or it is not deployed, or does not compile: see
	// [Workspace.Problems]).
	InsertFunction *function.Program
	// Reads are the top-level fields of an event the plan and the
	// transformations read or change, so that the stage may leave the
	// others undecoded; nil: any field (decode everything), as when the
	// source has an insert function, which reads the whole event.
	Reads []string
	// Writes are the top-level fields the transformations may change
	// (Transformations.Roots), so that the stage re-encodes only those.
	Writes []string
}

// DestinationRules are what the delivery stage applies to the events of
// one source on their way to one destination. They are shared and
// read-only.
type DestinationRules struct {
	// Transformations are the enabled transformations scoped to this
	// destination for events of this source, in the order they apply;
	// empty when there are none. They run after the source-scoped ones
	// (in the processing stage) and before Filters.
	Transformations transform.Chain
	// Filters are the destination's filters. Never nil: a destination
	// without filters has an empty set, which keeps every event. When the
	// stored filters do not compile, every event is dropped, as filtered
	// by the one filter [InvalidFiltersID] (fail closed, spec §8.5).
	Filters *transform.Filters
}

// InvalidFiltersID is the filter id in the [transform.Outcome] of an event
// dropped because its destination's stored filters do not compile.
const InvalidFiltersID = "conflux-invalid-filters"

// Settings are the process-wide parts of a workspace, from the config file
// and start-up, that the API does not change.
type Settings struct {
	AdminToken     Secret
	PublicURL      string
	TrustedProxies []netip.Prefix
	// DedupWindow is the config file's dedup_window; zero means
	// [DefaultDedupWindow].
	DedupWindow time.Duration
	// Profiles is the config file's profiles block; its zero fields take
	// the defaults.
	Profiles Profiles
}

// Contents are the stored objects a [Workspace] snapshot is built from.
type Contents struct {
	Sources         []Source
	Destinations    []Destination
	TrackingPlans   []TrackingPlan
	Transformations []Transformation
	Alerts          []Alert
	// Functions are the functions to run, each with its deployed
	// version's content (as [Repo.ListDeployedFunctions] returns them);
	// a function without a deployed version is left out.
	Functions []Function
	// Identity are the stored identity settings; the zero value is every
	// default.
	Identity identity.Settings

	// previous is the snapshot before, whose compiled functions are kept
	// when their deployed content is unchanged; nil compiles them all.
	previous *Workspace
}

// NewWorkspace indexes sources and destinations into a snapshot without
// tracking plans or transformations; see [BuildWorkspace].
func NewWorkspace(version int64, s Settings, sources []Source, dests []Destination) *Workspace {
	return BuildWorkspace(version, s, Contents{Sources: sources, Destinations: dests})
}

// emptyFilters keeps every event; it is shared by every destination
// without filters, and by unknown ones.
var emptyFilters = mustCompileFilters(nil)

// dropAll drops every event: what a destination gets whose stored filters
// do not compile.
var dropAll = mustCompileFilters([]transform.Filter{{
	ID: InvalidFiltersID, If: "all", Title: "the destination's filters do not compile",
	Actions: []transform.Action{{Type: transform.DropEvent}},
}})

func mustCompileFilters(fs []transform.Filter) *transform.Filters {
	c, err := transform.CompileFilters(fs)
	if err != nil {
		panic(err)
	}
	return c
}

// sourceReads is the union of what a source's plan and transformations
// read; nil (everything) when the plan may read anything, when violations
// are forwarded (a Violation Generated event copies fields of the whole
// event), or when the source has an insert function (which gets the whole
// event).
func sourceReads(r *SourceRules) []string {
	if r.InsertFunction != nil {
		return nil
	}
	var out []string
	if r.Plan != nil {
		if r.ForwardViolationsTo != "" {
			return nil
		}
		if out = r.Plan.Reads(); out == nil {
			return nil
		}
	}
	for _, f := range r.Transformations.Reads() {
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

// zeroSourceRules and zeroDestinationRules are the rules of objects the
// snapshot does not know.
var (
	zeroSourceRules      = &SourceRules{}
	zeroDestinationRules = &DestinationRules{Filters: emptyFilters}
)

// BuildWorkspace indexes c into a snapshot and compiles its rules once.
// Everything it compiles was validated when it was stored, so normally
// nothing fails; but a rule stored by an older version that this one
// rejects must not stop the workspace from loading. So, each recorded in
// [Workspace.Problems]:
//   - a tracking plan that does not compile is skipped: the sources using
//     it keep their enforcement and forwards but check no plan (their
//     events are neither checked nor blocked);
//   - a transformation that does not compile is skipped, and the others
//     of its scope still apply, as [transform.Chain] does at run time;
//   - a destination whose filters do not compile drops every event (fail
//     closed, as FQL that cannot be evaluated does): see
//     [InvalidFiltersID];
//   - identity settings that do not compile are replaced by the defaults;
//   - a function that does not compile is treated as absent, and so is one
//     referenced by a source or destination but not deployed, or of
//     another kind than the reference needs: a source function that is
//     absent answers as no source function, an insert function that is
//     absent is not run.
func BuildWorkspace(version int64, s Settings, c Contents) *Workspace {
	w := &Workspace{
		Version:          version,
		AdminToken:       s.AdminToken,
		PublicURL:        s.PublicURL,
		TrustedProxies:   s.TrustedProxies,
		DedupWindow:      cmp.Or(s.DedupWindow, DefaultDedupWindow),
		Sources:          c.Sources,
		Destinations:     c.Destinations,
		TrackingPlans:    c.TrackingPlans,
		Transformations:  c.Transformations,
		Alerts:           c.Alerts,
		Functions:        c.Functions,
		IdentitySettings: c.Identity,
		Profiles:         s.Profiles.WithDefaults(),
		byID:             make(map[string]int, len(c.Sources)),
		byKey:            make(map[string]keyEntry, len(c.Sources)),
		sourceRules:      make(map[string]*SourceRules, len(c.Sources)),
		destRules:        make(map[string]*DestinationRules, len(c.Destinations)),
		scopedRules:      make(map[scope]*DestinationRules),
	}
	w.compileFunctions(c)
	for i, src := range c.Sources {
		w.byID[src.ID] = i
		w.byKey[src.WriteKey] = keyEntry{index: i}
		for _, rk := range src.RetiredKeys {
			w.byKey[rk.WriteKey] = keyEntry{index: i, expires: rk.ExpiresAt}
		}
	}

	var err error
	if w.Identity, err = c.Identity.Compile(); err != nil {
		w.problems = append(w.problems, fmt.Errorf("the identity settings do not compile; the default rules apply: %w", err))
		w.Identity = identity.DefaultRules()
	}

	plans := make(map[string]*plan.Compiled, len(c.TrackingPlans))
	for i := range c.TrackingPlans {
		p := &c.TrackingPlans[i]
		compiled, err := plan.Compile(p.Plan())
		if err != nil {
			w.problems = append(w.problems, fmt.Errorf("tracking plan %q does not compile; the sources using it check no plan: %w", p.ID, err))
		}
		plans[p.ID] = compiled // nil when it does not compile
	}
	for _, src := range c.Sources {
		r := &SourceRules{
			Enforcement:         src.Schema.Enforcement,
			ForwardViolationsTo: src.Schema.ForwardViolationsTo,
			ForwardBlockedTo:    src.Schema.ForwardBlockedTo,
		}
		if src.TrackingPlan != "" {
			compiled, ok := plans[src.TrackingPlan]
			if !ok {
				w.problems = append(w.problems, fmt.Errorf("source %q uses tracking plan %q, which does not exist; it checks no plan", src.ID, src.TrackingPlan))
			}
			r.Plan = compiled
		}
		if src.Function != "" {
			if p := w.uses("source", src.ID, src.Function, function.KindSource); p != nil {
				w.sourceFns[src.ID] = p
			}
		}
		if src.InsertFunction != "" {
			r.InsertFunction = w.uses("source", src.ID, src.InsertFunction, function.KindInsert)
		}
		w.sourceRules[src.ID] = r
	}

	for _, d := range c.Destinations {
		r := &DestinationRules{Filters: emptyFilters}
		if len(d.Filters) > 0 {
			fs, err := transform.CompileFilters(d.Filters)
			if err != nil {
				w.problems = append(w.problems, fmt.Errorf("the filters of destination %q do not compile; every event to it is dropped: %w", d.ID, err))
				fs = dropAll
			}
			r.Filters = fs
		}
		w.destRules[d.ID] = r
		if d.InsertFunction != "" {
			if p := w.uses("destination", d.ID, d.InsertFunction, function.KindInsert); p != nil {
				w.destInserts[d.ID] = p
			}
		}
		if id := d.DestinationFunction(); id != "" {
			w.uses("destination", d.ID, id, function.KindDestination)
		}
	}

	defer func() {
		for _, r := range w.sourceRules {
			r.Reads = sourceReads(r)
			r.Writes = r.Transformations.Roots()
		}
	}()
	for _, t := range c.Transformations {
		if t.Enabled != nil && !*t.Enabled {
			continue
		}
		compiled, err := transform.Compile(t.Transformation)
		if err != nil {
			w.problems = append(w.problems, fmt.Errorf("transformation %q does not compile and is skipped: %w", t.ID, err))
			continue
		}
		if t.Destination == "" {
			r, ok := w.sourceRules[t.Source]
			if !ok {
				continue // the store keeps this from happening
			}
			r.Transformations = append(r.Transformations, compiled)
			continue
		}
		k := scope{destination: t.Destination, source: t.Source}
		r, ok := w.scopedRules[k]
		if !ok {
			base, known := w.destRules[t.Destination]
			if !known {
				continue // the store keeps this from happening
			}
			r = &DestinationRules{Filters: base.Filters}
			w.scopedRules[k] = r
		}
		r.Transformations = append(r.Transformations, compiled)
	}
	return w
}

// SourceByWriteKey returns the source a write key authenticates at time
// now: its current key, or a retired key still within its grace period.
func (w *Workspace) SourceByWriteKey(key string, now time.Time) (*Source, bool) {
	e, ok := w.byKey[key]
	if !ok || (!e.expires.IsZero() && !now.Before(e.expires)) {
		return nil, false
	}
	return &w.Sources[e.index], true
}

// Source returns the source with the given id.
func (w *Workspace) Source(id string) (*Source, bool) {
	i, ok := w.byID[id]
	if !ok {
		return nil, false
	}
	return &w.Sources[i], true
}

// SourceRules returns what the processing stage applies to the events of
// source sourceID. It is never nil: an unknown source has zero rules (no
// plan, allow everything, no transformations). It does no work per call
// beyond a map lookup; the result is shared and must not be modified.
func (w *Workspace) SourceRules(sourceID string) *SourceRules {
	if r, ok := w.sourceRules[sourceID]; ok {
		return r
	}
	return zeroSourceRules
}

// DestinationRules returns what the delivery stage applies to the events
// of source sourceID on their way to destination destinationID. It is
// never nil, and neither are its Filters: an unknown destination has no
// transformations and filters that keep every event. It does no work per
// call beyond map lookups; the result is shared and must not be modified.
func (w *Workspace) DestinationRules(destinationID, sourceID string) *DestinationRules {
	if r, ok := w.scopedRules[scope{destination: destinationID, source: sourceID}]; ok {
		return r
	}
	if r, ok := w.destRules[destinationID]; ok {
		return r
	}
	return zeroDestinationRules
}

// Problems returns the rules that [BuildWorkspace] could not compile and
// what it did instead, one error each; nil when there are none.
func (w *Workspace) Problems() []error { return w.problems }
