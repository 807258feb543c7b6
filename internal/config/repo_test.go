package config_test

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/config"
	"github.com/confluxcdp/conflux/internal/process/transform"
	"github.com/confluxcdp/conflux/internal/store"
	"github.com/confluxcdp/conflux/internal/store/storetest"
)

// t0 is the test clock's start; a whole millisecond, as stored.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// testClock is a settable clock for Repo.Now.
type testClock struct{ now time.Time }

func (c *testClock) Now() time.Time          { return c.now }
func (c *testClock) Advance(d time.Duration) { c.now = c.now.Add(d) }

func newRepo(db *store.DB) (*config.Repo, *testClock) {
	clock := &testClock{now: t0}
	repo := config.NewRepo(db)
	repo.Now = clock.Now
	return repo, clock
}

func mustCreateSource(t *testing.T, repo *config.Repo, s config.Source) config.Source {
	t.Helper()
	got, err := repo.CreateSource(t.Context(), s)
	if err != nil {
		t.Fatalf("CreateSource(%s): %v", s.ID, err)
	}
	return got
}

func mustCreateDestination(t *testing.T, repo *config.Repo, d config.Destination) config.Destination {
	t.Helper()
	got, err := repo.CreateDestination(t.Context(), d)
	if err != nil {
		t.Fatalf("CreateDestination(%s): %v", d.ID, err)
	}
	return got
}

func mustUpdateDestination(t *testing.T, repo *config.Repo, d config.Destination) config.Destination {
	t.Helper()
	got, err := repo.UpdateDestination(t.Context(), d)
	if err != nil {
		t.Fatalf("UpdateDestination(%s): %v", d.ID, err)
	}
	return got
}

func mustGetSource(t *testing.T, repo *config.Repo, id string) config.Source {
	t.Helper()
	s, err := repo.GetSource(t.Context(), id)
	if err != nil {
		t.Fatalf("GetSource(%s): %v", id, err)
	}
	return s
}

func mustGetDestination(t *testing.T, repo *config.Repo, id string) config.Destination {
	t.Helper()
	d, err := repo.GetDestination(t.Context(), id)
	if err != nil {
		t.Fatalf("GetDestination(%s): %v", id, err)
	}
	return d
}

func version(t *testing.T, repo *config.Repo) int64 {
	t.Helper()
	v, err := repo.ConfigVersion(t.Context())
	if err != nil {
		t.Fatalf("ConfigVersion: %v", err)
	}
	return v
}

func sourceIDs(list []config.Source) []string {
	ids := make([]string, len(list))
	for i, s := range list {
		ids[i] = s.ID
	}
	return ids
}

func destinationIDs(list []config.Destination) []string {
	ids := make([]string, len(list))
	for i, d := range list {
		ids[i] = d.ID
	}
	return ids
}

// wantFieldError fails unless err holds a *ValidationError with a problem
// at path.
func wantFieldError(t *testing.T, err error, path string) {
	t.Helper()
	ve, ok := errors.AsType[*config.ValidationError](err)
	if !ok {
		t.Fatalf("error = %v (%T), want a *ValidationError", err, err)
	}
	for _, fe := range ve.Errors {
		if fe.Path == path {
			return
		}
	}
	t.Fatalf("ValidationError %q has no problem at %s", ve, path)
}

func TestRepoSourceCRUD(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		repo, clock := newRepo(db)

		web := mustCreateSource(t, repo, config.Source{ID: "web", Name: "Website", WriteKey: "web-key-1"})
		want := config.Source{ID: "web", Name: "Website", WriteKey: "web-key-1", Origin: config.OriginAPI, CreatedAt: t0, UpdatedAt: t0}
		if !reflect.DeepEqual(web, want) {
			t.Fatalf("CreateSource returned\n%+v\nwant\n%+v", web, want)
		}
		if got := mustGetSource(t, repo, "web"); !reflect.DeepEqual(got, want) {
			t.Fatalf("GetSource returned\n%+v\nwant\n%+v", got, want)
		}

		app := mustCreateSource(t, repo, config.Source{ID: "app"})
		if app.Name != "app" {
			t.Errorf("Name = %q, want it to default to the id", app.Name)
		}
		if msg := config.ValidateWriteKey(app.WriteKey); msg != "" || len(app.WriteKey) != 32 {
			t.Errorf("generated write key %q: %s (length %d, want 32)", app.WriteKey, msg, len(app.WriteKey))
		}

		list, err := repo.ListSources(ctx)
		if err != nil {
			t.Fatalf("ListSources: %v", err)
		}
		if got := sourceIDs(list); !slices.Equal(got, []string{"app", "web"}) {
			t.Fatalf("ListSources ids = %v, want [app web]", got)
		}
		if !reflect.DeepEqual(list[1], want) {
			t.Errorf("ListSources()[1] =\n%+v\nwant\n%+v", list[1], want)
		}

		clock.Advance(time.Minute)
		v := version(t, repo)
		got, err := repo.UpdateSource(ctx, config.Source{ID: "web", Name: "Web shop"})
		if err != nil {
			t.Fatalf("UpdateSource: %v", err)
		}
		want.Name, want.UpdatedAt = "Web shop", t0.Add(time.Minute)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("UpdateSource (name) returned\n%+v\nwant\n%+v", got, want)
		}
		if version(t, repo) != v+1 {
			t.Errorf("UpdateSource did not bump the config version once")
		}

		clock.Advance(time.Minute)
		got, err = repo.UpdateSource(ctx, config.Source{ID: "web", Name: "Web shop", WriteKey: "web-key-2"})
		if err != nil {
			t.Fatalf("UpdateSource: %v", err)
		}
		want.WriteKey, want.UpdatedAt = "web-key-2", t0.Add(2*time.Minute)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("UpdateSource (key) returned\n%+v\nwant\n%+v (the old key must be dropped, not retired)", got, want)
		}
		// The dropped key is free for another source at once.
		mustCreateSource(t, repo, config.Source{ID: "reuse", WriteKey: "web-key-1"})

		v = version(t, repo)
		if _, err := repo.UpdateSource(ctx, config.Source{ID: "web", Name: "Web shop", WriteKey: "web-key-2"}); err != nil {
			t.Fatalf("UpdateSource (no change): %v", err)
		}
		if version(t, repo) != v {
			t.Errorf("UpdateSource without a change bumped the config version")
		}

		if err := repo.DeleteSource(ctx, "web"); err != nil {
			t.Fatalf("DeleteSource: %v", err)
		}
		if _, err := repo.GetSource(ctx, "web"); !errors.Is(err, config.ErrNotFound) {
			t.Errorf("GetSource after delete: %v, want ErrNotFound", err)
		}
		if err := repo.DeleteSource(ctx, "web"); !errors.Is(err, config.ErrNotFound) {
			t.Errorf("second DeleteSource: %v, want ErrNotFound", err)
		}
		if _, err := repo.UpdateSource(ctx, config.Source{ID: "web"}); !errors.Is(err, config.ErrNotFound) {
			t.Errorf("UpdateSource of a missing source: %v, want ErrNotFound", err)
		}
		// Its key went with it.
		mustCreateSource(t, repo, config.Source{ID: "web2", WriteKey: "web-key-2"})
	})
}

