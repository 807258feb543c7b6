package config_test

import (
	"errors"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/aggregate/identity"
	"github.com/confluxcdp/conflux/internal/config"
	"github.com/confluxcdp/conflux/internal/store"
	"github.com/confluxcdp/conflux/internal/store/storetest"
)

// phoneRules declares a custom type whose "x-phone" is blocked.
var phoneRules = identity.Settings{
	Identifiers:   []identity.IdentifierRule{{Type: "phone", Limit: 2, Frame: identity.FrameAnnually, BlockedValues: []string{"x-phone"}}},
	BlockedValues: []string{"nobody"},
	MaxMerges:     10,
}

func identitySettings(t *testing.T, repo *config.Repo) (identity.Settings, string) {
	t.Helper()
	s, origin, _, err := repo.IdentitySettings(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return s, origin
}

func TestRepoIdentitySettings(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		repo, clock := newRepo(db)
		if s, origin, at, err := repo.IdentitySettings(ctx); err != nil || !reflect.DeepEqual(s, identity.Settings{}) || origin != config.OriginDefault || !at.IsZero() {
			t.Fatalf("no settings: %+v %q %v %v", s, origin, at, err)
		}

		v := version(t, repo)
		if err := repo.SetIdentitySettings(ctx, phoneRules); err != nil {
			t.Fatal(err)
		}
		if version(t, repo) != v+1 {
			t.Error("setting did not bump the config version")
		}
		s, origin, at, err := repo.IdentitySettings(ctx)
		if err != nil || !reflect.DeepEqual(s, phoneRules) || origin != config.OriginAPI || !at.Equal(t0) {
			t.Errorf("after set: %+v %q %v %v", s, origin, at, err)
		}

		// The same settings again, or with an empty list for none, change
		// nothing.
		clock.Advance(time.Minute)
		v = version(t, repo)
		same := phoneRules
		same.Identifiers = slices.Clone(phoneRules.Identifiers)
		if err := repo.SetIdentitySettings(ctx, same); err != nil || version(t, repo) != v {
			t.Errorf("a no-op set: %v, version %d → %d", err, v, version(t, repo))
		}
		if err := repo.SetIdentitySettings(ctx, identity.Settings{Identifiers: []identity.IdentifierRule{}}); err != nil {
			t.Fatal(err)
		}
		if err := repo.SetIdentitySettings(ctx, identity.Settings{}); err != nil || version(t, repo) != v+1 {
			t.Errorf("{} after identifiers []: %v, version %d → %d", err, v, version(t, repo))
		}

		// [] is kept apart from nil: it blocks nothing.
		none := identity.Settings{BlockedValues: []string{}, BlockedPatterns: []string{}}
		if err := repo.SetIdentitySettings(ctx, none); err != nil {
			t.Fatal(err)
		}
		if s, _ := identitySettings(t, repo); s.BlockedValues == nil || s.BlockedPatterns == nil {
			t.Errorf("empty lists read back as %+v", s)
		}

		// Problems, each at its path; nothing is stored.
		v = version(t, repo)
		bad := identity.Settings{Identifiers: []identity.IdentifierRule{{Type: "phone", Frame: "hourly"}}, MaxMerges: -1}
		err = repo.SetIdentitySettings(ctx, bad)
		wantFieldError(t, err, "identifiers[0].frame")
		wantFieldError(t, err, "max_merges")
		if version(t, repo) != v {
			t.Error("a refused set bumped the config version")
		}

		// Reset: back to the defaults, once.
		if err := repo.ResetIdentitySettings(ctx); err != nil || version(t, repo) != v+1 {
			t.Errorf("reset: %v, version %d → %d", err, v, version(t, repo))
		}
		if s, origin := identitySettings(t, repo); !reflect.DeepEqual(s, identity.Settings{}) || origin != config.OriginDefault {
			t.Errorf("after reset: %+v %q", s, origin)
		}
		if err := repo.ResetIdentitySettings(ctx); err != nil || version(t, repo) != v+1 {
			t.Errorf("a second reset: %v, version %d → %d", err, v, version(t, repo))
		}
	})
}

