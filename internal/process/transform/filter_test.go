package transform

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/confluxcdp/conflux/internal/fql"
	"go.yaml.in/yaml/v3"
)

const filterEvent = `{"type":"track","event":"Order Completed","userId":"u1","anonymousId":"a1",` +
	`"messageId":"m1","timestamp":"t","receivedAt":"r",` +
	`"context":{"ip":"1.2.3.4","userAgent":"ua","library":{"name":"l"},"traits":{"email":"c@x"}},` +
	`"properties":{"email":"p@x","total":10,"address":{"street":"s","city":"c"},` +
	`"products":[{"sku":"a","price":1},{"sku":"b","price":2},"not an object"]},` +
	`"traits":{"email":"t@x","name":"n"}}`

func fields(kv ...any) Fields {
	f := Fields{}
	for i := 0; i < len(kv); i += 2 {
		f[kv[i].(string)] = kv[i+1].([]string)
	}
	return f
}

func TestFiltersApply(t *testing.T) {
	tests := []struct {
		name    string
		filters []Filter
		in      string // default filterEvent
		want    Outcome
		event   string // the event after Apply; "" means unchanged
	}{
		{name: "no filters", want: Outcome{}},
		{
			name:    "drop matches",
			filters: []Filter{{ID: "f0", If: "event = 'Other'", Actions: []Action{{Type: DropEvent}}}, {ID: "f1", If: "event = 'Order Completed'", Actions: []Action{{Type: DropEvent}}}},
			want:    Outcome{Dropped: true, Reason: ReasonFiltered, FilterID: "f1", FilterIndex: 1},
		},
		{
			name:    "drop does not match",
			filters: []Filter{{If: "event = 'Other'", Actions: []Action{{Type: DropEvent}}}},
		},
		{
			name:    "only send: a drop with a negated condition keeps what matches",
			filters: []Filter{{If: "!(event = 'Order Completed' or event = 'Signed Up')", Actions: []Action{{Type: DropEvent}}}},
		},
		{
			name:    "only send drops what does not match",
			filters: []Filter{{ID: "only", If: "!(event = 'Signed Up')", Actions: []Action{{Type: DropEvent}}}},
			want:    Outcome{Dropped: true, Reason: ReasonFiltered, FilterID: "only"},
		},
		{
			name:    "drop all",
			filters: []Filter{{If: "all", Actions: []Action{{Type: "DROP"}}}},
			want:    Outcome{Dropped: true, Reason: ReasonFiltered},
		},
		{
			name:    "disabled filter does nothing",
			filters: []Filter{{If: "all", Enabled: ptr(false), Actions: []Action{{Type: DropEvent}}}},
		},
		{
			name:    "sample 0 drops",
			filters: []Filter{{ID: "s", If: "all", Actions: []Action{{Type: SampleEvent, Percent: ptr(0.0)}}}},
			want:    Outcome{Dropped: true, Reason: ReasonSampled, FilterID: "s"},
		},
		{
			name:    "sample 1 keeps",
			filters: []Filter{{If: "all", Actions: []Action{{Type: "SAMPLE", Percent: ptr(1.0)}}}},
		},
		{
			name:    "sample that does not match keeps",
			filters: []Filter{{If: "event = 'Other'", Actions: []Action{{Type: SampleEvent, Percent: ptr(0.0)}}}},
		},
		{
			name: "blocklist properties, traits and context",
			filters: []Filter{{If: "all", Actions: []Action{{Type: BlocklistFields, Fields: fields(
				"properties", []string{"email", "missing", "address.street"},
				"traits", []string{"email"},
				"context", []string{"ip", "traits.email"},
			)}}}},
			want: Outcome{Removed: 5},
			event: `{"type":"track","event":"Order Completed","userId":"u1","anonymousId":"a1",` +
				`"messageId":"m1","timestamp":"t","receivedAt":"r",` +
				`"context":{"userAgent":"ua","library":{"name":"l"},"traits":{}},` +
				`"properties":{"total":10,"address":{"city":"c"},` +
				`"products":[{"sku":"a","price":1},{"sku":"b","price":2},"not an object"]},` +
				`"traits":{"name":"n"}}`,
		},
		{
			name: "blocklist inside every object of a list",
			filters: []Filter{{If: "all", Actions: []Action{{Type: "DROP_PROPERTIES", Fields: fields(
				"properties.products", []string{"price"},
			)}}}},
			want:  Outcome{Removed: 2},
			event: strings.Replace(filterEvent, `[{"sku":"a","price":1},{"sku":"b","price":2},`, `[{"sku":"a"},{"sku":"b"},`, 1),
		},
		{
			name: "blocklist the same list by a dotted entry",
			filters: []Filter{{If: "all", Actions: []Action{{Type: "blacklist_fields", Fields: fields(
				"properties", []string{"products.price"},
			)}}}},
			want:  Outcome{Removed: 2},
			event: strings.Replace(filterEvent, `[{"sku":"a","price":1},{"sku":"b","price":2},`, `[{"sku":"a"},{"sku":"b"},`, 1),
		},
		{
			name:    "blocklist top-level fields",
			filters: []Filter{{If: "all", Actions: []Action{{Type: BlocklistFields, Fields: fields("", []string{"userId", "anonymousId", "context.userAgent"})}}}},
			want:    Outcome{Removed: 3},
			event:   strings.Replace(strings.Replace(filterEvent, `"userId":"u1","anonymousId":"a1",`, "", 1), `"userAgent":"ua",`, "", 1),
		},
		{
			name: "whitelist",
			filters: []Filter{{If: "all", Actions: []Action{{Type: WhitelistFields, Fields: fields(
				"properties", []string{"total", "address.city"},
				"context", []string{"library"},
			)}}}},
			want: Outcome{Removed: 6},
			event: `{"type":"track","event":"Order Completed","userId":"u1","anonymousId":"a1",` +
				`"messageId":"m1","timestamp":"t","receivedAt":"r",` +
				`"context":{"library":{"name":"l"}},` +
				`"properties":{"total":10,"address":{"city":"c"}},` +
				`"traits":{"email":"t@x","name":"n"}}`,
		},
		{
			name:    "whitelist inside every object of a list",
			filters: []Filter{{If: "all", Actions: []Action{{Type: "ALLOW_PROPERTIES", Fields: fields("properties.products", []string{"sku"})}}}},
			want:    Outcome{Removed: 2},
			event:   strings.Replace(filterEvent, `[{"sku":"a","price":1},{"sku":"b","price":2},`, `[{"sku":"a"},{"sku":"b"},`, 1),
		},
		{
			name:    "empty whitelist keeps nothing",
			filters: []Filter{{If: "all", Actions: []Action{{Type: WhitelistFields, Fields: fields("traits", []string{})}}}},
			want:    Outcome{Removed: 2},
			event:   strings.Replace(filterEvent, `"traits":{"email":"t@x","name":"n"}`, `"traits":{}`, 1),
		},
		{
			name:    "top-level whitelist keeps the fields every event needs",
			filters: []Filter{{If: "all", Actions: []Action{{Type: WhitelistFields, Fields: fields("", []string{"userId", "event"})}}}},
			want:    Outcome{Removed: 3},
			event: `{"type":"track","event":"Order Completed","userId":"u1","messageId":"m1","timestamp":"t","receivedAt":"r",` +
				`"context":{"ip":"1.2.3.4","userAgent":"ua","library":{"name":"l"},"traits":{"email":"c@x"}}}`,
		},
		{
			name: "whitelist on an event without the object does nothing",
			in:   `{"type":"identify","messageId":"m","context":{},"traits":{"a":1}}`,
			filters: []Filter{{If: "all", Actions: []Action{{Type: WhitelistFields, Fields: fields(
				"properties", []string{"x"},
			)}}}},
		},
		{
			name: "field actions whose condition fails do nothing",
			filters: []Filter{
				{If: "event = 'Other'", Actions: []Action{{Type: WhitelistFields, Fields: fields("properties", []string{"x"})}}},
				{If: "type = 'identify'", Actions: []Action{{Type: BlocklistFields, Fields: fields("properties", []string{"email"})}}},
			},
		},
		{
			name: "a dropped event keeps its fields",
			filters: []Filter{
				{If: "all", Actions: []Action{{Type: BlocklistFields, Fields: fields("properties", []string{"email"})}}},
				{ID: "d", If: "properties.total = 10", Actions: []Action{{Type: DropEvent}}},
			},
			want: Outcome{Dropped: true, Reason: ReasonFiltered, FilterID: "d", FilterIndex: 1},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs, err := CompileFilters(tc.filters)
			if err != nil {
				t.Fatalf("CompileFilters: %v", err)
			}
			in := tc.in
			if in == "" {
				in = filterEvent
			}
			doc := decode(t, in)
			got := fs.Apply(doc)
			if got != tc.want {
				t.Errorf("Outcome = %v, want %v", got, tc.want)
			}
			want := tc.event
			if want == "" {
				want = in
			}
			if got, want := encode(t, doc), canon(t, want); got != want {
				t.Errorf("event after Apply:\n got %s\nwant %s", got, want)
			}
		})
	}
}

