package config

import (
	"net/netip"
	"time"
)

// Workspace is an immutable snapshot of the live workspace: what the state
// store holds (file declarations plus API changes) and the process-wide
// settings. Readers get it from [Manager.Current] on every request and
// never see it change under them; a change makes a new snapshot.
type Workspace struct {
	// Version is the store's config_version this snapshot was built from.
	Version        int64
	AdminToken     Secret
	PublicURL      string
	TrustedProxies []netip.Prefix
	Sources        []Source
	Destinations   []Destination

	byID  map[string]int
	byKey map[string]keyEntry
}

type keyEntry struct {
	index   int
	expires time.Time // zero: the source's current key
}

// Settings are the process-wide parts of a workspace, from the config file
// and start-up, that the API does not change.
type Settings struct {
	AdminToken     Secret
	PublicURL      string
	TrustedProxies []netip.Prefix
}

// NewWorkspace indexes sources and destinations into a snapshot.
func NewWorkspace(version int64, s Settings, sources []Source, dests []Destination) *Workspace {
	w := &Workspace{
		Version:        version,
		AdminToken:     s.AdminToken,
		PublicURL:      s.PublicURL,
		TrustedProxies: s.TrustedProxies,
		Sources:        sources,
		Destinations:   dests,
		byID:           make(map[string]int, len(sources)),
		byKey:          make(map[string]keyEntry, len(sources)),
	}
	for i, src := range sources {
		w.byID[src.ID] = i
		w.byKey[src.WriteKey] = keyEntry{index: i}
		for _, rk := range src.RetiredKeys {
			w.byKey[rk.WriteKey] = keyEntry{index: i, expires: rk.ExpiresAt}
		}
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
