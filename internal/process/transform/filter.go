package transform

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/confluxcdp/conflux/internal/event"
)

// Filter is one of Segment's destination filters (spec §8.4), in the shape
// of the Public API's DestinationFilterV1: when If holds for an event, its
// Actions drop the event, sample it, or remove fields from it.
type Filter struct {
	// ID identifies the filter in an [Outcome] and in errors. Optional;
	// unique among a destination's filters when set.
	ID string `json:"id,omitempty" yaml:"id,omitempty"`
	// If is the FQL condition an event must meet for the actions to apply,
	// or "all" for every event. Required. "Only send" events that match
	// a condition is a drop_event filter with the condition negated:
	// !(event = 'Order Completed').
	If string `json:"if" yaml:"if"`
	// Actions are what the filter does. At least one is required.
	Actions []Action `json:"actions" yaml:"actions"`
	// Title names the filter for people. Optional.
	Title string `json:"title,omitempty" yaml:"title,omitempty"`
	// Description says what the filter is for. Optional.
	Description string `json:"description,omitempty" yaml:"description,omitempty"`
	// Enabled turns the filter on or off. Default: true (unlike the Public
	// API, where it is required).
	Enabled *bool `json:"enabled,omitempty" yaml:"enabled,omitempty"`
}

// Action is one action of a [Filter].
type Action struct {
	// Type is drop_event, sample_event, whitelist_fields or
	// blocklist_fields; the Public API's DROP, SAMPLE, ALLOW_PROPERTIES and
	// DROP_PROPERTIES, and the Config API's blacklist_fields, are accepted
	// for them.
	Type ActionType `json:"type" yaml:"type"`
	// Percent is, for sample_event only (and required there), the fraction
	// of matching events that are kept, from 0 to 1: 0.1 keeps one in ten.
	Percent *float64 `json:"percent,omitempty" yaml:"percent,omitempty"`
	// Path is, for sample_event only, the field whose value decides the
	// sampling, for example userId to keep or drop all of a user's events
	// together. Default: messageId, so that a retried or replayed event is
	// sampled the same way every time.
	Path string `json:"path,omitempty" yaml:"path,omitempty"`
	// Fields are, for whitelist_fields and blocklist_fields only (and
	// required there), the fields kept or removed.
	Fields Fields `json:"fields,omitempty" yaml:"fields,omitempty"`
}

// ActionType is the type of an [Action].
type ActionType string

// The action types, as Segment's Destination Filters API names them.
const (
	// DropEvent does not send the event.
	DropEvent ActionType = "drop_event"
	// SampleEvent sends only a fraction of the events, chosen by a hash of
	// messageId (or of the field Path names), so that the same event gets
	// the same verdict every time.
	SampleEvent ActionType = "sample_event"
	// WhitelistFields removes every field of the listed objects except the
	// listed ones.
	WhitelistFields ActionType = "whitelist_fields"
	// BlocklistFields removes the listed fields.
	BlocklistFields ActionType = "blocklist_fields"
)

// kind returns the canonical type of t, accepting the other APIs' names.
func (t ActionType) kind() (ActionType, bool) {
	switch t {
	case DropEvent, "DROP":
		return DropEvent, true
	case SampleEvent, "SAMPLE":
		return SampleEvent, true
	case WhitelistFields, "ALLOW_PROPERTIES":
		return WhitelistFields, true
	case BlocklistFields, "DROP_PROPERTIES", "blacklist_fields":
		return BlocklistFields, true
	}
	return "", false
}

// Reason says why [Filters.Apply] dropped an event.
type Reason string

const (
	// ReasonFiltered is a drop_event filter, or a condition that could
	// not be evaluated.
	ReasonFiltered Reason = "filtered"
	// ReasonSampled is a sample_event filter.
	ReasonSampled Reason = "sampled"
)