func TestRepoSourceErrors(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		repo, _ := newRepo(db)
		mustCreateSource(t, repo, config.Source{ID: "a", WriteKey: "key-a"})
		rotated, err := repo.RotateWriteKey(ctx, "a", time.Hour)
		if err != nil {
			t.Fatalf("RotateWriteKey: %v", err)
		}
		mustCreateSource(t, repo, config.Source{ID: "b", WriteKey: "key-b"})
		v := version(t, repo)

		tests := []struct {
			name      string
			call      func() error
			wantIs    error
			wantPath  string
			wantInMsg string
		}{
			{"duplicate id", func() error {
				_, err := repo.CreateSource(ctx, config.Source{ID: "a"})
				return err
			}, config.ErrConflict, "", `"a"`},
			{"key is another source's current key", func() error {
				_, err := repo.CreateSource(ctx, config.Source{ID: "c", WriteKey: rotated.WriteKey})
				return err
			}, config.ErrConflict, "", `"a"`},
			{"key is another source's retired key", func() error {
				_, err := repo.CreateSource(ctx, config.Source{ID: "c", WriteKey: "key-a"})
				return err
			}, config.ErrConflict, "", `"a"`},
			{"update to another source's key", func() error {
				_, err := repo.UpdateSource(ctx, config.Source{ID: "b", WriteKey: "key-a"})
				return err
			}, config.ErrConflict, "", `"a"`},
			{"bad id", func() error {
				_, err := repo.CreateSource(ctx, config.Source{ID: "Bad Id"})
				return err
			}, nil, "id", ""},
			{"bad write key", func() error {
				_, err := repo.CreateSource(ctx, config.Source{ID: "c", WriteKey: "has:colon"})
				return err
			}, nil, "write_key", ""},
			{"bad origin", func() error {
				_, err := repo.CreateSource(ctx, config.Source{ID: "c", Origin: "elsewhere"})
				return err
			}, nil, "origin", ""},
			{"rotate missing", func() error {
				_, err := repo.RotateWriteKey(ctx, "missing", 0)
				return err
			}, config.ErrNotFound, "", `"missing"`},
			{"rotate with negative grace", func() error {
				_, err := repo.RotateWriteKey(ctx, "a", -time.Second)
				return err
			}, nil, "", "negative grace"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				err := tt.call()
				if err == nil {
					t.Fatal("succeeded, want an error")
				}
				if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
					t.Errorf("error %v does not match %v", err, tt.wantIs)
				}
				if tt.wantPath != "" {
					wantFieldError(t, err, tt.wantPath)
				}
				if !strings.Contains(err.Error(), tt.wantInMsg) {
					t.Errorf("error %q does not mention %s", err, tt.wantInMsg)
				}
			})
		}
		if version(t, repo) != v {
			t.Errorf("failed calls changed the config version from %d to %d", v, version(t, repo))
		}
		// Nothing half-done: b still has its own key only.
		if got := mustGetSource(t, repo, "b"); got.WriteKey != "key-b" || len(got.RetiredKeys) != 0 {
			t.Errorf("source b = %+v after failed calls", got)
		}
	})
}

