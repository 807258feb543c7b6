package config_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/confluxcdp/conflux/internal/config"
	"github.com/confluxcdp/conflux/internal/event"
	"github.com/confluxcdp/conflux/internal/process/plan"
	"github.com/confluxcdp/conflux/internal/process/transform"
	"github.com/confluxcdp/conflux/internal/store/storetest"
)

func doc(t *testing.T, js string) event.Doc {
	t.Helper()
	d, err := event.Decode([]byte(js))
	if err != nil {
		t.Fatalf("decoding %s: %v", js, err)
	}
	return d
}

// rulesContents is a workspace with every kind of rule.
func rulesContents() config.Contents {
	off := false
	return config.Contents{
		Sources: []config.Source{
			{ID: "web", WriteKey: "k1", TrackingPlan: "plan", Schema: config.SourceSchema{
				Enforcement:         plan.Enforcement{TrackUnplannedEvents: plan.Block},
				ForwardViolationsTo: "protocols", ForwardBlockedTo: "protocols",
			}},
			{ID: "app", WriteKey: "k2"},
			{ID: "protocols", WriteKey: "k3"},
		},
		Destinations: []config.Destination{
			{ID: "hook", Type: "webhook", Sources: []string{"web", "app"}, Filters: []transform.Filter{
				{ID: "no-b", If: "event = 'B'", Actions: []transform.Action{{Type: transform.DropEvent}}},
			}},
			{ID: "bare", Type: "webhook"},
		},
		TrackingPlans: []config.TrackingPlan{orderPlan("plan")},
		Transformations: []config.Transformation{
			rename("t1", "web", "", "A"),
			rename("t-hook", "web", "hook", "A (renamed) (renamed)"),
			{Transformation: transform.Transformation{ID: "t-off", Enabled: &off, If: "all", NewEventName: "Off"}, Source: "web"},
			rename("t2", "web", "", "A (renamed)"),
			rename("t-app", "app", "", "A"),
		},
	}
}

func TestWorkspaceRules(t *testing.T) {
	ws := config.BuildWorkspace(7, config.Settings{}, rulesContents())
	if p := ws.Problems(); p != nil {
		t.Fatalf("Problems = %v, want none", p)
	}
	if ws.DedupWindow != config.DefaultDedupWindow {
		t.Errorf("DedupWindow = %v, want the default", ws.DedupWindow)
	}
	if len(ws.TrackingPlans) != 1 || len(ws.Transformations) != 5 {
		t.Errorf("declarations not kept: %d plans, %d transformations", len(ws.TrackingPlans), len(ws.Transformations))
	}

	web := ws.SourceRules("web")
	if web.Plan == nil || web.Plan.ID() != "plan" {
		t.Fatalf("web's plan = %v, want plan compiled", web.Plan)
	}
	if web.Enforcement.TrackUnplannedEvents != plan.Block || web.ForwardViolationsTo != "protocols" || web.ForwardBlockedTo != "protocols" {
		t.Errorf("web's rules = %+v", web)
	}
	res := web.Plan.Check(doc(t, `{"type":"track","event":"Unknown","messageId":"m"}`), web.Enforcement)
	if res.Verdict != plan.VerdictBlock {
		t.Errorf("an unplanned event of web is not blocked: %+v", res)
	}
	// The source-scoped, enabled transformations, in order: t1 then t2,
	// each seeing the result of the one before.
	if n := len(web.Transformations); n != 2 {
		t.Fatalf("web has %d source-scoped transformations, want t1 and t2", n)
	}
	d := doc(t, `{"type":"track","event":"A","messageId":"m"}`)
	if n, err := web.Transformations.Apply(d); n != 2 || err != nil || d["event"] != "A (renamed) (renamed)" {
		t.Errorf("web's chain applied %d (%v): event %v", n, err, d["event"])
	}

	app := ws.SourceRules("app")
	if app.Plan != nil || len(app.Transformations) != 1 || app.Enforcement != (plan.Enforcement{}) {
		t.Errorf("app's rules = %+v, want no plan and t-app", app)
	}
	if r := ws.SourceRules("nope"); r == nil || r.Plan != nil || len(r.Transformations) != 0 || r.ForwardBlockedTo != "" {
		t.Errorf("SourceRules of an unknown source = %+v, want zero rules", r)
	}

	hookWeb := ws.DestinationRules("hook", "web")
	if len(hookWeb.Transformations) != 1 || hookWeb.Filters == nil || hookWeb.Filters.Len() != 1 {
		t.Fatalf("hook rules for web = %+v, want t-hook and one filter", hookWeb)
	}
	if n, _ := hookWeb.Transformations.Apply(d); n != 1 || d["event"] != "A (renamed) (renamed) (renamed)" {
		t.Errorf("hook's chain for web applied %d: event %v", n, d["event"])
	}
	if out := hookWeb.Filters.Apply(doc(t, `{"type":"track","event":"B","messageId":"m"}`)); !out.Dropped || out.FilterID != "no-b" {
		t.Errorf("hook's filter outcome = %+v, want dropped by no-b", out)
	}
	hookApp := ws.DestinationRules("hook", "app")
	if len(hookApp.Transformations) != 0 || hookApp.Filters.Len() != 1 {
		t.Errorf("hook rules for app = %+v, want the filters only", hookApp)
	}
	for _, pair := range [][2]string{{"bare", "web"}, {"nope", "web"}, {"hook", "nope"}} {
		r := ws.DestinationRules(pair[0], pair[1])
		if r == nil || r.Filters == nil {
			t.Fatalf("DestinationRules(%s, %s) = %+v, want non-nil with non-nil Filters", pair[0], pair[1], r)
		}
		if pair[0] != "hook" && (r.Filters.Len() != 0 || r.Filters.Apply(doc(t, `{"type":"track","event":"B","messageId":"m"}`)).Dropped) {
			t.Errorf("DestinationRules(%s, %s) filters drop events", pair[0], pair[1])
		}
	}

	// Same calls, same values: nothing is compiled per call.
	if ws.SourceRules("web") != web || ws.DestinationRules("hook", "web") != hookWeb {
		t.Error("rules are rebuilt per call")
	}
}