// TestFiltersOrder checks Segment's order — sample, drop, blocklist,
// whitelist — whatever the order of the filters, and that every condition
// sees the event as it arrived.
func TestFiltersOrder(t *testing.T) {
	tests := []struct {
		name    string
		filters []Filter
		want    Outcome
		event   string
	}{
		{
			name: "sample before drop",
			filters: []Filter{
				{ID: "drop", If: "all", Actions: []Action{{Type: DropEvent}}},
				{ID: "sample", If: "all", Actions: []Action{{Type: SampleEvent, Percent: ptr(0.0)}}},
			},
			want: Outcome{Dropped: true, Reason: ReasonSampled, FilterID: "sample", FilterIndex: 1},
		},
		{
			name: "drop before field removal, on the whole event",
			filters: []Filter{
				{If: "all", Actions: []Action{{Type: WhitelistFields, Fields: fields("properties", []string{"total"})}}},
				{ID: "drop", If: "properties.email = 'p@x'", Actions: []Action{{Type: DropEvent}}},
			},
			want: Outcome{Dropped: true, Reason: ReasonFiltered, FilterID: "drop", FilterIndex: 1},
		},
		{
			name: "conditions see fields a blocklist removes",
			filters: []Filter{
				{If: "properties.email != null", Actions: []Action{{Type: WhitelistFields, Fields: fields("traits", []string{"name"})}}},
				{If: "all", Actions: []Action{{Type: BlocklistFields, Fields: fields("properties", []string{"email"})}}},
			},
			want:  Outcome{Removed: 2},
			event: strings.Replace(strings.Replace(filterEvent, `"email":"p@x",`, "", 1), `"traits":{"email":"t@x","name":"n"}`, `"traits":{"name":"n"}`, 1),
		},
		{
			name: "one filter, actions in every phase",
			filters: []Filter{{ID: "multi", If: "all", Actions: []Action{
				{Type: WhitelistFields, Fields: fields("properties", []string{"email", "total"})},
				{Type: BlocklistFields, Fields: fields("properties", []string{"email"})},
				{Type: SampleEvent, Percent: ptr(1.0)},
			}}},
			want:  Outcome{Removed: 3},
			event: strings.Replace(filterEvent, `"properties":{"email":"p@x","total":10,"address":{"street":"s","city":"c"},"products":[{"sku":"a","price":1},{"sku":"b","price":2},"not an object"]}`, `"properties":{"total":10}`, 1),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs, err := CompileFilters(tc.filters)
			if err != nil {
				t.Fatal(err)
			}
			doc := decode(t, filterEvent)
			if got := fs.Apply(doc); got != tc.want {
				t.Errorf("Outcome = %v, want %v", got, tc.want)
			}
			want := tc.event
			if want == "" {
				want = filterEvent
			}
			if got, want := encode(t, doc), canon(t, want); got != want {
				t.Errorf("event:\n got %s\nwant %s", got, want)
			}
		})
	}
}