func TestRepoRotateWriteKey(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		repo, clock := newRepo(db)
		mustCreateSource(t, repo, config.Source{ID: "web", WriteKey: "key-1"})
		mustCreateSource(t, repo, config.Source{ID: "app", WriteKey: "app-key-1"})

		t.Run("with grace", func(t *testing.T) {
			clock.Advance(time.Second)
			rotatedAt := clock.Now()
			v := version(t, repo)
			got, err := repo.RotateWriteKey(ctx, "web", time.Hour)
			if err != nil {
				t.Fatalf("RotateWriteKey: %v", err)
			}
			if got.WriteKey == "key-1" || config.ValidateWriteKey(got.WriteKey) != "" {
				t.Fatalf("new write key %q is not a fresh valid key", got.WriteKey)
			}
			wantRetired := []config.RetiredKey{{WriteKey: "key-1", ExpiresAt: rotatedAt.Add(time.Hour)}}
			if !reflect.DeepEqual(got.RetiredKeys, wantRetired) {
				t.Fatalf("RetiredKeys = %+v, want %+v", got.RetiredKeys, wantRetired)
			}
			if !got.UpdatedAt.Equal(rotatedAt) {
				t.Errorf("UpdatedAt = %v, want %v", got.UpdatedAt, rotatedAt)
			}
			if version(t, repo) != v+1 {
				t.Errorf("RotateWriteKey did not bump the config version once")
			}

			// A second rotation retires the second key too.
			clock.Advance(10 * time.Minute)
			second := got.WriteKey
			got, err = repo.RotateWriteKey(ctx, "web", time.Hour)
			if err != nil {
				t.Fatalf("second RotateWriteKey: %v", err)
			}
			wantRetired = append(wantRetired, config.RetiredKey{WriteKey: second, ExpiresAt: clock.Now().Add(time.Hour)})
			if !reflect.DeepEqual(got.RetiredKeys, wantRetired) {
				t.Fatalf("RetiredKeys = %+v, want %+v", got.RetiredKeys, wantRetired)
			}

			// Still in its grace period: the key is taken.
			clock.Advance(49 * time.Minute)
			if _, err := repo.CreateSource(ctx, config.Source{ID: "thief", WriteKey: "key-1"}); !errors.Is(err, config.ErrConflict) {
				t.Fatalf("CreateSource with a retired key in grace: %v, want ErrConflict", err)
			}
			if n := len(mustGetSource(t, repo, "web").RetiredKeys); n != 2 {
				t.Fatalf("%d retired keys before the first expiry, want 2", n)
			}

			// Past it: ignored everywhere, and free again.
			clock.Advance(time.Minute)
			list, err := repo.ListSources(ctx)
			if err != nil {
				t.Fatalf("ListSources: %v", err)
			}
			web := list[slices.IndexFunc(list, func(s config.Source) bool { return s.ID == "web" })]
			if !reflect.DeepEqual(web.RetiredKeys, wantRetired[1:]) {
				t.Fatalf("after expiry RetiredKeys = %+v, want %+v", web.RetiredKeys, wantRetired[1:])
			}
			if got := mustGetSource(t, repo, "web"); !reflect.DeepEqual(got.RetiredKeys, wantRetired[1:]) {
				t.Fatalf("after expiry GetSource RetiredKeys = %+v, want %+v", got.RetiredKeys, wantRetired[1:])
			}
			mustCreateSource(t, repo, config.Source{ID: "reuse", WriteKey: "key-1"})
		})

		t.Run("without grace", func(t *testing.T) {
			got, err := repo.RotateWriteKey(ctx, "app", 0)
			if err != nil {
				t.Fatalf("RotateWriteKey: %v", err)
			}
			if got.WriteKey == "app-key-1" || len(got.RetiredKeys) != 0 {
				t.Fatalf("after rotation without grace: %+v, want a new key and no retired ones", got)
			}
			mustCreateSource(t, repo, config.Source{ID: "reuse-app", WriteKey: "app-key-1"})
		})

		t.Run("promote a retired key", func(t *testing.T) {
			before := mustGetSource(t, repo, "web")
			retired := before.RetiredKeys[0].WriteKey
			got, err := repo.UpdateSource(ctx, config.Source{ID: "web", Name: before.Name, WriteKey: retired})
			if err != nil {
				t.Fatalf("UpdateSource back to a retired key: %v", err)
			}
			if got.WriteKey != retired || len(got.RetiredKeys) != 0 {
				t.Fatalf("after promoting %q: %+v, want it current and nothing retired", retired, got)
			}
		})
	})
}

