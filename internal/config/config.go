// Package config holds the workspace model — sources, destinations and the
// admin token — and everything that reads or changes it: the YAML config file,
// the persisted copy in the state store, the Config API, and the live snapshot
// that other stages read on every request.
//
// It deliberately does not know what a destination type means: settings are an
// opaque JSON object here, validated by the delivery stage that owns the type.
package config

import (
	"net/netip"
	"time"
)

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
	// Sources and Destinations are the declared workspace objects.
	Sources      []Source
	Destinations []Destination
}

// Source is where events come from; each has one current write key and
// possibly older keys still accepted until they expire (after a rotation).
type Source struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	WriteKey string `json:"write_key"`
	// RetiredKeys are previous write keys still accepted until ExpiresAt.
	RetiredKeys []RetiredKey `json:"retired_write_keys,omitempty"`
	// Origin says who declared the source: "file" or "api".
	Origin    string    `json:"origin,omitempty"`
	CreatedAt time.Time `json:"created_at,omitzero"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
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
	// Origin says who declared the destination: "file" or "api".
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
