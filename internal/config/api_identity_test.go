package config_test

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/aggregate/identity"
	"github.com/confluxcdp/conflux/internal/store"
	"github.com/confluxcdp/conflux/internal/store/storetest"
)

// defaultTypes are the default identifier types in the order "effective"
// lists them.
var defaultTypes = []string{
	"user_id", "email", "anonymous_id", "android.id", "ios.id", "android.idfa", "ios.idfa",
	"android.push_token", "ios.push_token", "ga_client_id", "cross_domain_id", "braze_id",
}

// effectiveRules indexes the identifiers of an answer's "effective" by
// type, and returns their types in order.
func effectiveRules(t *testing.T, body map[string]any) (map[string]map[string]any, []string) {
	t.Helper()
	eff, _ := body["effective"].(map[string]any)
	list, _ := eff["identifiers"].([]any)
	rules := map[string]map[string]any{}
	var types []string
	for _, item := range list {
		r := item.(map[string]any)
		rules[r["type"].(string)] = r
		types = append(types, r["type"].(string))
	}
	return rules, types
}

func TestConfigAPIIdentity(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := newAPI(t, db)
		mustCall := func(method, body string, want int) map[string]any {
			t.Helper()
			st, b := f.call(t, method, "/api/v1/identity/settings", body)
			if st != want {
				t.Fatalf("%s %s: %d %v, want %d", method, body, st, b, want)
			}
			return b
		}
		wantDefaults := func(b map[string]any) {
			t.Helper()
			if s, _ := b["settings"].(map[string]any); s == nil || len(s) != 0 || b["origin"] != "default" || b["updated_at"] != nil {
				t.Errorf("defaults answered as %v", b)
			}
			rules, types := effectiveRules(t, b)
			if !slices.Equal(types, defaultTypes) {
				t.Errorf("effective types = %v", types)
			}
			for typ, want := range map[string]map[string]any{
				"user_id":      {"limit": 1.0, "frame": "ever", "priority": 1.0, "collection": "users"},
				"email":        {"limit": 5.0, "frame": "annually", "priority": 2.0, "collection": "users"},
				"anonymous_id": {"limit": 5.0, "frame": "weekly", "collection": "users"},
				"braze_id":     {"limit": 5.0, "frame": "annually", "collection": "users"},
			} {
				want["type"] = typ
				if !reflect.DeepEqual(rules[typ], want) {
					t.Errorf("effective %s = %v, want %v", typ, rules[typ], want)
				}
			}
			eff := b["effective"].(map[string]any)
			if eff["max_merges"] != 100.0 || eff["max_mappings"] != 1000.0 ||
				!slices.Contains(eff["blocked_values"].([]any), "anonymous") || len(eff["blocked_patterns"].([]any)) != 1 {
				t.Errorf("effective = %v", eff)
			}
		}

		wantDefaults(mustCall("GET", "", 200))

		put := `{"identifiers":[{"type":"user_id","limit":2},{"type":"phone","frame":"monthly","priority":3,"blocked_values":["000"]}],
			"blocked_values":[],"max_merges":7}`
		b := mustCall("PUT", put, 200)
		if b["origin"] != "api" {
			t.Errorf("origin = %v", b["origin"])
		}
		if at, err := time.Parse(time.RFC3339, b["updated_at"].(string)); err != nil || time.Since(at) > time.Minute {
			t.Errorf("updated_at = %v (%v)", b["updated_at"], err)
		}
		s := b["settings"].(map[string]any)
		if ids := s["identifiers"].([]any); len(ids) != 2 || s["max_merges"] != 7.0 || s["blocked_values"] == nil || s["blocked_patterns"] != nil {
			t.Errorf("settings = %v", s)
		}
		rules, types := effectiveRules(t, b)
		if !slices.Equal(types, append(slices.Clone(defaultTypes), "phone")) {
			t.Errorf("effective types = %v", types)
		}
		if r := rules["user_id"]; r["limit"] != 2.0 || r["frame"] != "ever" || r["priority"] != 1.0 {
			t.Errorf("effective user_id = %v", r)
		}
		if r := rules["phone"]; r["limit"] != 5.0 || r["frame"] != "monthly" || r["priority"] != 3.0 || r["collection"] != "users" || len(r["blocked_values"].([]any)) != 1 {
			t.Errorf("effective phone = %v", r)
		}
		if eff := b["effective"].(map[string]any); len(eff["blocked_values"].([]any)) != 0 || eff["max_merges"] != 7.0 || eff["max_mappings"] != 1000.0 {
			t.Errorf("effective = %v", eff)
		}
		if got := mustCall("GET", "", 200); !reflect.DeepEqual(got, b) {
			t.Errorf("GET = %v, want what PUT answered: %v", got, b)
		}
		ws := f.mgr.Current()
		if len(ws.IdentitySettings.Identifiers) != 2 || ws.Identity.Blocked("email", "anonymous") || !ws.Identity.Blocked("phone", "000") {
			t.Errorf("not live: %+v", ws.IdentitySettings)
		}

		for _, tc := range []struct {
			name, method, body string
			status             int
			code               string
			fields             []string
		}{
			{"problems", "PUT", `{"identifiers":[{"type":"phone","frame":"hourly"},{"type":"group_id"}],"max_merges":-1}`,
				400, "validation_error", []string{"max_merges", "identifiers[0].frame", "identifiers[1].type"}},
			{"bad pattern", "PUT", `{"identifiers":[{"type":"phone","blocked_patterns":["("]}],"blocked_patterns":["ok","["]}`,
				400, "validation_error", []string{"blocked_patterns[1]", "identifiers[0].blocked_patterns[0]"}},
			{"unknown field", "PUT", `{"max_merge":3}`, 400, "invalid_json", nil},
			{"unknown identifier field", "PUT", `{"identifiers":[{"type":"phone","limits":2}]}`, 400, "invalid_json", nil},
			{"wrong type", "PUT", `{"max_merges":"7"}`, 400, "invalid_json", nil},
			{"empty body", "PUT", ``, 400, "invalid_json", nil},
			{"trailing data", "PUT", `{} {}`, 400, "invalid_json", nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				st, b := f.call(t, tc.method, "/api/v1/identity/settings", tc.body)
				if st != tc.status || code(b) != tc.code {
					t.Fatalf("%d %v, want %d %s", st, b, tc.status, tc.code)
				}
				if got := fieldPaths(b); tc.fields != nil && !slices.Equal(got, tc.fields) {
					t.Errorf("fields %v, want %v (%v)", got, tc.fields, b)
				}
			})
		}
		if got := f.mgr.Current().IdentitySettings.MaxMerges; got != 7 {
			t.Errorf("a refused PUT changed the live settings: max_merges %d", got)
		}

		for _, method := range []string{"GET", "PUT", "DELETE"} {
			if st, b := f.call(t, method, "/api/v1/identity/settings", `{}`, ""); st != 401 || code(b) != "unauthorized" {
				t.Errorf("%s without a token: %d %v", method, st, b)
			}
			if st, _ := f.call(t, method, "/api/v1/identity/settings", `{}`, "wrong-token"); st != 401 {
				t.Errorf("%s with a wrong token: %d", method, st)
			}
		}
		if f.mgr.Current().IdentitySettings.MaxMerges != 7 {
			t.Error("an unauthorized call changed the settings")
		}

		wantDefaults(mustCall("DELETE", "", 200))
		if ws := f.mgr.Current(); !reflect.DeepEqual(ws.IdentitySettings, identity.Settings{}) || !ws.Identity.Blocked("email", "anonymous") {
			t.Errorf("reset not live: %+v", ws.IdentitySettings)
		}
		wantDefaults(mustCall("DELETE", "", 200))
	})
}

