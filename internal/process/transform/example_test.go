package transform_test

import (
	"fmt"

	"github.com/confluxcdp/conflux/internal/event"
	"github.com/confluxcdp/conflux/internal/process/transform"
)

func ExampleCompile() {
	t, err := transform.Compile(transform.Transformation{
		If:                   "event = 'order_completed'",
		NewEventName:         "Order Completed",
		PropertyRenames:      []transform.PropertyRename{{OldName: "orderId", NewName: "order.id"}},
		FQLDefinedProperties: []transform.FQLDefinedProperty{{FQL: "lowercase(properties.email)", PropertyName: "properties.email"}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	doc, _ := event.Decode([]byte(`{"type":"track","event":"order_completed","messageId":"m1","context":{},` +
		`"properties":{"orderId":"o-1","email":"Jane@Example.com"}}`))
	applied, err := t.Apply(doc)
	out, _ := event.Encode(nil, doc)
	fmt.Println(applied, err)
	fmt.Println(string(out))
	// Output:
	// true <nil>
	// {"context":{},"event":"Order Completed","messageId":"m1","properties":{"email":"jane@example.com","order":{"id":"o-1"}},"type":"track"}
}

func ExampleCompile_error() {
	_, err := transform.Compile(transform.Transformation{
		If: "event = 'Order Completed'",
		FQLDefinedProperties: []transform.FQLDefinedProperty{
			{FQL: "lowercase(properties.email)", PropertyName: "properties.email"},
			{FQL: "upper(properties.name)", PropertyName: "userId"},
		},
	})
	fmt.Println(err)
	// Output:
	// fqlDefinedProperties[1].fql: fql: 1:1: unknown function "upper"
	// fqlDefinedProperties[1].propertyName: "userId" is outside properties, traits and context: transformations cannot change top-level fields such as userId, messageId or type; start the path with properties., traits. or context.
}

func ExampleFilters_Apply() {
	filters, err := transform.CompileFilters([]transform.Filter{
		{ID: "only-orders", If: "!match(event, 'Order *')", Actions: []transform.Action{{Type: transform.DropEvent}}},
		{ID: "no-pii", If: "all", Actions: []transform.Action{{Type: transform.BlocklistFields,
			Fields: transform.Fields{"properties": {"email"}, "context": {"ip"}}}}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, name := range []string{"Order Completed", "Page Scrolled"} {
		doc, _ := event.Decode([]byte(`{"type":"track","event":"` + name + `","messageId":"m1",` +
			`"context":{"ip":"203.0.113.7"},"properties":{"email":"jane@example.com","total":5}}`))
		outcome := filters.Apply(doc)
		out, _ := event.Encode(nil, doc)
		fmt.Println(outcome)
		fmt.Println(string(out))
	}
	// Output:
	// kept, 2 fields removed
	// {"context":{},"event":"Order Completed","messageId":"m1","properties":{"total":5},"type":"track"}
	// dropped (filtered) by filters[0] "only-orders"
	// {"context":{"ip":"203.0.113.7"},"event":"Page Scrolled","messageId":"m1","properties":{"email":"jane@example.com","total":5},"type":"track"}
}
