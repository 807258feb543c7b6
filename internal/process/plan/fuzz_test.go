package plan

import (
	"encoding/json"
	"testing"
	"time"
)

// FuzzCompile compiles arbitrary schema bytes as every kind of rule and, when
// they compile, checks events with them under the strictest and the
// omitting enforcement. Nothing may panic.
func FuzzCompile(f *testing.F) {
	p := shopPlan()
	for _, s := range p.Events {
		f.Add([]byte(s))
	}
	for _, s := range []string{
		string(p.Identify), string(p.Group), string(p.Common),
		`true`, `false`, `{}`, `[]`, `null`, `1`, `"x"`, ``,
		`{"$ref":"#"}`, `{"$ref":"#/definitions/a","definitions":{"a":{"$ref":"#/definitions/a"}}}`,
		`{"$schema":"https://json-schema.org/draft/2020-12/schema","$dynamicRef":"#x"}`,
		`{"properties":{"properties":{"properties":{"a":{"pattern":"("}}}}}`,
		`{"properties":{"properties":{"additionalProperties":false}},"anyOf":[{"required":["x"]},{"not":{}}]}`,
	} {
		f.Add([]byte(s))
	}
	events := []string{
		ev("track", `"event":"E","properties":{"a":1,"b":"x","c":[1,{"d":null}]}`),
		ev("track", `"event":"E"`),
		ev("identify", `"userId":"u","traits":{"a":true}`),
		ev("group", `"groupId":"g","traits":"not an object"`),
		ev("page", `"properties":{"a":1.5e300}`),
		ev("alias", `"previousId":"p"`),
	}
	strict := Enforcement{TrackUnplannedEvents: Block, TrackUnplannedProperties: Omit, TrackViolations: Block,
		IdentifyUnplannedTraits: Omit, IdentifyViolations: Block, GroupUnplannedTraits: Omit, GroupViolations: Block, CommonViolations: Block}
	omit := Enforcement{TrackUnplannedProperties: Omit, TrackViolations: OmitProperties,
		IdentifyUnplannedTraits: Omit, IdentifyViolations: OmitTraits, GroupUnplannedTraits: Omit, GroupViolations: OmitTraits, CommonViolations: Omit}
	f.Fuzz(func(t *testing.T, schema []byte) {
		s := json.RawMessage(schema)
		c, err := Compile(Plan{ID: "tp", Events: map[string]json.RawMessage{"E": s}, Identify: s, Group: s, Common: s})
		if err != nil {
			if c != nil {
				t.Fatal("Compile returned a plan and an error")
			}
			return
		}
		for _, in := range events {
			for _, enf := range []Enforcement{strict, omit} {
				doc := decode(t, in)
				res := c.Check(doc, enf)
				for _, v := range res.Violations {
					c.ViolationEvent(doc, v, SourceInfo{ID: "s"}, time.Unix(0, 0))
				}
				if _, err := json.Marshal(doc); err != nil {
					t.Fatalf("checked event does not encode: %v", err)
				}
			}
		}
	})
}
