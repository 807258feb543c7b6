package config_test

import (
	"slices"
	"testing"

	"github.com/confluxcdp/conflux/internal/process/plan"
	"github.com/confluxcdp/conflux/internal/store"
	"github.com/confluxcdp/conflux/internal/store/storetest"
)

// fieldPaths returns the paths of a validation error body's fields.
func fieldPaths(body map[string]any) []string {
	e, _ := body["error"].(map[string]any)
	fields, _ := e["fields"].([]any)
	var paths []string
	for _, f := range fields {
		p, _ := f.(map[string]any)["path"].(string)
		paths = append(paths, p)
	}
	return paths
}

func TestConfigAPIRules(t *testing.T) {
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
		mustCall("POST", "/api/v1/sources", `{"id":"protocols"}`, 201)

		// Tracking plans.
		p := mustCall("POST", "/api/v1/tracking-plans", `{"id":"web-plan","name":"Web","rules":{"events":{"Order Completed":`+orderRule+`},"identify":{"type":"object"}}}`, 201)
		rules, _ := p["rules"].(map[string]any)
		events, _ := rules["events"].(map[string]any)
		if p["origin"] != "api" || events["Order Completed"] == nil || rules["identify"] == nil || rules["group"] != nil {
			t.Fatalf("created plan = %v", p)
		}
		p = mustCall("PATCH", "/api/v1/tracking-plans/web-plan", `{"name":"Web 2"}`, 200)
		if rules, _ := p["rules"].(map[string]any); p["name"] != "Web 2" || rules["identify"] == nil {
			t.Errorf("patched name: %v, want the rules kept", p)
		}
		if b := mustCall("GET", "/api/v1/tracking-plans", "", 200); len(b["tracking_plans"].([]any)) != 1 {
			t.Errorf("list = %v", b)
		}
		mustCall("GET", "/api/v1/tracking-plans/web-plan", "", 200)

		// Sources use it, with a schema block; the change is live.
		s := mustCall("POST", "/api/v1/sources", `{"id":"web","tracking_plan":"web-plan","schema":{"track_unplanned_events":"block","forward_blocked_to":"protocols"}}`, 201)
		if s["tracking_plan"] != "web-plan" || s["schema"].(map[string]any)["track_unplanned_events"] != "block" {
			t.Fatalf("created source = %v", s)
		}
		if r := f.mgr.Current().SourceRules("web"); r.Plan == nil || r.Enforcement.TrackUnplannedEvents != plan.Block || r.ForwardBlockedTo != "protocols" {
			t.Errorf("live rules of web = %+v", r)
		}
		s = mustCall("PATCH", "/api/v1/sources/web", `{"schema":{"common_violations":"omit","track_unplanned_events":""}}`, 200)
		if sc := s["schema"].(map[string]any); sc["track_unplanned_events"] != "" || sc["common_violations"] != "omit" ||
			sc["forward_blocked_to"] != "protocols" || s["tracking_plan"] != "web-plan" {
			t.Errorf("patched schema: %v, want the two controls set, the forward and the plan kept", s)
		}

		for _, tc := range []struct {
			method, path, body string
			status             int
			code               string
			fields             []string
		}{
			{"POST", "/api/v1/tracking-plans", `{"id":"bad","rules":{"events":{"Order Completed":{"type":"objekt"}},"common":{"required":"x"}}}`, 400, "validation_error",
				[]string{"rules.common", "rules.events.Order Completed"}},
			{"POST", "/api/v1/tracking-plans", `{"id":"bad","rules":{"identify":"email"}}`, 400, "validation_error", []string{"rules.identify"}},
			{"POST", "/api/v1/tracking-plans", `{"id":"Bad Id"}`, 400, "validation_error", []string{"id"}},
			{"POST", "/api/v1/tracking-plans", `{"id":"web-plan"}`, 409, "conflict", nil},
			{"POST", "/api/v1/tracking-plans", `{"id":"x","rules":{"evnets":{}}}`, 400, "invalid_json", nil},
			{"PATCH", "/api/v1/tracking-plans/web-plan", `{"id":"other"}`, 400, "validation_error", nil},
			{"PATCH", "/api/v1/tracking-plans/web-plan", `{"rules":{"group":{"type":7}}}`, 400, "validation_error", []string{"rules.group"}},
			{"GET", "/api/v1/tracking-plans/nope", ``, 404, "not_found", nil},
			{"PATCH", "/api/v1/tracking-plans/nope", `{}`, 404, "not_found", nil},
			{"DELETE", "/api/v1/tracking-plans/nope", ``, 404, "not_found", nil},
			{"DELETE", "/api/v1/tracking-plans/web-plan", ``, 409, "conflict", nil},
			{"POST", "/api/v1/sources", `{"id":"x","tracking_plan":"nope"}`, 400, "validation_error", []string{"tracking_plan"}},
			{"POST", "/api/v1/sources", `{"id":"x","schema":{"track_violations":"omit"}}`, 400, "validation_error", []string{"schema.track_violations"}},
			{"POST", "/api/v1/sources", `{"id":"x","schema":{"forward_blocked_to":"x"}}`, 400, "validation_error", []string{"schema.forward_blocked_to"}},
			{"POST", "/api/v1/sources", `{"id":"x","schema":{"track_unplanned_event":"block"}}`, 400, "invalid_json", nil},
			{"PATCH", "/api/v1/sources/web", `{"schema":{"forward_violations_to":"nope"}}`, 400, "validation_error", []string{"schema.forward_violations_to"}},
			{"PATCH", "/api/v1/sources/web", `{"schema":{"track_unplanned_event":"block"}}`, 400, "invalid_json", nil},
			{"PATCH", "/api/v1/sources/web", `{"schema":["block"]}`, 400, "invalid_json", nil},
			{"DELETE", "/api/v1/sources/protocols", ``, 409, "conflict", nil},
		} {
			st, b := f.call(t, tc.method, tc.path, tc.body)
			if st != tc.status || code(b) != tc.code {
				t.Errorf("%s %s %s: %d %v, want %d %s", tc.method, tc.path, tc.body, st, b, tc.status, tc.code)
				continue
			}
			if got := fieldPaths(b); tc.fields != nil && !slices.Equal(got, tc.fields) {
				t.Errorf("%s %s %s: fields %v, want %v", tc.method, tc.path, tc.body, got, tc.fields)
			}
		}

		// Destinations with filters.
		d := mustCall("POST", "/api/v1/destinations", `{"id":"hook","type":"webhook","sources":["web"],"filters":[
			{"id":"no-b","if":"event = 'B'","actions":[{"type":"drop_event"}]},
			{"if":"all","actions":[{"type":"blocklist_fields","fields":{"properties":["email"]}}]}]}`, 201)
		if fs, _ := d["filters"].([]any); len(fs) != 2 {
			t.Fatalf("created destination = %v, want 2 filters", d)
		}
		if r := f.mgr.Current().DestinationRules("hook", "web"); r.Filters.Len() != 2 {
			t.Errorf("live filters of hook = %d, want 2", r.Filters.Len())
		}
		d = mustCall("PATCH", "/api/v1/destinations/hook", `{"filters":[{"if":"all","actions":[{"type":"sample_event","percent":0.5}]}]}`, 200)
		if fs, _ := d["filters"].([]any); len(fs) != 1 || d["type"] != "webhook" {
			t.Errorf("patched filters: %v, want the list replaced", d)
		}
		if st, b := f.call(t, "PATCH", "/api/v1/destinations/hook", `{"filters":[{"if":"all","actions":[{"type":"sample_event","percent":2}]}]}`); st != 400 ||
			!slices.Equal(fieldPaths(b), []string{"filters[0].actions[0].percent"}) {
			t.Errorf("bad filter: %d %v", st, b)
		}
		if b := mustCall("GET", "/api/v1/destinations/bare-check-not-found", "", 404); code(b) != "not_found" {
			t.Errorf("unknown destination: %v", b)
		}

		// Transformations.
		tr := mustCall("POST", "/api/v1/transformations", `{"id":"t1","source":"web","if":"event = 'A'","newEventName":"B"}`, 201)
		if tr["enabled"] != true || tr["origin"] != "api" || tr["source"] != "web" {
			t.Fatalf("created transformation = %v", tr)
		}
		mustCall("POST", "/api/v1/transformations", `{"id":"t0","source":"web","destination":"hook","if":"all",
			"fqlDefinedProperties":[{"fql":"lowercase(properties.email)","propertyName":"properties.email"}]}`, 201)
		list := mustCall("GET", "/api/v1/transformations", "", 200)["transformations"].([]any)
		if len(list) != 2 || list[0].(map[string]any)["id"] != "t1" {
			t.Errorf("list = %v, want t1 then t0 (creation order)", list)
		}
		tr = mustCall("PATCH", "/api/v1/transformations/t1", `{"enabled":false,"propertyDrops":["debug"]}`, 200)
		if tr["enabled"] != false || tr["newEventName"] != "B" || tr["if"] != "event = 'A'" {
			t.Errorf("patched transformation = %v, want the other fields kept", tr)
		}
		ws := f.mgr.Current()
		if n := len(ws.SourceRules("web").Transformations); n != 0 {
			t.Errorf("web has %d live source-scoped transformations, want 0 (t1 is disabled)", n)
		}
		if n := len(ws.DestinationRules("hook", "web").Transformations); n != 1 {
			t.Errorf("hook has %d live transformations for web, want t0", n)
		}
		mustCall("PATCH", "/api/v1/transformations/t0", `{"destination":""}`, 200)
		if n := len(f.mgr.Current().SourceRules("web").Transformations); n != 1 {
			t.Errorf("after making t0 source-scoped, web has %d transformations, want 1", n)
		}

		for _, tc := range []struct {
			method, path, body string
			status             int
			code               string
			fields             []string
		}{
			{"POST", "/api/v1/transformations", `{"id":"bad","source":"web","if":"all","fqlDefinedProperties":[{"fql":"lowercase(","propertyName":"properties.x"}]}`, 400, "validation_error",
				[]string{"fqlDefinedProperties[0].fql"}},
			{"POST", "/api/v1/transformations", `{"id":"bad","source":"web","if":"all","propertyValueTransformations":[{"propertyPaths":["userId"],"propertyValue":"x"}]}`, 400, "validation_error",
				[]string{"propertyValueTransformations[0].propertyPaths[0]"}},
			{"POST", "/api/v1/transformations", `{"id":"bad","source":"nope","if":"all","newEventName":"X"}`, 400, "validation_error", []string{"source"}},
			{"POST", "/api/v1/transformations", `{"id":"bad","source":"web","destination":"nope","if":"all","newEventName":"X"}`, 400, "validation_error", []string{"destination"}},
			{"POST", "/api/v1/transformations", `{"id":"bad","if":"all","newEventName":"X"}`, 400, "validation_error", []string{"source"}},
			{"POST", "/api/v1/transformations", `{"id":"t1","source":"web","if":"all","newEventName":"X"}`, 409, "conflict", nil},
			{"POST", "/api/v1/transformations", `{"id":"x","source":"web","if":"all","propertyRenames":[{"old":"a","newName":"b"}]}`, 400, "invalid_json", nil},
			{"PATCH", "/api/v1/transformations/t1", `{"id":"other"}`, 400, "validation_error", nil},
			{"PATCH", "/api/v1/transformations/t1", `{"if":"event ="}`, 400, "validation_error", []string{"if"}},
			{"GET", "/api/v1/transformations/nope", ``, 404, "not_found", nil},
			{"PATCH", "/api/v1/transformations/nope", `{}`, 404, "not_found", nil},
			{"DELETE", "/api/v1/transformations/nope", ``, 404, "not_found", nil},
		} {
			st, b := f.call(t, tc.method, tc.path, tc.body)
			if st != tc.status || code(b) != tc.code {
				t.Errorf("%s %s %s: %d %v, want %d %s", tc.method, tc.path, tc.body, st, b, tc.status, tc.code)
				continue
			}
			if got := fieldPaths(b); tc.fields != nil && !slices.Equal(got, tc.fields) {
				t.Errorf("%s %s %s: fields %v, want %v", tc.method, tc.path, tc.body, got, tc.fields)
			}
		}

		// Deleting what others use: 409, then fine once unused.
		mustCall("PATCH", "/api/v1/transformations/t0", `{"destination":"hook"}`, 200)
		mustCall("DELETE", "/api/v1/destinations/hook", "", 409)
		mustCall("DELETE", "/api/v1/transformations/t0", "", 204)
		mustCall("DELETE", "/api/v1/destinations/hook", "", 204)
		mustCall("DELETE", "/api/v1/transformations/t1", "", 204)
		mustCall("GET", "/api/v1/transformations/t1", "", 404)
		s = mustCall("PATCH", "/api/v1/sources/web", `{"tracking_plan":"","schema":null}`, 200)
		if sc := s["schema"].(map[string]any); sc["forward_blocked_to"] != "" || sc["common_violations"] != "" {
			t.Errorf("schema null: %v, want the block reset", s)
		}
		mustCall("DELETE", "/api/v1/sources/protocols", "", 204)
		mustCall("DELETE", "/api/v1/tracking-plans/web-plan", "", 204)
		mustCall("GET", "/api/v1/tracking-plans/web-plan", "", 404)
		if r := f.mgr.Current().SourceRules("web"); r.Plan != nil || len(f.mgr.Current().TrackingPlans) != 0 {
			t.Errorf("deleted plan still live: %+v", r)
		}
	})
}
