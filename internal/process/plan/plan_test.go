package plan

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestCompileErrors(t *testing.T) {
	const good = `{"type":"object"}`
	tests := []struct {
		name      string
		plan      Plan
		rule      string
		event     string
		wantInErr []string
	}{
		{
			name:      "event schema not JSON",
			plan:      Plan{ID: "tp_1", Events: map[string]json.RawMessage{"Order Completed": json.RawMessage(`{"type":`)}},
			rule:      RuleEvent,
			event:     "Order Completed",
			wantInErr: []string{`tracking plan "tp_1": event "Order Completed": invalid JSON`},
		},
		{
			name:      "event schema with trailing data",
			plan:      Plan{ID: "tp_1", Events: map[string]json.RawMessage{"A": json.RawMessage(`{} {}`)}},
			rule:      RuleEvent,
			event:     "A",
			wantInErr: []string{`event "A": invalid JSON`},
		},
		{
			name: "bad type in an event schema, others fine",
			plan: Plan{ID: "tp_1", Events: map[string]json.RawMessage{
				"A":   json.RawMessage(good),
				"Bad": json.RawMessage(`{"properties":{"properties":{"properties":{"total":{"type":"numbr"}}}}}`),
			}},
			rule:      RuleEvent,
			event:     "Bad",
			wantInErr: []string{`tracking plan "tp_1": event "Bad": invalid JSON schema: at /properties/properties/properties/total/type`},
		},
		{
			name:      "identify required not an array",
			plan:      Plan{ID: "tp_2", Identify: json.RawMessage(`{"required":"email"}`)},
			rule:      RuleIdentify,
			wantInErr: []string{`tracking plan "tp_2": identify: invalid JSON schema: at /required`},
		},
		{
			name:      "group pattern not RE2",
			plan:      Plan{ID: "tp_3", Group: json.RawMessage(`{"properties":{"traits":{"properties":{"x":{"pattern":"^(?!a)"}}}}}`)},
			rule:      RuleGroup,
			wantInErr: []string{`tracking plan "tp_3": group: invalid JSON schema:`, "(?!a)"},
		},
		{
			name:      "common refers to the network",
			plan:      Plan{ID: "tp_4", Common: json.RawMessage(`{"$ref":"https://example.com/schema.json"}`)},
			rule:      RuleCommon,
			wantInErr: []string{`tracking plan "tp_4": common: invalid JSON schema:`, "may not refer to other documents"},
		},
		{
			name:      "common refers to a file",
			plan:      Plan{ID: "tp_4", Common: json.RawMessage(`{"$ref":"file:///etc/passwd"}`)},
			rule:      RuleCommon,
			wantInErr: []string{"common:", "may not refer to other documents"},
		},
		{
			name:      "unknown $schema",
			plan:      Plan{ID: "tp_5", Common: json.RawMessage(`{"$schema":"https://example.com/my-draft"}`)},
			rule:      RuleCommon,
			wantInErr: []string{"common:", "may not refer to other documents"},
		},
		{
			name:      "dangling local $ref",
			plan:      Plan{ID: "tp_6", Events: map[string]json.RawMessage{"A": json.RawMessage(`{"$ref":"#/definitions/nope"}`)}},
			rule:      RuleEvent,
			event:     "A",
			wantInErr: []string{`event "A": invalid JSON schema:`},
		},
		{
			name:      "empty event name",
			plan:      Plan{ID: "tp_7", Events: map[string]json.RawMessage{"": json.RawMessage(good)}},
			rule:      RuleEvent,
			wantInErr: []string{`tracking plan "tp_7": event "": empty event name`},
		},
		{
			name:      "schema not an object or boolean",
			plan:      Plan{ID: "tp_8", Identify: json.RawMessage(`[]`)},
			rule:      RuleIdentify,
			wantInErr: []string{`identify: invalid JSON schema`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Compile(tt.plan)
			if err == nil {
				t.Fatalf("Compile succeeded: %+v", c)
			}
			msg := err.Error()
			for _, s := range tt.wantInErr {
				if !strings.Contains(msg, s) {
					t.Errorf("error %q does not contain %q", msg, s)
				}
			}
			if strings.Contains(msg, "\n") || strings.Contains(msg, ruleURL) {
				t.Errorf("error %q spans lines or names the internal URL", msg)
			}
			se, ok := errors.AsType[*SchemaError](err)
			if !ok {
				t.Fatalf("error %T is not a *SchemaError", err)
			}
			if se.Plan != tt.plan.ID || se.Rule != tt.rule || se.Event != tt.event || se.Err == nil {
				t.Errorf("SchemaError %+v, want plan %q rule %q event %q", se, tt.plan.ID, tt.rule, tt.event)
			}
		})
	}
}

