package fql_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/confluxcdp/conflux/internal/fql"
)

// decode parses a JSON event the way the pipeline does.
func decode(t testing.TB, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("bad test event %s: %v", s, err)
	}
	return m
}

// docsEvent is the example object of Segment's FQL reference
// (segment-docs src/api/public-api/fql.md).
const docsEvent = `{
  "event": "Button Clicked",
  "type": "track",
  "context": {"library": {"name": "analytics.js", "version": "1.0"}},
  "properties": {"features": ["discounts", "dark-mode"]}
}`

// richEvent exercises nested objects, arrays, numbers and odd field names.
const richEvent = `{
  "type": "track",
  "event": "Order Completed",
  "userId": "u-42",
  "anonymousId": null,
  "context": {"library": {"name": "analytics-go", "version": "3.3.0"}, "page": {"path": "/checkout"}},
  "properties": {
    "total": 150.5,
    "count": 3,
    "negative": -2,
    "big": 1e21,
    "zero": 0,
    "enabled": true,
    "disabled": false,
    "flag": "true",
    "email": "Jane@Example.com",
    "empty": "",
    "tags": ["a", "b", 1, true, null],
    "nested": [[1, 2], {"x": 1}],
    "products": [
      {"sku": "G-32", "price": 18.99},
      {"sku": "B-01", "price": 5}
    ],
    "product 1": {"price": "19.99"},
    "a.b": "dotted",
    "$price": 7,
    "café": "crème",
    "null": "not null",
    "in": "keyword",
    "0": "zero key",
    "a-b": "dash",
    "obj1": {"x": 1, "y": [1, 2]},
    "obj2": {"y": [1, 2], "x": 1},
    "obj3": {"x": 1, "y": [2, 1]}
  },
  "and": "top-level and",
  "traits": {"email": "ops@company.com"}
}`

type evalCase struct {
	name  string
	expr  string
	event string // JSON; "" means docsEvent
	want  any    // a value as encoding/json decodes it
}

// specCases holds every example of spec §8.5 and of Segment's FQL
// reference, with the results they document.
func specCases() []evalCase {
	return []evalCase{
		// Segment FQL reference, "Examples" table.
		{"docs event equals", `event = 'Button Clicked'`, "", true},
		{"docs event not equals", `event = 'Screen Tapped'`, "", false},
		{"docs missing path", `context.path.path = '/login'`, "", false},
		{"docs or", `type = 'identify' or type = 'track'`, "", true},
		{"docs and", `event = 'Button Clicked' and type = 'track'`, "", true},
		{"docs match version", `match( context.library.version, '1.*' )`, "", true},
		{"docs match version miss", `match( context.library.version, '2.*' )`, "", false},
		{"docs grouped", `type = 'track' and ( event = 'Click' or match( event, 'Button *' ) )`, "", true},
		{"docs not contains", `!contains( context.library.name, 'js' )`, "", false},
		{"docs in field", `'dark-mode' in properties.features`, "", true},
		{"docs not in field", `'blink' in properties.features`, "", false},
		// "Subexpressions" table. The first has match()'s arguments swapped in
		// the docs, so 'Button *' is the string and is not matched.
		{"docs subexpr swapped match", `type = 'track' and ( event = 'Click' or match( 'Button *', event ) )`, "", false},
		{"docs subexpr two groups", `( type = 'track' or type = 'identify' ) and ( properties.enabled or match( traits.email, '*@company.com' ) )`, "", false},
		{"docs subexpr two groups rich", `( type = 'track' or type = 'identify' ) and ( properties.enabled or match( traits.email, '*@company.com' ) )`, richEvent, true},
		{"docs subexpr two groups traits", `( type = 'track' or type = 'identify' ) and ( properties.disabled or match( traits.email, '*@company.com' ) )`, richEvent, true},
		{"docs not in list", `!( type in ['track', 'identify'] )`, "", false},
		// Field path escaping.
		{"docs escaped path", `properties.product\ 1.price`, richEvent, "19.99"},
		{"docs top-level userId", `userId = 'u-42'`, richEvent, true},
		// Functions table.
		{"docs contains", `contains( 'Button Clicked', 'Click' )`, "", true},
		{"docs length ascii", `length( 'a' )`, "", 1.0},
		{"docs length katakana bytes", `length( 'ア' )`, "", 3.0},
		{"docs length list", `length( properties.features )`, "", 2.0},
		{"docs lowercase", `lowercase( 'Button CLICKED' )`, "", "button clicked"},
		{"docs uppercase", `uppercase( 'Button clicked' )`, "", "BUTTON CLICKED"},
		{"docs snakecase", `snakecase( 'test string' )`, "", "test_string"},
		{"docs kebabcase", `kebabcase( 'test string' )`, "", "test-string"},
		{"docs titlecase", `titlecase( 'test string' )`, "", "Test String"},
		{"docs typeof string", `typeof( event )`, "", "string"},
		{"docs typeof list", `typeof( properties.features )`, "", "list"},
		// Null handling table.
		{"docs contains null", `contains( null, 'x' )`, "", false},
		{"docs length null", `length( null )`, "", 0.0},
		{"docs lowercase null", `lowercase( null )`, "", nil},
		{"docs typeof null", `typeof( null )`, "", "null"},
		{"docs match null", `match( null, '*' )`, "", false},
		{"docs length userId shortcut", `length( userId ) > 0`, "", false},
		{"docs length userId shortcut set", `length( userId ) > 0`, richEvent, true},
		// match() table.
		{"docs glob star middle", `match( 'abcd', 'a*d' )`, "", true},
		{"docs glob star empty", `match( '', '*' )`, "", true},
		{"docs glob full string", `match( 'abc', 'ab' )`, "", false},
		{"docs glob question", `match( 'abcd', 'a??d' )`, "", true},
		{"docs glob star start", `match( 'abcd', '*d' )`, "", true},
		{"docs glob escaped star", `match( 'ab*d', 'ab\*d' )`, "", true},
		{"docs glob class", `match( 'abCd', 'ab[cC]d' )`, "", true},
		{"docs glob range", `match( 'abcd', 'ab[a-z]d' )`, "", true},
		{"docs glob range case", `match( 'abcd', 'ab[A-Z]d' )`, "", false},
		// Spec §8.5: existence without exists().
		{"spec typeof exists", `typeof(properties.total) != 'null'`, richEvent, true},
		{"spec typeof missing", `typeof(properties.nope) != 'null'`, richEvent, false},
		{"spec length exists", `length(userId) > 0`, richEvent, true},
		{"spec not null", `userId != null`, richEvent, true},
		{"spec not null missing", `properties.nope != null`, richEvent, false},
		{"spec list literal", `'a' in ['a','b']`, "", true},
		// Real-world Segment filters from public Terraform configurations:
		// double-quoted strings and no space before '='.
		{"terraform only send", `!(event = "Order Completed") or !((event = "Sign Up") and !(properties.email= "''"))`, richEvent, true},
		{"terraform only send other", `!(event = "Order Completed") or !((event = "Sign Up") and !(properties.email= "''"))`, "", true},
		{"terraform identify", `(type = 'identify' and (traits.og_user = null and traits.og_handle = null or traits.email = null)) or (type = 'track' and !(event = 'App KYC Approved' or event = 'Order Completed'))`, richEvent, false},
	}
}