// TestWorkspaceBadStoredRules: rules that do not compile (stored by an
// older version, say) do not stop the workspace; each is handled as
// documented and reported.
func TestWorkspaceBadStoredRules(t *testing.T) {
	c := rulesContents()
	c.TrackingPlans[0].Rules.Events["Order Completed"] = json.RawMessage(`{"type": "objekt"}`)
	c.Transformations[0].If = "event ="
	c.Destinations[0].Filters[0].If = "event ="
	c.Sources[1].TrackingPlan = "gone"
	ws := config.BuildWorkspace(1, config.Settings{}, c)

	problems := ws.Problems()
	if len(problems) != 4 {
		t.Fatalf("Problems = %v, want 4", problems)
	}
	for i, want := range []string{`tracking plan "plan"`, `source "app" uses tracking plan "gone"`, `destination "hook"`, `transformation "t1"`} {
		if !strings.Contains(problems[i].Error(), want) {
			t.Errorf("problem %d = %q, want it to name %s", i, problems[i], want)
		}
	}
	web := ws.SourceRules("web")
	if web.Plan != nil || web.Enforcement.TrackUnplannedEvents != plan.Block || web.ForwardBlockedTo != "protocols" {
		t.Errorf("web's rules = %+v, want no plan but its enforcement and forwards", web)
	}
	if len(web.Transformations) != 1 {
		t.Errorf("web has %d transformations, want t2 only (t1 skipped)", len(web.Transformations))
	}
	if ws.SourceRules("app").Plan != nil {
		t.Error("app has a plan")
	}
	out := ws.DestinationRules("hook", "app").Filters.Apply(doc(t, `{"type":"track","event":"A","messageId":"m"}`))
	if !out.Dropped || out.FilterID != config.InvalidFiltersID {
		t.Errorf("an event to a destination whose filters do not compile: %+v, want dropped by %s", out, config.InvalidFiltersID)
	}
	if ws.DestinationRules("hook", "web").Filters != ws.DestinationRules("hook", "app").Filters {
		t.Error("the destination-scoped rules do not share the destination's filters")
	}
	if ws.DestinationRules("bare", "web").Filters.Apply(doc(t, `{"type":"track","event":"A","messageId":"m"}`)).Dropped {
		t.Error("another destination's events are dropped too")
	}
}

// TestManagerLogsBadStoredRules writes a plan that does not compile
// straight into the store, as an older version might have, and checks
// that the manager still loads the workspace and logs the problem once.
func TestManagerLogsBadStoredRules(t *testing.T) {
	db := storetest.SQLite(t)
	repo := config.NewRepo(db)
	mustCreatePlan(t, repo, orderPlan("plan"))
	mustCreateSource(t, repo, config.Source{ID: "web", TrackingPlan: "plan"})
	if _, err := db.SQL().ExecContext(t.Context(), `UPDATE tracking_plans SET rules = '{"events":{"E":{"type":"objekt"}}}'`); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	mgr := config.NewManager(repo, config.Settings{}, slog.New(slog.NewJSONHandler(&logs, nil)))
	for range 2 {
		if err := mgr.Reload(t.Context()); err != nil {
			t.Fatalf("Reload with a bad stored plan: %v", err)
		}
	}
	ws := mgr.Current()
	if _, ok := ws.Source("web"); !ok || ws.SourceRules("web").Plan != nil {
		t.Errorf("web = %+v, want it live without a plan", ws.SourceRules("web"))
	}
	if n := strings.Count(logs.String(), `"level":"ERROR"`); n != 1 || !strings.Contains(logs.String(), `tracking plan \"plan\"`) {
		t.Errorf("logs = %s, want the plan's problem once, at Error", logs.String())
	}
}

// TestExampleConfigApplies stores docs/examples/conflux.yaml and builds a
// workspace from it without problems.
func TestExampleConfigApplies(t *testing.T) {
	data, err := os.ReadFile("../../docs/examples/conflux.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse("conflux.yaml", data)
	if err != nil {
		t.Fatalf("example does not load:\n%v", err)
	}
	repo := config.NewRepo(storetest.SQLite(t))
	if _, err := repo.ApplyFile(t.Context(), cfg); err != nil {
		t.Fatalf("example does not apply: %v", err)
	}
	mgr := config.NewManager(repo, config.Settings{DedupWindow: cfg.DedupWindow}, nil)
	if err := mgr.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	ws := mgr.Current()
	if p := ws.Problems(); p != nil {
		t.Fatalf("Problems = %v", p)
	}
	web := ws.SourceRules("web")
	if web.Plan == nil || len(web.Transformations) == 0 || web.ForwardViolationsTo == "" {
		t.Errorf("web's rules = %+v, want a plan, transformations and a forward", web)
	}
	if r := ws.DestinationRules("orders-hook", "web"); len(r.Transformations) == 0 || r.Filters.Len() == 0 {
		t.Errorf("orders-hook's rules for web = %+v, want transformations and filters", r)
	}
	if len(ws.Alerts) != len(cfg.Alerts) || len(ws.Alerts) == 0 {
		t.Errorf("snapshot alerts = %+v, want the file's %d", ws.Alerts, len(cfg.Alerts))
	}
}