// Outcome is what [Filters.Apply] did to an event.
type Outcome struct {
	// Dropped is true when the event must not be sent.
	Dropped bool
	// Reason says why the event was dropped; empty when it was kept.
	Reason Reason
	// FilterID and FilterIndex name the filter that dropped the event: its
	// ID (empty if it has none) and its position in the list given to
	// [CompileFilters]. They are meaningful only when Dropped.
	FilterID    string
	FilterIndex int
	// Removed counts the fields whitelist and blocklist actions removed
	// from a kept event.
	Removed int
	// Err is set when the event was dropped because a filter's condition
	// could not be evaluated (fail closed); it names the filter.
	Err error
}

// protected are the top-level fields every stored event has and every
// later stage relies on; no filter removes them.
func protected(key string) bool {
	switch key {
	case "type", "messageId", "context", "timestamp", "receivedAt":
		return true
	}
	return false
}

// Filters are a destination's compiled filters. They are immutable and safe
// for concurrent use.
type Filters struct {
	filters []compiledFilter // the enabled ones, in order
	samples []sampleAction
	drops   []int // indexes into filters
	blocks  []fieldAction
	allows  []fieldAction
}

type compiledFilter struct {
	id    string
	index int // in the list given to CompileFilters
	cond  condition
}

type sampleAction struct {
	filter  int
	percent float64
	path    []string // nil: messageId
}

type fieldAction struct {
	filter  int
	targets []fieldTarget
}

// fieldTarget is the keys kept or removed in the object(s) at path; an
// empty path is the top level.
type fieldTarget struct {
	path []string
	keys []string
}

