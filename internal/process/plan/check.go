package plan

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"

	"github.com/confluxcdp/conflux/internal/event"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
)

// Verdict says what happens to a checked event.
type Verdict int

const (
	// VerdictKeep: the event goes on, possibly with fields omitted.
	VerdictKeep Verdict = iota
	// VerdictBlock: the event is dropped (or forwarded to the source
	// blocked events go to).
	VerdictBlock
)

// String returns "keep" or "block".
func (v Verdict) String() string {
	if v == VerdictBlock {
		return "block"
	}
	return "keep"
}

// ViolationType names what a violation is, as forwarded in violationType.
// Schema violations not listed here are named after their JSON Schema
// keyword in title case ("Min Length", "Additional Properties", "Any Of").
type ViolationType string

// Violation types.
const (
	// Required: a required key is missing (keyword "required").
	Required ViolationType = "Required"
	// TypeMismatch: a value has the wrong JSON type (keyword "type").
	TypeMismatch ViolationType = "Type"
	// Enum: a value is not one of the allowed values (keyword "enum").
	Enum ViolationType = "Enum"
	// Const: a value is not the one allowed value (keyword "const").
	Const ViolationType = "Const"
	// Pattern: a string does not match the regular expression (keyword
	// "pattern").
	Pattern ViolationType = "Pattern"
	// Format: a string is not of its format, e.g. date-time (keyword
	// "format").
	Format ViolationType = "Format"
	// NotAllowed: the schema for the value is false.
	NotAllowed ViolationType = "Not Allowed"
	// UnplannedEvent: a track event name that has no rule in the plan.
	UnplannedEvent ViolationType = "Unplanned Event"
	// UnplannedProperty: a property of a planned track event that its rule
	// does not declare.
	UnplannedProperty ViolationType = "Unplanned Property"
	// UnplannedTrait: an identify or group trait that the rule does not
	// declare.
	UnplannedTrait ViolationType = "Unplanned Trait"
)

// Violation is one way an event breaks its plan.
type Violation struct {
	// Type is what is wrong.
	Type ViolationType
	// Field is the dotted path of the value concerned, e.g.
	// "properties.price" ("(root)": the event itself).
	Field string
	// Description says what is wrong in words, e.g.
	// "properties.price is required".
	Description string
}

// Result is what [Compiled.Check] found and did.
type Result struct {
	// Verdict says whether to keep or block the event.
	Verdict Verdict
	// Violations lists every violation found, whatever the enforcement:
	// the unplanned event first, then the violations of the event's own
	// rule sorted by field, the unplanned properties or traits, and the
	// violations of the common rule.
	Violations []Violation
	// Unplanned is true for a track event whose name has no rule.
	Unplanned bool
	// Omitted lists the unplanned keys removed from properties or traits,
	// sorted. Empty when blocked.
	Omitted []string
	// OmittedOnViolation lists the keys removed from properties or traits
	// because of violations, sorted. Empty when blocked.
	OmittedOnViolation []string
}

// Check checks doc against the plan and applies enf, as the package
// documentation describes, and returns what it found and did. When the
// verdict is [VerdictKeep] it may change doc in place: omitted keys are
// deleted, and context.protocols records omissions and violations. When
// the verdict is [VerdictBlock], doc is left as it was.
//
// Check does not validate enf: a control set to an action it does not
// accept acts as allow, except that omit, omit_properties and omit_traits
// all omit. Use [Enforcement.Validate] when loading configuration.
func (c *Compiled) Check(doc event.Doc, enf Enforcement) Result {
	ck := checker{c: c, doc: doc}
	typ, _ := doc["type"].(string)
	switch typ {
	case "track":
		name, _ := doc["event"].(string)
		r, planned := c.events[name]
		if !planned {
			ck.res.Unplanned = true
			ck.res.Violations = append(ck.res.Violations, Violation{
				Type:        UnplannedEvent,
				Field:       "event",
				Description: fmt.Sprintf("event %q is not in the tracking plan", name),
			})
			if enf.TrackUnplannedEvents == Block {
				ck.res.Verdict = VerdictBlock
				return ck.res
			}
			// Nothing of an unplanned event is planned.
			r = &rule{}
		}
		ck.standard(r, "properties", planned, UnplannedProperty, enf.TrackUnplannedProperties, enf.TrackViolations)
	case "identify":
		if c.identify != nil {
			ck.standard(c.identify, "traits", true, UnplannedTrait, enf.IdentifyUnplannedTraits, enf.IdentifyViolations)
		}
	case "group":
		if c.group != nil {
			ck.standard(c.group, "traits", true, UnplannedTrait, enf.GroupUnplannedTraits, enf.GroupViolations)
		}
	}
	if ck.res.Verdict != VerdictBlock && c.common != nil {
		ck.common(containerOf(typ), enf.CommonViolations)
	}
	if ck.res.Verdict == VerdictBlock {
		ck.restore()
		ck.res.Omitted, ck.res.OmittedOnViolation = nil, nil
		return ck.res
	}
	ck.record()
	return ck.res
}

