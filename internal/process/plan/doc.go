// Package plan checks events against Segment Protocols tracking plans
// (spec §8.1, §8.2). The processing stage compiles each plan once with
// [Compile], then calls [Compiled.Check] for every event of a source
// connected to it, with that source's [Enforcement] (Segment's per-source
// "Schema Configuration"). Check reports the violations it found, says
// whether to keep or block the event, and omits unplanned or offending
// fields in place. [Compiled.ViolationEvent] turns a violation into the
// "Violation Generated" track event Segment forwards.
//
// The package is a pure library: it stores nothing, starts no goroutines
// and knows nothing of sources, config files, the Config API or HTTP. Where
// plans come from, which source uses which plan, where blocked events and
// violations are forwarded, and what is counted, is the caller's business.
// A [Compiled] is immutable and safe for concurrent use.
//
// # Rules
//
// A [Plan] holds JSON Schemas in Segment's layout (Public API rules of type
// TRACK, IDENTIFY, GROUP and COMMON; e.g. the segment_tracking_plan_rules
// example of segmentio/terraform-provider-segment): every schema validates
// the whole event object, so a track rule declares the event's properties
// under properties.properties:
//
//	{
//	  "$schema": "http://json-schema.org/draft-07/schema#",
//	  "type": "object",
//	  "properties": {
//	    "properties": {
//	      "type": "object",
//	      "properties": {
//	        "order_id": {"type": "string"},
//	        "total":    {"type": "number"}
//	      },
//	      "required": ["order_id"]
//	    }
//	  }
//	}
//
// Identify and group rules declare traits the same way under
// properties.traits. The common rule applies to every event, of every type.
// This whole-event form is the only form a Plan holds; [PropertiesSchema]
// and [TraitsSchema] build it from just the properties or traits schema.
//
// Schemas are draft-07, as Segment writes them, unless their $schema names
// another draft the validator knows (draft-04, -06, 2019-09, 2020-12).
// "format" is asserted in every draft, so {"type": "string", "format":
// "date-time"} checks ISO-8601 times as Segment's "Date time" type does.
// Patterns use Go's RE2 syntax (no lookahead, which Segment does not support
// either). A $ref may point inside its own schema only: schemas are never
// loaded from files or the network.
//
// The planned properties of a track event are the keys of its rule's
// properties.properties.properties; the planned traits are the keys of the
// identify or group rule's properties.traits.properties. Keys matched only
// by patternProperties, $ref or allOf count as unplanned.
//
// # Checking
//
// [Compiled.Check] works per event type:
//
//   - track: an event name without a rule is unplanned (a violation of type
//     [UnplannedEvent]); it is blocked if the source blocks unplanned events,
//     and otherwise has no planned properties, so "omit unplanned
//     properties" removes them all (as Segment documents). A planned event is
//     validated against its rule; each property not planned is an
//     [UnplannedProperty] violation.
//   - identify, group: validated against the identify or group rule; each
//     trait not planned is an [UnplannedTrait] violation. A plan without an
//     identify (group) rule says nothing about identify (group) events, so
//     their traits are neither checked nor omitted.
//   - page, screen, alias, and any other type: the common rule only.
//
// The standard controls run first, then the common rule (Segment's
// "advanced blocking controls") on the event as the standard controls left
// it. A track event without properties (an identify or group event without
// traits) is validated against its own rule as if it had an empty object
// there, so that the rule's "required" applies; the object is not added.
// The common rule sees the event as it is.
//
// Schema violations are named after the JSON Schema keyword that failed:
// [Required] (Segment's own name), [TypeMismatch] ("Type"), [Enum],
// [Const], [Pattern], [Format], and for other keywords the keyword in title
// case ("Min Length", "Additional Properties", "Any Of", ...). Their field
// is the dotted path of the value ("properties.price"; "(root)" for the
// event itself). Descriptions can quote the offending value.
//
// Omitting removes top-level keys of properties (track, page, screen) or of
// traits (identify, group): an unplanned key, or the key under which a
// violation was found (a violation elsewhere, such as a missing required
// key or one in context, omits nothing). A blocked event is left exactly as
// it was received, so it can be forwarded unchanged.
//
// # context.protocols
//
// A kept event that had violations or omissions gets them recorded in
// context.protocols, the object Segment adds (its warehouse columns are
// context_protocols_omitted, context_protocols_omitted_on_violation and
// context_protocols_violations):
//
//	"context": {
//	  "protocols": {
//	    "omitted": ["coupon"],                // unplanned keys removed
//	    "omitted_on_violation": ["total"],    // keys removed for violations
//	    "violations": [
//	      {"type": "Required", "field": "properties.order_id",
//	       "description": "properties.order_id is required"}
//	    ]
//	  }
//	}
//
// Each member is present only when non-empty, lists key names sorted, and
// replaces any value the client sent under the same name; other members
// of context.protocols (such as event_version) are kept.
//
// Not done: event versions (context.protocols.event_version selecting one
// of several schemas of an event), Segment's page/screen rules by name, and
// device-mode behaviour, which is the SDKs' concern.
package plan