func evalCases() []evalCase {
	return []evalCase{
		// Strict, type-sensitive equality.
		{"eq number string", `1 = '1'`, "", false},
		{"ne number string", `1 != '1'`, "", true},
		{"eq strings", `'1' = '1'`, "", true},
		{"eq bool string", `true = 'true'`, "", false},
		{"eq int float", `1 = 1.0`, "", true},
		{"eq null null", `null = null`, "", true},
		{"eq missing null", `properties.nope = null`, "", true},
		{"eq explicit null field", `anonymousId = null`, richEvent, true},
		{"eq null false", `null = false`, "", false},
		{"eq zero false", `0 = false`, "", false},
		{"eq empty string null", `'' = null`, "", false},
		{"eq lists", `[1, 'a', [true]] = [1, 'a', [true]]`, "", true},
		{"eq lists order", `[1, 2] = [2, 1]`, "", false},
		{"eq lists length", `[1, 2] = [1, 2, 3]`, "", false},
		{"eq empty lists", `[] = []`, "", true},
		{"eq field list", `properties.features = ['discounts', 'dark-mode']`, "", true},
		{"eq objects same content", `properties.obj1 = properties.obj2`, richEvent, true},
		{"eq objects differ", `properties.obj1 = properties.obj3`, richEvent, false},
		{"ne objects differ", `properties.obj1 != properties.obj3`, richEvent, true},
		{"eq object list", `properties.obj1 = [1]`, richEvent, false},
		{"eq case sensitive", `event = 'button clicked'`, "", false},
		// Numeric comparisons; anything but two numbers is false.
		{"lt", `1 < 2`, "", true},
		{"lt false", `2 < 1`, "", false},
		{"lt equal", `1 < 1`, "", false},
		{"gt equal", `1 > 1`, "", false},
		{"le less", `1 <= 2`, "", true},
		{"le greater", `3 <= 2`, "", false},
		{"ge less", `2 >= 3`, "", false},
		{"le equal", `1 <= 1`, "", true},
		{"ge equal", `1 >= 1`, "", true},
		{"gt", `2 > 1`, "", true},
		{"gt field", `properties.total > 100`, richEvent, true},
		{"gt field false", `properties.total > 150.5`, richEvent, false},
		{"ge field", `properties.total >= 150.5`, richEvent, true},
		{"lt negative", `properties.negative < -1.5`, richEvent, true},
		{"lt strings", `'a' < 'b'`, "", false},
		{"gt string number", `'2' > 1`, "", false},
		{"lt null", `null < 1`, "", false},
		{"ge missing", `properties.nope >= 0`, richEvent, false},
		{"not of false comparison", `!('a' < 'b')`, "", true},
		{"lt bools", `false < true`, "", false},
		// in.
		{"in list", `'a' in ['a', 'b']`, "", true},
		{"in list miss", `'c' in ['a', 'b']`, "", false},
		{"in numbers", `1 in [1, 2]`, "", true},
		{"in strict", `'1' in [1, 2]`, "", false},
		{"in null", `null in [null]`, "", true},
		{"in missing field null", `properties.nope in ['x', null]`, "", true},
		{"in bool", `true in [false, true]`, "", true},
		{"in empty", `'a' in []`, "", false},
		{"in nested list", `[1] in [[1], [2]]`, "", true},
		{"in field left", `event in ['Button Clicked', 'Other']`, "", true},
		{"in field right mixed", `1 in properties.tags`, richEvent, true},
		{"in field right null element", `null in properties.tags`, richEvent, true},
		{"in missing list", `'x' in properties.nope`, "", false},
		{"in string not list", `'x' in 'xyz'`, "", false},
		{"in computed list", `type in [event, 'track']`, "", true},
		{"in computed list miss", `type in [event, lowercase('TRACKING')]`, "", false},
		{"in object element", `properties.obj2 in [properties.obj1]`, richEvent, true},
		// Boolean operators and null.
		{"and true", `true and true`, "", true},
		{"and false", `true and false`, "", false},
		{"and null", `properties.nope and true`, "", false},
		{"or null", `properties.nope or true`, "", true},
		{"or nulls", `null or null`, "", false},
		{"and chain", `true and true and true and false`, "", false},
		{"or chain", `false or false or false or true`, "", true},
		{"and short circuit", `false and 'not a bool'`, "", false},
		{"or short circuit", `true or 'not a bool'`, "", true},
		{"not true", `!true`, "", false},
		{"not false", `!false`, "", true},
		{"not null", `!null`, "", true},
		{"not missing", `!properties.nope`, "", true},
		{"double not", `!!true`, "", true},
		{"not spaced", `! ( type = 'track' )`, "", false},
		{"bare bool field", `properties.enabled`, richEvent, true},
		{"bare string field", `properties.flag`, richEvent, "true"},
		{"bare bool literal", `true`, "", true},
		{"bare number", `42`, "", 42.0},
		{"bare list", `['a', 1, null, false]`, "", []any{"a", 1.0, nil, false}},
		// Precedence: '!' binds looser than comparisons, 'and' tighter than
		// 'or'.
		{"prec and over or", `true or false and false`, "", true},
		{"prec and over or right", `false and false or true`, "", true},
		{"prec parens", `(true or false) and false`, "", false},
		{"prec not over and", `!false and false`, "", false},
		{"prec not group", `!(false and false)`, "", true},
		{"prec not comparison", `!event = 'x'`, "", true},
		{"prec not null comparison", `!null = false`, "", true},
		{"prec not in", `!type in ['track']`, "", false},
		{"prec nested parens", `((((type = 'track'))))`, "", true},
		// Numbers.
		{"num decimal", `0.5 = 0.5`, "", true},
		{"num negative", `-4 < 0`, "", true},
		{"num plus", `+5 = 5`, "", true},
		{"num exponent", `1e3 = 1000`, "", true},
		{"num exponent upper negative", `2.5E-3 = 0.0025`, "", true},
		{"num exponent plus", `1E+2 = 100`, "", true},
		{"num leading zeros", `007 = 7`, "", true},
		{"num negative zero", `-0 = 0`, "", true},
		{"num int field", `properties.count = 3`, richEvent, true},
		{"num big field", `properties.big = 1e21`, richEvent, true},
		{"num no space", `properties.count>-1`, richEvent, true},
		// Field paths.
		{"path top-level type", `type`, richEvent, "track"},
		{"path nested", `context.library.name = 'analytics-go'`, richEvent, true},
		{"path whole object", `typeof(context.library)`, richEvent, "object"},
		{"path escaped dot", `properties.a\.b`, richEvent, "dotted"},
		{"path escaped dollar", `properties.\$price = 7`, richEvent, true},
		{"path escaped unicode", `properties.caf\é`, richEvent, "crème"},
		{"path keyword segments", `properties.null = 'not null' and properties.in = 'keyword'`, richEvent, true},
		{"path escaped keyword top-level", `\and`, richEvent, "top-level and"},
		{"path digit key on object", `properties.0`, richEvent, "zero key"},
		{"path dash", `properties.a-b`, richEvent, "dash"},
		{"path through string", `event.foo = null`, richEvent, true},
		{"path missing deep", `a.b.c.d.e.f`, richEvent, nil},
		// Arrays in events: a numeric segment indexes a list; there is no
		// implicit mapping over elements.
		{"array index", `properties.products.0.sku`, richEvent, "G-32"},
		{"array index second", `properties.products.1.price > 4`, richEvent, true},
		{"array index nested", `properties.nested.0.1`, richEvent, 2.0},
		{"array index object", `properties.nested.1.x`, richEvent, 1.0},
		{"array index out of range", `properties.products.5.sku`, richEvent, nil},
		{"array no mapping", `properties.products.sku`, richEvent, nil},
		{"array leading zero", `properties.products.01.sku`, richEvent, nil},
		{"array negative", `properties.products.-1`, richEvent, nil},
		{"array huge index", `properties.products.99999999999999999999`, richEvent, nil},
		// Strings.
		{"str double quotes", `event = "Button Clicked"`, "", true},
		{"str escaped single quote", `'it\'s'`, "", "it's"},
		{"str escaped double quote", `"say \"hi\""`, "", `say "hi"`},
		{"str other quote inside", `'say "hi"' = "say \"hi\""`, "", true},
		{"str escaped backslash", `'back\\slash'`, "", `back\slash`},
		{"str glob escape kept", `'a\*b'`, "", `a\*b`},
		{"str empty", `'' = ''`, "", true},
		{"str newline inside", "'a\nb'", "", "a\nb"},
		{"str unicode", `'日本' = '日本'`, "", true},
		{"whitespace", "\ttype\n=\r\n'track'  ", "", true},
		// contains().
		{"contains", `contains(context.library.name, 'js')`, "", true},
		{"contains empty", `contains('abc', '')`, "", true},
		{"contains case", `contains('abc', 'B')`, "", false},
		{"contains number", `contains(5, '5')`, "", false},
		{"contains null sub", `contains('abc', null)`, "", false},
		{"contains list", `contains(properties.features, 'dark-mode')`, "", false},
		// length().
		{"length empty", `length('')`, "", 0.0},
		{"length utf8 bytes", `length('é')`, "", 2.0},
		{"length empty list", `length([])`, "", 0.0},
		{"length missing", `length(properties.nope)`, "", 0.0},
		// Casing on non-strings.
		{"lowercase number", `lowercase(5)`, "", nil},
		{"uppercase null", `uppercase(null)`, "", nil},
		{"snakecase list", `snakecase(['A B'])`, "", nil},
		{"titlecase bool", `titlecase(true)`, "", nil},
		{"lowercase field", `lowercase(properties.email) = 'jane@example.com'`, richEvent, true},
		// typeof().
		{"typeof number", `typeof(1)`, "", "number"},
		{"typeof bool", `typeof(false)`, "", "bool"},
		{"typeof list literal", `typeof([])`, "", "list"},
		{"typeof object", `typeof(properties)`, "", "object"},
		{"typeof missing", `typeof(properties.nope)`, "", "null"},
		// bool().
		{"bool true", `bool(true)`, "", true},
		{"bool null", `bool(null)`, "", false},
		{"bool zero", `bool(0)`, "", false},
		{"bool number", `bool(-2)`, "", true},
		{"bool string true", `bool('true')`, "", true},
		{"bool string FALSE", `bool('FALSE')`, "", false},
		{"bool string 1", `bool('1')`, "", true},
		{"bool empty list", `bool([])`, "", false},
		{"bool list", `bool([0])`, "", true},
		{"bool of comparison", `bool(1 = 1)`, "", true},
		{"bool field", `bool(properties.flag) and properties.enabled`, richEvent, true},
		// string().
		{"string string", `string('x')`, "", "x"},
		{"string int", `string(1)`, "", "1"},
		{"string float", `string(1.5)`, "", "1.5"},
		{"string negative", `string(-2)`, "", "-2"},
		{"string large", `string(1e21)`, "", "1e+21"},
		{"string below 1e21", `string(123456789012345678901e-1)`, "", "12345678901234567000"},
		{"string small", `string(0.0000001)`, "", "1e-7"},
		{"string 1e-6", `string(0.000001)`, "", "0.000001"},
		{"string negative zero", `string(-0)`, "", "0"},
		{"string bool", `string(true)`, "", "true"},
		{"string null", `string(null)`, "", "null"},
		{"string list", `string([1, 'a', null, ['<&>']])`, "", `[1,"a",null,["<&>"]]`},
		{"string object", `string(context.library)`, "", `{"name":"analytics.js","version":"1.0"}`},
		{"string compare", `string(properties.count) = '3'`, richEvent, true},
		// number().
		{"number number", `number(4)`, "", 4.0},
		{"number string", `number('42') = 42`, "", true},
		{"number spaces", `number(' 4.5 ')`, "", 4.5},
		{"number exponent", `number('1e3')`, "", 1000.0},
		{"number negative", `number('-0.25')`, "", -0.25},
		{"number null", `number(null) = null`, "", true},
		{"number field", `number(properties.product\ 1.price) > 19`, richEvent, true},
		// Nesting.
		{"nested funcs", `length(lowercase(event)) = 14`, "", true},
		{"nested contains", `contains(lowercase(event), 'button')`, "", true},
		{"snake of field", `snakecase(event) = 'button_clicked'`, "", true},
		{"titlecase roundtrip", `titlecase(snakecase('Order Completed')) = 'Order Completed'`, "", true},
		{"match escaped field", `match(properties.caf\é, 'cr?me')`, richEvent, true},
		{"match non string pattern", `match('1', 1)`, "", false},
		{"match bad pattern", `match('[', '[')`, "", false},
		{"nil map field", `event`, "null", nil},
	}
}

