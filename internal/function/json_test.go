package function

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dop251/goja"
)

// run evaluates a script that returns a string (or throws) on rt, and
// returns the string or "throws <name>".
func run(t *testing.T, rt *goja.Runtime, script string) string {
	t.Helper()
	v, err := rt.RunString(`(function () { try { const r = (function () { ` + script + ` })(); return r === undefined ? "undefined" : String(r) } catch (e) { return "throws " + e.name } })()`)
	if err != nil {
		t.Fatalf("%s: %v", script, err)
	}
	return v.String()
}

// TestJSONStringifyLikeGoja compares the runtime's JSON.stringify (json.go)
// with goja's own on the cases of its specification.
func TestJSONStringifyLikeGoja(t *testing.T) {
	for _, expr := range []string{
		`null`, `true`, `false`, `0`, `-0`, `1`, `-1`, `1.5`, `0.1`, `1e21`, `1e-7`, `123456789012345680000`, `2**53`, `-1e-300`,
		`NaN`, `Infinity`, `-Infinity`, `"x"`, `""`, `"a\"b\\c\nd\te\r\f\b\u0001\u001f\u007f"`, `"é ü 日本 😀"`,
		`"\u2028\u2029"`, `"\ud800"`, `"a\udc00b"`, `"\ud83d\ude00"`, `"\ufffd"`, `"\ud800\ufffd"`,
		`undefined`, `function () {}`, `Symbol("s")`, `[]`, `{}`, `[undefined, function () {}, Symbol("s"), null]`,
		`{a: undefined, b: function () {}, c: Symbol("s"), d: null, e: 1}`, `[1, , 3]`, `new Array(3)`,
		`{b: 1, a: 2, 10: "x", 2: "y", "-1": "z", "01": "w"}`, `{"__proto__": 1}`, `JSON.parse('{"__proto__": {"x": 1}}')`,
		`{a: {b: {c: [1, {d: [2, [3]]}]}}}`, `new Date(0)`, `{d: new Date(1e12)}`, `new Number(3)`, `new String("s")`,
		`new Boolean(false)`, `[new Number(1), new String("x"), new Boolean(true)]`, `Object(1n)`, `1n`, `{n: 1n}`,
		`{toJSON() { return "custom" }}`, `{a: {toJSON(k) { return "key:" + k }}}`, `[{toJSON(k) { return typeof k + k }}]`,
		`{toJSON() { return undefined }}`, `new Map([[1, 2]])`, `new Set([1])`, `new Error("e")`, `/re/g`,
		`new Uint8Array([1, 2])`, `Object.create({inherited: 1}, {own: {value: 2, enumerable: true}, hidden: {value: 3}})`,
		`{get g() { return 7 }}`, `new (class P { constructor() { this.x = 1 } m() {} })()`,
		`new Proxy([1, 2], {})`, `new Proxy({a: 1}, {})`, `Object.assign(Object.create(null), {a: 1})`,
		`(() => { const a = [1]; a.extra = 2; return a })()`, `(function () { return arguments })(1, 2)`,
		`JSON.rawJSON ? JSON.rawJSON("123") : 123`, `{s: new String("x"), n: new Number(NaN)}`,
	} {
		for _, args := range []string{"", ", null, 2", ", null, '\\t'", ", null, 'abcdefghijklmnop'", ", null, 20",
			", null, new Number(3)", ", null, new String('--')", ", (k, v) => typeof v === 'number' ? v + 1 : v",
			", ['a', 'b', 1, 'd', new String('e'), 'a']", ", (k, v) => k === '' ? {wrapped: v} : v",
			", function (k, v) { return Array.isArray(this) ? 'in-array' : v }"} {
			script := "return JSON.stringify(" + expr + args + ")"
			want := run(t, goja.New(), script)
			v := newVM(nil)
			if got := run(t, v.rt, script); got != want {
				t.Errorf("%s\n got  %s\n want %s", script, got, want)
			}
		}
	}
}

