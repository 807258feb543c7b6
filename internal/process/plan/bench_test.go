package plan

import (
	"encoding/json"
	"testing"
)

// benchPlan plans one event with ten typed properties, like a typical
// ecommerce event, and a small common schema.
func benchPlan() Plan {
	return Plan{
		ID: "tp_bench",
		Events: map[string]json.RawMessage{
			"Order Completed": PropertiesSchema(json.RawMessage(`{
				"type": "object",
				"properties": {
					"order_id":    {"type": "string"},
					"affiliation": {"type": "string"},
					"total":       {"type": "number"},
					"revenue":     {"type": "number"},
					"shipping":    {"type": "number"},
					"tax":         {"type": "number"},
					"discount":    {"type": "number"},
					"coupon":      {"type": "string", "pattern": "^[A-Z0-9]{4,12}$"},
					"currency":    {"enum": ["USD", "EUR", "GBP"]},
					"placed_at":   {"type": "string", "format": "date-time"}
				},
				"required": ["order_id", "total", "currency"]
			}`)),
		},
		Common: json.RawMessage(`{"type":"object","properties":{"context":{"type":"object"},"properties":{"type":"object"}},"required":["context"]}`),
	}
}

const benchEvent = `{"type":"track","event":"Order Completed","messageId":"m-1","userId":"u-1",
	"context":{"library":{"name":"analytics.js","version":"1.0"},"ip":"1.2.3.4"},
	"timestamp":"2026-01-02T03:04:05.000Z","receivedAt":"2026-01-02T03:04:06.000Z",
	"properties":{"order_id":"o-123","affiliation":"web","total":27.5,"revenue":25,"shipping":3,"tax":2.5,
		"discount":3,"coupon":"SPRING26","currency":"USD","placed_at":"2026-01-02T03:04:05.000Z"}}`

// BenchmarkCheck checks a valid, planned track event with ten properties
// (the common case: nothing to report or change), and the same event with
// an unplanned property, under omission, which Check removes and records.
func BenchmarkCheck(b *testing.B) {
	c := mustCompile(b, benchPlan())
	b.Run("valid", func(b *testing.B) {
		doc := decode(b, benchEvent)
		enf := Enforcement{TrackUnplannedEvents: Block, TrackUnplannedProperties: Omit, TrackViolations: Block, CommonViolations: Block}
		b.ReportAllocs()
		for b.Loop() {
			if res := c.Check(doc, enf); res.Verdict != VerdictKeep || len(res.Violations) != 0 {
				b.Fatalf("%+v", res)
			}
		}
	})
	b.Run("unplanned_property_omitted", func(b *testing.B) {
		doc := decode(b, benchEvent)
		props := doc["properties"].(map[string]any)
		enf := Enforcement{TrackUnplannedProperties: Omit}
		b.ReportAllocs()
		for b.Loop() {
			props["extra"] = "x"
			if res := c.Check(doc, enf); len(res.Omitted) != 1 {
				b.Fatalf("%+v", res)
			}
		}
	})
}
