package identity

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Frame is the time frame of an identifier limit: how far back the values
// a profile gained count against it.
type Frame string

// The frames of spec §6.2.
const (
	FrameEver     Frame = "ever"
	FrameDaily    Frame = "daily"
	FrameWeekly   Frame = "weekly"
	FrameMonthly  Frame = "monthly"
	FrameAnnually Frame = "annually"
)

// span is how far back a frame reaches; 0 for ever.
func (f Frame) span() time.Duration {
	switch f {
	case FrameDaily:
		return 24 * time.Hour
	case FrameWeekly:
		return 7 * 24 * time.Hour
	case FrameMonthly:
		return 30 * 24 * time.Hour
	case FrameAnnually:
		return 365 * 24 * time.Hour
	}
	return 0
}

// Collections of profiles.
const (
	Users    = "users"
	Accounts = "accounts"
)

// The default identifier types (spec §6.1), and group_id, the identifier
// of an account.
const (
	TypeUserID          = "user_id"
	TypeEmail           = "email"
	TypeAnonymousID     = "anonymous_id"
	TypeAndroidID       = "android.id"
	TypeIOSID           = "ios.id"
	TypeAndroidIDFA     = "android.idfa"
	TypeIOSIDFA         = "ios.idfa"
	TypeAndroidPush     = "android.push_token"
	TypeIOSPush         = "ios.push_token"
	TypeGAClientID      = "ga_client_id"
	TypeCrossDomainID   = "cross_domain_id"
	TypeBrazeID         = "braze_id"
	TypeGroupID         = "group_id"
	defaultLimit        = 5
	defaultMaxMerges    = 100
	defaultMaxMappings  = 1000
	maxIdentifierLength = 1024
)

// defaultTypes are the types promoted from events without configuration.
var defaultTypes = []string{
	TypeUserID, TypeEmail, TypeAnonymousID, TypeAndroidID, TypeIOSID, TypeAndroidIDFA, TypeIOSIDFA,
	TypeAndroidPush, TypeIOSPush, TypeGAClientID, TypeCrossDomainID, TypeBrazeID,
}

// DefaultBlockedValues are the values never promoted to identifiers when
// the settings do not list their own (compared without case): the
// placeholders SDKs and apps send for "no id".
func DefaultBlockedValues() []string {
	return []string{"null", "undefined", "nil", "none", "n/a", "anonymous", "unknown", "-1", "0", "[object object]"}
}

// DefaultBlockedPatterns are the patterns of values never promoted when the
// settings do not list their own: ids made only of zeros and dashes, such
// as the all-zero IDFA of a device that limits ad tracking.
func DefaultBlockedPatterns() []string { return []string{`^[0-]*$`} }

// Settings are a workspace's identity resolution rules, as the config
// file (identity:) and the Config API write them. The zero value is every
// default.
type Settings struct {
	// Identifiers override the defaults of listed types and declare custom
	// ones: a type that is not a default one is promoted from the
	// top-level properties, traits and context.traits of that name.
	Identifiers []IdentifierRule `json:"identifiers"`
	// BlockedValues are never promoted, for any type (without case). Nil:
	// [DefaultBlockedValues]; an empty list blocks none.
	BlockedValues []string `json:"blocked_values"`
	// BlockedPatterns are regular expressions (RE2) of values never
	// promoted, for any type. Nil: [DefaultBlockedPatterns].
	BlockedPatterns []string `json:"blocked_patterns"`
	// MaxMerges bounds the merges into one profile. 0: 100.
	MaxMerges int `json:"max_merges,omitempty"`
	// MaxMappings bounds the identifiers of one profile. 0: 1000.
	MaxMappings int `json:"max_mappings,omitempty"`
}

