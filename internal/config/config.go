// Package config holds the workspace model — sources, destinations, tracking
// plans, transformations, destination filters and the admin token — and
// everything that reads or changes it: the YAML config file, the persisted
// copy in the state store, the Config API, and the live snapshot that other
// stages read on every request.
//
// Tracking plans, transformations and filters are checked with the
// libraries that apply them (internal/process/plan and
// internal/process/transform) whenever they are loaded or changed, and
// compiled once per snapshot ([Workspace.SourceRules],
// [Workspace.DestinationRules]), so that no stage compiles anything per
// event.
//
// It deliberately does not know what a destination type means: settings are an
// opaque JSON object here, validated by the delivery stage that owns the type.
package config

import (
	"encoding/json"
	"net/netip"
	"time"

	"github.com/confluxcdp/conflux/internal/process/plan"
	"github.com/confluxcdp/conflux/internal/process/transform"
)

// DefaultDedupWindow is how long the processing stage remembers a
// messageId when the config file does not say: 30 days.
const DefaultDedupWindow = 30 * 24 * time.Hour

// MinDedupWindow is the shortest dedup window a config file may set.
const MinDedupWindow = time.Hour

// Config is a workspace as declared in a config file. It is read-only once
// loaded; the live, possibly API-modified, state is a [Workspace].
type Config struct {
	// AdminToken is the bearer token of the Config API. Empty means "keep the
	// token already in the state store, or generate one on first start".
	AdminToken Secret
	// PublicURL is the scheme and host SDKs use to reach this server, e.g.
	// https://collect.example.com. It is served in the settings endpoint.
	// Empty means "derive it from each request".
	PublicURL string
	// TrustedProxies are the networks whose X-Forwarded-For / X-Forwarded-Proto
	// / X-Forwarded-Host headers are believed. Default: none.
	TrustedProxies []netip.Prefix
	// DedupWindow is how long a messageId is remembered to drop duplicate
	// events. [Parse] sets it to [DefaultDedupWindow] when the file does not
	// set dedup_window; at least [MinDedupWindow]. It lives only in the
	// file, not in the state store.
	DedupWindow time.Duration
	// Sources, Destinations, TrackingPlans and Transformations are the
	// declared workspace objects. Transformations are in file order, which
	// is the order they are applied in.
	Sources         []Source
	Destinations    []Destination
	TrackingPlans   []TrackingPlan
	Transformations []Transformation
}

// Source is where events come from; each has one current write key and
// possibly older keys still accepted until they expire (after a rotation).
type Source struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	WriteKey string `json:"write_key"`
	// RetiredKeys are previous write keys still accepted until ExpiresAt.
	RetiredKeys []RetiredKey `json:"retired_write_keys,omitempty"`
	// TrackingPlan is the id of the tracking plan the source's events are
	// checked against; empty for none.
	TrackingPlan string `json:"tracking_plan"`
	// Schema is what the source does about events that break its tracking
	// plan, and where it forwards violations and blocked events.
	Schema SourceSchema `json:"schema"`
	// Origin says who declared the source: "file" or "api".
	Origin    string    `json:"origin,omitempty"`
	CreatedAt time.Time `json:"created_at,omitzero"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// SourceSchema is a source's Schema Configuration (spec §8.2): the
// enforcement controls of [plan.Enforcement] (empty means allow) and where
// violations and blocked events go. The zero value allows everything and
// forwards nothing.
type SourceSchema struct {
	plan.Enforcement
	// ForwardViolationsTo is the id of the source that "Violation
	// Generated" events are written to; empty: violations are counted but
	// not forwarded. Not the source itself.
	ForwardViolationsTo string `json:"forward_violations_to"`
	// ForwardBlockedTo is the id of the source that blocked events are
	// written to, unchanged; empty: blocked events are discarded. Not the
	// source itself.
	ForwardBlockedTo string `json:"forward_blocked_to"`
}

// RetiredKey is a write key replaced by a rotation that stays valid for a
// grace period so that deployed clients can be updated.
type RetiredKey struct {
	WriteKey  string    `json:"write_key"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Destination is where events go. Its Type names a destination implementation;
