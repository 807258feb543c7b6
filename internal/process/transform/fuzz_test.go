package transform

import (
	"errors"
	"maps"
	"reflect"
	"testing"

	"github.com/confluxcdp/conflux/internal/event"
)

// fuzzEvents are the events the fuzz targets apply what compiles to.
var fuzzEvents = []string{
	filterEvent,
	track(`{"a":{"b":{"c":{"d":1}}},"s":"str","l":[1,{"x":null}],"n":18446744073709551617}`),
	identify(`{"email":"A@B","x":{"y":true}}`),
	`{"type":"alias","messageId":"m","context":{},"timestamp":"t","receivedAt":"r"}`,
}

// topLevel returns the fields of doc a transformation or filter must leave
// alone: everything but properties, traits and context (and, for filters,
// only the protected fields are kept, which the caller checks).
func topLevel(doc event.Doc) map[string]string {
	out := make(map[string]string)
	for k, v := range doc {
		if k == "properties" || k == "traits" || k == "context" {
			continue
		}
		b, _ := event.Encode(nil, event.Doc{"v": v})
		out[k] = string(b)
	}
	return out
}

// FuzzTransformation compiles transformations from arbitrary FQL and
// paths: Compile never panics and reports only FieldErrors; what compiles
// applies to a few events without panicking, never changes a top-level
// field, always leaves an event that encodes as JSON, and makes the same
// change to two copies of the same event.
func FuzzTransformation(f *testing.F) {
	f.Add("event = 'Order Completed'", "lowercase(properties.email)", "a.b", "x.y", "properties.z")
	f.Add("all", "['a', 1.5, -0, 1e300, properties.l]", "s", "s.t", "context.q")
	f.Add("properties.s and true", "number('1e400')", `a\.b`, "a", "traits.a.b.c.d")
	f.Add("type = 'identify'", "properties.a", "x", "email", "properties")
	f.Add("(", "length(5)", "a..b", "", "userId")
	f.Fuzz(func(t *testing.T, cond, expr, from, to, path string) {
		c, err := Compile(Transformation{
			If:                           cond,
			PropertyRenames:              []PropertyRename{{OldName: from, NewName: to}},
			PropertyValueTransformations: []PropertyValueTransformation{{PropertyPaths: []string{path}, PropertyValue: map[string]any{"k": []any{1}}}},
			FQLDefinedProperties:         []FQLDefinedProperty{{FQL: expr, PropertyName: "properties.fuzz"}},
		})
		if err != nil {
			for _, e := range fieldErrors(t, err) {
				if e.Err == nil {
					t.Fatalf("FieldError without a cause: %+v", e)
				}
			}
			return
		}
		for _, src := range fuzzEvents {
			d1, d2 := decode(t, src), decode(t, src)
			before := topLevel(d1)
			ok1, err1 := c.Apply(d1)
			ok2, err2 := c.Apply(d2)
			if ok1 != ok2 || (err1 == nil) != (err2 == nil) {
				t.Fatalf("Apply is not deterministic: %v, %v then %v, %v", ok1, err1, ok2, err2)
			}
			if err1 != nil && (ok1 || encode(t, d1) != canon(t, src)) {
				t.Fatalf("a failed Apply (%v) changed the event", err1)
			}
			if !maps.Equal(before, topLevel(d1)) {
				t.Fatalf("top-level fields changed: %v → %v", before, topLevel(d1))
			}
			b, err := event.Encode(nil, d1)
			if err != nil {
				t.Fatalf("the event no longer encodes: %v", err)
			}
			if string(b) != encode(t, d2) {
				t.Fatalf("two copies transformed differently")
			}
		}
	})
}

// FuzzFilters compiles filters from arbitrary FQL and field names: what
// compiles never panics, never removes a protected field, and a dropped
// event is left as it was.
func FuzzFilters(f *testing.F) {
	f.Add("all", "", "userId", 0.5, "userId")
	f.Add("properties.total > 5", "properties", "address.street", 0.0, "")
	f.Add("properties.email and true", "properties.products", "price", 1.0, "context")
	f.Add("!(event = 'x')", "context", `a\.b`, 0.3, "a..b")
	f.Fuzz(func(t *testing.T, cond, obj, field string, percent float64, path string) {
		fs, err := CompileFilters([]Filter{
			{ID: "sample", If: cond, Actions: []Action{{Type: SampleEvent, Percent: &percent, Path: path}}},
			{ID: "block", If: cond, Actions: []Action{{Type: BlocklistFields, Fields: Fields{obj: {field}}}}},
			{ID: "allow", If: "all", Actions: []Action{{Type: WhitelistFields, Fields: Fields{obj: {field}}}}},
		})
		if err != nil {
			if _, ok := errors.AsType[*FieldError](err); !ok {
				t.Fatalf("error %v has no FieldError", err)
			}
			return
		}
		for _, src := range fuzzEvents {
			doc := decode(t, src)
			o := fs.Apply(doc)
			if o.Dropped {
				if encode(t, doc) != canon(t, src) {
					t.Fatalf("a dropped event (%v) was changed", o)
				}
				continue
			}
			if o.Err != nil || o.Reason != "" {
				t.Fatalf("kept, but %v", o)
			}
			orig := decode(t, src)
			for _, k := range []string{"type", "messageId", "context", "timestamp", "receivedAt"} {
				if _, had := orig[k]; had {
					if _, has := doc[k]; !has {
						t.Fatalf("protected field %q removed (%v)", k, o)
					}
				}
			}
			if o.Removed == 0 && !reflect.DeepEqual(doc, orig) {
				t.Fatalf("Removed = 0 but the event changed")
			}
		}
	})
}
