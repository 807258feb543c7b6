package plan_test

import (
	"encoding/json"
	"fmt"

	"github.com/confluxcdp/conflux/internal/event"
	"github.com/confluxcdp/conflux/internal/process/plan"
)

func Example() {
	compiled, err := plan.Compile(plan.Plan{
		ID:   "tp_1",
		Name: "Shop",
		Events: map[string]json.RawMessage{
			"Order Completed": plan.PropertiesSchema(json.RawMessage(`{
				"type": "object",
				"properties": {"order_id": {"type": "string"}, "total": {"type": "number"}},
				"required": ["order_id"]
			}`)),
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	doc, _ := event.Decode([]byte(`{"type":"track","event":"Order Completed","messageId":"m-1",
		"context":{},"timestamp":"2026-01-02T03:04:05.000Z","receivedAt":"2026-01-02T03:04:05.000Z",
		"properties":{"total":"12","coupon":"SPRING"}}`))

	res := compiled.Check(doc, plan.Enforcement{
		TrackUnplannedProperties: plan.Omit,
		TrackViolations:          plan.OmitProperties,
	})
	fmt.Println(res.Verdict)
	for _, v := range res.Violations {
		fmt.Printf("%s %s: %s\n", v.Type, v.Field, v.Description)
	}
	out, _ := event.Encode(nil, doc["properties"].(map[string]any))
	fmt.Println(string(out))
	out, _ = event.Encode(nil, doc["context"].(map[string]any)["protocols"].(map[string]any))
	fmt.Println(string(out))
	// Output:
	// keep
	// Required properties.order_id: properties.order_id is required
	// Type properties.total: properties.total: got string, want number
	// Unplanned Property properties.coupon: properties.coupon is not in the tracking plan
	// {}
	// {"omitted":["coupon"],"omitted_on_violation":["total"],"violations":[{"description":"properties.order_id is required","field":"properties.order_id","type":"Required"},{"description":"properties.total: got string, want number","field":"properties.total","type":"Type"},{"description":"properties.coupon is not in the tracking plan","field":"properties.coupon","type":"Unplanned Property"}]}
}