// TestFiltersFailClosed checks that a condition that cannot be evaluated
// drops the event, whatever the action, and says why.
func TestFiltersFailClosed(t *testing.T) {
	const broken = "properties.email and true" // email is a string: an evaluation error
	for _, a := range []Action{
		{Type: DropEvent},
		{Type: SampleEvent, Percent: ptr(1.0)},
		{Type: BlocklistFields, Fields: fields("properties", []string{"email"})},
		{Type: WhitelistFields, Fields: fields("properties", []string{"email"})},
	} {
		for _, id := range []string{"pii", ""} {
			t.Run(fmt.Sprintf("%s %q", a.Type, id), func(t *testing.T) {
				fs, err := CompileFilters([]Filter{
					{If: "event = 'Other'", Actions: []Action{{Type: DropEvent}}},
					{ID: id, If: broken, Actions: []Action{a}},
				})
				if err != nil {
					t.Fatal(err)
				}
				doc := decode(t, filterEvent)
				got := fs.Apply(doc)
				if !got.Dropped || got.Reason != ReasonFiltered || got.FilterIndex != 1 || got.FilterID != id || got.Err == nil {
					t.Fatalf("Outcome = %v, want dropped (filtered) by filters[1] with an error", got)
				}
				name := `filter "pii"`
				if id == "" {
					name = "filters[1]"
				}
				if msg := got.Err.Error(); !strings.HasPrefix(msg, name+": if: fql: ") {
					t.Errorf("Err = %q, want it to start %q", msg, name+": if: fql: ")
				}
				if _, ok := errors.AsType[*fql.Error](got.Err); !ok {
					t.Errorf("Err %v does not wrap an *fql.Error", got.Err)
				}
				if enc := encode(t, doc); enc != canon(t, filterEvent) {
					t.Errorf("event changed: %s", enc)
				}
			})
		}
	}
}