func TestRepoDestinationCRUD(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		repo, clock := newRepo(db)
		mustCreateSource(t, repo, config.Source{ID: "web"})
		mustCreateSource(t, repo, config.Source{ID: "app"})

		settings := map[string]any{
			"url":     "https://example.com/hook",
			"timeout": 2.5,
			"retries": float64(3),
			"headers": map[string]any{"X-Token": "t"},
			"tags":    []any{"a", true, nil},
		}
		got := mustCreateDestination(t, repo, config.Destination{
			ID: "hook", Name: "Hook", Type: "webhook", Enabled: true,
			Sources: []string{"web", "app"}, Settings: settings,
		})
		want := config.Destination{
			ID: "hook", Name: "Hook", Type: "webhook", Enabled: true,
			Sources: []string{"app", "web"}, Settings: settings, Filters: []transform.Filter{},
			Origin: config.OriginAPI, CreatedAt: t0, UpdatedAt: t0,
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("CreateDestination returned\n%#v\nwant\n%#v", got, want)
		}
		if got := mustGetDestination(t, repo, "hook"); !reflect.DeepEqual(got, want) {
			t.Fatalf("GetDestination returned\n%#v\nwant\n%#v", got, want)
		}

		bare := mustCreateDestination(t, repo, config.Destination{ID: "bare", Type: "webhook"})
		if bare.Settings == nil || len(bare.Settings) != 0 || bare.Sources == nil || len(bare.Sources) != 0 {
			t.Errorf("destination without settings or sources = %#v, want empty, non-nil map and slice", bare)
		}
		list, err := repo.ListDestinations(ctx)
		if err != nil {
			t.Fatalf("ListDestinations: %v", err)
		}
		if ids := destinationIDs(list); !slices.Equal(ids, []string{"bare", "hook"}) {
			t.Fatalf("ListDestinations ids = %v, want [bare hook]", ids)
		}
		if !reflect.DeepEqual(list[1], want) {
			t.Errorf("ListDestinations()[1] =\n%#v\nwant\n%#v", list[1], want)
		}

		clock.Advance(time.Minute)
		v := version(t, repo)
		got, err = repo.UpdateDestination(ctx, config.Destination{
			ID: "hook", Name: "Hook 2", Type: "amplitude", Enabled: false,
			Sources: []string{"web"}, Settings: map[string]any{"api_key": "k"},
		})
		if err != nil {
			t.Fatalf("UpdateDestination: %v", err)
		}
		want = config.Destination{
			ID: "hook", Name: "Hook 2", Type: "amplitude", Enabled: false,
			Sources: []string{"web"}, Settings: map[string]any{"api_key": "k"}, Filters: []transform.Filter{},
			Origin: config.OriginAPI, CreatedAt: t0, UpdatedAt: t0.Add(time.Minute),
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("UpdateDestination returned\n%#v\nwant\n%#v", got, want)
		}
		if version(t, repo) != v+1 {
			t.Errorf("UpdateDestination did not bump the config version once")
		}
		// app is no longer used, so it can go.
		if err := repo.DeleteSource(ctx, "app"); err != nil {
			t.Fatalf("DeleteSource(app) after unlinking it: %v", err)
		}

		v = version(t, repo)
		if _, err := repo.UpdateDestination(ctx, config.Destination{
			ID: "hook", Name: "Hook 2", Type: "amplitude", Sources: []string{"web"}, Settings: map[string]any{"api_key": "k"},
		}); err != nil {
			t.Fatalf("UpdateDestination (no change): %v", err)
		}
		if version(t, repo) != v {
			t.Errorf("UpdateDestination without a change bumped the config version")
		}

		if _, err := repo.CreateDestination(ctx, config.Destination{ID: "hook", Type: "webhook"}); !errors.Is(err, config.ErrConflict) {
			t.Errorf("CreateDestination with a taken id: %v, want ErrConflict", err)
		}
		_, err = repo.CreateDestination(ctx, config.Destination{ID: "new", Type: "webhook", Sources: []string{"web", "ghost"}})
		wantFieldError(t, err, "sources[1]")
		_, err = repo.UpdateDestination(ctx, config.Destination{ID: "hook", Type: "webhook", Sources: []string{"ghost"}})
		wantFieldError(t, err, "sources[0]")
		_, err = repo.CreateDestination(ctx, config.Destination{ID: "new"})
		wantFieldError(t, err, "type")
		if _, err := repo.UpdateDestination(ctx, config.Destination{ID: "missing", Type: "webhook"}); !errors.Is(err, config.ErrNotFound) {
			t.Errorf("UpdateDestination of a missing destination: %v, want ErrNotFound", err)
		}
		if _, err := repo.GetDestination(ctx, "new"); !errors.Is(err, config.ErrNotFound) {
			t.Errorf("a rejected destination was stored: %v", err)
		}

		if err := repo.DeleteDestination(ctx, "hook"); err != nil {
			t.Fatalf("DeleteDestination: %v", err)
		}
		if _, err := repo.GetDestination(ctx, "hook"); !errors.Is(err, config.ErrNotFound) {
			t.Errorf("GetDestination after delete: %v, want ErrNotFound", err)
		}
		if err := repo.DeleteDestination(ctx, "hook"); !errors.Is(err, config.ErrNotFound) {
			t.Errorf("second DeleteDestination: %v, want ErrNotFound", err)
		}
	})
}

func TestRepoDeleteSourceInUse(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		repo, _ := newRepo(db)
		mustCreateSource(t, repo, config.Source{ID: "web"})
		mustCreateDestination(t, repo, config.Destination{ID: "d2", Type: "webhook", Sources: []string{"web"}})
		mustCreateDestination(t, repo, config.Destination{ID: "d1", Type: "webhook", Sources: []string{"web"}})

		err := repo.DeleteSource(ctx, "web")
		if !errors.Is(err, config.ErrConflict) {
			t.Fatalf("DeleteSource of a used source: %v, want ErrConflict", err)
		}
		if !strings.Contains(err.Error(), `"d1", "d2"`) {
			t.Errorf("error %q does not list the destinations using the source", err)
		}
		mustGetSource(t, repo, "web")

		for _, id := range []string{"d1", "d2"} {
			if err := repo.DeleteDestination(ctx, id); err != nil {
				t.Fatalf("DeleteDestination(%s): %v", id, err)
			}
		}
		if err := repo.DeleteSource(ctx, "web"); err != nil {
			t.Fatalf("DeleteSource once unused: %v", err)
		}
	})
}

func TestRepoMeta(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		repo, _ := newRepo(db)
		if _, ok, err := repo.Meta(ctx, "admin_token_hash"); err != nil || ok {
			t.Fatalf("Meta of an unset key = ok %v, err %v; want not found", ok, err)
		}
		v := version(t, repo)
		if err := repo.SetMeta(ctx, "admin_token_hash", "h1"); err != nil {
			t.Fatalf("SetMeta: %v", err)
		}
		if err := repo.SetMeta(ctx, "admin_token_hash", "h1"); err != nil {
			t.Fatalf("SetMeta (same value): %v", err)
		}
		if got := version(t, repo); got != v+1 {
			t.Errorf("config version = %d after setting a value and setting it again, want %d", got, v+1)
		}
		if err := repo.SetMeta(ctx, "admin_token_hash", "h2"); err != nil {
			t.Fatalf("SetMeta (replace): %v", err)
		}
		got, ok, err := repo.Meta(ctx, "admin_token_hash")
		if err != nil || !ok || got != "h2" {
			t.Fatalf("Meta = %q, %v, %v; want h2, true, nil", got, ok, err)
		}
		if got := version(t, repo); got != v+2 {
			t.Errorf("config version = %d after replacing the value, want %d", got, v+2)
		}
	})
}

