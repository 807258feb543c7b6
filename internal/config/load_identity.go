package config

import (
	"fmt"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/confluxcdp/conflux/internal/aggregate/identity"
)

// This file decodes what the config file says about identity resolution
// (identity:) and the Profile API (profiles:).

// The keys of the identity block, of one of its identifiers, and of the
// profiles block.
var (
	identityFields   = []string{"identifiers", "blocked_values", "blocked_patterns", "max_merges", "max_mappings"}
	identifierFields = []string{"type", "limit", "frame", "priority", "blocked_values", "blocked_patterns", "collection"}
	profilesFields   = []string{"space_id", "access_token", "events_retention", "rate_limit", "history"}
)

// newConfig is the Config of a file that declares nothing: every default.
func newConfig() *Config {
	return &Config{DedupWindow: DefaultDedupWindow, Profiles: Profiles{}.WithDefaults()}
}

// identity decodes the identity block and reports every problem that
// [identity.Settings.Check] finds at the position of its value. A null
// block is no block (nil). Blocked patterns are strings like any other,
// so a $ followed by a letter must be written $$.
func (l *loader) identity(path string, n *yaml.Node) *identity.Settings {
	if isNullNode(resolveAlias(n)) {
		l.nodes[path] = n
		return nil
	}
	s := &identity.Settings{}
	m := l.mapping(path, n)
	if m == nil {
		return s
	}
	l.fields(path, m, identityFields, func(key string, v *yaml.Node) {
		p := join(path, key)
		if key == "identifiers" {
			for i, item := range l.list(p, v) {
				s.Identifiers = append(s.Identifiers, l.identifier(fmt.Sprintf("%s[%d]", p, i), item))
			}
			return
		}
		l.decoded(p, func() {
			switch key {
			case "blocked_values":
				s.BlockedValues = l.stringList(p, v)
			case "blocked_patterns":
				s.BlockedPatterns = l.stringList(p, v)
			case "max_merges":
				s.MaxMerges, _ = l.integer(p, v)
			case "max_mappings":
				s.MaxMappings, _ = l.integer(p, v)
			}
		})
	})
	for _, pr := range s.Check() {
		if p := join(path, pr.Path); !l.undecodedAt(p) {
			l.at(p, "%s", pr.Message)
		}
	}
	return s
}

// identifier decodes one entry of identity.identifiers. As in
// [loader.alert], a field whose YAML has a problem is marked undecoded so
// that Check does not report its zero value too.
func (l *loader) identifier(path string, n *yaml.Node) identity.IdentifierRule {
	var r identity.IdentifierRule
	m := l.mapping(path, n)
	if m == nil {
		l.markUndecoded(path)
		return r
	}
	l.fields(path, m, identifierFields, func(key string, v *yaml.Node) {
		p := join(path, key)
		l.decoded(p, func() {
			switch key {
			case "type":
				r.Type, _ = l.str(p, v)
			case "limit":
				r.Limit, _ = l.integer(p, v)
			case "frame":
				s, _ := l.str(p, v)
				r.Frame = identity.Frame(s)
			case "priority":
				r.Priority, _ = l.integer(p, v)
			case "blocked_values":
				r.BlockedValues = l.stringList(p, v)
			case "blocked_patterns":
				r.BlockedPatterns = l.stringList(p, v)
			case "collection":
				r.Collection, _ = l.str(p, v)
			}
		})
	})
	return r
}

// stringList decodes a list of strings. Null is nil (the default), while []
// is an empty list that is not nil: identity settings tell the two apart.
func (l *loader) stringList(path string, n *yaml.Node) []string {
	items := l.list(path, n)
	if resolveAlias(n).Kind != yaml.SequenceNode {
		return nil
	}
	out := make([]string, 0, len(items))
	for i, item := range items {
		p := fmt.Sprintf("%s[%d]", path, i)
		s, ok := l.str(p, item)
		if !ok && isNullNode(resolveAlias(item)) {
			l.errorf(item, p, "must be a string")
		}
		out = append(out, s)
	}
	return out
}

// profiles decodes the profiles block; what it leaves out takes the
// defaults.
func (l *loader) profiles(path string, n *yaml.Node) Profiles {
	var p Profiles
	if isNullNode(resolveAlias(n)) {
		l.nodes[path] = n
		return p.WithDefaults()
	}
	m := l.mapping(path, n)
	if m == nil {
		return p.WithDefaults()
	}
	l.fields(path, m, profilesFields, func(key string, v *yaml.Node) {
		fp := join(path, key)
		switch key {
		case "space_id":
			if s, ok := l.str(fp, v); ok {
				p.SpaceID = s
				if s == "" {
					l.errorf(v, fp, "must not be empty: leave it out for %q", DefaultProfileSpace)
				}
			}
		case "access_token":
			s, _ := l.str(fp, v)
			p.AccessToken = Secret(s)
		case "events_retention":
			if d, ok := l.duration(fp, v, "336h (14 days) or 720h (30 days)"); ok {
				p.EventRetention = d
				if d == 0 {
					l.errorf(v, fp, "0s is out of range: %s to %s", Duration(MinEventRetention), Duration(MaxEventRetention))
				}
			}
		case "rate_limit":
			p.RateLimit, _ = l.number(fp, v)
		case "history":
			if b, ok := l.boolean(fp, v); ok {
				p.NoHistory = !b
			}
		}
	})
	for _, fe := range p.validate(path) {
		l.attach(fe)
	}
	return p.WithDefaults()
}

// spaceIDPattern is what a Profile API space id may look like.
var spaceIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// validate reports the fields of p that are set but wrong, with paths
// under prefix. A zero field is the default and is not checked.
func (p Profiles) validate(prefix string) []*FieldError {
	var errs []*FieldError
	add := func(key, format string, args ...any) {
		errs = append(errs, &FieldError{Path: join(prefix, key), Message: fmt.Sprintf(format, args...)})
	}
	if p.SpaceID != "" && !spaceIDPattern.MatchString(p.SpaceID) {
		add("space_id", "%q is not a valid space id: use 1 to 64 characters of A-Z, a-z, 0-9, '_' and '-'", p.SpaceID)
	}
	if msg := tokenProblem(p.AccessToken.Value()); msg != "" {
		add("access_token", "%s", msg)
	}
	if d := p.EventRetention; d != 0 && (d < MinEventRetention || d > MaxEventRetention) {
		add("events_retention", "%s is out of range: %s to %s", Duration(d), Duration(MinEventRetention), Duration(MaxEventRetention))
	}
	// Written so that NaN fails too.
	if r := p.RateLimit; !(r >= 0 && r <= MaxProfilesRateLimit) {
		add("rate_limit", "%v is out of range: 0 (no limit) to %d requests per second", r, MaxProfilesRateLimit)
	}
	return errs
}

// tokenProblem says what is wrong with a bearer token set in the file (the
// admin token, the Profile API's), or "". The empty token is fine: the
// server generates one. The message never repeats the token.
func tokenProblem(tok string) string {
	switch {
	case tok == "":
		return ""
	case len(tok) < MinAdminTokenLen:
		return fmt.Sprintf("must be at least %d characters", MinAdminTokenLen)
	case strings.IndexFunc(tok, func(r rune) bool { return r <= ' ' || r > '~' }) >= 0:
		return "must be printable ASCII without spaces"
	}
	return ""
}
