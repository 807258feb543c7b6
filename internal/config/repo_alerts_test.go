package config_test

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/config"
	"github.com/confluxcdp/conflux/internal/store"
	"github.com/confluxcdp/conflux/internal/store/storetest"
)

func rateAlert(id string) config.Alert {
	return config.Alert{ID: id, Destination: "hook", Enabled: true, Kind: config.SuccessRateBelow, Threshold: 0.9,
		Window: config.Duration(15 * time.Minute), Notify: config.AlertNotify{URL: "https://h.example.com/a", Headers: map[string]string{"X-Key": "k"}}}
}

func alertIDs(list []config.Alert) []string {
	ids := make([]string, len(list))
	for i, a := range list {
		ids[i] = a.ID
	}
	return ids
}

func TestRepoAlerts(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		repo, clock := newRepo(db)
		mustCreateSource(t, repo, config.Source{ID: "web"})
		mustCreateDestination(t, repo, config.Destination{ID: "hook", Type: "webhook", Enabled: true, Sources: []string{"web"}})

		v := version(t, repo)
		a, err := repo.CreateAlert(ctx, rateAlert("rate"))
		if err != nil {
			t.Fatal(err)
		}
		want := rateAlert("rate")
		want.Name, want.MinEvents, want.Origin, want.CreatedAt, want.UpdatedAt = "rate", config.DefaultAlertMinEvents, config.OriginAPI, t0, t0
		if !reflect.DeepEqual(a, want) {
			t.Errorf("created\n%+v\nwant\n%+v", a, want)
		}
		if version(t, repo) != v+1 {
			t.Error("creating an alert did not bump the config version")
		}
		if got, err := repo.GetAlert(ctx, "rate"); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("GetAlert = %+v, %v", got, err)
		}

		spike := config.Alert{ID: "spike", Source: "web", Enabled: true, Kind: config.DiscardsChange, Threshold: 200,
			Window: config.Duration(5 * time.Minute), MinEvents: 7, Notify: config.AlertNotify{URL: "http://127.0.0.1:1/x"}}
		if _, err := repo.CreateAlert(ctx, spike); err != nil {
			t.Fatal(err)
		}
		list, err := repo.ListAlerts(ctx)
		if err != nil || !slices.Equal(alertIDs(list), []string{"rate", "spike"}) || list[1].MinEvents != 7 {
			t.Fatalf("ListAlerts = %+v, %v", list, err)
		}

		// Update: every field replaced, origin and created_at kept;
		// unchanged values change nothing.
		clock.Advance(time.Minute)
		up := a
		up.Kind, up.Threshold, up.MinEvents, up.Destination, up.Enabled = config.DiscardsAbove, 10, 0, "", false
		up.Notify = config.AlertNotify{URL: "https://h.example.com/b"}
		up.Origin = config.OriginFile // not the caller's to change
		got, err := repo.UpdateAlert(ctx, up)
		if err != nil {
			t.Fatal(err)
		}
		if got.Kind != config.DiscardsAbove || got.Destination != "" || got.Enabled || got.Notify.Headers != nil ||
			got.Origin != config.OriginAPI || !got.CreatedAt.Equal(t0) || !got.UpdatedAt.Equal(t0.Add(time.Minute)) {
			t.Errorf("updated = %+v", got)
		}
		v = version(t, repo)
		if _, err := repo.UpdateAlert(ctx, got); err != nil || version(t, repo) != v {
			t.Errorf("a no-op update: %v, version %d → %d", err, v, version(t, repo))
		}

		// Errors.
		for _, tc := range []struct {
			name string
			op   func() error
			path string
			is   error
		}{
			{"shape", func() error {
				b := rateAlert("bad")
				b.Threshold = 2
				_, err := repo.CreateAlert(ctx, b)
				return err
			}, "threshold", nil},
			{"missing destination", func() error {
				b := rateAlert("bad")
				b.Destination = "nope"
				_, err := repo.CreateAlert(ctx, b)
				return err
			}, "destination", nil},
			{"missing source", func() error {
				b := rateAlert("bad")
				b.Source = "nope"
				_, err := repo.CreateAlert(ctx, b)
				return err
			}, "source", nil},
			{"bad origin", func() error {
				b := rateAlert("bad")
				b.Origin = "cli"
				_, err := repo.CreateAlert(ctx, b)
				return err
			}, "origin", nil},
			{"taken id", func() error { _, err := repo.CreateAlert(ctx, rateAlert("spike")); return err }, "", config.ErrConflict},
			{"update missing", func() error { _, err := repo.UpdateAlert(ctx, rateAlert("nope")); return err }, "", config.ErrNotFound},
			{"update to a missing source", func() error {
				b := spike
				b.Source = "nope"
				_, err := repo.UpdateAlert(ctx, b)
				return err
			}, "source", nil},
			{"delete missing", func() error { return repo.DeleteAlert(ctx, "nope") }, "", config.ErrNotFound},
			{"delete a watched source", func() error { return repo.DeleteSource(ctx, "web") }, "", config.ErrConflict},
		} {
			t.Run(tc.name, func(t *testing.T) {
				err := tc.op()
				if tc.is != nil {
					if !errors.Is(err, tc.is) {
						t.Fatalf("error %v, want %v", err, tc.is)
					}
					return
				}
				wantFieldError(t, err, tc.path)
			})
		}

		// A destination watched by an alert cannot be deleted until the
		// alert lets it go.
		if _, err := repo.CreateAlert(ctx, rateAlert("rate2")); err != nil {
			t.Fatal(err)
		}
		err = repo.DeleteDestination(ctx, "hook")
		if !errors.Is(err, config.ErrConflict) || !strings.Contains(err.Error(), `alerts "rate2"`) {
			t.Errorf("deleting a watched destination: %v", err)
		}
		if err := repo.DeleteAlert(ctx, "rate2"); err != nil {
			t.Fatal(err)
		}
		if err := repo.DeleteDestination(ctx, "hook"); err != nil {
			t.Errorf("deleting the destination once unwatched: %v", err)
		}
	})
}

