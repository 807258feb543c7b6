package plan

import (
	"errors"
	"fmt"
	"slices"
)

// Action is what a source does with events that break one of its schema
// controls. The empty Action means [Allow].
type Action string

// The actions of Segment's Schema Configuration. Each control accepts only
// some of them; see [Enforcement].
const (
	// Allow lets the event through unchanged; violations are still reported.
	Allow Action = "allow"
	// Block drops the event.
	Block Action = "block"
	// Omit removes the unplanned or offending properties or traits.
	Omit Action = "omit"
	// OmitProperties removes the offending properties of a track event.
	OmitProperties Action = "omit_properties"
	// OmitTraits removes the offending traits of an identify or group event.
	OmitTraits Action = "omit_traits"
)

// Enforcement is one source's Schema Configuration (spec §8.2): what
// [Compiled.Check] does about each kind of problem. The zero value allows
// everything, which is Segment's default.
type Enforcement struct {
	// TrackUnplannedEvents: allow or block track events that are not in
	// the plan. Default: allow.
	TrackUnplannedEvents Action `yaml:"track_unplanned_events" json:"track_unplanned_events"`
	// TrackUnplannedProperties: allow or omit properties that are not in
	// the plan. Default: allow.
	TrackUnplannedProperties Action `yaml:"track_unplanned_properties" json:"track_unplanned_properties"`
	// TrackViolations: allow, omit_properties or block track events that
	// violate their event's schema. Default: allow.
	TrackViolations Action `yaml:"track_violations" json:"track_violations"`
	// IdentifyUnplannedTraits: allow or omit identify traits that are not
	// in the plan. Default: allow.
	IdentifyUnplannedTraits Action `yaml:"identify_unplanned_traits" json:"identify_unplanned_traits"`
	// IdentifyViolations: allow, omit_traits or block identify events that
	// violate the identify schema. Default: allow.
	IdentifyViolations Action `yaml:"identify_violations" json:"identify_violations"`
	// GroupUnplannedTraits: allow or omit group traits that are not in the
	// plan. Default: allow.
	GroupUnplannedTraits Action `yaml:"group_unplanned_traits" json:"group_unplanned_traits"`
	// GroupViolations: allow, omit_traits or block group events that
	// violate the group schema. Default: allow.
	GroupViolations Action `yaml:"group_violations" json:"group_violations"`
	// CommonViolations: allow, omit or block events of any type that
	// violate the common schema. Default: allow.
	CommonViolations Action `yaml:"common_violations" json:"common_violations"`
}

// Validate reports every control set to an action it does not accept, by
// its yaml name, e.g. `track_violations: "omit" is not one of allow,
// omit_properties, block`.
func (e Enforcement) Validate() error {
	var errs []error
	check := func(name string, got Action, valid ...Action) {
		if got != "" && !slices.Contains(valid, got) {
			errs = append(errs, fmt.Errorf("%s: %q is not one of %s", name, got, joinActions(valid)))
		}
	}
	check("track_unplanned_events", e.TrackUnplannedEvents, Allow, Block)
	check("track_unplanned_properties", e.TrackUnplannedProperties, Allow, Omit)
	check("track_violations", e.TrackViolations, Allow, OmitProperties, Block)
	check("identify_unplanned_traits", e.IdentifyUnplannedTraits, Allow, Omit)
	check("identify_violations", e.IdentifyViolations, Allow, OmitTraits, Block)
	check("group_unplanned_traits", e.GroupUnplannedTraits, Allow, Omit)
	check("group_violations", e.GroupViolations, Allow, OmitTraits, Block)
	check("common_violations", e.CommonViolations, Allow, Omit, Block)
	return errors.Join(errs...)
}

func joinActions(as []Action) string {
	s := ""
	for i, a := range as {
		if i > 0 {
			s += ", "
		}
		s += string(a)
	}
	return s
}
