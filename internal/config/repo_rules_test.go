package config_test

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/config"
	"github.com/confluxcdp/conflux/internal/process/plan"
	"github.com/confluxcdp/conflux/internal/process/transform"
	"github.com/confluxcdp/conflux/internal/store"
	"github.com/confluxcdp/conflux/internal/store/storetest"
)

// orderRule is a valid track rule requiring order_id.
const orderRule = `{"type": "object", "properties": {"properties": {"type": "object", "required": ["order_id"], "properties": {"order_id": {"type": "string"}}}}}`

// orderRuleCanonical is orderRule as stored.
const orderRuleCanonical = `{"properties":{"properties":{"properties":{"order_id":{"type":"string"}},"required":["order_id"],"type":"object"}},"type":"object"}`

func orderPlan(id string) config.TrackingPlan {
	return config.TrackingPlan{ID: id, Rules: config.PlanRules{Events: map[string]json.RawMessage{"Order Completed": json.RawMessage(orderRule)}}}
}

func mustCreatePlan(t *testing.T, repo *config.Repo, p config.TrackingPlan) config.TrackingPlan {
	t.Helper()
	got, err := repo.CreateTrackingPlan(t.Context(), p)
	if err != nil {
		t.Fatalf("CreateTrackingPlan(%s): %v", p.ID, err)
	}
	return got
}

func mustCreateTransformation(t *testing.T, repo *config.Repo, tr config.Transformation) config.Transformation {
	t.Helper()
	got, err := repo.CreateTransformation(t.Context(), tr)
	if err != nil {
		t.Fatalf("CreateTransformation(%s): %v", tr.ID, err)
	}
	return got
}

func rename(id, source, destination, event string) config.Transformation {
	return config.Transformation{
		Transformation: transform.Transformation{ID: id, If: "event = '" + event + "'", NewEventName: event + " (renamed)"},
		Source:         source, Destination: destination,
	}
}

func transformationIDs(list []config.Transformation) []string {
	ids := make([]string, len(list))
	for i, tr := range list {
		ids[i] = tr.ID
	}
	return ids
}