func TestRepoConfigVersion(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		repo, _ := newRepo(db)
		if v := version(t, repo); v != 0 {
			t.Fatalf("a fresh store has config version %d, want 0", v)
		}
		steps := []struct {
			name string
			call func() error
			bump int64
		}{
			{"create source", func() error { _, err := repo.CreateSource(ctx, config.Source{ID: "web"}); return err }, 1},
			{"update source", func() error { _, err := repo.UpdateSource(ctx, config.Source{ID: "web", Name: "W"}); return err }, 1},
			{"rotate key", func() error { _, err := repo.RotateWriteKey(ctx, "web", time.Hour); return err }, 1},
			{"create destination", func() error {
				_, err := repo.CreateDestination(ctx, config.Destination{ID: "d", Type: "webhook", Sources: []string{"web"}})
				return err
			}, 1},
			{"update destination", func() error {
				_, err := repo.UpdateDestination(ctx, config.Destination{ID: "d", Type: "webhook", Enabled: true})
				return err
			}, 1},
			{"delete destination", func() error { return repo.DeleteDestination(ctx, "d") }, 1},
			{"delete source", func() error { return repo.DeleteSource(ctx, "web") }, 1},
			{"set meta", func() error { return repo.SetMeta(ctx, "k", "v") }, 1},
			{"ensure default (creates)", func() error { _, _, err := repo.EnsureDefaultSource(ctx); return err }, 1},
			{"ensure default (exists)", func() error { _, _, err := repo.EnsureDefaultSource(ctx); return err }, 0},
			{"apply file", func() error {
				_, err := repo.ApplyFile(ctx, &config.Config{Sources: []config.Source{{ID: "f", Name: "f"}}})
				return err
			}, 1},
			{"apply same file", func() error {
				_, err := repo.ApplyFile(ctx, &config.Config{Sources: []config.Source{{ID: "f", Name: "f"}}})
				return err
			}, 0},
			{"failed create", func() error {
				if _, err := repo.CreateSource(ctx, config.Source{ID: "f"}); !errors.Is(err, config.ErrConflict) {
					return errors.New("CreateSource of a taken id did not fail with ErrConflict")
				}
				return nil
			}, 0},
		}
		for _, step := range steps {
			before := version(t, repo)
			if err := step.call(); err != nil {
				t.Fatalf("%s: %v", step.name, err)
			}
			if got := version(t, repo); got != before+step.bump {
				t.Errorf("%s: config version went from %d to %d, want +%d", step.name, before, got, step.bump)
			}
		}
	})
}

func TestRepoEnsureDefaultSource(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		repo, _ := newRepo(db)
		got, created, err := repo.EnsureDefaultSource(ctx)
		if err != nil {
			t.Fatalf("EnsureDefaultSource: %v", err)
		}
		if !created || got.ID != "default" || got.Name != "Default" || got.Origin != config.OriginAPI || config.ValidateWriteKey(got.WriteKey) != "" {
			t.Fatalf("EnsureDefaultSource on an empty store = %+v, created %v; want a new source \"default\" with a valid key", got, created)
		}
		again, created, err := repo.EnsureDefaultSource(ctx)
		if err != nil || created || !reflect.DeepEqual(again, got) {
			t.Fatalf("second EnsureDefaultSource = %+v, %v, %v; want the same source, not created", again, created, err)
		}

		mustCreateSource(t, repo, config.Source{ID: "b"})
		mustCreateSource(t, repo, config.Source{ID: "a"})
		mustCreateSource(t, repo, config.Source{ID: "z"})
		if s, created, err := repo.EnsureDefaultSource(ctx); err != nil || created || s.ID != "default" {
			t.Fatalf("EnsureDefaultSource with default among others = %s, %v, %v; want default", s.ID, created, err)
		}
		if err := repo.DeleteSource(ctx, "default"); err != nil {
			t.Fatalf("DeleteSource: %v", err)
		}
		if s, created, err := repo.EnsureDefaultSource(ctx); err != nil || created || s.ID != "a" {
			t.Fatalf("EnsureDefaultSource without default = %s, %v, %v; want the first source, a", s.ID, created, err)
		}
	})
}

// The config files of TestRepoApplyFile.
func baseFile() *config.Config {
	return &config.Config{
		Sources: []config.Source{
			{ID: "web", Name: "Website", WriteKey: "web-file-key", Origin: config.OriginFile},
			{ID: "app", Name: "App", Origin: config.OriginFile},
		},
		Destinations: []config.Destination{{
			ID: "hook", Type: "webhook", Enabled: true, Sources: []string{"web", "app"},
			Settings: map[string]any{"url": "https://example.com/a"}, Origin: config.OriginFile,
		}},
	}
}

func edit(cfg *config.Config, fn func(*config.Config)) *config.Config {
	fn(cfg)
	return cfg
}

