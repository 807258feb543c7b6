package function

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/dop251/goja"
)

// canonical rewrites JSON b with its keys in order and its strings and
// numbers written alike, so that two texts of the same JSON compare
// equal ("" for no JSON).
func canonical(t *testing.T, b []byte) string {
	t.Helper()
	if b == nil {
		return ""
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var out bytes.Buffer
	var write func() error
	write = func() error {
		tok, err := d.Token()
		if err != nil {
			return err
		}
		switch v := tok.(type) {
		case json.Delim:
			out.WriteString(v.String())
			first := true
			for d.More() {
				if !first {
					out.WriteByte(',')
				}
				first = false
				if v == '{' {
					k, err := d.Token()
					if err != nil {
						return err
					}
					kb, _ := json.Marshal(k)
					out.Write(kb)
					out.WriteByte(':')
				}
				if err := write(); err != nil {
					return err
				}
			}
			end, err := d.Token()
			if err != nil {
				return err
			}
			out.WriteString(end.(json.Delim).String())
		default:
			vb, _ := json.Marshal(v)
			out.Write(vb)
		}
		return nil
	}
	if err := write(); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		t.Fatalf("%s: text after the JSON", b)
	}
	return out.String()
}

// lazyEvent is a track event as the log stores it (compact, as
// JSON.stringify writes it), with nested objects, an array of objects,
// escapes, a duplicate key and an integer-like key.
const lazyEvent = `{"type":"track","event":"Order Completed","messageId":"m1","userId":"u1",` +
	`"properties":{"total":27.5,"currency":"USD","products":[{"sku":"45790-32","price":19.99,"quantity":1},{"sku":"x","price":2}],` +
	`"nested":{"deep":{"value":"v","n":[1,2,3]}},"esc":"a\"b\\c\u00e9\ud83d\ude00\n","empty":{},"none":null,"yes":true},` +
	`"context":{"ip":"203.0.113.9","library":{"name":"analytics.js","version":"2.11.1"}},` +
	`"dup":1,"dup":2,"7":"seven","timestamp":"2026-03-14T09:26:53.589Z"}`

