package process

import (
	"encoding/json"
	"fmt"
	"slices"
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
	return fmt.Appendf(nil, `{"type":"track","event":"Order Completed","messageId":%q,"userId":"u1","context":{"ip":"203.0.113.9","library":{"name":"analytics.js"}},"properties":%s,"receivedAt":"2026-12-01T10:00:00.000Z","timestamp":"2026-12-01T10:00:00.000Z"}`, id, props)
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
	ctx, _ := kept["context"].(map[string]any)
	protocols, _ := ctx["protocols"].(map[string]any)
	if fmt.Sprint(protocols["omitted"]) != "[coupon]" {
		t.Errorf("context.protocols %v, want coupon omitted", protocols)
	}
	if ctx["ip"] != "203.0.113.9" || fmt.Sprint(ctx["library"]) != "map[name:analytics.js]" {
		t.Errorf("context %v lost what the event had besides protocols", ctx)
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

// TestRulesDecodeOnlyWhatTheyRead runs a plan that can be checked on a few
// top-level fields (no violation forwarding): the context is left
// undecoded, and the protocols the plan records are merged into it.
func TestRulesDecodeOnlyWhatTheyRead(t *testing.T) {
	ws := config.BuildWorkspace(1, config.Settings{}, config.Contents{
		Sources: []config.Source{{ID: "web", WriteKey: "k", TrackingPlan: "shop", Schema: config.SourceSchema{
			Enforcement: plan.Enforcement{TrackUnplannedProperties: plan.Omit},
		}}},
		TrackingPlans: []config.TrackingPlan{orderPlan},
	})
	if reads := ws.SourceRules("web").Reads; reads == nil || slices.Contains(reads, "context") {
		t.Fatalf("Reads = %v, want the plan's few fields, without context", reads)
	}
	r := NewRules(func() *config.Workspace { return ws }, nil, nil)
	var got []byte
	out := Emitter{source: "web", self: func(_ string, rec []byte) { got = append([]byte(nil), rec...) }, other: func(string, []byte) {}}
	in := order("m", `{"order_id":"o1","coupon":"X"}`)
	if o := r.Process(t.Context(), "web", in, out); o != OutcomeProcessed {
		t.Fatalf("outcome %s", o)
	}
	want := `{"type":"track","event":"Order Completed","messageId":"m","userId":"u1",` +
		`"context":{"ip":"203.0.113.9","library":{"name":"analytics.js"},"protocols":{"omitted":["coupon"],` +
		`"violations":[{"description":"properties.coupon is not in the tracking plan","field":"properties.coupon","type":"Unplanned Property"}]}},` +
		`"properties":{"order_id":"o1"},"receivedAt":"2026-12-01T10:00:00.000Z","timestamp":"2026-12-01T10:00:00.000Z"}`
	if string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}
