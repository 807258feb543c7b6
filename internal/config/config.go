// Package config holds the workspace model — sources, destinations, tracking
// plans, transformations, destination filters, JavaScript functions, alert
// rules, identity resolution rules, the Profile API's space and the admin
// token — and everything that reads or changes it: the YAML config file,
// the persisted copy in the state store, the Config API, and the live
// snapshot that other stages read on every request. Alert rules are only declared here;
// internal/observe/alert evaluates them. Identity rules are
// [identity.Settings], checked and compiled by internal/aggregate/identity
// like tracking plans are ([Workspace.Identity]).
//
// Tracking plans, transformations and filters are checked with the
// libraries that apply them (internal/process/plan and
// internal/process/transform) whenever they are loaded or changed, and
// compiled once per snapshot ([Workspace.SourceRules],
// [Workspace.DestinationRules]), so that no stage compiles anything per
// event. JavaScript functions are checked with [function.Compile] whenever
// they are saved, and the deployed version of each is compiled once per
// snapshot ([Workspace.Function]).
//
// It deliberately does not know what a destination type means: settings are an
// opaque JSON object here, validated by the delivery stage that owns the type
// through a [DestinationCheck] the server passes in. A destination's delivery
// options ([DeliveryOptions]) are range-checked here, but their defaults are
// the delivery engine's.
package config

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/confluxcdp/conflux/internal/aggregate/identity"
	"github.com/confluxcdp/conflux/internal/process/plan"
	"github.com/confluxcdp/conflux/internal/process/transform"
)

// DefaultDedupWindow is how long the processing stage remembers a
// messageId when the config file does not say: 30 days.
const DefaultDedupWindow = 30 * 24 * time.Hour

// MinDedupWindow is the shortest dedup window a config file may set.
const MinDedupWindow = time.Hour

// DefaultProfileSpace is the Profile API's space id when the config file
// does not set profiles.space_id.
const DefaultProfileSpace = "default"

// DefaultEventRetention is how long the profile store keeps each
// profile's events when the config file does not say: 14 days.
const DefaultEventRetention = 14 * 24 * time.Hour

// The ranges of [Profiles] fields that a config file may set.
const (
	MinEventRetention    = time.Hour
	MaxEventRetention    = 9600 * time.Hour
	MaxProfilesRateLimit = 100_000
)

// Profiles is the Profile API's space (spec §6.4) and the profile store's
// retention. It lives only in the config file, like DedupWindow: it is
// process-wide and the Config API does not change it.
type Profiles struct {
	// SpaceID is the one space the Profile API serves
	// (/v1/spaces/{SpaceID}/…); [DefaultProfileSpace] unless set.
	SpaceID string
	// AccessToken authenticates the Profile API. Empty means "keep the
	// token already in the state store, or generate one on first start",
	// as for the admin token.
	AccessToken Secret
	// EventRetention is how long a profile's events are kept;
	// [DefaultEventRetention] unless set.
	EventRetention time.Duration
	// RateLimit is the most Profile API requests per second the space
	// answers; 0: no limit.
	RateLimit float64
	// NoHistory turns the event history off (history: false): profiles
	// keep identifiers, traits, links and metadata, the events endpoint
	// answers none, and each event costs about a third less to apply.
	NoHistory bool
}

// WithDefaults returns p with its zero SpaceID and EventRetention set to
// the defaults.
func (p Profiles) WithDefaults() Profiles {
	p.SpaceID = cmp.Or(p.SpaceID, DefaultProfileSpace)
	p.EventRetention = cmp.Or(p.EventRetention, DefaultEventRetention)
	return p
}

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
	// Alerts are the declared alert rules over the delivery metrics.
	Alerts []Alert
	// Functions are the declared JavaScript functions, in file order: those
	// of the top-level functions list and those declared inline by sources
	// and destinations (see [Parse]). Each is the content to deploy.
	Functions []Function
	// Identity are the declared identity resolution rules; nil when the
	// file has no identity block (the stored rules, from the API or the
	// defaults, then stand).
	Identity *identity.Settings
	// Profiles is the Profile API's space; [Parse] fills the defaults of
	// what the file leaves out.
	Profiles Profiles

	// file is the name [Parse] was given, and positions the line and
	// column of every value it read, by field path, so that problems found
	// after loading ([Config.CheckDestinations]) point into the file too.
	// Both are empty for a Config built in code.
	file      string
	positions map[string]position
	// functionPaths are the paths of the blocks that declared Functions,
	// such as "sources[0].function", for the problems ApplyFile finds;
	// nil for a Config built in code ("functions[i]").
	functionPaths []string
}

