package plan

import (
	"strings"
	"testing"
)

func TestEnforcementValidate(t *testing.T) {
	tests := []struct {
		name    string
		enf     Enforcement
		wantErr []string // each must appear; none: valid
	}{
		{name: "zero value allows everything"},
		{name: "every control allowed explicitly", enf: Enforcement{
			TrackUnplannedEvents: Allow, TrackUnplannedProperties: Allow, TrackViolations: Allow,
			IdentifyUnplannedTraits: Allow, IdentifyViolations: Allow,
			GroupUnplannedTraits: Allow, GroupViolations: Allow, CommonViolations: Allow,
		}},
		{name: "strictest", enf: Enforcement{
			TrackUnplannedEvents: Block, TrackUnplannedProperties: Omit, TrackViolations: Block,
			IdentifyUnplannedTraits: Omit, IdentifyViolations: Block,
			GroupUnplannedTraits: Omit, GroupViolations: Block, CommonViolations: Block,
		}},
		{name: "omitting", enf: Enforcement{
			TrackViolations: OmitProperties, IdentifyViolations: OmitTraits, GroupViolations: OmitTraits, CommonViolations: Omit,
		}},
		{name: "unplanned events cannot be omitted", enf: Enforcement{TrackUnplannedEvents: Omit},
			wantErr: []string{`track_unplanned_events: "omit" is not one of allow, block`}},
		{name: "unplanned properties cannot be blocked", enf: Enforcement{TrackUnplannedProperties: Block},
			wantErr: []string{`track_unplanned_properties: "block" is not one of allow, omit`}},
		{name: "track violations omit properties, not traits", enf: Enforcement{TrackViolations: OmitTraits},
			wantErr: []string{`track_violations: "omit_traits" is not one of allow, omit_properties, block`}},
		{name: "identify traits", enf: Enforcement{IdentifyUnplannedTraits: "drop"},
			wantErr: []string{`identify_unplanned_traits: "drop"`}},
		{name: "identify violations", enf: Enforcement{IdentifyViolations: Omit},
			wantErr: []string{`identify_violations: "omit" is not one of allow, omit_traits, block`}},
		{name: "group traits", enf: Enforcement{GroupUnplannedTraits: Block},
			wantErr: []string{`group_unplanned_traits: "block"`}},
		{name: "group violations", enf: Enforcement{GroupViolations: OmitProperties},
			wantErr: []string{`group_violations: "omit_properties"`}},
		{name: "common violations", enf: Enforcement{CommonViolations: "Block"},
			wantErr: []string{`common_violations: "Block" is not one of allow, omit, block`}},
		{name: "every problem reported", enf: Enforcement{TrackUnplannedEvents: "x", CommonViolations: "y"},
			wantErr: []string{`track_unplanned_events: "x"`, `common_violations: "y"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.enf.Validate()
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate succeeded")
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
		})
	}
}

// TestCheckLenientActions checks what Check does with actions Validate
// rejects: the omit actions are interchangeable, the rest allow.
func TestCheckLenientActions(t *testing.T) {
	c := mustCompile(t, shopPlan())
	doc := decode(t, ev("track", `"event":"Order Completed","properties":{"order_id":1}`))
	res := c.Check(doc, Enforcement{TrackViolations: OmitTraits})
	if res.Verdict != VerdictKeep || len(res.OmittedOnViolation) != 1 {
		t.Errorf("omit_traits on track: %+v, want order_id omitted", res)
	}
	doc = decode(t, ev("track", `"event":"Nope"`))
	if res := c.Check(doc, Enforcement{TrackUnplannedEvents: "BLOCK"}); res.Verdict != VerdictKeep {
		t.Errorf("unknown action blocked")
	}
}