// Settings is that implementation's JSON settings object.
type Destination struct {
	ID       string         `json:"id"`
	Name     string         `json:"name,omitempty"`
	Type     string         `json:"type"`
	Enabled  bool           `json:"enabled"`
	Sources  []string       `json:"sources"`
	Settings map[string]any `json:"settings"`
	// Filters are the destination's filters (spec §8.4), applied to every
	// event before it is sent. Never nil once loaded or stored.
	Filters []transform.Filter `json:"filters"`
	// Origin says who declared the destination: "file" or "api".
	Origin    string    `json:"origin,omitempty"`
	CreatedAt time.Time `json:"created_at,omitzero"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// TrackingPlan is a Segment Protocols tracking plan (spec §8.1): JSON
// Schemas that the events of the sources using it are checked against.
type TrackingPlan struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// Rules are the plan's schemas.
	Rules PlanRules `json:"rules"`
	// Origin says who declared the plan: "file" or "api".
	Origin    string    `json:"origin,omitempty"`
	CreatedAt time.Time `json:"created_at,omitzero"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// PlanRules are a tracking plan's JSON Schemas, each a JSON object over the
// whole event, in the layout [plan.Plan] documents (a track rule declares
// the properties under properties.properties). A nil schema is no rule.
type PlanRules struct {
	// Events maps a track event name to its schema; {} plans the event
	// without constraining it. Never nil once loaded or stored.
	Events map[string]json.RawMessage `json:"events"`
	// Identify and Group are the schemas of identify and group events,
	// declaring the planned traits under properties.traits.
	Identify json.RawMessage `json:"identify,omitempty"`
	Group    json.RawMessage `json:"group,omitempty"`
	// Common is the schema every event is checked against.
	Common json.RawMessage `json:"common,omitempty"`
}

// Plan returns p in the form [plan.Compile] takes.
func (p *TrackingPlan) Plan() plan.Plan {
	return plan.Plan{
		ID: p.ID, Name: p.Name,
		Events: p.Rules.Events, Identify: p.Rules.Identify, Group: p.Rules.Group, Common: p.Rules.Common,
	}
}

// Transformation is one of Segment's Transformations (spec §8.3) with its
// scope. Its embedded [transform.Transformation] holds what it does, under
// Segment's camelCase names; its ID is required here and unique across
// the workspace.
//
// Scope: every transformation belongs to one source. Without Destination
// it applies to all of that source's events in the processing stage;
// with Destination it applies only to that source's events on their way
// to that destination (Segment's destination-scoped transformation), in
// the delivery stage, and does nothing if the destination does not
// receive the source's events.
//
// Order: the transformations of one scope apply one after another. Those
// declared in the config file come first, in file order; then those
// created through the Config API, in creation order.
type Transformation struct {
	transform.Transformation
	// Source is the id of the source whose events it applies to. Required.
	Source string `json:"source"`
	// Destination, when set, narrows it to the events Source sends to this
	// destination.
	Destination string `json:"destination,omitempty"`
	// Origin says who declared the transformation: "file" or "api".
	Origin    string    `json:"origin,omitempty"`
	CreatedAt time.Time `json:"created_at,omitzero"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// Origins of workspace objects.
const (
	OriginFile = "file"
	OriginAPI  = "api"
)

// Secret is a string that never prints or marshals its value, so that a
// config dump or a log line cannot leak it.
type Secret string

// String implements fmt.Stringer without revealing the value.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "<redacted>"
}

// GoString implements fmt.GoStringer, so that %#v does not reveal it either.
func (s Secret) GoString() string { return s.String() }

// MarshalText implements encoding.TextMarshaler without revealing the value.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Value returns the secret itself, for the one place that must compare it.
func (s Secret) Value() string { return string(s) }
