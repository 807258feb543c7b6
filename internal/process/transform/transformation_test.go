package transform

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/confluxcdp/conflux/internal/fql"
	"go.yaml.in/yaml/v3"
)

// base is a stored track event; cases add or replace its properties.
const base = `"messageId":"m1","timestamp":"2025-01-02T03:04:05.000Z","receivedAt":"2025-01-02T03:04:05.000Z","context":{"library":{"name":"analytics-go"}}`

func track(props string) string {
	return `{"type":"track","event":"Order Completed","userId":"u1",` + base + `,"properties":` + props + `}`
}

func identify(traits string) string {
	return `{"type":"identify","userId":"u1",` + base + `,"traits":` + traits + `}`
}

func TestApply(t *testing.T) {
	tests := []struct {
		name    string
		tr      Transformation
		in      string
		want    string // the event after Apply; "" means unchanged
		applied bool
	}{
		{
			name: "if false leaves the event alone",
			tr:   Transformation{If: "event = 'Signed Up'", NewEventName: "X", PropertyDrops: []string{"total"}},
			in:   track(`{"total":5}`),
		},
		{
			name: "if on a property",
			tr:   Transformation{If: "properties.total > 4", PropertyDrops: []string{"total"}},
			in:   track(`{"total":5,"n":1}`), want: track(`{"n":1}`), applied: true,
		},
		{
			name: "if all",
			tr:   Transformation{If: " all ", PropertyDrops: []string{"total"}},
			in:   track(`{"total":5,"n":1}`), want: track(`{"n":1}`), applied: true,
		},
		{
			name: "disabled",
			tr:   Transformation{If: "all", Enabled: ptr(false), PropertyDrops: []string{"total"}},
			in:   track(`{"total":5}`),
		},
		{
			name: "explicitly enabled",
			tr:   Transformation{If: "all", Enabled: ptr(true), PropertyDrops: []string{"total"}},
			in:   track(`{"total":5}`), want: track(`{}`), applied: true,
		},
		{
			name: "rename a track event",
			tr:   Transformation{If: "event = 'Order Completed'", NewEventName: "order_completed"},
			in:   track(`{}`),
			want: strings.Replace(track(`{}`), `"Order Completed"`, `"order_completed"`, 1), applied: true,
		},
		{
			name: "newEventName leaves other types alone",
			tr:   Transformation{If: "type = 'identify'", NewEventName: "Renamed"},
			in:   identify(`{}`), applied: true,
		},
		{
			name: "rename a property",
			tr:   Transformation{If: "all", PropertyRenames: []PropertyRename{{OldName: "revenue", NewName: "total"}}},
			in:   track(`{"revenue":9.99,"currency":"USD"}`), want: track(`{"total":9.99,"currency":"USD"}`), applied: true,
		},
		{
			name: "rename replaces an existing target",
			tr:   Transformation{If: "all", PropertyRenames: []PropertyRename{{OldName: "revenue", NewName: "total"}}},
			in:   track(`{"revenue":1,"total":2}`), want: track(`{"total":1}`), applied: true,
		},
		{
			name: "move out of an object",
			tr:   Transformation{If: "all", PropertyRenames: []PropertyRename{{OldName: "order.id", NewName: "orderId"}}},
			in:   track(`{"order":{"id":"o1","n":2}}`), want: track(`{"order":{"n":2},"orderId":"o1"}`), applied: true,
		},
		{
			name: "move into a new nested object",
			tr:   Transformation{If: "all", PropertyRenames: []PropertyRename{{OldName: "orderId", NewName: "order.details.id"}}},
			in:   track(`{"orderId":"o1"}`), want: track(`{"order":{"details":{"id":"o1"}}}`), applied: true,
		},
		{
			name: "move into an existing object",
			tr:   Transformation{If: "all", PropertyRenames: []PropertyRename{{OldName: "orderId", NewName: "order.id"}}},
			in:   track(`{"orderId":"o1","order":{"n":2}}`), want: track(`{"order":{"id":"o1","n":2}}`), applied: true,
		},
		{
			name: "four levels to four levels",
			tr:   Transformation{If: "all", PropertyRenames: []PropertyRename{{OldName: "a.b.c.d", NewName: "w.x.y.z"}}},
			in:   track(`{"a":{"b":{"c":{"d":1}}}}`), want: track(`{"a":{"b":{"c":{}}},"w":{"x":{"y":{"z":1}}}}`), applied: true,
		},
		{
			name: "missing source changes nothing",
			tr:   Transformation{If: "all", PropertyRenames: []PropertyRename{{OldName: "missing", NewName: "a.b"}, {OldName: "x.y", NewName: "z"}}},
			in:   track(`{"x":"not an object"}`), applied: true,
		},
		{
			name: "explicit null is moved",
			tr:   Transformation{If: "all", PropertyRenames: []PropertyRename{{OldName: "a", NewName: "b"}}},
			in:   track(`{"a":null}`), want: track(`{"b":null}`), applied: true,
		},
		{
			name: "swap",
			tr: Transformation{If: "all", PropertyRenames: []PropertyRename{
				{OldName: "a", NewName: "b"}, {OldName: "b", NewName: "a"},
			}},
			in: track(`{"a":1,"b":2}`), want: track(`{"a":2,"b":1}`), applied: true,
		},
		{
			name: "blocked target leaves the source in place",
			tr:   Transformation{If: "all", PropertyRenames: []PropertyRename{{OldName: "x", NewName: "s.y"}}},
			in:   track(`{"x":1,"s":"str"}`), applied: true,
		},
		{
			name: "escaped dot is part of a name",
			tr:   Transformation{If: "all", PropertyRenames: []PropertyRename{{OldName: `ingredients\.salad`, NewName: "ingredients.salad"}}},
			in:   track(`{"ingredients.salad":"yum"}`), want: track(`{"ingredients":{"salad":"yum"}}`), applied: true,
		},
		{
			name: "identify renames traits",
			tr:   Transformation{If: "type = 'identify'", PropertyRenames: []PropertyRename{{OldName: "first_name", NewName: "firstName"}}},
			in:   identify(`{"first_name":"Ada"}`), want: identify(`{"firstName":"Ada"}`), applied: true,
		},
		{
			name: "group renames traits",
			tr:   Transformation{If: "type = 'group'", PropertyRenames: []PropertyRename{{OldName: "plan", NewName: "tier"}}},
			in:   `{"type":"group","groupId":"g",` + base + `,"traits":{"plan":"pro"},"properties":{"plan":"x"}}`,
			want: `{"type":"group","groupId":"g",` + base + `,"traits":{"tier":"pro"},"properties":{"plan":"x"}}`, applied: true,
		},
		{
			name: "page renames properties, not traits",
			tr:   Transformation{If: "all", PropertyRenames: []PropertyRename{{OldName: "url", NewName: "href"}}},
			in:   `{"type":"page",` + base + `,"properties":{"url":"u"},"traits":{"url":"t"}}`,
			want: `{"type":"page",` + base + `,"properties":{"href":"u"},"traits":{"url":"t"}}`, applied: true,
		},
		{
			name: "alias has nothing to rename",
			tr:   Transformation{If: "all", PropertyRenames: []PropertyRename{{OldName: "a", NewName: "b"}}},
			in:   `{"type":"alias","previousId":"p",` + base + `,"properties":{"a":1}}`, applied: true,
		},
		{
			name: "drop properties",
			tr:   Transformation{If: "all", PropertyDrops: []string{"email", "address.street", "missing", "n.m"}},
			in:   track(`{"email":"e","address":{"street":"s","city":"c"},"n":1}`),
			want: track(`{"address":{"city":"c"},"n":1}`), applied: true,
		},
		{
			name: "drop traits",
			tr:   Transformation{If: "all", PropertyDrops: []string{"ssn"}},
			in:   identify(`{"ssn":"1","name":"n"}`), want: identify(`{"name":"n"}`), applied: true,
		},
		{
			name: "static values",
			tr: Transformation{If: "all", PropertyValueTransformations: []PropertyValueTransformation{
				{PropertyPaths: []string{"properties.currency", "properties.meta.source"}, PropertyValue: "USD"},
				{PropertyPaths: []string{"context.app.env"}, PropertyValue: "prod"},
				{PropertyPaths: []string{"properties.count"}, PropertyValue: 5},
				{PropertyPaths: []string{"properties.big"}, PropertyValue: json.Number("18446744073709551617")},
				{PropertyPaths: []string{"properties.flag"}, PropertyValue: true},
				{PropertyPaths: []string{"properties.none"}, PropertyValue: nil},
				{PropertyPaths: []string{"traits.plan"}, PropertyValue: map[string]any{"tier": 2, "tags": []any{"a"}}},
			}},
			in: track(`{"currency":"EUR"}`),
			want: `{"type":"track","event":"Order Completed","userId":"u1",` + strings.Replace(base, `"library"`, `"app":{"env":"prod"},"library"`, 1) +
				`,"properties":{"currency":"USD","meta":{"source":"USD"},"count":5,"big":18446744073709551617,"flag":true,"none":null},` +
				`"traits":{"plan":{"tier":2,"tags":["a"]}}}`,
			applied: true,
		},
		{
			name: "static value creates properties",
			tr:   Transformation{If: "all", PropertyValueTransformations: []PropertyValueTransformation{{PropertyPaths: []string{"properties.a"}, PropertyValue: "v"}}},
			in:   `{"type":"track","event":"E",` + base + `}`,
			want: `{"type":"track","event":"E",` + base + `,"properties":{"a":"v"}}`, applied: true,
		},
		{
			name: "static value never replaces a non-object on its way",
			tr:   Transformation{If: "all", PropertyValueTransformations: []PropertyValueTransformation{{PropertyPaths: []string{"properties.s.x"}, PropertyValue: "v"}}},
			in:   track(`{"s":"str"}`), applied: true,
		},
		{
			name: "fql value in place",
			tr:   Transformation{If: "all", FQLDefinedProperties: []FQLDefinedProperty{{FQL: "lowercase(properties.email)", PropertyName: "properties.email"}}},
			in:   track(`{"email":"Ada@Example.COM"}`), want: track(`{"email":"ada@example.com"}`), applied: true,
		},
		{
			name: "fql values of every kind",
			tr: Transformation{If: "all", FQLDefinedProperties: []FQLDefinedProperty{
				{FQL: "snakecase(event)", PropertyName: "properties.slug"},
				{FQL: "length(properties.items)", PropertyName: "properties.count"},
				{FQL: "number('2.50')", PropertyName: "properties.price"},
				{FQL: "properties.total > 10", PropertyName: "context.big"},
				{FQL: "['a', 1, properties.total]", PropertyName: "properties.list"},
				{FQL: "properties.items", PropertyName: "properties.copy"},
				{FQL: "titlecase(properties.missing)", PropertyName: "properties.nothing"},
			}},
			in: track(`{"total":12,"items":[{"sku":"s1"}]}`),
			want: `{"type":"track","event":"Order Completed","userId":"u1",` + strings.Replace(base, `"library"`, `"big":true,"library"`, 1) +
				`,"properties":{"total":12,"items":[{"sku":"s1"}],"slug":"order_completed","count":1,"price":2.5,"list":["a",1,12],"copy":[{"sku":"s1"}]}}`,
			applied: true,
		},
		{
			name: "fql sees the event before renames",
			tr: Transformation{
				If:                   "properties.email != null",
				PropertyRenames:      []PropertyRename{{OldName: "email", NewName: "mail"}},
				FQLDefinedProperties: []FQLDefinedProperty{{FQL: "uppercase(properties.email)", PropertyName: "properties.EMAIL"}},
			},
			in: track(`{"email":"a@b"}`), want: track(`{"mail":"a@b","EMAIL":"A@B"}`), applied: true,
		},
		{
			name: "everything at once",
			tr: Transformation{
				If:                           "event = 'Order Completed' and properties.revenue > 0",
				NewEventName:                 "Order Done",
				PropertyRenames:              []PropertyRename{{OldName: "revenue", NewName: "order.total"}},
				PropertyDrops:                []string{"debug"},
				PropertyValueTransformations: []PropertyValueTransformation{{PropertyPaths: []string{"properties.currency"}, PropertyValue: "USD"}},
				FQLDefinedProperties:         []FQLDefinedProperty{{FQL: "lowercase(properties.Coupon)", PropertyName: "properties.coupon"}},
			},
			in: track(`{"revenue":3,"debug":true,"Coupon":"SAVE"}`),
			want: strings.Replace(track(`{"order":{"total":3},"currency":"USD","Coupon":"SAVE","coupon":"save"}`),
				`"Order Completed"`, `"Order Done"`, 1),
			applied: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Compile(tc.tr)
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			doc := decode(t, tc.in)
			applied, err := c.Apply(doc)
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if applied != tc.applied {
				t.Errorf("applied = %v, want %v", applied, tc.applied)
			}
			want := tc.want
			if want == "" {
				want = tc.in
			}
			if got, want := encode(t, doc), canon(t, want); got != want {
				t.Errorf("event after Apply:\n got %s\nwant %s", got, want)
			}
		})
	}
}