// IdentifierRule is the rule of one identifier type.
type IdentifierRule struct {
	// Type is the identifier type, lowercase: "user_id", "email", "phone".
	Type string `json:"type"`
	// Limit is the most values of the type one profile may gain within
	// Frame. 0: the default (1 for user_id, 5 otherwise).
	Limit int `json:"limit,omitempty"`
	// Frame is the limit's time frame. "": the default (ever for user_id,
	// weekly for anonymous_id and ga_client_id, annually otherwise).
	Frame Frame `json:"frame,omitempty"`
	// Priority ranks the types, 1 the highest: when a limit forces an
	// identifier out of an event, the lowest-ranked (largest number) goes
	// first. 0: the default (user_id 1, email 2, the others after every
	// configured priority, alphabetically).
	Priority int `json:"priority,omitempty"`
	// BlockedValues and BlockedPatterns add to the settings' own, for this
	// type only.
	BlockedValues   []string `json:"blocked_values,omitempty"`
	BlockedPatterns []string `json:"blocked_patterns,omitempty"`
	// Collection is where a custom type identifies profiles: "users"
	// (default) or "accounts".
	Collection string `json:"collection,omitempty"`
}

// Problem is one thing wrong with [Settings], at a path inside them such
// as "identifiers[1].frame".
type Problem struct {
	Path    string
	Message string
}

func (p Problem) Error() string { return p.Path + ": " + p.Message }