// TestLazyEvent runs insert functions on the lazy event and on the same
// event parsed whole (JSON.parse of it, the eager path), and wants the
// same outcome and the same JSON back.
func TestLazyEvent(t *testing.T) {
	r := newRunner(t)
	for _, tc := range []struct{ name, body string }{
		{"unchanged", ``},
		{"a property set", `event.properties.x = 1`},
		{"a nested property set", `event.properties.nested.deep.value = "changed"`},
		{"a property deleted", `delete event.context.ip`},
		{"a missing property deleted", `delete event.context.nothing; delete event.nothing`},
		{"an array pushed to", `event.properties.products.push({sku: "new"})`},
		{"an array element changed", `event.properties.products[0].price = 1`},
		{"an array read only", `event.count = event.properties.products.length`},
		{"an object moved", `const p = event.properties; delete event.properties; p.y = 2; event.moved = p`},
		{"an object shared", `event.copy = event.context; event.context.library.name = "x"`},
		{"spread into a new object", `return {...event, extra: true, properties: {...event.properties, z: 1}}`},
		{"Object.assign", `Object.assign(event.context, {a: 1}, event.properties.nested)`},
		{"an object replaced", `event.context = {fresh: 1}`},
		{"a round trip through JSON", `event.roundTrip = JSON.parse(JSON.stringify(event.properties))`},
		{"stringified with a gap", `event.pretty = JSON.stringify(event.context, null, 2)`},
		{"stringified with a key list", `event.picked = JSON.stringify(event.properties, ["total", "currency"])`},
		{"stringified with a replacer", `event.replaced = JSON.stringify(event.context, (k, v) => typeof v === "string" ? v.toUpperCase() : v)`},
		{"keys enumerated", `for (const k in event.properties) { if (typeof event.properties[k] === "number") event.properties[k + "_x"] = event.properties[k] * 2 }`},
		{"keys listed", `event.keys = Object.keys(event); event.entries = Object.entries(event.context).length`},
		{"checks", `event.checks = [("userId" in event), event.hasOwnProperty("userId"), event.hasOwnProperty("nope"), Array.isArray(event.properties.products), typeof event.properties, event.properties === event.properties, Array.isArray(event), event instanceof Object]`},
		{"undefined leaves the key out", `event.userId = undefined; event.properties.none = undefined`},
		{"a number changed", `event.properties.total += 1`},
		{"a string read", `event.upper = event.properties.esc.toUpperCase() + event.event`},
		{"a key set again after delete", `delete event.type; event.type = "track"`},
		{"defineProperty", `Object.defineProperty(event, "defined", {value: 1, enumerable: true, writable: true, configurable: true})`},
		{"an integer-like key", `event[0] = "zero"; event.seven = event[7]`},
		{"the duplicate key", `event.dupSeen = event.dup`},
		{"a function and a symbol left out", `event.fn = () => 1; event.properties.sym = Symbol("s")`},
		{"the empty object changed", `event.properties.empty.now = 1`},
		{"a new object returned", `return {type: event.type, userId: event.userId, messageId: "m2"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lazy := compile(t, KindInsert, `async function onTrack(event, settings) { `+tc.body+`; return event }`)
			eager := compile(t, KindInsert, `async function onTrack(e, settings) { let event = JSON.parse(JSON.stringify(e)); `+tc.body+`; return event }`,
				withID(t.Name()+"-eager"))
			ev := EventIn{Type: "track", JSON: []byte(lazyEvent)}
			got, want := r.Insert(context.Background(), lazy, ev), r.Insert(context.Background(), eager, ev)
			if got.Status != want.Status || got.Class != want.Class || got.Message != want.Message {
				t.Fatalf("lazy: %v %s %q; eager: %v %s %q", got.Status, got.Class, got.Message, want.Status, want.Class, want.Message)
			}
			// The same JSON, keys in the same order; a string written back
			// unread keeps its escapes, so strings are compared decoded.
			if g, w := canonical(t, got.JSON), canonical(t, want.JSON); g != w {
				t.Errorf("lazy:  %s\neager: %s", g, w)
			}
			if got.JSON != nil && !json.Valid(got.JSON) {
				t.Errorf("not JSON: %s", got.JSON)
			}
		})
	}
}

// TestLazyEventText: an event with whitespace, or not an object, or not
// JSON, is handled as before: unchanged parts stay valid JSON equal to
// what came in, and invalid JSON is refused.
func TestLazyEventText(t *testing.T) {
	r := newRunner(t)
	p := compile(t, KindInsert, `async function onTrack(event) { event.properties.x = 1; return event }`)
	in := ` { "type" : "track", "properties" : { "a" : [ 1 , 2 ] , "b" : 1.50 }, "context": { "k" : "v" } } `
	res := r.Insert(context.Background(), p, EventIn{Type: "track", JSON: []byte(in)})
	if res.Status != OK {
		t.Fatalf("outcome %v %s", res.Status, res.Message)
	}
	var got, want map[string]any
	if err := json.Unmarshal(res.JSON, &got); err != nil {
		t.Fatalf("%s: %v", res.JSON, err)
	}
	_ = json.Unmarshal([]byte(`{"type":"track","properties":{"a":[1,2],"b":1.5,"x":1},"context":{"k":"v"}}`), &want)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %s", res.JSON)
	}
	for _, bad := range []string{`{"type":"track","a":tru}`, `{"type":"track",}`, `{"type":"track"} x`, `{"type":"track","a":"\x01"}`} {
		if res := r.Insert(context.Background(), p, EventIn{Type: "track", JSON: []byte(bad)}); res.Status == OK {
			t.Errorf("%s: accepted as %s", bad, res.JSON)
		}
	}
}

// FuzzLazyEvent: any JSON object read lazily, changed by a script (a key
// set on it and on its first object), is written back as the same JSON
// as the object parsed whole and changed alike; and read lazily but not
// changed, as the JSON it was.
func FuzzLazyEvent(f *testing.F) {
	for _, s := range []string{lazyEvent, `{}`, `{"a":{"b":{}}}`, `{"a":[{"b":1}],"a":{"c":2}}`, `{"1":1,"0":{"x":1},"b":2}`,
		`{ "a" : { "b" : 1.50 } , "c" : "\ud800" }`, `{"a":1e400}`, `{"__proto__":{"x":1}}`, `{"a":tru}`, `[1]`} {
		f.Add(s)
	}
	v := newVM(nil)
	change, err := v.rt.RunString(`(function (e) {
		e.z = 1
		for (const k of Object.keys(e)) {
			const o = e[k]
			if (o && typeof o === "object" && !Array.isArray(o)) { o.y = 2; break }
		}
		return e
	})`)
	if err != nil {
		f.Fatal(err)
	}
	fn, _ := goja.AssertFunction(change)
	f.Fuzz(func(t *testing.T, s string) {
		if strings.Count(s, "[")+strings.Count(s, "{") > maxJSONDepth {
			t.Skip()
		}
		var want any
		if json.Unmarshal([]byte(s), &want) != nil {
			if _, err := v.lazyValue(s); err == nil && json.Valid([]byte(s)) == false {
				t.Fatalf("%q: not JSON, read without an error", s)
			}
			return
		}
		if _, isObject := want.(map[string]any); !isObject {
			return
		}
		read := func(lazily bool) any {
			var val goja.Value
			var err error
			if lazily {
				val, err = v.lazyValue(s)
			} else {
				val, err = parseJSON(v.rt, v.objectProto, s)
			}
			if err != nil {
				t.Fatalf("%q: %v", s, err)
			}
			return val
		}
		back := func(val goja.Value) any {
			out, err := v.strfy(goja.Undefined(), val)
			if err != nil {
				t.Fatalf("%q: stringify: %v", s, err)
			}
			var got any
			if err := json.Unmarshal([]byte(out.String()), &got); err != nil {
				t.Fatalf("%q: wrote %q: %v", s, out.String(), err)
			}
			return got
		}
		if got := back(read(true).(goja.Value)); !reflect.DeepEqual(got, want) {
			t.Fatalf("%q unchanged: read back as %v", s, got)
		}
		lazy, err := fn(goja.Undefined(), read(true).(goja.Value))
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		eager, err := fn(goja.Undefined(), read(false).(goja.Value))
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		if a, b := back(lazy), back(eager); !reflect.DeepEqual(a, b) {
			t.Fatalf("%q changed: lazily %v, whole %v", s, a, b)
		}
	})
}
