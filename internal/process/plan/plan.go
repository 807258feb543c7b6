package plan

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// Plan is a tracking plan: JSON Schemas, each over the whole event, in
// Segment's layout (see the package documentation). An empty schema is no
// rule, except in Events, where it plans the event without constraining it
// (and so plans none of its properties).
type Plan struct {
	// ID is the plan's id, forwarded as trackingPlanID.
	ID string
	// Name is the plan's display name, forwarded as trackingPlanName.
	Name string
	// Events maps a track event name, matched exactly (case and spaces
	// count), to its schema.
	Events map[string]json.RawMessage
	// Identify is the schema for identify events, declaring the planned
	// traits under properties.traits.
	Identify json.RawMessage
	// Group is the schema for group events, declaring the planned traits
	// under properties.traits.
	Group json.RawMessage
	// Common is the schema every event is checked against.
	Common json.RawMessage
}

// Rule names used in [SchemaError].
const (
	RuleEvent    = "event"
	RuleIdentify = "identify"
	RuleGroup    = "group"
	RuleCommon   = "common"
)

// SchemaError reports a rule of a plan that [Compile] could not compile.
type SchemaError struct {
	// Plan is the plan's ID.
	Plan string
	// Rule is [RuleEvent], [RuleIdentify], [RuleGroup] or [RuleCommon].
	Rule string
	// Event is the track event name when Rule is [RuleEvent].
	Event string
	// Err says what is wrong with the schema.
	Err error
}

// Error reads like `tracking plan "tp_1": event "Order Completed": invalid
// JSON schema: at /properties/total/type: ...`.
func (e *SchemaError) Error() string {
	rule := e.Rule
	if e.Rule == RuleEvent {
		rule = fmt.Sprintf("event %q", e.Event)
	}
	return fmt.Sprintf("tracking plan %q: %s: %s", e.Plan, rule, describeCompileError(e.Err))
}

// Unwrap returns the underlying error.
func (e *SchemaError) Unwrap() error { return e.Err }

// errNoLoading is why a $ref to another document fails.
var errNoLoading = errors.New("schemas may not refer to other documents")

// Compiled is a [Plan] with every schema compiled, ready to [Compiled.Check]
// events. It is immutable and safe for concurrent use.
type Compiled struct {
	id, name string
	events   map[string]*rule
	identify *rule // nil: no identify rule
	group    *rule // nil: no group rule
	common   *rule // nil: no common rule
	printer  *message.Printer
}

// rule is one compiled schema and the keys it plans.
type rule struct {
	schema  *jsonschema.Schema  // nil: no constraints
	quick   *quick              // nil: the schema has no quick form
	planned map[string]struct{} // planned top-level keys of properties or traits
}

// Compile compiles every schema of p once. A schema that is not valid JSON,
// not a valid JSON Schema, or refers to another document is a
// [*SchemaError]; Compile reports the first one, trying rules in the order
// common, identify, group, then events by name.
func Compile(p Plan) (*Compiled, error) {
	c := &Compiled{
		id:      p.ID,
		name:    p.Name,
		events:  make(map[string]*rule, len(p.Events)),
		printer: message.NewPrinter(language.English),
	}
	var err error
	if c.common, err = compileRule(p.Common, ""); err != nil {
		return nil, &SchemaError{Plan: p.ID, Rule: RuleCommon, Err: err}
	}
	if c.identify, err = compileRule(p.Identify, "traits"); err != nil {
		return nil, &SchemaError{Plan: p.ID, Rule: RuleIdentify, Err: err}
	}
	if c.group, err = compileRule(p.Group, "traits"); err != nil {
		return nil, &SchemaError{Plan: p.ID, Rule: RuleGroup, Err: err}
	}
	for _, name := range slices.Sorted(maps.Keys(p.Events)) {
		if name == "" {
			return nil, &SchemaError{Plan: p.ID, Rule: RuleEvent, Err: errors.New("empty event name")}
		}
		r, err := compileRule(p.Events[name], "properties")
		if err != nil {
			return nil, &SchemaError{Plan: p.ID, Rule: RuleEvent, Event: name, Err: err}
		}
		if r == nil {
			r = &rule{}
		}
		c.events[name] = r
	}
	return c, nil
}

// ID returns the plan's ID.
func (c *Compiled) ID() string { return c.id }