// casingCases covers lowercase, uppercase and the word-splitting
// functions on tricky inputs.
func casingCases() []struct{ fn, in, want string } {
	return []struct{ fn, in, want string }{
		{"lowercase", "Order Completed", "order completed"},
		{"lowercase", "ORDER_completed-now", "order_completed-now"},
		{"lowercase", "ÜNÏCÖDÉ Ω", "ünïcödé ω"},
		{"uppercase", "orderCompleted", "ORDERCOMPLETED"},
		{"uppercase", "straße", "STRAßE"},
		{"uppercase", "ünïcödé", "ÜNÏCÖDÉ"},

		{"snakecase", "Order Completed", "order_completed"},
		{"snakecase", "orderCompleted", "order_completed"},
		{"snakecase", "OrderCompleted", "order_completed"},
		{"snakecase", "ORDER_completed-now", "order_completed_now"},
		{"snakecase", "order_completed", "order_completed"},
		{"snakecase", "HTTPServer", "http_server"},
		{"snakecase", "userID", "user_id"},
		{"snakecase", "userIDs", "user_i_ds"},
		{"snakecase", "base64Encode", "base64_encode"},
		{"snakecase", "sha256", "sha256"},
		{"snakecase", "Base64", "base64"},
		{"snakecase", "sample 2 Text", "sample_2_text"},
		{"snakecase", "   $#$sample   2    Text   ", "sample_2_text"},
		{"snakecase", "SAMPLE 2 TEXT", "sample_2_text"},
		{"snakecase", "FOO:BAR$BAZ", "foo_bar_baz"},
		{"snakecase", "something.com", "something_com"},
		{"snakecase", "a--b__c  d", "a_b_c_d"},
		{"snakecase", "", ""},
		{"snakecase", "$#@!", ""},
		{"snakecase", "Café Crème", "café_crème"},
		{"snakecase", "ÉcoleNormale", "école_normale"},
		{"snakecase", "ΑΒΓ Δέλτα", "αβγ_δέλτα"},
		{"snakecase", "日本語 テキスト", "日本語_テキスト"},
		{"snakecase", "日本Tokyo", "日本_tokyo"},
		{"snakecase", "nai\u0308veUser", "nai\u0308ve_user"},
		{"snakecase", "🎉 Party Time 🎉", "party_time"},

		{"kebabcase", "Order Completed", "order-completed"},
		{"kebabcase", "orderCompleted", "order-completed"},
		{"kebabcase", "ORDER_completed-now", "order-completed-now"},
		{"kebabcase", "HTTPServer", "http-server"},
		{"kebabcase", "Café Crème", "café-crème"},
		{"kebabcase", "already-kebab", "already-kebab"},

		{"titlecase", "Order Completed", "Order Completed"},
		{"titlecase", "order completed", "Order Completed"},
		{"titlecase", "orderCompleted", "Order Completed"},
		{"titlecase", "ORDER_completed-now", "Order Completed Now"},
		{"titlecase", "HTTPServer", "Http Server"},
		{"titlecase", "café crème", "Café Crème"},
		{"titlecase", "ǆemal", "ǅemal"},
		{"titlecase", "élan VITAL", "Élan Vital"},
		{"titlecase", "  many   spaces  ", "Many Spaces"},
	}
}

