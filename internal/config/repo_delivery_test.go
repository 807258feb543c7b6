package config_test

import (
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/config"
	"github.com/confluxcdp/conflux/internal/store"
	"github.com/confluxcdp/conflux/internal/store/storetest"
)

// storedDelivery reads destination id's delivery column as stored.
func storedDelivery(t *testing.T, db *store.DB, id string) string {
	t.Helper()
	var raw string
	if err := db.SQL().QueryRowContext(t.Context(), db.Rebind(`SELECT delivery FROM destinations WHERE id = ?`), id).Scan(&raw); err != nil {
		t.Fatalf("reading the delivery column of %s: %v", id, err)
	}
	return raw
}

func TestRepoDestinationDelivery(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		repo, _ := newRepo(db)
		opts := config.DeliveryOptions{Concurrency: 4, RateLimit: 0.5, MaxRetryAge: config.Duration(4 * time.Hour)}
		if got := mustCreateDestination(t, repo, config.Destination{ID: "hook", Type: "webhook", Delivery: opts}); got.Delivery != opts {
			t.Fatalf("CreateDestination delivery = %+v, want %+v", got.Delivery, opts)
		}
		if got := mustGetDestination(t, repo, "hook"); got.Delivery != opts {
			t.Fatalf("GetDestination delivery = %+v, want %+v", got.Delivery, opts)
		}
		if got, want := storedDelivery(t, db, "hook"), `{"concurrency":4,"rate_limit":0.5,"max_retry_age":"4h"}`; got != want {
			t.Errorf("stored delivery = %s, want %s", got, want)
		}
		mustCreateDestination(t, repo, config.Destination{ID: "bare", Type: "webhook"})
		if got := mustGetDestination(t, repo, "bare"); got.Delivery != (config.DeliveryOptions{}) {
			t.Errorf("destination without delivery options = %+v, want the zero value", got.Delivery)
		}
		if got := storedDelivery(t, db, "bare"); got != "{}" {
			t.Errorf("stored delivery of bare = %s, want {}", got)
		}

		// Each update changes only the delivery options.
		for _, step := range []struct {
			name       string
			delivery   config.DeliveryOptions
			wantBump   bool
			wantStored string
		}{
			{"same", opts, false, `{"concurrency":4,"rate_limit":0.5,"max_retry_age":"4h"}`},
			{"concurrency", config.DeliveryOptions{Concurrency: 8, RateLimit: 0.5, MaxRetryAge: config.Duration(4 * time.Hour)}, true, `{"concurrency":8,"rate_limit":0.5,"max_retry_age":"4h"}`},
			{"retry age", config.DeliveryOptions{Concurrency: 8, RateLimit: 0.5, MaxRetryAge: config.Duration(168 * time.Hour)}, true, `{"concurrency":8,"rate_limit":0.5,"max_retry_age":"168h"}`},
			{"rate limit", config.DeliveryOptions{Concurrency: 8, MaxRetryAge: config.Duration(168 * time.Hour)}, true, `{"concurrency":8,"max_retry_age":"168h"}`},
			{"defaults", config.DeliveryOptions{}, true, `{}`},
			{"defaults again", config.DeliveryOptions{}, false, `{}`},
		} {
			d := mustGetDestination(t, repo, "hook")
			d.Delivery = step.delivery
			v := version(t, repo)
			got, err := repo.UpdateDestination(ctx, d)
			if err != nil {
				t.Fatalf("%s: UpdateDestination: %v", step.name, err)
			}
			if got.Delivery != step.delivery {
				t.Errorf("%s: UpdateDestination delivery = %+v, want %+v", step.name, got.Delivery, step.delivery)
			}
			if bumped := version(t, repo) != v; bumped != step.wantBump {
				t.Errorf("%s: config version bumped = %v, want %v", step.name, bumped, step.wantBump)
			}
			if raw := storedDelivery(t, db, "hook"); raw != step.wantStored {
				t.Errorf("%s: stored %s, want %s", step.name, raw, step.wantStored)
			}
		}

		bad := config.DeliveryOptions{Concurrency: 300, RateLimit: -1, MaxRetryAge: config.Duration(time.Second)}
		_, err := repo.CreateDestination(ctx, config.Destination{ID: "bad", Type: "webhook", Delivery: bad})
		for _, p := range []string{"delivery.concurrency", "delivery.rate_limit", "delivery.max_retry_age"} {
			wantFieldError(t, err, p)
		}
		d := mustGetDestination(t, repo, "hook")
		d.Delivery = bad
		_, err = repo.UpdateDestination(ctx, d)
		wantFieldError(t, err, "delivery.concurrency")
		if got := mustGetDestination(t, repo, "hook"); got.Delivery != (config.DeliveryOptions{}) {
			t.Errorf("a refused update was stored: %+v", got.Delivery)
		}
	})
}

