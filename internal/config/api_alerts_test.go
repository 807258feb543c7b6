package config_test

import (
	"slices"
	"testing"

	"github.com/confluxcdp/conflux/internal/store"
	"github.com/confluxcdp/conflux/internal/store/storetest"
)

func TestConfigAPIAlerts(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := newAPI(t, db)
		mustCall := func(method, path, body string, want int) map[string]any {
			t.Helper()
			st, b := f.call(t, method, path, body)
			if st != want {
				t.Fatalf("%s %s %s: %d %v, want %d", method, path, body, st, b, want)
			}
			return b
		}
		mustCall("POST", "/api/v1/sources", `{"id":"web"}`, 201)
		mustCall("POST", "/api/v1/destinations", `{"id":"hook","type":"webhook","sources":["web"]}`, 201)

		a := mustCall("POST", "/api/v1/alerts", `{"id":"rate","destination":"hook","kind":"success_rate_below","threshold":0.95,"window":"15m",
			"notify":{"url":"https://h.example.com/a","headers":{"Authorization":"Bearer t"}}}`, 201)
		if a["name"] != "rate" || a["enabled"] != true || a["window"] != "15m" || a["min_events"] != 20.0 || a["origin"] != "api" {
			t.Errorf("created = %v", a)
		}
		if _, ok := a["state"]; ok {
			t.Errorf("created = %v: no state without AlertStates", a)
		}
		if live := f.mgr.Current().Alerts; len(live) != 1 || live[0].Threshold != 0.95 {
			t.Errorf("live alerts = %+v", live)
		}
		// Patch: absent fields kept, notify replaced whole, a new kind
		// takes its own min_events default.
		a = mustCall("PATCH", "/api/v1/alerts/rate", `{"kind":"discards_above","threshold":3,"notify":{"url":"https://h.example.com/b"}}`, 200)
		if a["kind"] != "discards_above" || a["threshold"] != 3.0 || a["window"] != "15m" || a["destination"] != "hook" || a["min_events"] != nil {
			t.Errorf("patched = %v", a)
		}
		if n, _ := a["notify"].(map[string]any); n["url"] != "https://h.example.com/b" || n["headers"] != nil {
			t.Errorf("patched notify = %v", n)
		}
		a = mustCall("PATCH", "/api/v1/alerts/rate", `{"kind":"discards_change","threshold":200,"destination":"","enabled":false}`, 200)
		if a["min_events"] != 20.0 || a["destination"] != nil || a["enabled"] != false {
			t.Errorf("patched to discards_change = %v", a)
		}
		mustCall("POST", "/api/v1/alerts", `{"id":"spike","kind":"discards_change","threshold":100,"window":"5m","min_events":4,"notify":{"url":"http://127.0.0.1:9/x"}}`, 201)
		list := mustCall("GET", "/api/v1/alerts", "", 200)
		if as, _ := list["alerts"].([]any); len(as) != 2 || as[0].(map[string]any)["id"] != "rate" {
			t.Errorf("list = %v", list)
		}
		mustCall("GET", "/api/v1/alerts/spike", "", 200)
		mustCall("POST", "/api/v1/alerts", `{"id":"on-hook","destination":"hook","kind":"discards_above","threshold":0,"window":"1m","notify":{"url":"https://h.example.com"}}`, 201)

		for _, tc := range []struct {
			name, method, path, body string
			status                   int
			code                     string
			fields                   []string
		}{
			{"no threshold", "POST", "/api/v1/alerts", `{"id":"x","kind":"success_rate_below","window":"5m","notify":{"url":"https://h.example.com"}}`,
				400, "validation_error", []string{"threshold"}},
			{"everything wrong", "POST", "/api/v1/alerts", `{"id":"Bad","kind":"nope","threshold":1,"window":"5s","notify":{"url":"ftp://x"}}`,
				400, "validation_error", []string{"id", "kind", "window", "notify.url"}},
			{"body and rule problems together", "POST", "/api/v1/alerts", `{"id":"x","kind":"success_rate_below","window":"5 min"}`,
				400, "validation_error", []string{"window", "threshold", "notify.url"}},
			{"rate out of range", "POST", "/api/v1/alerts", `{"id":"x","kind":"success_rate_below","threshold":95,"window":"5m","notify":{"url":"https://h.example.com"}}`,
				400, "validation_error", []string{"threshold"}},
			{"min_events on discards_above", "POST", "/api/v1/alerts", `{"id":"x","kind":"discards_above","threshold":1,"min_events":3,"window":"5m","notify":{"url":"https://h.example.com"}}`,
				400, "validation_error", []string{"min_events"}},
			{"bad header", "POST", "/api/v1/alerts", `{"id":"x","kind":"discards_above","threshold":1,"window":"5m","notify":{"url":"https://h.example.com","headers":{"A B":"c"}}}`,
				400, "validation_error", []string{"notify.headers.A B"}},
			{"missing destination", "POST", "/api/v1/alerts", `{"id":"x","destination":"nope","kind":"discards_above","threshold":1,"window":"5m","notify":{"url":"https://h.example.com"}}`,
				400, "validation_error", []string{"destination"}},
			{"reserved id", "POST", "/api/v1/alerts", `{"id":"events","kind":"discards_above","threshold":1,"window":"5m","notify":{"url":"https://h.example.com"}}`,
				400, "validation_error", []string{"id"}},
			{"taken id", "POST", "/api/v1/alerts", `{"id":"spike","kind":"discards_above","threshold":1,"window":"5m","notify":{"url":"https://h.example.com"}}`,
				409, "conflict", nil},
			{"unknown field", "POST", "/api/v1/alerts", `{"id":"x","treshold":1}`, 400, "invalid_json", nil},
			{"unknown notify field", "POST", "/api/v1/alerts", `{"id":"x","notify":{"urls":"x"}}`, 400, "invalid_json", nil},
			{"threshold of the wrong type", "POST", "/api/v1/alerts", `{"id":"x","threshold":"high"}`, 400, "invalid_json", nil},
			{"patch id", "PATCH", "/api/v1/alerts/spike", `{"id":"other"}`, 400, "validation_error", nil},
			{"patch out of range", "PATCH", "/api/v1/alerts/spike", `{"window":"48h","min_events":0}`, 400, "validation_error", []string{"window"}},
			{"patch bad window", "PATCH", "/api/v1/alerts/spike", `{"window":5}`, 400, "validation_error", []string{"window"}},
			{"get missing", "GET", "/api/v1/alerts/nope", ``, 404, "not_found", nil},
			{"patch missing", "PATCH", "/api/v1/alerts/nope", `{}`, 404, "not_found", nil},
			{"delete missing", "DELETE", "/api/v1/alerts/nope", ``, 404, "not_found", nil},
			{"delete a watched destination", "DELETE", "/api/v1/destinations/hook", ``, 409, "conflict", nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				st, b := f.call(t, tc.method, tc.path, tc.body)
				if st != tc.status || code(b) != tc.code {
					t.Fatalf("%d %v, want %d %s", st, b, tc.status, tc.code)
				}
				if got := fieldPaths(b); tc.fields != nil && !slices.Equal(got, tc.fields) {
					t.Errorf("fields %v, want %v (%v)", got, tc.fields, b)
				}
			})
		}
		// A patch of min_events 0 resets it to the default.
		if a := mustCall("PATCH", "/api/v1/alerts/spike", `{"min_events":0}`, 200); a["min_events"] != 20.0 {
			t.Errorf("min_events reset = %v", a)
		}
		if st, _ := f.call(t, "GET", "/api/v1/alerts", "", "wrong-token"); st != 401 {
			t.Errorf("a wrong token: %d", st)
		}
		mustCall("DELETE", "/api/v1/alerts/rate", "", 204)
		mustCall("DELETE", "/api/v1/alerts/spike", "", 204)
		mustCall("DELETE", "/api/v1/alerts/on-hook", "", 204)
		mustCall("DELETE", "/api/v1/destinations/hook", "", 204)
		if b := mustCall("GET", "/api/v1/alerts", "", 200); len(b["alerts"].([]any)) != 0 {
			t.Errorf("list after deletes = %v", b)
		}
		if live := f.mgr.Current().Alerts; len(live) != 0 {
			t.Errorf("live alerts after deletes = %+v", live)
		}
	})
}
