package fql_test

import (
	"encoding/json"
	"fmt"

	"github.com/confluxcdp/conflux/internal/fql"
)

func Example() {
	filter, err := fql.Compile(`type = 'track' and match(event, 'Order *') and properties.total > 100`)
	if err != nil {
		fmt.Println(err)
		return
	}
	var event map[string]any
	_ = json.Unmarshal([]byte(`{"type":"track","event":"Order Completed","properties":{"total":150}}`), &event)
	fmt.Println(filter.Match(event))
	// Output: true
}

func ExampleCompile_error() {
	_, err := fql.Compile(`(properties =)`)
	fmt.Println(err)
	// Output: fql: 1:14: expected a value after '=', found ')'
}

func ExampleExpr_Eval() {
	e, _ := fql.Compile(`snakecase(properties.product\ name)`)
	v, err := e.Eval(map[string]any{"properties": map[string]any{"product name": "Gift Card"}})
	fmt.Println(v, err)
	// Output: "gift_card" <nil>
}