func TestRepoTrackingPlanCRUD(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		repo, clock := newRepo(db)

		p := orderPlan("web-plan")
		p.Rules.Identify = json.RawMessage(` { "type" : "object" } `)
		p.Rules.Events["Signed Up"] = json.RawMessage(`null`)
		got := mustCreatePlan(t, repo, p)
		want := config.TrackingPlan{
			ID: "web-plan", Name: "web-plan", Origin: config.OriginAPI, CreatedAt: t0, UpdatedAt: t0,
			Rules: config.PlanRules{
				Events: map[string]json.RawMessage{
					"Order Completed": json.RawMessage(orderRuleCanonical),
					"Signed Up":       json.RawMessage(`{}`), // null plans the event
				},
				Identify: json.RawMessage(`{"type":"object"}`),
			},
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("CreateTrackingPlan returned\n%+v\nwant\n%+v", got, want)
		}
		if got, err := repo.GetTrackingPlan(ctx, "web-plan"); err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("GetTrackingPlan = %+v, %v; want %+v", got, err, want)
		}
		mustCreatePlan(t, repo, config.TrackingPlan{ID: "a-plan", Name: "A"})
		list, err := repo.ListTrackingPlans(ctx)
		if err != nil || len(list) != 2 || list[0].ID != "a-plan" || list[1].ID != "web-plan" {
			t.Fatalf("ListTrackingPlans = %+v, %v; want a-plan, web-plan", list, err)
		}
		if list[0].Rules.Events == nil {
			t.Error("a plan without rules lists nil Events, want {}")
		}

		clock.Advance(time.Minute)
		v := version(t, repo)
		upd := want
		upd.Name = "Web"
		upd.Rules = config.PlanRules{Common: json.RawMessage(`{"type": "object"}`)}
		got, err = repo.UpdateTrackingPlan(ctx, upd)
		if err != nil {
			t.Fatalf("UpdateTrackingPlan: %v", err)
		}
		if got.Name != "Web" || len(got.Rules.Events) != 0 || got.Rules.Identify != nil || string(got.Rules.Common) != `{"type":"object"}` ||
			!got.UpdatedAt.Equal(t0.Add(time.Minute)) || !got.CreatedAt.Equal(t0) || got.Origin != config.OriginAPI {
			t.Errorf("UpdateTrackingPlan returned %+v, want the rules replaced", got)
		}
		if version(t, repo) != v+1 {
			t.Error("UpdateTrackingPlan did not bump the config version once")
		}
		v = version(t, repo)
		if _, err := repo.UpdateTrackingPlan(ctx, upd); err != nil {
			t.Fatalf("UpdateTrackingPlan (no change): %v", err)
		}
		if version(t, repo) != v {
			t.Error("UpdateTrackingPlan without a change bumped the config version")
		}

		// Validation: every bad rule at its path, nothing stored.
		bad := config.TrackingPlan{ID: "bad", Rules: config.PlanRules{
			Events: map[string]json.RawMessage{
				"Order Completed": json.RawMessage(`{"type": "objekt"}`),
				"Fine":            json.RawMessage(`{}`),
				"Not an object":   json.RawMessage(`[1]`),
			},
			Group: json.RawMessage(`{"properties": {"traits": {"required": "email"}}}`),
		}}
		_, err = repo.CreateTrackingPlan(ctx, bad)
		wantFieldError(t, err, "rules.events.Not an object")
		bad.Rules.Events["Not an object"] = json.RawMessage(`{}`)
		_, err = repo.CreateTrackingPlan(ctx, bad)
		wantFieldError(t, err, "rules.events.Order Completed")
		wantFieldError(t, err, "rules.group")
		if ve, _ := errors.AsType[*config.ValidationError](err); len(ve.Errors) != 2 {
			t.Errorf("got %d problems, want 2: %v", len(ve.Errors), err)
		}
		if strings.Contains(err.Error(), "mem:///") || strings.Contains(err.Error(), `tracking plan "bad": event`) {
			t.Errorf("error %q repeats what its path already says", err)
		}
		_, err = repo.CreateTrackingPlan(ctx, config.TrackingPlan{ID: "Bad Id"})
		wantFieldError(t, err, "id")
		_, err = repo.UpdateTrackingPlan(ctx, config.TrackingPlan{ID: "web-plan", Rules: config.PlanRules{Identify: json.RawMessage(`{"type": 5}`)}})
		wantFieldError(t, err, "rules.identify")
		if _, err := repo.GetTrackingPlan(ctx, "bad"); !errors.Is(err, config.ErrNotFound) {
			t.Errorf("a rejected plan was stored: %v", err)
		}

		if _, err := repo.CreateTrackingPlan(ctx, config.TrackingPlan{ID: "a-plan"}); !errors.Is(err, config.ErrConflict) {
			t.Errorf("CreateTrackingPlan with a taken id: %v, want ErrConflict", err)
		}
		if _, err := repo.UpdateTrackingPlan(ctx, config.TrackingPlan{ID: "nope"}); !errors.Is(err, config.ErrNotFound) {
			t.Errorf("UpdateTrackingPlan of a missing plan: %v, want ErrNotFound", err)
		}
		if err := repo.DeleteTrackingPlan(ctx, "nope"); !errors.Is(err, config.ErrNotFound) {
			t.Errorf("DeleteTrackingPlan of a missing plan: %v, want ErrNotFound", err)
		}

		// A plan in use cannot be deleted.
		mustCreateSource(t, repo, config.Source{ID: "web", TrackingPlan: "web-plan"})
		mustCreateSource(t, repo, config.Source{ID: "app", TrackingPlan: "web-plan"})
		err = repo.DeleteTrackingPlan(ctx, "web-plan")
		if !errors.Is(err, config.ErrConflict) || !strings.Contains(err.Error(), `"app", "web"`) {
			t.Fatalf("DeleteTrackingPlan of a used plan: %v, want ErrConflict naming app and web", err)
		}
		for _, id := range []string{"web", "app"} {
			if _, err := repo.UpdateSource(ctx, config.Source{ID: id}); err != nil {
				t.Fatalf("detaching the plan from %s: %v", id, err)
			}
		}
		if err := repo.DeleteTrackingPlan(ctx, "web-plan"); err != nil {
			t.Fatalf("DeleteTrackingPlan once unused: %v", err)
		}
		if _, err := repo.GetTrackingPlan(ctx, "web-plan"); !errors.Is(err, config.ErrNotFound) {
			t.Errorf("GetTrackingPlan after delete: %v, want ErrNotFound", err)
		}
	})
}