// TestApplyFileDelivery follows delivery options from the config file
// through the store to the live Workspace, as the delivery stage reads
// them, across edits of the file and of the API.
func TestApplyFileDelivery(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		repo, _ := newRepo(db)
		mgr := config.NewManager(repo, config.Settings{}, nil)
		file := func(block string) string {
			return "sources:\n  - id: web\ndestinations:\n  - id: hook\n    type: webhook\n    sources: [web]\n" + block +
				"  - id: plain\n    type: webhook\n"
		}
		live := func(id string) config.DeliveryOptions {
			t.Helper()
			if err := mgr.Reload(ctx); err != nil {
				t.Fatal(err)
			}
			for _, d := range mgr.Current().Destinations {
				if d.ID == id {
					return d.Delivery
				}
			}
			t.Fatalf("destination %s is not in the workspace", id)
			return config.DeliveryOptions{}
		}
		four := config.DeliveryOptions{Concurrency: 4, RateLimit: 0.5, MaxRetryAge: config.Duration(4 * time.Hour)}
		for _, step := range []struct {
			name string
			// api, if set, runs before the file is applied.
			api         func(t *testing.T)
			block       string
			wantUpdated bool
			want        config.DeliveryOptions
		}{
			{name: "created", block: "    delivery: {concurrency: 4, rate_limit: 0.5, max_retry_age: 4h}\n", wantUpdated: true, want: four},
			{name: "unchanged", block: "    delivery: {concurrency: 4, rate_limit: 0.5, max_retry_age: 240m}\n", want: four},
			{name: "edited in the file", block: "    delivery: {concurrency: 4, rate_limit: 0.5, max_retry_age: 2h}\n", wantUpdated: true,
				want: config.DeliveryOptions{Concurrency: 4, RateLimit: 0.5, MaxRetryAge: config.Duration(2 * time.Hour)}},
			{
				name: "API edit survives an unchanged file",
				api: func(t *testing.T) {
					d := mustGetDestination(t, repo, "hook")
					d.Delivery.Concurrency = 16
					if _, err := repo.UpdateDestination(ctx, d); err != nil {
						t.Fatal(err)
					}
				},
				block: "    delivery: {concurrency: 4, rate_limit: 0.5, max_retry_age: 2h}\n",
				want:  config.DeliveryOptions{Concurrency: 16, RateLimit: 0.5, MaxRetryAge: config.Duration(2 * time.Hour)},
			},
			{name: "removed from the file", block: "", wantUpdated: true, want: config.DeliveryOptions{}},
		} {
			if step.api != nil {
				step.api(t)
			}
			cfg, err := config.Parse("conflux.yaml", []byte(file(step.block)))
			if err != nil {
				t.Fatalf("%s: %v", step.name, err)
			}
			v := version(t, repo)
			rep, err := repo.ApplyFile(ctx, cfg)
			if err != nil {
				t.Fatalf("%s: ApplyFile: %v", step.name, err)
			}
			changed := len(rep.Destinations.Created)+len(rep.Destinations.Updated) > 0
			if changed != step.wantUpdated {
				t.Errorf("%s: destinations %+v, want hook written: %v", step.name, rep.Destinations, step.wantUpdated)
			}
			if bumped := version(t, repo) != v; bumped != step.wantUpdated {
				t.Errorf("%s: config version bumped = %v, want %v", step.name, bumped, step.wantUpdated)
			}
			if got := live("hook"); got != step.want {
				t.Errorf("%s: live delivery of hook = %+v, want %+v", step.name, got, step.want)
			}
			if got := live("plain"); got != (config.DeliveryOptions{}) {
				t.Errorf("%s: live delivery of plain = %+v, want the defaults", step.name, got)
			}
		}

		// A bad value in the file is refused before anything is written.
		cfg := &config.Config{Destinations: []config.Destination{{ID: "hook", Type: "webhook", Delivery: config.DeliveryOptions{RateLimit: 1e6}}}}
		_, err := repo.ApplyFile(ctx, cfg)
		wantFieldError(t, err, "destinations[0].delivery.rate_limit")
	})
}

// TestRepoResetsDeliveryState checks that the transactions creating,
// re-enabling and deleting a destination reset its delivery state, and
// that no other change does.
func TestRepoResetsDeliveryState(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		repo, _ := newRepo(db)
		exec := func(q string, args ...any) {
			t.Helper()
			if _, err := db.SQL().ExecContext(ctx, db.Rebind(q), args...); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		// What a queue stores: the shards' positions and a job.
		stored := func() {
			t.Helper()
			for _, key := range []string{"hook/0-of-2", "hook/1-of-2"} {
				exec(`INSERT INTO delivery_positions (destination_id, seq, done, updated_at) VALUES (?, 7, ?, 0) ON CONFLICT (destination_id) DO NOTHING`, key, []byte{})
			}
			exec(`INSERT INTO delivery_jobs (destination_id, id, message_id, source_id, event_type, event, received_at, attempts,
	first_attempt_at, next_attempt_at, last_status, last_reason, last_error, last_request, last_response) VALUES ('hook', '1.0', 'm', 's', 'track', '{}', 0, 1, 0, 0, 500, '', '', ?, ?)
	ON CONFLICT (destination_id, id) DO NOTHING`, []byte{}, []byte{})
		}
		count := func(table string) int {
			t.Helper()
			var n int
			if err := db.SQL().QueryRowContext(ctx, `SELECT COUNT(*) FROM `+table).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		check := func(step string, positions, jobs int) {
			t.Helper()
			if p, j := count("delivery_positions"), count("delivery_jobs"); p != positions || j != jobs {
				t.Errorf("%s: %d positions and %d jobs, want %d and %d", step, p, j, positions, jobs)
			}
		}

		stored() // left by a queue of an earlier destination "hook"
		d := mustCreateDestination(t, repo, config.Destination{ID: "hook", Type: "webhook", Enabled: true, Delivery: config.DeliveryOptions{Shards: 2}})
		check("created", 0, 0)

		stored()
		d.Name = "Renamed"
		d = mustUpdateDestination(t, repo, d)
		check("renamed", 2, 1)
		d.Enabled = false
		d = mustUpdateDestination(t, repo, d)
		check("disabled", 2, 1)
		d.Enabled = true
		d = mustUpdateDestination(t, repo, d)
		check("enabled again: the positions go, the retries stay", 0, 1)

		stored()
		if err := repo.DeleteDestination(ctx, "hook"); err != nil {
			t.Fatal(err)
		}
		check("deleted", 0, 0)
	})
}