// Check returns every problem of s, or nil.
func (s Settings) Check() []Problem {
	var probs []Problem
	add := func(path, format string, args ...any) {
		probs = append(probs, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
	}
	checkPatterns := func(path string, pats []string) {
		for i, p := range pats {
			if _, err := regexp.Compile(p); err != nil {
				add(fmt.Sprintf("%s[%d]", path, i), "%q is not a regular expression: %v", p, err)
			}
		}
	}
	checkPatterns("blocked_patterns", s.BlockedPatterns)
	if s.MaxMerges < 0 || s.MaxMerges > 100_000 {
		add("max_merges", "must be between 1 and 100000 (0 for the default 100), not %d", s.MaxMerges)
	}
	if s.MaxMappings < 0 || s.MaxMappings > 100_000 {
		add("max_mappings", "must be between 1 and 100000 (0 for the default 1000), not %d", s.MaxMappings)
	}
	seen := map[string]bool{}
	for i, r := range s.Identifiers {
		path := fmt.Sprintf("identifiers[%d]", i)
		switch {
		case r.Type == "":
			add(path+".type", "is required")
		case r.Type != strings.ToLower(r.Type) || strings.ContainsAny(r.Type, ": \t/"):
			add(path+".type", "%q must be lowercase, without spaces, ':' or '/'", r.Type)
		case r.Type == TypeGroupID:
			add(path+".type", "group_id identifies accounts by their groupId and has no rule")
		case seen[r.Type]:
			add(path+".type", "%q is listed twice", r.Type)
		}
		seen[r.Type] = true
		if r.Limit < 0 || r.Limit > 100_000 {
			add(path+".limit", "must be between 1 and 100000 (0 for the default), not %d", r.Limit)
		}
		switch r.Frame {
		case "", FrameEver, FrameDaily, FrameWeekly, FrameMonthly, FrameAnnually:
		default:
			add(path+".frame", "%q is not a frame: use ever, daily, weekly, monthly or annually", r.Frame)
		}
		if r.Priority < 0 {
			add(path+".priority", "must be positive (1 is the highest), not %d", r.Priority)
		}
		switch r.Collection {
		case "", Users:
		case Accounts:
			if slices.Contains(defaultTypes, r.Type) {
				add(path+".collection", "%s is a users identifier", r.Type)
			}
		default:
			add(path+".collection", "%q is not a collection: use users or accounts", r.Collection)
		}
		checkPatterns(path+".blocked_patterns", r.BlockedPatterns)
	}
	return probs
}

// Rules are compiled [Settings], shared and read-only: what the resolver
// applies to every event.
type Rules struct {
	types       map[string]*typeRule
	blocked     map[string]bool
	patterns    []*regexp.Regexp
	maxMerges   int
	maxMappings int
	// custom are the configured types that are not default ones, by
	// collection.
	custom map[string][]string
	// propertyKeys are the keys of properties Extract reads.
	propertyKeys []string
}

// typeRule is one type's compiled rule.
type typeRule struct {
	limit    int
	span     time.Duration
	priority int // 0: unset (after every set one)
	blocked  map[string]bool
	patterns []*regexp.Regexp
}

// Compile checks s and compiles it.
func (s Settings) Compile() (*Rules, error) {
	if probs := s.Check(); len(probs) > 0 {
		return nil, fmt.Errorf("identity settings: %w", probs[0])
	}
	r := &Rules{
		types:       map[string]*typeRule{},
		blocked:     lowerSet(cmpOr(s.BlockedValues, DefaultBlockedValues())),
		patterns:    mustCompile(cmpOr(s.BlockedPatterns, DefaultBlockedPatterns())),
		maxMerges:   cmp.Or(s.MaxMerges, defaultMaxMerges),
		maxMappings: cmp.Or(s.MaxMappings, defaultMaxMappings),
		custom:      map[string][]string{},
	}
	for _, t := range append(slices.Clone(defaultTypes), TypeGroupID) {
		r.types[t] = defaultRule(t)
	}
	for _, ir := range s.Identifiers {
		tr, ok := r.types[ir.Type]
		if !ok {
			tr = defaultRule(ir.Type)
			r.types[ir.Type] = tr
			coll := cmp.Or(ir.Collection, Users)
			r.custom[coll] = append(r.custom[coll], ir.Type)
		}
		if ir.Limit > 0 {
			tr.limit = ir.Limit
		}
		if ir.Frame != "" {
			tr.span = ir.Frame.span()
		}
		if ir.Priority > 0 {
			tr.priority = ir.Priority
		}
		tr.blocked = lowerSet(ir.BlockedValues)
		tr.patterns = mustCompile(ir.BlockedPatterns)
	}
	r.propertyKeys = []string{"email"}
	for _, types := range r.custom {
		r.propertyKeys = append(r.propertyKeys, types...)
	}
	return r, nil
}

// DefaultRules are the rules of a workspace that configures none.
func DefaultRules() *Rules {
	r, err := Settings{}.Compile()
	if err != nil {
		panic(err) // the defaults are constants
	}
	return r
}

func cmpOr(v, def []string) []string {
	if v == nil {
		return def
	}
	return v
}

func lowerSet(vals []string) map[string]bool {
	m := make(map[string]bool, len(vals))
	for _, v := range vals {
		m[strings.ToLower(v)] = true
	}
	return m
}

func mustCompile(pats []string) []*regexp.Regexp {
	out := make([]*regexp.Regexp, 0, len(pats))
	for _, p := range pats {
		out = append(out, regexp.MustCompile(p)) // checked by Check
	}
	return out
}

// defaultRule is the rule of type t before configuration (spec §6.2).
func defaultRule(t string) *typeRule {
	tr := &typeRule{limit: defaultLimit, span: FrameAnnually.span()}
	switch t {
	case TypeUserID:
		tr.limit, tr.span, tr.priority = 1, 0, 1
	case TypeEmail:
		tr.priority = 2
	case TypeAnonymousID, TypeGAClientID:
		tr.span = FrameWeekly.span()
	case TypeGroupID:
		tr.limit, tr.span, tr.priority = 1, 0, 1
	}
	return tr
}

// rule returns t's rule; a type first seen in an event (context.externalIds)
// takes the defaults.
func (r *Rules) rule(t string) *typeRule {
	if tr, ok := r.types[t]; ok {
		return tr
	}
	return &typeRule{limit: defaultLimit, span: FrameAnnually.span()}
}

// Blocked reports whether value may not become an identifier of type t.
func (r *Rules) Blocked(t, value string) bool {
	if value == "" || len(value) > maxIdentifierLength {
		return true
	}
	low := strings.ToLower(value)
	if r.blocked[low] {
		return true
	}
	for _, p := range r.patterns {
		if p.MatchString(value) {
			return true
		}
	}
	tr := r.rule(t)
	if tr.blocked[low] {
		return true
	}
	for _, p := range tr.patterns {
		if p.MatchString(value) {
			return true
		}
	}
	return false
}

// before reports whether type a has a higher priority than type b: a
// lower configured number, then any configured number before none, then
// alphabetical order.
func (r *Rules) before(a, b string) bool {
	pa, pb := r.rule(a).priority, r.rule(b).priority
	switch {
	case pa != 0 && pb != 0 && pa != pb:
		return pa < pb
	case pa != 0 && pb == 0:
		return true
	case pa == 0 && pb != 0:
		return false
	}
	return a < b
}
