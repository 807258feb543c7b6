package plan

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/confluxcdp/conflux/internal/event"
)

// shopPlan is the plan most tests check against.
func shopPlan() Plan {
	return Plan{
		ID:   "tp_shop",
		Name: "Shop",
		Events: map[string]json.RawMessage{
			// The canonical, whole-event form.
			"Order Completed": json.RawMessage(`{
				"$schema": "http://json-schema.org/draft-07/schema#",
				"type": "object",
				"properties": {
					"properties": {
						"type": "object",
						"properties": {
							"order_id":  {"type": "string"},
							"total":     {"type": "number"},
							"currency":  {"enum": ["USD", "EUR"]},
							"coupon":    {"type": "string", "pattern": "^[A-Z]{4}$"},
							"placed_at": {"type": "string", "format": "date-time"},
							"channel":   {"const": "web"},
							"items":     {"type": "array", "items": {"type": "object", "required": ["sku"]}}
						},
						"required": ["order_id"]
					}
				}
			}`),
			// The properties-only convenience form.
			"Product Viewed": PropertiesSchema(json.RawMessage(`{"type": "object", "properties": {"sku": {"type": "string"}}}`)),
			// Planned, unconstrained, no planned properties.
			"Signed Out": nil,
		},
		Identify: TraitsSchema(json.RawMessage(`{
			"type": "object",
			"properties": {"email": {"type": "string", "format": "email"}, "name": {"type": "string"}},
			"required": ["email"]
		}`)),
		Group: TraitsSchema(json.RawMessage(`{"type": "object", "properties": {"plan": {"enum": ["free", "pro"]}, "seats": {"type": "integer"}}}`)),
		Common: json.RawMessage(`{
			"type": "object",
			"properties": {
				"context": {"type": "object", "properties": {"app": {"type": "object", "properties": {"version": {"type": "string"}}}}},
				"properties": {"type": "object", "properties": {"debug": {"type": "boolean"}}},
				"traits": {"type": "object", "properties": {"debug": {"type": "boolean"}}}
			}
		}`),
	}
}