func TestRepoSourceSchema(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		repo, _ := newRepo(db)
		mustCreatePlan(t, repo, orderPlan("p"))
		mustCreateSource(t, repo, config.Source{ID: "protocols"})

		schema := config.SourceSchema{
			Enforcement:         plan.Enforcement{TrackUnplannedEvents: plan.Block, IdentifyViolations: plan.OmitTraits},
			ForwardViolationsTo: "protocols",
			ForwardBlockedTo:    "protocols",
		}
		web := mustCreateSource(t, repo, config.Source{ID: "web", TrackingPlan: "p", Schema: schema})
		if web.TrackingPlan != "p" || web.Schema != schema {
			t.Fatalf("CreateSource returned %+v, want the plan and schema", web)
		}
		if got := mustGetSource(t, repo, "web"); got.TrackingPlan != "p" || got.Schema != schema {
			t.Fatalf("GetSource returned %+v, want the plan and schema", got)
		}

		for _, tc := range []struct {
			name string
			src  config.Source
			path string
		}{
			{"unknown plan", config.Source{ID: "x", TrackingPlan: "nope"}, "tracking_plan"},
			{"bad plan id", config.Source{ID: "x", TrackingPlan: "No Pe"}, "tracking_plan"},
			{"bad action", config.Source{ID: "x", Schema: config.SourceSchema{Enforcement: plan.Enforcement{TrackViolations: plan.Omit}}}, "schema.track_violations"},
			{"unknown forward", config.Source{ID: "x", Schema: config.SourceSchema{ForwardBlockedTo: "nope"}}, "schema.forward_blocked_to"},
			{"forward to itself", config.Source{ID: "x", Schema: config.SourceSchema{ForwardViolationsTo: "x"}}, "schema.forward_violations_to"},
		} {
			_, err := repo.CreateSource(ctx, tc.src)
			if _, ok := errors.AsType[*config.ValidationError](err); !ok {
				t.Errorf("%s: CreateSource = %v, want a ValidationError", tc.name, err)
				continue
			}
			wantFieldError(t, err, tc.path)
			upd := tc.src
			upd.ID = "web"
			if tc.path == "schema.forward_violations_to" {
				upd.Schema.ForwardViolationsTo = "web"
			}
			_, err = repo.UpdateSource(ctx, upd)
			wantFieldError(t, err, tc.path)
		}
		if got := mustGetSource(t, repo, "web"); got.TrackingPlan != "p" || got.Schema != schema {
			t.Fatalf("a rejected update changed the source: %+v", got)
		}

		// Deleting a source that others forward to is refused.
		err := repo.DeleteSource(ctx, "protocols")
		if !errors.Is(err, config.ErrConflict) || !strings.Contains(err.Error(), `sources forwarding to it "web"`) {
			t.Fatalf("DeleteSource of a forward target: %v, want ErrConflict naming web", err)
		}

		// Update replaces the plan and the whole schema block.
		v := version(t, repo)
		got, err := repo.UpdateSource(ctx, config.Source{ID: "web", Schema: config.SourceSchema{Enforcement: plan.Enforcement{CommonViolations: plan.Block}}})
		if err != nil {
			t.Fatalf("UpdateSource: %v", err)
		}
		if got.TrackingPlan != "" || got.Schema != (config.SourceSchema{Enforcement: plan.Enforcement{CommonViolations: plan.Block}}) {
			t.Errorf("UpdateSource returned %+v, want the plan detached and the schema replaced", got)
		}
		if version(t, repo) != v+1 {
			t.Error("UpdateSource did not bump the config version once")
		}
		if err := repo.DeleteSource(ctx, "protocols"); err != nil {
			t.Errorf("DeleteSource once nothing forwards to it: %v", err)
		}
	})
}