func TestSampleDeterministic(t *testing.T) {
	const n = 10_000
	for _, percent := range []float64{0.1, 0.25, 0.5, 0.9} {
		t.Run(fmt.Sprint(percent), func(t *testing.T) {
			fs, err := CompileFilters([]Filter{{If: "all", Actions: []Action{{Type: SampleEvent, Percent: &percent}}}})
			if err != nil {
				t.Fatal(err)
			}
			kept := 0
			for i := range n {
				id := fmt.Sprintf("%08x-0000-4000-8000-%012d", i*7919, i)
				doc := map[string]any{"type": "track", "messageId": id, "context": map[string]any{}}
				first := fs.Apply(doc)
				for range 2 {
					if again := fs.Apply(doc); again != first {
						t.Fatalf("messageId %s: %v, then %v", id, first, again)
					}
				}
				if !first.Dropped {
					kept++
				} else if first.Reason != ReasonSampled {
					t.Fatalf("Outcome = %v, want sampled", first)
				}
			}
			if got := float64(kept) / n; got < percent-0.02 || got > percent+0.02 {
				t.Errorf("kept %.4f of events, want %.2f ± 0.02", got, percent)
			}
		})
	}
}

// TestSamplePath checks that sampling by a field decides for all the
// events that share its value together, whatever their messageId.
func TestSamplePath(t *testing.T) {
	fs, err := CompileFilters([]Filter{{If: "all", Actions: []Action{{Type: SampleEvent, Percent: ptr(0.5), Path: "userId"}}}})
	if err != nil {
		t.Fatal(err)
	}
	kept, dropped := 0, 0
	for u := range 200 {
		var verdict *bool
		for m := range 5 {
			ev := fmt.Sprintf(`{"type":"track","messageId":"m-%d-%d","userId":"user-%d","context":{}}`, u, m, u)
			d := fs.Apply(decode(t, ev)).Dropped
			if verdict != nil && *verdict != d {
				t.Fatalf("user-%d: events of one user sampled differently", u)
			}
			verdict = &d
		}
		if *verdict {
			dropped++
		} else {
			kept++
		}
	}
	if kept < 70 || dropped < 70 {
		t.Errorf("kept %d users, dropped %d; want about half each", kept, dropped)
	}
}