func mustCompile(t testing.TB, p Plan) *Compiled {
	t.Helper()
	c, err := Compile(p)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func decode(t testing.TB, s string) event.Doc {
	t.Helper()
	doc, err := event.Decode([]byte(s))
	if err != nil {
		t.Fatalf("%v: %s", err, s)
	}
	return doc
}

func encode(t testing.TB, doc event.Doc) string {
	t.Helper()
	b, err := event.Encode(nil, doc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// ev builds a stored event of type typ with the extra members members
// (JSON object members, without braces).
func ev(typ, members string) string {
	s := `{"type":"` + typ + `","messageId":"m-1","context":{"library":{"name":"analytics.js","version":"1.0"}},` +
		`"timestamp":"2026-01-02T03:04:05.000Z","receivedAt":"2026-01-02T03:04:06.000Z"`
	if members != "" {
		s += "," + members
	}
	return s + "}"
}

// protocols builds the expected context with a protocols member.
func protocols(p string) string {
	return `"context":{"library":{"name":"analytics.js","version":"1.0"},"protocols":` + p + `}`
}

// withContext is ev with the context replaced.
func withContext(typ, context, members string) string {
	s := `{"type":"` + typ + `","messageId":"m-1",` + context + `,` +
		`"timestamp":"2026-01-02T03:04:05.000Z","receivedAt":"2026-01-02T03:04:06.000Z"`
	if members != "" {
		s += "," + members
	}
	return s + "}"
}

// brief renders violations as "Type field" for comparison.
func brief(vs []Violation) []string {
	var out []string
	for _, v := range vs {
		out = append(out, string(v.Type)+" "+v.Field)
	}
	return out
}

func TestCheck(t *testing.T) {
	c := mustCompile(t, shopPlan())
	const validOrder = `"event":"Order Completed","properties":{"order_id":"o1","total":12.5,"currency":"USD"}`

	tests := []struct {
		name      string
		enf       Enforcement
		in        string
		block     bool
		unplanned bool
		want      []string // brief violations
		omitted   []string
		onViol    []string
		out       string // the event after Check; "" means unchanged
	}{
		{
			name: "valid planned track is untouched",
			in:   ev("track", validOrder),
		},
		{
			name: "properties-only rule",
			in:   ev("track", `"event":"Product Viewed","properties":{"sku":7}`),
			want: []string{"Type properties.sku"},
			out: withContext("track", protocols(`{"violations":[{"type":"Type","field":"properties.sku","description":"properties.sku: got number, want string"}]}`),
				`"event":"Product Viewed","properties":{"sku":7}`),
		},
		{
			name:      "unplanned event allowed",
			in:        ev("track", `"event":"order completed","properties":{"a":1}`),
			unplanned: true,
			want:      []string{"Unplanned Event event"},
			out: withContext("track", protocols(`{"violations":[{"type":"Unplanned Event","field":"event","description":"event \"order completed\" is not in the tracking plan"}]}`),
				`"event":"order completed","properties":{"a":1}`),
		},
		{
			name:      "unplanned event blocked",
			enf:       Enforcement{TrackUnplannedEvents: Block, TrackUnplannedProperties: Omit},
			in:        ev("track", `"event":"Nope","properties":{"a":1}`),
			block:     true,
			unplanned: true,
			want:      []string{"Unplanned Event event"},
		},
		{
			name:      "unplanned event allowed loses its properties when unplanned properties are omitted",
			enf:       Enforcement{TrackUnplannedProperties: Omit},
			in:        ev("track", `"event":"Nope","properties":{"b":1,"a":2}`),
			unplanned: true,
			want:      []string{"Unplanned Event event"},
			omitted:   []string{"a", "b"},
			out: withContext("track", protocols(`{"omitted":["a","b"],"violations":[{"type":"Unplanned Event","field":"event","description":"event \"Nope\" is not in the tracking plan"}]}`),
				`"event":"Nope","properties":{}`),
		},
		{
			name: "unplanned property allowed",
			in:   ev("track", `"event":"Order Completed","properties":{"order_id":"o1","extra":true}`),
			want: []string{"Unplanned Property properties.extra"},
			out: withContext("track", protocols(`{"violations":[{"type":"Unplanned Property","field":"properties.extra","description":"properties.extra is not in the tracking plan"}]}`),
				`"event":"Order Completed","properties":{"order_id":"o1","extra":true}`),
		},
		{
			name:    "unplanned properties omitted",
			enf:     Enforcement{TrackUnplannedProperties: Omit},
			in:      ev("track", `"event":"Order Completed","properties":{"order_id":"o1","zeta":1,"alpha":{"x":1}}`),
			want:    []string{"Unplanned Property properties.alpha", "Unplanned Property properties.zeta"},
			omitted: []string{"alpha", "zeta"},
			out: withContext("track", protocols(`{"omitted":["alpha","zeta"],"violations":[`+
				`{"type":"Unplanned Property","field":"properties.alpha","description":"properties.alpha is not in the tracking plan"},`+
				`{"type":"Unplanned Property","field":"properties.zeta","description":"properties.zeta is not in the tracking plan"}]}`),
				`"event":"Order Completed","properties":{"order_id":"o1"}`),
		},
		{
			name:    "planned event without a schema plans no properties",
			enf:     Enforcement{TrackUnplannedProperties: Omit},
			in:      ev("track", `"event":"Signed Out","properties":{"why":"bored"}`),
			want:    []string{"Unplanned Property properties.why"},
			omitted: []string{"why"},
			out: withContext("track", protocols(`{"omitted":["why"],"violations":[{"type":"Unplanned Property","field":"properties.why","description":"properties.why is not in the tracking plan"}]}`),
				`"event":"Signed Out","properties":{}`),
		},
		{
			name: "required allowed",
			in:   ev("track", `"event":"Order Completed","properties":{"total":1}`),
			want: []string{"Required properties.order_id"},
			out: withContext("track", protocols(`{"violations":[{"type":"Required","field":"properties.order_id","description":"properties.order_id is required"}]}`),
				`"event":"Order Completed","properties":{"total":1}`),
		},
		{
			name: "required applies to a track without properties, which stays without",
			in:   ev("track", `"event":"Order Completed"`),
			want: []string{"Required properties.order_id"},
			out: withContext("track", protocols(`{"violations":[{"type":"Required","field":"properties.order_id","description":"properties.order_id is required"}]}`),
				`"event":"Order Completed"`),
		},
		{
			name:  "violation blocked before anything is omitted",
			enf:   Enforcement{TrackUnplannedProperties: Omit, TrackViolations: Block},
			in:    ev("track", `"event":"Order Completed","properties":{"extra":1}`),
			block: true,
			want:  []string{"Required properties.order_id", "Unplanned Property properties.extra"},
		},
		{
			name:   "violations omit the offending properties only",
			enf:    Enforcement{TrackViolations: OmitProperties},
			in:     ev("track", `"event":"Order Completed","properties":{"total":"12","currency":"GBP","coupon":"abc","placed_at":"yesterday","channel":"app","items":[{"sku":"a"},{}],"order_id":"o1"}`),
			want:   []string{"Const properties.channel", "Pattern properties.coupon", "Enum properties.currency", "Required properties.items.1.sku", "Format properties.placed_at", "Type properties.total"},
			onViol: []string{"channel", "coupon", "currency", "items", "placed_at", "total"},
		},
		{
			name: "a missing required property omits nothing",
			enf:  Enforcement{TrackViolations: OmitProperties},
			in:   ev("track", `"event":"Order Completed","properties":{"total":2}`),
			want: []string{"Required properties.order_id"},
			out: withContext("track", protocols(`{"violations":[{"type":"Required","field":"properties.order_id","description":"properties.order_id is required"}]}`),
				`"event":"Order Completed","properties":{"total":2}`),
		},
		{
			name:  "identify violation blocked",
			enf:   Enforcement{IdentifyViolations: Block},
			in:    ev("identify", `"userId":"u1","traits":{"name":"Ann"}`),
			block: true,
			want:  []string{"Required traits.email"},
		},
		{
			name:    "identify unplanned traits and violations omitted",
			enf:     Enforcement{IdentifyUnplannedTraits: Omit, IdentifyViolations: OmitTraits},
			in:      ev("identify", `"userId":"u1","traits":{"email":"not an address","name":"Ann","age":40}`),
			want:    []string{"Format traits.email", "Unplanned Trait traits.age"},
			omitted: []string{"age"},
			onViol:  []string{"email"},
		},
		{
			name: "identify unplanned traits allowed",
			in:   ev("identify", `"userId":"u1","traits":{"email":"a@example.com","age":40}`),
			want: []string{"Unplanned Trait traits.age"},
		},
		{
			name: "identify without traits still needs the required ones",
			in:   ev("identify", `"userId":"u1"`),
			want: []string{"Required traits.email"},
		},
		{
			name:  "group violation blocked",
			enf:   Enforcement{GroupViolations: Block},
			in:    ev("group", `"userId":"u1","groupId":"g1","traits":{"plan":"gold"}`),
			block: true,
			want:  []string{"Enum traits.plan"},
		},
		{
			name:    "group unplanned traits and violations omitted",
			enf:     Enforcement{GroupUnplannedTraits: Omit, GroupViolations: OmitTraits},
			in:      ev("group", `"userId":"u1","groupId":"g1","traits":{"plan":"gold","seats":3,"region":"eu"}`),
			want:    []string{"Enum traits.plan", "Unplanned Trait traits.region"},
			omitted: []string{"region"},
			onViol:  []string{"plan"},
			out: withContext("group", protocols(`{"omitted":["region"],"omitted_on_violation":["plan"],"violations":[`+
				`{"type":"Enum","field":"traits.plan","description":"traits.plan: value must be one of 'free', 'pro'"},`+
				`{"type":"Unplanned Trait","field":"traits.region","description":"traits.region is not in the tracking plan"}]}`),
				`"userId":"u1","groupId":"g1","traits":{"seats":3}`),
		},
		{
			name: "group integer type",
			in:   ev("group", `"userId":"u1","groupId":"g1","traits":{"seats":2.5}`),
			want: []string{"Type traits.seats"},
		},
		{
			name: "page is checked by the common schema only",
			in:   ev("page", `"name":"Home","properties":{"debug":"yes","anything":1}`),
			want: []string{"Type properties.debug"},
		},
		{
			name:   "common violations omitted",
			enf:    Enforcement{CommonViolations: Omit},
			in:     ev("screen", `"name":"Home","properties":{"debug":"yes","anything":1}`),
			want:   []string{"Type properties.debug"},
			onViol: []string{"debug"},
			out: withContext("screen", protocols(`{"omitted_on_violation":["debug"],"violations":[{"type":"Type","field":"properties.debug","description":"properties.debug: got string, want boolean"}]}`),
				`"name":"Home","properties":{"anything":1}`),
		},
		{
			name:  "common violations blocked",
			enf:   Enforcement{CommonViolations: Block},
			in:    ev("identify", `"userId":"u1","traits":{"email":"a@example.com","debug":1}`),
			block: true,
			want:  []string{"Unplanned Trait traits.debug", "Type traits.debug"},
		},
		{
			name: "common violation outside properties omits nothing",
			enf:  Enforcement{CommonViolations: Omit},
			in:   withContext("alias", `"context":{"app":{"version":3}}`, `"userId":"u1","previousId":"a1"`),
			want: []string{"Type context.app.version"},
			out: withContext("alias", `"context":{"app":{"version":3},"protocols":{"violations":[{"type":"Type","field":"context.app.version","description":"context.app.version: got number, want string"}]}}`,
				`"userId":"u1","previousId":"a1"`),
		},
		{
			name:    "common schema sees the event after the standard controls",
			enf:     Enforcement{TrackUnplannedProperties: Omit, CommonViolations: Block},
			in:      ev("track", `"event":"Order Completed","properties":{"order_id":"o1","debug":"yes"}`),
			want:    []string{"Unplanned Property properties.debug"},
			omitted: []string{"debug"},
		},
		{
			name:  "common block puts back standard omissions",
			enf:   Enforcement{TrackUnplannedProperties: Omit, CommonViolations: Block},
			in:    withContext("track", `"context":{"app":{"version":1}}`, `"event":"Order Completed","properties":{"order_id":"o1","x":1}`),
			block: true,
			want:  []string{"Unplanned Property properties.x", "Type context.app.version"},
		},
		{
			name: "other protocols members kept, Conflux's own replaced",
			enf:  Enforcement{TrackUnplannedProperties: Omit},
			in: withContext("track", `"context":{"protocols":{"event_version":2,"omitted":["forged"]}}`,
				`"event":"Order Completed","properties":{"order_id":"o1","x":1}`),
			want:    []string{"Unplanned Property properties.x"},
			omitted: []string{"x"},
			out: withContext("track", `"context":{"protocols":{"event_version":2,"omitted":["x"],"violations":[{"type":"Unplanned Property","field":"properties.x","description":"properties.x is not in the tracking plan"}]}}`,
				`"event":"Order Completed","properties":{"order_id":"o1"}`),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.enf.Validate(); err != nil {
				t.Fatalf("test enforcement: %v", err)
			}
			doc := decode(t, tt.in)
			res := c.Check(doc, tt.enf)

			if got := res.Verdict == VerdictBlock; got != tt.block {
				t.Errorf("verdict %v, want block=%v", res.Verdict, tt.block)
			}
			if res.Unplanned != tt.unplanned {
				t.Errorf("Unplanned = %v, want %v", res.Unplanned, tt.unplanned)
			}
			if got := brief(res.Violations); !slices.Equal(got, tt.want) {
				t.Errorf("violations\n got %q\nwant %q", got, tt.want)
			}
			if !slices.Equal(res.Omitted, tt.omitted) {
				t.Errorf("Omitted = %q, want %q", res.Omitted, tt.omitted)
			}
			if !slices.Equal(res.OmittedOnViolation, tt.onViol) {
				t.Errorf("OmittedOnViolation = %q, want %q", res.OmittedOnViolation, tt.onViol)
			}

			want := tt.out
			switch {
			case tt.block || len(tt.want) == 0:
				want = tt.in // blocked and clean events are left exactly as they were
			case want == "":
				return // the other fields say enough
			}
			if got, want := encode(t, doc), encode(t, decode(t, want)); got != want {
				t.Errorf("event after Check\n got %s\nwant %s", got, want)
			}
		})
	}
}

// TestCheckRecordsOmissions checks the context.protocols shape for a kept
// event from which both kinds of omission removed keys.
func TestCheckRecordsOmissions(t *testing.T) {
	c := mustCompile(t, shopPlan())
	doc := decode(t, ev("track", `"event":"Order Completed","properties":{"order_id":"o1","total":"x","extra":1}`))
	res := c.Check(doc, Enforcement{TrackUnplannedProperties: Omit, TrackViolations: OmitProperties})
	if res.Verdict != VerdictKeep {
		t.Fatalf("verdict %v", res.Verdict)
	}
	want := withContext("track", protocols(`{"omitted":["extra"],"omitted_on_violation":["total"],"violations":[`+
		`{"type":"Type","field":"properties.total","description":"properties.total: got string, want number"},`+
		`{"type":"Unplanned Property","field":"properties.extra","description":"properties.extra is not in the tracking plan"}]}`),
		`"event":"Order Completed","properties":{"order_id":"o1"}`)
	if got, want := encode(t, doc), encode(t, decode(t, want)); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestCheckWithoutTraitRules(t *testing.T) {
	c := mustCompile(t, Plan{ID: "tp", Events: map[string]json.RawMessage{"A": nil}})
	enf := Enforcement{IdentifyUnplannedTraits: Omit, IdentifyViolations: Block, GroupUnplannedTraits: Omit, GroupViolations: Block, CommonViolations: Block}
	for _, in := range []string{
		ev("identify", `"userId":"u1","traits":{"anything":1}`),
		ev("group", `"groupId":"g1","traits":{"anything":1}`),
		ev("page", `"properties":{"anything":1}`),
	} {
		doc := decode(t, in)
		res := c.Check(doc, enf)
		if res.Verdict != VerdictKeep || len(res.Violations) != 0 || len(res.Omitted) != 0 {
			t.Errorf("%s: got %+v, want nothing done", in, res)
		}
		if got, want := encode(t, doc), encode(t, decode(t, in)); got != want {
			t.Errorf("event changed: %s", got)
		}
	}
}

// TestCheckViolationKinds checks the type, field and description of each
// kind of schema violation, and that omission follows the field.
func TestCheckViolationKinds(t *testing.T) {
	tests := []struct {
		name   string
		schema string // the schema of properties.properties.properties.p
		value  string
		want   Violation
	}{
		{"type", `{"type":"string"}`, `1`, Violation{TypeMismatch, "properties.p", "properties.p: got number, want string"}},
		{"integer", `{"type":"integer"}`, `1.5`, Violation{TypeMismatch, "properties.p", "properties.p: got number, want integer"}},
		{"null allowed", `{"type":["string","null"]}`, `true`, Violation{TypeMismatch, "properties.p", "properties.p: got boolean, want null or string"}},
		{"enum", `{"enum":["a","b"]}`, `"c"`, Violation{Enum, "properties.p", `properties.p: value must be one of 'a', 'b'`}},
		{"const", `{"const":"a"}`, `"c"`, Violation{Const, "properties.p", `properties.p: value must be 'a'`}},
		{"pattern", `{"type":"string","pattern":"^fall|winter$"}`, `"summer"`, Violation{Pattern, "properties.p", `properties.p: 'summer' does not match pattern '^fall|winter$'`}},
		{"date-time", `{"type":"string","format":"date-time"}`, `"2026-13-01"`, Violation{Format, "properties.p", ""}},
		{"nested required", `{"type":"object","required":["id"]}`, `{}`, Violation{Required, "properties.p.id", "properties.p.id is required"}},
		{"array item", `{"type":"array","items":{"type":"string"}}`, `["a",2]`, Violation{TypeMismatch, "properties.p.1", "properties.p.1: got number, want string"}},
		{"min length", `{"type":"string","minLength":3}`, `"ab"`, Violation{"Min Length", "properties.p", "properties.p: minLength: got 2, want 3"}},
		{"maximum", `{"type":"number","maximum":10}`, `11`, Violation{"Maximum", "properties.p", "properties.p: maximum: got 11, want 10"}},
		{"additional properties", `{"type":"object","additionalProperties":false}`, `{"x":1}`, Violation{"Additional Properties", "properties.p.x", "properties.p.x is not allowed"}},
		{"false schema", `false`, `1`, Violation{NotAllowed, "properties.p", "properties.p: false schema"}},
		{"any of", `{"anyOf":[{"type":"string"},{"type":"boolean"}]}`, `1`, Violation{"Any Of", "properties.p", "properties.p: 'anyOf' failed"}},
		{"all of", `{"allOf":[{"type":"number"},{"minimum":5}]}`, `1`, Violation{"Minimum", "properties.p", "properties.p: minimum: got 1, want 5"}},
		{"ref", `{"$ref":"#/definitions/s"}`, `1`, Violation{TypeMismatch, "properties.p", "properties.p: got number, want string"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			schema := `{"definitions":{"s":{"type":"string"}},"properties":{"properties":{"properties":{"p":` + tt.schema + `}}}}`
			c := mustCompile(t, Plan{ID: "tp", Events: map[string]json.RawMessage{"E": json.RawMessage(schema)}})
			doc := decode(t, ev("track", `"event":"E","properties":{"p":`+tt.value+`,"q":1}`))
			res := c.Check(doc, Enforcement{TrackViolations: OmitProperties})
			var got []Violation
			for _, v := range res.Violations {
				if v.Type != UnplannedProperty {
					got = append(got, v)
				}
			}
			if len(got) != 1 {
				t.Fatalf("violations %+v, want one like %+v", got, tt.want)
			}
			want := tt.want
			if want.Description == "" { // the validator's wording of format errors is its own
				want.Description = got[0].Description
				if !strings.HasPrefix(want.Description, "properties.p: ") || !strings.Contains(want.Description, "date-time") {
					t.Errorf("description %q", want.Description)
				}
			}
			if got[0] != want {
				t.Errorf("got  %+v\nwant %+v", got[0], want)
			}
			if !slices.Equal(res.OmittedOnViolation, []string{"p"}) {
				t.Errorf("omitted on violation %q, want [p]", res.OmittedOnViolation)
			}
			props := doc["properties"].(map[string]any)
			if _, ok := props["p"]; ok {
				t.Errorf("p not omitted")
			}
			if _, ok := props["q"]; !ok {
				t.Errorf("q omitted")
			}
		})
	}
}

// TestCheckDrafts checks that $schema selects the draft, and that format is
// asserted in 2020-12 too.
func TestCheckDrafts(t *testing.T) {
	tests := []struct {
		name, schema, props string
		want                []string
	}{
		{
			name:   "2020-12 format asserted",
			schema: `{"$schema":"https://json-schema.org/draft/2020-12/schema","properties":{"properties":{"properties":{"at":{"format":"date-time"}}}}}`,
			props:  `{"at":"soon"}`,
			want:   []string{"Format properties.at"},
		},
		{
			name:   "2020-12 dependentRequired",
			schema: `{"$schema":"https://json-schema.org/draft/2020-12/schema","properties":{"properties":{"properties":{"a":{},"b":{}},"dependentRequired":{"a":["b"]}}}}`,
			props:  `{"a":1}`,
			want:   []string{"Dependent Required properties"},
		},
		{
			name:   "draft-07 by default ignores 2020-12 keywords",
			schema: `{"properties":{"properties":{"properties":{"a":{},"b":{}},"dependentRequired":{"a":["b"]}}}}`,
			props:  `{"a":1}`,
		},
		{
			name:   "draft-07 dependencies",
			schema: `{"properties":{"properties":{"properties":{"a":{},"b":{}},"dependencies":{"a":["b"]}}}}`,
			props:  `{"a":1}`,
			want:   []string{"Dependency properties"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustCompile(t, Plan{ID: "tp", Events: map[string]json.RawMessage{"E": json.RawMessage(tt.schema)}})
			res := c.Check(decode(t, ev("track", `"event":"E","properties":`+tt.props)), Enforcement{})
			if got := brief(res.Violations); !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestCheckConcurrent runs Check from several goroutines on one Compiled;
// run with -race.
func TestCheckConcurrent(t *testing.T) {
	c := mustCompile(t, shopPlan())
	done := make(chan []string)
	for i := range 8 {
		go func() {
			var got []string
			for range 50 {
				doc := decode(t, ev("track", fmt.Sprintf(`"event":"Order Completed","properties":{"total":%d,"x":1}`, i)))
				got = brief(c.Check(doc, Enforcement{TrackUnplannedProperties: Omit}).Violations)
			}
			done <- got
		}()
	}
	want := []string{"Required properties.order_id", "Unplanned Property properties.x"}
	for range 8 {
		if got := <-done; !reflect.DeepEqual(got, want) {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}

// TestCheckCommonSeesEventAsIs checks that only an event's own rule gets an
// empty properties or traits object filled in: the common rule can require
// the object itself.
func TestCheckCommonSeesEventAsIs(t *testing.T) {
	c := mustCompile(t, Plan{
		ID:       "tp",
		Identify: TraitsSchema(json.RawMessage(`{"required":["email"]}`)),
		Common:   json.RawMessage(`{"required":["userId","traits"]}`),
	})
	res := c.Check(decode(t, ev("identify", `"anonymousId":"a"`)), Enforcement{})
	want := []string{"Required traits.email", "Required traits", "Required userId"}
	if got := brief(res.Violations); !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}