func TestRepoTransformations(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		repo, clock := newRepo(db)
		mustCreateSource(t, repo, config.Source{ID: "web"})
		mustCreateDestination(t, repo, config.Destination{ID: "hook", Type: "webhook", Sources: []string{"web"}})

		got := mustCreateTransformation(t, repo, rename("z-first", "web", "", "A"))
		on := true
		want := config.Transformation{
			Transformation: transform.Transformation{ID: "z-first", Enabled: &on, If: "event = 'A'", NewEventName: "A (renamed)"},
			Source:         "web", Origin: config.OriginAPI, CreatedAt: t0, UpdatedAt: t0,
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("CreateTransformation returned\n%+v\nwant\n%+v", got, want)
		}
		if got, err := repo.GetTransformation(ctx, "z-first"); err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("GetTransformation = %+v, %v; want %+v", got, err, want)
		}
		mustCreateTransformation(t, repo, rename("b-second", "web", "hook", "B"))
		mustCreateTransformation(t, repo, rename("a-third", "web", "", "C"))

		// Listed in creation order, not by id.
		list, err := repo.ListTransformations(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ids := transformationIDs(list); !slices.Equal(ids, []string{"z-first", "b-second", "a-third"}) {
			t.Fatalf("ListTransformations = %v, want creation order", ids)
		}
		if list[1].Destination != "hook" {
			t.Errorf("destination-scoped transformation = %+v", list[1])
		}

		// Update keeps the place in the order.
		clock.Advance(time.Minute)
		upd := rename("z-first", "web", "hook", "Z")
		off := false
		upd.Enabled = &off
		got, err = repo.UpdateTransformation(ctx, upd)
		if err != nil {
			t.Fatalf("UpdateTransformation: %v", err)
		}
		if got.If != "event = 'Z'" || got.Destination != "hook" || *got.Enabled || !got.UpdatedAt.Equal(t0.Add(time.Minute)) || got.Origin != config.OriginAPI {
			t.Errorf("UpdateTransformation returned %+v", got)
		}
		v := version(t, repo)
		if _, err := repo.UpdateTransformation(ctx, upd); err != nil || version(t, repo) != v {
			t.Errorf("UpdateTransformation without a change: %v, version %d → %d", err, v, version(t, repo))
		}
		list, _ = repo.ListTransformations(ctx)
		if ids := transformationIDs(list); !slices.Equal(ids, []string{"z-first", "b-second", "a-third"}) {
			t.Errorf("after an update the order is %v, want it kept", ids)
		}

		// Validation.
		bad := config.Transformation{
			Transformation: transform.Transformation{ID: "bad", If: "all", FQLDefinedProperties: []transform.FQLDefinedProperty{
				{FQL: "lowercase(properties.email", PropertyName: "properties.email"},
			}},
			Source: "web",
		}
		_, err = repo.CreateTransformation(ctx, bad)
		wantFieldError(t, err, "fqlDefinedProperties[0].fql")
		_, err = repo.CreateTransformation(ctx, config.Transformation{Transformation: transform.Transformation{ID: "bad", If: "all"}, Source: "web"})
		wantFieldError(t, err, "")
		_, err = repo.CreateTransformation(ctx, rename("bad", "", "", "A"))
		wantFieldError(t, err, "source")
		_, err = repo.CreateTransformation(ctx, rename("bad", "nope", "", "A"))
		wantFieldError(t, err, "source")
		_, err = repo.CreateTransformation(ctx, rename("bad", "web", "nope", "A"))
		wantFieldError(t, err, "destination")
		_, err = repo.CreateTransformation(ctx, rename("", "web", "", "A"))
		wantFieldError(t, err, "id")
		_, err = repo.UpdateTransformation(ctx, rename("a-third", "nope", "", "A"))
		wantFieldError(t, err, "source")
		if _, err := repo.CreateTransformation(ctx, rename("a-third", "web", "", "A")); !errors.Is(err, config.ErrConflict) {
			t.Errorf("CreateTransformation with a taken id: %v, want ErrConflict", err)
		}
		if _, err := repo.UpdateTransformation(ctx, rename("nope", "web", "", "A")); !errors.Is(err, config.ErrNotFound) {
			t.Errorf("UpdateTransformation of a missing one: %v, want ErrNotFound", err)
		}
		if _, err := repo.GetTransformation(ctx, "bad"); !errors.Is(err, config.ErrNotFound) {
			t.Errorf("a rejected transformation was stored: %v", err)
		}

		// What they apply to cannot be deleted under them.
		err = repo.DeleteDestination(ctx, "hook")
		if !errors.Is(err, config.ErrConflict) || !strings.Contains(err.Error(), `"b-second", "z-first"`) {
			t.Errorf("DeleteDestination with scoped transformations: %v, want ErrConflict naming them", err)
		}
		err = repo.DeleteSource(ctx, "web")
		if !errors.Is(err, config.ErrConflict) || !strings.Contains(err.Error(), `transformations "a-third", "b-second", "z-first"`) {
			t.Errorf("DeleteSource with transformations: %v, want ErrConflict naming them", err)
		}
		for _, id := range []string{"z-first", "b-second"} {
			if err := repo.DeleteTransformation(ctx, id); err != nil {
				t.Fatalf("DeleteTransformation(%s): %v", id, err)
			}
		}
		if err := repo.DeleteTransformation(ctx, "z-first"); !errors.Is(err, config.ErrNotFound) {
			t.Errorf("second DeleteTransformation: %v, want ErrNotFound", err)
		}
		if err := repo.DeleteDestination(ctx, "hook"); err != nil {
			t.Errorf("DeleteDestination once unused: %v", err)
		}
		// A new one goes after the remaining one.
		mustCreateTransformation(t, repo, rename("new", "web", "", "N"))
		list, _ = repo.ListTransformations(ctx)
		if ids := transformationIDs(list); !slices.Equal(ids, []string{"a-third", "new"}) {
			t.Errorf("order = %v, want a-third, new", ids)
		}
	})
}

