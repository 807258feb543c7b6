package config

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Manager keeps the live [Workspace] snapshot in step with the state store.
// Rules stored in the store that no longer compile are logged at Error
// once per config version (see [BuildWorkspace] for what is done instead).
// Changes made through this process's Config API take effect before the
// API answers (it calls Reload); changes made by another node sharing the
// store are picked up by Run, which watches the store's config_version.
type Manager struct {
	repo      *Repo
	settings  Settings
	logger    *slog.Logger
	pollEvery time.Duration

	cur      atomic.Pointer[Workspace]
	reloadMu sync.Mutex // one reload at a time, so versions never go backwards
}

// NewManager returns a manager over repo. Call Reload once before Current.
func NewManager(repo *Repo, settings Settings, logger *slog.Logger) *Manager {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Manager{repo: repo, settings: settings, logger: logger, pollEvery: 500 * time.Millisecond}
}

// Current returns the live snapshot. It never blocks.
func (m *Manager) Current() *Workspace { return m.cur.Load() }

// Reload reads the workspace from the store and publishes a new snapshot.
func (m *Manager) Reload(ctx context.Context) error {
	m.reloadMu.Lock()
	defer m.reloadMu.Unlock()
	version, err := m.repo.ConfigVersion(ctx)
	if err != nil {
		return fmt.Errorf("reloading workspace: %w", err)
	}
	sources, err := m.repo.ListSources(ctx)
	if err != nil {
		return fmt.Errorf("reloading workspace: %w", err)
	}
	dests, err := m.repo.ListDestinations(ctx)
	if err != nil {
		return fmt.Errorf("reloading workspace: %w", err)
	}
	plans, err := m.repo.ListTrackingPlans(ctx)
	if err != nil {
		return fmt.Errorf("reloading workspace: %w", err)
	}
	transformations, err := m.repo.ListTransformations(ctx)
	if err != nil {
		return fmt.Errorf("reloading workspace: %w", err)
	}
	alerts, err := m.repo.ListAlerts(ctx)
	if err != nil {
		return fmt.Errorf("reloading workspace: %w", err)
	}
	functions, err := m.repo.ListDeployedFunctions(ctx)
	if err != nil {
		return fmt.Errorf("reloading workspace: %w", err)
	}
	ident, _, _, err := m.repo.IdentitySettings(ctx)
	if err != nil {
		return fmt.Errorf("reloading workspace: %w", err)
	}
	prev := m.cur.Load()
	ws := BuildWorkspace(version, m.settings, Contents{
		Sources: sources, Destinations: dests, TrackingPlans: plans, Transformations: transformations, Alerts: alerts,
		Functions: functions, Identity: ident, previous: prev,
	})
	m.cur.Store(ws)
	if prev == nil || prev.Version != version {
		// Once per version, not on every Reload of the same one.
		for _, p := range ws.Problems() {
			m.logger.Error("workspace rule not applied as stored", "version", version, "err", p)
		}
	}
	if prev != nil && prev.Version != version {
		m.logger.Info("workspace reloaded", "version", version, "sources", len(sources), "destinations", len(dests),
			"tracking_plans", len(plans), "transformations", len(transformations), "alerts", len(alerts), "functions", len(functions))
	}
	return nil
}

// Run polls the store's config_version and reloads when it moved, until
// ctx ends. A failed poll is logged and retried; the last good snapshot
// stays live.
func (m *Manager) Run(ctx context.Context) error {
	t := time.NewTicker(m.pollEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		v, err := m.repo.ConfigVersion(ctx)
		if err != nil {
			if ctx.Err() == nil {
				m.logger.Warn("polling workspace version", "err", err)
			}
			continue
		}
		if cur := m.cur.Load(); cur == nil || cur.Version != v {
			if err := m.Reload(ctx); err != nil && ctx.Err() == nil {
				m.logger.Warn("reloading workspace", "err", err)
			}
		}
	}
}