// containerOf returns the member of an event of type typ that holds the
// keys omission can remove.
func containerOf(typ string) string {
	switch typ {
	case "track", "page", "screen":
		return "properties"
	case "identify", "group":
		return "traits"
	}
	return ""
}

// checker holds the state of one Check call.
type checker struct {
	c       *Compiled
	doc     event.Doc
	res     Result
	removed []removal // in order, so that a block can put them back
	found   []found   // scratch for validate
}

// removal is one key omission deleted.
type removal struct {
	obj map[string]any
	key string
	val any
}

// found is a violation and the container key it would omit ("" for none).
type found struct {
	v    Violation
	omit string
}

// standard applies the standard controls with rule r to the container
// (properties or traits). reportUnplanned says whether unplanned keys are
// violations of their own.
func (ck *checker) standard(r *rule, container string, reportUnplanned bool, unplannedType ViolationType, unplannedAct, violAct Action) {
	found := ck.validate(r, container, true)
	obj, _ := ck.doc[container].(map[string]any)
	var unplanned []string
	for k := range obj {
		if _, ok := r.planned[k]; !ok {
			unplanned = append(unplanned, k)
		}
	}
	slices.Sort(unplanned)

	for _, f := range found {
		ck.res.Violations = append(ck.res.Violations, f.v)
	}
	if reportUnplanned {
		for _, k := range unplanned {
			field := container + "." + k
			ck.res.Violations = append(ck.res.Violations, Violation{
				Type:        unplannedType,
				Field:       field,
				Description: field + " is not in the tracking plan",
			})
		}
	}
	if len(found) > 0 && violAct == Block {
		ck.res.Verdict = VerdictBlock
		return
	}
	if unplannedAct == Omit {
		for _, k := range unplanned {
			ck.remove(obj, k, &ck.res.Omitted)
		}
	}
	if isOmit(violAct) {
		ck.omitFound(obj, found)
	}
}

// common applies the common rule.
func (ck *checker) common(container string, act Action) {
	found := ck.validate(ck.c.common, container, false)
	for _, f := range found {
		ck.res.Violations = append(ck.res.Violations, f.v)
	}
	if len(found) > 0 && act == Block {
		ck.res.Verdict = VerdictBlock
		return
	}
	if isOmit(act) && container != "" {
		obj, _ := ck.doc[container].(map[string]any)
		ck.omitFound(obj, found)
	}
}

func isOmit(a Action) bool { return a == Omit || a == OmitProperties || a == OmitTraits }

// omitFound removes the keys the violations found point into.
func (ck *checker) omitFound(obj map[string]any, found []found) {
	for _, f := range found {
		if f.omit != "" {
			ck.remove(obj, f.omit, &ck.res.OmittedOnViolation)
		}
	}
	slices.Sort(ck.res.OmittedOnViolation)
}

// remove deletes key from obj, if there, and notes it in list.
func (ck *checker) remove(obj map[string]any, key string, list *[]string) {
	v, ok := obj[key]
	if !ok {
		return
	}
	delete(obj, key)
	ck.removed = append(ck.removed, removal{obj, key, v})
	*list = append(*list, key)
}

// restore puts back every key removed.
func (ck *checker) restore() {
	for _, r := range slices.Backward(ck.removed) {
		r.obj[r.key] = r.val
	}
}

// record writes the omissions and violations into context.protocols.
func (ck *checker) record() {
	res := &ck.res
	if len(res.Violations) == 0 && len(res.Omitted) == 0 && len(res.OmittedOnViolation) == 0 {
		return
	}
	ctx, ok := ck.doc["context"].(map[string]any)
	if !ok {
		ctx = map[string]any{}
		ck.doc["context"] = ctx
	}
	prot, ok := ctx["protocols"].(map[string]any)
	if !ok {
		prot = map[string]any{}
		ctx["protocols"] = prot
	}
	if len(res.Omitted) > 0 {
		prot["omitted"] = stringsToAny(res.Omitted)
	}
	if len(res.OmittedOnViolation) > 0 {
		prot["omitted_on_violation"] = stringsToAny(res.OmittedOnViolation)
	}
	if len(res.Violations) > 0 {
		vs := make([]any, len(res.Violations))
		for i, v := range res.Violations {
			vs[i] = map[string]any{"type": string(v.Type), "field": v.Field, "description": v.Description}
		}
		prot["violations"] = vs
	}
}

func stringsToAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// validate validates the event against r's schema and returns the
// violations, sorted by field, with the container keys they would omit.
// With fill, a missing container is validated as an empty object. The
// result is only valid until the next call.
func (ck *checker) validate(r *rule, container string, fill bool) []found {
	ck.found = ck.found[:0]
	if r == nil || r.schema == nil {
		return nil
	}
	if fill && container != "" {
		if _, ok := ck.doc[container]; !ok {
			ck.doc[container] = map[string]any{}
			defer delete(ck.doc, container)
		}
	}
	if r.quick != nil && r.quick.valid(map[string]any(ck.doc)) {
		return nil
	}
	err := r.schema.Validate(map[string]any(ck.doc))
	if err == nil {
		return nil
	}
	ve, ok := errors.AsType[*jsonschema.ValidationError](err)
	if !ok {
		// Validate returns nothing else; keep the problem visible anyway.
		ck.found = append(ck.found, found{v: Violation{Type: "Schema", Field: "(root)", Description: err.Error()}})
		return ck.found
	}
	ck.walk(ve, container)
	slices.SortStableFunc(ck.found, func(a, b found) int {
		return cmp.Or(
			cmp.Compare(a.v.Field, b.v.Field),
			cmp.Compare(a.v.Type, b.v.Type),
			cmp.Compare(a.v.Description, b.v.Description),
		)
	})
	return ck.found
}

// walk turns the leaves of a validation error tree into violations.
// allOf, $ref and groups of errors are looked through; anyOf, oneOf and
// not are reported as one violation each, since no single branch is at
// fault.
func (ck *checker) walk(ve *jsonschema.ValidationError, container string) {
	switch k := ve.ErrorKind.(type) {
	case *kind.Schema, *kind.Group, *kind.AllOf, *kind.Reference:
		for _, c := range ve.Causes {
			ck.walk(c, container)
		}
	case *kind.Required:
		for _, m := range k.Missing {
			field := fieldOf(ve.InstanceLocation, m)
			ck.add(Required, field, field+" is required", ve.InstanceLocation, container)
		}
	case *kind.AdditionalProperties:
		for _, p := range k.Properties {
			field := fieldOf(ve.InstanceLocation, p)
			ck.add(typeOf(k), field, field+" is not allowed", append(slices.Clip(ve.InstanceLocation), p), container)
		}
	default:
		field := fieldOf(ve.InstanceLocation, "")
		ck.add(typeOf(k), field, field+": "+k.LocalizedString(ck.c.printer), ve.InstanceLocation, container)
	}
}

// add notes a violation found at path.
func (ck *checker) add(t ViolationType, field, desc string, path []string, container string) {
	omit := ""
	if container != "" && len(path) >= 2 && path[0] == container {
		omit = path[1]
	}
	ck.found = append(ck.found, found{v: Violation{Type: t, Field: field, Description: desc}, omit: omit})
}

// fieldOf joins an instance location, and a key under it, with dots.
func fieldOf(loc []string, key string) string {
	if key != "" {
		loc = append(slices.Clip(loc), key)
	}
	if len(loc) == 0 {
		return "(root)"
	}
	return strings.Join(loc, ".")
}

// typeOf names the violation of an error kind.
func typeOf(k jsonschema.ErrorKind) ViolationType {
	switch k.(type) {
	case *kind.Required:
		return Required
	case *kind.Type:
		return TypeMismatch
	case *kind.Enum:
		return Enum
	case *kind.Const:
		return Const
	case *kind.Pattern:
		return Pattern
	case *kind.Format:
		return Format
	case *kind.FalseSchema:
		return NotAllowed
	}
	kw := k.KeywordPath()
	if len(kw) == 0 {
		return "Schema"
	}
	return ViolationType(titleCase(kw[0]))
}

// titleCase turns a camelCase keyword into words: "minLength" becomes
// "Min Length".
func titleCase(kw string) string {
	var b strings.Builder
	for i, r := range kw {
		switch {
		case i == 0:
			b.WriteRune(unicode.ToUpper(r))
		case unicode.IsUpper(r):
			b.WriteByte(' ')
			b.WriteRune(r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