func TestCompileFiltersErrors(t *testing.T) {
	tests := []struct {
		name    string
		filters []Filter
		paths   []string
		msg     string // part of the first error
	}{
		{name: "if required", filters: []Filter{{Actions: []Action{{Type: DropEvent}}}}, paths: []string{"filters[0].if"}, msg: "required"},
		{name: "if syntax", filters: []Filter{{If: "event = 'x", Actions: []Action{{Type: DropEvent}}}}, paths: []string{"filters[0].if"}, msg: "filters[0].if: fql: 1:9: "},
		{name: "disabled filters are checked", filters: []Filter{{If: "(", Enabled: ptr(false), Actions: []Action{{Type: DropEvent}}}}, paths: []string{"filters[0].if"}},
		{name: "actions required", filters: []Filter{{If: "all"}}, paths: []string{"filters[0].actions"}},
		{name: "unknown type", filters: []Filter{{If: "all", Actions: []Action{{Type: "drop"}}}}, paths: []string{"filters[0].actions[0].type"}, msg: `"drop" is not an action type`},
		{name: "percent required", filters: []Filter{{If: "all", Actions: []Action{{Type: SampleEvent}}}}, paths: []string{"filters[0].actions[0].percent"}, msg: "required"},
		{name: "percent as a percentage", filters: []Filter{{If: "all", Actions: []Action{{Type: SampleEvent, Percent: ptr(10.0)}}}}, paths: []string{"filters[0].actions[0].percent"}, msg: "from 0 to 1"},
		{name: "percent negative", filters: []Filter{{If: "all", Actions: []Action{{Type: SampleEvent, Percent: ptr(-0.1)}}}}, paths: []string{"filters[0].actions[0].percent"}},
		{name: "sample path", filters: []Filter{{If: "all", Actions: []Action{{Type: SampleEvent, Percent: ptr(0.5), Path: "a..b"}}}}, paths: []string{"filters[0].actions[0].path"}},
		{
			name: "options of other actions",
			filters: []Filter{{If: "all", Actions: []Action{
				{Type: DropEvent, Percent: ptr(0.5), Path: "userId", Fields: fields("properties", []string{"a"})},
				{Type: SampleEvent, Percent: ptr(0.5), Fields: fields("properties", []string{"a"})},
			}}},
			paths: []string{"filters[0].actions[0].percent", "filters[0].actions[0].path", "filters[0].actions[0].fields", "filters[0].actions[1].fields"},
		},
		{name: "fields required", filters: []Filter{{If: "all", Actions: []Action{{Type: WhitelistFields}}}}, paths: []string{"filters[0].actions[0].fields"}},
		{
			name:    "fields outside properties, traits and context",
			filters: []Filter{{If: "all", Actions: []Action{{Type: BlocklistFields, Fields: fields("propertys", []string{"a"}, "properties", []string{"ok"})}}}},
			paths:   []string{`filters[0].actions[0].fields["propertys"]`}, msg: "not an object filters work on",
		},
		{
			name:    "blocklist names nothing",
			filters: []Filter{{If: "all", Actions: []Action{{Type: BlocklistFields, Fields: fields("traits", []string{})}}}},
			paths:   []string{`filters[0].actions[0].fields["traits"]`}, msg: "lists no fields",
		},
		{
			name:    "blocklist a field every event needs",
			filters: []Filter{{If: "all", Actions: []Action{{Type: BlocklistFields, Fields: fields("", []string{"userId", "messageId", "context"})}}}},
			paths:   []string{`filters[0].actions[0].fields[""][1]`, `filters[0].actions[0].fields[""][2]`}, msg: `"messageId" cannot be removed`,
		},
		{
			name:    "malformed field",
			filters: []Filter{{If: "all", Actions: []Action{{Type: WhitelistFields, Fields: fields("properties", []string{"a", "b."})}}}},
			paths:   []string{`filters[0].actions[0].fields["properties"][1]`},
		},
		{
			name: "duplicate ids",
			filters: []Filter{
				{ID: "f", If: "all", Actions: []Action{{Type: DropEvent}}},
				{ID: "f", If: "all", Actions: []Action{{Type: DropEvent}}},
			},
			paths: []string{"filters[1].id"}, msg: "also the id of filters[0]",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs, err := CompileFilters(tc.filters)
			if err == nil || fs != nil {
				t.Fatalf("CompileFilters = %v, %v; want errors", fs, err)
			}
			fes := fieldErrors(t, err)
			var paths []string
			for _, fe := range fes {
				paths = append(paths, fe.Path)
			}
			if !reflect.DeepEqual(paths, tc.paths) {
				t.Errorf("paths = %q, want %q\n%v", paths, tc.paths, err)
			}
			if tc.msg != "" && (len(fes) == 0 || !strings.Contains(fes[0].Error(), tc.msg)) {
				t.Errorf("error %q does not contain %q", err, tc.msg)
			}
		})
	}
}