func TestJSONStringifyErrors(t *testing.T) {
	v := newVM(nil)
	for _, tc := range []struct{ script, want string }{
		{`const o = {}; o.o = o; return JSON.stringify(o)`, "throws TypeError"},
		{`const a = []; a.push({a}); return JSON.stringify(a)`, "throws TypeError"},
		{`let o = {}; for (let i = 0; i < 100; i++) o = {o}; const top = o; let x = top; while (x.o) x = x.o; x.o = top; return JSON.stringify(top)`, "throws TypeError"},
		{`const shared = {x: 1}; return JSON.stringify({a: shared, b: shared, c: [shared, shared]})`, `{"a":{"x":1},"b":{"x":1},"c":[{"x":1},{"x":1}]}`},
		{`let o = {}; for (let i = 0; i < 20000; i++) o = {o}; return JSON.stringify(o)`, "throws RangeError"},
		{`let o = {}; for (let i = 0; i < 9000; i++) o = {o}; return JSON.stringify(o).length`, "54002"},
		{`return JSON.stringify({get a() { throw new TypeError("getter") }})`, "throws TypeError"},
		{`return JSON.stringify({toJSON() { throw new RangeError("toJSON") }})`, "throws RangeError"},
		{`return JSON.stringify(1, () => { throw new SyntaxError("replacer") })`, "throws SyntaxError"},
		{`const s = "x".repeat(1 << 20); return JSON.stringify(new Array(70).fill(s))`, "throws RangeError"},
	} {
		if got := run(t, v.rt, tc.script); got != tc.want {
			t.Errorf("%s\n got  %s\n want %s", tc.script, got, tc.want)
		}
	}
}