// globCases are match(s, pattern) results. The pattern language is the
// one Segment's reference evaluator shares with segmentio/glob: '/' is
// not special, '[^…]' negates, and a malformed pattern matches nothing.
func globCases() []struct {
	s, pattern string
	want       bool
} {
	return []struct {
		s, pattern string
		want       bool
	}{
		{"abc", "abc", true},
		{"abc", "*", true},
		{"abc", "*c", true},
		{"abc", "*b", false},
		{"a", "a*", true},
		{"ab/c", "a*", true},
		{"a/b", "a?b", true},
		{"a/c/b", "a*/b", true},
		{"axbxcxdxe/f", "a*b*c*d*e*/f", true},
		{"axbxcxdxexxx/fff", "a*b*c*d*e*/f", false},
		{"abxbbxdbxebxczzx", "a*b?c*x", true},
		{"abxbbxdbxebxczzy", "a*b?c*x", false},
		{"abcabcabc", "*a*b*c*", true},
		{"xxx", "*x", true},
		{"aaa", "a*a*a", true},
		{"aa", "a*a*a", false},
		{"", "", true},
		{"a", "", false},
		{"", "?", false},
		{"", "a*", false},
		{"", "**", true},
		{"abc", "ab[c]", true},
		{"abc", "ab[b-d]", true},
		{"abc", "ab[e-g]", false},
		{"abc", "ab[^c]", false},
		{"abd", "ab[^c]", true},
		{"abc", "ab[^e-g]", true},
		{"a☺b", "a?b", true},
		{"a☺b", "a[^a]b", true},
		{"a☺b", "a???b", false},
		{"α", "[a-ζ]*", true},
		{"A", "*[a-ζ]", false},
		{"a*b", `a\*b`, true},
		{"ab", `a\*b`, false},
		{"a b", `a\ b`, true},
		{"abc", `\a\b\c`, true},
		{"]", `[\]a]`, true},
		{"-", `[\-]`, true},
		{"x", `[x\-]`, true},
		{"-", `[x\-]`, true},
		{"z", `[x\-]`, false},
		{"a", `[\-x]`, false},
		{"Order Completed", "Order *", true},
		{"order completed", "Order *", false},
		{"user@company.com", "*@company.com", true},
		{"user@company.co", "*@company.com", false},
		// Malformed patterns match nothing, not even themselves.
		{"]", "[]a]", false},
		{"-", "[-]", false},
		{"x", "[x-]", false},
		{"x", "[-x]", false},
		{"a", "[a-b-c]", false},
		{"[", "[", false},
		{"a", "[^", false},
		{"a", "[^bc", false},
		{"a", "a[", false},
		{`\`, `\`, false},
		{"a", "[]", false},
		// No exponential backtracking.
		{strings.Repeat("a", 2000), "*a*a*a*a*a*a*a*a*b", false},
		{strings.Repeat("ab", 1000), "*a*b*a*b*a*b*ab", true},
	}
}

// checkValue compares an evaluation result to a want in encoding/json form.
func checkValue(t *testing.T, expr string, got fql.Value, want any) {
	t.Helper()
	if g := got.Interface(); !reflect.DeepEqual(g, want) {
		t.Errorf("%s = %s (%T), want %#v", expr, got, g, want)
	}
}

func runEvalCases(t *testing.T, cases []evalCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := tc.event
			if src == "" {
				src = docsEvent
			}
			ev := decode(t, src)
			e, err := fql.Compile(tc.expr)
			if err != nil {
				t.Fatalf("Compile(%q): %v", tc.expr, err)
			}
			got, err := e.Eval(ev)
			if err != nil {
				t.Fatalf("Eval(%q): %v", tc.expr, err)
			}
			checkValue(t, tc.expr, got, tc.want)
			if m := e.Match(ev); m != (tc.want == true) {
				t.Errorf("Match(%q) = %v, want %v", tc.expr, m, tc.want == true)
			}
		})
	}
}

func TestSpecExamples(t *testing.T) { runEvalCases(t, specCases()) }

func TestEval(t *testing.T) { runEvalCases(t, evalCases()) }

func TestCasing(t *testing.T) {
	for _, tc := range casingCases() {
		t.Run(tc.fn+"/"+tc.in, func(t *testing.T) {
			expr := tc.fn + "(s)"
			e, err := fql.Compile(expr)
			if err != nil {
				t.Fatal(err)
			}
			got, err := e.Eval(map[string]any{"s": tc.in})
			if err != nil {
				t.Fatal(err)
			}
			checkValue(t, expr+" with s="+tc.in, got, tc.want)
		})
	}
}

func TestGlob(t *testing.T) {
	e, err := fql.Compile("match(s, p)")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range globCases() {
		name := clipName(tc.s) + "/" + clipName(tc.pattern)
		t.Run(name, func(t *testing.T) {
			v, err := e.Eval(map[string]any{"s": tc.s, "p": tc.pattern})
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := v.AsBool(); got != tc.want {
				t.Errorf("match(%q, %q) = %v, want %v", tc.s, tc.pattern, got, tc.want)
			}
		})
	}
}

func clipName(s string) string {
	if len(s) > 20 {
		return s[:20] + "…"
	}
	return s
}

type errCase struct {
	expr      string
	pos       int
	line, col int
	msg       string
}

// compileErrCases are invalid expressions with the position and a part of
// the message Compile must report.
func compileErrCases() []errCase {
	return []errCase{
		{`(properties =)`, 13, 1, 14, "expected a value after '=', found ')'"},
		{``, 0, 1, 1, "expected an expression, found end of expression"},
		{`   `, 3, 1, 4, "expected an expression, found end of expression"},
		{`event = `, 8, 1, 9, "expected a value after '=', found end of expression"},
		{`event = 'Button`, 8, 1, 9, "unterminated string: expected a closing '"},
		{`userId = oops"`, 13, 1, 14, `unterminated string: expected a closing "`},
		{`'a\'`, 0, 1, 1, "unterminated string"},
		{`'a' in ['a', 'b'`, 7, 1, 8, "unterminated list: expected ',' or ']', found end of expression"},
		{`'a' in ['a' 'b']`, 12, 1, 13, "expected ',' or ']' in list, found string 'b'"},
		{`'a' in ['a',]`, 12, 1, 13, "expected a value after ',', found ']'"},
		{`'a' in [,]`, 8, 1, 9, "expected a value after '[', found ','"},
		{`foo(event)`, 0, 1, 1, `unknown function "foo"`},
		{`Contains(event, 'a')`, 0, 1, 1, `unknown function "Contains"`},
		{`exists(userId)`, 0, 1, 1, `unknown function "exists"`},
		{`contains(event)`, 0, 1, 1, "contains() takes 2 arguments, found 1"},
		{`match(event, 'a', 'b')`, 0, 1, 1, "match() takes 2 arguments, found 3"},
		{`x = length()`, 4, 1, 5, "length() takes 1 argument, found 0"},
		{`lowercase(a, b)`, 0, 1, 1, "lowercase() takes 1 argument, found 2"},
		{`contains(event, 'a'`, 8, 1, 9, "unterminated arguments of contains(): expected ',' or ')', found end of expression"},
		{`contains(event 'a')`, 15, 1, 16, "expected ',' or ')' in arguments of contains(), found string 'a'"},
		{`(event 'a')`, 7, 1, 8, "expected an operator such as '=' after field event, found string 'a'"},
		{`contains(event = 'a' 'b')`, 21, 1, 22, "expected ',' or ')' in arguments of contains(), found string 'b'"},
		{`event = 'a' extra`, 12, 1, 13, "expected 'and', 'or' or end of expression, found field extra"},
		{`event 'a'`, 6, 1, 7, "expected an operator such as '=' after field event, found string 'a'"},
		{`true AND false`, 5, 1, 6, "expected an operator such as '=' after 'true', found field AND"},
		{`1 = 1 = 1`, 6, 1, 7, "cannot chain '=' after a comparison"},
		{`a < b in c`, 6, 1, 7, "cannot chain 'in' after a comparison"},
		{`properties.a\`, 12, 1, 13, `expected a character after '\' in field name`},
		{`'a\nb'`, 2, 1, 3, `invalid escape '\n' in string`},
		{`'a\ b'`, 2, 1, 3, `invalid escape '\ ' in string`},
		{`properties.`, 11, 1, 12, "expected a field name after '.', found end of expression"},
		{`properties..x`, 11, 1, 12, "expected a field name after '.', found '.'"},
		{`properties.prénom = 'x'`, 13, 1, 14, "character 'é' in a field name must be escaped with '\\'"},
		{`école = 'x'`, 0, 1, 1, "character 'é' in a field name must be escaped with '\\'"},
		{`5.0.0 = x`, 3, 1, 4, "unexpected '.' after number 5.0"},
		{`12abc = x`, 2, 1, 3, "unexpected 'a' after number 12"},
		{`5. = 5`, 2, 1, 3, "number 5. needs a digit after the decimal point"},
		{`1e = 1`, 2, 1, 3, "number 1e needs a digit in its exponent"},
		{`1e400 = 1`, 0, 1, 1, "number 1e400 is out of range"},
		{`.5 = x`, 0, 1, 1, "unexpected character '.'"},
		{`event == 'a'`, 6, 1, 7, "'==' is not an operator; use '='"},
		{`a && b`, 2, 1, 3, "'&&' is not an operator; use 'and'"},
		{`a || b`, 2, 1, 3, "'||' is not an operator; use 'or'"},
		{`a <> b`, 3, 1, 4, "expected a value after '<', found '>'"},
		{`(event = 'a'`, 0, 1, 1, "unclosed '(': expected ')', found end of expression"},
		{`(event = 'a' 'b')`, 13, 1, 14, "expected 'and', 'or' or ')', found string 'b'"},
		{`event = 'a')`, 11, 1, 12, "expected 'and', 'or' or end of expression, found ')'"},
		{`properties.x(1)`, 12, 1, 13, "unexpected '(' after field properties.x: only functions take arguments"},
		{`\contains(x, 'y')`, 9, 1, 10, "unexpected '(' after field"},
		{`#`, 0, 1, 1, "unexpected character '#'"},
		{`a = -`, 4, 1, 5, "unexpected character '-'"},
		{`event = 'a' and`, 15, 1, 16, "expected a value after 'and', found end of expression"},
		{`event = 'a' or or`, 15, 1, 16, "expected a value after 'or', found 'or'"},
		{`!`, 1, 1, 2, "expected a value after '!', found end of expression"},
		{`in = 1`, 0, 1, 1, "expected an expression, found 'in'"},
		{`x = !y`, 4, 1, 5, "expected a value after '=', found '!'"},
		{`'héllo' = )`, 11, 1, 11, "expected a value after '=', found ')'"},
		{"event = 'a'\nand (\n  type = )", 27, 3, 10, "expected a value after '=', found ')'"},
		{strings.Repeat("(", 101) + "true" + strings.Repeat(")", 101), 100, 1, 101, "expression nested more than 100 levels deep"},
		{strings.Repeat("!", 101) + "true", 100, 1, 101, "expression nested more than 100 levels deep"},
		{`'` + strings.Repeat("x", 40) + `' 1`, 43, 1, 44, "found number 1"},
		{`x = 1 'this string is far too long to quote in full'`, 6, 1, 7, "found string 'this string is far too long to …"},
	}
}

func TestCompileErrors(t *testing.T) {
	for _, tc := range compileErrCases() {
		t.Run(clipName(tc.expr), func(t *testing.T) {
			e, err := fql.Compile(tc.expr)
			if err == nil {
				t.Fatalf("Compile(%q) = %v, want an error", tc.expr, e)
			}
			fe, ok := errors.AsType[*fql.Error](err)
			if !ok {
				t.Fatalf("Compile(%q) error %v is %T, want *fql.Error", tc.expr, err, err)
			}
			if fe.Pos != tc.pos || fe.Line != tc.line || fe.Col != tc.col {
				t.Errorf("Compile(%q) error at %d (%d:%d), want %d (%d:%d): %v", tc.expr, fe.Pos, fe.Line, fe.Col, tc.pos, tc.line, tc.col, err)
			}
			if !strings.Contains(fe.Msg, tc.msg) {
				t.Errorf("Compile(%q) error %q does not contain %q", tc.expr, fe.Msg, tc.msg)
			}
			if want := "fql: "; !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error %q lacks the %q prefix", err, want)
			}
			if m := fe.Msg; m != strings.TrimRight(m, ".!") || m == "" || strings.ToLower(m[:1]) != m[:1] {
				t.Errorf("message %q should be lowercase without trailing punctuation", m)
			}
		})
	}
}

func TestErrorFormat(t *testing.T) {
	_, err := fql.Compile(`(properties =)`)
	if got, want := err.Error(), "fql: 1:14: expected a value after '=', found ')'"; got != want {
		t.Errorf("error = %q, want %q", got, want)
	}
}

// TestEvalErrors checks operands of the wrong type: Eval reports where, and
// Match fails closed.
func TestEvalErrors(t *testing.T) {
	cases := []struct {
		expr  string
		event map[string]any
		pos   int
		msg   string
	}{
		{`'a' and true`, nil, 0, "'and' needs bool or null operands, found string"},
		{`true and 1`, nil, 9, "'and' needs bool or null operands, found number"},
		{`event or true`, map[string]any{"event": "x"}, 0, "'or' needs bool or null operands, found string"},
		{`false or false or []`, nil, 18, "'or' needs bool or null operands, found list"},
		{`!event`, map[string]any{"event": "x"}, 0, "'!' needs a bool or null operand, found string"},
		{`!properties`, map[string]any{"properties": map[string]any{}}, 0, "found object"},
		{`length(5) > 1`, nil, 0, "length(): want a list, a string or null, found number"},
		{`x = 1 and length(context) > 0`, map[string]any{"x": 1.0, "context": map[string]any{}}, 10, "length(): want a list, a string or null, found object"},
		{`number('abc') = 1`, nil, 0, `number(): cannot convert string "abc" to number`},
		{`number('') = 1`, nil, 0, `cannot convert string "" to number`},
		{`number('0x10') = 16`, nil, 0, `cannot convert string "0x10" to number`},
		{`number('NaN') = 1`, nil, 0, `cannot convert string "NaN" to number`},
		{`number('Infinity') = 1`, nil, 0, `cannot convert string "Infinity" to number`},
		{`number('1e400') = 1`, nil, 0, `cannot convert string "1e400" to number`},
		{`number(true) = 1`, nil, 0, "number(): cannot convert bool to number"},
		{`bool('yes')`, nil, 0, `bool(): cannot convert string "yes" to bool`},
		{`bool(context)`, map[string]any{"context": map[string]any{}}, 0, "bool(): cannot convert object to bool"},
		{`x = 1`, map[string]any{"x": struct{}{}}, 0, "field holds a value of Go type struct {}"},
		{`lowercase(event) = 'x' and (true and 'y')`, map[string]any{"event": "X"}, 37, "'and' needs bool or null operands, found string"},
	}
	for _, tc := range cases {
		t.Run(tc.expr, func(t *testing.T) {
			e, err := fql.Compile(tc.expr)
			if err != nil {
				t.Fatal(err)
			}
			v, err := e.Eval(tc.event)
			if err == nil {
				t.Fatalf("Eval(%q) = %s, want an error", tc.expr, v)
			}
			fe, ok := errors.AsType[*fql.Error](err)
			if !ok {
				t.Fatalf("Eval(%q) error %v is %T, want *fql.Error", tc.expr, err, err)
			}
			if fe.Pos != tc.pos || !strings.Contains(fe.Msg, tc.msg) {
				t.Errorf("Eval(%q) error %q at %d, want %q at %d", tc.expr, fe.Msg, fe.Pos, tc.msg, tc.pos)
			}
			if e.Match(tc.event) {
				t.Errorf("Match(%q) = true on an evaluation error", tc.expr)
			}
		})
	}
}

// TestMatchOnlyTrue checks that Match is true only for the boolean true.
func TestMatchOnlyTrue(t *testing.T) {
	ev := map[string]any{"t": true, "s": "true", "n": 1.0, "l": []any{true}}
	for expr, want := range map[string]bool{
		"t": true, "s": false, "n": false, "l": false, "missing": false,
		"1": false, "'true'": false, "true": true, "false": false, "null": false,
	} {
		e, err := fql.Compile(expr)
		if err != nil {
			t.Fatal(err)
		}
		if got := e.Match(ev); got != want {
			t.Errorf("Match(%q) = %v, want %v", expr, got, want)
		}
	}
}

func TestHandBuiltEvents(t *testing.T) {
	e, err := fql.Compile(`n = 3 and j = 2.5 and f > 1 and u = 7 and l = [1, 'x']`)
	if err != nil {
		t.Fatal(err)
	}
	ev := map[string]any{
		"n": 3, "j": json.Number("2.5"), "f": float32(1.5), "u": uint8(7),
		"l": []any{int64(1), "x"},
	}
	if v, err := e.Eval(ev); err != nil || !e.Match(ev) {
		t.Errorf("Eval = %v, %v; want true", v, err)
	}
}

func TestString(t *testing.T) {
	for _, src := range []string{`event = 'Button Clicked'`, "  type = 'track'\n", `!(a in [1, 2])`} {
		e, err := fql.Compile(src)
		if err != nil {
			t.Fatal(err)
		}
		if got := e.String(); got != src {
			t.Errorf("String() = %q, want %q", got, src)
		}
	}
}

func TestValueAccessors(t *testing.T) {
	e, err := fql.Compile(`[1, 'a', true, null, [2]]`)
	if err != nil {
		t.Fatal(err)
	}
	v, err := e.Eval(nil)
	if err != nil {
		t.Fatal(err)
	}
	list, ok := v.AsList()
	if !ok || v.Kind() != fql.KindList || len(list) != 5 {
		t.Fatalf("AsList() = %v, %v; kind %v", list, ok, v.Kind())
	}
	if got, want := v.String(), `[1,"a",true,null,[2]]`; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if _, ok := v.AsString(); ok {
		t.Error("AsString() ok on a list")
	}
	checks := []struct {
		v    fql.Value
		kind fql.Kind
		str  string
	}{
		{fql.Null(), fql.KindNull, "null"},
		{fql.Bool(true), fql.KindBool, "true"},
		{fql.Number(2.5), fql.KindNumber, "2.5"},
		{fql.String(`a"b`), fql.KindString, `"a\"b"`},
	}
	for _, c := range checks {
		if c.v.Kind() != c.kind || c.v.String() != c.str || c.v.Kind().String() != c.kind.String() {
			t.Errorf("%v: kind %v, String %q; want %v, %q", c.v.Interface(), c.v.Kind(), c.v.String(), c.kind, c.str)
		}
	}
	if !fql.Null().IsNull() || fql.Bool(false).IsNull() {
		t.Error("IsNull is wrong")
	}
	if n, ok := fql.Number(3).AsNumber(); !ok || n != 3 {
		t.Errorf("AsNumber() = %v, %v", n, ok)
	}
	if b, ok := fql.Bool(true).AsBool(); !ok || !b {
		t.Errorf("AsBool() = %v, %v", b, ok)
	}
	obj := map[string]any{"k": "v"}
	e, err = fql.Compile("o")
	if err != nil {
		t.Fatal(err)
	}
	ov, err := e.Eval(map[string]any{"o": obj})
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := ov.AsObject(); !ok || !reflect.DeepEqual(got, obj) || ov.String() != `{"k":"v"}` {
		t.Errorf("AsObject() = %v, %v; String %q", got, ok, ov.String())
	}
}

// TestEvalLeavesEventAlone checks that evaluation modifies nothing.
func TestEvalLeavesEventAlone(t *testing.T) {
	ev := decode(t, richEvent)
	before := decode(t, richEvent)
	for _, tc := range evalCases() {
		e, err := fql.Compile(tc.expr)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = e.Eval(ev)
	}
	if !reflect.DeepEqual(ev, before) {
		t.Error("Eval modified the event")
	}
}

// TestConcurrentEval runs one Expr from many goroutines; go test -race
// checks that evaluation shares no mutable state.
func TestConcurrentEval(t *testing.T) {
	e, err := fql.Compile(`type = 'track' and (contains(lowercase(event), 'order') or properties.total > 100) and snakecase(event) in ['order_completed']`)
	if err != nil {
		t.Fatal(err)
	}
	ev := decode(t, richEvent)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 200 {
				if !e.Match(ev) {
					t.Error("Match = false, want true")
					return
				}
			}
		})
	}
	wg.Wait()
}