// position is where a value is written in a config file.
type position struct{ line, col int }

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
	// Function is the id of a source function (kind source): the source is
	// then a source function, whose onRequest turns each request to POST
	// /v1/functions/{source id} into events. Empty for none.
	Function string `json:"function,omitempty"`
	// InsertFunction is the id of an insert function run on the source's
	// events after its plan and transformations; empty for none.
	InsertFunction string `json:"insert_function,omitempty"`
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
	// Delivery is how the delivery engine treats the destination; the
	// zero value takes every default.
	Delivery DeliveryOptions `json:"delivery"`
	// InsertFunction is the id of an insert function run on every event on
	// its way to the destination; empty for none. (A destination of type
	// [FunctionDestinationType] names its destination function in its
	// settings instead.)
	InsertFunction string `json:"insert_function,omitempty"`
	// Origin says who declared the destination: "file" or "api".
	Origin    string    `json:"origin,omitempty"`
	CreatedAt time.Time `json:"created_at,omitzero"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// DeliveryOptions are how the delivery engine treats one destination; a zero field takes the engine's default.
// They are checked here (see [Destination.Validate]) so that the file and
// the Config API refuse a bad value; what the defaults are is the engine's
// call.
type DeliveryOptions struct {
	// Concurrency is how many requests to the destination may be in flight at once (default 8 in the engine; 1..256).
	Concurrency int `json:"concurrency,omitempty"`
	// RateLimit is the most requests per second the destination gets; 0: no limit (0..100000, fractional allowed, e.g. 0.5).
	RateLimit float64 `json:"rate_limit,omitempty"`
	// MaxRetryAge is how long a failing event is retried before it expires (default 4h in the engine; 1m..168h, the processed log's retention).
	MaxRetryAge Duration `json:"max_retry_age,omitempty"`
	// Shards is how many parts the destination's queue is split into
	// (default 1; 1..64, and at most the concurrency): with several nodes,
	// each shard runs on one node, so that several nodes deliver for the
	// destination. Every event belongs to one shard; the concurrency and
	// the rate limit are divided among the shards, so they still hold for
	// the destination as a whole.
	Shards int `json:"shards,omitempty"`
}

// The ranges of [DeliveryOptions] fields that are set (not zero).
const (
	MaxDeliveryConcurrency = 256
	MaxDeliveryRateLimit   = 100_000
	MaxDeliveryShards      = 64
	// DefaultDeliveryConcurrency is the engine's concurrency when a
	// destination sets none.
	DefaultDeliveryConcurrency = 8
	MinDeliveryRetryAge        = time.Minute
	// MaxDeliveryRetryAge is the processed log's retention: an event
	// cannot be retried for longer than the log keeps it.
	MaxDeliveryRetryAge = 168 * time.Hour
)

// Duration is a [time.Duration] that JSON writes as a Go duration string
// ("4h", "1h30m", "90s") rather than a count of nanoseconds, so that the
// Config API and the state store read like the config file. It reads one
// back from a JSON string; the config file's YAML is decoded by the
// loader, like dedup_window. Its zero value is "0s", which omitempty
// leaves out.
type Duration time.Duration

// String renders d like [time.Duration.String] without the zero minutes
// and seconds that follow whole hours or minutes: "4h", "1h30m", "90s".
func (d Duration) String() string {
	s := time.Duration(d).String()
	if t, ok := strings.CutSuffix(s, "m0s"); ok {
		s = t + "m"
	}
	if t, ok := strings.CutSuffix(s, "h0m"); ok {
		s = t + "h"
	}
	return s
}

// MarshalJSON writes d as a JSON string, e.g. "4h".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a JSON string holding a Go duration; null leaves d
// as it is, and anything else is an error saying what to write.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New(`must be a duration string such as "4h" or "90m"`)
	}
	v, err := parseDuration(s, "4h or 90m")
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// parseDuration parses a duration as the config file and the Config API
// write it: a Go duration such as 4h or 1h30m. The error says what is
// wrong and shows example, as in "write it like 4h or 90m".
func parseDuration(s, example string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration: write it like %s", s, example)
	}
	return d, nil
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