// TestApplyCopiesValues checks that objects a transformation puts into
// events are not shared with its configuration, other events, or the
// field they were computed from.
func TestApplyCopiesValues(t *testing.T) {
	c, err := Compile(Transformation{
		If:                           "all",
		PropertyValueTransformations: []PropertyValueTransformation{{PropertyPaths: []string{"properties.a", "properties.b"}, PropertyValue: map[string]any{"k": "v"}}},
		FQLDefinedProperties:         []FQLDefinedProperty{{FQL: "properties.src", PropertyName: "properties.dst"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	d1, d2 := decode(t, track(`{"src":{"x":1}}`)), decode(t, track(`{}`))
	for _, d := range []map[string]any{d1, d2} {
		if _, err := c.Apply(d); err != nil {
			t.Fatal(err)
		}
	}
	p1 := d1["properties"].(map[string]any)
	p1["a"].(map[string]any)["k"] = "changed"
	p1["dst"].(map[string]any)["x"] = "changed"
	if got := encode(t, d1); got != canon(t, track(`{"a":{"k":"changed"},"b":{"k":"v"},"src":{"x":1},"dst":{"x":"changed"}}`)) {
		t.Errorf("d1 = %s: a, b, src and dst must be distinct objects", got)
	}
	if got := encode(t, d2); got != canon(t, track(`{"a":{"k":"v"},"b":{"k":"v"}}`)) {
		t.Errorf("d2 = %s: changing d1 changed d2", got)
	}
}

func TestApplyErrors(t *testing.T) {
	tests := []struct {
		name string
		tr   Transformation
		in   string
		want string // the whole error message
	}{
		{
			name: "if",
			tr:   Transformation{ID: "t1", If: "properties.name and true", NewEventName: "X"},
			in:   track(`{"name":"n"}`),
			want: `transformation "t1": if: fql: 1:1: 'and' needs bool or null operands, found string`,
		},
		{
			name: "fql value, named by Name",
			tr: Transformation{
				Name: "count items", If: "all", NewEventName: "X", PropertyDrops: []string{"n"},
				FQLDefinedProperties: []FQLDefinedProperty{
					{FQL: "lowercase(event)", PropertyName: "properties.e"},
					{FQL: "length(properties.n)", PropertyName: "properties.len"},
				},
			},
			in:   track(`{"n":5}`),
			want: `transformation "count items": fqlDefinedProperties[1].fql: fql: 1:1: length(): want a list, a string or null, found number`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Compile(tc.tr)
			if err != nil {
				t.Fatal(err)
			}
			doc := decode(t, tc.in)
			applied, err := c.Apply(doc)
			if err == nil || applied {
				t.Fatalf("Apply = %v, %v; want an error", applied, err)
			}
			if err.Error() != tc.want {
				t.Errorf("error:\n got %s\nwant %s", err, tc.want)
			}
			if _, ok := errors.AsType[*fql.Error](err); !ok {
				t.Errorf("error %v does not wrap an *fql.Error", err)
			}
			if got := encode(t, doc); got != canon(t, tc.in) {
				t.Errorf("a failed Apply changed the event: %s", got)
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	drop := []string{"x"}
	tests := []struct {
		name  string
		tr    Transformation
		paths []string // the FieldErrors' paths, in order
		msg   string   // a part of the first error's message
	}{
		{name: "if required", tr: Transformation{PropertyDrops: drop}, paths: []string{"if"}, msg: "if: required"},
		{name: "if blank", tr: Transformation{If: "  ", PropertyDrops: drop}, paths: []string{"if"}, msg: "if: required"},
		{name: "if syntax", tr: Transformation{If: "event = ", PropertyDrops: drop}, paths: []string{"if"}, msg: "if: fql: 1:9: "},
		{
			name: "fql syntax",
			tr: Transformation{If: "all", FQLDefinedProperties: []FQLDefinedProperty{
				{FQL: "lowercase(event)", PropertyName: "properties.a"},
				{FQL: "nosuch(event)", PropertyName: "properties.b"},
			}},
			paths: []string{"fqlDefinedProperties[1].fql"}, msg: "fqlDefinedProperties[1].fql: fql: 1:1: ",
		},
		{
			name:  "fql required",
			tr:    Transformation{If: "all", FQLDefinedProperties: []FQLDefinedProperty{{PropertyName: "properties.b"}}},
			paths: []string{"fqlDefinedProperties[0].fql"}, msg: "required",
		},
		{
			name:  "fql into a top-level field",
			tr:    Transformation{If: "all", FQLDefinedProperties: []FQLDefinedProperty{{FQL: "'x'", PropertyName: "userId"}}},
			paths: []string{"fqlDefinedProperties[0].propertyName"}, msg: `"userId" is outside properties, traits and context`,
		},
		{
			name: "static value into top-level fields",
			tr: Transformation{If: "all", PropertyValueTransformations: []PropertyValueTransformation{
				{PropertyPaths: []string{"properties.ok", "messageId", "type"}, PropertyValue: "x"},
			}},
			paths: []string{"propertyValueTransformations[0].propertyPaths[1]", "propertyValueTransformations[0].propertyPaths[2]"},
			msg:   "cannot change top-level fields",
		},
		{
			name:  "static value over a whole object",
			tr:    Transformation{If: "all", PropertyValueTransformations: []PropertyValueTransformation{{PropertyPaths: []string{"context"}, PropertyValue: "x"}}},
			paths: []string{"propertyValueTransformations[0].propertyPaths[0]"}, msg: "the whole context object",
		},
		{
			name:  "static value too deep",
			tr:    Transformation{If: "all", PropertyValueTransformations: []PropertyValueTransformation{{PropertyPaths: []string{"properties.a.b.c.d.e"}, PropertyValue: 1}}},
			paths: []string{"propertyValueTransformations[0].propertyPaths[0]"}, msg: "5 levels deep",
		},
		{
			name:  "static value without paths",
			tr:    Transformation{If: "all", PropertyValueTransformations: []PropertyValueTransformation{{PropertyValue: 1}}},
			paths: []string{"propertyValueTransformations[0].propertyPaths"}, msg: "required",
		},
		{
			name:  "static value not JSON",
			tr:    Transformation{If: "all", PropertyValueTransformations: []PropertyValueTransformation{{PropertyPaths: []string{"properties.a"}, PropertyValue: make(chan int)}}},
			paths: []string{"propertyValueTransformations[0].propertyValue"}, msg: "not a JSON value",
		},
		{
			name:  "rename too deep",
			tr:    Transformation{If: "all", PropertyRenames: []PropertyRename{{OldName: "a.b.c.d.e", NewName: "f"}}},
			paths: []string{"propertyRenames[0].oldName"}, msg: `"a.b.c.d.e" is 5 levels deep`,
		},
		{
			name:  "rename paths malformed",
			tr:    Transformation{If: "all", PropertyRenames: []PropertyRename{{OldName: "a..b", NewName: `c\`}, {OldName: "", NewName: "d"}}},
			paths: []string{"propertyRenames[0].oldName", "propertyRenames[0].newName", "propertyRenames[1].oldName"},
			msg:   "empty segment",
		},
		{
			name: "rename and drop paths are relative",
			tr: Transformation{If: "all", PropertyRenames: []PropertyRename{{OldName: "properties.a", NewName: "b"}},
				PropertyDrops: []string{"traits.x"}},
			paths: []string{"propertyRenames[0].oldName", "propertyDrops[0]"}, msg: `this path is relative to properties (or traits, for identify and group calls); write "a"`,
		},
		{
			name:  "rename onto itself",
			tr:    Transformation{If: "all", PropertyRenames: []PropertyRename{{OldName: `a\.b`, NewName: `a\.b`}}},
			paths: []string{"propertyRenames[0].newName"}, msg: "same as oldName",
		},
		{
			name:  "rename sources overlap",
			tr:    Transformation{If: "all", PropertyRenames: []PropertyRename{{OldName: "a", NewName: "x"}, {OldName: "a.b", NewName: "y"}}},
			paths: []string{"propertyRenames[1].oldName"}, msg: `"a.b" overlaps propertyRenames[0].oldName "a"`,
		},
		{
			name:  "rename targets overlap",
			tr:    Transformation{If: "all", PropertyRenames: []PropertyRename{{OldName: "a", NewName: "x"}, {OldName: "b", NewName: "x"}}},
			paths: []string{"propertyRenames[1].newName"}, msg: "overlaps propertyRenames[0].newName",
		},
		{
			name:  "rename target holds another source",
			tr:    Transformation{If: "all", PropertyRenames: []PropertyRename{{OldName: "a.b", NewName: "c"}, {OldName: "d", NewName: "a"}}},
			paths: []string{"propertyRenames[1].newName"}, msg: "would replace the object holding propertyRenames[0].oldName",
		},
		{
			name: "static value on a renamed property",
			tr: Transformation{
				If:                           "all",
				PropertyRenames:              []PropertyRename{{OldName: "a", NewName: "b"}},
				PropertyValueTransformations: []PropertyValueTransformation{{PropertyPaths: []string{"traits.b.c"}, PropertyValue: 1}},
			},
			paths: []string{"propertyValueTransformations[0].propertyPaths[0]"}, msg: "overlaps propertyRenames[0].newName",
		},
		{
			name: "context cannot overlap a rename",
			tr: Transformation{
				If:                           "all",
				PropertyRenames:              []PropertyRename{{OldName: "a", NewName: "b"}},
				PropertyValueTransformations: []PropertyValueTransformation{{PropertyPaths: []string{"context.a", "context.b"}, PropertyValue: 1}},
			},
		},
		{
			name: "drop a renamed property",
			tr: Transformation{
				If:              "all",
				PropertyRenames: []PropertyRename{{OldName: "a", NewName: "b"}},
				PropertyDrops:   []string{"a"},
			},
			paths: []string{"propertyDrops[0]"}, msg: "overlaps propertyRenames[0].oldName",
		},
		{
			name: "two values for one field",
			tr: Transformation{
				If:                           "all",
				PropertyValueTransformations: []PropertyValueTransformation{{PropertyPaths: []string{"properties.a"}, PropertyValue: 1}},
				FQLDefinedProperties:         []FQLDefinedProperty{{FQL: "event", PropertyName: "properties.a"}},
			},
			paths: []string{"fqlDefinedProperties[0].propertyName"}, msg: "overlaps propertyValueTransformations[0].propertyPaths[0]",
		},
		{
			name:  "changes nothing",
			tr:    Transformation{If: "all"},
			paths: []string{""}, msg: "changes nothing",
		},
		{
			name: "every problem at once",
			tr: Transformation{
				If:                   "(",
				PropertyRenames:      []PropertyRename{{OldName: "a.b.c.d.e", NewName: "x"}},
				PropertyDrops:        []string{"."},
				FQLDefinedProperties: []FQLDefinedProperty{{FQL: "'", PropertyName: "event"}},
			},
			paths: []string{"if", "propertyRenames[0].oldName", "propertyDrops[0]", "fqlDefinedProperties[0].fql", "fqlDefinedProperties[0].propertyName"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Compile(tc.tr)
			if tc.paths == nil {
				if err != nil {
					t.Fatalf("Compile: %v", err)
				}
				return
			}
			if err == nil || c != nil {
				t.Fatalf("Compile = %v, %v; want errors at %q", c, err, tc.paths)
			}
			fes := fieldErrors(t, err)
			var paths []string
			for _, fe := range fes {
				paths = append(paths, fe.Path)
			}
			if !reflect.DeepEqual(paths, tc.paths) {
				t.Errorf("error paths = %q, want %q\n%v", paths, tc.paths, err)
			}
			if tc.msg != "" && (len(fes) == 0 || !strings.Contains(fes[0].Error(), tc.msg)) {
				t.Errorf("error %q does not contain %q", err, tc.msg)
			}
		})
	}
}

// TestCompileErrorPosition checks the whole message of an FQL compile
// error: the field, then the expression's own position.
func TestCompileErrorPosition(t *testing.T) {
	_, err := Compile(Transformation{If: "all", FQLDefinedProperties: []FQLDefinedProperty{
		{FQL: "event", PropertyName: "properties.a"},
		{FQL: "lowercase(event", PropertyName: "properties.b"},
	}})
	_, want := fql.Compile("lowercase(event")
	if err == nil || want == nil {
		t.Fatalf("Compile = %v, fql.Compile = %v; want errors", err, want)
	}
	if got := err.Error(); got != "fqlDefinedProperties[1].fql: "+want.Error() {
		t.Errorf("error = %q", got)
	}
	fe, ok := errors.AsType[*FieldError](err)
	if !ok || fe.Path != "fqlDefinedProperties[1].fql" {
		t.Fatalf("errors.AsType[*FieldError] = %v, %v", fe, ok)
	}
	if qe, ok := errors.AsType[*fql.Error](err); !ok || qe.Col != want.(*fql.Error).Col {
		t.Errorf("errors.AsType[*fql.Error] = %v, %v", qe, ok)
	}
}

func TestChain(t *testing.T) {
	ch, err := CompileChain([]Transformation{
		{ID: "rename", If: "event = 'order_completed'", NewEventName: "Order Completed"},
		{ID: "after", If: "event = 'Order Completed'", PropertyRenames: []PropertyRename{{OldName: "rev", NewName: "revenue"}}},
		{ID: "broken", If: "properties.revenue and true", NewEventName: "Never"},
		{ID: "skipped", If: "event = 'Other'", NewEventName: "Never"},
		{ID: "last", If: "properties.revenue = 5", PropertyDrops: []string{"tmp"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	doc := decode(t, strings.Replace(track(`{"rev":5,"tmp":1}`), "Order Completed", "order_completed", 1))
	applied, err := ch.Apply(doc)
	if applied != 3 {
		t.Errorf("applied = %d, want 3", applied)
	}
	if err == nil || !strings.Contains(err.Error(), `transformation "broken": if: fql:`) {
		t.Errorf("err = %v, want the error of the broken transformation", err)
	}
	if got, want := encode(t, doc), canon(t, track(`{"revenue":5}`)); got != want {
		t.Errorf("event:\n got %s\nwant %s", got, want)
	}
}

func TestCompileChainErrors(t *testing.T) {
	_, err := CompileChain([]Transformation{
		{If: "all", NewEventName: "ok"},
		{If: "event =", NewEventName: "x"},
		{NewEventName: "x", PropertyDrops: []string{"a..b"}},
	})
	var paths []string
	for _, fe := range fieldErrors(t, err) {
		paths = append(paths, fe.Path)
	}
	want := []string{"transformations[1].if", "transformations[2].if", "transformations[2].propertyDrops[0]"}
	if !reflect.DeepEqual(paths, want) {
		t.Errorf("paths = %q, want %q", paths, want)
	}
}

// TestDecodeTransformation decodes the same transformation from YAML and
// from JSON, strictly, in the Public API's field names.
func TestDecodeTransformation(t *testing.T) {
	const y = `
id: tr-1
name: Fix order events
if: event = 'order_completed'
newEventName: Order Completed
propertyRenames:
  - oldName: revenue
    newName: order.total
propertyDrops: [debug]
propertyValueTransformations:
  - propertyPaths: [properties.currency, context.app.env]
    propertyValue: USD
  - propertyPaths: [properties.version]
    propertyValue: 2
fqlDefinedProperties:
  - fql: lowercase(properties.email)
    propertyName: properties.email
`
	const j = `{
  "id": "tr-1", "name": "Fix order events", "if": "event = 'order_completed'",
  "newEventName": "Order Completed",
  "propertyRenames": [{"oldName": "revenue", "newName": "order.total"}],
  "propertyDrops": ["debug"],
  "propertyValueTransformations": [
    {"propertyPaths": ["properties.currency", "context.app.env"], "propertyValue": "USD"},
    {"propertyPaths": ["properties.version"], "propertyValue": 2}
  ],
  "fqlDefinedProperties": [{"fql": "lowercase(properties.email)", "propertyName": "properties.email"}]
}`
	var fromYAML, fromJSON Transformation
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
	in := strings.Replace(track(`{"revenue":7,"debug":1,"email":"A@B.C"}`), "Order Completed", "order_completed", 1)
	want := canon(t, `{"type":"track","event":"Order Completed","userId":"u1",`+
		strings.Replace(base, `"library"`, `"app":{"env":"USD"},"library"`, 1)+
		`,"properties":{"order":{"total":7},"currency":"USD","version":2,"email":"a@b.c"}}`)
	for name, tr := range map[string]Transformation{"yaml": fromYAML, "json": fromJSON} {
		c, err := Compile(tr)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		doc := decode(t, in)
		if ok, err := c.Apply(doc); !ok || err != nil {
			t.Fatalf("%s: Apply = %v, %v", name, ok, err)
		}
		if got := encode(t, doc); got != want {
			t.Errorf("%s:\n got %s\nwant %s", name, got, want)
		}
	}
}

func TestParsePath(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		err  string
	}{
		{in: "a", want: []string{"a"}},
		{in: "a.b.c", want: []string{"a", "b", "c"}},
		{in: `a\.b.c`, want: []string{"a.b", "c"}},
		{in: `a\\.b`, want: []string{`a\`, "b"}},
		{in: `product\ 1.price`, want: []string{"product 1", "price"}},
		{in: "", err: "empty path"},
		{in: "a.", err: "empty segment"},
		{in: ".a", err: "empty segment"},
		{in: `a\`, err: "lone backslash"},
	}
	for _, tc := range tests {
		got, err := parsePath(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("parsePath(%q) = %q, %v; want error %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("parsePath(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
		if back, err := parsePath(formatPath(got)); err != nil || !reflect.DeepEqual(back, got) {
			t.Errorf("formatPath(%q) = %q does not parse back", got, formatPath(got))
		}
	}
}

// TestConcurrentApply runs one Compiled and one Filters on many events at
// once; go test -race checks that they share nothing mutable.
func TestConcurrentApply(t *testing.T) {
	c, err := Compile(Transformation{
		If:                           "all",
		PropertyRenames:              []PropertyRename{{OldName: "email", NewName: "contact.email"}},
		PropertyValueTransformations: []PropertyValueTransformation{{PropertyPaths: []string{"properties.meta"}, PropertyValue: map[string]any{"v": 1}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	fs, err := CompileFilters([]Filter{{If: "all", Actions: []Action{{Type: BlocklistFields, Fields: Fields{"properties.meta": {"v"}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	want := canon(t, track(`{"contact":{"email":"e"},"meta":{}}`))
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				doc := decode(t, track(`{"email":"e"}`))
				if _, err := c.Apply(doc); err != nil {
					t.Error(err)
					return
				}
				if o := fs.Apply(doc); o.Removed != 1 {
					t.Errorf("Outcome = %v", o)
					return
				}
				if got := encode(t, doc); got != want {
					t.Errorf("got %s, want %s", got, want)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestRoots(t *testing.T) {
	tests := []struct {
		name string
		t    Transformation
		want string
	}{
		{name: "event name", t: Transformation{If: "all", NewEventName: "B"}, want: "event"},
		{name: "rename", t: Transformation{If: "all", PropertyRenames: []PropertyRename{{OldName: "a", NewName: "b"}}}, want: "properties,traits"},
		{name: "static and fql", t: Transformation{If: "all",
			PropertyValueTransformations: []PropertyValueTransformation{{PropertyPaths: []string{"context.app.env"}, PropertyValue: "x"}},
			FQLDefinedProperties:         []FQLDefinedProperty{{FQL: "lowercase(properties.e)", PropertyName: "properties.e"}}},
			want: "context,properties"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Compile(tt.t)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(c.Roots(), ","); got != tt.want {
				t.Fatalf("Roots() = %s, want %s", got, tt.want)
			}
			if got := strings.Join(Chain{c, c}.Roots(), ","); got != tt.want {
				t.Fatalf("Chain.Roots() = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestReads(t *testing.T) {
	c, err := Compile(Transformation{If: "event = 'A' and context.library.name = 'x'",
		FQLDefinedProperties: []FQLDefinedProperty{{FQL: "lowercase(userId)", PropertyName: "properties.uid"}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.Reads(), ","); got != "type,properties,event,context,userId" {
		t.Fatalf("Reads() = %s", got)
	}
}
