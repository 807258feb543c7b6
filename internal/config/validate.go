package config

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/confluxcdp/conflux/internal/process/plan"
	"github.com/confluxcdp/conflux/internal/process/transform"
)

// FieldError is one problem with one field of a workspace object. Path is the
// field's path as written in the config file or API body, e.g.
// "sources[2].write_key"; Line and Col locate it in a file (zero for the API).
type FieldError struct {
	File    string
	Line    int
	Col     int
	Path    string
	Message string
}

// Error renders "file:line:col: path: message", leaving out what is unknown.
func (e *FieldError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(":")
	}
	switch {
	case e.Line > 0 && e.Col > 0:
		fmt.Fprintf(&b, "%d:%d:", e.Line, e.Col)
	case e.Line > 0:
		fmt.Fprintf(&b, "%d:", e.Line)
	}
	if b.Len() > 0 {
		b.WriteString(" ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Message)
	return b.String()
}

// idPattern is what a source or destination id may look like: it appears in
// URLs, log subjects and (later) warehouse schema names, so it is kept to a
// safe, lowercase alphabet.
var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// MaxWriteKeyLen bounds a write key's length.
const MaxWriteKeyLen = 128

// ValidateID reports what is wrong with a source or destination id, or "".
func ValidateID(id string) string {
	switch {
	case id == "":
		return "required"
	case !idPattern.MatchString(id):
		return fmt.Sprintf("%q is not a valid id: use 1 to 63 characters of a-z, 0-9, '_' and '-', starting with a letter or digit", id)
	}
	return ""
}

// ValidateWriteKey reports what is wrong with a write key, or "". A write key
// travels as the user name of HTTP Basic auth, so it cannot hold a colon, and
// as a URL path segment of the settings endpoint, so it is kept printable.
func ValidateWriteKey(key string) string {
	switch {
	case key == "":
		return "required"
	case len(key) > MaxWriteKeyLen:
		return fmt.Sprintf("longer than %d characters", MaxWriteKeyLen)
	}
	for _, r := range key {
		if r <= ' ' || r > '~' || r == ':' || r == '/' || r == '?' || r == '#' || r == '%' {
			return fmt.Sprintf("contains %q: use printable ASCII without spaces, ':', '/', '?', '#' or '%%'", r)
		}
	}
	return ""
}

// writeKeyAlphabet is base62, like Segment's 32-character write keys.
const writeKeyAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// NewWriteKey returns a fresh random 32-character write key (190 bits).
func NewWriteKey() string { return randomString(32) }

// NewAdminToken returns a fresh random admin token (64 characters, 380 bits).
func NewAdminToken() string { return randomString(64) }

func randomString(n int) string {
	buf := make([]byte, n)
	// rand.Read never returns an error (crypto/rand, Go 1.24+).
	_, _ = rand.Read(buf)
	for i, b := range buf {
		// 248 = 4*62: reject-free enough; the bias of b%62 over 256 values
		// is removed by re-drawing the few values above 247.
		for b >= 248 {
			var one [1]byte
			_, _ = rand.Read(one[:])
			b = one[0]
		}
		buf[i] = writeKeyAlphabet[int(b)%len(writeKeyAlphabet)]
	}
	return string(buf)
}

// Validate reports every problem of a source, with paths prefixed by prefix
// (e.g. "sources[0]"; empty for an API body). An empty WriteKey is allowed:
// one is generated when the source is stored. Whether its tracking plan,
// the sources its schema block forwards to and its functions exist is the
// caller's call.
func (s *Source) Validate(prefix string) []*FieldError {
	var errs []*FieldError
	if m := ValidateID(s.ID); m != "" {
		errs = append(errs, &FieldError{Path: join(prefix, "id"), Message: m})
	}
	if len(s.Name) > MaxNameLen {
		errs = append(errs, &FieldError{Path: join(prefix, "name"), Message: fmt.Sprintf("longer than %d characters", MaxNameLen)})
	}
	if s.WriteKey != "" {
		if m := ValidateWriteKey(s.WriteKey); m != "" {
			errs = append(errs, &FieldError{Path: join(prefix, "write_key"), Message: m})
		}
	}
	errs = append(errs, validateFunctionRefs(s.functionRefs(prefix))...)
	return append(errs, s.validateSchema(prefix)...)
}

// Validate reports every problem of a destination, with paths prefixed by
// prefix. It checks the shape, the ranges of the delivery options (at
// "delivery.concurrency" and so on), and compiles the filters (problems at
// "filters[i]…"); whether Type exists and whether its Settings are right is
// the delivery stage's call (see [DestinationCheck]), and whether Sources
// exist is the caller's (it knows the workspace), as is whether its insert
// function and, for a destination of type [FunctionDestinationType], the
// destination function its settings.function names exist. That setting
// must be there, a function id.
func (d *Destination) Validate(prefix string) []*FieldError {
	var errs []*FieldError
	if m := ValidateID(d.ID); m != "" {
		errs = append(errs, &FieldError{Path: join(prefix, "id"), Message: m})
	}
	if len(d.Name) > MaxNameLen {
		errs = append(errs, &FieldError{Path: join(prefix, "name"), Message: fmt.Sprintf("longer than %d characters", MaxNameLen)})
	}
	if d.Type == "" {
		errs = append(errs, &FieldError{Path: join(prefix, "type"), Message: "required"})
	} else if !idPattern.MatchString(d.Type) {
		errs = append(errs, &FieldError{Path: join(prefix, "type"), Message: fmt.Sprintf("%q is not a valid destination type", d.Type)})
	}
	seen := make(map[string]bool, len(d.Sources))
	for i, src := range d.Sources {
		p := fmt.Sprintf("%s[%d]", join(prefix, "sources"), i)
		if m := ValidateID(src); m != "" {
			errs = append(errs, &FieldError{Path: p, Message: m})
		} else if seen[src] {
			errs = append(errs, &FieldError{Path: p, Message: fmt.Sprintf("source %q listed twice", src)})
		}
		seen[src] = true
	}
	if d.Type == FunctionDestinationType {
		if _, ok := d.Settings["function"].(string); !ok {
			errs = append(errs, &FieldError{Path: join(join(prefix, "settings"), "function"), Message: "required: the id of a destination function"})
		}
	}
	errs = append(errs, validateFunctionRefs(d.functionRefs(prefix))...)
	errs = append(errs, d.Delivery.validate(join(prefix, "delivery"))...)
	return append(errs, d.validateFilters(prefix)...)
}

// validate reports the delivery options that are set but out of range,
// with paths under prefix.
func (o *DeliveryOptions) validate(prefix string) []*FieldError {
	var errs []*FieldError
	if c := o.Concurrency; c != 0 && (c < 1 || c > MaxDeliveryConcurrency) {
		errs = append(errs, &FieldError{Path: join(prefix, "concurrency"),
			Message: fmt.Sprintf("%d is out of range: 1 to %d (0 or left out: the engine's default)", c, MaxDeliveryConcurrency)})
	}
	// Written so that NaN fails too.
	if r := o.RateLimit; !(r >= 0 && r <= MaxDeliveryRateLimit) {
		errs = append(errs, &FieldError{Path: join(prefix, "rate_limit"),
			Message: fmt.Sprintf("%v is out of range: 0 (no limit) to %d requests per second", r, MaxDeliveryRateLimit)})
	}
	if s := o.Shards; s != 0 {
		conc := cmp.Or(o.Concurrency, DefaultDeliveryConcurrency)
		if s < 1 || s > MaxDeliveryShards {
			errs = append(errs, &FieldError{Path: join(prefix, "shards"),
				Message: fmt.Sprintf("%d is out of range: 1 to %d (0 or left out: 1)", s, MaxDeliveryShards)})
		} else if s > conc {
			errs = append(errs, &FieldError{Path: join(prefix, "shards"),
				Message: fmt.Sprintf("%d shards need a concurrency of at least %d (each shard sends at least one request at a time); the concurrency is %d", s, s, conc)})
		}
	}
	if a := time.Duration(o.MaxRetryAge); a != 0 && (a < MinDeliveryRetryAge || a > MaxDeliveryRetryAge) {
		errs = append(errs, &FieldError{Path: join(prefix, "max_retry_age"),
			Message: fmt.Sprintf("%s is out of range: %s to %s (0 or left out: the engine's default)", o.MaxRetryAge, Duration(MinDeliveryRetryAge), Duration(MaxDeliveryRetryAge))})
	}
	return errs
}

func join(prefix, field string) string {
	if prefix == "" {
		return field
	}
	return prefix + "." + field
}

// MaxNameLen bounds the display name of a workspace object.
const MaxNameLen = 200

// validateSchema reports the problems of a source's tracking plan id and
// schema block, with paths under prefix.
func (s *Source) validateSchema(prefix string) []*FieldError {
	var errs []*FieldError
	if s.TrackingPlan != "" {
		if m := ValidateID(s.TrackingPlan); m != "" {
			errs = append(errs, &FieldError{Path: join(prefix, "tracking_plan"), Message: m})
		}
	}
	schema := join(prefix, "schema")
	if err := s.Schema.Enforcement.Validate(); err != nil {
		for _, e := range unjoin(err) {
			// plan.Enforcement.Validate names each control by its yaml key.
			name, msg, ok := strings.Cut(e.Error(), ": ")
			if !ok {
				name, msg = "", e.Error()
			}
			errs = append(errs, &FieldError{Path: joinPath(schema, name), Message: msg})
		}
	}
	for _, f := range []struct{ key, id string }{
		{"forward_violations_to", s.Schema.ForwardViolationsTo},
		{"forward_blocked_to", s.Schema.ForwardBlockedTo},
	} {
		switch {
		case f.id == "":
		case ValidateID(f.id) != "":
			errs = append(errs, &FieldError{Path: join(schema, f.key), Message: ValidateID(f.id)})
		case f.id == s.ID:
			errs = append(errs, &FieldError{Path: join(schema, f.key), Message: "cannot be the source itself: name another source, such as an HTTP API source kept for the purpose"})
		}
	}
	return errs
}

// validateFilters compiles d's filters and reports their problems.
func (d *Destination) validateFilters(prefix string) []*FieldError {
	if _, err := transform.CompileFilters(d.Filters); err != nil {
		// The library's paths start "filters[i]".
		return transformErrors(prefix, err)
	}
	return nil
}

// Validate reports every problem of a tracking plan, with paths prefixed by
// prefix (e.g. "tracking_plans[0]"; empty for an API body). It compiles
// each rule on its own, so that every schema that does not compile is
// reported, each at "rules.events.<event name>", "rules.identify",
// "rules.group" or "rules.common". Rules must be in canonical form: see
// [CanonicalRules].
func (p *TrackingPlan) Validate(prefix string) []*FieldError {
	var errs []*FieldError
	if m := ValidateID(p.ID); m != "" {
		errs = append(errs, &FieldError{Path: join(prefix, "id"), Message: m})
	}
	if len(p.Name) > MaxNameLen {
		errs = append(errs, &FieldError{Path: join(prefix, "name"), Message: fmt.Sprintf("longer than %d characters", MaxNameLen)})
	}
	rules := join(prefix, "rules")
	check := func(path string, one plan.Plan) {
		_, err := plan.Compile(one)
		if err == nil {
			return
		}
		msg := err.Error()
		if se, ok := errors.AsType[*plan.SchemaError](err); ok {
			rule := se.Rule
			if se.Rule == plan.RuleEvent {
				rule = fmt.Sprintf("event %q", se.Event)
			}
			msg = strings.TrimPrefix(msg, fmt.Sprintf("tracking plan %q: %s: ", se.Plan, rule))
		}
		errs = append(errs, &FieldError{Path: path, Message: msg})
	}
	for _, r := range []struct {
		name   string
		schema json.RawMessage
		plan   plan.Plan
	}{
		{"common", p.Rules.Common, plan.Plan{ID: p.ID, Common: p.Rules.Common}},
		{"identify", p.Rules.Identify, plan.Plan{ID: p.ID, Identify: p.Rules.Identify}},
		{"group", p.Rules.Group, plan.Plan{ID: p.ID, Group: p.Rules.Group}},
	} {
		if r.schema != nil {
			check(join(rules, r.name), r.plan)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(p.Rules.Events)) {
		if name == "" {
			errs = append(errs, &FieldError{Path: join(rules, "events"), Message: "an event name cannot be empty"})
			continue
		}
		check(eventPath(rules, name), plan.Plan{ID: p.ID, Events: map[string]json.RawMessage{name: p.Rules.Events[name]}})
	}
	return errs
}

// eventPath is the path of one event's rule: "rules.events.Order Completed".
// Event names are written as they are, spaces and dots included, as the
// one place people look them up is the file they wrote.
func eventPath(rules, name string) string { return join(join(rules, "events"), name) }

// CanonicalRules returns rules with every schema in canonical JSON (object
// keys sorted, no insignificant space; numbers as written) and Events never
// nil. A null event schema becomes {} (the event is planned, without
// constraints); a null identify, group or common schema is no rule. A
// schema that is not a JSON object is reported at its path under prefix.
func CanonicalRules(prefix string, rules PlanRules) (PlanRules, []*FieldError) {
	var errs []*FieldError
	base := join(prefix, "rules")
	canon := func(path string, raw json.RawMessage, null json.RawMessage) json.RawMessage {
		if len(bytes.TrimSpace(raw)) == 0 {
			return null
		}
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		var v any
		if err := d.Decode(&v); err != nil {
			errs = append(errs, &FieldError{Path: path, Message: "not valid JSON: " + err.Error()})
			return raw
		}
		switch v.(type) {
		case nil:
			return null
		case map[string]any:
		default:
			errs = append(errs, &FieldError{Path: path, Message: "must be a JSON Schema object"})
			return raw
		}
		b, err := json.Marshal(v)
		if err != nil {
			errs = append(errs, &FieldError{Path: path, Message: "cannot be encoded as JSON: " + err.Error()})
			return raw
		}
		return b
	}
	out := PlanRules{Events: make(map[string]json.RawMessage, len(rules.Events))}
	for _, name := range slices.Sorted(maps.Keys(rules.Events)) {
		out.Events[name] = canon(eventPath(base, name), rules.Events[name], json.RawMessage(`{}`))
	}
	out.Identify = canon(join(base, "identify"), rules.Identify, nil)
	out.Group = canon(join(base, "group"), rules.Group, nil)
	out.Common = canon(join(base, "common"), rules.Common, nil)
	return out, errs
}

// Validate reports every problem of a transformation, with paths prefixed
// by prefix (e.g. "transformations[1]"; empty for an API body): its id and
// scope, and whatever [transform.Compile] finds, at the field's path
// ("fqlDefinedProperties[0].fql"). Whether Source and Destination exist is
// the caller's call.
func (t *Transformation) Validate(prefix string) []*FieldError {
	var errs []*FieldError
	if m := ValidateID(t.ID); m != "" {
		errs = append(errs, &FieldError{Path: join(prefix, "id"), Message: m})
	}
	if len(t.Name) > MaxNameLen {
		errs = append(errs, &FieldError{Path: join(prefix, "name"), Message: fmt.Sprintf("longer than %d characters", MaxNameLen)})
	}
	if m := ValidateID(t.Source); m != "" {
		errs = append(errs, &FieldError{Path: join(prefix, "source"), Message: m})
	}
	if t.Destination != "" {
		if m := ValidateID(t.Destination); m != "" {
			errs = append(errs, &FieldError{Path: join(prefix, "destination"), Message: m})
		}
	}
	if _, err := transform.Compile(t.Transformation); err != nil {
		errs = append(errs, transformErrors(prefix, err)...)
	}
	return errs
}

// transformErrors turns the errors of the transform package's compilers
// into FieldErrors under prefix.
func transformErrors(prefix string, err error) []*FieldError {
	var errs []*FieldError
	for _, e := range unjoin(err) {
		if fe, ok := errors.AsType[*transform.FieldError](e); ok {
			errs = append(errs, &FieldError{Path: joinPath(prefix, fe.Path), Message: fe.Err.Error()})
			continue
		}
		errs = append(errs, &FieldError{Path: prefix, Message: e.Error()})
	}
	return errs
}

// unjoin returns the errors an errors.Join holds, or err alone.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// joinPath appends a field path to a prefix, like join, but also takes an
// empty path (the prefix itself) and an index ("[2]").
func joinPath(prefix, path string) string {
	switch {
	case path == "":
		return prefix
	case prefix == "":
		return path
	case strings.HasPrefix(path, "["):
		return prefix + path
	}
	return prefix + "." + path
}