func TestRepoDestinationFilters(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		repo, _ := newRepo(db)
		tenth, off := 0.1, false
		filters := []transform.Filter{
			{ID: "only-orders", If: "!(event = 'Order Completed')", Actions: []transform.Action{{Type: transform.DropEvent}}},
			{If: "all", Enabled: &off, Actions: []transform.Action{
				{Type: transform.SampleEvent, Percent: &tenth, Path: "userId"},
				{Type: transform.BlocklistFields, Fields: transform.Fields{"properties": {"email"}}},
			}},
		}
		got := mustCreateDestination(t, repo, config.Destination{ID: "hook", Type: "webhook", Filters: filters})
		if !reflect.DeepEqual(got.Filters, filters) {
			t.Fatalf("CreateDestination filters =\n%+v\nwant\n%+v", got.Filters, filters)
		}
		if got := mustGetDestination(t, repo, "hook"); !reflect.DeepEqual(got.Filters, filters) {
			t.Fatalf("GetDestination filters =\n%+v\nwant\n%+v", got.Filters, filters)
		}

		half := 1.5
		_, err := repo.CreateDestination(ctx, config.Destination{ID: "bad", Type: "webhook", Filters: []transform.Filter{
			{If: "all", Actions: []transform.Action{{Type: transform.SampleEvent, Percent: &half}}},
			{If: "event =", Actions: []transform.Action{{Type: transform.DropEvent}}},
		}})
		wantFieldError(t, err, "filters[0].actions[0].percent")
		wantFieldError(t, err, "filters[1].if")

		v := version(t, repo)
		d := mustGetDestination(t, repo, "hook")
		d.Filters = filters[:1]
		if got, err := repo.UpdateDestination(ctx, d); err != nil || len(got.Filters) != 1 {
			t.Fatalf("UpdateDestination = %+v, %v; want one filter", got.Filters, err)
		}
		if version(t, repo) != v+1 {
			t.Error("changing only the filters did not bump the config version")
		}
		d.Filters = nil
		if got, err := repo.UpdateDestination(ctx, d); err != nil || got.Filters == nil || len(got.Filters) != 0 {
			t.Fatalf("UpdateDestination without filters = %#v, %v; want an empty, non-nil list", got.Filters, err)
		}
	})
}

// rulesFile is a config file using every kind of rule.
func rulesFile() *config.Config {
	on := true
	return &config.Config{
		Sources: []config.Source{
			// web forwards to protocols, declared after it.
			{ID: "web", Name: "web", TrackingPlan: "plan", Origin: config.OriginFile, Schema: config.SourceSchema{
				Enforcement: plan.Enforcement{TrackUnplannedEvents: plan.Block}, ForwardBlockedTo: "protocols",
			}},
			{ID: "protocols", Name: "protocols", Origin: config.OriginFile},
		},
		Destinations: []config.Destination{{
			ID: "hook", Type: "webhook", Enabled: true, Sources: []string{"web"}, Settings: map[string]any{},
			Filters: []transform.Filter{{If: "all", Actions: []transform.Action{{Type: transform.DropEvent}}}},
			Origin:  config.OriginFile,
		}},
		TrackingPlans: []config.TrackingPlan{func() config.TrackingPlan {
			p := orderPlan("plan")
			p.Name, p.Origin = "Plan", config.OriginFile
			return p
		}()},
		Transformations: []config.Transformation{
			{Transformation: transform.Transformation{ID: "t1", Enabled: &on, If: "all", NewEventName: "X"}, Source: "web", Origin: config.OriginFile},
			{Transformation: transform.Transformation{ID: "t2", Enabled: &on, If: "all", NewEventName: "Y"}, Source: "web", Destination: "hook", Origin: config.OriginFile},
		},
	}
}

