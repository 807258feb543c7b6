package transform

import (
	"testing"
)

// benchEvent is a typical stored track event, about 700 bytes.
const benchEvent = `{"anonymousId":"a5e5c2b0-3f1e-4b5e-9d3c-1b2a3c4d5e6f","context":{"ip":"203.0.113.7",` +
	`"library":{"name":"analytics.js","version":"4.1.0"},"locale":"en-US","page":{"path":"/checkout",` +
	`"referrer":"https://example.com/cart","title":"Checkout","url":"https://example.com/checkout"},` +
	`"userAgent":"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7)"},"event":"Order Completed",` +
	`"messageId":"ajs-next-1700000000000-7f3e2d1c","properties":{"coupon":"SAVE10","currency":"USD",` +
	`"email":"Jane@Example.com","order_id":"50314b8e9bcf000000000000","products":[{"price":19,"product_id":"507f1f77bcf86cd799439011",` +
	`"quantity":1,"sku":"45790-32"},{"price":3,"product_id":"505bd76785ebb509fc183733","quantity":2,"sku":"46493-32"}],` +
	`"revenue":25,"shipping":3,"tax":2},"receivedAt":"2025-01-02T03:04:05.678Z","sentAt":"2025-01-02T03:04:05.600Z",` +
	`"timestamp":"2025-01-02T03:04:05.600Z","type":"track","userId":"97980cfea0067"}`

func benchApply(b *testing.B, tr Transformation) {
	c, err := Compile(tr)
	if err != nil {
		b.Fatal(err)
	}
	doc := decode(b, benchEvent)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Apply(doc); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTransformationRename is the simple case the processing stage
// budgets for: an event-name condition and a property rename. The rename
// swaps two properties, so every iteration does the same work.
func BenchmarkTransformationRename(b *testing.B) {
	benchApply(b, Transformation{
		If:              "event = 'Order Completed'",
		PropertyRenames: []PropertyRename{{OldName: "revenue", NewName: "total"}, {OldName: "total", NewName: "revenue"}},
	})
}

// BenchmarkTransformationNoMatch is the cost of a transformation whose
// condition does not hold.
func BenchmarkTransformationNoMatch(b *testing.B) {
	benchApply(b, Transformation{If: "event = 'Signed Up'", NewEventName: "x"})
}

// BenchmarkTransformationAll uses every kind of change at once: nested
// renames, a static value and an FQL-computed one (which allocates its
// new string).
func BenchmarkTransformationAll(b *testing.B) {
	benchApply(b, Transformation{
		If:           "event = 'Order Completed' and properties.revenue > 0",
		NewEventName: "Order Completed",
		PropertyRenames: []PropertyRename{
			{OldName: "order_id", NewName: "order.id"}, {OldName: "order.id", NewName: "order_id"},
		},
		PropertyValueTransformations: []PropertyValueTransformation{{PropertyPaths: []string{"properties.currency", "context.app.env"}, PropertyValue: "USD"}},
		FQLDefinedProperties:         []FQLDefinedProperty{{FQL: "lowercase(properties.email)", PropertyName: "properties.email_lower"}},
	})
}

// BenchmarkFilters is a destination's filter set that keeps the event:
// a sample, a drop that does not match, a blocklist and a whitelist. The
// removed fields are put back each iteration (two map writes).
func BenchmarkFilters(b *testing.B) {
	fs, err := CompileFilters([]Filter{
		{ID: "heartbeats", If: "event = 'Heartbeat'", Actions: []Action{{Type: SampleEvent, Percent: ptr(0.1)}}},
		{ID: "sample", If: "all", Actions: []Action{{Type: SampleEvent, Percent: ptr(0.999999)}}},
		{ID: "only-orders", If: "!(match(event, 'Order *') or event = 'Signed Up')", Actions: []Action{{Type: DropEvent}}},
		{ID: "pii", If: "all", Actions: []Action{{Type: BlocklistFields, Fields: Fields{"properties": {"email"}, "context": {"ip"}}}}},
		{ID: "allow", If: "type = 'track'", Actions: []Action{{Type: WhitelistFields, Fields: Fields{
			"properties": {"coupon", "currency", "order_id", "products", "revenue", "shipping", "tax"},
		}}}},
	})
	if err != nil {
		b.Fatal(err)
	}
	doc := decode(b, benchEvent)
	props, ctx := doc["properties"].(map[string]any), doc["context"].(map[string]any)
	if o := fs.Apply(doc); o.Dropped || o.Removed != 2 {
		b.Fatalf("Outcome = %v", o)
	}
	b.ReportAllocs()
	for b.Loop() {
		props["email"], ctx["ip"] = "jane@example.com", "203.0.113.7"
		if o := fs.Apply(doc); o.Dropped {
			b.Fatal(o)
		}
	}
}

// BenchmarkFiltersDrop is a filter set whose drop filter matches.
func BenchmarkFiltersDrop(b *testing.B) {
	fs, err := CompileFilters([]Filter{
		{ID: "pii", If: "all", Actions: []Action{{Type: BlocklistFields, Fields: Fields{"properties": {"email"}}}}},
		{ID: "no-orders", If: "event = 'Order Completed'", Actions: []Action{{Type: DropEvent}}},
	})
	if err != nil {
		b.Fatal(err)
	}
	doc := decode(b, benchEvent)
	b.ReportAllocs()
	for b.Loop() {
		if o := fs.Apply(doc); !o.Dropped {
			b.Fatal(o)
		}
	}
}