// TestJSONParseLikeGoja compares JSON.parse of valid and invalid texts with
// goja's own: the same values (compared through JSON.stringify, and the
// details it hides), or a SyntaxError for both. Where goja differs from
// V8 (Node), the runtime does as V8 does.
func TestJSONParseLikeGoja(t *testing.T) {
	likeV8 := map[string]string{
		`1e400`:          `[null] `, // Infinity; goja: a SyntaxError
		`-1e400`:         `[null] `,
		`"\ud800"`:       `["\ud800"] 55296`, // a lone surrogate; goja: U+FFFD
		`"\udc00\ud800"`: `["\udc00\ud800"] 56320,55296`,
		`"a\ud800b"`:     `["a\ud800b"] 97,55296,98`,
	}
	for _, text := range []string{
		`0`, `-0`, `1`, `-1`, `1.5`, `1e3`, `1E+3`, `1e-3`, `-0.0`, `1e400`, `-1e400`, `1e-400`, `123456789012345678901234567890`,
		`9007199254740993`, `999999999999999`, `1000000000000000`, `0.1`, `true`, `false`, `null`, `""`, `"abc"`,
		`"\"\\\/\b\f\n\r\t"`, `"\u0041\u00e9\u65e5"`, `"\ud83d\ude00"`, `"\ud800"`, `"\udc00\ud800"`, `"a\ud800b"`,
		`"é日😀"`, `[]`, `{}`, ` [ 1 , 2 ] `, "\t\n\r {\"a\" : [ {} , [ ] ] } ", `{"a":1,"a":2}`, `{"b":1,"a":2,"1":3}`,
		`{"__proto__":{"x":1}}`, `{"a\"b":1,"\u00e9":2,"c\nd":3,"\ud83d\ude00":4}`, `{"\u0000":0}`, `{"\q":1}`, `{"a`, `{"a\`, `{"\u12":1}`, `[[[[[[[[[[1]]]]]]]]]]`, `{"a":{"b":{"c":"d"}}}`, `[1,"2",true,null,{"x":[]}]`, `"\u2028"`,
		// invalid
		``, ` `, `{`, `}`, `[`, `[1,]`, `[,1]`, `{"a":1,}`, `{,}`, `{"a"}`, `{"a":}`, `{a:1}`, `{'a':1}`, `01`, `-01`, `1.`, `.5`,
		`+1`, `-`, `1e`, `1e+`, `--1`, `0x10`, `NaN`, `Infinity`, `undefined`, `nul`, `tru`, `"abc`, `"\x"`, `"\u12"`, `"\u12g4"`,
		"\"a\tb\"", "\"a\nb\"", `"\`, `[1] x`, `1 2`, `{"a":1}}`, `'a'`, `[1 2]`, `{"a" 1}`, "\u00a01", `/**/1`,
	} {
		script := `const v = JSON.parse(` + jsString(text) + `); return JSON.stringify([v]) + " " + (Object.is(v, -0) ? "-0" : "") +
			(v && typeof v === "object" && !Array.isArray(v) ? Object.getOwnPropertyNames(v).join(",") + " " + (Object.getPrototypeOf(v) === Object.prototype) : "") +
			(typeof v === "string" ? Array.from({length: v.length}, (_, i) => v.charCodeAt(i)).join(",") : "") +
			(v && v.__proto__ && v.__proto__.x ? " proto.x" : "") + (v && Object.prototype.hasOwnProperty.call(v, "__proto__") ? " own __proto__" : "")`
		want, ok := likeV8[text]
		if !ok {
			want = run(t, goja.New(), script)
		}
		v := newVM(nil)
		if got := run(t, v.rt, script); got != want {
			t.Errorf("JSON.parse(%q)\n got  %s\n want %s", text, got, want)
		}
	}
}

// jsString quotes s as a JavaScript string literal of ASCII characters.
func jsString(s string) string {
	const hex = "0123456789abcdef"
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r > 0x7e:
			for _, u := range []rune(string(r)) {
				if u > 0xffff {
					hi, lo := 0xd800+((u-0x10000)>>10), 0xdc00+((u-0x10000)&0x3ff)
					for _, c := range []rune{hi, lo} {
						b.WriteString(`\u`)
						for _, sh := range []uint{12, 8, 4, 0} {
							b.WriteByte(hex[(c>>sh)&15])
						}
					}
					continue
				}
				b.WriteString(`\u`)
				for _, sh := range []uint{12, 8, 4, 0} {
					b.WriteByte(hex[(u>>sh)&15])
				}
			}
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func TestJSONParseDepthAndReviver(t *testing.T) {
	v := newVM(nil)
	for _, tc := range []struct{ script, want string }{
		{`return JSON.parse("[".repeat(10000) + "]".repeat(10000)).length`, "1"},
		{`return JSON.parse("[".repeat(10001) + "]".repeat(10001))`, "throws SyntaxError"},
		{`return JSON.parse('{"a":[1,2],"b":"x"}', (k, v) => typeof v === "number" ? v * 10 : v).a.join()`, "10,20"},
		{`return JSON.parse(' {"a":1} ', undefined).a`, "1"},
		{`return JSON.parse({toString() { return "[7]" }})[0]`, "7"},
		{`return JSON.parse.name + JSON.parse.length + JSON.stringify.name + JSON.stringify.length`, "parse2stringify3"},
	} {
		if got := run(t, v.rt, tc.script); got != tc.want {
			t.Errorf("%s\n got  %s\n want %s", tc.script, got, tc.want)
		}
	}
}

// TestJSONStringifyStopsAtDeadline: goja's JSON.stringify took 35 s on an
// object nested 100,000 deep, past any time limit; the runtime's ends
// with the call's time.
func TestJSONStringifyStopsAtDeadline(t *testing.T) {
	r := newRunner(t)
	p := compile(t, KindInsert, `async function onTrack(event) {
  let o = {}
  for (let i = 0; i < 9000; i++) o = {o}
  for (;;) JSON.stringify(o)
}`, withTimeout(200*time.Millisecond))
	start := time.Now()
	res := r.Insert(context.Background(), p, track("E", nil))
	wantOutcome(t, res.Outcome, Retry, ClassTimeout)
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the call took %s, its limit is 200ms", d)
	}
}

// FuzzJSONParse: the runtime's JSON.parse accepts exactly the texts Go's
// encoding/json accepts (nested less than maxJSONDepth), and what
// JSON.stringify writes of the value reads back as the same value.
func FuzzJSONParse(f *testing.F) {
	for _, s := range []string{`{"a":[1,2,{"b":null}],"c":"d\u00e9\n"}`, `[]`, `"\ud800"`, `1e400`, `-0`, `{"__proto__":1}`, `[1,]`, `{"a":1}x`, trackEvent} {
		f.Add(s)
	}
	v := newVM(nil)
	f.Fuzz(func(t *testing.T, s string) {
		if strings.Count(s, "[")+strings.Count(s, "{") > maxJSONDepth {
			t.Skip()
		}
		val, err := v.parse(goja.Undefined(), v.rt.ToValue(s))
		if valid := json.Valid([]byte(s)); valid != (err == nil) {
			t.Fatalf("%q: encoding/json says valid %v, JSON.parse: %v", s, valid, err)
		}
		if err != nil {
			return
		}
		out, err := v.strfy(goja.Undefined(), val)
		if err != nil {
			t.Fatalf("%q: stringify: %v", s, err)
		}
		var a, b any
		if err := json.Unmarshal([]byte(s), &a); err != nil {
			t.Skip() // a number out of float64's range: Go refuses, JSON.parse makes it Infinity
		}
		if err := json.Unmarshal([]byte(out.String()), &b); err != nil {
			t.Fatalf("%q: stringify wrote %q: %v", s, out.String(), err)
		}
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("%q: read back as %q", s, out.String())
		}
	})
}