// TestDecodeFilter decodes filters from YAML and JSON, in both shapes of
// fields, strictly, and encodes them back in the Config API's shape.
func TestDecodeFilter(t *testing.T) {
	const y = `
- id: pii
  title: No PII
  description: Keep emails and IPs out of the tool
  if: all
  actions:
    - type: blocklist_fields
      fields:
        properties: {fields: [email]}
        context:
          fields: [ip]
- id: sample
  if: event = 'Heartbeat'
  enabled: true
  actions:
    - {type: sample_event, percent: 0.1, path: userId}
- id: api
  if: type = 'identify'
  enabled: false
  actions:
    - type: ALLOW_PROPERTIES
      fields: {traits: [email, name]}
`
	const j = `[
  {"id": "pii", "title": "No PII", "description": "Keep emails and IPs out of the tool", "if": "all",
   "actions": [{"type": "blocklist_fields", "fields": {"properties": {"fields": ["email"]}, "context": {"fields": ["ip"]}}}]},
  {"id": "sample", "if": "event = 'Heartbeat'", "enabled": true,
   "actions": [{"type": "sample_event", "percent": 0.1, "path": "userId"}]},
  {"id": "api", "if": "type = 'identify'", "enabled": false,
   "actions": [{"type": "ALLOW_PROPERTIES", "fields": {"traits": ["email", "name"]}}]}
]`
	want := []Filter{
		{ID: "pii", Title: "No PII", Description: "Keep emails and IPs out of the tool", If: "all",
			Actions: []Action{{Type: BlocklistFields, Fields: Fields{"properties": {"email"}, "context": {"ip"}}}}},
		{ID: "sample", If: "event = 'Heartbeat'", Enabled: ptr(true),
			Actions: []Action{{Type: SampleEvent, Percent: ptr(0.1), Path: "userId"}}},
		{ID: "api", If: "type = 'identify'", Enabled: ptr(false),
			Actions: []Action{{Type: "ALLOW_PROPERTIES", Fields: Fields{"traits": {"email", "name"}}}}},
	}
	var fromYAML, fromJSON []Filter
	dec := yaml.NewDecoder(strings.NewReader(y))
	dec.KnownFields(true)
	if err := dec.Decode(&fromYAML); err != nil {
		t.Fatal(err)
	}
	jd := json.NewDecoder(strings.NewReader(j))
	jd.DisallowUnknownFields()
	if err := jd.Decode(&fromJSON); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromYAML, want) {
		t.Errorf("from YAML: %+v", fromYAML)
	}
	if !reflect.DeepEqual(fromJSON, want) {
		t.Errorf("from JSON: %+v", fromJSON)
	}
	if _, err := CompileFilters(fromYAML); err != nil {
		t.Errorf("CompileFilters: %v", err)
	}

	b, err := json.Marshal(want[2].Actions[0])
	if err != nil {
		t.Fatal(err)
	}
	if got := string(b); got != `{"type":"ALLOW_PROPERTIES","fields":{"traits":{"fields":["email","name"]}}}` {
		t.Errorf("JSON encoding: %s", got)
	}
	yb, err := yaml.Marshal(want[0].Actions[0])
	if err != nil {
		t.Fatal(err)
	}
	var back Action
	if err := yaml.Unmarshal(yb, &back); err != nil || !reflect.DeepEqual(back, want[0].Actions[0]) {
		t.Errorf("YAML round trip: %s → %+v, %v", yb, back, err)
	}
	if want := "type: blocklist_fields\nfields:\n    context:\n        fields:\n            - ip\n    properties:\n        fields:\n            - email\n"; string(yb) != want {
		t.Errorf("YAML encoding is not in the Config API's shape:\n%s", yb)
	}
}

func TestDecodeFieldsErrors(t *testing.T) {
	yamlTests := []struct{ in, want string }{
		{in: `fields: [email]`, want: "line 1, column 9: fields: want a mapping"},
		{in: "fields:\n  properties: email", want: `line 2, column 15: fields "properties": want a list of field names`},
		{in: "fields:\n  properties: {field: [email]}", want: `line 2, column 15: fields "properties": want a list of field names, or {fields: [...]}`},
		{in: "fields:\n  properties: [[email]]", want: `line 2, column 16: fields "properties": want a field name`},
		{in: "fields:\n  traits: [a]\n  traits: [b]", want: `line 3, column 3: fields: "traits" appears twice`},
	}
	for _, tc := range yamlTests {
		var a Action
		err := yaml.Unmarshal([]byte(tc.in), &a)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("yaml %q: err = %v, want %q", tc.in, err, tc.want)
		}
	}
	jsonTests := []struct{ in, want string }{
		{in: `{"fields": ["email"]}`, want: "fields: json: cannot unmarshal array"},
		{in: `{"fields": {"properties": "email"}}`, want: `fields "properties": want a list`},
		{in: `{"fields": {"properties": {"field": ["email"]}}}`, want: `fields "properties": want a list`},
		{in: `{"fields": {"properties": null}}`, want: `fields "properties": want a list`},
	}
	for _, tc := range jsonTests {
		var a Action
		err := json.Unmarshal([]byte(tc.in), &a)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("json %s: err = %v, want %q", tc.in, err, tc.want)
		}
	}
}

func TestOutcomeString(t *testing.T) {
	tests := []struct {
		o    Outcome
		want string
	}{
		{Outcome{}, "kept"},
		{Outcome{Removed: 2}, "kept, 2 fields removed"},
		{Outcome{Dropped: true, Reason: ReasonSampled, FilterID: "f1", FilterIndex: 3}, `dropped (sampled) by filters[3] "f1"`},
	}
	for _, tc := range tests {
		if got := tc.o.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
}
