package process

import (
	"context"
	"time"

	"github.com/confluxcdp/conflux/internal/event"
	"github.com/confluxcdp/conflux/internal/function"
)

// Inserter runs insert functions; [function.Runner] is one.
type Inserter interface {
	Insert(ctx context.Context, p *function.Program, ev function.EventIn) function.InsertResult
}

// ReasonInsertFunction is the delivery metrics' reason for an event a
// source's insert function dropped (counted as blocked).
const ReasonInsertFunction = "insert_function"

// insert runs a source's insert function on the event and emits what it
// returns. An event it drops, or fails on (after the retries, for a
// RetryError or a timeout), goes no further: it is counted as dropped and
// logged with the function's error.
func (r *Rules) insert(ctx context.Context, p *function.Program, src string, rec []byte, out Emitter) Outcome {
	k, err := event.PeekKeys(rec)
	if err != nil {
		r.logger.Warn("event not readable for the insert function; passed on unchanged", "source", src, "err", err)
		out.Emit(rec)
		return OutcomeProcessed
	}
	ev := function.EventIn{Type: string(k.Type), JSON: rec}
	// A RetryError or a timeout is tried again twice, soon: the
	// partition waits meanwhile, so the retries are few and short.
	insertRetries := [...]time.Duration{100 * time.Millisecond, time.Second}
	res := r.functions.Insert(ctx, p, ev)
	for i := 0; res.Status == function.Retry && i < len(insertRetries); i++ {
		select {
		case <-ctx.Done():
			return OutcomeDropped
		case <-time.After(insertRetries[i]):
		}
		res = r.functions.Insert(ctx, p, ev)
	}
	if res.Status == function.OK {
		if _, err := event.PeekKeys(res.JSON); err != nil {
			res.Outcome = function.Outcome{Status: function.Discard, Class: function.ClassBadReturn, Message: "the returned event is not readable: " + err.Error()}
		} else {
			out.Emit(res.JSON)
			return OutcomeProcessed
		}
	}
	level := r.logger.Warn
	if res.Status == function.Drop {
		level = r.logger.Debug
	}
	level("the source's insert function dropped an event", "source", src, "function", p.ID(), "version", p.Version(),
		"message_id", string(k.MessageID), "status", res.Status.String(), "error", res.Err())
	return OutcomeDropped
}