// typicalFilter is the shape of most destination filters.
const typicalFilter = `type = 'track' and event = 'Order Completed' and properties.total > 100`

func TestTypicalFilterDoesNotAllocate(t *testing.T) {
	e, err := fql.Compile(typicalFilter)
	if err != nil {
		t.Fatal(err)
	}
	ev := decode(t, richEvent)
	if !e.Match(ev) {
		t.Fatal("typical filter does not match")
	}
	if n := testing.AllocsPerRun(100, func() { e.Match(ev) }); n != 0 {
		t.Errorf("Match allocates %v objects per run, want 0", n)
	}
	more, err := fql.Compile(`!(event in ['A', 'B', 'Order Completed']) or contains(context.library.name, 'go') and match(properties.email, '*@Example.com') and length(userId) > 0`)
	if err != nil {
		t.Fatal(err)
	}
	if !more.Match(ev) {
		t.Fatal("second filter does not match")
	}
	if n := testing.AllocsPerRun(100, func() { more.Match(ev) }); n != 0 {
		t.Errorf("Match allocates %v objects per run, want 0", n)
	}
}

func TestFields(t *testing.T) {
	tests := []struct{ expr, want string }{
		{`event = 'A'`, "event"},
		{`properties.total > 1 and (context.library.name = 'x' or !contains(userId, 'a'))`, "properties,context,userId"},
		{`length(traits.email) > 0 and traits.name in ['a', properties.b]`, "traits,properties"},
		{`'x' in properties.list`, "properties"},
		{`true`, ""},
		{`properties\ x.y = 1`, "properties x"},
	}
	for _, tt := range tests {
		e, err := fql.Compile(tt.expr)
		if err != nil {
			t.Fatalf("Compile(%q): %v", tt.expr, err)
		}
		if got := strings.Join(e.Fields(), ","); got != tt.want {
			t.Errorf("Fields(%q) = %q, want %q", tt.expr, got, tt.want)
		}
	}
}
