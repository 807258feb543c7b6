package plan

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/confluxcdp/conflux/internal/event"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

// quickSchemas are schemas with a quick form, covering every keyword it
// handles.
var quickSchemas = []string{
	`{"type":"object","properties":{"properties":{"type":"object","properties":{
		"s":{"type":"string","minLength":2,"maxLength":5},"n":{"type":"number","minimum":0,"exclusiveMaximum":100},
		"i":{"type":"integer","maximum":10,"exclusiveMinimum":-3},"b":{"type":"boolean"},"e":{"enum":["a","b"]},
		"l":{"type":"array","items":{"type":["string","null"]},"minItems":1,"maxItems":3},
		"o":{"type":"object","properties":{"x":{"type":"number"}},"required":["x"],"additionalProperties":false}},
		"required":["s","n"]}}}`,
	`{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object","required":["userId"],"properties":{"userId":{"type":"string","minLength":1}}}`,
	`{"type":"object","properties":{"properties":{"type":"object","properties":{
		"s":{"type":"string","format":"date-time"},"e":{"pattern":"^[a-c]+$"},"n":{"format":"date-time"}}}}}`,
	`{"properties":{"properties":{"additionalProperties":false,"properties":{"a":{},"b":{"type":"null"}}}}}`,
	`{}`,
}

// values are what the generator puts where a property goes.
var values = []string{
	`"2026-12-01T10:00:00Z"`, `"2026-12-01t10:00:00.123+01:00"`, `"2026-02-30T10:00:00Z"`, `"2026-12-01T24:00:00Z"`,
	`"2026-12-01T23:59:60Z"`, `"2026-12-01T10:00:00,5Z"`, `"2026-12-01 10:00:00Z"`, `"2026-12-01T10:00:00"`, `"abc"`, `"abd"`, `"cab"`,
	`"a"`, `"b"`, `"abc"`, `"toolongvalue"`, `""`, `"é"`, `"日本語"`, `0`, `-1`, `-3`, `-2`, `10`, `11`, `99.99`, `100`, `1.0`, `1e2`, `-0`,
	`12345678901234567890`, `0.30000000000000004`, `true`, `false`, `null`, `[]`, `["x"]`, `["x",null,"y"]`, `["x","y","z","w"]`, `[1]`,
	`{}`, `{"x":1}`, `{"x":"1"}`, `{"x":1,"y":2}`,
}

// good are values that meet schema 0's (and 2's) rule for a key, so that
// generated events are often valid and the check has something to vouch for.
var good = map[string]string{"s": `"abc"`, "n": `5`, "i": `3`, "b": `true`, "e": `"a"`, "l": `["x"]`, "o": `{"x":1}`, "a": `7`, "other": `1`}

// goodFor overrides good for the schemas whose rules differ.
var goodFor = map[int]map[string]string{
	2: {"s": `"2026-12-01T10:00:00Z"`, "e": `"abc"`, "n": `"2026-12-01T10:00:00.5-07:00"`},
}

func TestQuickAgreesWithValidator(t *testing.T) {
	keys := []string{"s", "n", "i", "b", "e", "l", "o", "a", "other"}
	r := rand.New(rand.NewPCG(1, 2))
	for si, src := range quickSchemas {
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader([]byte(src)))
		if err != nil {
			t.Fatal(err)
		}
		q := compileQuick(doc)
		if q == nil {
			t.Fatalf("schema %d has no quick form", si)
		}
		rl, err := compileRule(json.RawMessage(src), "properties")
		if err != nil {
			t.Fatal(err)
		}
		agreedValid := 0
		for range 20000 {
			props := map[string]string{}
			for _, k := range keys {
				switch r.IntN(8) {
				case 0:
					props[k] = values[r.IntN(len(values))]
				case 1, 2:
				default:
					props[k] = good[k]
					if g, ok := goodFor[si][k]; ok {
						props[k] = g
					}
				}
			}
			if r.IntN(2) == 0 {
				delete(props, "other")
				if si == 3 {
					for _, k := range keys {
						if k != "a" && r.IntN(4) > 0 {
							delete(props, k)
						}
					}
				}
			}
			var b bytes.Buffer
			b.WriteString(`{"type":"track","event":"E","messageId":"m","context":{}`)
			if r.IntN(10) > 0 {
				b.WriteString(`,"userId":` + values[r.IntN(len(values))])
			}
			b.WriteString(`,"properties":{`)
			first := true
			for k, v := range props {
				if !first {
					b.WriteByte(',')
				}
				first = false
				fmt.Fprintf(&b, "%q:%s", k, v)
			}
			b.WriteString(`}}`)
			ev, err := event.Decode(b.Bytes())
			if err != nil {
				t.Fatalf("generated %s: %v", b.Bytes(), err)
			}
			if !q.valid(map[string]any(ev)) {
				continue
			}
			if err := rl.schema.Validate(map[string]any(ev)); err != nil {
				t.Fatalf("schema %d: quick says %s is valid, the validator says %v", si, b.Bytes(), err)
			}
			agreedValid++
		}
		if agreedValid < 50 {
			t.Errorf("schema %d: quick vouched for only %d of 20000 events: the test proves little", si, agreedValid)
		}
	}
}

func TestQuickFormOnlyForKnownKeywords(t *testing.T) {
	for _, src := range []string{
		`{"type":"string","pattern":"("}`,
		`{"$ref":"#/definitions/x","definitions":{"x":{}}}`,
		`{"allOf":[{"type":"string"}]}`,
		`{"enum":[1,2]}`,
		`{"type":"number","exclusiveMinimum":true,"minimum":0}`,
		`{"minimum":1234567890123456789}`,
		`{"items":[{"type":"string"}]}`,
		`{"additionalProperties":{"type":"string"}}`,
		`{"properties":{"a":true}}`,
		`{"type":"date"}`,
	} {
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader([]byte(src)))
		if err != nil {
			t.Fatal(err)
		}
		if compileQuick(doc) != nil {
			t.Errorf("%s has a quick form; it must be left to the validator", src)
		}
	}
}

func TestReads(t *testing.T) {
	quickPlan := Plan{ID: "p", Events: map[string]json.RawMessage{"A": PropertiesSchema(json.RawMessage(`{"properties":{"x":{"type":"string"}}}`))},
		Common: json.RawMessage(`{"type":"object","required":["userId"]}`)}
	c, err := Compile(quickPlan)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(c.Reads()); got != "[type event properties traits userId]" {
		t.Errorf("Reads() = %s", got)
	}
	quickPlan.Common = json.RawMessage(`{"type":"object","properties":{"context":{"allOf":[{"type":"object"}]}}}`)
	if c, err = Compile(quickPlan); err != nil {
		t.Fatal(err)
	}
	if c.Reads() != nil {
		t.Errorf("Reads() = %v for a rule without a quick form, want nil (everything)", c.Reads())
	}
}
