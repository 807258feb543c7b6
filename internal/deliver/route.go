package deliver

import (
	"fmt"

	"github.com/confluxcdp/conflux/internal/config"
	"github.com/confluxcdp/conflux/internal/event"
	"github.com/confluxcdp/conflux/internal/process/transform"
)

// routing is what a queue knows to pick and prepare its events.
type routing struct {
	dest    *config.Destination
	typ     *Type
	sources map[string]bool
}

func newRouting(d *config.Destination, t *Type) *routing {
	r := &routing{dest: d, typ: t, sources: make(map[string]bool, len(d.Sources))}
	for _, s := range d.Sources {
		r.sources[s] = true
	}
	return r
}

// skipReason says why an event of a destination's source is not sent.
type skipReason string

const (
	skipNone         skipReason = ""
	skipIntegrations skipReason = "integrations"
	skipFiltered     skipReason = "filtered"
	skipSampled      skipReason = "sampled"
	// skipInsertFunction is not decided here but by the destination's
	// insert function, when it is sent (see [Dropped]).
	skipInsertFunction skipReason = "insert_function"
)

// prepare turns a record into the event the destination gets, or says why
// it is skipped. The keys the engine needs are scanned without decoding
// (and the integrations object decoded when there is one); the event is
// decoded whole, and encoded again after them, only when the
// destination's transformations or filters read or change it.
func (r *routing) prepare(ws *config.Workspace, rec event.Record) (ev Event, skip skipReason, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("preparing an event of source %q for destination %q panicked: %v", rec.SourceID, r.dest.ID, p)
		}
	}()
	rules := ws.DestinationRules(r.dest.ID, rec.SourceID)
	k, err := event.PeekKeys(rec.JSON)
	if err != nil {
		return Event{}, skipNone, fmt.Errorf("reading an event of source %q: %w", rec.SourceID, err)
	}
	ev = Event{SourceID: rec.SourceID, JSON: rec.JSON, Attempt: 1, MessageID: string(k.MessageID), Type: string(k.Type),
		Name: eventName(&k), ReceivedAt: k.ReceivedAt}
	if k.Integrations != nil {
		integrations, err := event.Decode(k.Integrations)
		if err != nil {
			return ev, skipNone, fmt.Errorf("decoding the integrations of event %q: %w", ev.MessageID, err)
		}
		if !r.enabledFor(integrations) {
			return ev, skipIntegrations, nil
		}
	}
	if len(rules.Transformations) == 0 && rules.Filters.Len() == 0 {
		return ev, skipNone, nil
	}
	doc, err := event.Decode(rec.JSON)
	if err != nil {
		return ev, skipNone, fmt.Errorf("decoding event %q: %w", ev.MessageID, err)
	}
	if len(rules.Transformations) > 0 {
		if _, err := rules.Transformations.Apply(doc); err != nil {
			return ev, skipNone, fmt.Errorf("applying the transformations of destination %q: %w", r.dest.ID, err)
		}
	}
	if out := rules.Filters.Apply(doc); out.Dropped {
		if out.Reason == transform.ReasonSampled {
			return ev, skipSampled, nil
		}
		return ev, skipFiltered, nil
	}
	if ev.JSON, err = event.Encode(nil, doc); err != nil {
		return ev, skipNone, fmt.Errorf("encoding an event for destination %q: %w", r.dest.ID, err)
	}
	return ev, skipNone, nil
}

// enabledFor applies an event's integrations object (spec §1.10): a key
// naming this destination (its id, its name, or one of its type's
// integration names) decides, true or a settings object meaning yes;
// otherwise "All" decides, and without it the event is sent.
func (r *routing) enabledFor(v any) bool {
	m, ok := v.(map[string]any)
	if !ok {
		return true
	}
	decide := func(v any) bool {
		b, isBool := v.(bool)
		return !isBool || b
	}
	for _, k := range []string{r.dest.ID, r.dest.Name} {
		if v, ok := m[k]; ok && k != "" {
			return decide(v)
		}
	}
	for _, k := range r.typ.Integrations {
		if v, ok := m[k]; ok {
			return decide(v)
		}
	}
	if v, ok := m["All"]; ok {
		return decide(v)
	}
	return true
}

// eventName is what the delivery metrics name an event by.
func eventName(k *event.Keys) string {
	switch string(k.Type) {
	case "track":
		return string(k.Event)
	case "page", "screen":
		return string(k.Name)
	}
	return ""
}