func TestRepoApplyFileRules(t *testing.T) {
	t.Parallel()
	type changes = config.ApplyChanges
	tests := []struct {
		name   string
		first  *config.Config
		api    func(t *testing.T, repo *config.Repo)
		second *config.Config
		// wantReport is compared for plans and transformations only.
		wantReport config.ApplyReport
		wantErr    error
		wantInErr  []string
		check      func(t *testing.T, repo *config.Repo)
	}{
		{
			name:   "create",
			second: rulesFile(),
			wantReport: config.ApplyReport{
				TrackingPlans:   changes{Created: []string{"plan"}},
				Transformations: changes{Created: []string{"t1", "t2"}},
			},
			check: func(t *testing.T, repo *config.Repo) {
				web := mustGetSource(t, repo, "web")
				if web.TrackingPlan != "plan" || web.Schema.ForwardBlockedTo != "protocols" || web.Schema.TrackUnplannedEvents != plan.Block {
					t.Errorf("web = %+v, want its plan, enforcement and forward", web)
				}
				p, err := repo.GetTrackingPlan(t.Context(), "plan")
				if err != nil || p.Origin != config.OriginFile || string(p.Rules.Events["Order Completed"]) != orderRuleCanonical {
					t.Errorf("plan = %+v, %v", p, err)
				}
				if hook := mustGetDestination(t, repo, "hook"); len(hook.Filters) != 1 {
					t.Errorf("hook filters = %+v", hook.Filters)
				}
				list, _ := repo.ListTransformations(t.Context())
				if ids := transformationIDs(list); !slices.Equal(ids, []string{"t1", "t2"}) || list[0].Origin != config.OriginFile {
					t.Errorf("transformations = %+v", list)
				}
			},
		},
		{
			name:   "unchanged",
			first:  rulesFile(),
			second: rulesFile(),
			wantReport: config.ApplyReport{
				TrackingPlans:   changes{Unchanged: []string{"plan"}},
				Transformations: changes{Unchanged: []string{"t1", "t2"}},
			},
		},
		{
			name:  "API edits to file rules survive an unchanged file",
			first: rulesFile(),
			api: func(t *testing.T, repo *config.Repo) {
				ctx := t.Context()
				if _, err := repo.UpdateTrackingPlan(ctx, config.TrackingPlan{ID: "plan", Name: "Edited"}); err != nil {
					t.Fatal(err)
				}
				if _, err := repo.UpdateTransformation(ctx, rename("t1", "web", "", "Edited")); err != nil {
					t.Fatal(err)
				}
				if _, err := repo.UpdateSource(ctx, config.Source{ID: "web", TrackingPlan: "plan"}); err != nil {
					t.Fatal(err)
				}
				d := mustGetDestination(t, repo, "hook")
				d.Filters = nil
				if _, err := repo.UpdateDestination(ctx, d); err != nil {
					t.Fatal(err)
				}
			},
			second: rulesFile(),
			wantReport: config.ApplyReport{
				TrackingPlans:   changes{Unchanged: []string{"plan"}},
				Transformations: changes{Unchanged: []string{"t1", "t2"}},
			},
			check: func(t *testing.T, repo *config.Repo) {
				if p, _ := repo.GetTrackingPlan(t.Context(), "plan"); p.Name != "Edited" || len(p.Rules.Events) != 0 {
					t.Errorf("plan = %+v, want the API edit kept", p)
				}
				if tr, _ := repo.GetTransformation(t.Context(), "t1"); tr.If != "event = 'Edited'" {
					t.Errorf("t1 = %+v, want the API edit kept", tr)
				}
				if web := mustGetSource(t, repo, "web"); web.Schema != (config.SourceSchema{}) {
					t.Errorf("web = %+v, want the API edit kept", web)
				}
				if hook := mustGetDestination(t, repo, "hook"); len(hook.Filters) != 0 {
					t.Errorf("hook = %+v, want the API edit kept", hook)
				}
			},
		},
		{
			name:  "changed file wins",
			first: rulesFile(),
			api: func(t *testing.T, repo *config.Repo) {
				if _, err := repo.UpdateTrackingPlan(t.Context(), config.TrackingPlan{ID: "plan", Name: "Edited"}); err != nil {
					t.Fatal(err)
				}
			},
			second: edit(rulesFile(), func(c *config.Config) {
				c.TrackingPlans[0].Rules.Common = json.RawMessage(`{"type":"object"}`)
				c.Sources[0].Schema.ForwardBlockedTo = ""
				c.Sources[0].Schema.ForwardViolationsTo = "protocols"
				c.Transformations[1].Destination = ""
				c.Destinations[0].Filters = nil
			}),
			wantReport: config.ApplyReport{
				TrackingPlans:   changes{Updated: []string{"plan"}},
				Transformations: changes{Unchanged: []string{"t1"}, Updated: []string{"t2"}},
			},
			check: func(t *testing.T, repo *config.Repo) {
				p, _ := repo.GetTrackingPlan(t.Context(), "plan")
				if p.Name != "Plan" || string(p.Rules.Common) != `{"type":"object"}` || len(p.Rules.Events) != 1 {
					t.Errorf("plan = %+v, want the file's", p)
				}
				if web := mustGetSource(t, repo, "web"); web.Schema.ForwardBlockedTo != "" || web.Schema.ForwardViolationsTo != "protocols" {
					t.Errorf("web = %+v, want the file's forwards", web)
				}
				if tr, _ := repo.GetTransformation(t.Context(), "t2"); tr.Destination != "" {
					t.Errorf("t2 = %+v, want it source-scoped now", tr)
				}
				if hook := mustGetDestination(t, repo, "hook"); len(hook.Filters) != 0 {
					t.Errorf("hook = %+v, want no filters", hook)
				}
			},
		},
		{
			name:  "reordered transformations move, keeping API edits",
			first: rulesFile(),
			api: func(t *testing.T, repo *config.Repo) {
				mustCreateTransformation(t, repo, rename("api", "web", "", "API"))
				if _, err := repo.UpdateTransformation(t.Context(), rename("t1", "web", "", "Edited")); err != nil {
					t.Fatal(err)
				}
			},
			second: edit(rulesFile(), func(c *config.Config) {
				c.Transformations[0], c.Transformations[1] = c.Transformations[1], c.Transformations[0]
			}),
			wantReport: config.ApplyReport{
				TrackingPlans:   changes{Unchanged: []string{"plan"}},
				Transformations: changes{Unchanged: []string{"t2", "t1"}, Moved: []string{"t2", "t1"}},
			},
			check: func(t *testing.T, repo *config.Repo) {
				list, _ := repo.ListTransformations(t.Context())
				if ids := transformationIDs(list); !slices.Equal(ids, []string{"t2", "t1", "api"}) {
					t.Errorf("order = %v, want the file's order, then the API's", ids)
				}
				if list[1].If != "event = 'Edited'" {
					t.Errorf("t1 = %+v, want the API edit kept", list[1])
				}
			},
		},
		{
			name:   "removed from the file is deleted",
			first:  rulesFile(),
			second: &config.Config{},
			wantReport: config.ApplyReport{
				TrackingPlans:   changes{Deleted: []string{"plan"}},
				Transformations: changes{Deleted: []string{"t1", "t2"}},
			},
			check: func(t *testing.T, repo *config.Repo) {
				if _, err := repo.GetTrackingPlan(t.Context(), "plan"); !errors.Is(err, config.ErrNotFound) {
					t.Errorf("plan: %v, want ErrNotFound", err)
				}
				if list, _ := repo.ListTransformations(t.Context()); len(list) != 0 {
					t.Errorf("transformations left: %+v", list)
				}
			},
		},
		{
			name:  "sources removed together may forward to each other",
			first: edit(rulesFile(), func(c *config.Config) { c.Sources[1].Schema.ForwardViolationsTo = "web" }),
			second: edit(rulesFile(), func(c *config.Config) {
				c.Sources = nil
				c.Destinations = nil
				c.Transformations = nil
			}),
			wantReport: config.ApplyReport{
				TrackingPlans:   changes{Unchanged: []string{"plan"}},
				Transformations: changes{Deleted: []string{"t1", "t2"}},
			},
		},
		{
			name:  "a file source may use an API plan and forward to an API source",
			first: rulesFile(),
			api: func(t *testing.T, repo *config.Repo) {
				mustCreatePlan(t, repo, orderPlan("api-plan"))
				mustCreateSource(t, repo, config.Source{ID: "api-src"})
			},
			second: edit(rulesFile(), func(c *config.Config) {
				c.Sources[0].TrackingPlan = "api-plan"
				c.Sources[0].Schema.ForwardViolationsTo = "api-src"
			}),
			wantReport: config.ApplyReport{
				TrackingPlans:   changes{Unchanged: []string{"plan"}},
				Transformations: changes{Unchanged: []string{"t1", "t2"}},
			},
		},
		{
			name:  "file drops a plan an API source uses",
			first: rulesFile(),
			api: func(t *testing.T, repo *config.Repo) {
				mustCreateSource(t, repo, config.Source{ID: "api-src", TrackingPlan: "plan"})
			},
			second:    edit(rulesFile(), func(c *config.Config) { c.TrackingPlans = nil; c.Sources[0].TrackingPlan = "" }),
			wantErr:   config.ErrConflict,
			wantInErr: []string{`"plan"`, `"api-src"`},
		},
		{
			name:  "file drops a source an API transformation uses",
			first: rulesFile(),
			api: func(t *testing.T, repo *config.Repo) {
				mustCreateTransformation(t, repo, rename("api-t", "protocols", "", "A"))
			},
			second:    edit(rulesFile(), func(c *config.Config) { c.Sources = c.Sources[:1]; c.Sources[0].Schema.ForwardBlockedTo = "" }),
			wantErr:   config.ErrConflict,
			wantInErr: []string{`"protocols"`, `"api-t"`},
		},
		{
			name:  "file drops a destination an API transformation uses",
			first: rulesFile(),
			api: func(t *testing.T, repo *config.Repo) {
				mustCreateTransformation(t, repo, rename("api-t", "web", "hook", "A"))
			},
			second:    edit(rulesFile(), func(c *config.Config) { c.Destinations = nil; c.Transformations = c.Transformations[:1] }),
			wantErr:   config.ErrConflict,
			wantInErr: []string{`"hook"`, `"api-t"`},
		},
		{
			name:  "file declares an API plan's id",
			first: rulesFile(),
			api: func(t *testing.T, repo *config.Repo) {
				mustCreatePlan(t, repo, orderPlan("api-plan"))
			},
			second: edit(rulesFile(), func(c *config.Config) {
				c.TrackingPlans = append(c.TrackingPlans, orderPlan("api-plan"))
			}),
			wantErr:   config.ErrConflict,
			wantInErr: []string{"tracking_plans[1]", `"api-plan"`},
		},
		{
			name:  "file declares an API transformation's id",
			first: rulesFile(),
			api: func(t *testing.T, repo *config.Repo) {
				mustCreateTransformation(t, repo, rename("api-t", "web", "", "A"))
			},
			second: edit(rulesFile(), func(c *config.Config) {
				c.Transformations = append(c.Transformations, rename("api-t", "web", "", "A"))
			}),
			wantErr:   config.ErrConflict,
			wantInErr: []string{"transformations[2]", `"api-t"`},
		},
		{
			name: "references to undeclared objects",
			second: edit(rulesFile(), func(c *config.Config) {
				c.Sources[0].TrackingPlan = "ghost-plan"
				c.Sources[0].Schema.ForwardViolationsTo = "ghost"
				c.Transformations[0].Source = "ghost"
				c.Transformations[1].Destination = "ghost"
			}),
			wantInErr: []string{"sources[0].tracking_plan", "sources[0].schema.forward_violations_to", "transformations[0].source", "transformations[1].destination"},
		},
		{
			name: "invalid rules",
			second: edit(rulesFile(), func(c *config.Config) {
				c.TrackingPlans[0].Rules.Events["Order Completed"] = json.RawMessage(`{"type": 1}`)
				c.Transformations[0].If = "event ="
				c.Destinations[0].Filters[0].Actions = nil
				c.Transformations[1].ID = "t1"
			}),
			wantInErr: []string{"tracking_plans[0].rules.events.Order Completed", "transformations[0].if", "destinations[0].filters[0].actions", "transformations[1].id"},
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
				v := version(t, repo)
				beforePlans, _ := repo.ListTrackingPlans(ctx)
				beforeTrs, _ := repo.ListTransformations(ctx)
				beforeSources, _ := repo.ListSources(ctx)

				rep, err := repo.ApplyFile(ctx, tt.second)
				if tt.wantErr != nil || tt.wantInErr != nil {
					if err == nil {
						t.Fatalf("ApplyFile succeeded with %+v, want an error", rep)
					}
					if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
						t.Errorf("error %v does not match %v", err, tt.wantErr)
					}
					if _, ok := errors.AsType[*config.ValidationError](err); tt.wantErr == nil && !ok {
						t.Errorf("error %v is not a *ValidationError", err)
					}
					for _, s := range tt.wantInErr {
						if !strings.Contains(err.Error(), s) {
							t.Errorf("error %q does not mention %s", err, s)
						}
					}
					afterPlans, _ := repo.ListTrackingPlans(ctx)
					afterTrs, _ := repo.ListTransformations(ctx)
					afterSources, _ := repo.ListSources(ctx)
					if !reflect.DeepEqual(afterPlans, beforePlans) || !reflect.DeepEqual(afterTrs, beforeTrs) ||
						!reflect.DeepEqual(afterSources, beforeSources) || version(t, repo) != v {
						t.Errorf("a failed ApplyFile changed the workspace")
					}
					return
				}
				if err != nil {
					t.Fatalf("ApplyFile: %v", err)
				}
				if !reflect.DeepEqual(rep.TrackingPlans, tt.wantReport.TrackingPlans) || !reflect.DeepEqual(rep.Transformations, tt.wantReport.Transformations) {
					t.Errorf("report =\n%+v\nwant (plans and transformations)\n%+v", rep, tt.wantReport)
				}
				if got, want := version(t, repo), v+map[bool]int64{true: 1}[rep.Changed()]; got != want {
					t.Errorf("config version went from %d to %d, want %d", v, got, want)
				}
				if tt.check != nil {
					tt.check(t, repo)
				}
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

// TestRepoApplyFileAcrossRestart: a file-declared plan changed through the
// API survives a restart — a new process opening the same store and
// applying the same file — until the file's declaration of it changes.
func TestRepoApplyFileAcrossRestart(t *testing.T) {
	t.Parallel()
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			var opts store.Options
			if engine == "sqlite" {
				opts.SQLitePath = filepath.Join(t.TempDir(), "conflux.db")
			} else {
				opts.PostgresURL = storetest.PostgresSchema(t)
			}
			// start is one run of the server: open the store, apply the file.
			start := func(cfg *config.Config) (*config.Repo, func()) {
				db, err := store.Open(t.Context(), opts)
				if err != nil {
					t.Fatalf("opening the store: %v", err)
				}
				repo := config.NewRepo(db)
				if _, err := repo.ApplyFile(t.Context(), cfg); err != nil {
					t.Fatalf("applying the file: %v", err)
				}
				return repo, func() {
					if err := db.Close(); err != nil {
						t.Errorf("closing the store: %v", err)
					}
				}
			}
			planName := func(repo *config.Repo) string {
				p, err := repo.GetTrackingPlan(t.Context(), "plan")
				if err != nil {
					t.Fatal(err)
				}
				return p.Name
			}

			repo, stop := start(rulesFile())
			if _, err := repo.UpdateTrackingPlan(t.Context(), config.TrackingPlan{ID: "plan", Name: "From the API"}); err != nil {
				t.Fatal(err)
			}
			stop()

			repo, stop = start(rulesFile())
			if got := planName(repo); got != "From the API" {
				t.Errorf("after a restart with the same file, plan name = %q, want the API's", got)
			}
			stop()

			repo, stop = start(edit(rulesFile(), func(c *config.Config) { c.TrackingPlans[0].Name = "From the file" }))
			defer stop()
			if got := planName(repo); got != "From the file" {
				t.Errorf("after a restart with a changed declaration, plan name = %q, want the file's", got)
			}
		})
	}
}
