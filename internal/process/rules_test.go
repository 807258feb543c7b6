package process

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/confluxcdp/conflux/internal/config"
	"github.com/confluxcdp/conflux/internal/event"
	"github.com/confluxcdp/conflux/internal/process/plan"
	"github.com/confluxcdp/conflux/internal/process/transform"
	"github.com/confluxcdp/conflux/internal/stream"
	"github.com/confluxcdp/conflux/internal/stream/streamtest"
)

// orderPlan plans "Order Completed" with a required string order_id and a
// number total.
var orderPlan = config.TrackingPlan{ID: "shop", Name: "Shop", Rules: config.PlanRules{Events: map[string]json.RawMessage{
	"Order Completed": json.RawMessage(`{"type":"object","properties":{"properties":{"type":"object",
		"properties":{"order_id":{"type":"string"},"total":{"type":"number"}},"required":["order_id"]}}}`),
}}}

// testWorkspace has source web with the shop plan and enf, forwarding to
// quarantine and violations, plus the transformations ts on web.
func testWorkspace(t testing.TB, enf plan.Enforcement, ts ...transform.Transformation) *config.Workspace {
	t.Helper()
	c := config.Contents{
		Sources: []config.Source{
			{ID: "web", Name: "Website", WriteKey: "k1", TrackingPlan: "shop", Schema: config.SourceSchema{
				Enforcement: enf, ForwardBlockedTo: "quarantine", ForwardViolationsTo: "violations",
			}},
			{ID: "quarantine", WriteKey: "k2"},
			{ID: "violations", WriteKey: "k3"},
		},
		TrackingPlans: []config.TrackingPlan{orderPlan},
	}
	for i, tr := range ts {
		c.Transformations = append(c.Transformations, config.Transformation{Transformation: tr, Source: "web"})
		c.Transformations[i].ID = fmt.Sprintf("t%d", i)
	}
	w := config.BuildWorkspace(1, config.Settings{}, c)
	if p := w.Problems(); len(p) > 0 {
		t.Fatalf("workspace problems: %v", p)
	}
	return w
}

func order(id, props string) []byte {
	return fmt.Appendf(nil, `{"type":"track","event":"Order Completed","messageId":%q,"userId":"u1","context":{},"properties":%s,"receivedAt":"2026-12-01T10:00:00.000Z","timestamp":"2026-12-01T10:00:00.000Z"}`, id, props)
}

func TestRulesApplyPlanAndTransformations(t *testing.T) {
	enabled := true
	rename := transform.Transformation{If: "event = 'Order Completed'", Enabled: &enabled,
		PropertyRenames: []transform.PropertyRename{{OldName: "total", NewName: "revenue"}}}
	ws := testWorkspace(t, plan.Enforcement{TrackUnplannedEvents: plan.Block, TrackUnplannedProperties: plan.Omit, TrackViolations: plan.Block}, rename)

	l := streamtest.New(t)
	opts := testOptions(t)
	opts.Pipeline = NewRules(func() *config.Workspace { return ws }, nil, nil)
	r := start(t, l, opts)
	appendEvents(t, l,
		order("ok", `{"order_id":"o1","total":10,"coupon":"X"}`), // kept: coupon omitted, total renamed
		order("bad", `{"total":"ten"}`),                          // blocked: violations
		[]byte(`{"type":"track","event":"Unplanned","messageId":"un","userId":"u2","context":{},"receivedAt":"2026-12-01T10:00:00.000Z"}`),
		[]byte(`{"type":"page","name":"Home","messageId":"pg","anonymousId":"a","context":{},"receivedAt":"2026-12-01T10:00:00.000Z"}`),
	)
	r.waitFor(t, l)

	by := map[string][]string{}
	for _, rec := range streamtest.StreamRecords(t, l, stream.ProcessedStream) {
		by[rec.SourceID] = append(by[rec.SourceID], string(rec.JSON))
	}
	if len(by["web"]) != 2 {
		t.Fatalf("web records %v, want the kept order and the page", by["web"])
	}
	var kept event.Doc
	for _, s := range by["web"] {
		if strings.Contains(s, `"messageId":"ok"`) {
			kept, _ = event.Decode([]byte(s))
		}
		if strings.Contains(s, `"messageId":"pg"`) && !strings.HasPrefix(s, `{"type":"page","name":"Home"`) {
			t.Errorf("page changed although nothing applies to it: %s", s)
		}
	}
	props, _ := kept["properties"].(map[string]any)
	if props["revenue"] != json.Number("10") || props["total"] != nil || props["coupon"] != nil || props["order_id"] != "o1" {
		t.Errorf("kept order properties %v, want order_id and revenue only", props)
	}
	protocols, _ := kept["context"].(map[string]any)["protocols"].(map[string]any)
	if fmt.Sprint(protocols["omitted"]) != "[coupon]" {
		t.Errorf("context.protocols %v, want coupon omitted", protocols)
	}
	if len(by["quarantine"]) != 2 {
		t.Errorf("quarantine got %v, want the two blocked events unchanged", by["quarantine"])
	}
	for _, s := range by["quarantine"] {
		if strings.Contains(s, `"messageId":"bad"`) && s != string(order("bad", `{"total":"ten"}`)) {
			t.Errorf("blocked event changed on its way to quarantine: %s", s)
		}
	}
	if len(by["violations"]) < 3 {
		t.Errorf("violations source got %d events, want one per violation (required, type, unplanned event)", len(by["violations"]))
	}
	for _, s := range by["violations"] {
		if !strings.Contains(s, `"event":"Violation Generated"`) || !strings.Contains(s, `"userId":"schema-violations"`) {
			t.Errorf("violation event %s", s)
		}
	}
	if r.count("web", OutcomeBlocked) != 2 || r.count("web", OutcomeProcessed) != 2 {
		t.Errorf("web: blocked %d processed %d, want 2 and 2", r.count("web", OutcomeBlocked), r.count("web", OutcomeProcessed))
	}
}