// TestIdentityEffective: the effective settings are valid, say the same
// as the settings they come from, and are their own effective settings.
func TestIdentityEffective(t *testing.T) {
	for _, s := range []identity.Settings{
		{},
		phoneRules,
		{Identifiers: []identity.IdentifierRule{{Type: "email", Priority: 1}, {Type: "team", Collection: identity.Accounts}}, BlockedPatterns: []string{}},
	} {
		eff := s.Effective()
		if p := eff.Check(); p != nil {
			t.Errorf("Effective(%+v) has problems: %v", s, p)
		}
		if again := eff.Effective(); !reflect.DeepEqual(again, eff) {
			t.Errorf("Effective is not idempotent:\n%+v\n%+v", eff, again)
		}
		a, err := s.Compile()
		if err != nil {
			t.Fatal(err)
		}
		b, err := eff.Compile()
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range []struct{ typ, value string }{
			{"email", "null"}, {"email", "a@b.c"}, {"user_id", "0000"}, {"phone", "x-phone"}, {"team", "unknown"}, {"ios.idfa", "00000000-0000"},
		} {
			if a.Blocked(id.typ, id.value) != b.Blocked(id.typ, id.value) {
				t.Errorf("%+v: Blocked(%s, %s) differs once effective", s, id.typ, id.value)
			}
		}
	}
}
