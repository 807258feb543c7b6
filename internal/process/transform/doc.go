// Package transform applies Segment's Transformations (spec §8.3) and
// Destination Filters (spec §8.4) to events: pure functions from a
// configuration and an [event.Doc] to a changed Doc or a verdict.
//
// # Transformations
//
// [Compile] checks a [Transformation] and compiles its FQL once; the
// [Compiled] result's Apply changes an event in place when the
// transformation's If holds: it renames a track event (newEventName),
// renames or moves properties — traits for identify and group calls —
// by dotted path up to four levels deep (propertyRenames), drops some
// (propertyDrops), and sets fields to static values
// (propertyValueTransformations) or to the result of an FQL expression
// such as lowercase(properties.email) (fqlDefinedProperties). It never
// touches top-level fields such as userId, messageId or type: Compile
// rejects a path that would. A [Chain] applies several in order, as a
// source's (then a destination's) transformations are applied.
//
// # Destination filters
//
// [CompileFilters] checks and compiles a destination's [Filter] list, and
// [Filters.Apply] returns an [Outcome]: the event is kept (with the fields
// that whitelist_fields and blocklist_fields actions name removed, in
// place) or dropped, with the reason (sampled, or filtered by which
// filter). Actions run as Segment runs them, whatever the filters' order:
// sample, then drop, then blocklist, then whitelist. Sampling is decided by
// a hash of messageId, so a retried or replayed event gets the same
// verdict. Both halves fail closed: FQL that does not compile is a compile
// error, and a filter condition that cannot be evaluated drops the event.
//
// # Shapes
//
// The types follow the field names of Segment's Public API
// (TransformationV1, DestinationFilterV1) and decode from JSON and YAML
// (go.yaml.in/yaml/v3) alike. Compile errors are [*FieldError] values whose
// Path names the field ("fqlDefinedProperties[1].fql"), so that a config
// loader can point at the line.
//
// # What it deliberately does not do
//
// It stores nothing and keeps no state between calls: compiled values are
// immutable and safe for concurrent use. It knows nothing of sources,
// destinations, the config file or HTTP; the caller decides which
// transformations and filters apply to an event, and what to count or log.
// It does not implement insert functions, tracking plans or Segment's
// Transformation "drop", allowProperties and hash properties options.
package transform