// alertsFile declares a source, a destination and two alerts on them.
func alertsFile() *config.Config {
	return &config.Config{
		Sources:      []config.Source{{ID: "web", Name: "web", Origin: config.OriginFile}},
		Destinations: []config.Destination{{ID: "hook", Type: "webhook", Enabled: true, Sources: []string{"web"}, Settings: map[string]any{}, Origin: config.OriginFile}},
		Alerts: []config.Alert{
			func() config.Alert { a := rateAlert("rate"); a.Origin = config.OriginFile; return a }(),
			{ID: "discards", Source: "web", Enabled: true, Kind: config.DiscardsAbove, Threshold: 5, Window: config.Duration(time.Hour),
				Notify: config.AlertNotify{URL: "https://h.example.com/d"}, Origin: config.OriginFile},
		},
	}
}

func TestRepoApplyFileAlerts(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		repo, _ := newRepo(db)
		rep, err := repo.ApplyFile(ctx, alertsFile())
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(rep.Alerts.Created, []string{"rate", "discards"}) {
			t.Errorf("report = %+v", rep.Alerts)
		}
		a, err := repo.GetAlert(ctx, "rate")
		if err != nil || a.Origin != config.OriginFile || a.MinEvents != config.DefaultAlertMinEvents || a.Name != "rate" {
			t.Fatalf("file alert = %+v, %v", a, err)
		}

		// The same file again changes nothing; an API edit stands.
		a.Threshold = 0.5
		if _, err := repo.UpdateAlert(ctx, a); err != nil {
			t.Fatal(err)
		}
		v := version(t, repo)
		if rep, err = repo.ApplyFile(ctx, alertsFile()); err != nil || rep.Changed() || version(t, repo) != v {
			t.Errorf("same file: %+v, %v", rep, err)
		}
		if a, _ := repo.GetAlert(ctx, "rate"); a.Threshold != 0.5 {
			t.Errorf("the API edit was lost: %+v", a)
		}

		// A changed declaration wins; a dropped one is deleted, before
		// the destination it watched.
		f := alertsFile()
		f.Alerts[0].Threshold = 0.8
		f.Alerts = f.Alerts[:1]
		if rep, err = repo.ApplyFile(ctx, f); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(rep.Alerts.Updated, []string{"rate"}) || !slices.Equal(rep.Alerts.Deleted, []string{"discards"}) {
			t.Errorf("report = %+v", rep.Alerts)
		}
		if a, _ := repo.GetAlert(ctx, "rate"); a.Threshold != 0.8 {
			t.Errorf("file change not applied: %+v", a)
		}
		f.Alerts, f.Destinations = nil, nil
		if rep, err = repo.ApplyFile(ctx, f); err != nil || !slices.Equal(rep.Alerts.Deleted, []string{"rate"}) {
			t.Fatalf("dropping the alert with its destination: %+v, %v", rep, err)
		}

		// File and API objects do not mix.
		if _, err := repo.CreateAlert(ctx, config.Alert{ID: "mine", Source: "web", Kind: config.DiscardsAbove, Threshold: 1,
			Window: config.Duration(time.Minute), Enabled: true, Notify: config.AlertNotify{URL: "https://h.example.com"}}); err != nil {
			t.Fatal(err)
		}
		g := alertsFile()
		g.Alerts[1].ID = "mine"
		if _, err := repo.ApplyFile(ctx, g); !errors.Is(err, config.ErrConflict) || !strings.Contains(err.Error(), "alerts[1]") {
			t.Errorf("a file alert named like an API one: %v", err)
		}
		// The file cannot drop a source an API alert watches.
		if _, err := repo.ApplyFile(ctx, &config.Config{}); !errors.Is(err, config.ErrConflict) {
			t.Errorf("dropping a watched source: %v", err)
		}
		// References must exist in the file or as API objects.
		h := alertsFile()
		h.Alerts[0].Destination = "nope"
		if _, err := repo.ApplyFile(ctx, h); err == nil || !strings.Contains(err.Error(), `alerts[0].destination: destination "nope"`) {
			t.Errorf("an alert on an undeclared destination: %v", err)
		}
		h = alertsFile()
		h.Alerts[1].Threshold = -1
		h.Alerts = append(h.Alerts, h.Alerts[0])
		_, err = repo.ApplyFile(ctx, h)
		wantFieldError(t, err, "alerts[1].threshold")
		wantFieldError(t, err, "alerts[2].id")
	})
}

// TestWorkspaceAlerts checks that the live snapshot holds the rules,
// ordered by id.
func TestWorkspaceAlerts(t *testing.T) {
	db := storetest.SQLite(t)
	repo, _ := newRepo(db)
	if _, err := repo.ApplyFile(t.Context(), alertsFile()); err != nil {
		t.Fatal(err)
	}
	mgr := config.NewManager(repo, config.Settings{}, nil)
	if err := mgr.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := alertIDs(mgr.Current().Alerts); !slices.Equal(got, []string{"discards", "rate"}) {
		t.Errorf("snapshot alerts = %v", got)
	}
}