func TestRepoApplyFile(t *testing.T) {
	t.Parallel()
	type changes = config.ApplyChanges
	tests := []struct {
		name string
		// first is applied before api, unless nil.
		first *config.Config
		// api makes changes through the API between the two files.
		api func(t *testing.T, repo *config.Repo)
		// second is the file under test.
		second     *config.Config
		wantReport config.ApplyReport
		// wantErr, if set, must match the error; nothing must change.
		wantErr   error
		wantInErr []string
		check     func(t *testing.T, repo *config.Repo)
	}{
		{
			name:   "create",
			second: baseFile(),
			wantReport: config.ApplyReport{
				Sources:      changes{Created: []string{"web", "app"}},
				Destinations: changes{Created: []string{"hook"}},
			},
			check: func(t *testing.T, repo *config.Repo) {
				web := mustGetSource(t, repo, "web")
				if web.Origin != config.OriginFile || web.WriteKey != "web-file-key" || web.Name != "Website" {
					t.Errorf("web = %+v", web)
				}
				if app := mustGetSource(t, repo, "app"); app.Origin != config.OriginFile || config.ValidateWriteKey(app.WriteKey) != "" {
					t.Errorf("app = %+v, want origin file and a generated key", app)
				}
				hook := mustGetDestination(t, repo, "hook")
				if hook.Origin != config.OriginFile || !slices.Equal(hook.Sources, []string{"app", "web"}) || hook.Settings["url"] != "https://example.com/a" {
					t.Errorf("hook = %+v", hook)
				}
			},
		},
		{
			name:   "unchanged",
			first:  baseFile(),
			second: baseFile(),
			wantReport: config.ApplyReport{
				Sources:      changes{Unchanged: []string{"web", "app"}},
				Destinations: changes{Unchanged: []string{"hook"}},
			},
		},
		{
			name:  "reordered sources are unchanged",
			first: baseFile(),
			second: edit(baseFile(), func(c *config.Config) {
				c.Destinations[0].Sources = []string{"app", "web"}
			}),
			wantReport: config.ApplyReport{
				Sources:      changes{Unchanged: []string{"web", "app"}},
				Destinations: changes{Unchanged: []string{"hook"}},
			},
		},
		{
			name:  "file changed overwrites",
			first: baseFile(),
			second: edit(baseFile(), func(c *config.Config) {
				c.Sources[0].Name = "Web shop"
				c.Sources[0].WriteKey = "web-file-key-2"
				c.Destinations[0].Settings["url"] = "https://example.com/b"
				c.Destinations[0].Sources = []string{"web"}
				c.Destinations[0].Enabled = false
			}),
			wantReport: config.ApplyReport{
				Sources:      changes{Updated: []string{"web"}, Unchanged: []string{"app"}},
				Destinations: changes{Updated: []string{"hook"}},
			},
			check: func(t *testing.T, repo *config.Repo) {
				web := mustGetSource(t, repo, "web")
				if web.Name != "Web shop" || web.WriteKey != "web-file-key-2" || len(web.RetiredKeys) != 0 {
					t.Errorf("web = %+v, want the file's name and key, the old key dropped", web)
				}
				hook := mustGetDestination(t, repo, "hook")
				if hook.Enabled || !slices.Equal(hook.Sources, []string{"web"}) || hook.Settings["url"] != "https://example.com/b" {
					t.Errorf("hook = %+v, want it as in the new file", hook)
				}
			},
		},
		{
			name:  "API edits survive an unchanged file",
			first: baseFile(),
			api: func(t *testing.T, repo *config.Repo) {
				if _, err := repo.UpdateSource(t.Context(), config.Source{ID: "web", Name: "Edited", WriteKey: "web-api-key"}); err != nil {
					t.Fatal(err)
				}
				if _, err := repo.RotateWriteKey(t.Context(), "app", 0); err != nil {
					t.Fatal(err)
				}
				if _, err := repo.UpdateDestination(t.Context(), config.Destination{ID: "hook", Type: "webhook", Sources: []string{"web"}}); err != nil {
					t.Fatal(err)
				}
			},
			second: baseFile(),
			wantReport: config.ApplyReport{
				Sources:      changes{Unchanged: []string{"web", "app"}},
				Destinations: changes{Unchanged: []string{"hook"}},
			},
			check: func(t *testing.T, repo *config.Repo) {
				if web := mustGetSource(t, repo, "web"); web.Name != "Edited" || web.WriteKey != "web-api-key" {
					t.Errorf("web = %+v, want the API edit kept", web)
				}
				if hook := mustGetDestination(t, repo, "hook"); hook.Enabled || len(hook.Settings) != 0 {
					t.Errorf("hook = %+v, want the API edit kept", hook)
				}
			},
		},
		{
			name:  "changed file wins over API edits but keeps a rotated key it does not set",
			first: baseFile(),
			api: func(t *testing.T, repo *config.Repo) {
				if _, err := repo.UpdateSource(t.Context(), config.Source{ID: "web", Name: "Edited"}); err != nil {
					t.Fatal(err)
				}
				if _, err := repo.RotateWriteKey(t.Context(), "app", time.Hour); err != nil {
					t.Fatal(err)
				}
			},
			second: edit(baseFile(), func(c *config.Config) {
				c.Sources[0].Name = "From file"
				c.Sources[1].Name = "App 2"
			}),
			wantReport: config.ApplyReport{
				Sources:      changes{Updated: []string{"web", "app"}},
				Destinations: changes{Unchanged: []string{"hook"}},
			},
			check: func(t *testing.T, repo *config.Repo) {
				if web := mustGetSource(t, repo, "web"); web.Name != "From file" {
					t.Errorf("web = %+v, want the file's name", web)
				}
				// The key rotated through the API stands, with its
				// retired key, since the file leaves write_key empty.
				if app := mustGetSource(t, repo, "app"); app.Name != "App 2" || len(app.RetiredKeys) != 1 {
					t.Errorf("app = %+v, want the new name, the rotated key and one retired key", app)
				}
			},
		},
		{
			name:  "removed from the file is deleted",
			first: baseFile(),
			second: edit(baseFile(), func(c *config.Config) {
				c.Sources = c.Sources[:1]
				c.Destinations = nil
			}),
			wantReport: config.ApplyReport{
				Sources:      changes{Unchanged: []string{"web"}, Deleted: []string{"app"}},
				Destinations: changes{Deleted: []string{"hook"}},
			},
			check: func(t *testing.T, repo *config.Repo) {
				if _, err := repo.GetSource(t.Context(), "app"); !errors.Is(err, config.ErrNotFound) {
					t.Errorf("GetSource(app) = %v, want ErrNotFound", err)
				}
				if _, err := repo.GetDestination(t.Context(), "hook"); !errors.Is(err, config.ErrNotFound) {
					t.Errorf("GetDestination(hook) = %v, want ErrNotFound", err)
				}
			},
		},
		{
			name:  "API objects are untouched",
			first: baseFile(),
			api: func(t *testing.T, repo *config.Repo) {
				mustCreateSource(t, repo, config.Source{ID: "api-src", WriteKey: "api-key"})
				mustCreateDestination(t, repo, config.Destination{ID: "api-dest", Type: "webhook", Sources: []string{"api-src"}})
			},
			second: &config.Config{},
			wantReport: config.ApplyReport{
				Sources:      changes{Deleted: []string{"app", "web"}},
				Destinations: changes{Deleted: []string{"hook"}},
			},
			check: func(t *testing.T, repo *config.Repo) {
				srcs, err := repo.ListSources(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				dsts, err := repo.ListDestinations(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(sourceIDs(srcs), []string{"api-src"}) || !slices.Equal(destinationIDs(dsts), []string{"api-dest"}) {
					t.Errorf("left sources %v and destinations %v, want only the API ones", sourceIDs(srcs), destinationIDs(dsts))
				}
			},
		},
		{
			name:  "a file destination may use an API source",
			first: baseFile(),
			api: func(t *testing.T, repo *config.Repo) {
				mustCreateSource(t, repo, config.Source{ID: "api-src"})
			},
			second: edit(baseFile(), func(c *config.Config) {
				c.Destinations[0].Sources = []string{"api-src"}
			}),
			wantReport: config.ApplyReport{
				Sources:      changes{Unchanged: []string{"web", "app"}},
				Destinations: changes{Updated: []string{"hook"}},
			},
		},
		{
			name:  "a source renamed in the file keeps its key",
			first: baseFile(),
			second: edit(baseFile(), func(c *config.Config) {
				c.Sources[0].ID = "shop"
				c.Destinations[0].Sources = []string{"shop", "app"}
			}),
			wantReport: config.ApplyReport{
				Sources:      changes{Created: []string{"shop"}, Unchanged: []string{"app"}, Deleted: []string{"web"}},
				Destinations: changes{Updated: []string{"hook"}},
			},
			check: func(t *testing.T, repo *config.Repo) {
				if shop := mustGetSource(t, repo, "shop"); shop.WriteKey != "web-file-key" {
					t.Errorf("shop = %+v, want web's key", shop)
				}
			},
		},
		{
			name:  "two sources swap keys",
			first: edit(baseFile(), func(c *config.Config) { c.Sources[1].WriteKey = "app-file-key" }),
			second: edit(baseFile(), func(c *config.Config) {
				c.Sources[0].WriteKey, c.Sources[1].WriteKey = "app-file-key", "web-file-key"
			}),
			wantReport: config.ApplyReport{
				Sources:      changes{Updated: []string{"web", "app"}},
				Destinations: changes{Unchanged: []string{"hook"}},
			},
		},
		{
			name:  "write key held by an API source",
			first: baseFile(),
			api: func(t *testing.T, repo *config.Repo) {
				mustCreateSource(t, repo, config.Source{ID: "api-src", WriteKey: "taken"})
			},
			second: edit(baseFile(), func(c *config.Config) {
				c.Sources = append(c.Sources, config.Source{ID: "new", Name: "new", WriteKey: "taken"})
			}),
			wantErr:   config.ErrConflict,
			wantInErr: []string{`"new"`, `"api-src"`},
		},
		{
			name:  "file declares an API source's id",
			first: baseFile(),
			api: func(t *testing.T, repo *config.Repo) {
				mustCreateSource(t, repo, config.Source{ID: "mobile"})
			},
			second: edit(baseFile(), func(c *config.Config) {
				c.Sources = append(c.Sources, config.Source{ID: "mobile", Name: "mobile"})
			}),
			wantErr:   config.ErrConflict,
			wantInErr: []string{`"mobile"`, "API"},
		},
		{
			name:  "file drops a source an API destination uses",
			first: baseFile(),
			api: func(t *testing.T, repo *config.Repo) {
				mustCreateDestination(t, repo, config.Destination{ID: "api-dest", Type: "webhook", Sources: []string{"app"}})
			},
			second: edit(baseFile(), func(c *config.Config) {
				c.Sources = c.Sources[:1]
				c.Destinations[0].Sources = []string{"web"}
			}),
			wantErr:   config.ErrConflict,
			wantInErr: []string{`"app"`, `"api-dest"`},
		},
		{
			name:  "destination names an unknown source",
			first: baseFile(),
			second: edit(baseFile(), func(c *config.Config) {
				c.Destinations[0].Sources = []string{"web", "ghost"}
			}),
			wantInErr: []string{"destinations[0].sources[1]", `"ghost"`},
		},
		{
			name: "invalid file",
			second: edit(baseFile(), func(c *config.Config) {
				c.Sources[1].ID = "web"
				c.Destinations[0].Type = ""
			}),
			wantInErr: []string{"sources[1].id", "destinations[0].type"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			storetest.Each(t, func(t *testing.T, db *store.DB) {
				ctx := t.Context()
				repo, clock := newRepo(db)
				if tt.first != nil {
					if _, err := repo.ApplyFile(ctx, tt.first); err != nil {
						t.Fatalf("applying the first file: %v", err)
					}
				}
				clock.Advance(time.Minute)
				if tt.api != nil {
					tt.api(t, repo)
				}
				clock.Advance(time.Minute)
				beforeSources, err := repo.ListSources(ctx)
				if err != nil {
					t.Fatal(err)
				}
				beforeDests, err := repo.ListDestinations(ctx)
				if err != nil {
					t.Fatal(err)
				}
				v := version(t, repo)

				rep, err := repo.ApplyFile(ctx, tt.second)
				if tt.wantErr != nil || tt.wantInErr != nil {
					if err == nil {
						t.Fatalf("ApplyFile succeeded with %+v, want an error", rep)
					}
					if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
						t.Errorf("error %v does not match %v", err, tt.wantErr)
					}
					if tt.wantErr == nil {
						if _, ok := errors.AsType[*config.ValidationError](err); !ok {
							t.Errorf("error %v is not a *ValidationError", err)
						}
					}
					for _, s := range tt.wantInErr {
						if !strings.Contains(err.Error(), s) {
							t.Errorf("error %q does not mention %s", err, s)
						}
					}
					afterSources, _ := repo.ListSources(ctx)
					afterDests, _ := repo.ListDestinations(ctx)
					if !reflect.DeepEqual(afterSources, beforeSources) || !reflect.DeepEqual(afterDests, beforeDests) || version(t, repo) != v {
						t.Errorf("a failed ApplyFile changed the workspace")
					}
					return
				}
				if err != nil {
					t.Fatalf("ApplyFile: %v", err)
				}
				if !reflect.DeepEqual(rep, tt.wantReport) {
					t.Errorf("report =\n%+v\nwant\n%+v", rep, tt.wantReport)
				}
				wantVersion := v
				if tt.wantReport.Changed() {
					wantVersion++
				}
				if got := version(t, repo); got != wantVersion {
					t.Errorf("config version went from %d to %d, want %d", v, got, wantVersion)
				}
				if tt.check != nil {
					tt.check(t, repo)
				}
				for _, id := range append(rep.Sources.Created, rep.Sources.Updated...) {
					if s := mustGetSource(t, repo, id); !s.UpdatedAt.Equal(clock.Now()) {
						t.Errorf("source %s UpdatedAt = %v, want %v", id, s.UpdatedAt, clock.Now())
					}
				}
				for _, id := range rep.Sources.Unchanged {
					if s := mustGetSource(t, repo, id); s.UpdatedAt.Equal(clock.Now()) {
						t.Errorf("unchanged source %s was touched", id)
					}
				}

				// Applying the same file again changes nothing.
				again, err := repo.ApplyFile(ctx, tt.second)
				if err != nil {
					t.Fatalf("applying the file again: %v", err)
				}
				if again.Changed() {
					t.Errorf("applying the same file again changed %+v", again)
				}
			})
		})
	}
}

// TestRepoConcurrentWrites rotates one source's key from several goroutines
// at once: every rotation must succeed and retire exactly one key, which
// needs writers to be serialised on both engines.
func TestRepoConcurrentWrites(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		repo := config.NewRepo(db) // the real clock: goroutines share it
		mustCreateSource(t, repo, config.Source{ID: "web"})
		v := version(t, repo)
		const writers, each = 6, 5
		var wg sync.WaitGroup
		errs := make(chan error, writers*each)
		for range writers {
			wg.Go(func() {
				for range each {
					_, err := repo.RotateWriteKey(ctx, "web", time.Hour)
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("concurrent RotateWriteKey: %v", err)
			}
		}
		if n := len(mustGetSource(t, repo, "web").RetiredKeys); n != writers*each {
			t.Errorf("%d retired keys, want %d", n, writers*each)
		}
		if got := version(t, repo); got != v+writers*each {
			t.Errorf("config version went from %d to %d, want +%d", v, got, writers*each)
		}
	})
}

// TestRepoListOrder checks that lists are ordered by the bytes of the ids on
// both engines, whatever PostgreSQL's collation.
func TestRepoListOrder(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		repo, _ := newRepo(db)
		ids := []string{"ab", "a_b", "a-c", "b", "a0", "a-b"}
		for _, id := range ids {
			mustCreateSource(t, repo, config.Source{ID: id})
		}
		mustCreateDestination(t, repo, config.Destination{ID: "a_b", Type: "webhook", Sources: ids})
		mustCreateDestination(t, repo, config.Destination{ID: "a-b", Type: "webhook"})
		want := slices.Sorted(slices.Values(ids))
		srcs, err := repo.ListSources(ctx)
		if err != nil {
			t.Fatalf("ListSources: %v", err)
		}
		if got := sourceIDs(srcs); !slices.Equal(got, want) {
			t.Errorf("ListSources ids = %v, want %v", got, want)
		}
		dsts, err := repo.ListDestinations(ctx)
		if err != nil {
			t.Fatalf("ListDestinations: %v", err)
		}
		if got := destinationIDs(dsts); !slices.Equal(got, []string{"a-b", "a_b"}) {
			t.Errorf("ListDestinations ids = %v, want [a-b a_b]", got)
		}
		if got := mustGetDestination(t, repo, "a_b").Sources; !slices.Equal(got, want) {
			t.Errorf("Sources = %v, want %v", got, want)
		}
	})
}
