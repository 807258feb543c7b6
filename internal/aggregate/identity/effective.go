package identity

import (
	"cmp"
	"slices"
	"time"
)

// Effective returns s with every default written out, so that an operator
// can see what the resolver applies without knowing the defaults: a rule
// for each default type (in the order of spec §6.1) and then for each
// custom type of s (in s's order), each with its limit, frame and
// collection, and its priority when it has one (0 stays 0: after every
// numbered type, alphabetically); the blocked values and patterns; and
// both caps. It is valid [Settings] that compile to the same [Rules] as s.
// s is assumed to pass [Settings.Check].
func (s Settings) Effective() Settings {
	out := Settings{
		BlockedValues:   slices.Clone(cmpOr(s.BlockedValues, DefaultBlockedValues())),
		BlockedPatterns: slices.Clone(cmpOr(s.BlockedPatterns, DefaultBlockedPatterns())),
		MaxMerges:       cmp.Or(s.MaxMerges, defaultMaxMerges),
		MaxMappings:     cmp.Or(s.MaxMappings, defaultMaxMappings),
	}
	configured := make(map[string]IdentifierRule, len(s.Identifiers))
	types := slices.Clone(defaultTypes)
	for _, ir := range s.Identifiers {
		configured[ir.Type] = ir
		if !slices.Contains(defaultTypes, ir.Type) {
			types = append(types, ir.Type)
		}
	}
	for _, t := range types {
		def := defaultRule(t)
		ir := configured[t]
		out.Identifiers = append(out.Identifiers, IdentifierRule{
			Type:            t,
			Limit:           cmp.Or(ir.Limit, def.limit),
			Frame:           cmp.Or(ir.Frame, frameOf(def.span)),
			Priority:        cmp.Or(ir.Priority, def.priority),
			BlockedValues:   slices.Clone(ir.BlockedValues),
			BlockedPatterns: slices.Clone(ir.BlockedPatterns),
			Collection:      cmp.Or(ir.Collection, Users),
		})
	}
	return out
}

// frameOf is the frame whose span is d.
func frameOf(d time.Duration) Frame {
	for _, f := range []Frame{FrameDaily, FrameWeekly, FrameMonthly, FrameAnnually} {
		if f.span() == d {
			return f
		}
	}
	return FrameEver
}