// identityYAML is a config file whose identity block limits phone to n.
func identityYAML(n int) string {
	return "identity:\n  identifiers:\n    - {type: phone, limit: " + strconv.Itoa(n) + ", blocked_values: [x-phone]}\n"
}

func TestRepoApplyFileIdentity(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		repo, _ := newRepo(db)
		mgr := config.NewManager(repo, config.Settings{}, nil)
		setAPI := func(t *testing.T) {
			if err := repo.SetIdentitySettings(ctx, phoneRules); err != nil {
				t.Fatal(err)
			}
		}
		reset := func(t *testing.T) {
			if err := repo.ResetIdentitySettings(ctx); err != nil {
				t.Fatal(err)
			}
		}
		limit := func(n int) identity.Settings {
			return identity.Settings{Identifiers: []identity.IdentifierRule{{Type: "phone", Limit: n, BlockedValues: []string{"x-phone"}}}}
		}
		const (
			created   = "created"
			updated   = "updated"
			deleted   = "deleted"
			unchanged = "unchanged"
		)
		for _, step := range []struct {
			name   string
			api    func(t *testing.T) // run before the file is applied
			file   string
			report string // "" for no entry
			want   identity.Settings
			origin string
		}{
			{name: "declared", file: identityYAML(2), report: created, want: limit(2), origin: config.OriginFile},
			{name: "same file", file: identityYAML(2), report: unchanged, want: limit(2), origin: config.OriginFile},
			{name: "API change stands", api: setAPI, file: identityYAML(2), report: unchanged, want: phoneRules, origin: config.OriginAPI},
			{name: "API reset stands", api: reset, file: identityYAML(2), report: unchanged, want: identity.Settings{}, origin: config.OriginDefault},
			{name: "changed after a reset", file: identityYAML(3), report: created, want: limit(3), origin: config.OriginFile},
			{name: "file change wins", api: setAPI, file: identityYAML(4), report: updated, want: limit(4), origin: config.OriginFile},
			{name: "no longer declared", file: "", report: deleted, want: identity.Settings{}, origin: config.OriginDefault},
			{name: "API settings without a file", api: setAPI, file: "", want: phoneRules, origin: config.OriginAPI},
			{name: "declared over API settings", file: identityYAML(4), report: updated, want: limit(4), origin: config.OriginFile},
			{name: "API settings outlive the block", api: setAPI, file: "", want: phoneRules, origin: config.OriginAPI},
			{name: "declared again as before", file: identityYAML(4), report: updated, want: limit(4), origin: config.OriginFile},
			{name: "reset, then dropped", api: reset, file: "", want: identity.Settings{}, origin: config.OriginDefault},
			{name: "declared again after", file: identityYAML(4), report: created, want: limit(4), origin: config.OriginFile},
		} {
			if step.api != nil {
				step.api(t)
			}
			cfg, err := config.Parse("conflux.yaml", []byte(step.file))
			if err != nil {
				t.Fatalf("%s: %v", step.name, err)
			}
			v := version(t, repo)
			rep, err := repo.ApplyFile(ctx, cfg)
			if err != nil {
				t.Fatalf("%s: ApplyFile: %v", step.name, err)
			}
			got := map[string][]string{created: rep.Identity.Created, updated: rep.Identity.Updated, deleted: rep.Identity.Deleted, unchanged: rep.Identity.Unchanged}
			for what, ids := range got {
				if want := what == step.report; want != slices.Equal(ids, []string{"identity"}) || !want && len(ids) > 0 {
					t.Errorf("%s: report %+v, want identity %s", step.name, rep.Identity, step.report)
				}
			}
			wantChange := step.report == created || step.report == updated || step.report == deleted
			if rep.Changed() != wantChange || (version(t, repo) != v) != wantChange {
				t.Errorf("%s: Changed %v, version %d → %d; want a change: %v", step.name, rep.Changed(), v, version(t, repo), wantChange)
			}
			if s, origin := identitySettings(t, repo); !reflect.DeepEqual(s, step.want) || origin != step.origin {
				t.Errorf("%s: stored %+v %q, want %+v %q", step.name, s, origin, step.want, step.origin)
			}
			if err := mgr.Reload(ctx); err != nil {
				t.Fatal(err)
			}
			ws := mgr.Current()
			if !reflect.DeepEqual(ws.IdentitySettings, step.want) || ws.Identity.Blocked("phone", "x-phone") == (step.origin == config.OriginDefault) {
				t.Errorf("%s: live settings %+v", step.name, ws.IdentitySettings)
			}
		}

		// A Config built in code is checked too, and nothing is written.
		v := version(t, repo)
		bad := &config.Config{Identity: &identity.Settings{Identifiers: []identity.IdentifierRule{{Type: "phone", Frame: "hourly"}}}}
		_, err := repo.ApplyFile(ctx, bad)
		wantFieldError(t, err, "identity.identifiers[0].frame")
		if version(t, repo) != v {
			t.Error("a refused file bumped the config version")
		}
	})
}