// CompileFilters checks and compiles a destination's filters. Every problem
// is reported, as a [*FieldError] whose path starts "filters[i]" (joined with
// [errors.Join] when there are several); an FQL expression that does not
// compile is one, so that no event passes a filter that cannot work (fail
// closed). Disabled filters are checked too, and then left out.
func CompileFilters(filters []Filter) (*Filters, error) {
	var p problems
	fs := &Filters{}
	ids := make(map[string]int)
	for i, f := range filters {
		p.prefix = fmt.Sprintf("filters[%d]", i)
		if f.ID != "" {
			if j, dup := ids[f.ID]; dup {
				p.addf("id", "%q is also the id of filters[%d]", f.ID, j)
			}
			ids[f.ID] = i
		}
		cond, err := compileCondition(f.If)
		if err != nil {
			p.add("if", err)
		}
		if len(f.Actions) == 0 {
			p.add("actions", errors.New("required (at least one action)"))
		}
		on := enabled(f.Enabled)
		n := len(fs.filters)
		for j, a := range f.Actions {
			compileAction(fs, n, a, &p, fmt.Sprintf("actions[%d]", j), on)
		}
		if on {
			fs.filters = append(fs.filters, compiledFilter{id: f.ID, index: i, cond: cond})
		}
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	return fs, nil
}

// compileAction checks one action of filter n and, if add, adds it to fs.
func compileAction(fs *Filters, n int, a Action, p *problems, field string, add bool) {
	kind, ok := a.Type.kind()
	if !ok {
		p.addf(field+".type", "%q is not an action type: want drop_event, sample_event, whitelist_fields or blocklist_fields", a.Type)
		return
	}
	if kind != SampleEvent {
		if a.Percent != nil {
			p.addf(field+".percent", "only for sample_event")
		}
		if a.Path != "" {
			p.addf(field+".path", "only for sample_event")
		}
	}
	if kind != WhitelistFields && kind != BlocklistFields && a.Fields != nil {
		p.addf(field+".fields", "only for whitelist_fields and blocklist_fields")
	}
	switch kind {
	case DropEvent:
		if add {
			fs.drops = append(fs.drops, n)
		}
	case SampleEvent:
		s := sampleAction{filter: n}
		switch {
		case a.Percent == nil:
			p.add(field+".percent", errors.New("required: the fraction of events kept, from 0 to 1"))
		case math.IsNaN(*a.Percent) || *a.Percent < 0 || *a.Percent > 1:
			p.addf(field+".percent", "%v is out of range: want the fraction of events kept, from 0 to 1 (0.1 keeps 10%%)", *a.Percent)
		default:
			s.percent = *a.Percent
		}
		if a.Path != "" {
			segs, err := parsePath(a.Path)
			if err != nil {
				p.add(field+".path", err)
			}
			s.path = segs
		}
		if add {
			fs.samples = append(fs.samples, s)
		}
	case WhitelistFields, BlocklistFields:
		allow := kind == WhitelistFields
		targets := compileFields(a.Fields, allow, p, field+".fields")
		if add {
			fa := fieldAction{filter: n, targets: targets}
			if allow {
				fs.allows = append(fs.allows, fa)
			} else {
				fs.blocks = append(fs.blocks, fa)
			}
		}
	}
}

// compileFields turns the fields of a whitelist or blocklist action into
// targets: one per object, each with its keys. A dotted entry reaches into
// a nested object: blocking "address.street" in properties removes street
// from properties.address; allowing it keeps address in properties and
// only street in properties.address.
func compileFields(fields Fields, allow bool, p *problems, field string) []fieldTarget {
	if len(fields) == 0 {
		p.add(field, errors.New(`required: the fields by object, for example {properties: {fields: [email]}, context: {fields: [ip]}}`))
		return nil
	}
	var targets []fieldTarget
	at := make(map[string]int) // formatted path → index in targets
	targetAt := func(path []string) int {
		k := formatPath(path)
		i, ok := at[k]
		if !ok {
			i = len(targets)
			at[k] = i
			targets = append(targets, fieldTarget{path: path})
		}
		return i
	}
	addKey := func(path []string, key string) {
		i := targetAt(path)
		for _, have := range targets[i].keys {
			if have == key {
				return
			}
		}
		targets[i].keys = append(targets[i].keys, key)
	}
	for _, obj := range sortedKeys(fields) {
		ofield := fmt.Sprintf("%s[%q]", field, obj)
		var base []string
		if obj != "" {
			segs, err := parsePath(obj)
			if err != nil {
				p.add(ofield, err)
				continue
			}
			if r := segs[0]; r != "properties" && r != "traits" && r != "context" {
				p.addf(ofield, `%q is not an object filters work on: want properties, traits or context, `+
					`a dotted path inside one of them, or "" for the top level`, obj)
				continue
			}
			base = segs
		}
		list := fields[obj]
		if len(list) == 0 {
			if !allow {
				p.add(ofield, errors.New("lists no fields"))
				continue
			}
			targetAt(base) // an empty whitelist keeps nothing
			continue
		}
		for j, entry := range list {
			efield := fmt.Sprintf("%s[%d]", ofield, j)
			segs, err := parsePath(entry)
			if err != nil {
				p.add(efield, err)
				continue
			}
			if obj == "" && !allow && len(segs) == 1 && protected(segs[0]) {
				p.addf(efield, "%q cannot be removed: every event keeps type, messageId, context, timestamp and receivedAt", entry)
				continue
			}
			path := base
			for k, s := range segs {
				if k == len(segs)-1 || allow {
					addKey(path, s)
				}
				path = append(path[:len(path):len(path)], s)
			}
		}
	}
	return targets
}

// Len returns the number of enabled filters.
func (fs *Filters) Len() int { return len(fs.filters) }

// Apply runs the filters over doc and says whether it may be sent. Across
// all the filters, whatever their order, actions run as Segment runs them:
// every sample, then every drop, then every blocklist, then every
// whitelist. Each filter's condition is evaluated once, on the event as it
// arrived, before any field is removed. A dropped event is left as it was;
// from a kept one, the fields that blocklist and whitelist actions name are
// removed in place. Objects inside lists are filtered too: blocking
// "products.price" in properties removes price from every object in the
// properties.products list.
//
// A condition that cannot be evaluated (an FQL evaluation error, such as
// 'and' applied to a string) drops the event with [ReasonFiltered] and Err
// set, whatever the filter's action: when Conflux cannot tell whether a
// filter meant to hold back personal data applies, it does not send the
// event. This is Segment's documented behaviour ("logs an internal error
// and drops the event").
func (fs *Filters) Apply(doc event.Doc) Outcome {
	if len(fs.filters) == 0 {
		return Outcome{}
	}
	// state[i] is 0 before filter i's condition is evaluated, then 1 if
	// it matched and 2 if not.
	var buf [16]uint8
	var state []uint8
	if len(fs.filters) <= len(buf) {
		state = buf[:len(fs.filters)]
	} else {
		state = make([]uint8, len(fs.filters))
	}

	for _, s := range fs.samples {
		ok, err := fs.match(doc, state, s.filter)
		if err != nil {
			return fs.failClosed(s.filter, err)
		}
		if ok && !sampled(doc, s.path, s.percent) {
			return fs.dropped(s.filter, ReasonSampled)
		}
	}
	for _, d := range fs.drops {
		ok, err := fs.match(doc, state, d)
		if err != nil {
			return fs.failClosed(d, err)
		}
		if ok {
			return fs.dropped(d, ReasonFiltered)
		}
	}
	// Evaluate every field action's condition before removing anything.
	for _, list := range [2][]fieldAction{fs.blocks, fs.allows} {
		for _, a := range list {
			if _, err := fs.match(doc, state, a.filter); err != nil {
				return fs.failClosed(a.filter, err)
			}
		}
	}
	var out Outcome
	for _, a := range fs.blocks {
		if state[a.filter] == 1 {
			for _, t := range a.targets {
				out.Removed += filterFields(doc, t.path, t.keys, false, true)
			}
		}
	}
	for _, a := range fs.allows {
		if state[a.filter] == 1 {
			for _, t := range a.targets {
				out.Removed += filterFields(doc, t.path, t.keys, true, true)
			}
		}
	}
	return out
}

// match evaluates filter i's condition once per event.
func (fs *Filters) match(doc event.Doc, state []uint8, i int) (bool, error) {
	switch state[i] {
	case 1:
		return true, nil
	case 2:
		return false, nil
	}
	ok, err := fs.filters[i].cond.match(doc)
	if err != nil {
		return false, err
	}
	state[i] = 2
	if ok {
		state[i] = 1
	}
	return ok, nil
}

func (fs *Filters) dropped(i int, r Reason) Outcome {
	f := &fs.filters[i]
	return Outcome{Dropped: true, Reason: r, FilterID: f.id, FilterIndex: f.index}
}

func (fs *Filters) failClosed(i int, err error) Outcome {
	o := fs.dropped(i, ReasonFiltered)
	if o.FilterID != "" {
		o.Err = fmt.Errorf("filter %q: if: %w", o.FilterID, err)
	} else {
		o.Err = fmt.Errorf("filters[%d]: if: %w", o.FilterIndex, err)
	}
	return o
}

// filterFields removes keys from (blocklist), or all but keys from
// (whitelist), the objects at path below v, following every element of a
// list on the way. top is true while v is the event itself, whose protected
// fields stay. It returns how many fields it removed.
func filterFields(v any, path, keys []string, allow, top bool) int {
	switch t := v.(type) {
	case []any:
		n := 0
		for _, e := range t {
			n += filterFields(e, path, keys, allow, false)
		}
		return n
	case map[string]any:
		if len(path) > 0 {
			next, ok := t[path[0]]
			if !ok {
				return 0
			}
			return filterFields(next, path[1:], keys, allow, false)
		}
		n := 0
		if allow {
			for k := range t {
				if !contains(keys, k) && !(top && protected(k)) {
					delete(t, k)
					n++
				}
			}
			return n
		}
		for _, k := range keys {
			if _, ok := t[k]; ok {
				delete(t, k)
				n++
			}
		}
		return n
	}
	return 0
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// String describes the outcome for logs and tests: "kept", "kept, 2 fields
// removed", "dropped (sampled) by filter \"f1\"".
func (o Outcome) String() string {
	if !o.Dropped {
		if o.Removed == 0 {
			return "kept"
		}
		return fmt.Sprintf("kept, %d fields removed", o.Removed)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "dropped (%s) by filters[%d]", o.Reason, o.FilterIndex)
	if o.FilterID != "" {
		fmt.Fprintf(&b, " %q", o.FilterID)
	}
	if o.Err != nil {
		fmt.Fprintf(&b, ": %v", o.Err)
	}
	return b.String()
}
