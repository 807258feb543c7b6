package process

import "context"

// Outcome is what became of one ingest record, for the accounting:
// received = processed + duplicate + blocked + dropped + invalid +
// too_large, per source.
type Outcome string

// Outcomes of a record.
const (
	// OutcomeProcessed: written to processed (possibly changed).
	OutcomeProcessed Outcome = "processed"
	// OutcomeDuplicate: its messageId was seen within the dedup window.
	OutcomeDuplicate Outcome = "duplicate"
	// OutcomeBlocked: blocked by the source's tracking plan.
	OutcomeBlocked Outcome = "blocked"
	// OutcomeDropped: dropped by the source's insert function, on purpose
	// (DropEvent) or because it failed on the event.
	OutcomeDropped Outcome = "dropped"
	// OutcomeInvalid: unreadable; sent to the dead-letter stream.
	OutcomeInvalid Outcome = "invalid"
	// OutcomeTooLarge: its output did not fit a log message; sent to the
	// dead-letter stream.
	OutcomeTooLarge Outcome = "too_large"
	// OutcomeForwarded counts events a pipeline wrote under another source
	// (blocked events forwarded, violation reports). They add to what that
	// source received, not to the sum above.
	OutcomeForwarded Outcome = "forwarded"
)

// Pipeline decides what becomes of one deduplicated event. The stage calls
// it from several partitions at once, so it must be safe for concurrent
// use; calls for one user are made in order, from one goroutine.
type Pipeline interface {
	// Process handles rec, the stored JSON of one event of source src. It
	// writes the event (changed or not) with out.Emit, may write other
	// events with out.Forward, and returns the outcome for src. It must not
	// retain rec or out after it returns. ctx ends when the stage stops.
	Process(ctx context.Context, src string, rec []byte, out Emitter) Outcome
}

// Emitter writes records into the group being processed.
type Emitter struct {
	source  string
	self    func(src string, rec []byte)
	other   func(src string, rec []byte)
	deferFn func(func())
}

// Defer runs f once the group holding the event is committed, and never
// if it is not (a group may be prepared again, or dropped at shutdown):
// side effects such as counting belong there, so that they happen once
// per event. f runs on another goroutine than Process.
func (e Emitter) Defer(f func()) {
	if e.deferFn == nil {
		f()
		return
	}
	e.deferFn(f)
}

// Emit writes the event being processed, under its own source. rec is
// copied: the caller may reuse it once Emit returns (as for Forward).
func (e Emitter) Emit(rec []byte) { e.self(e.source, rec) }

// Forward writes another event, or the event under another source.
func (e Emitter) Forward(src string, rec []byte) { e.other(src, rec) }

// PassThrough is the pipeline of a workspace without plans or
// transformations: every event goes on unchanged.
type PassThrough struct{}

// Process emits rec as it is.
func (PassThrough) Process(_ context.Context, _ string, rec []byte, out Emitter) Outcome {
	out.Emit(rec)
	return OutcomeProcessed
}