// Name returns the plan's name.
func (c *Compiled) Name() string { return c.name }

// compileRule compiles one schema and collects the keys it declares under
// properties.<container>.properties. An empty schema is no rule (nil).
func compileRule(raw json.RawMessage, container string) (*rule, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, nil
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	sch, err := compileSchema(doc)
	if err != nil {
		return nil, err
	}
	return &rule{schema: sch, quick: compileQuick(doc), planned: plannedKeys(doc, container)}, nil
}

// compileSchema compiles a decoded schema the one way every rule (and the
// quick check's string keywords) is compiled: draft-07 unless $schema says
// otherwise, formats asserted, nothing loaded from elsewhere.
func compileSchema(doc any) (*jsonschema.Schema, error) {
	jc := jsonschema.NewCompiler()
	jc.DefaultDraft(jsonschema.Draft7)
	jc.AssertFormat()
	jc.UseLoader(noLoader{})
	if err := jc.AddResource(ruleURL, doc); err != nil {
		return nil, fmt.Errorf("adding schema: %w", err)
	}
	sch, err := jc.Compile(ruleURL)
	if err != nil {
		return nil, fmt.Errorf("invalid JSON schema: %w", err)
	}
	return sch, nil
}

// plannedKeys returns the keys of doc.properties.<container>.properties.
func plannedKeys(doc any, container string) map[string]struct{} {
	if container == "" {
		return nil
	}
	obj, _ := doc.(map[string]any)
	props, _ := obj["properties"].(map[string]any)
	cont, _ := props[container].(map[string]any)
	keys, _ := cont["properties"].(map[string]any)
	planned := make(map[string]struct{}, len(keys))
	for k := range keys {
		planned[k] = struct{}{}
	}
	return planned
}

// noLoader refuses to load any document other than the metaschemas, which
// the validator has built in.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) { return nil, errNoLoading }

// ruleURL is where a rule's schema lives while it is compiled; it is cut
// out of error messages.
const ruleURL = "mem:///rule.json"

// describeCompileError renders a compile error on one line, without the
// validator's internal schema URL.
func describeCompileError(err error) string {
	if sve, ok := errors.AsType[*jsonschema.SchemaValidationError](err); ok {
		if ve, ok := errors.AsType[*jsonschema.ValidationError](sve.Err); ok {
			var msgs []string
			collectMessages(ve, message.NewPrinter(language.English), &msgs)
			if len(msgs) > 0 {
				return "invalid JSON schema: " + strings.Join(msgs, "; ")
			}
		}
	}
	msg := strings.ReplaceAll(err.Error(), "\n", " ")
	return strings.ReplaceAll(msg, ruleURL, "")
}

// collectMessages appends the leaf errors of a metaschema validation: where
// in the schema, and what is wrong there.
func collectMessages(ve *jsonschema.ValidationError, p *message.Printer, msgs *[]string) {
	if len(ve.Causes) > 0 {
		for _, c := range ve.Causes {
			collectMessages(c, p, msgs)
		}
		return
	}
	if _, ok := ve.ErrorKind.(*kind.Schema); ok {
		return
	}
	*msgs = append(*msgs, "at /"+strings.Join(ve.InstanceLocation, "/")+": "+ve.ErrorKind.LocalizedString(p))
}

// PropertiesSchema returns the rule, in the one form a [Plan] holds, for a
// track event whose properties must match the JSON Schema properties (for
// example {"type": "object", "properties": {...}, "required": [...]}).
// Invalid JSON is returned unchanged, for [Compile] to report.
func PropertiesSchema(properties json.RawMessage) json.RawMessage {
	return wrap("properties", properties)
}

// TraitsSchema returns the identify or group rule, in the one form a [Plan]
// holds, for traits that must match the JSON Schema traits.
// Invalid JSON is returned unchanged, for [Compile] to report.
func TraitsSchema(traits json.RawMessage) json.RawMessage {
	return wrap("traits", traits)
}

func wrap(container string, schema json.RawMessage) json.RawMessage {
	if !json.Valid(schema) {
		return schema
	}
	var b bytes.Buffer
	b.WriteString(`{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","properties":{"`)
	b.WriteString(container)
	b.WriteString(`":`)
	b.Write(bytes.TrimSpace(schema))
	b.WriteString(`}}`)
	return b.Bytes()
}