// TestWorkspaceIdentity: the snapshot compiles the stored settings, and
// falls back to the defaults, with a problem, when they do not compile.
func TestWorkspaceIdentity(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		repo, _ := newRepo(db)
		profiles := config.Profiles{SpaceID: "prod", AccessToken: "profiles-token-0123456789", RateLimit: 5}
		mgr := config.NewManager(repo, config.Settings{Profiles: profiles}, nil)
		if err := mgr.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		ws := mgr.Current()
		if ws.Identity == nil || !ws.Identity.Blocked("email", "anonymous") || len(ws.Problems()) != 0 {
			t.Errorf("no settings: Identity %v, problems %v", ws.Identity, ws.Problems())
		}
		want := profiles
		want.EventRetention = config.DefaultEventRetention
		if ws.Profiles != want {
			t.Errorf("Profiles = %+v, want %+v", ws.Profiles, want)
		}

		if err := repo.SetIdentitySettings(ctx, phoneRules); err != nil {
			t.Fatal(err)
		}
		if err := mgr.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		if ws := mgr.Current(); !ws.Identity.Blocked("phone", "x-phone") || !ws.Identity.Blocked("email", "nobody") || ws.Identity.Blocked("email", "anonymous") {
			t.Error("the stored settings are not live")
		}

		// Settings stored by a version that knew another frame.
		if _, err := db.SQL().ExecContext(ctx, `UPDATE identity_settings SET settings = '{"identifiers":[{"type":"phone","frame":"hourly"}]}'`); err != nil {
			t.Fatal(err)
		}
		if _, err := db.SQL().ExecContext(ctx, `UPDATE config_version SET version = version + 1`); err != nil {
			t.Fatal(err)
		}
		if err := mgr.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		ws = mgr.Current()
		if ws.Identity == nil || !ws.Identity.Blocked("email", "anonymous") || ws.Identity.Blocked("phone", "x-phone") {
			t.Error("settings that do not compile: want the defaults")
		}
		if p := ws.Problems(); len(p) != 1 || !strings.Contains(p[0].Error(), "identity settings do not compile") {
			t.Errorf("problems = %v", p)
		}

		// Settings that do not decode are an error, not a silent default.
		if _, err := db.SQL().ExecContext(ctx, `UPDATE identity_settings SET settings = '{"max_merges":"many"}'`); err != nil {
			t.Fatal(err)
		}
		if _, _, _, err := repo.IdentitySettings(ctx); err == nil || errors.Is(err, config.ErrNotFound) {
			t.Errorf("undecodable settings: err = %v", err)
		}
	})
}