func TestCompileAccepts(t *testing.T) {
	tests := []struct {
		name string
		plan Plan
	}{
		{"empty plan", Plan{}},
		{"boolean schemas", Plan{Common: json.RawMessage(`true`), Identify: json.RawMessage(` false `)}},
		{"2020-12 with $defs", Plan{Events: map[string]json.RawMessage{"A": json.RawMessage(
			`{"$schema":"https://json-schema.org/draft/2020-12/schema","$defs":{"s":{"type":"string"}},"properties":{"properties":{"properties":{"a":{"$ref":"#/$defs/s"}}}}}`)}}},
		{"Segment's extra keywords", Plan{Events: map[string]json.RawMessage{"A": json.RawMessage(
			`{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","labels":{},"description":"addToCart","properties":{"context":{},"traits":{},"properties":{"type":"object"}}}`)}}},
		{"same $id in two rules", Plan{
			Identify: json.RawMessage(`{"$id":"https://example.com/x.json"}`),
			Group:    json.RawMessage(`{"$id":"https://example.com/x.json"}`),
		}},
		{"the shop plan", shopPlan()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Compile(tt.plan)
			if err != nil {
				t.Fatal(err)
			}
			if c.ID() != tt.plan.ID || c.Name() != tt.plan.Name {
				t.Errorf("ID, Name = %q, %q", c.ID(), c.Name())
			}
		})
	}
}

func TestPlannedKeys(t *testing.T) {
	c := mustCompile(t, shopPlan())
	tests := []struct {
		r    *rule
		want []string
	}{
		{c.events["Order Completed"], []string{"channel", "coupon", "currency", "items", "order_id", "placed_at", "total"}},
		{c.events["Product Viewed"], []string{"sku"}},
		{c.events["Signed Out"], nil},
		{c.identify, []string{"email", "name"}},
		{c.group, []string{"plan", "seats"}},
	}
	for i, tt := range tests {
		var got []string
		for k := range tt.r.planned {
			got = append(got, k)
		}
		if !sameSet(got, tt.want) {
			t.Errorf("%d: planned %q, want %q", i, got, tt.want)
		}
	}
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]bool{}
	for _, s := range a {
		m[s] = true
	}
	for _, s := range b {
		if !m[s] {
			return false
		}
	}
	return true
}

func TestWrap(t *testing.T) {
	tests := []struct {
		name string
		got  json.RawMessage
		want string
	}{
		{"properties", PropertiesSchema(json.RawMessage(` {"required":["a"]} `)),
			`{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","properties":{"properties":{"required":["a"]}}}`},
		{"traits", TraitsSchema(json.RawMessage(`{"type":"object"}`)),
			`{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","properties":{"traits":{"type":"object"}}}`},
		{"invalid JSON is returned as is", PropertiesSchema(json.RawMessage(`{"a":1}, "b": {`)), `{"a":1}, "b": {`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if string(tt.got) != tt.want {
				t.Errorf("got  %s\nwant %s", tt.got, tt.want)
			}
		})
	}
	_, err := Compile(Plan{ID: "tp", Events: map[string]json.RawMessage{"A": PropertiesSchema(json.RawMessage(`{"a":1}, "b": {`))}})
	if err == nil || !strings.Contains(err.Error(), `event "A": invalid JSON`) {
		t.Errorf("Compile of a wrapped invalid schema: %v", err)
	}
}
